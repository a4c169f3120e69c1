//! Shapes of the JSON the gateway reads and writes, for the OpenAPI document only.
//!
//! Handlers build most bodies with `serde_json::json!`, so these types describe them rather
//! than produce them; `tests/openapi.rs` checks real responses against these descriptions so
//! the two cannot drift apart unnoticed. The chat request lists the fields the gateway reads
//! and bounds; any other OpenAI field is forwarded to the model unchanged.

#![allow(dead_code)]

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The one error shape of every failure (OpenAI's), so SDKs raise the right exception.
#[derive(ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `not_found_error`,
    /// `conflict_error`, `rate_limit_error` or `server_error`.
    #[schema(rename = "type")]
    pub kind: String,
    /// Machine-readable reason, e.g. `invalid_api_key`, `security_blocked`, `upstream_timeout`.
    pub code: Option<String>,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// Security blocks only: the request's id.
    pub request_id: Option<String>,
    /// Security blocks only: the score that blocked it.
    pub risk_score: Option<u8>,
    /// Security blocks only: the factors that scored.
    pub reasons: Option<Vec<String>>,
}

#[derive(ToSchema, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

/// One chat message. `content` is a string or an array of parts (`text`, `image_url`,
/// `input_audio`, `file`, `refusal`); only text is scored and counted.
#[derive(ToSchema)]
pub struct ChatMessage {
    pub role: Role,
    #[schema(value_type = Option<Object>)]
    pub content: Option<Value>,
    pub name: Option<String>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub tool_calls: Option<Vec<Value>>,
    pub tool_call_id: Option<String>,
}

#[derive(ToSchema)]
pub struct StreamOptions {
    /// Send a final chunk with `usage` (and empty `choices`).
    pub include_usage: Option<bool>,
}

/// `POST /v1/chat/completions`. Bounded by the gateway: the body (`MAX_BODY_BYTES`), the
/// number of messages (`MAX_MESSAGES`), their text (`MAX_PROMPT_CHARS`), `max_tokens`
/// (`MAX_TOKENS_CAP`, also the default), `n`, `top_logprobs` and `logit_bias` (probability
/// policy). `model` must be one of `ALLOWED_MODELS`.
#[derive(ToSchema)]
pub struct ChatCompletionRequest {
    #[schema(example = "secureinfer-mock", max_length = 256)]
    pub model: String,
    #[schema(min_items = 1)]
    pub messages: Vec<ChatMessage>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    #[schema(minimum = 1)]
    pub max_completion_tokens: Option<u32>,
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f64>,
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub top_p: Option<f64>,
    #[schema(minimum = 1)]
    pub n: Option<u32>,
    /// A string or up to 4 strings.
    #[schema(value_type = Option<Object>)]
    pub stop: Option<Value>,
    pub seed: Option<i64>,
    #[schema(minimum = -2.0, maximum = 2.0)]
    pub presence_penalty: Option<f64>,
    #[schema(minimum = -2.0, maximum = 2.0)]
    pub frequency_penalty: Option<f64>,
    pub logprobs: Option<bool>,
    #[schema(minimum = 0, maximum = 20)]
    pub top_logprobs: Option<u32>,
    /// Token id → bias; refused unless the probability policy allows it.
    #[schema(value_type = Option<Object>)]
    pub logit_bias: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub response_format: Option<Value>,
    pub user: Option<String>,
}

#[derive(ToSchema)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

#[derive(ToSchema)]
pub struct AssistantMessage {
    pub role: String,
    pub content: Option<String>,
}

#[derive(ToSchema)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    /// `stop`, `length`, `content_filter`, `tool_calls`.
    pub finish_reason: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<Value>,
}

/// A complete answer (`stream` false). With `stream: true` the answer is `text/event-stream`:
/// `data: {chat.completion.chunk}` events and a final `data: [DONE]`.
#[derive(ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    #[schema(example = "chat.completion")]
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Option<Usage>,
}

#[derive(ToSchema)]
pub struct Model {
    pub id: String,
    #[schema(example = "model")]
    pub object: String,
    pub created: u64,
    pub owned_by: String,
}

#[derive(ToSchema)]
pub struct ModelList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<Model>,
}

#[derive(ToSchema)]
pub struct HealthChecks {
    pub upstream: bool,
    pub database: bool,
    /// `null` while no Redis is configured.
    pub redis: Option<bool>,
    /// `null` until the model has been checked (or when checking is off).
    pub model_integrity: Option<bool>,
}

#[derive(ToSchema)]
pub struct Health {
    /// `healthy`, `degraded` (model failed but only monitored) or `unhealthy` (503).
    pub status: String,
    pub checks: HealthChecks,
    #[schema(value_type = Object)]
    pub upstream: Value,
    #[schema(value_type = Object)]
    pub model_integrity: Value,
    /// Limiter backend (`memory` or `redis`), Redis failure policy and counters.
    #[schema(value_type = Object)]
    pub rate_limits: Value,
    /// The detection tiers in use: `heuristics`, `classifier` (CLASSIFIER_ENABLED) and
    /// `semantic` (SEMANTIC_MODEL_DIR, builds with the `semantic` feature), each a boolean.
    #[schema(value_type = Object)]
    pub detectors: Value,
    /// Whether the upstream's prefix cache is salted per tenant.
    #[schema(value_type = Object)]
    pub prefix_cache: Value,
    /// Start-up warnings still in force (e.g. an upstream whose cache cannot be salted).
    pub warnings: Vec<String>,
    pub version: String,
}

#[derive(ToSchema)]
pub struct Thresholds {
    pub warn: u8,
    pub block: u8,
}

#[derive(ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// `active` or `revoked`.
    pub status: String,
    pub created_at: String,
    pub key_rotated_at: Option<String>,
    pub revoked_at: Option<String>,
    /// The tenant's own gate thresholds, or `null` for the gateway's.
    pub risk_thresholds: Option<Thresholds>,
    /// The tenant's overrides of the probability policy, or `null`.
    #[schema(value_type = Option<Object>)]
    pub prob_policy: Option<Value>,
    /// The tenant's rate-limit tier (RATE_LIMIT_TIERS), or `null` for the defaults.
    pub rate_limit_tier: Option<String>,
}

#[derive(ToSchema)]
pub struct TenantList {
    pub object: String,
    pub data: Vec<Tenant>,
}

#[derive(ToSchema)]
pub struct CreateTenant {
    /// 1-64 letters, digits, spaces, `-`, `_` or `.`.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
}

/// The tenant and its new API key, shown in this response only.
#[derive(ToSchema)]
pub struct TenantWithKey {
    pub tenant: Tenant,
    #[schema(example = "sk-si-...")]
    pub api_key: String,
}

#[derive(ToSchema)]
pub struct TenantOnly {
    pub tenant: Tenant,
}

/// Both thresholds (warn not above block), or both `null` to return to the gateway's.
#[derive(ToSchema)]
pub struct SetPolicy {
    #[schema(minimum = 1, maximum = 100)]
    pub risk_threshold_warn: Option<u8>,
    #[schema(minimum = 1, maximum = 100)]
    pub risk_threshold_block: Option<u8>,
}

#[derive(ToSchema)]
pub struct TenantProbPolicy {
    pub tenant: Tenant,
    /// The policy in force for the tenant after the change.
    #[schema(value_type = Object)]
    pub effective_prob_policy: Value,
}

/// Either `messages` (OpenAI chat messages) or `text`.
#[derive(ToSchema)]
pub struct ScanRequest {
    pub messages: Option<Vec<ChatMessage>>,
    pub text: Option<String>,
}

#[derive(ToSchema)]
pub struct ScanResult {
    #[schema(example = "security.scan")]
    pub object: String,
    pub score: u8,
    /// `allow`, `warn` or `block`.
    pub decision: String,
    pub would_block: bool,
    /// `enforce` or `monitor`.
    pub mode: String,
    pub thresholds: Thresholds,
    pub factors: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub reasons: Vec<Value>,
    /// The learned detector's raw verdict (`logit`, `probability`, `points`, `chunks`), or
    /// absent when CLASSIFIER_ENABLED=false.
    #[schema(value_type = Option<Object>)]
    pub classifier: Option<Value>,
    /// The semantic tier's verdict (`logit`, `points`, `chunks`, `skipped_chunks`): present
    /// only when the gateway runs it (SEMANTIC_MODEL_DIR) and it was asked, i.e. for prompts
    /// the classifier finds borderline; `null` otherwise.
    #[schema(value_type = Option<Object>)]
    pub semantic: Option<Value>,
    #[schema(value_type = Object)]
    pub obfuscation: Value,
}

#[derive(ToSchema)]
pub struct SecurityEvent {
    pub id: String,
    pub created_at: String,
    /// `null` for gateway-wide events (a model failing its integrity check).
    pub tenant_id: Option<String>,
    pub request_id: String,
    #[schema(rename = "type")]
    pub event_type: String,
    pub score: u8,
    pub reasons: Vec<String>,
    pub decision: String,
    pub enforced: bool,
    pub prompt_sha256: String,
    pub prompt_chars: u64,
    /// Only when `EVENT_STORE_PROMPT=true`.
    pub prompt: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Value,
}

#[derive(ToSchema)]
pub struct EventList {
    pub object: String,
    pub data: Vec<SecurityEvent>,
    pub has_more: bool,
    /// Pass as `before` for the next page.
    pub next_before: Option<String>,
}

#[derive(ToSchema)]
pub struct RiskFactor {
    pub name: String,
    pub count: u32,
}

#[derive(ToSchema)]
pub struct TenantRisk {
    pub tenant_id: String,
    /// 0-100: the highest event score of the window, fading with age.
    pub score: u8,
    pub factors: Vec<RiskFactor>,
    pub window_seconds: u64,
    pub events: u64,
    pub blocked: u64,
    pub warned: u64,
    pub last_event_at: Option<String>,
    #[schema(value_type = Object)]
    pub extraction: Value,
}

#[derive(ToSchema)]
pub struct ModelIntegrity {
    #[schema(example = "security.model_integrity")]
    pub object: String,
    /// `valid`, `invalid`, `unchecked` or `disabled`.
    pub status: String,
    pub valid: bool,
    pub mode: String,
    pub serving: bool,
    #[schema(value_type = Option<Object>)]
    pub checking: Option<Value>,
    pub interval_seconds: Option<f64>,
    pub checks_total: u64,
    pub failed_checks_total: u64,
    pub message: String,
    pub model: String,
    pub digest: Option<String>,
    pub manifest_digest: Option<String>,
    pub files: u64,
    #[schema(value_type = Vec<Object>)]
    pub failures: Vec<Value>,
    pub checked_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub trigger: Option<String>,
}

/// One line of the audit trail: a request's outcome or an admin action. Never a key or
/// prompt text: prompts appear as their SHA-256 and length.
#[derive(ToSchema)]
pub struct AuditRecord {
    pub id: String,
    pub created_at: String,
    /// `request` or `admin`.
    pub kind: String,
    pub request_id: Option<String>,
    /// A tenant id, `admin`, `cli:<user>` or `anonymous`.
    pub actor: String,
    pub tenant_id: Option<String>,
    /// `METHOD /route` for requests; `tenant_created`, `key_rotated`, `tenant_revoked`,
    /// `policy_changed`, `prob_policy_changed` for admin actions.
    pub action: String,
    pub status: Option<u16>,
    pub decision: Option<String>,
    pub score: Option<u8>,
    pub reasons: Vec<String>,
    pub latency_ms: Option<f64>,
    pub model: Option<String>,
    pub prompt_sha256: Option<String>,
    pub prompt_chars: Option<u64>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
}

#[derive(ToSchema)]
pub struct AuditList {
    pub object: String,
    pub data: Vec<AuditRecord>,
    pub has_more: bool,
    pub next_before: Option<String>,
}

#[derive(ToSchema)]
pub struct Decisions {
    pub allow: u64,
    pub warn: u64,
    pub block: u64,
}

#[derive(ToSchema)]
pub struct ReasonCount {
    pub reason: String,
    pub count: u64,
}

#[derive(ToSchema)]
pub struct BlockedTenant {
    pub tenant_id: String,
    pub name: Option<String>,
    pub blocked: u64,
    pub warned: u64,
    pub last_blocked_at: String,
}

#[derive(ToSchema)]
pub struct RateLimitPressure {
    /// 429 answers in the window (from the audit trail).
    pub rejected: u64,
    /// 429 answers per limit since this process started.
    #[schema(value_type = Object)]
    pub by_limit_since_start: Value,
}

#[derive(ToSchema)]
pub struct RecentDecision {
    pub at: String,
    pub tenant_id: Option<String>,
    #[schema(rename = "type")]
    pub event_type: String,
    pub decision: String,
    pub enforced: bool,
    pub score: u8,
    pub reasons: Vec<String>,
}

/// What `/dashboard` shows, over the last `window_seconds`.
#[derive(ToSchema)]
pub struct DashboardSummary {
    pub object: String,
    pub generated_at: String,
    pub window_seconds: u32,
    /// Requests in the audit trail in the window.
    pub requests: u64,
    /// Gate verdicts of chat requests in the window.
    pub decisions: Decisions,
    pub top_reasons: Vec<ReasonCount>,
    pub blocked_tenants: Vec<BlockedTenant>,
    pub rate_limit: RateLimitPressure,
    pub recent: Vec<RecentDecision>,
    /// True when the window held more records than one summary reads (5000).
    pub truncated: bool,
}

/// A tier name from RATE_LIMIT_TIERS, or `null` for the gateway's default limits.
#[derive(ToSchema)]
pub struct SetTier {
    pub tier: Option<String>,
}

#[derive(ToSchema)]
pub struct TenantLimits {
    pub tenant: Tenant,
    /// The limits in force for the tenant (requests and tokens per minute, concurrency).
    #[schema(value_type = Object)]
    pub limits: Value,
}

/// A tenant's output-guard overrides and the policy in force after applying them.
#[derive(ToSchema)]
pub struct OutputPolicy {
    pub tenant_id: String,
    /// The overrides stored for the tenant, or `null` when it runs on the gateway defaults.
    #[schema(value_type = Option<Object>)]
    pub overrides: Option<Value>,
    /// The output-guard settings in force for the tenant.
    #[schema(value_type = Object)]
    pub effective: Value,
}

/// Output-guard overrides for one tenant (any subset of the `OUTPUT_*` settings), or `null`
/// to return it to the gateway defaults.
#[derive(ToSchema)]
pub struct SetOutputPolicy {
    #[schema(value_type = Option<Object>)]
    pub overrides: Option<Value>,
}

#[derive(ToSchema)]
pub struct ConversationMessage {
    pub role: String,
    pub content: String,
    pub created_at: String,
}

/// The server-side history of one conversation of the calling tenant.
#[derive(ToSchema)]
pub struct Conversation {
    /// Always `conversation`.
    pub object: String,
    pub id: String,
    pub messages: Vec<ConversationMessage>,
}

#[derive(ToSchema)]
pub struct ConversationDeleted {
    /// Always `conversation.deleted`.
    pub object: String,
    pub id: String,
    pub deleted: bool,
}
