//! Authentication: every `/v1` route needs a credential; the admin key opens the admin routes.
//! A tenant is identified by an API key (`sk-si-…`), by a JWT from the configured identity
//! provider (`jwt`), or — with `TLS_CLIENT_CERT_TENANT` — by the common name of its verified
//! TLS client certificate.

pub mod cache;
pub mod jwt;
pub mod keys;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::{Tenant, TenantStatus};
use crate::tls::ClientCertificate;

/// Who is calling, attached to the request by [`authenticate`].
#[derive(Debug, Clone)]
pub enum Principal {
    Admin,
    Tenant(TenantCtx),
}

#[derive(Debug, Clone)]
pub struct TenantCtx {
    pub id: String,
    pub name: String,
    pub thresholds: Option<secureinfer_guard::Thresholds>,
    pub prob_policy: Option<crate::extraction::TenantProbPolicy>,
    /// The tenant's abuse-limit tier, if it has one.
    pub rate_limit_tier: Option<String>,
}

impl Principal {
    /// The calling tenant, for routes that act on behalf of one.
    pub fn tenant(&self) -> Result<&TenantCtx, ApiError> {
        match self {
            Principal::Tenant(t) => Ok(t),
            Principal::Admin => Err(ApiError::bad_request(
                "the admin key cannot be used for inference: use a tenant key",
                None,
            )),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Tenant(_) => Err(ApiError::AdminRequired),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin)
    }
}

/// The tenant id recorded on the response so the access log can name it.
#[derive(Debug, Clone)]
pub struct LoggedTenant(pub String);

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl TenantCtx {
    fn of(t: Tenant) -> TenantCtx {
        TenantCtx {
            id: t.id,
            name: t.name,
            thresholds: t.thresholds,
            prob_policy: t.prob_policy,
            rate_limit_tier: t.rate_limit_tier,
        }
    }
}

/// The active tenant an identity provider's claim or a certificate's name refers to.
async fn named_tenant(
    state: &AppState,
    id_or_name: &str,
    unknown: &'static str,
) -> Result<TenantCtx, ApiError> {
    match state.store.find_tenant(id_or_name).await? {
        Some(t) if t.status == TenantStatus::Active => Ok(TenantCtx::of(t)),
        _ => Err(ApiError::Unauthorized(unknown)),
    }
}

pub async fn resolve(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    if let Some(admin) = &state.admin_key
        && keys::secrets_equal(token, admin.expose_secret())
    {
        return Ok(Principal::Admin);
    }
    if let Some(verifier) = &state.jwt
        && jwt::looks_like_jwt(token)
    {
        let claim = verifier.verify(token).await.map_err(|e| {
            tracing::debug!(error = %e, "JWT rejected");
            ApiError::Unauthorized(e.public_message())
        })?;
        let tenant = named_tenant(
            state,
            &claim,
            "invalid bearer token: its tenant is unknown or revoked",
        )
        .await?;
        return Ok(Principal::Tenant(tenant));
    }
    let (key_id, secret) = keys::parse(token).ok_or(ApiError::Unauthorized("invalid API key"))?;
    let record = state
        .key_cache
        .lookup(state.store.as_ref(), key_id)
        .await?
        .ok_or(ApiError::Unauthorized("invalid API key"))?;
    // Compare before looking at `usable` so a revoked key costs the same as a live one.
    if !keys::secret_matches(secret, &record.secret_hash) || !record.usable {
        return Err(ApiError::Unauthorized("invalid API key"));
    }
    Ok(Principal::Tenant(TenantCtx {
        id: record.tenant_id,
        name: record.tenant_name,
        thresholds: record.thresholds,
        prob_policy: record.prob_policy,
        rate_limit_tier: record.rate_limit_tier,
    }))
}

/// The tenant name a verified client certificate carries, when certificates identify tenants.
fn certificate_tenant(state: &AppState, req: &Request) -> Option<String> {
    if !state
        .config
        .tls
        .as_ref()
        .is_some_and(|t| t.client_cert_tenant)
    {
        return None;
    }
    req.extensions()
        .get::<Arc<ClientCertificate>>()
        .and_then(|c| c.common_name.clone())
}

/// Who the request's credentials name. A bearer credential and a tenant certificate must not
/// disagree: a leaked key of tenant A is no use over tenant B's mTLS connection.
async fn principal(
    state: &AppState,
    token: Option<&str>,
    cert_tenant: Option<String>,
) -> Result<Principal, ApiError> {
    match (token, cert_tenant) {
        (Some(token), cert) => {
            let principal = resolve(state, token).await?;
            if let (Principal::Tenant(t), Some(cn)) = (&principal, cert)
                && cn != t.name
                && cn != t.id
            {
                return Err(ApiError::Unauthorized(
                    "the client certificate and the bearer credential name different tenants",
                ));
            }
            Ok(principal)
        }
        (None, Some(cn)) => Ok(Principal::Tenant(
            named_tenant(state, &cn, "the client certificate names no active tenant").await?,
        )),
        (None, None) => Err(ApiError::Unauthorized(
            "missing API key: send Authorization: Bearer <key>",
        )),
    }
}

/// Middleware on every `/v1` route: no valid credential, no entry.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    // Taken out of the request first: a borrowed request cannot be held across awaits.
    let token = bearer(&req).map(str::to_string);
    let cert_tenant = certificate_tenant(&state, &req);
    let principal = match principal(&state, token.as_deref(), cert_tenant).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let logged = match &principal {
        Principal::Admin => "admin".to_string(),
        Principal::Tenant(t) => t.id.clone(),
    };
    // Any change an admin makes through the API may touch a key or a tenant's settings that
    // the key cache holds; forget them all rather than track which.
    let admin_change = matches!(principal, Principal::Admin)
        && !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    req.extensions_mut().insert(principal);
    let mut resp = next.run(req).await;
    if admin_change {
        state.key_cache.clear();
    }
    resp.extensions_mut().insert(LoggedTenant(logged));
    resp
}
