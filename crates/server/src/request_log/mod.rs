//! Request ids, and the one place a finished request is accounted for: one log line, the
//! request metrics and one audit record, written when the response body ends.
//!
//! The line carries ids, route, status, tenant, verdict, latency and tokens — never a key,
//! and never prompt text unless LOG_PROMPTS is on (otherwise the prompt's SHA-256 and length).

mod body;
mod trace;

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub use trace::{
    Outcome, RequestTrace, StreamWatch, prompt_verdict, upstream_full, upstream_stream_opened,
};

use crate::app::AppState;
use crate::audit::{AuditKind, AuditRecord};
use crate::auth::LoggedTenant;

pub const REQUEST_ID: &str = "x-request-id";

/// Routes that are polled by machines and carry no tenant data: logged and counted, not audited.
const NOT_AUDITED: &[&str] = &["/health", "/metrics", "/openapi.json"];

/// The request's id, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Marks a response that failed because a backend (`database`, `redis`) failed, so the
/// request is counted in `secureinfer_backend_errors_total`.
#[derive(Debug, Clone, Copy)]
pub struct BackendFailure(pub &'static str);

/// The `code` of an error response (set by `ApiError`), e.g. `logprob_budget_exhausted`.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// Set on a 429 response to name the limit that refused it (`rpm`, `tpm`, `concurrency`, ...);
/// without it the error code names the limit in `secureinfer_rate_limit_rejections_total`.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitHit(pub &'static str);

/// A client-sent id is echoed only if it is short and plain, so it cannot inject into logs.
fn sane(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub async fn request_log(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| crate::spans::UNMATCHED.to_string());
    let method = req.method().clone();
    let span = crate::spans::request(&method, &route, &id, req.headers());
    let trace_id = crate::telemetry::trace_id(&span, req.headers());
    let trace = RequestTrace::default();
    req.extensions_mut().insert(RequestId(id.clone()));
    req.extensions_mut().insert(trace.clone());
    state.metrics.request_started();

    let mut resp = next.run(req).instrument(span.clone()).await;
    let until_headers = started.elapsed();

    if let Ok(value) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, value);
    }
    let caller = resp.extensions().get::<LoggedTenant>().map(|t| t.0.clone());
    let backend_failure = resp.extensions().get::<BackendFailure>().copied();
    let limit = resp
        .extensions()
        .get::<RateLimitHit>()
        .map(|l| l.0)
        .or_else(|| resp.extensions().get::<ErrorCode>().map(|c| c.0));
    let status = resp.status().as_u16();

    let finished = Finished {
        state: state.clone(),
        trace,
        span,
        started,
        until_headers,
        id,
        trace_id,
        route,
        method: method.to_string(),
        status,
        caller,
        backend_failure,
        limit,
    };
    let (parts, inner) = resp.into_parts();
    let body = body::OnEnd::new(inner, move |complete| finished.emit(complete));
    Response::from_parts(parts, Body::new(body))
}

/// Everything known when the response headers left, completed by the trace at the end.
struct Finished {
    state: AppState,
    trace: RequestTrace,
    /// The request's span: it ends when this is dropped (and the upstream span of a stream
    /// has ended), after `emit` completed it.
    span: tracing::Span,
    started: Instant,
    until_headers: std::time::Duration,
    id: String,
    /// The W3C trace this request belongs to (the client's, or the gateway's own when it
    /// exports traces), so a log line can be found from a trace and back.
    trace_id: Option<String>,
    route: String,
    method: String,
    status: u16,
    caller: Option<String>,
    backend_failure: Option<BackendFailure>,
    limit: Option<&'static str>,
}

impl Finished {
    fn emit(self, complete: bool) {
        let elapsed = self.started.elapsed();
        let o = self.trace.snapshot();
        let metrics = &self.state.metrics;
        metrics.request_finished();
        metrics.http_request(&self.route, &self.method, self.status, elapsed);
        if self.status == 429 {
            metrics.rate_limited(self.limit.unwrap_or("unknown"));
        }
        if let Some(BackendFailure(backend)) = self.backend_failure {
            metrics.backend_error(backend, "request");
        }
        let tenant = self
            .caller
            .as_deref()
            .filter(|c| *c != "admin")
            .map(str::to_string);
        if let (Some(t), Some(u)) = (&tenant, o.usage) {
            metrics.tokens(t, u.prompt_tokens, u.completion_tokens);
        }
        if let Some(wait) = o.upstream_wait {
            metrics.gateway_overhead(self.until_headers.saturating_sub(wait));
        }
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        // A stream's own end says more than the body's (which only sees the client side).
        let end = o.stream_end.unwrap_or(if complete {
            "completed"
        } else {
            "client_disconnected"
        });
        crate::spans::request_finished(&self.span, self.status, tenant.as_deref(), &o);
        let fields = LineFields {
            id: &self.id,
            trace_id: self.trace_id.as_deref(),
            route: &self.route,
            method: &self.method,
            status: self.status,
            tenant: self.caller.as_deref().unwrap_or("-"),
            latency_ms,
            end,
            o: &o,
        };
        fields.log();

        if NOT_AUDITED.contains(&self.route.as_str()) {
            return;
        }
        let actor = self
            .caller
            .clone()
            .unwrap_or_else(|| "anonymous".to_string());
        let mut rec = AuditRecord::new(
            AuditKind::Request,
            actor,
            format!("{} {}", self.method, self.route),
        );
        rec.request_id = Some(self.id);
        rec.tenant_id = tenant;
        rec.status = Some(self.status);
        rec.decision = o.decision.map(str::to_string);
        rec.score = o.score;
        rec.reasons = o.reasons;
        rec.latency_ms = Some((latency_ms * 1000.0).round() / 1000.0);
        rec.model = o.model;
        rec.prompt_sha256 = o.prompt_sha256;
        rec.prompt_chars = o.prompt_chars;
        rec.prompt_tokens = o.usage.map(|u| u.prompt_tokens);
        rec.completion_tokens = o.usage.map(|u| u.completion_tokens);
        if o.stream_end.is_some() || !complete {
            rec.detail = serde_json::json!({"end": end});
        }
        self.state.audit.record(rec);
    }
}

struct LineFields<'a> {
    id: &'a str,
    trace_id: Option<&'a str>,
    route: &'a str,
    method: &'a str,
    status: u16,
    tenant: &'a str,
    latency_ms: f64,
    end: &'a str,
    o: &'a Outcome,
}

impl LineFields<'_> {
    fn log(&self) {
        let o = self.o;
        let reasons = (!o.reasons.is_empty()).then(|| o.reasons.join(","));
        let upstream_ms = o.upstream_wait.map(|d| d.as_secs_f64() * 1000.0);
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    request_id = %self.id,
                    trace_id = self.trace_id,
                    method = %self.method,
                    route = %self.route,
                    status = self.status,
                    tenant = %self.tenant,
                    latency_ms = self.latency_ms,
                    end = %self.end,
                    decision = o.decision,
                    risk_score = o.score,
                    reasons = reasons.as_deref(),
                    model = o.model.as_deref(),
                    prompt_sha256 = o.prompt_sha256.as_deref(),
                    prompt_chars = o.prompt_chars,
                    prompt_tokens = o.usage.map(|u| u.prompt_tokens),
                    completion_tokens = o.usage.map(|u| u.completion_tokens),
                    upstream_ms,
                    prompt = o.prompt.as_deref(),
                    "request"
                )
            };
        }
        if self.status >= 500 {
            line!(warn);
        } else {
            line!(info);
        }
    }
}
