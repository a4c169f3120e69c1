//! `POST /v1/chat/completions`: validate, gate, call the upstream, relay the answer.

use std::convert::Infallible;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use secureinfer_guard::Decision;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extraction;
use crate::isolation;
use crate::openai::{Usage, ValidatedChat, parse_chat, read_body};
use crate::output_filter::{FindingLog, Relay, RequestFacts, ResponseGuard};
use crate::request_log::{self, RequestId, RequestTrace, StreamWatch};
use crate::spans;
use crate::upstream::{ChunkStream, UpstreamError};

/// Chunks buffered between the upstream reader and a slow client.
const STREAM_BUFFER: usize = 64;

#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "inference",
    request_body(content = crate::openapi::schemas::ChatCompletionRequest, content_type = "application/json"),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The answer; with `stream: true` a `text/event-stream` of `chat.completion.chunk` events ending in `data: [DONE]`. Headers: `X-Risk-Score`, `X-Security-Warning` when WARN.", content((crate::openapi::schemas::ChatCompletion = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "Invalid request (the `param` names the field)", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "Blocked by the security gate (code `security_blocked`, with `request_id`, `risk_score`, `reasons`)", body = crate::openapi::schemas::ErrorBody),
        (status = 413, description = "Body above MAX_BODY_BYTES", body = crate::openapi::schemas::ErrorBody),
        (status = 429, description = "A rate, token or logprob budget was exceeded (`Retry-After`)", body = crate::openapi::schemas::ErrorBody),
        (status = 502, description = "The model server failed", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "The model server is unavailable, or the model failed its integrity check", body = crate::openapi::schemas::ErrorBody),
        (status = 504, description = "The model server timed out", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    Extension(trace): Extension<RequestTrace>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = principal.tenant()?.clone();
    state.integrity.admit()?;
    let bytes = read_body(&headers, body, state.config.limits.max_body_bytes).await?;
    let mut chat = parse_chat(&bytes, &state.config.limits, &state.config.allowed_models)?;
    chat.trace = crate::telemetry::TraceContext::from_headers(&headers);
    // Abuse limits (requests, tokens, concurrency): 429 here, or a ticket settled at the end.
    let mut ticket = state.limits.admit_chat(&tenant, &chat).await?;
    // Probability policy first (400/429 refusals are not security verdicts), then the query
    // joins the tenant's extraction window, whose score is a factor of the gate's verdict.
    let prob = state.extraction.check_request(&tenant, &mut chat).await?;
    let observed = state.extraction.observe(&tenant.id, &chat, &prob).await;

    let gate_span = spans::gate();
    let verdict = state
        .gate
        .assess_async(&chat.typed.messages, tenant.thresholds)
        .instrument(gate_span.clone())
        .await
        .with_extraction(observed.as_ref().map(|o| &o.assessment));
    spans::gate_verdict(&gate_span, &verdict);
    drop(gate_span);
    request_log::prompt_verdict(&state, &trace, &verdict, &chat);
    let escalated = observed.as_ref().is_some_and(|o| o.escalated);
    let gate_records = verdict.decision != Decision::Allow || escalated;
    isolation::note_probe_question(
        &state,
        &verdict,
        gate_records,
        &tenant.id,
        &request_id.0,
        &chat.typed.messages,
    )
    .await?;
    if gate_records {
        // Recorded before answering, so a refused or flagged request is never lost.
        let event = state
            .gate
            .event(&verdict, &tenant.id, &request_id.0, &chat.typed.messages);
        state.store.insert_event(&event).await?;
        tracing::warn!(
            request_id = %request_id.0,
            tenant = %tenant.id,
            score = verdict.score,
            decision = verdict.decision.as_str(),
            enforced = verdict.enforced,
            reasons = ?event.reasons,
            "security gate"
        );
        if verdict.blocks() {
            let mut resp = ApiError::Blocked {
                request_id: request_id.0.clone(),
                score: verdict.score,
                reasons: event.reasons,
            }
            .into_response();
            resp.headers_mut()
                .insert("x-risk-score", HeaderValue::from(u16::from(verdict.score)));
            return Ok(resp);
        }
    }

    // Tenant isolation: own conversation history, cache salt, probe window.
    let turn = isolation::prepare(&state, &tenant, &request_id.0, &headers, &mut chat).await?;
    let mut guard =
        state
            .extraction
            .response_guard(&state.store, &tenant.id, &request_id.0, &chat, &prob);
    // After the extraction guard read the prompt: the canary is not part of what was asked.
    let facts = RequestFacts {
        tenant_id: &tenant.id,
        request_id: &request_id.0,
        score: verdict.score,
    };
    let output = state
        .output
        .prepare(&*state.store, facts, &mut chat)
        .await?;
    // Refusals before this point (gate, prompt scanning) give the whole reservation back.
    ticket.mark_sent();
    let upstream_started = Instant::now();
    let streamed = chat.typed.streaming();
    let upstream_span =
        spans::upstream(state.upstream.kind().as_str(), &chat.typed.model, streamed);
    let mut resp = if streamed {
        let opened = state
            .upstream
            .chat_stream(&chat)
            .instrument(upstream_span.clone())
            .await;
        if opened.is_err() {
            spans::upstream_failed(&upstream_span);
        }
        request_log::upstream_stream_opened(&state, &trace, upstream_started, &opened);
        // The ticket sees the upstream's own chunks (and its usage) before any output policy.
        let upstream = ticket.watch(opened?);
        let upstream = extraction::guard_stream(upstream, guard);
        let upstream = isolation::Turn::wrap(turn, upstream);
        // The watch carries the upstream span to the relay task: it ends with the stream.
        let watch = StreamWatch::new(&state, &trace, upstream_started, upstream_span);
        stream_response(
            upstream,
            &chat,
            request_id.0.clone(),
            tenant.id.clone(),
            output.map(|g| (g, state.clone())),
            watch,
        )
    } else {
        let completion = state
            .upstream
            .chat(&chat)
            .instrument(upstream_span.clone())
            .await;
        match &completion {
            Ok(c) => {
                if let Some(u) = c.usage {
                    spans::upstream_usage(&upstream_span, u.prompt_tokens, u.completion_tokens);
                }
            }
            Err(_) => spans::upstream_failed(&upstream_span),
        }
        drop(upstream_span);
        request_log::upstream_full(&state, &trace, upstream_started, &completion, |c| c.usage);
        let mut completion = completion?;
        ticket.finish_with(&completion).await;
        guard.completion(&mut completion.body);
        guard.settle().await;
        if let Some(turn) = turn {
            turn.record_completion(&completion.body).await;
        }
        match output {
            Some(output) => guarded_completion(&state, &output, completion.body).await?,
            None => axum::Json(completion.body).into_response(),
        }
    };
    resp.headers_mut()
        .insert("x-risk-score", HeaderValue::from(u16::from(verdict.score)));
    if verdict.warns() {
        resp.headers_mut().insert(
            "x-security-warning",
            HeaderValue::from_static("elevated-risk"),
        );
    }
    Ok(resp)
}

/// How a relayed stream ended; settles accounting and the log either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    Completed,
    UpstreamFailed,
    ClientGone,
    /// The output guard found a blocking category and stopped the stream.
    OutputBlocked,
}

impl StreamEnd {
    fn as_str(self) -> &'static str {
        match self {
            StreamEnd::Completed => "completed",
            StreamEnd::UpstreamFailed => "upstream_failed",
            StreamEnd::ClientGone => "client_disconnected",
            StreamEnd::OutputBlocked => "output_blocked",
        }
    }
}

fn sse_event(data: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    // Serialising a serde_json::Value cannot fail.
    let _ = serde_json::to_writer(&mut out, data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// A non-streamed answer through the output guard: redacted in place, or a 403 when a
/// blocking category was found. The event is recorded before the response is sent.
async fn guarded_completion(
    state: &AppState,
    guard: &ResponseGuard,
    mut body: Value,
) -> Result<Response, ApiError> {
    let log = guard.filter_completion(&mut body);
    guard
        .settle(&*state.store, &state.output.counters, &log)
        .await?;
    if log.blocked {
        return Ok(guard.blocked_error(&log).into_response());
    }
    Ok(axum::Json(body).into_response())
}

/// Sends chunks in order; false once the client has gone.
async fn send_all(tx: &mpsc::Sender<Bytes>, chunks: &[Value]) -> bool {
    for c in chunks {
        if tx.send(sse_event(c)).await.is_err() {
            return false;
        }
    }
    true
}

/// Records the stream's output findings once, before its final event is sent.
async fn settle_output(
    guarded: Option<&(ResponseGuard, AppState)>,
    log: Option<&FindingLog>,
    done: &mut bool,
) {
    let (Some((guard, state)), Some(log)) = (guarded, log) else {
        return;
    };
    if std::mem::replace(done, true) {
        return;
    }
    if let Err(e) = guard
        .settle(&*state.store, &state.output.counters, log)
        .await
    {
        tracing::error!(error = %e, "could not record the output guard's event");
    }
}

/// Relays upstream chunks through a bounded channel from a spawned task. The task owns the
/// upstream stream, so it always runs to an end: when the client goes away it drops the
/// upstream stream (closing the upstream connection) and still settles its bookkeeping.
/// With the output guard on, every chunk passes its relay first; a block stops reading the
/// upstream and ends the stream with a `content_filter` finish and an error event.
fn stream_response(
    mut upstream: ChunkStream,
    chat: &ValidatedChat,
    request_id: String,
    tenant_id: String,
    guarded: Option<(ResponseGuard, AppState)>,
    mut watch: StreamWatch,
) -> Response {
    let include_usage = chat.typed.include_usage();
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
    tokio::spawn(async move {
        let started = Instant::now();
        let mut usage: Option<Usage> = None;
        let mut relay = guarded.as_ref().map(|(g, _)| g.relay());
        let mut settled = false;
        let end = loop {
            let next = tokio::select! {
                biased;
                _ = tx.closed() => break StreamEnd::ClientGone,
                next = upstream.next() => next,
            };
            let relayed = match next {
                Some(Ok(item)) => {
                    watch.chunk(&item.chunk, item.usage);
                    if item.usage.is_some() {
                        usage = item.usage;
                    }
                    let usage_only = item
                        .chunk
                        .get("choices")
                        .and_then(Value::as_array)
                        .is_some_and(Vec::is_empty);
                    if usage_only && !include_usage {
                        continue;
                    }
                    match relay.as_mut() {
                        Some(r) => r.on_chunk(item.chunk),
                        None => Relay::Send(vec![item.chunk]),
                    }
                }
                Some(Err(e)) => {
                    settle_output(
                        guarded.as_ref(),
                        relay.as_ref().map(|r| &r.log),
                        &mut settled,
                    )
                    .await;
                    let _ = tx.send(sse_event(&ApiError::Upstream(e).body())).await;
                    break StreamEnd::UpstreamFailed;
                }
                None => {
                    let tail = match relay.as_mut() {
                        Some(r) => r.end(),
                        None => Relay::Send(Vec::new()),
                    };
                    if let Relay::Send(chunks) = tail {
                        settle_output(
                            guarded.as_ref(),
                            relay.as_ref().map(|r| &r.log),
                            &mut settled,
                        )
                        .await;
                        if !send_all(&tx, &chunks).await {
                            break StreamEnd::ClientGone;
                        }
                        let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
                        break StreamEnd::Completed;
                    }
                    tail
                }
            };
            match relayed {
                Relay::Send(chunks) => {
                    if !send_all(&tx, &chunks).await {
                        break StreamEnd::ClientGone;
                    }
                }
                Relay::Blocked { finish_chunks } => {
                    settle_output(
                        guarded.as_ref(),
                        relay.as_ref().map(|r| &r.log),
                        &mut settled,
                    )
                    .await;
                    let error = match (&guarded, &relay) {
                        (Some((g, _)), Some(r)) => g.blocked_error(&r.log),
                        _ => ApiError::Internal("output guard state missing".into()),
                    };
                    if send_all(&tx, &finish_chunks).await {
                        let _ = tx.send(sse_event(&error.body())).await;
                    }
                    break StreamEnd::OutputBlocked;
                }
                Relay::Failed(why) => {
                    settle_output(
                        guarded.as_ref(),
                        relay.as_ref().map(|r| &r.log),
                        &mut settled,
                    )
                    .await;
                    let error = ApiError::Upstream(UpstreamError::Protocol(why.into()));
                    let _ = tx.send(sse_event(&error.body())).await;
                    break StreamEnd::UpstreamFailed;
                }
            }
        };
        // Stopping early (block, client gone) drops the upstream stream: the model call ends.
        drop(upstream);
        settle_output(
            guarded.as_ref(),
            relay.as_ref().map(|r| &r.log),
            &mut settled,
        )
        .await;
        watch.end(end.as_str());
        tracing::info!(
            request_id = %request_id,
            tenant = %tenant_id,
            outcome = end.as_str(),
            completion_tokens = usage.map(|u| u.completion_tokens),
            prompt_tokens = usage.map(|u| u.prompt_tokens),
            stream_ms = started.elapsed().as_secs_f64() * 1000.0,
            "stream ended"
        );
    });
    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}
