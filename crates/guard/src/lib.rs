//! SecureInfer detection core.
//!
//! Everything here is pure and synchronous: no I/O, no async runtime, no clocks read
//! implicitly (callers pass timestamps). The service shell (`crates/server`) feeds it
//! request views and acts on the verdicts it returns.

pub mod extraction;
pub mod output;
