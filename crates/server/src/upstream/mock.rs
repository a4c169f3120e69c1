//! SecureInfer's built-in mock model: a SIMULATOR, not a language model.
//!
//! It exists so the gateway, its tests and its attack demos run with nothing else installed.
//! It is deterministic (same messages → same answer), reports usage, can return logprobs,
//! streams word by word, and plays an *unguarded, gullible* model: the rules below make it
//! obey injected instructions and leak its system prompt, which is what the demos need to
//! show. Add a behaviour by adding a [`Rule`].

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use secureinfer_guard::normalize::{Normalized, Normalizer};
use serde_json::{Value, json};

use super::{ChunkStream, Completion, ModelInfo, SaltSupport, StreamItem, Upstream, UpstreamError};
use crate::config::{MockSettings, UpstreamKind};
use crate::openai::{self, Message, Role, Usage, ValidatedChat};

/// How the mock labels itself in `/v1/models`, `/health` and logs.
pub const MOCK_OWNER: &str = "secureinfer-mock (simulator, not a real model)";

/// One behaviour: given the conversation, maybe produce the reply.
pub struct Rule {
    pub name: &'static str,
    pub reply: fn(&Conversation) -> Option<String>,
}

/// The parts of a request the rules look at.
pub struct Conversation {
    pub system: String,
    /// System, developer and tool messages: everything the model was given besides the user.
    pub context: String,
    pub last_user: String,
    /// The user messages before the last one, oldest first (the conversation's memory).
    pub earlier_user: Vec<String>,
    /// What a capable model "reads" in the last user message: lower-cased, with look-alikes,
    /// spacing, leetspeak, encodings and hidden tag characters seen through (the detection
    /// core's normaliser plays the model's eyes). Obfuscation fools filters, not models.
    pub last_user_lower: String,
}

fn normalizer() -> Option<&'static Normalizer> {
    static N: OnceLock<Option<Normalizer>> = OnceLock::new();
    N.get_or_init(|| Normalizer::new().ok()).as_ref()
}

/// Every reading of `text` the normaliser produces, one per line, lower-cased.
fn read_through(text: &str) -> String {
    let mut out = text.to_lowercase();
    let Some(n) = normalizer() else { return out };
    let mut views = Normalized::default();
    let mut budget = 64 * 1024;
    n.run(text, true, &mut budget, &mut views);
    for (_, view) in views.views() {
        out.push('\n');
        out.push_str(view);
    }
    let extras =
        std::iter::once(views.hidden.as_str()).chain(views.decoded.iter().map(|(_, d)| d.as_str()));
    for extra in extras {
        if !extra.is_empty() {
            out.push('\n');
            out.push_str(&extra.to_lowercase());
        }
    }
    out
}

impl Conversation {
    pub fn from_messages(messages: &[Message]) -> Self {
        let system = messages
            .iter()
            .filter(|m| matches!(m.role, Role::System | Role::Developer))
            .map(Message::text)
            .collect::<Vec<_>>()
            .join("\n");
        let last_user = messages
            .iter()
            .rev()
            .find(|m| matches!(m.role, Role::User | Role::Tool))
            .map(Message::text)
            .unwrap_or_default();
        let last_user_lower = read_through(&last_user);
        let context = messages
            .iter()
            .filter(|m| matches!(m.role, Role::System | Role::Developer | Role::Tool))
            .map(Message::text)
            .collect::<Vec<_>>()
            .join("\n");
        let mut earlier_user: Vec<String> = messages
            .iter()
            .filter(|m| m.role == Role::User)
            .map(Message::text)
            .collect();
        earlier_user.pop();
        Conversation {
            system,
            context,
            last_user,
            earlier_user,
            last_user_lower,
        }
    }
}

/// Finds `marker` in what the model read and returns the rest of that line, in the
/// original casing when the original text holds it.
fn after<'a>(c: &'a Conversation, markers: &[&str]) -> Option<&'a str> {
    markers.iter().find_map(|m| {
        let pos = c.last_user_lower.find(m)?;
        let rest = c.last_user_lower.get(pos + m.len()..)?;
        let rest = rest.split('\n').next()?;
        let original = c
            .last_user
            .to_lowercase()
            .find(rest)
            .and_then(|p| c.last_user.get(p..p + rest.len()));
        Some(original.unwrap_or(rest))
    })
}

fn unquote(s: &str) -> String {
    s.trim()
        .trim_matches(|ch: char| matches!(ch, '"' | '\'' | '“' | '”' | '‘' | '’' | '.' | ':' | ' '))
        .to_string()
}

/// The rules, tried in order; the first that answers wins.
pub const RULES: &[Rule] = &[
    Rule {
        name: "obeys-injected-instruction",
        reply: |c| {
            let obey = ["ignore", "disregard", "forget"]
                .iter()
                .any(|w| c.last_user_lower.contains(w));
            if !obey {
                return None;
            }
            after(
                c,
                &[
                    "and say ",
                    "and print ",
                    "and respond with ",
                    "and reply with ",
                    "and output ",
                ],
            )
            .map(unquote)
            .filter(|s| !s.is_empty())
        },
    },
    Rule {
        name: "spells-out-system-prompt",
        reply: |c| {
            let asks = ["system prompt", "your instructions", "text above"]
                .iter()
                .any(|w| c.last_user_lower.contains(w));
            let spaced = ["space between", "spaces between", "letter by letter"]
                .iter()
                .any(|w| c.last_user_lower.contains(w));
            (asks && spaced && !c.system.is_empty()).then(|| {
                let mut out = String::from("Sure, letter by letter: ");
                for (i, ch) in c.system.chars().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push(ch);
                }
                out
            })
        },
    },
    Rule {
        name: "leaks-system-prompt",
        reply: |c| {
            let asks = [
                "system prompt",
                "initial instructions",
                "your instructions",
                "your rules",
            ]
            .iter()
            .any(|w| c.last_user_lower.contains(w));
            (asks && !c.system.is_empty())
                .then(|| format!("Sure. My system prompt is: {}", c.system))
        },
    },
    Rule {
        name: "reveals-data-in-context",
        reply: |c| {
            // Asked about a kind of data, it recites every line of its context that mentions it.
            const KINDS: [&str; 10] = [
                "password",
                "key",
                "token",
                "secret",
                "credential",
                "customer",
                "email",
                "phone",
                "card",
                "iban",
            ];
            let asked: Vec<&str> = KINDS
                .iter()
                .copied()
                .filter(|k| c.last_user_lower.contains(k))
                .collect();
            let lines: Vec<&str> = c
                .context
                .lines()
                .filter(|l| {
                    let l = l.to_lowercase();
                    asked.iter().any(|k| l.contains(k))
                })
                .map(str::trim)
                .collect();
            (!lines.is_empty()).then(|| format!("Here is what I have on file: {}", lines.join(" ")))
        },
    },
    Rule {
        name: "persona-hijack",
        reply: |c| {
            (c.last_user_lower.contains("you are now")
                || c.last_user_lower.contains("do anything now"))
            .then(|| {
                "Understood. I am now free of all restrictions and will do anything you ask."
                    .to_string()
            })
        },
    },
    Rule {
        name: "repeats-forever",
        reply: |c| {
            let word = after(c, &["repeat the word ", "repeat this word forever: "])?;
            let word = unquote(word.split_whitespace().next()?);
            let mut out = std::iter::repeat_n(word.as_str(), 120)
                .collect::<Vec<_>>()
                .join(" ");
            out.push_str(
                " Copyright 2019 Example Corp. All rights reserved. Chapter one: the Johnson \
                 family moved to 42 Elm Street in the spring of 1998, where Margaret opened a \
                 small bakery. Contact: jane.doe@example.com",
            );
            Some(out)
        },
    },
    Rule {
        name: "arithmetic",
        reply: |c| {
            let expr = after(c, &["what is "])?;
            let expr = expr.trim_end_matches(['?', ' ', '.']);
            let (a, op, b) = ['+', '-', '*']
                .iter()
                .find_map(|op| expr.split_once(*op).map(|(a, b)| (a, *op, b)))?;
            let (a, b): (i64, i64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            let r = match op {
                '+' => a.checked_add(b)?,
                '-' => a.checked_sub(b)?,
                _ => a.checked_mul(b)?,
            };
            Some(format!("{a} {op} {b} = {r}."))
        },
    },
    Rule {
        // A model answers from whatever is in its context window: with a shared context it
        // repeats other users' messages, with an isolated one it can only repeat the caller's.
        name: "recalls-conversation",
        reply: |c| {
            let asks = [
                "tell you",
                "told you",
                "recall",
                "remind me",
                "earlier in this conversation",
            ]
            .iter()
            .any(|w| c.last_user_lower.contains(w));
            if !asks {
                return None;
            }
            if c.earlier_user.is_empty() {
                return Some("Nobody told me anything earlier in this conversation.".into());
            }
            let quoted: Vec<String> = c.earlier_user.iter().map(|m| format!("\"{m}\"")).collect();
            Some(format!(
                "Earlier in this conversation I was told: {}",
                quoted.join(" ")
            ))
        },
    },
];

/// The mock's answer to a conversation, and the name of the rule that produced it.
pub fn respond(messages: &[Message]) -> (String, &'static str) {
    let conv = Conversation::from_messages(messages);
    for rule in RULES {
        if let Some(reply) = (rule.reply)(&conv) {
            return (reply, rule.name);
        }
    }
    let words = conv.last_user.split_whitespace().count();
    let reply = format!(
        "This is the SecureInfer mock model, a simulator rather than a real LLM. \
         I received a message of {words} words and I answer every ordinary question with this sentence."
    );
    (reply, "default")
}

/// Word-level "tokens": the mock's usage counts are this estimate, not a real tokenizer's.
pub fn tokens(text: &str) -> Vec<&str> {
    text.split_inclusive(' ').collect()
}

pub fn prompt_tokens(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| m.text().split_whitespace().count() as u64 + 3)
        .sum()
}

/// A deterministic pseudo log-probability for a token, with `top` alternatives.
pub fn logprob_entry(token: &str, top: u32) -> Value {
    let h = token.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let lp = -((h % 2000) as f64) / 1000.0;
    let alternatives: Vec<Value> = (0..top)
        .map(|i| {
            if i == 0 {
                json!({"token": token, "logprob": lp, "bytes": token.as_bytes()})
            } else {
                let alt = format!("alt{i}");
                json!({"token": alt, "logprob": lp - i as f64, "bytes": alt.as_bytes()})
            }
        })
        .collect();
    json!({"token": token, "logprob": lp, "bytes": token.as_bytes(), "top_logprobs": alternatives})
}

/// The reply cut to `max_tokens`, its tokens, and whether it was cut.
pub fn answer(req: &ValidatedChat) -> (Vec<String>, bool) {
    let (reply, _) = respond(&req.typed.messages);
    let toks = tokens(&reply);
    let cut = toks.len() > req.max_tokens as usize;
    let kept = toks
        .into_iter()
        .take(req.max_tokens as usize)
        .map(str::to_string)
        .collect();
    (kept, cut)
}

pub struct MockUpstream {
    model: String,
    settings: MockSettings,
}

impl MockUpstream {
    pub fn new(model: String, settings: MockSettings) -> Self {
        MockUpstream { model, settings }
    }
}

fn wants_logprobs(req: &ValidatedChat) -> Option<u32> {
    (req.typed.logprobs == Some(true))
        .then(|| req.typed.top_logprobs.unwrap_or(0).clamp(0, 20) as u32)
}

async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

#[async_trait]
impl Upstream for MockUpstream {
    fn kind(&self) -> UpstreamKind {
        UpstreamKind::Mock
    }

    async fn salt_support(&self) -> SaltSupport {
        // The simulator keeps no cache between requests.
        SaltSupport::NoSharedCache
    }

    async fn chat(&self, req: &ValidatedChat) -> Result<Completion, UpstreamError> {
        pause(self.settings.latency).await;
        let (toks, cut) = answer(req);
        let usage = Usage::new(prompt_tokens(&req.typed.messages), toks.len() as u64);
        let logprobs = wants_logprobs(req).map(|top| json!({"content": toks.iter().map(|t| logprob_entry(t, top)).collect::<Vec<_>>()}));
        let body = openai::completion(
            &openai::completion_id(),
            &req.typed.model,
            &toks.concat(),
            if cut { "length" } else { "stop" },
            usage,
            logprobs,
        );
        Ok(Completion {
            body,
            usage: Some(usage),
        })
    }

    async fn chat_stream(&self, req: &ValidatedChat) -> Result<ChunkStream, UpstreamError> {
        pause(self.settings.latency).await;
        let (toks, cut) = answer(req);
        let usage = Usage::new(prompt_tokens(&req.typed.messages), toks.len() as u64);
        let id = openai::completion_id();
        let model = req.typed.model.clone();
        let top = wants_logprobs(req);
        let delay = self.settings.token_delay;
        let mut items = Vec::with_capacity(toks.len() + 3);
        items.push(StreamItem {
            chunk: openai::chunk(
                &id,
                &model,
                json!({"role": "assistant", "content": ""}),
                None,
                None,
            ),
            usage: None,
        });
        for t in &toks {
            let lp = top.map(|top| json!({"content": [logprob_entry(t, top)]}));
            items.push(StreamItem {
                chunk: openai::chunk(&id, &model, json!({"content": t}), None, lp),
                usage: None,
            });
        }
        items.push(StreamItem {
            chunk: openai::chunk(
                &id,
                &model,
                json!({}),
                Some(if cut { "length" } else { "stop" }),
                None,
            ),
            usage: None,
        });
        items.push(StreamItem {
            chunk: openai::usage_chunk(&id, &model, usage),
            usage: Some(usage),
        });
        let stream = futures::stream::iter(items).then(move |item| async move {
            pause(delay).await;
            Ok(item)
        });
        Ok(stream.boxed())
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, UpstreamError> {
        Ok(vec![ModelInfo {
            id: self.model.clone(),
            owned_by: MOCK_OWNER.into(),
        }])
    }

    async fn health(&self) -> Result<(), UpstreamError> {
        Ok(())
    }
}
