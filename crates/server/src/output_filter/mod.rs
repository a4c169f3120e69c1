//! The output guard in the gateway (see docs/output-guard.md, "Through the gateway").
//!
//! Per request, [`OutputFilter::prepare`] runs after the security gate: it resolves the tenant's
//! settings, plants a canary in the system prompt, optionally redacts secrets and personal data
//! in user messages, and returns a [`ResponseGuard`]. The chat route hands the upstream's answer
//! to that guard: a whole `chat.completion` through [`ResponseGuard::filter_completion`], a
//! stream chunk by chunk through [`ResponseGuard::relay`]. Findings become one security event
//! per request (written before the response ends) and process-wide counters.

mod complete;
mod record;
mod relay;
mod request;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secureinfer_guard::output::{
    Action, Category, OutputGuard, OutputGuardError, OutputPolicy, RequestContext,
    canary_instruction, make_canary,
};
use serde_json::Value;

use crate::config::{CanaryPosition, OutputSettings, TenantOutputOverrides};
use crate::error::ApiError;
use crate::openai::ValidatedChat;
use crate::store::Store;

pub use record::{EventContext, FindingCount, FindingLog, OutputCounters};
pub use relay::{Relay, StreamFilter};

/// How long a tenant's overrides are reused before they are read again (other replicas may
/// have changed them; changes made through this replica apply at once).
const TENANT_TTL: Duration = Duration::from_secs(5);
/// Cached tenant entries and compiled policies; past this the cache starts over.
const CACHE_MAX: usize = 4096;
const COMPILED_MAX: usize = 64;

/// Detectors compiled for one policy: for answers, and for prompts when prompt scanning is on.
struct Compiled {
    answers: OutputGuard,
    prompts: Option<OutputGuard>,
}

type PolicyKey = (
    [Action; Category::ALL.len()],
    [Action; Category::ALL.len()],
    usize,
);

fn actions(p: &OutputPolicy) -> [Action; Category::ALL.len()] {
    Category::ALL.map(|c| p.action(c))
}

type TenantEntry = (Instant, Option<Arc<TenantOutputOverrides>>);

/// Shared by all requests (in `AppState`).
pub struct OutputFilter {
    settings: OutputSettings,
    compiled: Mutex<HashMap<PolicyKey, Arc<Compiled>>>,
    tenants: Mutex<HashMap<String, TenantEntry>>,
    pub counters: OutputCounters,
}

impl std::fmt::Debug for OutputFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputFilter")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OutputFilter {
    /// Compiles the gateway-wide policy once, so a broken pattern stops start-up.
    pub fn new(settings: OutputSettings) -> Result<Self, OutputGuardError> {
        let filter = OutputFilter {
            settings,
            compiled: Mutex::new(HashMap::new()),
            tenants: Mutex::new(HashMap::new()),
            counters: OutputCounters::default(),
        };
        filter.compile(&filter.settings)?;
        Ok(filter)
    }

    pub fn settings(&self) -> &OutputSettings {
        &self.settings
    }

    fn compile(&self, s: &OutputSettings) -> Result<Arc<Compiled>, OutputGuardError> {
        let answers = s.policy();
        let prompts = (s.prompt_scan != Action::Off).then(|| s.prompt_policy());
        let key = (
            actions(&answers),
            prompts
                .as_ref()
                .map_or([Action::Off; Category::ALL.len()], actions),
            answers.prompt_overlap_min_words,
        );
        if let Some(c) = self.compiled.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(c);
        }
        // Compiling takes milliseconds; it happens once per distinct policy.
        let compiled = Arc::new(Compiled {
            answers: OutputGuard::new(answers)?,
            prompts: prompts.map(OutputGuard::new).transpose()?,
        });
        if let Ok(mut m) = self.compiled.lock() {
            if m.len() >= COMPILED_MAX {
                m.clear();
            }
            m.insert(key, compiled.clone());
        }
        Ok(compiled)
    }

    async fn overrides(
        &self,
        store: &dyn Store,
        tenant_id: &str,
    ) -> Result<Option<Arc<TenantOutputOverrides>>, ApiError> {
        let cached = self
            .tenants
            .lock()
            .ok()
            .and_then(|m| m.get(tenant_id).cloned());
        if let Some((at, o)) = cached
            && at.elapsed() < TENANT_TTL
        {
            return Ok(o);
        }
        let stored = store.output_overrides(tenant_id).await?;
        let parsed = stored.and_then(|json| {
            serde_json::from_str::<TenantOutputOverrides>(&json)
                .map_err(|e| {
                    tracing::error!(tenant = %tenant_id, error = %e, "stored output policy is unreadable; using the gateway's");
                })
                .ok()
                .map(Arc::new)
        });
        self.remember(tenant_id, parsed.clone());
        Ok(parsed)
    }

    fn remember(&self, tenant_id: &str, o: Option<Arc<TenantOutputOverrides>>) {
        if let Ok(mut m) = self.tenants.lock() {
            if m.len() >= CACHE_MAX {
                m.clear();
            }
            m.insert(tenant_id.to_string(), (Instant::now(), o));
        }
    }

    /// The settings in force for a tenant.
    pub async fn settings_for(
        &self,
        store: &dyn Store,
        tenant_id: &str,
    ) -> Result<(Cow<'_, OutputSettings>, Option<Arc<TenantOutputOverrides>>), ApiError> {
        let o = self.overrides(store, tenant_id).await?;
        let s = match &o {
            None => Cow::Borrowed(&self.settings),
            Some(o) => match self.settings.with_tenant(o) {
                Ok(s) => Cow::Owned(s),
                Err(e) => {
                    tracing::error!(tenant = %tenant_id, error = %e, "stored output policy is invalid; using the gateway's");
                    Cow::Borrowed(&self.settings)
                }
            },
        };
        Ok((s, o))
    }

    /// Validates and stores a tenant's overrides (`None` clears them); returns the settings
    /// now in force for the tenant.
    pub async fn set_overrides(
        &self,
        store: &dyn Store,
        tenant_id: &str,
        overrides: Option<TenantOutputOverrides>,
    ) -> Result<OutputSettings, ApiError> {
        let effective = match &overrides {
            Some(o) => self
                .settings
                .with_tenant(o)
                .map_err(|m| ApiError::bad_request(m, None))?,
            None => self.settings.clone(),
        };
        self.compile(&effective)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let json = overrides
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        store
            .set_output_overrides(tenant_id, json.as_deref())
            .await?;
        self.remember(tenant_id, overrides.map(Arc::new));
        Ok(effective)
    }

    /// Request-side work; `None` when the output guard is off for this tenant. Refuses the
    /// request (after recording an event) when prompt scanning finds a blocking category.
    pub async fn prepare(
        &self,
        store: &dyn Store,
        req: RequestFacts<'_>,
        chat: &mut ValidatedChat,
    ) -> Result<Option<ResponseGuard>, ApiError> {
        let (settings, _) = self.settings_for(store, req.tenant_id).await?;
        if !settings.enabled {
            return Ok(None);
        }
        let compiled = self
            .compile(&settings)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let (prompt_sha256, prompt_chars) = request::prompt_digest(chat);
        let mut guard = ResponseGuard {
            compiled,
            ctx: RequestContext::default(),
            tenant_id: req.tenant_id.to_string(),
            request_id: req.request_id.to_string(),
            score: req.score,
            prompt_sha256,
            prompt_chars,
            stream: chat.typed.streaming(),
        };
        if let Some(prompts) = &guard.compiled.prompts {
            let log = request::scan_prompts(chat, prompts);
            if !log.is_empty() {
                self.counters.record(&log, true);
                guard.report(store, &log, true).await?;
                if log.blocked {
                    return Err(ApiError::DataGuard {
                        request_id: guard.request_id.clone(),
                        labels: log.block_labels(),
                        in_prompt: true,
                    });
                }
            }
        }
        if settings.overlap_words > 0 {
            guard.ctx.system_prompt = request::system_prompt(chat);
        }
        if settings.canary {
            let canary = make_canary(rand::random());
            let line = canary_instruction(&canary);
            // At the start, a streamed recital meets the canary before any of the prompt; at
            // the end, the prompt's prefix stays cacheable upstream.
            let line = match settings.canary_position {
                CanaryPosition::Start => format!("{}\n\n", line.trim_start()),
                CanaryPosition::End => line,
            };
            let at_start = settings.canary_position == CanaryPosition::Start;
            if request::add_to_system(chat, &line, at_start) {
                guard.ctx.canary = Some(canary);
                self.counters
                    .canaries_planted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(Some(guard))
    }
}

/// What `prepare` needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub tenant_id: &'a str,
    pub request_id: &'a str,
    /// The gate's risk score, carried into output events.
    pub score: u8,
}

/// The output guard for one request's answer.
pub struct ResponseGuard {
    compiled: Arc<Compiled>,
    ctx: RequestContext,
    tenant_id: String,
    request_id: String,
    score: u8,
    prompt_sha256: String,
    prompt_chars: i64,
    stream: bool,
}

impl std::fmt::Debug for ResponseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseGuard")
            .field("ctx", &self.ctx)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl ResponseGuard {
    fn event_context(&self) -> EventContext<'_> {
        EventContext {
            tenant_id: &self.tenant_id,
            request_id: &self.request_id,
            score: self.score,
            prompt_sha256: &self.prompt_sha256,
            prompt_chars: self.prompt_chars,
            stream: self.stream,
        }
    }

    /// Writes the event for `log` (if it has findings) and logs a summary line.
    async fn report(
        &self,
        store: &dyn Store,
        log: &FindingLog,
        prompt_side: bool,
    ) -> Result<(), ApiError> {
        let Some(event) = log.event(&self.event_context(), prompt_side) else {
            return Ok(());
        };
        tracing::warn!(
            request_id = %self.request_id,
            tenant = %self.tenant_id,
            event_type = %event.event_type,
            decision = %event.decision,
            categories = ?log.labels(),
            stream = self.stream,
            "output guard"
        );
        store.insert_event(&event).await?;
        Ok(())
    }

    /// Records the answer's findings: counters and the security event. Call once per answer,
    /// before the response (or the stream) ends.
    pub async fn settle(
        &self,
        store: &dyn Store,
        counters: &OutputCounters,
        log: &FindingLog,
    ) -> Result<(), ApiError> {
        counters
            .answers_scanned
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        counters.record(log, false);
        self.report(store, log, false).await
    }

    /// Filters a complete answer in place. Returns the findings; `log.blocked` means the
    /// answer must not be sent (see [`ResponseGuard::blocked_error`]).
    pub fn filter_completion(&self, body: &mut Value) -> FindingLog {
        let mut log = FindingLog::default();
        complete::filter_completion(&self.compiled.answers, &self.ctx, body, &mut log);
        log
    }

    /// The stream relay for this answer.
    pub fn relay(&self) -> StreamFilter<'_> {
        StreamFilter::new(&self.compiled.answers, &self.ctx)
    }

    /// The client-facing error for a blocked answer (status 403 / the stream's error event).
    pub fn blocked_error(&self, log: &FindingLog) -> ApiError {
        ApiError::DataGuard {
            request_id: self.request_id.clone(),
            labels: log.block_labels(),
            in_prompt: false,
        }
    }

    /// Whether a canary was planted in this request's system prompt.
    pub fn has_canary(&self) -> bool {
        self.ctx.canary.is_some()
    }
}

/// The effective settings as JSON, for the policy endpoints.
pub fn settings_json(s: &OutputSettings) -> Value {
    let answers = s.policy();
    let prompts = s.prompt_policy();
    let name = |a: Action| match a {
        Action::Redact => "redact",
        Action::Block => "block",
        Action::Log => "log",
        Action::Off => "off",
    };
    let table = |p: &OutputPolicy| -> serde_json::Map<String, Value> {
        Category::ALL
            .iter()
            .map(|&c| (c.label().to_string(), Value::from(name(p.action(c)))))
            .collect()
    };
    serde_json::json!({
        "enabled": s.enabled,
        "canary": s.canary,
        "canary_position": s.canary_position.as_str(),
        "prompt_overlap_words": s.overlap_words,
        "scan_prompts": name(s.prompt_scan),
        "actions": table(&answers),
        "prompt_actions": if s.prompt_scan == Action::Off { Value::Null } else { Value::Object(table(&prompts)) },
    })
}
