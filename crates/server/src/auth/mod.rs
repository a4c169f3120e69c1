//! Authentication: every `/v1` route needs a bearer key; the admin key opens the admin routes.

pub mod keys;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use crate::app::AppState;
use crate::error::ApiError;

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

pub async fn resolve(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    if let Some(admin) = &state.admin_key
        && keys::secrets_equal(token, admin.expose_secret())
    {
        return Ok(Principal::Admin);
    }
    let (key_id, secret) = keys::parse(token).ok_or(ApiError::Unauthorized("invalid API key"))?;
    let record = state
        .store
        .lookup_key(key_id)
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

/// Middleware on every `/v1` route: no valid key, no entry.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(&req) else {
        return ApiError::Unauthorized("missing API key: send Authorization: Bearer <key>")
            .into_response();
    };
    let principal = match resolve(&state, token).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let logged = match &principal {
        Principal::Admin => "admin".to_string(),
        Principal::Tenant(t) => t.id.clone(),
    };
    req.extensions_mut().insert(principal);
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(LoggedTenant(logged));
    resp
}
