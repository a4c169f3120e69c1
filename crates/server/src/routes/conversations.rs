//! `GET`/`DELETE /v1/conversations/{id}`: a tenant's own server-side conversation history.
//! The tenant comes from the key; the id from the path only names a conversation *inside*
//! that tenant, so another tenant's id reads as "not found", never as its data.
//! `GET /v1/security/isolation`: isolation counters and state, admin only.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Principal;
use crate::context::{Context, ConversationKey, valid_conversation_id};
use crate::error::ApiError;
use crate::request_log::RequestId;
use crate::routes::tenants::rfc3339;

fn not_found() -> ApiError {
    ApiError::NotFound {
        message: "no conversation with this id".into(),
        code: "conversation_not_found",
    }
}

/// The caller's key for `id`. The admin key has no conversations: it is not a tenant, and
/// reading tenants' chats is not an operator task.
fn key_for<'a>(
    state: &'a AppState,
    principal: &Principal,
    id: &str,
) -> Result<(&'a Context, ConversationKey), ApiError> {
    let tenant = principal.tenant()?;
    if !valid_conversation_id(id) {
        return Err(not_found());
    }
    let context = state.isolation.context.as_deref().ok_or_else(not_found)?;
    Ok((context, ConversationKey::new(&tenant.id, id)))
}

fn unavailable(e: crate::context::ContextError) -> ApiError {
    tracing::warn!(error = %e, "context store failed");
    ApiError::Unavailable("the conversation store is unavailable; retry".into())
}

#[utoipa::path(
    get,
    path = "/v1/conversations/{id}",
    tag = "inference",
    params(("id" = String, Path, description = "Conversation id (X-Conversation-ID), scoped to the caller's tenant")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The conversation's stored history", body = crate::openapi::schemas::Conversation),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No conversation with this id for this tenant", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "The conversation store is unavailable", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (context, key) = key_for(&state, &principal, &id)?;
    let loaded = context.load(&key).await.map_err(unavailable)?;
    if loaded.foreign > 0 {
        let tenant = principal.tenant()?;
        crate::isolation::owner_mismatch(&state, tenant, &request_id.0, loaded.foreign).await?;
    }
    if loaded.messages.is_empty() {
        return Err(not_found());
    }
    let messages: Vec<Value> = loaded
        .messages
        .iter()
        .map(|m| json!({"role": m.role, "content": m.content, "created_at": rfc3339(m.at_ms)}))
        .collect();
    Ok(Json(json!({
        "object": "conversation",
        "id": id,
        "messages": messages,
    })))
}

#[utoipa::path(
    delete,
    path = "/v1/conversations/{id}",
    tag = "inference",
    params(("id" = String, Path, description = "Conversation id, scoped to the caller's tenant")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The conversation was deleted", body = crate::openapi::schemas::ConversationDeleted),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No conversation with this id for this tenant", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "The conversation store is unavailable", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (context, key) = key_for(&state, &principal, &id)?;
    if !context.delete(&key).await.map_err(unavailable)? {
        return Err(not_found());
    }
    Ok((
        StatusCode::OK,
        Json(json!({"object": "conversation.deleted", "id": id, "deleted": true})),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/security/isolation",
    tag = "security",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Prefix-cache salting, context store and owner-check status", body = Object),
        (status = 401, description = "No, unknown, rotated or revoked key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "A tenant key on an admin route", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn isolation_status(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    Ok(Json(state.isolation.snapshot()))
}
