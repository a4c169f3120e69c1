//! Security events: what the gate (and later detectors) decided about a request.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct SecurityEvent {
    pub id: String,
    pub created_ms: i64,
    /// Empty for a gateway-wide event (a model integrity failure): stored as NULL, shown as
    /// `null`, listed to the admin only.
    pub tenant_id: String,
    pub request_id: String,
    pub event_type: String,
    pub score: u8,
    pub reasons: Vec<String>,
    pub decision: String,
    pub enforced: bool,
    pub prompt_sha256: String,
    pub prompt_chars: i64,
    pub prompt: Option<String>,
    pub detail: serde_json::Value,
}

/// Filters for listing events; `before_id` pages backwards through time (ids are UUIDv7).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub tenant_id: Option<String>,
    pub event_type: Option<String>,
    pub decision: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub before_id: Option<String>,
    pub limit: u32,
}
