//! Security endpoints: guard-as-a-service (`/v1/security/scan`), the event log, and a
//! tenant's rolling risk. A tenant sees only its own data; the admin key sees all.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::openai::{Message, read_body};
use crate::routes::tenants::rfc3339;
use crate::store::{EventFilter, SecurityEvent, now_ms};

/// The window over which a tenant's rolling risk is computed.
pub const RISK_WINDOW_MS: i64 = 60 * 60 * 1000;
/// Most events read to compute it.
const RISK_EVENTS: u32 = 1000;

#[derive(Deserialize)]
struct ScanRequest {
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    text: Option<String>,
}

fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(bytes)).map_err(
        |e| {
            let path = e.path().to_string();
            ApiError::bad_request(
                format!("invalid field {path}: {}", e.inner()),
                (path != ".").then_some(path),
            )
        },
    )
}

/// Scores messages exactly as the gate would for this tenant, without calling the model.
#[utoipa::path(
    post,
    path = "/v1/security/scan",
    tag = "security",
    request_body(content = crate::openapi::schemas::ScanRequest, content_type = "application/json"),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The verdict the gate would give, without calling the model", body = crate::openapi::schemas::ScanResult),
        (status = 400, description = "Invalid request (the `param` names the field)", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 413, description = "Body above MAX_BODY_BYTES", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn scan(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let limits = &state.config.limits;
    let bytes = read_body(&headers, body, limits.max_body_bytes).await?;
    let req: ScanRequest = parse_json(&bytes)?;
    let messages = match (req.messages, req.text) {
        (Some(m), None) if !m.is_empty() => m,
        (None, Some(text)) => vec![
            serde_json::from_value(json!({"role": "user", "content": text})).map_err(|_| {
                ApiError::bad_request("text must be a string", Some("text".to_string()))
            })?,
        ],
        _ => {
            return Err(ApiError::bad_request(
                "send either `messages` (OpenAI chat messages) or `text`",
                Some("messages".to_string()),
            ));
        }
    };
    if messages.len() > limits.max_messages {
        return Err(ApiError::bad_request(
            format!(
                "messages has {} entries, above this gateway's limit of {}",
                messages.len(),
                limits.max_messages
            ),
            Some("messages".to_string()),
        ));
    }
    let chars: usize = messages.iter().map(Message::char_count).sum();
    if chars > limits.max_prompt_chars {
        return Err(ApiError::bad_request(
            format!(
                "messages hold {chars} characters, above this gateway's limit of {}",
                limits.max_prompt_chars
            ),
            Some("messages".to_string()),
        ));
    }
    let thresholds = match &principal {
        Principal::Tenant(t) => t.thresholds,
        Principal::Admin => None,
    };
    let v = state.gate.assess_async(&messages, thresholds).await;
    Ok(Json(json!({
        "object": "security.scan",
        "score": v.score,
        "decision": v.decision,
        "would_block": v.blocks(),
        "mode": state.gate.settings().mode.as_str(),
        "thresholds": v.thresholds,
        "factors": v.assessment.reason_names(),
        "reasons": v.assessment.reasons,
        "obfuscation": v.assessment.obfuscation,
        "classifier": v.assessment.learned,
        "semantic": v.assessment.semantic,
    })))
}

pub fn event_json(e: &SecurityEvent) -> Value {
    let mut v = json!({
        "id": e.id,
        "created_at": rfc3339(e.created_ms),
        "tenant_id": (!e.tenant_id.is_empty()).then_some(&e.tenant_id),
        "request_id": e.request_id,
        "type": e.event_type,
        "score": e.score,
        "reasons": e.reasons,
        "decision": e.decision,
        "enforced": e.enforced,
        "prompt_sha256": e.prompt_sha256,
        "prompt_chars": e.prompt_chars,
        "detail": e.detail,
    });
    if let Some(p) = &e.prompt {
        v["prompt"] = Value::String(p.clone());
    }
    v
}

#[derive(Deserialize)]
pub struct EventQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    decision: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<String>,
    tenant_id: Option<String>,
    limit: Option<u32>,
}

/// Accepts RFC 3339 (`2026-11-23T10:00:00Z`) or Unix seconds.
pub fn parse_time(raw: &str, param: &str) -> Result<i64, ApiError> {
    if let Ok(secs) = raw.parse::<i64>() {
        return Ok(secs.saturating_mul(1000));
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            ApiError::bad_request(
                format!("{param} must be RFC 3339 or Unix seconds"),
                Some(param.to_string()),
            )
        })
}

#[utoipa::path(
    get,
    path = "/v1/security/events",
    tag = "security",
    params(
        ("type" = Option<String>, Query, description = "Event type, e.g. `prompt_risk`"),
        ("decision" = Option<String>, Query, description = "`allow`, `warn` or `block`"),
        ("since" = Option<String>, Query, description = "RFC 3339 or Unix seconds"),
        ("until" = Option<String>, Query, description = "RFC 3339 or Unix seconds"),
        ("before" = Option<String>, Query, description = "Page: `next_before` of the previous page"),
        ("tenant_id" = Option<String>, Query, description = "Admin: one tenant's events"),
        ("limit" = Option<u32>, Query, description = "1-500, default 50"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Security events, newest first (a tenant sees only its own)", body = crate::openapi::schemas::EventList),
        (status = 400, description = "Invalid request (the `param` names the field)", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "A tenant asked for another tenant's events", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<EventQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant_id = match &principal {
        Principal::Admin => q.tenant_id.clone(),
        Principal::Tenant(t) => match &q.tenant_id {
            // Another tenant's id reads as "no such tenant", never as that tenant's data.
            Some(other) if other != &t.id => {
                return Err(ApiError::not_found("no tenant with this id"));
            }
            _ => Some(t.id.clone()),
        },
    };
    if let Some(d) = &q.decision
        && !["allow", "warn", "block"].contains(&d.as_str())
    {
        return Err(ApiError::bad_request(
            "decision must be allow, warn or block",
            Some("decision".to_string()),
        ));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit must be between 1 and 500",
            Some("limit".to_string()),
        ));
    }
    let filter = EventFilter {
        tenant_id,
        event_type: q.event_type.clone(),
        decision: q.decision.clone(),
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
        before_id: q.before.clone(),
        limit: limit + 1,
    };
    let mut found = state.store.list_events(&filter).await?;
    let has_more = found.len() > limit as usize;
    found.truncate(limit as usize);
    let next = if has_more {
        found.last().map(|e| e.id.clone())
    } else {
        None
    };
    Ok(Json(json!({
        "object": "list",
        "data": found.iter().map(event_json).collect::<Vec<_>>(),
        "has_more": has_more,
        "next_before": next,
    })))
}

/// Rolling risk: the highest event score of the last hour, fading linearly with the event's
/// age, with the factors seen in that window counted.
pub fn rolling_risk(events: &[SecurityEvent], now: i64) -> (u8, Vec<Value>) {
    let mut score = 0.0f64;
    let mut factors: BTreeMap<&str, u32> = BTreeMap::new();
    for e in events {
        let age = (now - e.created_ms).clamp(0, RISK_WINDOW_MS) as f64;
        score = score.max(f64::from(e.score) * (1.0 - age / RISK_WINDOW_MS as f64));
        for r in &e.reasons {
            *factors.entry(r.as_str()).or_default() += 1;
        }
    }
    let mut list: Vec<(&str, u32)> = factors.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let factors = list
        .into_iter()
        .map(|(name, count)| json!({"name": name, "count": count}))
        .collect();
    (score.round().clamp(0.0, 100.0) as u8, factors)
}

#[utoipa::path(
    get,
    path = "/v1/security/risk/{tenant_id}",
    tag = "security",
    params(("tenant_id" = String, Path, description = "Tenant id (a tenant key may ask only for its own)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The tenant's rolling risk over the last hour", body = crate::openapi::schemas::TenantRisk),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such tenant (or another tenant's id)", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn risk(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(tenant_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let prob_policy = match &principal {
        Principal::Tenant(t) if t.id != tenant_id => {
            return Err(ApiError::not_found("no tenant with this id"));
        }
        Principal::Tenant(t) => t.prob_policy.clone(),
        Principal::Admin => {
            crate::routes::tenants::existing(&state, &tenant_id)
                .await?
                .prob_policy
        }
    };
    let now = now_ms();
    let filter = EventFilter {
        tenant_id: Some(tenant_id.clone()),
        since_ms: Some(now - RISK_WINDOW_MS),
        limit: RISK_EVENTS,
        ..EventFilter::default()
    };
    let events = state.store.list_events(&filter).await?;
    let (score, factors) = rolling_risk(&events, now);
    let count = |d: &str| events.iter().filter(|e| e.decision == d).count();
    Ok(Json(json!({
        "tenant_id": tenant_id,
        "score": score,
        "factors": factors,
        "window_seconds": RISK_WINDOW_MS / 1000,
        "events": events.len(),
        "blocked": count("block"),
        "warned": count("warn"),
        "last_event_at": events.first().map(|e| rfc3339(e.created_ms)),
        "extraction": state
            .extraction
            .status_json(&tenant_id, prob_policy.as_ref())
            .await,
    })))
}
