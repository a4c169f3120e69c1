//! Extraction state shared by replicas through Redis (`REDIS_URL`).
//!
//! Each tenant has one Redis stream, its query log: one entry per observed request holding the
//! query's features (hashes and counts, never text; `QueryFeatures::to_bytes`) and the token
//! ids of its accepted `logit_bias`. One script call per request appends the new entry (with
//! Redis' clock as its id), trims what left the window and returns every entry this replica has
//! not yet seen, its own last. The replica replays them, in log order, into its own copy of the
//! tenant's window. Since every replica replays the same log in the same order with the same
//! detector, all replicas hold the same window, and the assessment of a query is the one a
//! single shared window would give. A replica meeting a tenant for the first time reads the
//! whole window once (at most `EXTRACTION_MAX_ENTRIES` entries).
//!
//! The logprob budget is one counter per tenant and UTC day (`INCRBY`, two-day expiry).
//! When Redis does not answer within `REDIS_TIMEOUT`, the replica falls back to its own
//! in-process state for that request (logged), and rejoins the shared log afterwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secureinfer_guard::extraction::{
    BudgetReport, ExtractionDetector, LogprobBudget, QueryFeatures,
};

use super::state::{LocalState, Observed, Snapshot, TenantState, lock};
use super::unix_ms;

/// Appends one entry and returns the entries after the replica's cursor, up to and including
/// the new one. KEYS[1] = the tenant's log; ARGV = features, logit-bias ids, cursor ('' for
/// none), window in ms, most entries kept.
const OBSERVE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local oldest = now - tonumber(ARGV[4])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'f', ARGV[1], 'b', ARGV[2])
redis.call('XTRIM', KEYS[1], 'MINID', '~', oldest)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local start = tostring(oldest)
local cursor_ms = tonumber(string.match(ARGV[3], '^(%d+)'))
if cursor_ms and cursor_ms >= oldest then start = '(' .. ARGV[3] end
return redis.call('XRANGE', KEYS[1], start, id)
"#;

/// Like OBSERVE without appending: returns Redis' time in ms and the unseen entries.
const READ: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local oldest = now - tonumber(ARGV[2])
local start = tostring(oldest)
local cursor_ms = tonumber(string.match(ARGV[1], '^(%d+)'))
if cursor_ms and cursor_ms >= oldest then start = '(' .. ARGV[1] end
return {now, redis.call('XRANGE', KEYS[1], start, '+')}
"#;

/// How often replicas of idle tenants are dropped (they are rebuilt from the log on demand).
const SWEEP_EVERY_MS: u64 = 60_000;

/// This replica's copy of one tenant's window and how far into the log it has read.
struct Replica {
    state: TenantState,
    cursor: String,
    last_used_ms: u64,
}

pub struct SharedState {
    conn: ConnectionManager,
    timeout: Duration,
    window_ms: u64,
    max_entries: usize,
    observe: Script,
    read: Script,
    tenants: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Replica>>>>,
    last_sweep_ms: Mutex<u64>,
    /// Used while Redis does not answer.
    fallback: LocalState,
}

/// Keys carry the tenant in braces (one Redis Cluster slot per tenant) and a version, so a
/// changed entry format never reads entries of an older one.
fn key(tenant_id: &str, what: &str) -> String {
    format!("si:ext:v1:{{{tenant_id}}}:{what}")
}

struct Entry {
    id: String,
    ms: u64,
    features: QueryFeatures,
    bias: Vec<String>,
}

fn bytes(v: &redis::Value) -> Option<&[u8]> {
    match v {
        redis::Value::BulkString(b) => Some(b),
        redis::Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// Reads XRANGE's reply: `[[id, [field, value, ...]], ...]`. Entries that do not decode (a
/// foreign or corrupted entry) are skipped, never misread.
fn entries(v: &redis::Value) -> Vec<Entry> {
    let redis::Value::Array(items) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let redis::Value::Array(pair) = item else {
                return None;
            };
            let id = std::str::from_utf8(bytes(pair.first()?)?).ok()?.to_string();
            let ms = id.split('-').next()?.parse().ok()?;
            let redis::Value::Array(fields) = pair.get(1)? else {
                return None;
            };
            let (mut features, mut bias) = (None, Vec::new());
            for kv in fields.chunks(2) {
                match (kv.first().and_then(bytes), kv.get(1).and_then(bytes)) {
                    (Some(b"f"), Some(v)) => features = QueryFeatures::from_bytes(v),
                    (Some(b"b"), Some(v)) => {
                        bias = std::str::from_utf8(v)
                            .unwrap_or("")
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect();
                    }
                    _ => {}
                }
            }
            Some(Entry {
                id,
                ms,
                features: features?,
                bias,
            })
        })
        .collect()
}

impl SharedState {
    /// Prepares the client without connecting (the gateway starts while Redis is down).
    pub fn new(
        url: &str,
        timeout: Duration,
        window_ms: u64,
        max_entries: usize,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(SharedState {
            conn,
            timeout,
            window_ms,
            max_entries,
            observe: Script::new(OBSERVE),
            read: Script::new(READ),
            tenants: Mutex::new(HashMap::new()),
            last_sweep_ms: Mutex::new(0),
            fallback: LocalState::default(),
        })
    }

    fn replica(&self, tenant_id: &str) -> Arc<tokio::sync::Mutex<Replica>> {
        self.sweep(unix_ms());
        let mut map = lock(&self.tenants);
        map.entry(tenant_id.to_string())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Replica {
                    state: TenantState::new(),
                    cursor: String::new(),
                    last_used_ms: 0,
                }))
            })
            .clone()
    }

    /// Drops the copies of tenants idle for longer than the window: the log rebuilds them.
    fn sweep(&self, now_ms: u64) {
        {
            let mut last = lock(&self.last_sweep_ms);
            if now_ms.saturating_sub(*last) < SWEEP_EVERY_MS {
                return;
            }
            *last = now_ms;
        }
        let window_ms = self.window_ms;
        lock(&self.tenants).retain(|_, r| match r.try_lock() {
            Ok(r) => now_ms.saturating_sub(r.last_used_ms) <= window_ms,
            Err(_) => true,
        });
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    pub async fn observe(
        &self,
        det: &ExtractionDetector,
        tenant_id: &str,
        features: &QueryFeatures,
        logit_bias_ids: &[String],
    ) -> Observed {
        let replica = self.replica(tenant_id);
        // One request per tenant and replica at a time: the log is replayed in order.
        let mut r = replica.lock().await;
        let mut conn = self.conn.clone();
        let mut inv = self.observe.key(key(tenant_id, "log"));
        inv.arg(features.to_bytes())
            .arg(logit_bias_ids.join(","))
            .arg(&r.cursor)
            .arg(self.window_ms)
            .arg(self.max_entries);
        let reply: Result<redis::Value, String> = self.bounded(inv.invoke_async(&mut conn)).await;
        let reply = match reply {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "extraction: Redis unavailable; this request is judged on this replica's own state");
                return self
                    .fallback
                    .observe(det, tenant_id, unix_ms(), features, logit_bias_ids);
            }
        };
        let mut last = None;
        for e in entries(&reply) {
            last = Some(r.state.apply(det, e.ms, &e.features, &e.bias));
            r.last_used_ms = e.ms;
            r.cursor = e.id;
        }
        // The script always returns the new entry last; a reply without it is a protocol fault.
        last.unwrap_or_else(|| {
            tracing::warn!("extraction: Redis reply held no entries; judged locally");
            self.fallback
                .observe(det, tenant_id, unix_ms(), features, logit_bias_ids)
        })
    }

    pub async fn snapshot(
        &self,
        det: &ExtractionDetector,
        tenant_id: &str,
        budget_limit: u64,
    ) -> Snapshot {
        let replica = self.replica(tenant_id);
        let mut r = replica.lock().await;
        let mut conn = self.conn.clone();
        let mut inv = self.read.key(key(tenant_id, "log"));
        inv.arg(&r.cursor).arg(self.window_ms);
        let reply: Result<(i64, redis::Value), String> =
            self.bounded(inv.invoke_async(&mut conn)).await;
        let (now, shared) = match reply {
            Ok((now, list)) => {
                for e in entries(&list) {
                    r.state.apply(det, e.ms, &e.features, &e.bias);
                    r.cursor = e.id;
                }
                (u64::try_from(now).unwrap_or(0), true)
            }
            Err(e) => {
                tracing::warn!(error = %e, "extraction: Redis unavailable; status from this replica");
                return self
                    .fallback
                    .snapshot(det, tenant_id, unix_ms(), budget_limit);
            }
        };
        let (assessment, queries) = r.state.snapshot(det, now);
        drop(r);
        Snapshot {
            assessment,
            queries,
            budget: self.charge(tenant_id, now, 0, budget_limit).await,
            shared,
        }
    }

    pub async fn charge(
        &self,
        tenant_id: &str,
        now_ms: u64,
        cost: u64,
        limit: u64,
    ) -> BudgetReport {
        let k = key(tenant_id, &format!("lp:{}", now_ms / 86_400_000));
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic().incr(&k, cost).expire(&k, 2 * 86_400).ignore();
        let reply: Result<(u64,), String> = self.bounded(pipe.query_async(&mut conn)).await;
        match reply {
            Ok((used,)) => LogprobBudget::report(used.saturating_sub(cost), used, limit),
            Err(e) => {
                tracing::warn!(error = %e, "extraction: Redis unavailable; logprob budget counted on this replica");
                self.fallback.charge(tenant_id, now_ms, cost, limit)
            }
        }
    }
}
