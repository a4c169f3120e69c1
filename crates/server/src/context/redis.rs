//! Redis context backend: one list per conversation, one JSON record per message.
//!
//! Appends run as one MULTI/EXEC (RPUSH, LTRIM to the cap, PEXPIRE), so concurrent turns of
//! a conversation never lose each other's messages and the list never outgrows the cap.
//! Every command goes through [`RedisPool`], which closes a connection whose command did not
//! complete instead of handing it to the next request.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{ContextBackend, ContextError, ConversationKey, StoredMessage};
use crate::redis_pool::RedisPool;

/// Longest stored record read back; anything longer is not ours and is skipped.
const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

pub struct RedisContext {
    pool: Arc<RedisPool>,
    ttl_ms: u64,
    max_messages: usize,
}

impl RedisContext {
    pub fn new(pool: Arc<RedisPool>, ttl: Duration, max_messages: usize) -> Self {
        RedisContext {
            pool,
            ttl_ms: ttl.as_millis().clamp(1, u64::MAX as u128) as u64,
            max_messages: max_messages.max(1),
        }
    }
}

#[async_trait]
impl ContextBackend for RedisContext {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn load(&self, key: &ConversationKey) -> Result<Vec<StoredMessage>, ContextError> {
        let raw: Vec<Vec<u8>> = self
            .pool
            .cmd(
                redis::cmd("LRANGE")
                    .arg(key.as_str())
                    .arg(-(self.max_messages as i64))
                    .arg(-1),
            )
            .await?;
        // A record that does not parse is treated like a foreign one: never shown. It keeps
        // its place so the caller's owner check counts it.
        Ok(raw
            .iter()
            .map(|r| {
                if r.len() > MAX_RECORD_BYTES {
                    return unreadable();
                }
                serde_json::from_slice(r).unwrap_or_else(|_| unreadable())
            })
            .collect())
    }

    async fn append(
        &self,
        key: &ConversationKey,
        records: &[StoredMessage],
    ) -> Result<(), ContextError> {
        let mut encoded = Vec::with_capacity(records.len());
        for r in records {
            encoded
                .push(serde_json::to_vec(r).map_err(|e| ContextError::Unavailable(e.to_string()))?);
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("RPUSH")
            .arg(key.as_str())
            .arg(encoded)
            .ignore()
            .cmd("LTRIM")
            .arg(key.as_str())
            .arg(-(self.max_messages as i64))
            .arg(-1)
            .ignore()
            .cmd("PEXPIRE")
            .arg(key.as_str())
            .arg(self.ttl_ms)
            .ignore();
        let () = self.pool.pipeline(&pipe).await?;
        Ok(())
    }

    async fn delete(&self, key: &ConversationKey) -> Result<bool, ContextError> {
        let n: i64 = self.pool.cmd(redis::cmd("DEL").arg(key.as_str())).await?;
        Ok(n > 0)
    }
}

/// A record that fails every owner check.
fn unreadable() -> StoredMessage {
    StoredMessage {
        v: 0,
        tenant: String::new(),
        key: String::new(),
        role: String::new(),
        content: String::new(),
        at_ms: 0,
    }
}
