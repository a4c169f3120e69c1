//! `GET /v1/audit`: the audit trail, for the admin key only, newest first and paginated.

use axum::Json;
use axum::extract::{Extension, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::audit::export::record_json;
use crate::audit::{AuditFilter, AuditKind};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::security::parse_time;

#[derive(Deserialize)]
pub struct AuditQuery {
    kind: Option<String>,
    tenant_id: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "admin",
    params(
        ("kind" = Option<String>, Query, description = "`request` or `admin`"),
        ("tenant_id" = Option<String>, Query, description = "Records about this tenant"),
        ("actor" = Option<String>, Query, description = "A tenant id, `admin`, `cli:<user>` or `anonymous`"),
        ("action" = Option<String>, Query, description = "e.g. `POST /v1/chat/completions` or `tenant_created`"),
        ("since" = Option<String>, Query, description = "RFC 3339 or Unix seconds (inclusive)"),
        ("until" = Option<String>, Query, description = "RFC 3339 or Unix seconds (exclusive)"),
        ("before" = Option<String>, Query, description = "Page: `next_before` of the previous page"),
        ("limit" = Option<u32>, Query, description = "1-500, default 100"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Audit records, newest first", body = crate::openapi::schemas::AuditList),
        (status = 400, description = "Invalid request (the `param` names the field)", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "A tenant key on an admin route", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => Some(AuditKind::parse(k).ok_or_else(|| {
            ApiError::bad_request("kind must be request or admin", Some("kind".to_string()))
        })?),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit must be between 1 and 500",
            Some("limit".to_string()),
        ));
    }
    let filter = AuditFilter {
        kind,
        tenant_id: q.tenant_id,
        actor: q.actor,
        action: q.action,
        since_ms: q
            .since
            .as_deref()
            .map(|s| parse_time(s, "since"))
            .transpose()?,
        until_ms: q
            .until
            .as_deref()
            .map(|s| parse_time(s, "until"))
            .transpose()?,
        before_id: q.before,
        limit: limit + 1,
        ..AuditFilter::default()
    };
    // Requests that finished before this one are queued for the writer: let them land first.
    state.audit.flush().await;
    let mut found = state.store.list_audit(&filter).await?;
    let has_more = found.len() > limit as usize;
    found.truncate(limit as usize);
    let next = if has_more {
        found.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok(Json(json!({
        "object": "list",
        "data": found.iter().map(record_json).collect::<Vec<_>>(),
        "has_more": has_more,
        "next_before": next,
    })))
}
