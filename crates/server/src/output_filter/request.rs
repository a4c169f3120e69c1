//! Request-side work of the output guard, done after the security gate and before the
//! upstream call: plant the canary in the system prompt, and (when `OUTPUT_SCAN_PROMPTS` is on)
//! redact secrets and personal data in user and tool messages.
//!
//! The forwarded request exists twice: the typed messages (read by the Ollama and mock
//! upstreams) and the raw JSON (forwarded as-is to OpenAI-compatible servers). Every edit is
//! applied to both, at the same message and part index.

use secureinfer_guard::output::{OutputGuard, RequestContext};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::record::{Field, FindingLog};
use crate::openai::types::{Content, ContentPart};
use crate::openai::{Role, ValidatedChat};

/// The system prompt as the model will read it: system and developer messages, in order.
pub fn system_prompt(chat: &ValidatedChat) -> Option<String> {
    let parts: Vec<String> = chat
        .typed
        .messages
        .iter()
        .filter(|m| matches!(m.role, Role::System | Role::Developer))
        .map(|m| m.text())
        .filter(|t| !t.trim().is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

/// SHA-256 and character count of the prompt, as the gate's events record them.
pub fn prompt_digest(chat: &ValidatedChat) -> (String, i64) {
    let mut hasher = Sha256::new();
    let mut chars = 0usize;
    let mut first = true;
    for m in chat
        .typed
        .messages
        .iter()
        .filter(|m| !matches!(m.role, Role::Assistant))
    {
        if !first {
            hasher.update(b"\n");
            chars += 1;
        }
        first = false;
        let t = m.text();
        chars += t.chars().count();
        hasher.update(t.as_bytes());
    }
    (hex::encode(hasher.finalize()), chars as i64)
}

/// Puts `text` at the start or the end of the first system (or developer) message; false
/// when there is none. A request without a system prompt has nothing to leak, so it gets no
/// canary.
pub fn add_to_system(chat: &mut ValidatedChat, text: &str, at_start: bool) -> bool {
    let Some(i) = chat
        .typed
        .messages
        .iter()
        .position(|m| matches!(m.role, Role::System | Role::Developer))
    else {
        return false;
    };
    let put = |s: &mut String| {
        if at_start {
            s.insert_str(0, text);
        } else {
            s.push_str(text);
        }
    };
    let part = ContentPart::Text {
        text: text.to_string(),
    };
    let at = |len: usize| if at_start { 0 } else { len };
    match &mut chat.typed.messages[i].content {
        Some(Content::Text(t)) => put(t),
        Some(Content::Parts(parts)) => parts.insert(at(parts.len()), part),
        None => chat.typed.messages[i].content = Some(Content::Text(text.to_string())),
    }
    let raw = chat
        .raw
        .get_mut("messages")
        .and_then(Value::as_array_mut)
        .and_then(|m| m.get_mut(i))
        .and_then(Value::as_object_mut);
    if let Some(msg) = raw {
        match msg.get_mut("content") {
            Some(Value::String(t)) => put(t),
            Some(Value::Array(parts)) => {
                parts.insert(at(parts.len()), json!({"type": "text", "text": text}));
            }
            _ => {
                msg.insert("content".into(), Value::String(text.to_string()));
            }
        }
    }
    true
}

/// Scans user and tool messages with the prompt guard, redacting in place. Returns the
/// findings; `log.blocked` means the request must be refused.
pub fn scan_prompts(chat: &mut ValidatedChat, guard: &OutputGuard) -> FindingLog {
    let mut log = FindingLog::default();
    let ctx = RequestContext::default();
    for (i, m) in chat.typed.messages.iter_mut().enumerate() {
        if !matches!(m.role, Role::User | Role::Tool) {
            continue;
        }
        let raw = chat
            .raw
            .get_mut("messages")
            .and_then(Value::as_array_mut)
            .and_then(|msgs| msgs.get_mut(i))
            .and_then(|msg| msg.get_mut("content"));
        match (&mut m.content, raw) {
            (Some(Content::Text(t)), raw) => {
                let r = guard.scan(t, &ctx);
                log.add(0, Field::Prompt(i, None), &r.findings);
                if r.blocked {
                    return log;
                }
                if let std::borrow::Cow::Owned(new) = r.text {
                    if let Some(raw) = raw {
                        *raw = Value::String(new.clone());
                    }
                    *t = new;
                }
            }
            (Some(Content::Parts(parts)), mut raw) => {
                for (j, part) in parts.iter_mut().enumerate() {
                    let ContentPart::Text { text } = part else {
                        continue;
                    };
                    let r = guard.scan(text, &ctx);
                    log.add(0, Field::Prompt(i, Some(j)), &r.findings);
                    if r.blocked {
                        return log;
                    }
                    if let std::borrow::Cow::Owned(new) = r.text {
                        let raw_text = raw
                            .as_deref_mut()
                            .and_then(Value::as_array_mut)
                            .and_then(|p| p.get_mut(j))
                            .and_then(|p| p.get_mut("text"));
                        if let Some(raw_text) = raw_text {
                            *raw_text = Value::String(new.clone());
                        }
                        *text = new;
                    }
                }
            }
            (None, _) => {}
        }
    }
    log
}
