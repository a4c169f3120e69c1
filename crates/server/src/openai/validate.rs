//! Request validation: everything a client controls is bounded here, before the request
//! reaches the security gate or the model. Each error names the offending field.

use serde_json::{Map, Value};

use super::types::{ChatRequest, Content, ContentPart, Role, Stop};
use crate::config::{AllowedModels, Limits};
use crate::error::ApiError;

/// A request that passed validation: the typed view the gateway reads, and the raw JSON
/// object (with every field the client sent) that is forwarded upstream.
#[derive(Debug, Clone)]
pub struct ValidatedChat {
    pub typed: ChatRequest,
    pub raw: Map<String, Value>,
    pub max_tokens: u32,
    /// The client's W3C trace context (`traceparent`, and `tracestate` with it), passed on
    /// to the model server so its spans join the same trace. Only a well-formed value.
    pub trace: Option<crate::telemetry::TraceContext>,
}

fn bad(message: impl Into<String>, param: &str) -> ApiError {
    ApiError::bad_request(message, Some(param.to_string()))
}

/// Parses and validates a chat completion body.
pub fn parse_chat(
    body: &[u8],
    limits: &Limits,
    allowed: &AllowedModels,
) -> Result<ValidatedChat, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}"), None))?;
    let Value::Object(raw) = value else {
        return Err(ApiError::bad_request(
            "request body must be a JSON object",
            None,
        ));
    };
    let object = Value::Object(raw);
    let typed: ChatRequest = serde_path_to_error::deserialize(&object).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        let param = error_param(&path, &inner);
        let message = match &param {
            Some(p) => format!("invalid field {p}: {inner}"),
            None => format!("invalid request body: {inner}"),
        };
        ApiError::bad_request(message, param)
    })?;
    let Value::Object(raw) = object else {
        return Err(ApiError::Internal("request object changed shape".into()));
    };
    finish(typed, raw, limits, allowed)
}

/// The `param` an OpenAI client expects: the path to the bad value, or for a missing field
/// the path the field should have had (serde reports the parent object's path).
fn error_param(path: &str, inner: &str) -> Option<String> {
    let missing = inner
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(field)) => Some(field.to_string()),
        (".", None) => None,
        (parent, Some(field)) => Some(format!("{parent}.{field}")),
        (path, None) => Some(path.to_string()),
    }
}

fn finish(
    typed: ChatRequest,
    mut raw: Map<String, Value>,
    limits: &Limits,
    allowed: &AllowedModels,
) -> Result<ValidatedChat, ApiError> {
    if typed.model.trim().is_empty() {
        return Err(bad("model must not be empty", "model"));
    }
    if typed.model.len() > 256 {
        return Err(bad("model name is longer than 256 characters", "model"));
    }
    if !allowed.permits(&typed.model) {
        return Err(ApiError::NotFound {
            message: format!(
                "the model `{}` does not exist or you do not have access to it",
                typed.model
            ),
            code: "model_not_found",
        });
    }
    validate_messages(&typed, limits)?;
    validate_sampling(&typed)?;

    let requested = typed.max_completion_tokens.or(typed.max_tokens);
    let max_tokens = match requested {
        Some(0) => return Err(bad("max_tokens must be at least 1", "max_tokens")),
        Some(n) if n > limits.max_tokens_cap => {
            return Err(bad(
                format!(
                    "max_tokens is {n}, above this gateway's limit of {}",
                    limits.max_tokens_cap
                ),
                "max_tokens",
            ));
        }
        Some(n) => n,
        // A bounded default lets later limits reserve tokens before the call.
        None => limits.max_tokens_cap,
    };
    raw.remove("max_completion_tokens");
    // Never forward a client's cache salt: one copied from another tenant would share that
    // tenant's prefix cache. The gateway sets its own per tenant (upstream::cache_salt).
    raw.remove(crate::upstream::cache_salt::FIELD);
    raw.insert("max_tokens".into(), Value::from(max_tokens));
    Ok(ValidatedChat {
        typed,
        raw,
        max_tokens,
        trace: None,
    })
}

fn validate_messages(req: &ChatRequest, limits: &Limits) -> Result<(), ApiError> {
    if req.messages.is_empty() {
        return Err(bad(
            "messages must contain at least one message",
            "messages",
        ));
    }
    if req.messages.len() > limits.max_messages {
        return Err(bad(
            format!(
                "messages has {} entries, above this gateway's limit of {}",
                req.messages.len(),
                limits.max_messages
            ),
            "messages",
        ));
    }
    let mut total_chars = 0usize;
    for (i, m) in req.messages.iter().enumerate() {
        let field = |name: &str| format!("messages[{i}].{name}");
        match (&m.content, m.role) {
            (None, Role::Assistant) if m.tool_calls.is_some() => {}
            (None, _) => return Err(bad("content is required", &field("content"))),
            (Some(Content::Parts(parts)), _) => {
                if parts.is_empty() {
                    return Err(bad("content must not be an empty array", &field("content")));
                }
                for (j, part) in parts.iter().enumerate() {
                    if let ContentPart::ImageUrl { image_url } = part
                        && image_url.url.is_empty()
                    {
                        return Err(bad(
                            "image_url.url must not be empty",
                            &format!("messages[{i}].content[{j}].image_url.url"),
                        ));
                    }
                }
            }
            (Some(Content::Text(_)), _) => {}
        }
        if m.role == Role::Tool && m.tool_call_id.as_deref().is_none_or(str::is_empty) {
            return Err(bad(
                "tool messages need a tool_call_id",
                &field("tool_call_id"),
            ));
        }
        if m.name.as_deref().is_some_and(|n| n.len() > 256) {
            return Err(bad("name is longer than 256 characters", &field("name")));
        }
        total_chars = total_chars.saturating_add(m.char_count());
    }
    if total_chars > limits.max_prompt_chars {
        return Err(bad(
            format!(
                "messages hold {total_chars} characters, above this gateway's limit of {}",
                limits.max_prompt_chars
            ),
            "messages",
        ));
    }
    Ok(())
}

fn in_range(value: Option<f64>, lo: f64, hi: f64, param: &str) -> Result<(), ApiError> {
    match value {
        Some(v) if !(lo..=hi).contains(&v) => {
            Err(bad(format!("{param} must be between {lo} and {hi}"), param))
        }
        _ => Ok(()),
    }
}

fn validate_sampling(req: &ChatRequest) -> Result<(), ApiError> {
    in_range(req.temperature, 0.0, 2.0, "temperature")?;
    in_range(req.top_p, 0.0, 1.0, "top_p")?;
    in_range(req.presence_penalty, -2.0, 2.0, "presence_penalty")?;
    in_range(req.frequency_penalty, -2.0, 2.0, "frequency_penalty")?;
    if let Some(n) = req.n
        && !(1..=8).contains(&n)
    {
        return Err(bad("n must be between 1 and 8", "n"));
    }
    if let Some(Stop::Many(list)) = &req.stop
        && list.len() > 4
    {
        return Err(bad("stop may hold at most 4 sequences", "stop"));
    }
    // Negative values (vLLM's -1) are left to the probability policy, which names them.
    if let Some(top) = req.top_logprobs
        && top > 20
    {
        return Err(bad("top_logprobs must be between 0 and 20", "top_logprobs"));
    }
    if let Some(user) = &req.user
        && user.len() > 256
    {
        return Err(bad("user is longer than 256 characters", "user"));
    }
    Ok(())
}
