//! The one trait both backends implement: check (all-or-nothing admission), settle (token
//! reconciliation and slot release), refresh (renew a concurrency lease), ping.

use async_trait::async_trait;

use super::check::{Check, Verdict};
use super::gcra::Quota;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("redis answered with an unexpected shape: {0}")]
    Protocol(String),
}

/// Move a token key by `delta` units (negative: give back what was reserved but not used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAdjust {
    pub key: String,
    pub quota: Quota,
    pub delta: i64,
}

/// Give back one concurrency slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRelease {
    pub key: String,
    pub id: String,
}

/// What an admitted chat request settles when it ends, however it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub group: String,
    pub tokens: Option<TokenAdjust>,
    pub release: Option<SlotRelease>,
}

#[async_trait]
pub trait LimitBackend: Send + Sync {
    fn name(&self) -> &'static str;
    async fn check(&self, check: &Check) -> Result<Verdict, BackendError>;
    async fn settle(&self, settlement: &Settlement) -> Result<(), BackendError>;
    /// Keeps a long request's concurrency slot alive (slots in Redis are leases, so that a
    /// replica that dies holding slots does not leak them for ever).
    async fn refresh(&self, group: &str, slot_key: &str, id: &str) -> Result<(), BackendError>;
    async fn ping(&self) -> Result<(), BackendError>;
}
