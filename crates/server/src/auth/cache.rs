//! A short-lived cache of API-key records. Without it every authenticated request waits for
//! a database round trip before anything else can happen; on SQLite that hand-off to the
//! connection's worker thread and back was the largest part of the gateway's own latency.
//!
//! Bounded staleness, not invalidation by message: a replica learns of a revocation or
//! rotation made on another replica when its entry expires (`AUTH_CACHE_TTL`, default 1 s).
//! Changes made through this replica's admin API clear the cache at once. Only keys the
//! database knows are cached, so guessing key ids cannot grow it past the number of keys.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::store::{KeyRecord, Store, StoreError};

/// More cached keys than this and the cache starts over: a deployment with more live keys
/// pays one lookup per key per TTL, which is still bounded.
const MAX_ENTRIES: usize = 50_000;

#[derive(Debug)]
pub struct KeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, KeyRecord)>>,
}

impl KeyCache {
    /// `ttl` zero turns caching off.
    pub fn new(ttl: Duration) -> Self {
        KeyCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, (Instant, KeyRecord)>> {
        // A panic while holding the lock cannot leave a half-written entry behind (inserts
        // and removals are single calls), so a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn lookup(
        &self,
        store: &dyn Store,
        key_id: &str,
    ) -> Result<Option<KeyRecord>, StoreError> {
        if self.ttl.is_zero() {
            return store.lookup_key(key_id).await;
        }
        let now = Instant::now();
        if let Some((at, rec)) = self.entries().get(key_id)
            && now.duration_since(*at) < self.ttl
        {
            return Ok(Some(rec.clone()));
        }
        let found = store.lookup_key(key_id).await?;
        if let Some(rec) = &found {
            let mut map = self.entries();
            if map.len() >= MAX_ENTRIES {
                map.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
                if map.len() >= MAX_ENTRIES {
                    map.clear();
                }
            }
            map.insert(key_id.to_owned(), (now, rec.clone()));
        }
        Ok(found)
    }

    /// Forgets every entry: called after any change to tenants or keys through this replica.
    pub fn clear(&self) {
        self.entries().clear();
    }
}
