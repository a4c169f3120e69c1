//! What an audit record holds.

use serde::Serialize;
use serde_json::Value;

use crate::store::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditKind {
    /// The outcome of one API request.
    Request,
    /// An admin action: tenant created, key rotated, tenant revoked, policy changed, ...
    Admin,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Request => "request",
            AuditKind::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<AuditKind> {
        match s {
            "request" => Some(AuditKind::Request),
            "admin" => Some(AuditKind::Admin),
            _ => None,
        }
    }
}

/// One line of the audit trail. Request records fill the request fields; admin records name
/// the action and the tenant it was done to.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// UUIDv7: unique and time-sortable.
    pub id: String,
    pub created_ms: i64,
    pub kind: AuditKind,
    pub request_id: Option<String>,
    /// Who acted: a tenant id, `admin` (the admin key), `cli:<user>`, or `anonymous`.
    pub actor: String,
    /// The tenant concerned: the caller for a request, the target for an admin action.
    pub tenant_id: Option<String>,
    /// `METHOD /route/template` for a request; the action name for an admin action.
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
    pub detail: Value,
}

impl AuditRecord {
    pub fn new(kind: AuditKind, actor: impl Into<String>, action: impl Into<String>) -> Self {
        AuditRecord {
            id: uuid::Uuid::now_v7().to_string(),
            created_ms: now_ms(),
            kind,
            request_id: None,
            actor: actor.into(),
            tenant_id: None,
            action: action.into(),
            status: None,
            decision: None,
            score: None,
            reasons: Vec::new(),
            latency_ms: None,
            model: None,
            prompt_sha256: None,
            prompt_chars: None,
            prompt_tokens: None,
            completion_tokens: None,
            detail: Value::Null,
        }
    }
}

/// Filters for reading the trail. Newest first, paging with `before_id`; or with
/// `oldest_first`, oldest first paging with `after_id` (exports).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub kind: Option<AuditKind>,
    pub tenant_id: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub before_id: Option<String>,
    pub after_id: Option<String>,
    pub oldest_first: bool,
    pub limit: u32,
}
