//! Counters of the limiter: refusals by limit, Redis errors, and decisions taken by the Redis
//! failure policy. Plain atomics, rendered in Prometheus text format for `/metrics` and shown
//! in `/health`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::{Value, json};

use super::check::LimitKind;
use crate::config::RedisFailure;

#[derive(Default)]
pub struct Stats {
    refused: [AtomicU64; 4],
    redis_errors: AtomicU64,
    fallback: [AtomicU64; 3],
    redis_up: AtomicBool,
}

fn kind_index(kind: LimitKind) -> usize {
    match kind {
        LimitKind::Ip => 0,
        LimitKind::Requests => 1,
        LimitKind::Tokens => 2,
        LimitKind::Concurrency => 3,
    }
}

fn policy_index(policy: RedisFailure) -> usize {
    match policy {
        RedisFailure::Closed => 0,
        RedisFailure::Open => 1,
        RedisFailure::Local => 2,
    }
}

const POLICIES: [RedisFailure; 3] = [
    RedisFailure::Closed,
    RedisFailure::Open,
    RedisFailure::Local,
];

impl Stats {
    pub fn refused(&self, kind: LimitKind) {
        self.refused[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn redis_error(&self) {
        self.redis_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fallback(&self, policy: RedisFailure) {
        self.fallback[policy_index(policy)].fetch_add(1, Ordering::Relaxed);
    }

    /// Records Redis' state; returns the previous one (to log transitions only).
    pub fn set_redis_up(&self, up: bool) -> bool {
        self.redis_up.swap(up, Ordering::Relaxed)
    }

    pub fn redis_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    pub fn refused_total(&self, kind: LimitKind) -> u64 {
        self.refused[kind_index(kind)].load(Ordering::Relaxed)
    }

    pub fn json(&self) -> Value {
        let refused: serde_json::Map<String, Value> = LimitKind::ALL
            .iter()
            .map(|k| (k.as_str().to_string(), json!(self.refused_total(*k))))
            .collect();
        let fallback: serde_json::Map<String, Value> = POLICIES
            .iter()
            .map(|p| {
                (
                    p.as_str().to_string(),
                    json!(self.fallback[policy_index(*p)].load(Ordering::Relaxed)),
                )
            })
            .collect();
        json!({
            "refused_total": refused,
            "redis_errors_total": self.redis_errors.load(Ordering::Relaxed),
            "redis_fallback_total": fallback,
        })
    }

    /// Appends the counters as OpenMetrics text (counter families are named without
    /// `_total`, their samples with it).
    pub fn render_prometheus(&self, out: &mut String, redis_configured: bool) {
        let _ = writeln!(
            out,
            "# HELP secureinfer_rate_limit_refused Requests refused by an abuse limit, by limit.\n\
             # TYPE secureinfer_rate_limit_refused counter"
        );
        for kind in LimitKind::ALL {
            let _ = writeln!(
                out,
                "secureinfer_rate_limit_refused_total{{limit=\"{}\"}} {}",
                kind.as_str(),
                self.refused_total(kind)
            );
        }
        let _ = writeln!(
            out,
            "# HELP secureinfer_rate_limit_redis_errors Redis calls of the limiter that failed or timed out.\n\
             # TYPE secureinfer_rate_limit_redis_errors counter\n\
             secureinfer_rate_limit_redis_errors_total {}",
            self.redis_errors.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP secureinfer_rate_limit_redis_fallback Limit decisions taken by RATE_LIMIT_REDIS_FAILURE while Redis was unreachable.\n\
             # TYPE secureinfer_rate_limit_redis_fallback counter"
        );
        for p in POLICIES {
            let _ = writeln!(
                out,
                "secureinfer_rate_limit_redis_fallback_total{{policy=\"{}\"}} {}",
                p.as_str(),
                self.fallback[policy_index(p)].load(Ordering::Relaxed)
            );
        }
        if redis_configured {
            let _ = writeln!(
                out,
                "# HELP secureinfer_rate_limit_redis_up Whether the limiter's last Redis call succeeded.\n\
                 # TYPE secureinfer_rate_limit_redis_up gauge\n\
                 secureinfer_rate_limit_redis_up {}",
                u8::from(self.redis_up())
            );
        }
    }
}
