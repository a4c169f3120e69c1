//! `PUT /v1/tenants/{id}/limits` (admin): assign a tenant an abuse-limit tier from
//! `RATE_LIMIT_TIERS`, or `null` for the `TENANT_*` defaults. Takes effect on the next request.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Principal;
use crate::config::TenantLimits;
use crate::error::ApiError;
use crate::openai::read_body;
use crate::routes::tenants::tenant_json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetTier {
    tier: Option<String>,
}

pub fn limits_json(l: &TenantLimits) -> Value {
    json!({
        "requests_per_minute": l.rpm,
        "burst": l.burst,
        "tokens_per_minute": l.tpm,
        "max_concurrent": l.max_concurrent,
    })
}

#[utoipa::path(
    put,
    path = "/v1/tenants/{id}/limits",
    tag = "admin",
    params(("id" = String, Path, description = "Tenant id")),
    request_body(content = crate::openapi::schemas::SetTier, content_type = "application/json"),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The tenant and the limits now in force for it", body = crate::openapi::schemas::TenantLimits),
        (status = 400, description = "Unknown tier or bad body", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "A tenant key on an admin route", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such tenant", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn set_tier(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<crate::request_log::RequestId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let bytes = read_body(&headers, body, 4 * 1024).await?;
    let req: SetTier = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            format!("expected {{\"tier\": \"<name>\"|null}}: {e}"),
            Some("tier".to_string()),
        )
    })?;
    let settings = state.limits.settings();
    if let Some(tier) = &req.tier
        && !settings.tiers.contains_key(tier)
    {
        let known: Vec<&str> = settings.tiers.keys().map(String::as_str).collect();
        return Err(ApiError::bad_request(
            format!(
                "unknown tier {tier:?}; RATE_LIMIT_TIERS defines: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
            Some("tier".to_string()),
        ));
    }
    let tenant = crate::routes::tenants::existing(&state, &id).await?;
    let tenant = state
        .store
        .set_rate_limit_tier(&tenant.id, req.tier.as_deref())
        .await?;
    tracing::info!(tenant = %tenant.id, action = "limits_changed", "admin action");
    let detail = json!({"tier": tenant.rate_limit_tier});
    state
        .audit
        .admin_action(
            &principal,
            Some(&request_id.0),
            "limits_changed",
            Some(&tenant.id),
            detail,
        )
        .await;
    let effective = settings.for_tier(tenant.rate_limit_tier.as_deref());
    Ok(Json(
        json!({"tenant": tenant_json(&tenant), "limits": limits_json(&effective)}),
    ))
}
