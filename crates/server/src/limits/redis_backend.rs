//! The shared backend: the same checks as `memory`, run by versioned Lua scripts inside Redis
//! so that every replica enforces one limit. One script call (one round trip, EVALSHA) per
//! admission; Redis' clock, so replicas with skewed clocks still agree.
//!
//! The connection is a `redis::aio::ConnectionManager`, created lazily (the gateway starts
//! while Redis is down) and reconnecting by itself; every call is bounded by `REDIS_TIMEOUT`.

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::backend::{BackendError, LimitBackend, Settlement};
use super::check::{Check, Figures, LimitKind, Verdict};

/// Never-fits marker of `check.lua` (2^52).
const NEVER: i64 = 1 << 52;

pub struct RedisBackend {
    conn: ConnectionManager,
    timeout: Duration,
    lease_us: u64,
    check: Script,
    settle: Script,
    refresh: Script,
}

impl RedisBackend {
    /// Prepares the client without connecting. `url` is `redis://[:password@]host:port[/db]`.
    pub fn new(url: &str, timeout: Duration, lease: Duration) -> Result<Self, BackendError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // Reconnection is retried by the next call rather than inside this one: a request
            // must not wait out a backoff schedule.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisBackend {
            conn,
            timeout,
            lease_us: lease.as_micros() as u64,
            check: Script::new(include_str!("lua/check.lua")),
            settle: Script::new(include_str!("lua/settle.lua")),
            refresh: Script::new(include_str!("lua/refresh.lua")),
        })
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, BackendError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(BackendError::Timeout(self.timeout)),
        }
    }
}

fn kind_at(check: &Check, index: usize) -> LimitKind {
    match index.checked_sub(1).and_then(|i| check.spends.get(i)) {
        Some(spend) => spend.kind,
        None => LimitKind::Concurrency,
    }
}

/// Reads `check.lua`'s reply: `{refused, retry_after_us, remaining_1, reset_1, ...}`.
fn verdict(check: &Check, reply: &[i64]) -> Result<Verdict, BackendError> {
    if reply.len() != 2 + 2 * check.spends.len() {
        return Err(BackendError::Protocol(format!(
            "check.lua returned {} numbers for {} limits",
            reply.len(),
            check.spends.len()
        )));
    }
    let figures = check
        .spends
        .iter()
        .zip(reply[2..].chunks_exact(2))
        .map(|(spend, pair)| Figures {
            kind: spend.kind,
            limit: spend.quota.per_minute_rate(),
            remaining: pair[0].max(0) as u64,
            reset_us: pair[1].max(0) as u64,
        })
        .collect();
    let refused = reply[0].max(0) as usize;
    if refused == 0 {
        return Ok(Verdict::Admitted { figures });
    }
    let retry_after_us = if reply[1] >= NEVER {
        u64::MAX
    } else {
        reply[1].max(0) as u64
    };
    Ok(Verdict::Refused {
        kind: kind_at(check, refused),
        retry_after_us,
        figures,
    })
}

#[async_trait]
impl LimitBackend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn check(&self, check: &Check) -> Result<Verdict, BackendError> {
        let mut invocation = self.check.prepare_invoke();
        invocation.arg(check.spends.len());
        for spend in &check.spends {
            invocation
                .key(&spend.key)
                .arg(spend.quota.interval_us)
                .arg(spend.quota.burst)
                .arg(spend.cost);
        }
        match &check.slot {
            Some(slot) => {
                invocation
                    .key(&slot.key)
                    .arg(slot.cap)
                    .arg(&slot.id)
                    .arg(self.lease_us);
            }
            None => {
                invocation.arg(0).arg("").arg(0);
            }
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = self.bounded(invocation.invoke_async(&mut conn)).await?;
        verdict(check, &reply)
    }

    async fn settle(&self, s: &Settlement) -> Result<(), BackendError> {
        let mut invocation = self.settle.prepare_invoke();
        match &s.tokens {
            Some(t) => invocation.key(&t.key).arg(t.quota.interval_us).arg(t.delta),
            // Both keys must exist in the call; an unused one is never touched.
            None => invocation
                .key(format!("si:rl:v1:{{{}}}:unused", s.group))
                .arg(0)
                .arg(0),
        };
        match &s.release {
            Some(r) => invocation.key(&r.key).arg(&r.id),
            None => invocation
                .key(format!("si:rl:v1:{{{}}}:unused", s.group))
                .arg(""),
        };
        let mut conn = self.conn.clone();
        let _: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    async fn refresh(&self, _group: &str, slot_key: &str, id: &str) -> Result<(), BackendError> {
        let mut invocation = self.refresh.prepare_invoke();
        invocation.key(slot_key).arg(id).arg(self.lease_us);
        let mut conn = self.conn.clone();
        let _: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), BackendError> {
        let mut conn = self.conn.clone();
        let _: String = self
            .bounded(redis::cmd("PING").query_async(&mut conn))
            .await?;
        Ok(())
    }
}
