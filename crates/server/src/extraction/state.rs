//! Per-tenant extraction state held by this gateway process: one sliding window and one daily
//! logprob budget per tenant. Each tenant has its own lock, so tenants never wait on (or see)
//! each other; the map lock is held only to find or create a tenant's entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use secureinfer_guard::extraction::{
    BudgetReport, ExtractionAssessment, ExtractionDetector, ExtractionStatus, LogprobBudget,
    QueryFeatures, TenantWindow,
};

/// How often idle tenants' windows are released (their budgets are kept for the day).
const SWEEP_EVERY_MS: u64 = 60_000;

pub(super) struct TenantState {
    window: TenantWindow,
    budget: LogprobBudget,
    last_seen_ms: u64,
    /// Highest status reported since the window was last empty, so "entered review" fires once.
    reported: ExtractionStatus,
}

impl TenantState {
    pub(super) fn new() -> Self {
        TenantState {
            window: TenantWindow::new(),
            budget: LogprobBudget::new(),
            last_seen_ms: 0,
            reported: ExtractionStatus::Normal,
        }
    }

    /// Adds one query (and the token ids of its accepted logit_bias) at `now_ms`.
    pub(super) fn apply(
        &mut self,
        det: &ExtractionDetector,
        now_ms: u64,
        features: &QueryFeatures,
        logit_bias_ids: &[String],
    ) -> Observed {
        if !logit_bias_ids.is_empty() {
            self.window
                .record_logit_bias(det, now_ms, logit_bias_ids.iter().map(String::as_str));
        }
        let assessment = self.window.observe(det, now_ms, features);
        self.last_seen_ms = self.last_seen_ms.max(now_ms);
        if assessment.status == ExtractionStatus::Normal {
            self.reported = ExtractionStatus::Normal;
        }
        let escalated = assessment.status > self.reported;
        self.reported = self.reported.max(assessment.status);
        Observed {
            assessment,
            escalated,
        }
    }

    pub(super) fn snapshot(
        &mut self,
        det: &ExtractionDetector,
        now_ms: u64,
    ) -> (ExtractionAssessment, usize) {
        (self.window.snapshot(det, now_ms), self.window.len())
    }
}

/// The outcome of adding one query to a tenant's window.
#[derive(Debug, Clone)]
pub struct Observed {
    pub assessment: ExtractionAssessment,
    /// The status rose to a level not reported before in this window (for an event).
    pub escalated: bool,
}

/// A tenant's standing, for the status endpoint.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub assessment: ExtractionAssessment,
    pub queries: usize,
    pub budget: BudgetReport,
    /// The window is the one all replicas share (Redis), not this process's own.
    pub shared: bool,
}

#[derive(Default)]
pub struct LocalState {
    tenants: Mutex<HashMap<String, Arc<Mutex<TenantState>>>>,
    last_sweep_ms: Mutex<u64>,
}

/// A poisoned lock only means another request panicked mid-update; the counters are still
/// usable, and refusing every later request for the tenant would be worse.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LocalState {
    fn tenant(&self, id: &str) -> Arc<Mutex<TenantState>> {
        let mut map = lock(&self.tenants);
        if let Some(t) = map.get(id) {
            return t.clone();
        }
        let t = Arc::new(Mutex::new(TenantState::new()));
        map.insert(id.to_string(), t.clone());
        t
    }

    pub fn observe(
        &self,
        det: &ExtractionDetector,
        tenant_id: &str,
        now_ms: u64,
        features: &QueryFeatures,
        logit_bias_ids: &[String],
    ) -> Observed {
        self.sweep(det, now_ms);
        let t = self.tenant(tenant_id);
        let mut t = lock(&t);
        t.apply(det, now_ms, features, logit_bias_ids)
    }

    pub fn snapshot(
        &self,
        det: &ExtractionDetector,
        tenant_id: &str,
        now_ms: u64,
        budget_limit: u64,
    ) -> Snapshot {
        let t = self.tenant(tenant_id);
        let mut t = lock(&t);
        let (assessment, queries) = t.snapshot(det, now_ms);
        Snapshot {
            assessment,
            queries,
            // Charging nothing reads the day's total without moving it.
            budget: t.budget.charge(now_ms, 0, budget_limit),
            shared: false,
        }
    }

    pub fn charge(&self, tenant_id: &str, now_ms: u64, cost: u64, limit: u64) -> BudgetReport {
        let t = self.tenant(tenant_id);
        let mut t = lock(&t);
        t.budget.charge(now_ms, cost, limit)
    }

    /// Releases the windows of tenants idle for longer than the window: everything in them
    /// has expired anyway. Runs at most once a minute, O(tenants).
    fn sweep(&self, det: &ExtractionDetector, now_ms: u64) {
        {
            let mut last = lock(&self.last_sweep_ms);
            if now_ms.saturating_sub(*last) < SWEEP_EVERY_MS {
                return;
            }
            *last = now_ms;
        }
        let window_ms = det.config().window_ms;
        let map = lock(&self.tenants);
        for t in map.values() {
            // try_lock: a tenant in use right now is not idle.
            if let Ok(mut t) = t.try_lock()
                && now_ms.saturating_sub(t.last_seen_ms) > window_ms
                && !t.window.is_empty()
            {
                t.window = TenantWindow::new();
                t.reported = ExtractionStatus::Normal;
            }
        }
    }
}
