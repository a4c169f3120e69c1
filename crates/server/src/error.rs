//! The one place where failures become HTTP responses in the OpenAI error shape:
//! `{"error":{"message","type","code","param"}}`. SDKs pick their exception from the status
//! code, so every variant maps to exactly one status here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::limits::Refusal;
use crate::store::StoreError;
use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<String>,
        code: &'static str,
    },
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("this endpoint requires the admin API key")]
    AdminRequired,
    #[error("{message}")]
    NotFound { message: String, code: &'static str },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    /// Inference refused because the model failed its integrity check (MODEL_INTEGRITY_MODE=enforce).
    #[error("{0}")]
    ModelIntegrity(String),
    #[error("request blocked by the security gate (risk score {score}; reasons: {}); request id {request_id}", reasons.join(", "))]
    Blocked {
        request_id: String,
        score: u8,
        reasons: Vec<String>,
    },
    #[error(
        "the daily logprob budget of this tenant ({limit} values) is spent; ask without logprobs or retry after the UTC day ends"
    )]
    LogprobBudgetExhausted { limit: u64, retry_after_secs: u64 },
    /// Over an abuse limit: 429 with `Retry-After` and the code of the limit that was hit.
    #[error("{}", .0.message)]
    RateLimited(Box<Refusal>),
    /// Redis is unreachable and `RATE_LIMIT_REDIS_FAILURE=closed`.
    #[error("the rate limiter is unavailable; try again shortly")]
    LimiterUnavailable,
    /// The output guard withheld the model's answer, or refused a prompt carrying secrets or
    /// personal data (`in_prompt`). Only category labels are reported, never the matched text.
    #[error("{}", data_guard_message(*in_prompt, labels, request_id))]
    DataGuard {
        request_id: String,
        labels: Vec<&'static str>,
        in_prompt: bool,
    },
    /// A policy refuses this caller (not the request's content): 403.
    #[error("{message}")]
    Refused { message: String, code: &'static str },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, param: impl Into<Option<String>>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            param: param.into(),
            code: "invalid_request",
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound {
            message: message.into(),
            code: "not_found",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::AdminRequired
            | ApiError::Blocked { .. }
            | ApiError::DataGuard { .. }
            | ApiError::Refused { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_)
            | ApiError::ModelIntegrity(_)
            | ApiError::LimiterUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::LogprobBudgetExhausted { .. } | ApiError::RateLimited(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Upstream(e) => e.status(),
            ApiError::Store(StoreError::NotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::Store(StoreError::Conflict(_)) => StatusCode::CONFLICT,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_type(&self) -> &'static str {
        match self.status() {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::CONFLICT => "conflict_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            s if s.is_server_error() => "server_error",
            _ => "invalid_request_error",
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Refused { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "request_too_large",
            ApiError::Unauthorized(_) => "invalid_api_key",
            ApiError::AdminRequired => "admin_key_required",
            ApiError::Blocked { .. } => "security_blocked",
            ApiError::DataGuard {
                in_prompt: false, ..
            } => "output_blocked",
            ApiError::DataGuard {
                in_prompt: true, ..
            } => "prompt_sensitive_data",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::ModelIntegrity(_) => "model_integrity_failed",
            ApiError::LogprobBudgetExhausted { .. } => "logprob_budget_exhausted",
            ApiError::RateLimited(r) => r.code(),
            ApiError::LimiterUnavailable => "rate_limiter_unavailable",
            ApiError::Upstream(e) => e.code(),
            ApiError::Store(StoreError::NotFound(_)) => "not_found",
            ApiError::Store(StoreError::Conflict(_)) => "conflict",
            ApiError::Store(_) | ApiError::Internal(_) => "internal_error",
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            ApiError::BadRequest { param, .. } => param.as_deref(),
            _ => None,
        }
    }

    /// The client-facing message. Internal details (database errors) stay in the log.
    fn public_message(&self) -> String {
        match self {
            ApiError::Store(e @ (StoreError::NotFound(_) | StoreError::Conflict(_))) => {
                e.to_string()
            }
            ApiError::Store(_) | ApiError::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        }
    }

    /// The error object, also used as the payload of an SSE error event mid-stream.
    pub fn body(&self) -> Value {
        if let ApiError::Blocked {
            request_id,
            score,
            reasons,
        } = self
        {
            // Extra fields are ignored by SDKs but let a client show why it was refused.
            return json!({
                "error": {
                    "message": self.public_message(),
                    "type": self.error_type(),
                    "code": self.code(),
                    "param": null,
                    "request_id": request_id,
                    "risk_score": score,
                    "reasons": reasons,
                }
            });
        }
        if let ApiError::DataGuard {
            request_id, labels, ..
        } = self
        {
            return json!({
                "error": {
                    "message": self.public_message(),
                    "type": self.error_type(),
                    "code": self.code(),
                    "param": null,
                    "request_id": request_id,
                    "categories": labels,
                }
            });
        }
        json!({
            "error": {
                "message": self.public_message(),
                "type": self.error_type(),
                "code": self.code(),
                "param": self.param(),
            }
        })
    }
}

fn data_guard_message(in_prompt: bool, labels: &[&str], request_id: &str) -> String {
    let what = if in_prompt {
        "the request was refused: a message carries data this gateway does not send to the model"
    } else {
        "the model's answer was withheld by the output guard"
    };
    format!(
        "{what} (categories: {}); request id {request_id}",
        labels.join(", ")
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            ApiError::LogprobBudgetExhausted {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        // A model integrity refusal was logged once, as an error, when the check failed;
        // one more error line per refused request would only bury it.
        if status.is_server_error() && !matches!(self, ApiError::ModelIntegrity(_)) {
            tracing::error!(error = %self, status = status.as_u16(), "request failed");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        // The access log counts 429s by this code (the limit that refused the request).
        response
            .extensions_mut()
            .insert(crate::request_log::ErrorCode(self.code()));
        if matches!(self, ApiError::Store(_)) {
            // Counted as a database error by the request log.
            response
                .extensions_mut()
                .insert(crate::request_log::BackendFailure("database"));
        }
        match &self {
            ApiError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RateLimited(refusal) => {
                let h = response.headers_mut();
                crate::limits::headers::write(h, &refusal.figures);
                crate::limits::headers::write_retry_after(h, refusal.wait());
            }
            ApiError::LimiterUnavailable => {
                crate::limits::headers::write_retry_after(
                    response.headers_mut(),
                    std::time::Duration::from_secs(1),
                );
            }
            _ => {}
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
