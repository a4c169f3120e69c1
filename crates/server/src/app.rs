//! The router: public routes (`/health`) and authenticated `/v1` routes, wrapped in the
//! request-id and access-log layer.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::SecretString;

use crate::config::Config;
use crate::error::ApiError;
use crate::extraction::Extraction;
use crate::gate::Gate;
use crate::limits::Limiter;
use crate::model_integrity::IntegrityMonitor;
use crate::output_filter::OutputFilter;
use crate::store::Store;
use crate::upstream::Upstream;
use crate::{auth, limits, request_log, routes};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub upstream: Arc<dyn Upstream>,
    pub gate: Arc<Gate>,
    pub integrity: Arc<IntegrityMonitor>,
    /// Per-tenant extraction windows, logprob budgets and the probability policy.
    pub extraction: Arc<Extraction>,
    pub limits: Arc<Limiter>,
    /// The output guard: canaries, leak/secret/PII detection on answers.
    pub output: Arc<OutputFilter>,
    /// The admin key in force (configured, or generated for a development run).
    pub admin_key: Option<Arc<SecretString>>,
    /// JWT bearer-token verification, when a JWKS is configured.
    pub jwt: Option<Arc<auth::jwt::JwtVerifier>>,
    /// Conversation context, cache salts, cross-tenant checks.
    pub isolation: Arc<crate::isolation::Isolation>,
}

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/chat/completions", post(routes::chat::chat_completions))
        .route("/models", get(routes::models::list))
        .route("/models/{model}", get(routes::models::get_one))
        .route(
            "/tenants",
            post(routes::tenants::create).get(routes::tenants::list),
        )
        .route("/tenants/{id}", get(routes::tenants::get_one))
        .route(
            "/tenants/{id}/rotate-key",
            post(routes::tenants::rotate_key),
        )
        .route("/tenants/{id}/revoke", post(routes::tenants::revoke))
        .route(
            "/tenants/{id}/policy",
            axum::routing::put(routes::tenants::set_policy),
        )
        .route(
            "/tenants/{id}/output-policy",
            get(routes::output_policy::get).put(routes::output_policy::put),
        )
        .route("/security/scan", post(routes::security::scan))
        .route("/security/events", get(routes::security::events))
        .route("/security/risk/{tenant_id}", get(routes::security::risk))
        .route(
            "/security/verify",
            get(routes::verify::status).post(routes::verify::run),
        )
        .route(
            "/tenants/{id}/prob-policy",
            axum::routing::put(routes::tenants::set_prob_policy),
        )
        .route(
            "/tenants/{id}/limits",
            axum::routing::put(routes::limits::set_tier),
        )
        .route(
            "/security/isolation",
            get(routes::conversations::isolation_status),
        )
        .route(
            "/conversations/{id}",
            get(routes::conversations::get_one).delete(routes::conversations::delete),
        )
        // Layers run bottom-up: authentication first, then the tenant's limits.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limits::http::per_tenant,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));

    Router::new()
        .route("/health", get(routes::health::health))
        .nest("/v1", v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The per-IP limit runs before authentication, inside the access log.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::http::per_ip,
        ))
        .layer(middleware::from_fn(request_log::request_log))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> Response {
    let mut resp = ApiError::bad_request("method not allowed on this route", None).into_response();
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp
}
