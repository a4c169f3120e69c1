//! `GET /v1/security/verify` (any key): the latest model integrity result.
//! `POST /v1/security/verify` (admin key): verify the model now and return the new result.
//!
//! GET never hashes: a tenant must not be able to make the gateway re-read a multi-gigabyte
//! model on demand. Checks run at start-up, on `MODEL_VERIFY_INTERVAL`, or when the admin asks.

use axum::Json;
use axum::extract::{Extension, State};
use serde_json::Value;

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::model_integrity::Trigger;

#[utoipa::path(
    get,
    path = "/v1/security/verify",
    tag = "security",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The latest model integrity result (never starts a check)", body = crate::openapi::schemas::ModelIntegrity),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn status(State(state): State<AppState>) -> Json<Value> {
    Json(state.integrity.status_json(None))
}

#[utoipa::path(
    post,
    path = "/v1/security/verify",
    tag = "security",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Verifies the model now and returns the result", body = crate::openapi::schemas::ModelIntegrity),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "A tenant key on an admin route", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn run(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let check = state.integrity.run(Trigger::Admin).await;
    Ok(Json(state.integrity.status_json(Some(check))))
}
