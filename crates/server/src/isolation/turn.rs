//! What a chat request goes through for isolation: the cross-tenant question event, the
//! single-tenant check, the tenant's own conversation history, the cache salt, the
//! prefix-probe window — and, after the answer, saving the turn.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use futures::StreamExt;
use serde_json::{Value, json};

use super::Isolation;
use crate::app::AppState;
use crate::auth::TenantCtx;
use crate::context::{ConversationKey, StoredMessage, valid_conversation_id};
use crate::error::ApiError;
use crate::gate::Verdict;
use crate::openai::types::Content;
use crate::openai::{Message, Role, ValidatedChat};
use crate::store::now_ms;
use crate::upstream::ChunkStream;
use crate::upstream::cache_salt;

pub const CONVERSATION_HEADER: &str = "x-conversation-id";
const FACTOR: &str = "cross_tenant_probing";

/// Counts and logs cross-tenant phrasing, and records a `cross_tenant_probe` event when the
/// gate itself records none (`gate_records` false: the request was allowed), so even a mention
/// below WARN shows up next to the tenant's other events while no request gets two events.
/// A WARN/BLOCK event of the gate carries the same factor and pattern ids.
pub async fn note_probe_question(
    state: &AppState,
    verdict: &Verdict,
    gate_records: bool,
    tenant_id: &str,
    request_id: &str,
    messages: &[Message],
) -> Result<(), ApiError> {
    let hits: Vec<&secureinfer_guard::Reason> = verdict
        .assessment
        .reasons
        .iter()
        .filter(|r| r.factor == FACTOR)
        .collect();
    let patterns: Vec<&str> = hits.iter().map(|r| r.pattern.as_str()).collect();
    if patterns.is_empty() {
        return Ok(());
    }
    state.isolation.count_cross_tenant_question();
    tracing::warn!(
        request_id,
        tenant = tenant_id,
        score = verdict.score,
        patterns = ?patterns,
        "cross-tenant probing"
    );
    if gate_records {
        return Ok(());
    }
    let mut event = state.gate.event(verdict, tenant_id, request_id, messages);
    event.event_type = "cross_tenant_probe".into();
    event.reasons = vec![FACTOR.into()];
    // The same shape as the gate's own events.
    event.detail = json!({"patterns": hits});
    state.store.insert_event(&event).await?;
    Ok(())
}

/// The conversation id a request names, if any.
pub fn conversation_id(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get(CONVERSATION_HEADER) else {
        return Ok(None);
    };
    match raw.to_str() {
        Ok(id) if valid_conversation_id(id) => Ok(Some(id.to_string())),
        _ => Err(ApiError::bad_request(
            "X-Conversation-ID must be 1-128 characters of letters, digits, '.', '_', ':' or '-'",
            None,
        )),
    }
}

/// The prompt as the model reads it, for the prefix-probe window.
fn prompt_text(messages: &[Message]) -> String {
    let mut out = String::new();
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push('\u{1e}');
        }
        out.push_str(m.role.as_str());
        out.push(':');
        out.push_str(&m.text());
    }
    out
}

fn history_message(m: &StoredMessage) -> Option<(Message, Value)> {
    let role = match m.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        _ => return None,
    };
    let typed = Message {
        role,
        content: Some(Content::Text(m.content.clone())),
        name: None,
        tool_calls: None,
        tool_call_id: None,
    };
    Some((typed, json!({"role": m.role, "content": m.content})))
}

/// Everything after the gate and before the upstream call. Returns the turn to save when the
/// request belongs to a conversation.
pub async fn prepare(
    state: &AppState,
    tenant: &TenantCtx,
    request_id: &str,
    headers: &HeaderMap,
    chat: &mut ValidatedChat,
) -> Result<Option<Turn>, ApiError> {
    let iso = &state.isolation;
    iso.admit(&tenant.id)?;
    let turn = match conversation_id(headers)? {
        None => None,
        Some(id) => {
            let Some(context) = &iso.context else {
                return Err(ApiError::bad_request(
                    "conversation context is disabled on this gateway (CONTEXT_ENABLED=false); \
                     send the whole conversation in messages",
                    None,
                ));
            };
            // The tenant half of the key comes from the API key, never from the request.
            let key = ConversationKey::new(&tenant.id, &id);
            let loaded = context.load(&key).await.map_err(|e| {
                iso.count_context_failure();
                tracing::warn!(request_id, tenant = %tenant.id, error = %e, "context load failed");
                ApiError::Unavailable("the conversation store is unavailable; retry".into())
            })?;
            if loaded.foreign > 0 {
                owner_mismatch(state, tenant, request_id, loaded.foreign).await?;
            }
            merge(chat, &loaded.messages);
            let new = new_messages(&key, chat, loaded.messages.len(), iso.context_max_chars());
            Some(Turn {
                iso: state.isolation.clone(),
                key,
                new,
                request_id: request_id.to_string(),
            })
        }
    };
    if let Some(salt) = iso.salt_for(&tenant.id) {
        chat.raw
            .insert(cache_salt::FIELD.into(), Value::String(salt));
    }
    let prompt = prompt_text(&chat.typed.messages);
    let obs = iso.observe_probe(&tenant.id, &prompt, chat.max_tokens, now_ms().max(0) as u64);
    if obs.flagged {
        let event = crate::store::SecurityEvent {
            id: uuid::Uuid::now_v7().to_string(),
            created_ms: now_ms(),
            tenant_id: tenant.id.clone(),
            request_id: request_id.to_string(),
            event_type: "prefix_cache_probe".into(),
            score: 0,
            reasons: vec!["prefix_cache_probe".into()],
            decision: "allow".into(),
            enforced: false,
            prompt_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(prompt.as_bytes())),
            prompt_chars: prompt.chars().count() as i64,
            prompt: None,
            detail: json!({
                "extensions_in_window": obs.extensions_in_window,
                "max_tokens": chat.max_tokens,
                "salted": iso.prefix_cache.salting,
            }),
        };
        state.store.insert_event(&event).await?;
        tracing::warn!(
            request_id,
            tenant = %tenant.id,
            extensions = obs.extensions_in_window,
            "prefix-cache probe pattern: short-output prompts extending earlier ones"
        );
    }
    Ok(turn)
}

/// Puts the history after the request's leading system/developer messages.
fn merge(chat: &mut ValidatedChat, history: &[StoredMessage]) {
    if history.is_empty() {
        return;
    }
    let at = chat
        .typed
        .messages
        .iter()
        .position(|m| !matches!(m.role, Role::System | Role::Developer))
        .unwrap_or(chat.typed.messages.len());
    let (typed, raw): (Vec<Message>, Vec<Value>) =
        history.iter().filter_map(history_message).unzip();
    chat.typed.messages.splice(at..at, typed);
    if let Some(Value::Array(list)) = chat.raw.get_mut("messages") {
        let at = at.min(list.len());
        list.splice(at..at, raw);
    }
}

/// The request's own user messages (after the inserted history), to store with the answer.
fn new_messages(
    key: &ConversationKey,
    chat: &ValidatedChat,
    inserted: usize,
    max_chars: usize,
) -> Vec<StoredMessage> {
    let now = now_ms();
    let lead = chat
        .typed
        .messages
        .iter()
        .position(|m| !matches!(m.role, Role::System | Role::Developer))
        .unwrap_or(chat.typed.messages.len());
    chat.typed
        .messages
        .iter()
        .skip(lead + inserted)
        .filter(|m| m.role == Role::User)
        .map(|m| StoredMessage::new(key, "user", cap(m.text(), max_chars), now))
        .collect()
}

fn cap(text: String, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => text[..i].to_string(),
        None => text,
    }
}

pub(crate) async fn owner_mismatch(
    state: &AppState,
    tenant: &TenantCtx,
    request_id: &str,
    dropped: usize,
) -> Result<(), ApiError> {
    // The event goes to the reading tenant and names no other tenant: the tenant may read its
    // own events, and the other tenant's id is not its business. The log has the details.
    tracing::error!(
        request_id,
        tenant = %tenant.id,
        dropped,
        "stored context failed the owner check; records dropped"
    );
    let event = crate::store::SecurityEvent {
        id: uuid::Uuid::now_v7().to_string(),
        created_ms: now_ms(),
        tenant_id: tenant.id.clone(),
        request_id: request_id.to_string(),
        event_type: "context_owner_mismatch".into(),
        score: 0,
        reasons: vec!["context_owner_mismatch".into()],
        decision: "allow".into(),
        enforced: true,
        prompt_sha256: String::new(),
        prompt_chars: 0,
        prompt: None,
        detail: json!({"dropped_records": dropped}),
    };
    state.store.insert_event(&event).await?;
    Ok(())
}

/// A conversation turn waiting for its answer.
pub struct Turn {
    iso: Arc<Isolation>,
    key: ConversationKey,
    new: Vec<StoredMessage>,
    request_id: String,
}

impl Turn {
    /// Saves the turn with the assistant's answer. A failure is logged and counted; the
    /// client still gets the answer it paid for.
    pub async fn record(mut self, answer: &str) {
        let Some(context) = self.iso.context.clone() else {
            return;
        };
        let max = self.iso.context_max_chars();
        self.new.push(StoredMessage::new(
            &self.key,
            "assistant",
            cap(answer.to_string(), max),
            now_ms(),
        ));
        if let Err(e) = context.append(&self.key, &self.new).await {
            self.iso.count_context_failure();
            tracing::warn!(request_id = %self.request_id, tenant = %self.key.tenant_id(), error = %e, "context save failed");
        }
    }

    /// Saves the turn from a complete `chat.completion` body.
    pub async fn record_completion(self, body: &Value) {
        let answer = body
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        self.record(&answer).await;
    }

    /// Wraps a stream so the turn is saved once it completes — before `[DONE]` reaches the
    /// client, so its next request sees this turn. A stream that fails or whose client leaves
    /// saves nothing.
    pub fn wrap(turn: Option<Turn>, upstream: ChunkStream) -> ChunkStream {
        let Some(turn) = turn else { return upstream };
        let text = Arc::new(Mutex::new(String::new()));
        let seen = text.clone();
        let body = upstream.inspect(move |item| {
            if let Ok(item) = item
                && let Some(t) = item
                    .chunk
                    .pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
                && let Ok(mut acc) = seen.lock()
            {
                acc.push_str(t);
            }
        });
        let save = futures::stream::once(async move {
            let answer = text.lock().map(|t| t.clone()).unwrap_or_default();
            turn.record(&answer).await;
            None
        })
        .filter_map(|x| async move { x });
        body.chain(save).boxed()
    }
}
