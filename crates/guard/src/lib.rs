//! SecureInfer detection core.
//!
//! Everything here is pure and synchronous: no I/O, no async runtime, no clocks read
//! implicitly (callers pass timestamps). The service shell (`crates/server`) feeds it
//! request views and acts on the verdicts it returns.

pub mod classifier;
pub mod eval;
pub mod extraction;
pub mod isolation;
pub mod normalize;
pub mod output;
pub mod scorer;

pub use classifier::second::{SecondTier, SemanticScore};
pub use classifier::{Classifier, LearnedScore, ModelError};
pub use normalize::ObfuscationStats;
pub use scorer::{
    Assessment, CatalogueError, ChatMessage, Decision, Guard, GuardConfig, Reason, Role, Thresholds,
};
