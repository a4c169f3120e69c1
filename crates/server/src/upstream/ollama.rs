//! Ollama's native API (`/api/chat` with NDJSON streaming, `/api/tags`), translated to and
//! from the OpenAI schema, including token counts and finish reasons.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::ndjson::LineSplitter;
use super::stream::{Decoder, Items, decode};
use super::surface::{Endpoint, path};
use super::{
    ChunkStream, Completion, MAX_UPSTREAM_BODY, ModelInfo, SaltSupport, StreamItem, Upstream,
    UpstreamError,
};
use crate::config::UpstreamKind;
use crate::openai::types::{Content, ContentPart, Stop};
use crate::openai::{self, Role, Usage, ValidatedChat};

pub struct OllamaUpstream {
    client: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl OllamaUpstream {
    pub fn new(client: reqwest::Client, base: &str, timeout: Duration) -> Self {
        OllamaUpstream {
            client,
            base: base.trim_end_matches('/').to_string(),
            timeout,
        }
    }

    fn url(&self, endpoint: Endpoint) -> String {
        format!("{}{}", self.base, path(UpstreamKind::Ollama, endpoint))
    }
}

/// Ollama's role names: it has no `developer` role, and `function` is the old name of `tool`.
fn role(r: Role) -> &'static str {
    match r {
        Role::System | Role::Developer => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool | Role::Function => "tool",
    }
}

/// Builds the `/api/chat` body. Ollama accepts only inline images, as bare base64.
pub(crate) fn request_body(req: &ValidatedChat, stream: bool) -> Result<Value, UpstreamError> {
    let typed = &req.typed;
    let mut messages = Vec::with_capacity(typed.messages.len());
    for (i, m) in typed.messages.iter().enumerate() {
        let mut msg = Map::new();
        msg.insert("role".into(), role(m.role).into());
        msg.insert("content".into(), m.text().into());
        if let Some(Content::Parts(parts)) = &m.content {
            let mut images = Vec::new();
            for part in parts {
                if let ContentPart::ImageUrl { image_url } = part {
                    let data = image_url
                        .url
                        .strip_prefix("data:")
                        .and_then(|rest| rest.split_once(";base64,"))
                        .map(|(_, b64)| b64.to_string())
                        .ok_or_else(|| UpstreamError::Rejected {
                            status: 400,
                            message: format!("messages[{i}]: the Ollama upstream accepts images only as data: URLs"),
                        })?;
                    images.push(Value::String(data));
                }
            }
            if !images.is_empty() {
                msg.insert("images".into(), Value::Array(images));
            }
        }
        if let Some(calls) = &m.tool_calls {
            msg.insert("tool_calls".into(), Value::Array(calls.clone()));
        }
        messages.push(Value::Object(msg));
    }

    let mut options = Map::new();
    options.insert("num_predict".into(), req.max_tokens.into());
    for (ours, theirs) in [
        (typed.temperature, "temperature"),
        (typed.top_p, "top_p"),
        (typed.presence_penalty, "presence_penalty"),
        (typed.frequency_penalty, "frequency_penalty"),
    ] {
        if let Some(v) = ours {
            options.insert(theirs.into(), v.into());
        }
    }
    if let Some(seed) = typed.seed {
        options.insert("seed".into(), seed.into());
    }
    match &typed.stop {
        Some(Stop::One(s)) => {
            options.insert("stop".into(), json!([s]));
        }
        Some(Stop::Many(list)) => {
            options.insert("stop".into(), json!(list));
        }
        None => {}
    }

    let mut body = json!({
        "model": typed.model,
        "messages": messages,
        "stream": stream,
        "options": options,
    });
    if typed
        .response_format
        .as_ref()
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        == Some("json_object")
    {
        body["format"] = "json".into();
    }
    if let Some(tools) = req.raw.get("tools") {
        body["tools"] = tools.clone();
    }
    if typed.logprobs == Some(true) {
        body["logprobs"] = true.into();
        if let Some(top) = typed.top_logprobs {
            body["top_logprobs"] = top.into();
        }
    }
    Ok(body)
}

fn finish_reason(v: &Value) -> &'static str {
    if v.pointer("/message/tool_calls")
        .is_some_and(|t| t.as_array().is_some_and(|a| !a.is_empty()))
    {
        return "tool_calls";
    }
    match v.get("done_reason").and_then(Value::as_str) {
        Some("length") => "length",
        _ => "stop",
    }
}

fn usage(v: &Value) -> Usage {
    Usage::new(
        v.get("prompt_eval_count")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        v.get("eval_count").and_then(Value::as_u64).unwrap_or(0),
    )
}

/// Ollama's logprobs entries already use OpenAI's field names; wrap them as `{"content": [...]}`.
fn logprobs(v: &Value) -> Option<Value> {
    v.get("logprobs")
        .filter(|l| l.is_array())
        .map(|l| json!({ "content": l }))
}

fn tool_calls(v: &Value) -> Option<Value> {
    let calls = v.pointer("/message/tool_calls")?.as_array()?;
    let converted: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let f = c.get("function").cloned().unwrap_or(Value::Null);
            // OpenAI carries arguments as a JSON string; Ollama as an object.
            let args = match f.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "{}".into(),
            };
            json!({
                "index": i,
                "id": format!("call_{i}"),
                "type": "function",
                "function": {"name": f.get("name").cloned().unwrap_or(Value::Null), "arguments": args},
            })
        })
        .collect();
    (!converted.is_empty()).then_some(Value::Array(converted))
}

pub(crate) fn completion_from(v: &Value, model: &str) -> Result<Completion, UpstreamError> {
    let content = v
        .pointer("/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| UpstreamError::Protocol("the response has no message content".into()))?;
    let usage = usage(v);
    let mut body = openai::completion(
        &openai::completion_id(),
        model,
        content,
        finish_reason(v),
        usage,
        logprobs(v),
    );
    if let Some(calls) = tool_calls(v) {
        body["choices"][0]["message"]["tool_calls"] = calls;
    }
    Ok(Completion {
        body,
        usage: Some(usage),
    })
}

#[async_trait]
impl Upstream for OllamaUpstream {
    fn kind(&self) -> UpstreamKind {
        UpstreamKind::Ollama
    }

    async fn salt_support(&self) -> SaltSupport {
        // Ollama reuses its KV cache across requests and has no per-user cache key.
        SaltSupport::Unsupported
    }

    async fn chat(&self, req: &ValidatedChat) -> Result<Completion, UpstreamError> {
        let body = request_body(req, false)?;
        let resp = super::send(
            super::traced(self.client.post(self.url(Endpoint::Chat)).json(&body), req),
            self.timeout,
        )
        .await?;
        let v = super::read_json(resp, self.timeout).await?;
        if let Some(err) = v.get("error").and_then(Value::as_str) {
            return Err(UpstreamError::Failed {
                status: 500,
                message: err.chars().take(500).collect(),
            });
        }
        completion_from(&v, &req.typed.model)
    }

    async fn chat_stream(&self, req: &ValidatedChat) -> Result<ChunkStream, UpstreamError> {
        let body = request_body(req, true)?;
        let resp = super::send(
            super::traced(self.client.post(self.url(Endpoint::Chat)).json(&body), req),
            self.timeout,
        )
        .await?;
        if !resp.status().is_success() {
            return Err(super::error_from(resp, self.timeout).await);
        }
        let decoder = NdjsonDecoder {
            lines: LineSplitter::default(),
            id: openai::completion_id(),
            model: req.typed.model.clone(),
            sent_role: false,
        };
        Ok(decode(resp, decoder, self.timeout))
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, UpstreamError> {
        let resp = super::send(self.client.get(self.url(Endpoint::Models)), self.timeout).await?;
        let v = super::read_json(resp, self.timeout).await?;
        let models = v
            .get("models")
            .and_then(Value::as_array)
            .ok_or_else(|| UpstreamError::Protocol("the tag list has no models".into()))?;
        Ok(models
            .iter()
            .filter_map(|m| {
                let id = m.get("name").or_else(|| m.get("model"))?.as_str()?;
                Some(ModelInfo {
                    id: id.to_string(),
                    owned_by: "ollama".into(),
                })
            })
            .collect())
    }

    async fn health(&self) -> Result<(), UpstreamError> {
        let resp = super::send(
            self.client.get(self.url(Endpoint::Version)),
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

/// Translates Ollama's NDJSON stream into OpenAI chunks, ending with a usage-only chunk.
struct NdjsonDecoder {
    lines: LineSplitter,
    id: String,
    model: String,
    sent_role: bool,
}

impl NdjsonDecoder {
    /// Returns true when the line was the final (`done`) one.
    fn line(&mut self, line: &[u8], out: &mut Items) -> bool {
        let v: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(_) => {
                out.push_back(Err(UpstreamError::Protocol(
                    "a stream line is not JSON".into(),
                )));
                return true;
            }
        };
        if let Some(err) = v.get("error").and_then(Value::as_str) {
            out.push_back(Err(UpstreamError::Failed {
                status: 500,
                message: err.chars().take(500).collect(),
            }));
            return true;
        }
        let content = v
            .pointer("/message/content")
            .and_then(Value::as_str)
            .unwrap_or("");
        let done = v.get("done").and_then(Value::as_bool).unwrap_or(false);
        let mut delta = Map::new();
        if !self.sent_role {
            delta.insert("role".into(), "assistant".into());
            self.sent_role = true;
        }
        if !content.is_empty() || !done {
            delta.insert("content".into(), content.into());
        }
        if let Some(calls) = tool_calls(&v) {
            delta.insert("tool_calls".into(), calls);
        }
        let finish = done.then(|| finish_reason(&v));
        let chunk = openai::chunk(
            &self.id,
            &self.model,
            Value::Object(delta),
            finish,
            logprobs(&v),
        );
        out.push_back(Ok(StreamItem { chunk, usage: None }));
        if done {
            let usage = usage(&v);
            out.push_back(Ok(StreamItem {
                chunk: openai::usage_chunk(&self.id, &self.model, usage),
                usage: Some(usage),
            }));
        }
        done
    }
}

impl Decoder for NdjsonDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Items) -> bool {
        let Some(lines) = self.lines.push(bytes, MAX_UPSTREAM_BODY) else {
            out.push_back(Err(UpstreamError::Protocol(
                "a stream line is too long".into(),
            )));
            return true;
        };
        for line in lines {
            if self.line(&line, out) {
                return true;
            }
        }
        false
    }

    fn end(&mut self, out: &mut Items) {
        if let Some(line) = self.lines.finish()
            && self.line(&line, out)
        {
            return;
        }
        out.push_back(Err(UpstreamError::Protocol(
            "the stream ended before the answer finished".into(),
        )));
    }
}
