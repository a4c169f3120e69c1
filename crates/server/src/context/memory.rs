//! In-process context backend: a bounded map with TTL and least-recently-used eviction.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{ContextBackend, ContextError, ConversationKey, StoredMessage};
use crate::store::now_ms;

struct Entry {
    records: VecDeque<StoredMessage>,
    expires_ms: i64,
    /// Position in the LRU order.
    seq: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// seq → key, oldest first.
    lru: BTreeMap<u64, String>,
    next_seq: u64,
}

impl Inner {
    fn touch(&mut self, key: &str) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(e) = self.entries.get_mut(key) {
            self.lru.remove(&e.seq);
            e.seq = seq;
            self.lru.insert(seq, key.to_string());
        }
    }

    fn remove(&mut self, key: &str) -> bool {
        match self.entries.remove(key) {
            Some(e) => {
                self.lru.remove(&e.seq);
                true
            }
            None => false,
        }
    }
}

pub struct MemoryContext {
    inner: Mutex<Inner>,
    ttl_ms: i64,
    max_messages: usize,
    max_conversations: usize,
}

impl MemoryContext {
    pub fn new(ttl: Duration, max_messages: usize, max_conversations: usize) -> Self {
        MemoryContext {
            inner: Mutex::new(Inner::default()),
            ttl_ms: ttl.as_millis().min(i64::MAX as u128) as i64,
            max_messages: max_messages.max(1),
            max_conversations: max_conversations.max(1),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, ContextError> {
        self.inner
            .lock()
            .map_err(|_| ContextError::Unavailable("in-process context store poisoned".into()))
    }
}

#[async_trait]
impl ContextBackend for MemoryContext {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn load(&self, key: &ConversationKey) -> Result<Vec<StoredMessage>, ContextError> {
        let mut inner = self.lock()?;
        let now = now_ms();
        match inner.entries.get(key.as_str()) {
            None => Ok(Vec::new()),
            Some(e) if e.expires_ms <= now => {
                inner.remove(key.as_str());
                Ok(Vec::new())
            }
            Some(e) => {
                let out = e.records.iter().cloned().collect();
                inner.touch(key.as_str());
                Ok(out)
            }
        }
    }

    async fn append(
        &self,
        key: &ConversationKey,
        records: &[StoredMessage],
    ) -> Result<(), ContextError> {
        let mut inner = self.lock()?;
        let now = now_ms();
        let expires_ms = now.saturating_add(self.ttl_ms);
        if inner
            .entries
            .get(key.as_str())
            .is_some_and(|e| e.expires_ms <= now)
        {
            inner.remove(key.as_str());
        }
        if !inner.entries.contains_key(key.as_str()) {
            // Make room: the least recently used conversation goes first.
            while inner.entries.len() >= self.max_conversations {
                let Some((_, oldest)) = inner.lru.pop_first() else {
                    break;
                };
                inner.entries.remove(&oldest);
            }
            inner.entries.insert(
                key.as_str().to_string(),
                Entry {
                    records: VecDeque::new(),
                    expires_ms,
                    seq: 0,
                },
            );
        }
        if let Some(e) = inner.entries.get_mut(key.as_str()) {
            e.records.extend(records.iter().cloned());
            while e.records.len() > self.max_messages {
                e.records.pop_front();
            }
            e.expires_ms = expires_ms;
        }
        inner.touch(key.as_str());
        Ok(())
    }

    async fn delete(&self, key: &ConversationKey) -> Result<bool, ContextError> {
        Ok(self.lock()?.remove(key.as_str()))
    }
}
