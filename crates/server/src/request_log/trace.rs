//! What a request's handlers learn about it (tenant, verdict, prompt digest, upstream time,
//! tokens), gathered in one place so the request's log line, metrics and audit record are
//! written once, when the response ends — for a stream, when the stream ends.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::gate::Verdict;
use crate::openai::{Message, Role, Usage, ValidatedChat};

/// Longest prompt excerpt written to the log when LOG_PROMPTS is on.
const LOGGED_PROMPT_CHARS: usize = 4096;

#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub decision: Option<&'static str>,
    pub score: Option<u8>,
    pub reasons: Vec<String>,
    pub model: Option<String>,
    pub prompt_sha256: Option<String>,
    pub prompt_chars: Option<u64>,
    /// Only with LOG_PROMPTS=true.
    pub prompt: Option<String>,
    pub usage: Option<Usage>,
    /// Time spent waiting for the upstream before the response could start.
    pub upstream_wait: Option<Duration>,
    /// `completed`, `upstream_failed` or `client_disconnected` for streams.
    pub stream_end: Option<&'static str>,
}

/// Per-request record shared between the access-log middleware and the handlers (and a
/// stream's relay task, which outlives the handler).
#[derive(Debug, Clone, Default)]
pub struct RequestTrace(Arc<Mutex<Outcome>>);

impl RequestTrace {
    pub fn update(&self, f: impl FnOnce(&mut Outcome)) {
        // A poisoned lock means a panic elsewhere mid-update; the record is still worth writing.
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard);
    }

    pub fn snapshot(&self) -> Outcome {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The text the gate scores, joined: what the prompt hash and length describe.
fn prompt_text(messages: &[Message]) -> String {
    messages
        .iter()
        .filter(|m| !matches!(m.role, Role::Assistant))
        .map(Message::text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Records the prompt gate's verdict: metrics now, the rest for the request's log line and
/// audit record.
pub fn prompt_verdict(
    state: &AppState,
    trace: &RequestTrace,
    verdict: &Verdict,
    chat: &ValidatedChat,
) {
    let reasons: Vec<String> = verdict
        .assessment
        .reason_names()
        .iter()
        .map(|r| r.to_string())
        .collect();
    state
        .metrics
        .security_decision("prompt", verdict.decision.as_str(), &reasons);
    state.metrics.risk_score(verdict.score);
    let text = prompt_text(&chat.typed.messages);
    let log_prompts = state.config.observability.log_prompts;
    trace.update(|o| {
        o.decision = Some(verdict.decision.as_str());
        o.score = Some(verdict.score);
        o.reasons = reasons;
        o.model = Some(chat.typed.model.clone());
        o.prompt_sha256 = Some(hex::encode(Sha256::digest(text.as_bytes())));
        o.prompt_chars = Some(text.chars().count() as u64);
        if log_prompts {
            o.prompt = Some(text.chars().take(LOGGED_PROMPT_CHARS).collect());
        }
    });
}

/// Times one non-streamed upstream call and records it.
pub fn upstream_full<T, E>(
    state: &AppState,
    trace: &RequestTrace,
    started: Instant,
    result: &Result<T, E>,
    usage: impl FnOnce(&T) -> Option<Usage>,
) {
    let elapsed = started.elapsed();
    let kind = state.upstream.kind().as_str();
    let outcome = if result.is_ok() { "ok" } else { "error" };
    state.metrics.upstream_call(kind, "full", outcome, elapsed);
    let usage = result.as_ref().ok().and_then(usage);
    trace.update(|o| {
        o.upstream_wait = Some(elapsed);
        o.usage = usage;
    });
}

/// Records how long a streamed call waited for the upstream's response headers.
pub fn upstream_stream_opened<T, E>(
    state: &AppState,
    trace: &RequestTrace,
    started: Instant,
    result: &Result<T, E>,
) {
    let elapsed = started.elapsed();
    if result.is_err() {
        let kind = state.upstream.kind().as_str();
        state
            .metrics
            .upstream_call(kind, "stream", "error", elapsed);
    }
    trace.update(|o| o.upstream_wait = Some(elapsed));
}

/// Observes a stream's life in the relay task: first token, usage, and how it ended.
pub struct StreamWatch {
    state: AppState,
    trace: RequestTrace,
    started: Instant,
    first_token: bool,
    /// The upstream call's span, ended (dropped) with the stream.
    span: tracing::Span,
    usage: Option<Usage>,
}

impl StreamWatch {
    /// `upstream_started`: when the request was sent upstream.
    pub fn new(
        state: &AppState,
        trace: &RequestTrace,
        upstream_started: Instant,
        span: tracing::Span,
    ) -> Self {
        StreamWatch {
            state: state.clone(),
            trace: trace.clone(),
            started: upstream_started,
            first_token: false,
            span,
            usage: None,
        }
    }

    /// Call for every chunk relayed; the first one carrying content sets time-to-first-token.
    pub fn chunk(&mut self, chunk: &serde_json::Value, usage: Option<Usage>) {
        if !self.first_token
            && chunk
                .pointer("/choices/0/delta/content")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|s| !s.is_empty())
        {
            self.first_token = true;
            let kind = self.state.upstream.kind().as_str();
            self.state
                .metrics
                .time_to_first_token(kind, self.started.elapsed());
        }
        if usage.is_some() {
            self.usage = usage;
            self.trace.update(|o| o.usage = usage);
        }
    }

    pub fn end(self, how: &'static str) {
        let kind = self.state.upstream.kind().as_str();
        let outcome = match how {
            "completed" => "ok",
            "client_disconnected" => "client_gone",
            _ => "error",
        };
        self.state
            .metrics
            .upstream_call(kind, "stream", outcome, self.started.elapsed());
        self.trace.update(|o| o.stream_end = Some(how));
        if let Some(u) = self.usage {
            crate::spans::upstream_usage(&self.span, u.prompt_tokens, u.completion_tokens);
        }
        self.span.record("secureinfer.stream_end", how);
        if how == "upstream_failed" {
            crate::spans::upstream_failed(&self.span);
        }
        // `self.span` drops here: the upstream span ends when the stream does.
    }
}
