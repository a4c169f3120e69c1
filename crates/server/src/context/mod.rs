//! Server-side conversation context, isolated per tenant (the seed's `GetIsolatedContext`).
//!
//! A client that sends `X-Conversation-ID` gets the earlier turns of that conversation put in
//! front of its new messages, and the new turn saved after the answer. The tenant part of
//! every key comes from the API key, never from the request, so a request can only ever
//! name its own tenant's conversations: tenant B sending A's conversation id reads and
//! writes B's conversation of that name.
//!
//! Defence in depth: each stored message also carries its owner tenant and the full key it
//! was written under. Reads check both; a message that fails the check (a bug, a
//! misconfigured shared Redis, a key collision) is dropped, counted, logged and recorded as a
//! security event instead of being shown to the wrong tenant.

mod memory;
mod redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use memory::MemoryContext;
pub use redis::RedisContext;

use crate::redis_pool::PoolError;

/// Longest accepted conversation id.
pub const MAX_CONVERSATION_ID: usize = 128;
/// Stored-record format version.
const RECORD_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("the context store is unavailable: {0}")]
    Unavailable(String),
}

impl From<PoolError> for ContextError {
    fn from(e: PoolError) -> Self {
        ContextError::Unavailable(e.to_string())
    }
}

/// Checks a client-chosen conversation id: 1-128 characters of `A-Z a-z 0-9 . _ : -`.
pub fn valid_conversation_id(id: &str) -> bool {
    (1..=MAX_CONVERSATION_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A conversation's storage key. Built only from the authenticated tenant id and a
/// validated conversation id, with both fields length-prefixed: no (tenant, id) pair can
/// produce another pair's key, whatever characters they contain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConversationKey {
    tenant_id: String,
    conversation_id: String,
    key: String,
}

impl ConversationKey {
    pub fn new(tenant_id: &str, conversation_id: &str) -> Self {
        ConversationKey {
            tenant_id: tenant_id.to_string(),
            conversation_id: conversation_id.to_string(),
            key: format!(
                "si:ctx:v1:{}:{}:{}:{}",
                tenant_id.len(),
                tenant_id,
                conversation_id.len(),
                conversation_id
            ),
        }
    }

    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    pub fn conversation_id(&self) -> &str {
        &self.conversation_id
    }

    /// The storage key, e.g. `si:ctx:v1:36:<tenant uuid>:7:support`.
    pub fn as_str(&self) -> &str {
        &self.key
    }
}

/// One stored message, with its owner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredMessage {
    pub v: u8,
    /// The tenant that wrote it.
    pub tenant: String,
    /// The key it was written under.
    pub key: String,
    pub role: String,
    pub content: String,
    pub at_ms: i64,
}

impl StoredMessage {
    pub fn new(key: &ConversationKey, role: &str, content: String, at_ms: i64) -> Self {
        StoredMessage {
            v: RECORD_VERSION,
            tenant: key.tenant_id.clone(),
            key: key.key.clone(),
            role: role.to_string(),
            content,
            at_ms,
        }
    }

    fn owned_by(&self, key: &ConversationKey) -> bool {
        // Not secret material: plain comparison is fine.
        self.v == RECORD_VERSION && self.tenant == key.tenant_id && self.key == key.key
    }
}

/// A storage backend. It stores and returns records; ownership is checked by [`Context`],
/// the same way for every backend.
#[async_trait]
pub trait ContextBackend: Send + Sync {
    fn name(&self) -> &'static str;
    /// The stored records of `key`, oldest first (at most the configured message cap).
    async fn load(&self, key: &ConversationKey) -> Result<Vec<StoredMessage>, ContextError>;
    /// Appends records, drops the oldest beyond the cap, and renews the TTL — atomically.
    async fn append(
        &self,
        key: &ConversationKey,
        records: &[StoredMessage],
    ) -> Result<(), ContextError>;
    /// Deletes the conversation; true if it existed.
    async fn delete(&self, key: &ConversationKey) -> Result<bool, ContextError>;
}

/// What a read found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub messages: Vec<StoredMessage>,
    /// Records that failed the owner check and were dropped.
    pub foreign: usize,
}

/// The context store the gateway uses: a backend plus the owner check and its counter.
pub struct Context {
    backend: Arc<dyn ContextBackend>,
    owner_mismatches: AtomicU64,
    max_chars: usize,
}

impl Context {
    pub fn new(backend: Arc<dyn ContextBackend>, max_chars: usize) -> Self {
        Context {
            backend,
            owner_mismatches: AtomicU64::new(0),
            max_chars,
        }
    }

    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// Records dropped by the owner check since start-up.
    pub fn owner_mismatches(&self) -> u64 {
        self.owner_mismatches.load(Ordering::Relaxed)
    }

    /// The conversation's messages that belong to it, newest kept when the history is
    /// longer than the character cap.
    pub async fn load(&self, key: &ConversationKey) -> Result<Loaded, ContextError> {
        let records = self.backend.load(key).await?;
        let total = records.len();
        let mut own: Vec<StoredMessage> = records.into_iter().filter(|r| r.owned_by(key)).collect();
        let foreign = total - own.len();
        if foreign > 0 {
            self.owner_mismatches
                .fetch_add(foreign as u64, Ordering::Relaxed);
        }
        // Keep the newest messages that fit the character cap.
        let mut chars = 0usize;
        let mut keep_from = own.len();
        for (i, m) in own.iter().enumerate().rev() {
            chars += m.content.chars().count();
            if chars > self.max_chars {
                break;
            }
            keep_from = i;
        }
        own.drain(..keep_from);
        Ok(Loaded {
            messages: own,
            foreign,
        })
    }

    pub async fn append(
        &self,
        key: &ConversationKey,
        records: &[StoredMessage],
    ) -> Result<(), ContextError> {
        if records.is_empty() {
            return Ok(());
        }
        self.backend.append(key, records).await
    }

    pub async fn delete(&self, key: &ConversationKey) -> Result<bool, ContextError> {
        self.backend.delete(key).await
    }
}
