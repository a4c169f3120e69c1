//! Tenant isolation in the gateway: the conversation context store, per-tenant prefix-cache
//! salts and the policy for upstreams that cannot salt, cross-tenant probe events, and the
//! prefix-probe window. `turn.rs` is the part a chat request goes through.

mod turn;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use secureinfer_guard::isolation::{PrefixProbeConfig, PrefixProbeWindow, ProbeObservation};
use serde::Serialize;
use serde_json::{Value, json};

pub(crate) use turn::owner_mismatch;
pub use turn::{Turn, note_probe_question, prepare};

use crate::config::{Config, SaltMode, UnsaltedPolicy};
use crate::context::{Context, MemoryContext, RedisContext};
use crate::error::ApiError;
use crate::redis_pool::RedisPool;
use crate::upstream::cache_salt::SaltDeriver;
use crate::upstream::{SaltSupport, Upstream};

/// Most tenants whose probe windows are kept in memory at once.
const MAX_PROBE_WINDOWS: usize = 10_000;

/// How the upstream's prefix cache is kept apart per tenant, as reported at start-up and in
/// `/health`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PrefixCacheStatus {
    /// The upstream keeps a cache that requests of different tenants could share.
    pub shared_cache: bool,
    /// The gateway sends a per-tenant `cache_salt`.
    pub salting: bool,
    /// No cross-tenant cache sharing is possible (salting, or no shared cache at all).
    pub isolated: bool,
    /// `UNSALTED_UPSTREAM`: what happens when not isolated.
    pub policy: &'static str,
}

#[derive(Debug, Default)]
struct Counters {
    cross_tenant_questions: AtomicU64,
    prefix_probes_flagged: AtomicU64,
    refused_requests: AtomicU64,
    context_failures: AtomicU64,
}

pub struct Isolation {
    /// `None` when `CONTEXT_ENABLED=false`.
    pub context: Option<Arc<Context>>,
    pub redis: Option<Arc<RedisPool>>,
    salts: Option<SaltDeriver>,
    pub prefix_cache: PrefixCacheStatus,
    policy: UnsaltedPolicy,
    context_max_chars: usize,
    probes: Mutex<HashMap<String, PrefixProbeWindow>>,
    probe_cfg: PrefixProbeConfig,
    /// Under `UNSALTED_UPSTREAM=refuse`, the one tenant this process serves.
    pinned: Mutex<Option<String>>,
    counters: Counters,
}

impl Isolation {
    /// Builds the isolation state; asks the upstream whether it can salt its cache.
    pub async fn build(config: &Config, upstream: &dyn Upstream) -> anyhow::Result<Isolation> {
        let settings = &config.isolation;
        let redis = match &config.redis {
            Some(r) => Some(Arc::new(
                RedisPool::new(
                    secrecy::ExposeSecret::expose_secret(&r.url),
                    r.timeout,
                    r.pool_size,
                )
                .map_err(|_| anyhow::anyhow!("REDIS_URL: not a usable Redis URL"))?,
            )),
            None => None,
        };
        let context = settings.context.enabled.then(|| {
            let c = &settings.context;
            let backend: Arc<dyn crate::context::ContextBackend> = match &redis {
                Some(pool) => Arc::new(RedisContext::new(pool.clone(), c.ttl, c.max_messages)),
                None => Arc::new(MemoryContext::new(
                    c.ttl,
                    c.max_messages,
                    c.max_conversations,
                )),
            };
            Arc::new(Context::new(backend, c.max_chars))
        });

        let support = match settings.salt_mode {
            SaltMode::Off if upstream.kind() == crate::config::UpstreamKind::Mock => {
                SaltSupport::NoSharedCache
            }
            SaltMode::Off => SaltSupport::Unsupported,
            SaltMode::On | SaltMode::Auto => upstream.salt_support().await,
        };
        // `on` is the operator saying "this is vLLM >= 0.9" about a server that cannot be
        // asked; it has no meaning for Ollama, which builds its own request body.
        let salting = match (settings.salt_mode, support) {
            (SaltMode::Off, _) => false,
            (_, SaltSupport::Supported) => true,
            (SaltMode::On, SaltSupport::Unsupported) => {
                upstream.kind() == crate::config::UpstreamKind::OpenAi
            }
            _ => false,
        };
        let shared_cache = support != SaltSupport::NoSharedCache;
        let salts = salting.then(|| match &settings.salt_secret {
            Some(secret) => SaltDeriver::new(secret.clone()),
            None => SaltDeriver::random(),
        });
        Ok(Isolation {
            context,
            redis,
            salts,
            prefix_cache: PrefixCacheStatus {
                shared_cache,
                salting,
                isolated: salting || !shared_cache,
                policy: settings.unsalted.as_str(),
            },
            policy: settings.unsalted,
            context_max_chars: settings.context.max_chars,
            probes: Mutex::new(HashMap::new()),
            probe_cfg: PrefixProbeConfig::default(),
            pinned: Mutex::new(None),
            counters: Counters::default(),
        })
    }

    /// The start-up and `/health` warning when tenants could share the upstream's cache.
    pub fn warning(&self) -> Option<&'static str> {
        if self.prefix_cache.isolated {
            return None;
        }
        Some(match self.policy {
            UnsaltedPolicy::Refuse => {
                "the upstream's prefix cache cannot be isolated per tenant (no cache_salt support): \
                 serving a single tenant only (UNSALTED_UPSTREAM=refuse)"
            }
            UnsaltedPolicy::AcceptRisk => {
                "the upstream's prefix cache cannot be isolated per tenant (no cache_salt support): \
                 tenants may learn each other's prompts through response timing \
                 (UNSALTED_UPSTREAM=accept-risk)"
            }
        })
    }

    fn refusing(&self) -> bool {
        !self.prefix_cache.isolated && self.policy == UnsaltedPolicy::Refuse
    }

    /// Start-up check under `refuse`: more than one active tenant cannot be served.
    pub fn check_tenant_count(&self, active: usize) -> anyhow::Result<()> {
        if self.refusing() && active > 1 {
            anyhow::bail!(
                "UNSALTED_UPSTREAM=refuse: {active} active tenants share an upstream whose prefix cache \
                 cannot be isolated; revoke all but one, use an upstream that supports cache_salt \
                 (vLLM >= 0.9, PREFIX_CACHE_SALT=auto or on), or set UNSALTED_UPSTREAM=accept-risk"
            );
        }
        Ok(())
    }

    /// Admin check before creating a tenant.
    pub fn admit_new_tenant(&self, active: usize) -> Result<(), ApiError> {
        if self.refusing() && active >= 1 {
            return Err(ApiError::Conflict(
                "this gateway serves a single tenant: its upstream cannot isolate its prefix cache \
                 per tenant (UNSALTED_UPSTREAM=refuse)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Per-request check under `refuse`: the first tenant served is the only one served.
    pub fn admit(&self, tenant_id: &str) -> Result<(), ApiError> {
        if !self.refusing() {
            return Ok(());
        }
        let mut pinned = self
            .pinned
            .lock()
            .map_err(|_| ApiError::Internal("isolation state poisoned".into()))?;
        match pinned.as_deref() {
            None => {
                *pinned = Some(tenant_id.to_string());
                Ok(())
            }
            Some(t) if t == tenant_id => Ok(()),
            Some(_) => {
                self.counters
                    .refused_requests
                    .fetch_add(1, Ordering::Relaxed);
                Err(ApiError::Refused {
                    message:
                        "this gateway serves a single tenant: its upstream cannot isolate its \
                              prefix cache per tenant"
                            .into(),
                    code: "multi_tenant_refused",
                })
            }
        }
    }

    /// The tenant's `cache_salt`, when the gateway salts.
    pub fn salt_for(&self, tenant_id: &str) -> Option<String> {
        self.salts.as_ref().map(|d| d.salt(tenant_id))
    }

    pub fn observe_probe(
        &self,
        tenant_id: &str,
        prompt: &str,
        max_tokens: u32,
        now_ms: u64,
    ) -> ProbeObservation {
        if max_tokens > self.probe_cfg.max_tokens {
            return ProbeObservation::default();
        }
        let Ok(mut probes) = self.probes.lock() else {
            return ProbeObservation::default();
        };
        if !probes.contains_key(tenant_id) && probes.len() >= MAX_PROBE_WINDOWS {
            let cfg = self.probe_cfg;
            probes.retain(|_, w| !w.is_idle(now_ms, &cfg));
            if probes.len() >= MAX_PROBE_WINDOWS {
                // Still full: forget the windows rather than grow without bound.
                probes.clear();
            }
        }
        let obs = probes.entry(tenant_id.to_string()).or_default().observe(
            prompt,
            max_tokens,
            now_ms,
            &self.probe_cfg,
        );
        if obs.flagged {
            self.counters
                .prefix_probes_flagged
                .fetch_add(1, Ordering::Relaxed);
        }
        obs
    }

    pub(crate) fn count_cross_tenant_question(&self) {
        self.counters
            .cross_tenant_questions
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_context_failure(&self) {
        self.counters
            .context_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn context_max_chars(&self) -> usize {
        self.context_max_chars
    }

    /// Appends the isolation counters as OpenMetrics text (families without `_total`).
    pub fn render_prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        let c = &self.counters;
        let _ = writeln!(
            out,
            "# HELP secureinfer_isolation_events Tenant-isolation events: cross-tenant questions, prefix-cache probes, requests refused by UNSALTED_UPSTREAM, context-store failures, context records owned by another tenant.\n\
             # TYPE secureinfer_isolation_events counter"
        );
        let owner = self.context.as_ref().map_or(0, |c| c.owner_mismatches());
        for (kind, n) in [
            (
                "cross_tenant_question",
                c.cross_tenant_questions.load(Ordering::Relaxed),
            ),
            (
                "prefix_cache_probe",
                c.prefix_probes_flagged.load(Ordering::Relaxed),
            ),
            (
                "refused_unsalted",
                c.refused_requests.load(Ordering::Relaxed),
            ),
            (
                "context_failure",
                c.context_failures.load(Ordering::Relaxed),
            ),
            ("owner_mismatch", owner),
        ] {
            let _ = writeln!(
                out,
                "secureinfer_isolation_events_total{{kind=\"{kind}\"}} {n}"
            );
        }
    }

    /// Counters and state for operators (`GET /v1/security/isolation`, admin only).
    pub fn snapshot(&self) -> Value {
        let c = &self.counters;
        json!({
            "object": "security.isolation",
            "prefix_cache": self.prefix_cache,
            "warning": self.warning(),
            "context": {
                "enabled": self.context.is_some(),
                "backend": self.context.as_ref().map(|c| c.backend()),
                "owner_mismatches_total": self.context.as_ref().map_or(0, |c| c.owner_mismatches()),
                "failures_total": c.context_failures.load(Ordering::Relaxed),
            },
            "cross_tenant_questions_total": c.cross_tenant_questions.load(Ordering::Relaxed),
            "prefix_probes_flagged_total": c.prefix_probes_flagged.load(Ordering::Relaxed),
            "refused_requests_total": c.refused_requests.load(Ordering::Relaxed),
            "redis_pool": self.redis.as_ref().map(|p| p.stats()),
        })
    }
}
