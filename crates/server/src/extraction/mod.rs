//! The model-extraction defence in the gateway (docs/extraction.md, "Through the gateway").
//!
//! Per request, in this order:
//! 1. [`Extraction::check_request`]: the probability policy refuses (400) or lowers
//!    `logit_bias`, `logprobs`, `top_logprobs`, `n` and vLLM's amplifiers, and refuses logprobs
//!    (429) once the tenant's daily logprob budget is spent;
//! 2. [`Extraction::observe`]: the prompt joins the tenant's sliding window and the detector's
//!    score becomes the gate's `model_extraction` factor ([`crate::gate::Verdict::with_extraction`]);
//! 3. [`Extraction::response_guard`]: rounds returned logprobs, drops `bytes`, charges the
//!    budget and cuts output that diverges after a long repetition, for whole answers and SSE
//!    chunks ([`guard_stream`]).
//!
//! State (windows and budgets) is held in this process ([`state::LocalState`]), or shared by
//! every replica through Redis when `REDIS_URL` is set ([`backend::Backend`]).

mod backend;
mod policy;
mod response;
mod shared;
mod state;

use std::sync::Arc;
use std::time::Duration;

use secureinfer_guard::extraction::{
    BudgetReport, ExtractionDetector, ExtractionStatus, LogprobPolicy, QueryFeatures,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use policy::{POLICY_CODE, ProbPlan, TenantProbPolicy};
pub use response::{ResponseGuard, guard_stream};
pub use state::{Observed, Snapshot};

use crate::auth::TenantCtx;
use crate::config::{ExtractionSettings, GateSettings, SecurityMode};
use crate::error::ApiError;
use crate::openai::{Message, Role, ValidatedChat};
use crate::store::{Store, now_ms};

/// Prompts longer than this get their features computed on the blocking pool
/// (about 32 µs per KB).
const INLINE_FEATURE_BYTES: usize = 16 * 1024;
const DAY_MS: u64 = 86_400_000;

pub struct Extraction {
    detector: ExtractionDetector,
    settings: ExtractionSettings,
    state: backend::Backend,
    enforce: bool,
    store_prompt: bool,
}

/// The text a query is judged by: the last user (or tool) message, and whether the request
/// is a single user turn with no earlier conversation.
fn query_text(messages: &[Message]) -> (String, bool) {
    let users = messages
        .iter()
        .filter(|m| matches!(m.role, Role::User))
        .count();
    let assistants = messages
        .iter()
        .filter(|m| matches!(m.role, Role::Assistant))
        .count();
    let text = messages
        .iter()
        .rev()
        .find(|m| matches!(m.role, Role::User | Role::Tool))
        .map(Message::text)
        .unwrap_or_default();
    (text, users == 1 && assistants == 0)
}

pub(crate) fn unix_ms() -> u64 {
    u64::try_from(now_ms()).unwrap_or(0)
}

impl Extraction {
    /// `redis`: the URL and per-call timeout when replicas share state (`REDIS_URL`).
    pub fn new(
        settings: ExtractionSettings,
        gate: &GateSettings,
        redis: Option<(&str, Duration)>,
    ) -> Result<Self, redis::RedisError> {
        let state = match redis {
            Some((url, timeout)) => backend::Backend::shared(shared::SharedState::new(
                url,
                timeout,
                settings.detector.window_ms,
                settings.detector.max_entries,
            )?),
            None => backend::Backend::local(),
        };
        Ok(Extraction {
            detector: ExtractionDetector::new(settings.detector.clone()),
            settings,
            state,
            enforce: gate.mode == SecurityMode::Enforce,
            store_prompt: gate.event_store_prompt,
        })
    }

    pub fn settings(&self) -> &ExtractionSettings {
        &self.settings
    }

    /// The gateway's probability policy with the tenant's overrides applied.
    pub fn policy_for(&self, overrides: Option<&TenantProbPolicy>) -> LogprobPolicy {
        match overrides {
            Some(o) => o.apply(&self.settings.policy),
            None => self.settings.policy.clone(),
        }
    }

    /// Applies the probability policy to the request (clamps are written into `chat`).
    pub async fn check_request(
        &self,
        tenant: &TenantCtx,
        chat: &mut ValidatedChat,
    ) -> Result<ProbPlan, ApiError> {
        let policy = self.policy_for(tenant.prob_policy.as_ref());
        let plan = policy::apply(policy, chat)?;
        if plan.wants_logprobs {
            let now = unix_ms();
            let report = self
                .state
                .charge(&tenant.id, now, 0, plan.policy.daily_logprob_budget)
                .await;
            if report.exhausted {
                return Err(ApiError::LogprobBudgetExhausted {
                    limit: report.limit,
                    retry_after_secs: (DAY_MS - now % DAY_MS).div_ceil(1000),
                });
            }
        }
        Ok(plan)
    }

    /// Adds the request's query to the tenant's window; `None` when detection is off.
    pub async fn observe(
        self: &Arc<Self>,
        tenant_id: &str,
        chat: &ValidatedChat,
        plan: &ProbPlan,
    ) -> Option<Observed> {
        if !self.settings.detection {
            return None;
        }
        let (text, single_turn) = query_text(&chat.typed.messages);
        let features = self.features(text, single_turn).await;
        Some(
            self.state
                .observe(&self.detector, tenant_id, &features, &plan.logit_bias_ids)
                .await,
        )
    }

    async fn features(self: &Arc<Self>, text: String, single_turn: bool) -> QueryFeatures {
        if text.len() <= INLINE_FEATURE_BYTES {
            return self.detector.features(&text, single_turn);
        }
        let me = self.clone();
        let owned = text.clone();
        match tokio::task::spawn_blocking(move || me.detector.features(&owned, single_turn)).await {
            Ok(f) => f,
            // Feature extraction does not panic (property-tested); if the task died anyway,
            // compute inline.
            Err(_) => self.detector.features(&text, single_turn),
        }
    }

    /// The response-side guard for one request.
    pub fn response_guard(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        tenant_id: &str,
        request_id: &str,
        chat: &ValidatedChat,
        plan: &ProbPlan,
    ) -> ResponseGuard {
        let prompt: String = chat
            .typed
            .messages
            .iter()
            .filter(|m| !matches!(m.role, Role::Assistant))
            .map(Message::text)
            .collect::<Vec<_>>()
            .join("\n");
        ResponseGuard {
            ext: self.clone(),
            store: store.clone(),
            tenant_id: tenant_id.to_string(),
            request_id: request_id.to_string(),
            prompt_sha256: hex::encode(Sha256::digest(prompt.as_bytes())),
            prompt_chars: prompt.chars().count() as i64,
            round: plan.adjustments.round_decimals,
            top: plan.top_logprobs,
            budget_limit: plan.policy.daily_logprob_budget,
            enforce: self.enforce,
            store_word: self.store_prompt,
            tokens: 0,
            scanners: Vec::new(),
            finding: None,
            settled: false,
        }
    }

    pub(crate) async fn charge_budget(
        &self,
        tenant_id: &str,
        cost: u64,
        limit: u64,
    ) -> BudgetReport {
        self.state.charge(tenant_id, unix_ms(), cost, limit).await
    }

    /// The tenant's extraction standing for `GET /v1/security/risk/{tenant_id}`.
    pub async fn status_json(
        &self,
        tenant_id: &str,
        overrides: Option<&TenantProbPolicy>,
    ) -> Value {
        let policy = self.policy_for(overrides);
        let snap = self
            .state
            .snapshot(&self.detector, tenant_id, policy.daily_logprob_budget)
            .await;
        let status = if self.settings.detection {
            snap.assessment.status
        } else {
            ExtractionStatus::Normal
        };
        json!({
            "detection": self.settings.detection,
            "score": if self.settings.detection { snap.assessment.score } else { 0 },
            "status": status,
            "queries_in_window": snap.queries,
            "window_seconds": self.settings.detector.window_ms / 1000,
            "signals": snap.assessment.signals,
            "shared": snap.shared,
            "logprob_budget": {
                "used": snap.budget.used,
                "limit": snap.budget.limit,
                "remaining": snap.budget.limit.saturating_sub(snap.budget.used),
                "exhausted": snap.budget.exhausted,
            },
            "policy": policy,
        })
    }
}
