//! Admin routes: create tenants, rotate and revoke their keys. A new key appears in exactly
//! one response and is never stored or logged in clear.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::{Principal, keys};
use crate::error::ApiError;
use crate::extraction::TenantProbPolicy;
use crate::openai::read_body;
use crate::store::Tenant;

#[derive(Deserialize)]
struct CreateTenant {
    name: String,
}

/// Tenant names are labels for operators: short, printable, no surrounding spaces.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name.trim() == name
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "name must be 1-64 letters, digits, spaces, '-', '_' or '.', without surrounding spaces",
            Some("name".to_string()),
        ))
    }
}

pub fn tenant_json(t: &Tenant) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "status": t.status,
        "created_at": rfc3339(t.created_ms),
        "key_rotated_at": t.key_rotated_ms.map(rfc3339),
        "revoked_at": t.revoked_ms.map(rfc3339),
        "risk_thresholds": t.thresholds,
        "prob_policy": t.prob_policy,
        "rate_limit_tier": t.rate_limit_tier,
    })
}

pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require_admin()?;
    let bytes = read_body(&headers, body, 16 * 1024).await?;
    let req: CreateTenant =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes))
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError::bad_request(
                    format!("invalid field {path}: {}", e.inner()),
                    (path != ".").then_some(path),
                )
            })?;
    validate_name(&req.name)?;
    let active = state
        .store
        .list_tenants()
        .await?
        .iter()
        .filter(|t| t.status == crate::store::TenantStatus::Active)
        .count();
    state.isolation.admit_new_tenant(active)?;
    let key = keys::generate();
    let tenant = state.store.create_tenant(&req.name, &key.stored).await?;
    tracing::info!(tenant = %tenant.id, action = "tenant_created", "admin action");
    Ok((
        StatusCode::CREATED,
        Json(json!({"tenant": tenant_json(&tenant), "api_key": key.key.expose_secret()})),
    ))
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let tenants = state.store.list_tenants().await?;
    Ok(Json(
        json!({"object": "list", "data": tenants.iter().map(tenant_json).collect::<Vec<_>>()}),
    ))
}

async fn existing(state: &AppState, id: &str) -> Result<Tenant, ApiError> {
    // Path ids are ids, not names: names are an operator convenience of the CLI only.
    match state.store.find_tenant(id).await? {
        Some(t) if t.id == id => Ok(t),
        _ => Err(ApiError::not_found("no tenant with this id")),
    }
}

pub async fn get_one(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    Ok(Json(tenant_json(&existing(&state, &id).await?)))
}

pub async fn rotate_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let tenant = existing(&state, &id).await?;
    let key = keys::generate();
    let tenant = state.store.rotate_key(&tenant.id, &key.stored).await?;
    tracing::info!(tenant = %tenant.id, action = "key_rotated", "admin action");
    Ok(Json(
        json!({"tenant": tenant_json(&tenant), "api_key": key.key.expose_secret()}),
    ))
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let tenant = existing(&state, &id).await?;
    let tenant = state.store.revoke_tenant(&tenant.id).await?;
    tracing::info!(tenant = %tenant.id, action = "tenant_revoked", "admin action");
    Ok(Json(json!({"tenant": tenant_json(&tenant)})))
}

#[derive(Deserialize)]
struct SetPolicy {
    /// Both set: the tenant's own thresholds. Both null: back to the gateway's.
    risk_threshold_warn: Option<u8>,
    risk_threshold_block: Option<u8>,
}

pub async fn set_policy(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let bytes = read_body(&headers, body, 16 * 1024).await?;
    let req: SetPolicy =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes))
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError::bad_request(
                    format!("invalid field {path}: {}", e.inner()),
                    (path != ".").then_some(path),
                )
            })?;
    let thresholds = match (req.risk_threshold_warn, req.risk_threshold_block) {
        (None, None) => None,
        (Some(warn), Some(block)) => {
            let t = secureinfer_guard::Thresholds { warn, block };
            t.validate()
                .map_err(|m| ApiError::bad_request(m, Some("risk_threshold_warn".to_string())))?;
            Some(t)
        }
        _ => {
            return Err(ApiError::bad_request(
                "set both risk_threshold_warn and risk_threshold_block, or both to null",
                Some("risk_threshold_block".to_string()),
            ));
        }
    };
    let tenant = existing(&state, &id).await?;
    let tenant = state.store.set_thresholds(&tenant.id, thresholds).await?;
    tracing::info!(tenant = %tenant.id, action = "policy_changed", "admin action");
    Ok(Json(json!({"tenant": tenant_json(&tenant)})))
}

/// `PUT /v1/tenants/{id}/prob-policy`: the tenant's overrides of the probability policy
/// (`{"logit_bias_allowed": true, "logprobs_max_top": 10, ...}`; `{}` or `null` clears them).
pub async fn set_prob_policy(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let bytes = read_body(&headers, body, 16 * 1024).await?;
    let req: Option<TenantProbPolicy> =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes))
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError::bad_request(
                    format!("invalid field {path}: {}", e.inner()),
                    (path != ".").then_some(path),
                )
            })?;
    let policy = req.filter(|p| !p.is_empty());
    if let Some(p) = &policy {
        p.validate()
            .map_err(|(message, field)| ApiError::bad_request(message, Some(field.to_string())))?;
    }
    let tenant = existing(&state, &id).await?;
    let tenant = state
        .store
        .set_prob_policy(&tenant.id, policy.as_ref())
        .await?;
    tracing::info!(tenant = %tenant.id, action = "prob_policy_changed", "admin action");
    let effective = state.extraction.policy_for(tenant.prob_policy.as_ref());
    Ok(Json(
        json!({"tenant": tenant_json(&tenant), "effective_prob_policy": effective}),
    ))
}
