//! Abuse limits: per-IP and per-tenant request rates, tenant token budgets and concurrency caps.
//!
//! - `gcra`, `check`: the algorithm and the all-or-nothing admission rule, pure (no I/O, no clock).
//! - `backend`: the trait; `memory` (in-process, the default) and `redis_backend` (shared by all
//!   replicas, Lua scripts in `lua/`) implement it with the same arithmetic.
//! - `client_ip`: whose address a request is, behind trusted proxies only.
//! - `tokens`: prompt token counting for reservations; `ticket`: settling a chat request.
//! - `http`: the two middlewares and the 429s; `headers`: `X-RateLimit-*` on every response.
//!
//! [`Limiter`] puts them together and applies the Redis failure policy.

pub mod backend;
pub mod check;
pub mod client_ip;
pub mod gcra;
pub mod headers;
pub mod http;
mod memory;
mod redis_backend;
mod stats;
mod ticket;
pub mod tokens;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::auth::TenantCtx;
use crate::config::{RateLimitSettings, RedisFailure};
use crate::error::ApiError;
use crate::openai::ValidatedChat;
pub use backend::{BackendError, LimitBackend, Settlement};
pub use check::{Check, Figures, LimitKind, Slot, Spend, Verdict};
use gcra::Quota;
pub use memory::MemoryBackend;
pub use redis_backend::RedisBackend;
pub use stats::Stats;
pub use ticket::Ticket;
use ticket::{Reservation, Via};

/// Prompts longer than this are counted on the blocking pool, off the async workers.
const INLINE_COUNT_BYTES: usize = 16 * 1024;
/// After a Redis failure, requests skip Redis (and take the failure policy at once) for this
/// long before one tries again: a dead Redis must not add its timeout to every request.
const REDIS_RETRY_AFTER: Duration = Duration::from_millis(500);
/// A concurrency slot in Redis is a lease of this length, renewed while its request runs, so a
/// replica that dies holding slots frees them within this time.
pub const SLOT_LEASE: Duration = Duration::from_secs(30);

/// Why a request was refused, with what the client needs to back off correctly.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: LimitKind,
    /// `None`: the request can never fit (it needs more tokens than the whole budget).
    pub retry_after: Option<Duration>,
    pub figures: Vec<Figures>,
    pub message: String,
}

impl Refusal {
    /// The error `code`: it says which limit was hit.
    pub fn code(&self) -> &'static str {
        match (self.kind, self.retry_after) {
            (LimitKind::Tokens, None) => "request_exceeds_token_limit",
            (LimitKind::Ip, _) => "ip_rate_limit_exceeded",
            (LimitKind::Requests, _) => "rate_limit_exceeded",
            (LimitKind::Tokens, _) => "token_rate_limit_exceeded",
            (LimitKind::Concurrency, _) => "concurrency_limit_exceeded",
        }
    }

    /// What `Retry-After` says. A request that can never fit gets a minute, so that generic
    /// clients that retry every 429 at least do it slowly; its message says to shrink it.
    pub fn wait(&self) -> Duration {
        self.retry_after.unwrap_or(Duration::from_secs(60))
    }
}

struct Shared {
    backend: RedisBackend,
    /// Monotonic µs before which Redis is not tried again after a failure.
    retry_at_us: AtomicU64,
}

pub struct Limiter {
    settings: RateLimitSettings,
    local: MemoryBackend,
    shared: Option<Shared>,
    stats: Stats,
    epoch: Instant,
}

fn tenant_group(id: &str) -> String {
    format!("t:{id}")
}

/// Keys carry their group in braces (a Redis Cluster hash tag: one slot per group) and the
/// script version, so a changed script never reads state written by an older one.
fn key(group: &str, what: &str) -> String {
    format!("si:rl:v1:{{{group}}}:{what}")
}

impl Limiter {
    /// Builds the limiter. Redis is connected lazily: the gateway starts while Redis is down.
    pub fn new(settings: RateLimitSettings) -> Result<Arc<Limiter>, BackendError> {
        let shared = match &settings.redis_url {
            Some(url) => {
                use secrecy::ExposeSecret;
                let backend =
                    RedisBackend::new(url.expose_secret(), settings.redis_timeout, SLOT_LEASE)?;
                Some(Shared {
                    backend,
                    retry_at_us: AtomicU64::new(0),
                })
            }
            None => None,
        };
        let uses_tokens = settings.tenant.tpm > 0 || settings.tiers.values().any(|t| t.tpm > 0);
        if uses_tokens {
            tokens::warm_up();
        }
        let stats = Stats::default();
        stats.set_redis_up(shared.is_some());
        Ok(Arc::new(Limiter {
            settings,
            local: MemoryBackend::default(),
            shared,
            stats,
            epoch: Instant::now(),
        }))
    }

    pub fn settings(&self) -> &RateLimitSettings {
        &self.settings
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn backend_name(&self) -> &'static str {
        if self.shared.is_some() {
            "redis"
        } else {
            "memory"
        }
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Runs a check on Redis when configured and reachable, else as the failure policy says.
    async fn run(&self, check: &Check) -> Result<(Verdict, Via), ApiError> {
        let Some(shared) = &self.shared else {
            return Ok((self.local.check_now(check), Via::Local));
        };
        if self.now_us() >= shared.retry_at_us.load(Ordering::Relaxed) {
            match shared.backend.check(check).await {
                Ok(verdict) => {
                    self.redis_ok();
                    return Ok((verdict, Via::Shared));
                }
                Err(e) => self.redis_failed(&e),
            }
        }
        let policy = self.settings.redis_failure;
        self.stats.fallback(policy);
        match policy {
            RedisFailure::Closed => Err(ApiError::LimiterUnavailable),
            RedisFailure::Open => Ok((Verdict::Admitted { figures: vec![] }, Via::Unlimited)),
            RedisFailure::Local => Ok((self.local.check_now(check), Via::Local)),
        }
    }

    fn redis_ok(&self) {
        if !self.stats.set_redis_up(true) {
            tracing::info!("redis reachable again: limits are shared across replicas");
        }
    }

    fn redis_failed(&self, error: &BackendError) {
        self.stats.redis_error();
        if let Some(shared) = &self.shared {
            let retry = self.now_us() + REDIS_RETRY_AFTER.as_micros() as u64;
            shared.retry_at_us.store(retry, Ordering::Relaxed);
        }
        if self.stats.set_redis_up(false) {
            tracing::warn!(
                error = %error,
                policy = self.settings.redis_failure.as_str(),
                "redis unreachable: applying RATE_LIMIT_REDIS_FAILURE until it answers again"
            );
        }
    }

    async fn settle(&self, via: Via, s: Settlement) {
        match via {
            Via::Local => self.local.settle_now(&s),
            Via::Shared => {
                if let Some(shared) = &self.shared
                    && let Err(e) = shared.backend.settle(&s).await
                {
                    // The slot's lease frees it later; the token refund is lost (the tenant
                    // was charged its reservation, never less than it used).
                    self.redis_failed(&e);
                }
            }
            Via::Unlimited => {}
        }
    }

    fn refusal(
        &self,
        verdict: Verdict,
        message: impl FnOnce(LimitKind, &[Figures]) -> String,
    ) -> Result<Vec<Figures>, ApiError> {
        match verdict {
            Verdict::Admitted { figures } => {
                headers::record(&figures);
                Ok(figures)
            }
            Verdict::Refused {
                kind,
                retry_after_us,
                figures,
            } => {
                headers::record(&figures);
                self.stats.refused(kind);
                let retry_after =
                    (retry_after_us != u64::MAX).then(|| Duration::from_micros(retry_after_us));
                Err(ApiError::RateLimited(Box::new(Refusal {
                    kind,
                    retry_after,
                    message: message(kind, &figures),
                    figures,
                })))
            }
        }
    }

    /// The per-IP limit, before authentication. Returns the figures for the headers.
    pub async fn check_ip(&self, ip: IpAddr) -> Result<Vec<Figures>, ApiError> {
        let s = &self.settings;
        let Some(quota) = Quota::per_minute(s.ip_rpm, s.ip_burst) else {
            return Ok(Vec::new());
        };
        let group = format!("ip:{}", client_ip::limit_key(ip));
        let check = Check {
            spends: vec![Spend {
                kind: LimitKind::Ip,
                key: key(&group, "requests"),
                quota,
                cost: 1,
            }],
            group,
            slot: None,
        };
        let (verdict, _) = self.run(&check).await?;
        self.refusal(verdict, |_, _| {
            format!(
                "too many requests from your address: the limit is {} per minute with bursts of {}",
                s.ip_rpm, s.ip_burst
            )
        })
    }

    /// The tenant's request limit, for every authenticated route but chat completions (which
    /// admit requests, tokens and concurrency in one step, see [`Limiter::admit_chat`]).
    pub async fn check_tenant(&self, tenant: &TenantCtx) -> Result<Vec<Figures>, ApiError> {
        let limits = self.settings.for_tier(tenant.rate_limit_tier.as_deref());
        let Some(quota) = Quota::per_minute(limits.rpm, limits.burst) else {
            return Ok(Vec::new());
        };
        let group = tenant_group(&tenant.id);
        let check = Check {
            spends: vec![Spend {
                kind: LimitKind::Requests,
                key: key(&group, "requests"),
                quota,
                cost: 1,
            }],
            group,
            slot: None,
        };
        let (verdict, _) = self.run(&check).await?;
        self.refusal(verdict, |_, _| requests_message(limits.rpm, limits.burst))
    }

    /// Admits a chat request: one request, its tokens (prompt + max_tokens × n) and a
    /// concurrency slot, all or nothing. The ticket settles the reservation when the request ends.
    pub async fn admit_chat(
        self: &Arc<Self>,
        tenant: &TenantCtx,
        chat: &ValidatedChat,
    ) -> Result<Ticket, ApiError> {
        let limits = self.settings.for_tier(tenant.rate_limit_tier.as_deref());
        let group = tenant_group(&tenant.id);
        let mut spends = Vec::with_capacity(2);
        if let Some(quota) = Quota::per_minute(limits.rpm, limits.burst) {
            spends.push(Spend {
                kind: LimitKind::Requests,
                key: key(&group, "requests"),
                quota,
                cost: 1,
            });
        }
        let mut reservation = None;
        // A minute's worth of tokens may be spent at once: the budget is per minute.
        if let Some(quota) = Quota::per_minute(limits.tpm, limits.tpm) {
            let prompt = count_prompt(chat).await;
            let choices = u64::from(chat.typed.n.unwrap_or(1).max(1));
            let cost = prompt + u64::from(chat.max_tokens) * choices;
            spends.push(Spend {
                kind: LimitKind::Tokens,
                key: key(&group, "tokens"),
                quota,
                cost,
            });
            reservation = Some(Reservation {
                key: key(&group, "tokens"),
                quota,
                reserved: cost,
                prompt_estimate: prompt,
            });
        }
        let slot = (limits.max_concurrent > 0).then(|| Slot {
            key: key(&group, "inflight"),
            cap: limits.max_concurrent,
            id: uuid::Uuid::now_v7().simple().to_string(),
        });
        if spends.is_empty() && slot.is_none() {
            return Ok(Ticket::new(
                self.clone(),
                Via::Unlimited,
                group,
                None,
                None,
                None,
            ));
        }
        let check = Check {
            group: group.clone(),
            spends,
            slot: slot.clone(),
        };
        let (verdict, via) = self.run(&check).await?;
        let cost = reservation.as_ref().map_or(0, |r| r.reserved);
        self.refusal(verdict, |kind, figures| match kind {
            LimitKind::Tokens => {
                let remaining = figures
                    .iter()
                    .find(|f| f.kind == LimitKind::Tokens)
                    .map_or(0, |f| f.remaining);
                if cost > limits.tpm {
                    format!(
                        "this request needs {cost} tokens (prompt + max_tokens × n), more than the whole budget of {} tokens per minute: lower max_tokens or shorten the prompt",
                        limits.tpm
                    )
                } else {
                    format!(
                        "token rate limit reached: this request needs {cost} tokens (prompt + max_tokens × n) and {remaining} of {} per minute are left",
                        limits.tpm
                    )
                }
            }
            LimitKind::Concurrency => format!(
                "too many requests in flight: this API key may have {} at once",
                limits.max_concurrent
            ),
            _ => requests_message(limits.rpm, limits.burst),
        })?;
        let release = slot.map(|s| backend::SlotRelease {
            key: s.key,
            id: s.id,
        });
        let lease = match (&release, via) {
            (Some(r), Via::Shared) => Some(self.keep_lease(&group, r)),
            _ => None,
        };
        Ok(Ticket::new(
            self.clone(),
            via,
            group,
            reservation,
            release,
            lease,
        ))
    }

    /// Renews a Redis slot lease until the returned guard is dropped.
    fn keep_lease(
        self: &Arc<Self>,
        group: &str,
        slot: &backend::SlotRelease,
    ) -> tokio_util::sync::DropGuard {
        let token = CancellationToken::new();
        let stop = token.clone();
        let limiter = self.clone();
        let (group, key, id) = (group.to_string(), slot.key.clone(), slot.id.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SLOT_LEASE / 3);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = every.tick() => {
                        if let Some(shared) = &limiter.shared
                            && let Err(e) = shared.backend.refresh(&group, &key, &id).await
                        {
                            limiter.redis_failed(&e);
                        }
                    }
                }
            }
        });
        token.drop_guard()
    }

    /// For `/health`: `None` without Redis, else whether it answers a PING now.
    pub async fn redis_reachable(&self) -> Option<bool> {
        let shared = self.shared.as_ref()?;
        let ok = shared.backend.ping().await.is_ok();
        if ok {
            self.redis_ok();
            shared.retry_at_us.store(0, Ordering::Relaxed);
        }
        Some(ok)
    }

    /// Requests of a tenant in flight on this replica's in-process backend.
    pub fn local_in_flight(&self, tenant_id: &str) -> u64 {
        let group = tenant_group(tenant_id);
        self.local.in_flight(&group, &key(&group, "inflight"))
    }
}

fn requests_message(rpm: u64, burst: u64) -> String {
    format!(
        "rate limit reached: this API key may send {rpm} requests per minute with bursts of {burst}"
    )
}

async fn count_prompt(chat: &ValidatedChat) -> u64 {
    let bytes: usize = chat.typed.messages.iter().map(|m| m.char_count()).sum();
    if bytes <= INLINE_COUNT_BYTES {
        return tokens::prompt_tokens(&chat.typed.messages);
    }
    let messages = chat.typed.messages.clone();
    match tokio::task::spawn_blocking(move || tokens::prompt_tokens(&messages)).await {
        Ok(n) => n,
        Err(_) => tokens::prompt_tokens(&chat.typed.messages),
    }
}
