//! The router: public routes (`/health`, `/metrics`, `/openapi.json`) and authenticated `/v1`
//! routes, wrapped in the request-id and access-log layer.

use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::error::ApiError;
use crate::extraction::Extraction;
use crate::gate::Gate;
use crate::limits::Limiter;
use crate::model_integrity::IntegrityMonitor;
use crate::output_filter::OutputFilter;
use crate::store::Store;
use crate::upstream::Upstream;
use crate::{auth, limits, openapi, request_log, routes};

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
    pub metrics: Arc<crate::metrics::Metrics>,
    pub audit: crate::audit::AuditLog,
    /// Recently looked-up API keys (`AUTH_CACHE_TTL`).
    pub key_cache: Arc<auth::cache::KeyCache>,
}

/// The gateway's router and its OpenAPI document, built from the same declarations: every
/// route is added with `routes!(handler)`, which reads the method and path from the handler's
/// `#[utoipa::path]`. Add routes only this way (`tests/openapi.rs` rejects `.route(...)`).
pub fn router_and_doc(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    use routes::{audit, chat, conversations, models, output_policy, security, tenants, verify};
    let v1: OpenApiRouter<AppState> = OpenApiRouter::new()
        .routes(routes!(chat::chat_completions))
        .routes(routes!(models::list))
        .routes(routes!(models::get_one))
        .routes(routes!(tenants::create, tenants::list))
        .routes(routes!(tenants::get_one))
        .routes(routes!(tenants::rotate_key))
        .routes(routes!(tenants::revoke))
        .routes(routes!(tenants::set_policy))
        .routes(routes!(tenants::set_prob_policy))
        .routes(routes!(audit::list))
        .routes(routes!(security::scan))
        .routes(routes!(security::events))
        .routes(routes!(security::risk))
        .routes(routes!(verify::status, verify::run))
        .routes(routes!(routes::limits::set_tier))
        .routes(routes!(output_policy::get, output_policy::put))
        .routes(routes!(conversations::isolation_status))
        .routes(routes!(conversations::get_one, conversations::delete))
        // Layers run bottom-up: authentication first, then the tenant's limits.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limits::http::per_tenant,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));

    let (router, doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(routes::health::health))
        .routes(routes!(routes::metrics::metrics))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(routes::dashboard::page_handler))
        .routes(routes!(routes::dashboard::summary))
        .merge(v1)
        .split_for_parts();
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(openapi::Document::new(&doc)))
        // The per-IP limit runs before authentication, inside the access log.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::http::per_ip,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_log::request_log,
        ))
        .with_state(state);
    (router, doc)
}

pub fn router(state: AppState) -> Router {
    router_and_doc(state).0
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> Response {
    let mut resp = ApiError::bad_request("method not allowed on this route", None).into_response();
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp
}
