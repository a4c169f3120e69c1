//! The gateway's tracing spans, named and given their attributes in one place: one span per
//! HTTP request, a child for the security gate's scoring and one for the upstream call.
//!
//! They are always compiled. Log output never shows them (the log layer takes events only),
//! so with no OpenTelemetry exporter installed no subscriber is interested, `tracing` hands
//! out disabled spans and none of the attribute values below is even computed. With the
//! `otel` feature and OTEL_EXPORTER_OTLP_ENDPOINT set, `telemetry` exports them over OTLP.
//!
//! Attribute names follow the OpenTelemetry HTTP semantic conventions where one exists
//! (`http.request.method`, `http.route`, `http.response.status_code`); ours are prefixed
//! `secureinfer.`. Spans carry ids, the route template, verdicts and the model name — never
//! a prompt, a key or a header value other than `traceparent`'s ids.

use axum::http::{HeaderMap, Method};
use tracing::Span;
use tracing::field::Empty;

use crate::gate::Verdict;
use crate::request_log::Outcome;

/// The route recorded when no route matched (a 404): the span is then named by method only,
/// so arbitrary client paths never become span names.
pub const UNMATCHED: &str = "unmatched";

/// The server span of one HTTP request, named `METHOD /route/{template}`. When the request
/// carries a W3C `traceparent` (and this build exports traces) the span joins that trace.
pub fn request(method: &Method, route: &str, request_id: &str, headers: &HeaderMap) -> Span {
    let matched = route != UNMATCHED;
    let span = tracing::info_span!(
        target: "secureinfer::http",
        "request",
        otel.name = %SpanName(method, matched.then_some(route)),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = matched.then_some(route),
        http.response.status_code = Empty,
        secureinfer.request_id = %request_id,
        secureinfer.tenant_id = Empty,
        secureinfer.decision = Empty,
        secureinfer.risk_score = Empty,
        secureinfer.stream_end = Empty,
    );
    #[cfg(feature = "otel")]
    crate::telemetry::adopt_remote_parent(&span, headers);
    #[cfg(not(feature = "otel"))]
    let _ = headers;
    span
}

/// Completes the request span when the response has ended (for a stream, when it ended).
pub fn request_finished(span: &Span, status: u16, tenant: Option<&str>, outcome: &Outcome) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", status);
    if status >= 500 {
        // Server spans count only 5xx as errors: a 4xx is the client's, not ours.
        span.record("otel.status_code", "ERROR");
    }
    if let Some(t) = tenant {
        span.record("secureinfer.tenant_id", t);
    }
    if let Some(d) = outcome.decision {
        span.record("secureinfer.decision", d);
    }
    if let Some(s) = outcome.score {
        span.record("secureinfer.risk_score", s);
    }
    if let Some(end) = outcome.stream_end {
        span.record("secureinfer.stream_end", end);
    }
}

/// The security gate scoring the prompt (a child of the request span).
pub fn gate() -> Span {
    tracing::info_span!(
        target: "secureinfer::gate",
        "security_gate",
        otel.name = "security_gate",
        secureinfer.decision = Empty,
        secureinfer.risk_score = Empty,
        secureinfer.enforced = Empty,
        secureinfer.reasons = Empty,
    )
}

/// Records the gate's verdict: decision, score and the names of the factors (never text).
pub fn gate_verdict(span: &Span, verdict: &Verdict) {
    if span.is_disabled() {
        return;
    }
    span.record("secureinfer.decision", verdict.decision.as_str());
    span.record("secureinfer.risk_score", verdict.score);
    span.record("secureinfer.enforced", verdict.enforced);
    let reasons = verdict.reasons();
    if !reasons.is_empty() {
        span.record("secureinfer.reasons", reasons.join(",").as_str());
    }
}

/// The call to the model server (a client span). For a stream it lasts until the stream ends.
pub fn upstream(kind: &str, model: &str, streamed: bool) -> Span {
    tracing::info_span!(
        target: "secureinfer::upstream",
        "upstream",
        otel.name = %format_args!("chat {model}"),
        otel.kind = "client",
        otel.status_code = Empty,
        gen_ai.operation.name = "chat",
        secureinfer.upstream.kind = kind,
        secureinfer.upstream.streamed = streamed,
        gen_ai.request.model = model,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        secureinfer.stream_end = Empty,
    )
}

/// Marks the upstream call failed (error, timeout, broken stream).
pub fn upstream_failed(span: &Span) {
    span.record("otel.status_code", "ERROR");
}

pub fn upstream_usage(span: &Span, prompt_tokens: u64, completion_tokens: u64) {
    if span.is_disabled() {
        return;
    }
    span.record("gen_ai.usage.input_tokens", prompt_tokens);
    span.record("gen_ai.usage.output_tokens", completion_tokens);
}

/// `POST /v1/chat/completions`, or just `GET` when no route matched; formatted only when a
/// span is actually recorded.
struct SpanName<'a>(&'a Method, Option<&'a str>);

impl std::fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(route) => write!(f, "{} {route}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}
