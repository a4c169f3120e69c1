//! A scriptable test upstream: a real HTTP server on 127.0.0.1:0 that speaks Ollama's
//! NDJSON API (`/api/chat`, `/api/tags`, `/api/version`) and OpenAI's SSE API
//! (`/v1/chat/completions`, `/v1/models`) with the shapes of their public docs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// The tokens every normal answer streams; together they read "Hello world".
pub const TOKENS: [&str; 2] = ["Hello", " world"];
pub const PROMPT_TOKENS: u64 = 7;

#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answers "Hello world", done_reason / finish_reason `stop`.
    Normal,
    /// Same answer, but cut: done_reason / finish_reason `length`.
    Length,
    /// Never sends a response head (the gateway's UPSTREAM_TIMEOUT must fire).
    Hang,
    /// Answers with this status and body.
    Status(u16, &'static str),
    /// 200 with a body that is not JSON (non-stream), or a stream line / event that is not JSON.
    Malformed,
    /// Streams the first token, then ends the body cleanly without the final message.
    CutOff,
    /// Streams the first token, then the connection breaks (body error).
    Break,
    /// Streams a token every 20 ms forever and signals `dropped` when its body is dropped.
    Endless,
    /// OpenAI only: the normal answer with full-precision logprobs, `bytes` and 20
    /// alternatives per token whatever was asked (an upstream that ignores the gateway's clamp).
    Logprobs,
    /// Answers with these content deltas, streamed one per chunk / NDJSON line (non-streaming:
    /// their concatenation). `{system}` in a delta becomes the request's first system message,
    /// as the gateway forwarded it. OpenAI format: with `logprobs: true` each delta carries one
    /// log-probability entry whose token is the delta.
    Script(Vec<String>),
    /// `Script`, then "la " every 20 ms forever (signals `dropped` like `Endless`).
    ScriptThenEndless(Vec<String>),
    /// Answers "Sure: {system}" as two deltas split at this byte (clamped to a char boundary).
    EchoSystemSplit(usize),
    /// OpenAI format only: one tool call whose arguments arrive as these deltas.
    ToolScript(Vec<String>),
}

/// The request's first system message text.
fn system_of(req: &Value) -> String {
    req["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "system"))
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
        .unwrap_or_default()
}

/// The content deltas a scripted behaviour answers with, if it is one.
fn script_deltas(behaviour: &Behaviour, req: &Value) -> Option<Vec<String>> {
    let system = system_of(req);
    match behaviour {
        Behaviour::Script(d) | Behaviour::ScriptThenEndless(d) => {
            Some(d.iter().map(|x| x.replace("{system}", &system)).collect())
        }
        Behaviour::EchoSystemSplit(at) => {
            let text = format!("Sure: {system}");
            let mut at = (*at).min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            Some(vec![text[..at].to_string(), text[at..].to_string()])
        }
        _ => None,
    }
}

#[derive(Clone)]
pub struct Fake {
    pub url: String,
    behaviour: Arc<Mutex<Behaviour>>,
    hits: Arc<AtomicUsize>,
    last: Arc<Mutex<Option<Value>>>,
    /// Notified (one permit) when an `Endless` body is dropped, i.e. the connection went away.
    pub dropped: Arc<Notify>,
    /// `GET /version` answers `{"version": ...}` (as vLLM does) when set; 404 otherwise.
    version: Arc<Mutex<Option<&'static str>>>,
    /// Usage reports `prompt_tokens_details.cached_tokens` (as vLLM and OpenAI do) when set.
    cached_tokens: Arc<Mutex<bool>>,
    /// Method and path of every request to a route the fake does not serve.
    other: Arc<Mutex<Vec<String>>>,
    /// `traceparent` and `tracestate` of the last chat request.
    trace: Arc<Mutex<(Option<String>, Option<String>)>>,
}

impl Fake {
    pub async fn start(behaviour: Behaviour) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Fake::new(
            format!("http://{}", listener.local_addr().unwrap()),
            behaviour,
        );
        let app = fake.router();
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    /// The same fake behind HTTPS (the gateway's own TLS listener), with `tls` as its
    /// certificate and, if set there, required client certificates.
    pub async fn start_tls(behaviour: Behaviour, tls: secureinfer::config::ServerTls) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Fake::new(
            format!(
                "https://localhost:{}",
                listener.local_addr().unwrap().port()
            ),
            behaviour,
        );
        let files = secureinfer::tls::TlsFiles::load(tls).unwrap();
        let server = secureinfer::tls::serve_tls(listener, files, fake.router()).unwrap();
        tokio::spawn(async move { server.await });
        fake
    }

    fn new(url: String, behaviour: Behaviour) -> Fake {
        Fake {
            url,
            behaviour: Arc::new(Mutex::new(behaviour)),
            hits: Arc::new(AtomicUsize::new(0)),
            last: Arc::new(Mutex::new(None)),
            dropped: Arc::new(Notify::new()),
            version: Arc::new(Mutex::new(None)),
            cached_tokens: Arc::new(Mutex::new(false)),
            other: Arc::new(Mutex::new(Vec::new())),
            trace: Arc::new(Mutex::new((None, None))),
        }
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/api/chat", post(ollama_chat))
            .route("/api/tags", get(ollama_tags))
            .route(
                "/api/version",
                get(|| async { axum::Json(json!({"version": "0.12.0"})) }),
            )
            .route("/v1/chat/completions", post(openai_chat))
            .route("/v1/models", get(openai_models))
            .route("/version", get(vllm_version))
            .fallback(unknown_route)
            .with_state(self.clone())
    }

    /// Makes `GET /version` report this vLLM version.
    pub fn set_version(&self, version: &'static str) {
        *self.version.lock().unwrap() = Some(version);
    }

    /// Makes usage objects report cached prompt tokens.
    pub fn set_cached_tokens(&self, on: bool) {
        *self.cached_tokens.lock().unwrap() = on;
    }

    /// Requests that reached a route the fake does not serve ("METHOD /path").
    pub fn other_requests(&self) -> Vec<String> {
        self.other.lock().unwrap().clone()
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    /// How many chat requests reached this upstream.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The JSON body of the last chat request received.
    pub fn last_body(&self) -> Value {
        self.last
            .lock()
            .unwrap()
            .clone()
            .expect("the upstream received no chat request")
    }

    /// Waits (bounded) until an `Endless` stream's body has been dropped.
    pub async fn wait_dropped(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.dropped.notified())
            .await
            .expect("the upstream stream was not cancelled within 10 s");
    }

    /// `traceparent` and `tracestate` headers of the last chat request.
    pub fn last_trace(&self) -> (Option<String>, Option<String>) {
        self.trace.lock().unwrap().clone()
    }

    fn record_headers(&self, headers: &HeaderMap) {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        *self.trace.lock().unwrap() = (get("traceparent"), get("tracestate"));
    }

    fn record(&self, body: &Bytes) -> Behaviour {
        self.hits.fetch_add(1, Ordering::SeqCst);
        *self.last.lock().unwrap() = serde_json::from_slice(body).ok();
        self.behaviour.lock().unwrap().clone()
    }
}

/// Fires the fake's `dropped` notification when the body stream holding it is dropped.
struct DropGuard(Arc<Notify>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

type Piece = Result<Bytes, std::io::Error>;

fn streamed(content_type: &'static str, pieces: Vec<Piece>) -> Response {
    let body = Body::from_stream(futures::stream::iter(pieces));
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn endless_pieces(
    dropped: Arc<Notify>,
    piece: fn() -> Bytes,
) -> impl futures::Stream<Item = Piece> + Send + 'static {
    futures::stream::unfold((DropGuard(dropped), 0u64), move |(g, i)| async move {
        if i > 0 {
            // Pacing of an endless answer, not synchronisation.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some((Ok::<_, std::io::Error>(piece()), (g, i + 1)))
    })
}

fn endless(content_type: &'static str, dropped: Arc<Notify>, piece: fn() -> Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(endless_pieces(dropped, piece)),
    )
        .into_response()
}

/// The first piece, then the connection breaks. The body is pending once in between, so the
/// server flushes the first piece to the socket before it aborts (protocol order, not a timer).
fn broken(first: Piece, content_type: &'static str) -> Response {
    let failure = futures::stream::once(async {
        tokio::task::yield_now().await;
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "test upstream breaks the stream",
        ))
    });
    let body = futures::stream::iter([first]).chain(failure);
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response()
}

fn status(code: u16, body: &'static str) -> Response {
    let status = StatusCode::from_u16(code).unwrap();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

// ---------------------------------------------------------------- Ollama

fn ollama_line(model: &str, content: &str) -> Value {
    json!({"model": model, "created_at": "2026-01-01T00:00:00Z",
           "message": {"role": "assistant", "content": content}, "done": false})
}

fn ollama_done(model: &str, content: &str, reason: &str) -> Value {
    json!({"model": model, "created_at": "2026-01-01T00:00:00Z",
           "message": {"role": "assistant", "content": content},
           "done": true, "done_reason": reason, "total_duration": 1_000_000,
           "load_duration": 1000, "prompt_eval_count": PROMPT_TOKENS, "prompt_eval_duration": 1000,
           "eval_count": TOKENS.len(), "eval_duration": 1000})
}

fn nd(v: &Value) -> Piece {
    Ok(Bytes::from(format!("{v}\n")))
}

async fn ollama_chat(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    fake.record_headers(&headers);
    let behaviour = fake.record(&body);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = req["model"].as_str().unwrap_or("").to_string();
    let stream = req["stream"].as_bool().unwrap_or(true);
    if let Some(deltas) = script_deltas(&behaviour, &req) {
        if !stream {
            return axum::Json(ollama_done(&model, &deltas.concat(), "stop")).into_response();
        }
        let mut pieces: Vec<Piece> = deltas.iter().map(|t| nd(&ollama_line(&model, t))).collect();
        if matches!(behaviour, Behaviour::ScriptThenEndless(_)) {
            let head = futures::stream::iter(pieces);
            let tail = endless_pieces(fake.dropped.clone(), || {
                Bytes::from(format!("{}\n", ollama_line("test-model", "la ")))
            });
            return (
                [(header::CONTENT_TYPE, "application/x-ndjson")],
                Body::from_stream(head.chain(tail)),
            )
                .into_response();
        }
        pieces.push(nd(&ollama_done(&model, "", "stop")));
        return streamed("application/x-ndjson", pieces);
    }
    let reason = match behaviour {
        Behaviour::Normal | Behaviour::Logprobs => "stop",
        Behaviour::Length => "length",
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Status(code, body) => return status(code, body),
        Behaviour::Malformed if !stream => return status(200, "{\"model\": oops"),
        Behaviour::Malformed => {
            let pieces = vec![
                nd(&ollama_line(&model, "Hello")),
                Ok("not json at all\n".into()),
            ];
            return streamed("application/x-ndjson", pieces);
        }
        Behaviour::CutOff => {
            return streamed(
                "application/x-ndjson",
                vec![nd(&ollama_line(&model, "Hello"))],
            );
        }
        Behaviour::Break => {
            return broken(nd(&ollama_line(&model, "Hello")), "application/x-ndjson");
        }
        Behaviour::Endless => {
            return endless("application/x-ndjson", fake.dropped.clone(), || {
                Bytes::from(format!("{}\n", ollama_line("test-model", "la ")))
            });
        }
        Behaviour::ToolScript(_) => return status(500, "{\"error\":\"not scripted for ollama\"}"),
        Behaviour::Script(_) | Behaviour::ScriptThenEndless(_) | Behaviour::EchoSystemSplit(_) => {
            unreachable!("handled above")
        }
    };
    if !stream {
        return axum::Json(ollama_done(&model, &TOKENS.concat(), reason)).into_response();
    }
    let mut pieces: Vec<Piece> = TOKENS.iter().map(|t| nd(&ollama_line(&model, t))).collect();
    pieces.push(nd(&ollama_done(&model, "", reason)));
    streamed("application/x-ndjson", pieces)
}

async fn ollama_tags() -> axum::Json<Value> {
    axum::Json(json!({"models": [
        {"name": "test-model", "model": "test-model", "size": 1, "digest": "ab", "details": {}},
        {"name": "other-model:7b", "model": "other-model:7b", "size": 1, "digest": "cd", "details": {}},
    ]}))
}

// ---------------------------------------------------------------- OpenAI

pub fn openai_chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
           "model": "test-model", "system_fingerprint": "fp_fake",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

pub fn openai_usage_chunk() -> Value {
    json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
           "model": "test-model", "choices": [],
           "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 2, "total_tokens": 9}})
}

/// The chunks a normal streamed answer consists of, in order (usage chunk excluded).
pub fn openai_chunks(finish: &str) -> Vec<Value> {
    let mut chunks = vec![openai_chunk(
        json!({"role": "assistant", "content": ""}),
        None,
    )];
    chunks.extend(
        TOKENS
            .iter()
            .map(|t| openai_chunk(json!({"content": t}), None)),
    );
    chunks.push(openai_chunk(json!({}), Some(finish)));
    chunks
}

fn sse(v: &Value) -> Piece {
    Ok(Bytes::from(format!("data: {v}\n\n")))
}

async fn openai_chat(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    fake.record_headers(&headers);
    let behaviour = fake.record(&body);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let stream = req["stream"].as_bool().unwrap_or(false);
    let include_usage = req["stream_options"]["include_usage"].as_bool() == Some(true);
    let with_logprobs = matches!(behaviour, Behaviour::Logprobs);
    let logprobs = req["logprobs"].as_bool() == Some(true);
    if let Some(deltas) = script_deltas(&behaviour, &req) {
        return openai_script(&fake, &behaviour, deltas, stream, include_usage, logprobs);
    }
    if let Behaviour::ToolScript(deltas) = &behaviour {
        return openai_tool_script(deltas, stream);
    }
    let finish = match behaviour {
        Behaviour::Normal | Behaviour::Logprobs => "stop",
        Behaviour::Length => "length",
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Status(code, body) => return status(code, body),
        Behaviour::Malformed if !stream => return status(200, "{\"choices\": [oops"),
        Behaviour::Malformed => {
            let first = openai_chunks("stop").remove(0);
            return streamed(
                "text/event-stream",
                vec![sse(&first), Ok("data: {oops\n\n".into())],
            );
        }
        Behaviour::CutOff => {
            let first = openai_chunks("stop").remove(0);
            return streamed("text/event-stream", vec![sse(&first)]);
        }
        Behaviour::Break => {
            let first = openai_chunks("stop").remove(0);
            return broken(sse(&first), "text/event-stream");
        }
        Behaviour::Endless => {
            return endless("text/event-stream", fake.dropped.clone(), || {
                Bytes::from(format!(
                    "data: {}\n\n",
                    openai_chunk(json!({"content": "la "}), None)
                ))
            });
        }
        Behaviour::Script(_)
        | Behaviour::ScriptThenEndless(_)
        | Behaviour::EchoSystemSplit(_)
        | Behaviour::ToolScript(_) => unreachable!("handled above"),
    };
    if !stream {
        let logprobs = if with_logprobs {
            json!({"content": TOKENS.iter().map(|t| full_logprob(t)).collect::<Vec<_>>()})
        } else {
            Value::Null
        };
        return axum::Json(with_cache_hits(&fake, json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": "test-model",
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": TOKENS.concat(),
                         "refusal": null}, "logprobs": logprobs, "finish_reason": finish}],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 2, "total_tokens": 9},
        })))
        .into_response();
    }
    let mut chunks = openai_chunks(finish);
    if with_logprobs {
        for (chunk, token) in chunks[1..=TOKENS.len()].iter_mut().zip(TOKENS) {
            chunk["choices"][0]["logprobs"] = json!({"content": [full_logprob(token)]});
        }
    }
    let mut pieces: Vec<Piece> = chunks.iter().map(sse).collect();
    if include_usage {
        pieces.push(sse(&with_cache_hits(&fake, openai_usage_chunk())));
    }
    pieces.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
    streamed("text/event-stream", pieces)
}

/// A logprob entry at full precision with `bytes` and 20 alternatives.
pub fn full_logprob(token: &str) -> Value {
    let alts: Vec<Value> = (0..20)
        .map(|i| {
            let t = format!("{token}{i}");
            json!({"token": t, "logprob": -0.123_456_789 - f64::from(i), "bytes": t.as_bytes()})
        })
        .collect();
    json!({"token": token, "logprob": -0.123_456_789, "bytes": token.as_bytes(), "top_logprobs": alts})
}

async fn vllm_version(State(fake): State<Fake>) -> Response {
    match *fake.version.lock().unwrap() {
        Some(v) => axum::Json(json!({"version": v})).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn unknown_route(State(fake): State<Fake>, req: axum::extract::Request) -> Response {
    fake.other
        .lock()
        .unwrap()
        .push(format!("{} {}", req.method(), req.uri().path()));
    StatusCode::NOT_FOUND.into_response()
}

/// Adds `prompt_tokens_details.cached_tokens` to a usage object when the fake reports them.
fn with_cache_hits(fake: &Fake, mut v: Value) -> Value {
    if *fake.cached_tokens.lock().unwrap() && v.get("usage").is_some_and(Value::is_object) {
        v["usage"]["prompt_tokens_details"] = json!({"cached_tokens": 5});
    }
    v
}

async fn openai_models() -> axum::Json<Value> {
    axum::Json(json!({"object": "list", "data": [
        {"id": "test-model", "object": "model", "created": 1, "owned_by": "fake-org"},
        {"id": "other-model", "object": "model", "created": 1, "owned_by": "fake-org"},
    ]}))
}

/// One log-probability entry for `token`, in OpenAI's shape.
pub fn logprob_entry(token: &str) -> Value {
    json!({"token": token, "logprob": -0.5, "bytes": token.as_bytes(),
           "top_logprobs": [{"token": token, "logprob": -0.5, "bytes": token.as_bytes()}]})
}

fn openai_script(
    fake: &Fake,
    behaviour: &Behaviour,
    deltas: Vec<String>,
    stream: bool,
    include_usage: bool,
    logprobs: bool,
) -> Response {
    if !stream {
        let lp = logprobs.then(
            || json!({"content": deltas.iter().map(|d| logprob_entry(d)).collect::<Vec<_>>()}),
        );
        return axum::Json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": "test-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": deltas.concat()},
                         "logprobs": lp, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": deltas.len(),
                      "total_tokens": PROMPT_TOKENS + deltas.len() as u64},
        }))
        .into_response();
    }
    let mut pieces: Vec<Piece> = vec![sse(&openai_chunk(
        json!({"role": "assistant", "content": ""}),
        None,
    ))];
    for d in &deltas {
        let mut c = openai_chunk(json!({"content": d}), None);
        if logprobs {
            c["choices"][0]["logprobs"] = json!({"content": [logprob_entry(d)]});
        }
        pieces.push(sse(&c));
    }
    if matches!(behaviour, Behaviour::ScriptThenEndless(_)) {
        let tail = endless_pieces(fake.dropped.clone(), || {
            Bytes::from(format!(
                "data: {}\n\n",
                openai_chunk(json!({"content": "la "}), None)
            ))
        });
        return (
            [(header::CONTENT_TYPE, "text/event-stream")],
            Body::from_stream(futures::stream::iter(pieces).chain(tail)),
        )
            .into_response();
    }
    pieces.push(sse(&openai_chunk(json!({}), Some("stop"))));
    if include_usage {
        pieces.push(sse(&openai_usage_chunk()));
    }
    pieces.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
    streamed("text/event-stream", pieces)
}

fn openai_tool_script(deltas: &[String], stream: bool) -> Response {
    if !stream {
        return axum::Json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": "test-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "call_1", "type": "function",
                                "function": {"name": "lookup", "arguments": deltas.concat()}}]},
                "logprobs": null, "finish_reason": "tool_calls"}],
        }))
        .into_response();
    }
    let mut pieces: Vec<Piece> = Vec::new();
    for (i, d) in deltas.iter().enumerate() {
        let call = if i == 0 {
            json!({"index": 0, "id": "call_1", "type": "function",
                   "function": {"name": "lookup", "arguments": d}})
        } else {
            json!({"index": 0, "function": {"arguments": d}})
        };
        pieces.push(sse(&openai_chunk(json!({"tool_calls": [call]}), None)));
    }
    pieces.push(sse(&openai_chunk(json!({}), Some("tool_calls"))));
    pieces.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
    streamed("text/event-stream", pieces)
}
