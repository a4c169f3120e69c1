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
use crate::request_log::RequestId;
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

#[utoipa::path(
    post,
    path = "/v1/tenants",
    tag = "admin",
    request_body(content = crate::openapi::schemas::CreateTenant, content_type = "application/json"),
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created; the API key is shown in this response only", body = crate::openapi::schemas::TenantWithKey),
        (status = 400, description = "Invalid request (the `param` names the field)", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "A tenant key on an admin route", body = crate::openapi::schemas::ErrorBody),
        (status = 409, description = "Name already taken", body = crate::openapi::schemas::ErrorBody),
        (status = 500, description = "Database failure", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
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
    let detail = json!({"name": tenant.name});
    state
        .audit
        .admin_action(
            &principal,
            Some(&request_id.0),
            "tenant_created",
            Some(&tenant.id),
            detail,
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"tenant": tenant_json(&tenant), "api_key": key.key.expose_secret()})),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/tenants",
    tag = "admin",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "All tenants (never their keys)", body = crate::openapi::schemas::TenantList),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "A tenant key on an admin route", body = crate::openapi::schemas::ErrorBody),
    )
)]
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

/// The tenant whose id is `id` (ids only, never names), or 404.
pub(crate) async fn existing(state: &AppState, id: &str) -> Result<Tenant, ApiError> {
    // Path ids are ids, not names: names are an operator convenience of the CLI only.
    match state.store.find_tenant(id).await? {
        Some(t) if t.id == id => Ok(t),
        _ => Err(ApiError::not_found("no tenant with this id")),
    }
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "Tenant id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The tenant", body = crate::openapi::schemas::Tenant),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "A tenant key on an admin route", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such tenant", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    Ok(Json(tenant_json(&existing(&state, &id).await?)))
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{id}/rotate-key",
    tag = "admin",
    params(("id" = String, Path, description = "Tenant id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "New key (shown once); the old one stops working at once", body = crate::openapi::schemas::TenantWithKey),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "A tenant key on an admin route", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such active tenant", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn rotate_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let tenant = existing(&state, &id).await?;
    let key = keys::generate();
    let tenant = state.store.rotate_key(&tenant.id, &key.stored).await?;
    tracing::info!(tenant = %tenant.id, action = "key_rotated", "admin action");
    state
        .audit
        .admin_action(
            &principal,
            Some(&request_id.0),
            "key_rotated",
            Some(&tenant.id),
            Value::Null,
        )
        .await;
    Ok(Json(
        json!({"tenant": tenant_json(&tenant), "api_key": key.key.expose_secret()}),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{id}/revoke",
    tag = "admin",
    params(("id" = String, Path, description = "Tenant id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Revoked: all its keys stop working at once", body = crate::openapi::schemas::TenantOnly),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "A tenant key on an admin route", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such tenant", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let tenant = existing(&state, &id).await?;
    let tenant = state.store.revoke_tenant(&tenant.id).await?;
    tracing::info!(tenant = %tenant.id, action = "tenant_revoked", "admin action");
    state
        .audit
        .admin_action(
            &principal,
            Some(&request_id.0),
            "tenant_revoked",
            Some(&tenant.id),
            Value::Null,
        )
        .await;
    Ok(Json(json!({"tenant": tenant_json(&tenant)})))
}

#[derive(Deserialize)]
struct SetPolicy {
    /// Both set: the tenant's own thresholds. Both null: back to the gateway's.
    risk_threshold_warn: Option<u8>,
    risk_threshold_block: Option<u8>,
}

#[utoipa::path(
    put,
    path = "/v1/tenants/{id}/policy",
    tag = "admin",
    params(("id" = String, Path, description = "Tenant id")),
    request_body(content = crate::openapi::schemas::SetPolicy, content_type = "application/json"),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The tenant with its thresholds", body = crate::openapi::schemas::TenantOnly),
        (status = 400, description = "Invalid request (the `param` names the field)", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "A tenant key on an admin route", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such tenant", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn set_policy(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
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
    let detail = json!({"risk_thresholds": tenant.thresholds});
    state
        .audit
        .admin_action(
            &principal,
            Some(&request_id.0),
            "policy_changed",
            Some(&tenant.id),
            detail,
        )
        .await;
    Ok(Json(json!({"tenant": tenant_json(&tenant)})))
}

/// `PUT /v1/tenants/{id}/prob-policy`: the tenant's overrides of the probability policy
/// (`{"logit_bias_allowed": true, "logprobs_max_top": 10, ...}`; `{}` or `null` clears them).
#[utoipa::path(
    put,
    path = "/v1/tenants/{id}/prob-policy",
    tag = "admin",
    params(("id" = String, Path, description = "Tenant id")),
    request_body(content = Object, description = "Overrides such as `{\"logit_bias_allowed\": true, \"logprobs_max_top\": 10}`; `{}` or `null` clears them", content_type = "application/json"),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The tenant and the probability policy now in force for it", body = crate::openapi::schemas::TenantProbPolicy),
        (status = 400, description = "Invalid request (the `param` names the field)", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "A tenant key on an admin route", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such tenant", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn set_prob_policy(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
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
    let detail = json!({"prob_policy": tenant.prob_policy});
    state
        .audit
        .admin_action(
            &principal,
            Some(&request_id.0),
            "prob_policy_changed",
            Some(&tenant.id),
            detail,
        )
        .await;
    let effective = state.extraction.policy_for(tenant.prob_policy.as_ref());
    Ok(Json(
        json!({"tenant": tenant_json(&tenant), "effective_prob_policy": effective}),
    ))
}
