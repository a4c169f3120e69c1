//! The OpenAI chat API as the gateway speaks it to clients: request types, validation,
//! bounded body reading, and builders for the response shapes.

pub mod types;
pub mod validate;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use crate::error::ApiError;
pub use types::{ChatRequest, Message, Role, Usage};
pub use validate::{ValidatedChat, parse_chat};

/// Reads a request body, refusing it with 413 once it passes `limit` bytes, whether the
/// client declared its length or streamed it chunked.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // to_bytes reports the limit as a LengthLimitError in its source chain.
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        while let Some(err) = source {
            if err.is::<http_body_util::LengthLimitError>() {
                return ApiError::PayloadTooLarge { limit };
            }
            source = err.source();
        }
        ApiError::bad_request("could not read the request body", None)
    })
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::now_v7().simple())
}

/// A complete `chat.completion` object with one choice.
pub fn completion(
    id: &str,
    model: &str,
    content: &str,
    finish_reason: &str,
    usage: Usage,
    logprobs: Option<Value>,
) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "logprobs": logprobs,
            "finish_reason": finish_reason,
        }],
        "usage": usage,
    })
}

/// One `chat.completion.chunk`. `delta` is the partial message; `finish_reason` ends the choice.
pub fn chunk(
    id: &str,
    model: &str,
    delta: Value,
    finish_reason: Option<&str>,
    logprobs: Option<Value>,
) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": unix_now(),
        "model": model,
        "choices": [{
            "index": 0,
            "delta": delta,
            "logprobs": logprobs,
            "finish_reason": finish_reason,
        }],
    })
}

/// The final usage-only chunk OpenAI sends when `stream_options.include_usage` is set.
pub fn usage_chunk(id: &str, model: &str, usage: Usage) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": unix_now(),
        "model": model,
        "choices": [],
        "usage": usage,
    })
}
