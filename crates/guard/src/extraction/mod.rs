//! Model-extraction detection and the probability (logprob / logit_bias) policy.
//! See docs/extraction.md for the threat model, the signals and their limits.
//!
//! Split in two like the rest of the core: [`ExtractionDetector`] is immutable and shared
//! (configuration, hash seeds, compiled patterns), [`TenantWindow`] is one tenant's mutable
//! counters. Neither reads a clock: callers pass `now_ms`.
//!
//! ```
//! use secureinfer_guard::extraction::{ExtractionConfig, ExtractionDetector, TenantWindow};
//! let det = ExtractionDetector::new(ExtractionConfig::default());
//! let mut window = TenantWindow::new();
//! let f = det.features("What is 1 + 2?", true);
//! let a = window.observe(&det, 1_000, &f);
//! assert!(a.score < 40);
//! ```

mod assessment;
mod config;
mod divergence;
mod features;
mod hashing;
pub mod logprobs;
mod normality;
mod probes;
mod window;
mod wire;

pub use assessment::{ExtractionAssessment, ExtractionSignal, ExtractionStatus};
pub use config::{ExtractionConfig, LshParams, MAX_BANDS, NUM_HASHES};
pub use divergence::{
    DivergenceFinding, DivergenceScanner, MIN_RUN, MIN_TAIL_WORDS, output_divergence,
};
pub use features::{ExtractionDetector, QueryFeatures, estimate_similarity};
pub use logprobs::{
    BudgetCrossing, BudgetReport, Clamped, LogitBiasSweep, LogprobBudget, LogprobPolicy,
    PolicyViolation, ProbRequestView, RequestAdjustments, check_request, logprob_cost,
    round_logprob,
};
pub use probes::{ProbeKind, ProbeSet};
pub use window::TenantWindow;
