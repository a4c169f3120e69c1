//! `GET/PUT /v1/tenants/{id}/output-policy`: a tenant's output-guard overrides.
//!
//! PUT (admin key) replaces the overrides with the body: an object with any of the fields
//! `enabled`, `canary`, `prompt_overlap_words`, `leak_action`, `secret_action`, `pii_action`,
//! `ip_action`, `actions` (`{"EMAIL": "log"}`) and `scan_prompts`; `null` or `{}` clears them.
//! GET (admin, or the tenant itself) shows the overrides and the settings in force.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Principal;
use crate::config::TenantOutputOverrides;
use crate::error::ApiError;
use crate::openai::read_body;
use crate::output_filter::settings_json;
use crate::routes::tenants::existing;

#[utoipa::path(
    get,
    path = "/v1/tenants/{id}/output-policy",
    tag = "admin",
    params(("id" = String, Path, description = "Tenant id (a tenant key reads only its own)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The tenant's overrides and the output policy in force", body = crate::openapi::schemas::OutputPolicy),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such tenant (or another tenant's)", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match &principal {
        // Another tenant's policy does not exist as far as this key is concerned.
        Principal::Tenant(t) if t.id != id => {
            return Err(ApiError::not_found("no tenant with this id"));
        }
        Principal::Tenant(_) => {}
        Principal::Admin => {
            existing(&state, &id).await?;
        }
    }
    let (effective, overrides) = state.output.settings_for(&*state.store, &id).await?;
    Ok(Json(json!({
        "tenant_id": id,
        "overrides": overrides.as_deref(),
        "effective": settings_json(&effective),
    })))
}

#[utoipa::path(
    put,
    path = "/v1/tenants/{id}/output-policy",
    tag = "admin",
    params(("id" = String, Path, description = "Tenant id")),
    request_body(content = crate::openapi::schemas::SetOutputPolicy, content_type = "application/json"),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The tenant's overrides and the output policy now in force", body = crate::openapi::schemas::OutputPolicy),
        (status = 400, description = "Unknown setting or bad value", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "A tenant key on an admin route", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such tenant", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let bytes = read_body(&headers, body, 16 * 1024).await?;
    let req: Option<TenantOutputOverrides> =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes))
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError::bad_request(
                    format!("invalid output policy at {path}: {}", e.inner()),
                    (path != ".").then_some(path),
                )
            })?;
    let req = req.filter(|o| *o != TenantOutputOverrides::default());
    existing(&state, &id).await?;
    let effective = state
        .output
        .set_overrides(&*state.store, &id, req.clone())
        .await?;
    tracing::info!(tenant = %id, action = "output_policy_changed", "admin action");
    Ok(Json(json!({
        "tenant_id": id,
        "overrides": req,
        "effective": settings_json(&effective),
    })))
}
