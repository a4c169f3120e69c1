//! `GET /v1/models`: what the upstream serves, narrowed to what clients may request.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::config::AllowedModels;
use crate::error::ApiError;
use crate::upstream::ModelInfo;

fn entry(m: &ModelInfo) -> Value {
    json!({"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by})
}

async fn visible(state: &AppState) -> Result<Vec<ModelInfo>, ApiError> {
    let models = state.upstream.models().await?;
    Ok(match &state.config.allowed_models {
        AllowedModels::Any => models,
        allowed => models
            .into_iter()
            .filter(|m| allowed.permits(&m.id))
            .collect(),
    })
}

#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "inference",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Models clients may request", body = crate::openapi::schemas::ModelList),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 502, description = "The model server failed", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "The model server is unavailable", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let data: Vec<Value> = visible(&state).await?.iter().map(entry).collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

#[utoipa::path(
    get,
    path = "/v1/models/{model}",
    tag = "inference",
    params(("model" = String, Path, description = "Model id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The model", body = crate::openapi::schemas::Model),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "Unknown or not allowed model (code `model_not_found`)", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    visible(&state)
        .await?
        .iter()
        .find(|m| m.id == model)
        .map(|m| Json(entry(m)))
        .ok_or_else(|| ApiError::NotFound {
            message: format!("the model `{model}` does not exist"),
            code: "model_not_found",
        })
}
