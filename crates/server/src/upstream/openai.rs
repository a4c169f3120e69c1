//! Any OpenAI-compatible server (vLLM, llama.cpp server, TGI, OpenAI itself): requests pass
//! through with the client's own fields; SSE chunks are relayed one by one.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::cache_salt::{strip_cache_hits, version_supports_salt};
use super::sse::SseParser;
use super::stream::{Decoder, Items, decode};
use super::surface::{Endpoint, path};
use super::{
    ChunkStream, Completion, MAX_UPSTREAM_BODY, ModelInfo, SaltSupport, StreamItem, Upstream,
    UpstreamError,
};
use crate::config::UpstreamKind;
use crate::openai::{Usage, ValidatedChat};

pub struct OpenAiUpstream {
    client: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl OpenAiUpstream {
    /// `base` may be given with or without its `/v1` suffix.
    pub fn new(client: reqwest::Client, base: &str, timeout: Duration) -> Self {
        let base = base.trim_end_matches('/');
        let base = if base.ends_with("/v1") {
            base.to_string()
        } else {
            format!("{base}/v1")
        };
        OpenAiUpstream {
            client,
            base,
            timeout,
        }
    }

    fn url(&self, endpoint: Endpoint) -> String {
        let p = path(UpstreamKind::OpenAi, endpoint);
        match endpoint {
            // vLLM serves /version at the root, beside /v1.
            Endpoint::Version => format!("{}{p}", self.base.trim_end_matches("/v1")),
            _ => format!("{}{p}", self.base),
        }
    }

    fn body(req: &ValidatedChat, stream: bool) -> Value {
        let mut body = req.raw.clone();
        body.insert("stream".into(), Value::Bool(stream));
        if stream {
            // Always ask for usage so token accounting works; it is dropped for clients that did not ask.
            body.insert("stream_options".into(), json!({"include_usage": true}));
        } else {
            body.remove("stream_options");
        }
        Value::Object(body)
    }
}

#[async_trait]
impl Upstream for OpenAiUpstream {
    fn kind(&self) -> UpstreamKind {
        UpstreamKind::OpenAi
    }

    /// vLLM answers `GET /version`; other OpenAI-compatible servers do not, and may reject an
    /// unknown `cache_salt` field, so anything but vLLM >= 0.9.0 counts as unsupported.
    async fn salt_support(&self) -> SaltSupport {
        let probe = async {
            let resp = super::send(
                self.client.get(self.url(Endpoint::Version)),
                self.timeout.min(Duration::from_secs(3)),
            )
            .await
            .ok()?;
            let body = super::read_json(resp, self.timeout.min(Duration::from_secs(3)))
                .await
                .ok()?;
            version_supports_salt(&body)
        };
        match probe.await {
            Some(true) => SaltSupport::Supported,
            _ => SaltSupport::Unsupported,
        }
    }

    async fn chat(&self, req: &ValidatedChat) -> Result<Completion, UpstreamError> {
        let rb = self
            .client
            .post(self.url(Endpoint::Chat))
            .json(&Self::body(req, false));
        let rb = super::traced(rb, req);
        let resp = super::send(rb, self.timeout).await?;
        let mut body = super::read_json(resp, self.timeout).await?;
        strip_cache_hits(&mut body);
        if body.get("choices").and_then(Value::as_array).is_none() {
            return Err(UpstreamError::Protocol(
                "the response has no choices".into(),
            ));
        }
        let usage = Usage::from_value(body.get("usage"));
        Ok(Completion { body, usage })
    }

    async fn chat_stream(&self, req: &ValidatedChat) -> Result<ChunkStream, UpstreamError> {
        let rb = self
            .client
            .post(self.url(Endpoint::Chat))
            .json(&Self::body(req, true));
        let rb = super::traced(rb, req);
        let resp = super::send(rb, self.timeout).await?;
        if !resp.status().is_success() {
            return Err(super::error_from(resp, self.timeout).await);
        }
        Ok(decode(
            resp,
            SseDecoder {
                parser: SseParser::new(MAX_UPSTREAM_BODY),
                finished_choice: false,
            },
            self.timeout,
        ))
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, UpstreamError> {
        let resp = super::send(self.client.get(self.url(Endpoint::Models)), self.timeout).await?;
        let body = super::read_json(resp, self.timeout).await?;
        let data = body
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| UpstreamError::Protocol("the model list has no data".into()))?;
        Ok(data
            .iter()
            .filter_map(|m| {
                Some(ModelInfo {
                    id: m.get("id")?.as_str()?.to_string(),
                    owned_by: m
                        .get("owned_by")
                        .and_then(Value::as_str)
                        .unwrap_or("upstream")
                        .to_string(),
                })
            })
            .collect())
    }

    async fn health(&self) -> Result<(), UpstreamError> {
        let resp = super::send(
            self.client.get(self.url(Endpoint::Models)),
            self.timeout.min(Duration::from_secs(3)),
        )
        .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(UpstreamError::from_status(resp.status().as_u16(), b""))
        }
    }
}

struct SseDecoder {
    parser: SseParser,
    finished_choice: bool,
}

impl Decoder for SseDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Items) -> bool {
        let events = match self.parser.push(bytes) {
            Ok(events) => events,
            Err(_) => {
                out.push_back(Err(UpstreamError::Protocol("invalid event stream".into())));
                return true;
            }
        };
        for data in events {
            if data.trim() == "[DONE]" {
                return true;
            }
            let mut chunk: Value = match serde_json::from_str(&data) {
                Ok(v) => v,
                Err(_) => {
                    out.push_back(Err(UpstreamError::Protocol(
                        "a stream chunk is not JSON".into(),
                    )));
                    return true;
                }
            };
            if chunk.get("error").is_some() {
                out.push_back(Err(UpstreamError::from_status(500, data.as_bytes())));
                return true;
            }
            let finished = chunk
                .pointer("/choices/0/finish_reason")
                .is_some_and(|f| !f.is_null());
            self.finished_choice |= finished;
            strip_cache_hits(&mut chunk);
            let usage = Usage::from_value(chunk.get("usage"));
            out.push_back(Ok(StreamItem { chunk, usage }));
        }
        false
    }

    fn end(&mut self, out: &mut Items) {
        // Some servers close without [DONE]; a stream that never finished its choice was cut off.
        if !self.finished_choice {
            out.push_back(Err(UpstreamError::Protocol(
                "the stream ended before the answer finished".into(),
            )));
        }
    }
}
