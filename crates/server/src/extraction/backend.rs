//! Where a gateway keeps its tenants' extraction state: in this process, or (with
//! `REDIS_URL`) in a Redis log every replica replays, so all replicas judge one window.

use secureinfer_guard::extraction::{BudgetReport, ExtractionDetector, QueryFeatures};

use super::shared::SharedState;
use super::state::{LocalState, Observed, Snapshot};
use super::unix_ms;

pub enum Backend {
    Local(LocalState),
    Shared(Box<SharedState>),
}

impl Backend {
    pub fn local() -> Self {
        Backend::Local(LocalState::default())
    }

    pub fn shared(state: SharedState) -> Self {
        Backend::Shared(Box::new(state))
    }

    pub async fn observe(
        &self,
        det: &ExtractionDetector,
        tenant_id: &str,
        features: &QueryFeatures,
        logit_bias_ids: &[String],
    ) -> Observed {
        match self {
            Backend::Local(l) => l.observe(det, tenant_id, unix_ms(), features, logit_bias_ids),
            Backend::Shared(s) => s.observe(det, tenant_id, features, logit_bias_ids).await,
        }
    }

    pub async fn snapshot(
        &self,
        det: &ExtractionDetector,
        tenant_id: &str,
        budget_limit: u64,
    ) -> Snapshot {
        match self {
            Backend::Local(l) => l.snapshot(det, tenant_id, unix_ms(), budget_limit),
            Backend::Shared(s) => s.snapshot(det, tenant_id, budget_limit).await,
        }
    }

    pub async fn charge(
        &self,
        tenant_id: &str,
        now_ms: u64,
        cost: u64,
        limit: u64,
    ) -> BudgetReport {
        match self {
            Backend::Local(l) => l.charge(tenant_id, now_ms, cost, limit),
            Backend::Shared(s) => s.charge(tenant_id, now_ms, cost, limit).await,
        }
    }
}
