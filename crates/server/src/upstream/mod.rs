//! Model servers behind one trait. Every upstream speaks OpenAI's shapes to the rest of the
//! gateway: a complete `chat.completion` object, or a stream of `chat.completion.chunk`s.

pub mod cache_salt;
pub mod mock;
mod ndjson;
mod ollama;
mod openai;
pub mod sse;
mod stream;
pub mod surface;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::StatusCode;
use futures::stream::BoxStream;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, UpstreamKind};
use crate::openai::{Usage, ValidatedChat};

pub use mock::MockUpstream;
pub use ollama::OllamaUpstream;
pub use openai::OpenAiUpstream;

/// Largest upstream response body the gateway buffers (non-streaming) or line it accepts (streaming).
pub const MAX_UPSTREAM_BODY: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the model server did not answer in time")]
    Timeout,
    #[error("the model server is unavailable: {0}")]
    Unavailable(String),
    #[error("the model server rejected the request: {message}")]
    Rejected { status: u16, message: String },
    #[error("the model server failed: {message}")]
    Failed { status: u16, message: String },
    #[error("the model server sent a malformed response: {0}")]
    Protocol(String),
}

impl UpstreamError {
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamError::Rejected { status, .. } => match *status {
                400 | 404 | 422 => StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
                _ => StatusCode::BAD_GATEWAY,
            },
            UpstreamError::Failed { status: 503, .. } => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamError::Failed { .. } | UpstreamError::Protocol(_) => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            UpstreamError::Timeout => "upstream_timeout",
            UpstreamError::Unavailable(_) => "upstream_unavailable",
            UpstreamError::Rejected { .. } => "upstream_rejected",
            UpstreamError::Failed { .. } => "upstream_error",
            UpstreamError::Protocol(_) => "upstream_protocol_error",
        }
    }

    /// Classifies a transport error from reqwest without exposing addresses to clients.
    pub(crate) fn from_transport(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            UpstreamError::Timeout
        } else if e.is_connect() {
            UpstreamError::Unavailable("connection refused or unreachable".into())
        } else if e.is_decode() || e.is_body() {
            UpstreamError::Protocol("the response body could not be read".into())
        } else {
            UpstreamError::Unavailable("transport error".into())
        }
    }

    /// Builds the error for a non-2xx upstream status, keeping a bounded piece of its message.
    pub(crate) fn from_status(status: u16, body: &[u8]) -> Self {
        let message = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .or_else(|| v.get("error"))
                    .or_else(|| v.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        let message: String = message.chars().take(500).collect();
        if (400..500).contains(&status) {
            UpstreamError::Rejected { status, message }
        } else {
            UpstreamError::Failed { status, message }
        }
    }
}

/// A complete, non-streamed answer in OpenAI shape.
#[derive(Debug, Clone)]
pub struct Completion {
    pub body: Value,
    pub usage: Option<Usage>,
}

/// One streamed `chat.completion.chunk`; `usage` is set on the usage-only final chunk.
#[derive(Debug, Clone)]
pub struct StreamItem {
    pub chunk: Value,
    pub usage: Option<Usage>,
}

pub type ChunkStream = BoxStream<'static, Result<StreamItem, UpstreamError>>;

#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub id: String,
    pub owned_by: String,
}

/// Whether a model server can keep tenants apart in its prefix (KV) cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaltSupport {
    /// It shares its cache across requests and honours `cache_salt` (vLLM >= 0.9.0).
    Supported,
    /// It shares its cache and has no per-tenant key, or we cannot tell that it has one.
    Unsupported,
    /// It keeps nothing between requests (the built-in mock).
    NoSharedCache,
}

#[async_trait]
pub trait Upstream: Send + Sync {
    fn kind(&self) -> UpstreamKind;
    /// Asked once at start-up (and for `PREFIX_CACHE_SALT=auto`).
    async fn salt_support(&self) -> SaltSupport;
    async fn chat(&self, req: &ValidatedChat) -> Result<Completion, UpstreamError>;
    async fn chat_stream(&self, req: &ValidatedChat) -> Result<ChunkStream, UpstreamError>;
    async fn models(&self) -> Result<Vec<ModelInfo>, UpstreamError>;
    /// A cheap liveness probe for `/health`.
    async fn health(&self) -> Result<(), UpstreamError>;
}

/// Shared HTTP client settings for real upstreams (TLS trust and identity from `tls::upstream`).
pub(crate) fn http_client(config: &Config) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = &config.upstream_api_key
        && let Ok(mut value) =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
    {
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let builder = reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(Duration::from_secs(5).min(config.upstream_timeout))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true);
    Ok(crate::tls::upstream::configure(builder, &config.upstream_tls)?.build()?)
}

/// Builds the upstream selected by `UPSTREAM`.
pub fn from_config(config: &Config) -> anyhow::Result<Arc<dyn Upstream>> {
    Ok(match config.upstream {
        UpstreamKind::Mock => Arc::new(MockUpstream::new(
            config.model_name.clone(),
            config.mock.clone(),
        )),
        UpstreamKind::OpenAi => Arc::new(OpenAiUpstream::new(
            http_client(config)?,
            &config.upstream_url,
            config.upstream_timeout,
        )),
        UpstreamKind::Ollama => Arc::new(OllamaUpstream::new(
            http_client(config)?,
            &config.upstream_url,
            config.upstream_timeout,
        )),
    })
}

/// Sends a request and waits at most `timeout` for the response head.
/// Adds the trace context for a model call: the gateway's own span when it exports traces,
/// otherwise the client's context unchanged, so the model server's spans join the trace.
pub(crate) fn traced(rb: reqwest::RequestBuilder, req: &ValidatedChat) -> reqwest::RequestBuilder {
    match crate::telemetry::outgoing(req.trace.as_ref()) {
        Some(t) => t.apply(rb),
        None => rb,
    }
}

pub(crate) async fn send(
    rb: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<reqwest::Response, UpstreamError> {
    match tokio::time::timeout(timeout, rb.send()).await {
        Err(_) => Err(UpstreamError::Timeout),
        Ok(Err(e)) => Err(UpstreamError::from_transport(&e)),
        Ok(Ok(resp)) => Ok(resp),
    }
}

/// Reads a whole (bounded) body; a non-2xx status becomes the matching error.
pub(crate) async fn read_json(
    resp: reqwest::Response,
    timeout: Duration,
) -> Result<Value, UpstreamError> {
    let status = resp.status().as_u16();
    let body = read_bounded(resp, timeout).await?;
    if !(200..300).contains(&status) {
        return Err(UpstreamError::from_status(status, &body));
    }
    serde_json::from_slice(&body)
        .map_err(|_| UpstreamError::Protocol("the response is not JSON".into()))
}

async fn read_bounded(
    mut resp: reqwest::Response,
    timeout: Duration,
) -> Result<Vec<u8>, UpstreamError> {
    let mut body = Vec::new();
    loop {
        let next = tokio::time::timeout(timeout, resp.chunk())
            .await
            .map_err(|_| UpstreamError::Timeout)?
            .map_err(|e| UpstreamError::from_transport(&e))?;
        let Some(bytes) = next else { return Ok(body) };
        if body.len() + bytes.len() > MAX_UPSTREAM_BODY {
            return Err(UpstreamError::Protocol("the response is too large".into()));
        }
        body.extend_from_slice(&bytes);
    }
}

/// Reads an error body of a non-2xx streaming response and turns it into an error.
pub(crate) async fn error_from(resp: reqwest::Response, timeout: Duration) -> UpstreamError {
    let status = resp.status().as_u16();
    match read_bounded(resp, timeout).await {
        Ok(body) => UpstreamError::from_status(status, &body),
        Err(e) => e,
    }
}
