//! `secureinfer mock-upstream`: the mock model (a simulator) served on its own, over both
//! wire formats the gateway consumes: OpenAI (`/v1/chat/completions` with SSE, `/v1/models`)
//! and Ollama (`/api/chat` with NDJSON, `/api/tags`, `/api/version`). The load harness uses
//! it to measure the gateway against the same model called directly.

use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::config::{AllowedModels, Limits, MockSettings};
use crate::error::ApiError;
use crate::openai::{ValidatedChat, parse_chat};
use crate::upstream::Upstream;
use crate::upstream::mock::{self, MOCK_OWNER, MockUpstream};

#[derive(Clone)]
struct MockState {
    model: Arc<String>,
    upstream: Arc<MockUpstream>,
    settings: MockSettings,
}

const LIMITS: Limits = Limits {
    max_body_bytes: 16 * 1024 * 1024,
    max_messages: 100_000,
    max_prompt_chars: usize::MAX,
    max_tokens_cap: u32::MAX,
};

pub fn router(model: String, settings: MockSettings) -> Router {
    let state = MockState {
        upstream: Arc::new(MockUpstream::new(model.clone(), settings.clone())),
        model: Arc::new(model),
        settings,
    };
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/models", get(openai_models))
        .route("/api/chat", post(ollama_chat))
        .route("/api/tags", get(ollama_tags))
        .route(
            "/api/version",
            get(|| async { axum::Json(json!({"version": "0.0.0-secureinfer-mock"})) }),
        )
        .with_state(state)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({"error": {"message": message, "type": "invalid_request_error", "code": null, "param": null}}))).into_response()
}

fn parse(body: &[u8]) -> Result<ValidatedChat, ApiError> {
    parse_chat(body, &LIMITS, &AllowedModels::Any)
}

async fn openai_chat(State(st): State<MockState>, body: Bytes) -> Response {
    let chat = match parse(&body) {
        Ok(c) => c,
        Err(e) => return error(e.status(), e.to_string()),
    };
    if !chat.typed.streaming() {
        return match st.upstream.chat(&chat).await {
            Ok(c) => axum::Json(c.body).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    }
    let include_usage = chat.typed.include_usage();
    let stream = match st.upstream.chat_stream(&chat).await {
        Ok(s) => s,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let events = stream
        .filter_map(move |item| async move {
            let item = item.ok()?;
            if item.usage.is_some() && !include_usage {
                return None;
            }
            Some(Ok::<_, Infallible>(Bytes::from(format!(
                "data: {}\n\n",
                item.chunk
            ))))
        })
        .chain(futures::stream::once(async {
            Ok(Bytes::from_static(b"data: [DONE]\n\n"))
        }));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(events))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn openai_models(State(st): State<MockState>) -> Response {
    axum::Json(json!({"object": "list", "data": [{"id": *st.model, "object": "model", "created": 0, "owned_by": MOCK_OWNER}]})).into_response()
}

/// Ollama's request, re-expressed as an OpenAI request so one parser validates both.
fn ollama_to_openai(v: &Value) -> Value {
    json!({
        "model": v.get("model").cloned().unwrap_or(Value::Null),
        "messages": v.get("messages").cloned().unwrap_or(Value::Null),
        "max_tokens": v.pointer("/options/num_predict").cloned().unwrap_or(Value::Null),
        "logprobs": v.get("logprobs").cloned().unwrap_or(Value::Null),
        "top_logprobs": v.get("top_logprobs").cloned().unwrap_or(Value::Null),
    })
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

async fn ollama_chat(State(st): State<MockState>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid JSON".into());
    };
    let stream = v.get("stream").and_then(Value::as_bool).unwrap_or(true);
    let chat = match parse(ollama_to_openai(&v).to_string().as_bytes()) {
        Ok(c) => c,
        Err(e) => return error(e.status(), e.to_string()),
    };
    let (toks, cut) = mock::answer(&chat);
    let prompt = mock::prompt_tokens(&chat.typed.messages);
    let done_reason = if cut { "length" } else { "stop" };
    let top = (chat.typed.logprobs == Some(true))
        .then(|| chat.typed.top_logprobs.unwrap_or(0).clamp(0, 20) as u32);
    let model = chat.typed.model.clone();
    if !stream {
        tokio::time::sleep(st.settings.latency).await;
        let mut out = json!({
            "model": model, "created_at": now_rfc3339(),
            "message": {"role": "assistant", "content": toks.concat()},
            "done": true, "done_reason": done_reason,
            "prompt_eval_count": prompt, "eval_count": toks.len(),
        });
        if let Some(top) = top {
            out["logprobs"] = toks.iter().map(|t| mock::logprob_entry(t, top)).collect();
        }
        return axum::Json(out).into_response();
    }
    let count = toks.len();
    let mut lines: Vec<Value> = toks
        .into_iter()
        .map(|t| {
            let mut line = json!({"model": model, "created_at": now_rfc3339(), "message": {"role": "assistant", "content": t}, "done": false});
            if let Some(top) = top {
                line["logprobs"] = json!([mock::logprob_entry(&t, top)]);
            }
            line
        })
        .collect();
    lines.push(json!({
        "model": model, "created_at": now_rfc3339(), "message": {"role": "assistant", "content": ""},
        "done": true, "done_reason": done_reason, "prompt_eval_count": prompt, "eval_count": count,
    }));
    let (latency, delay) = (st.settings.latency, st.settings.token_delay);
    let body =
        futures::stream::iter(lines.into_iter().enumerate()).then(move |(i, line)| async move {
            tokio::time::sleep(if i == 0 { latency } else { delay }).await;
            Ok::<_, Infallible>(Bytes::from(format!("{line}\n")))
        });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn ollama_tags(State(st): State<MockState>) -> Response {
    axum::Json(json!({"models": [{"name": *st.model, "model": *st.model, "size": 0, "digest": "0".repeat(64), "details": {"family": "secureinfer-mock"}}]})).into_response()
}

pub async fn run(
    host: &str,
    port: u16,
    model: String,
    latency: &str,
    token_delay: &str,
) -> anyhow::Result<ExitCode> {
    let parse_d = |s: &str, name: &str| {
        humantime::parse_duration(s)
            .with_context(|| format!("--{name}: expected a duration such as 20ms"))
    };
    let settings = MockSettings {
        latency: parse_d(latency, "latency")?,
        token_delay: parse_d(token_delay, "token-delay")?,
    };
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    println!(
        "secureinfer mock upstream (simulator) listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(
        listener.tap_io(crate::server::no_delay),
        router(model, settings),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Mock settings from milliseconds (tests and the load harness).
pub fn settings(latency_ms: u64, token_delay_ms: u64) -> MockSettings {
    MockSettings {
        latency: Duration::from_millis(latency_ms),
        token_delay: Duration::from_millis(token_delay_ms),
    }
}
