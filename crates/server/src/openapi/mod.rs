//! The OpenAPI 3.1 description of the gateway, served at `GET /openapi.json`.
//!
//! It is generated from the code: every route is registered through `utoipa_axum::routes!`
//! from a handler carrying `#[utoipa::path(...)]`, so the router and the document are built
//! from the same declarations (see `app.rs`). `tests/openapi.rs` fails when a route is added
//! to the router some other way, when a documented operation is not routed, and when a real
//! response does not match its documented shape.

pub mod schemas;

use std::sync::Arc;

use axum::Extension;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

/// Security scheme names used by the path annotations.
pub const BEARER: &str = "api_key";
pub const METRICS_TOKEN: &str = "metrics_token";
pub const DASHBOARD_BASIC: &str = "dashboard_basic";

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "A tenant API key (`sk-si-…`) or, for admin routes, the admin key (ADMIN_API_KEY)."
                .into(),
        );
        components.add_security_scheme(BEARER, SecurityScheme::Http(bearer));
        let mut metrics = Http::new(HttpAuthScheme::Bearer);
        metrics.description = Some("METRICS_TOKEN, when the operator set one.".into());
        components.add_security_scheme(METRICS_TOKEN, SecurityScheme::Http(metrics));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description =
            Some("Any user name and the admin key as password (for a browser).".into());
        components.add_security_scheme(DASHBOARD_BASIC, SecurityScheme::Http(basic));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SecureInfer",
        description = "Security gateway for LLM inference. The `/v1/chat/completions` and \
            `/v1/models` routes speak the OpenAI API (described here as far as the gateway reads \
            and bounds it; other OpenAI fields are forwarded unchanged). Every error has the \
            OpenAI error shape. Responses carry `X-Request-ID`.",
        license(name = "MIT"),
    ),
    modifiers(&Security),
    components(schemas(schemas::ErrorBody)),
    tags(
        (name = "inference", description = "OpenAI-compatible inference, through the security gate"),
        (name = "security", description = "Guard-as-a-service, security events, tenant risk, model integrity"),
        (name = "admin", description = "Tenants, keys, policies and the audit trail (admin key)"),
        (name = "operations", description = "Health, metrics, this document and the dashboard"),
    )
)]
pub struct ApiDoc;

/// The rendered document, shared with the `/openapi.json` handler.
#[derive(Clone)]
pub struct Document(pub Arc<String>);

impl Document {
    pub fn new(doc: &utoipa::openapi::OpenApi) -> Document {
        Document(Arc::new(
            doc.to_pretty_json().unwrap_or_else(|_| "{}".into()),
        ))
    }
}

/// The OpenAPI 3.1 document of this gateway (generated from its handlers).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn openapi_json(Extension(doc): Extension<Document>) -> Response {
    let mut resp = doc.0.as_str().to_owned().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
