//! `GET /dashboard`: a small read-only page for operators (live decisions, top reasons, blocked
//! tenants, rate-limit pressure), and `GET /dashboard/summary`, the JSON it polls.
//!
//! Both need the admin key: as a bearer token, or — so a browser can open the page — as the
//! password of HTTP Basic auth (any user name). The figures come from the audit trail and the
//! security events of the last `window` seconds, so every replica sharing a database shows the
//! same page. The page writes text only through `textContent` (tenant names and reasons are
//! data, never markup) and its script is pinned by hash in the Content-Security-Policy.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::audit::{AuditFilter, AuditKind};
use crate::auth::keys;
use crate::error::ApiError;
use crate::routes::tenants::rfc3339;
use crate::store::{EventFilter, now_ms};

const PAGE: &str = include_str!("dashboard.html");
const SCRIPT: &str = include_str!("dashboard.js");
/// Most records read per summary: the page shows a recent picture, not an export.
const MAX_RECORDS: u32 = 5000;
const RECENT: usize = 20;
const TOP: usize = 10;

/// The page with its script inlined, and the CSP that allows exactly that script.
fn page() -> &'static (String, String) {
    static PAGE_AND_CSP: OnceLock<(String, String)> = OnceLock::new();
    PAGE_AND_CSP.get_or_init(|| {
        let html = PAGE.replace("/*SCRIPT*/", SCRIPT);
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT));
        let csp = format!(
            "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'"
        );
        (html, csp)
    })
}

/// The admin key as a bearer token, or as the Basic-auth password.
fn is_admin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(admin) = &state.admin_key else {
        return false;
    };
    let Some((scheme, value)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
    else {
        return false;
    };
    let given = if scheme.eq_ignore_ascii_case("bearer") {
        value.trim().to_string()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value.trim()) else {
            return false;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return false;
        };
        match text.split_once(':') {
            Some((_, password)) => password.to_string(),
            None => return false,
        }
    } else {
        return false;
    };
    keys::secrets_equal(&given, admin.expose_secret())
}

/// 401 with a Basic challenge, so a browser asks for the key.
fn challenge() -> Response {
    let mut resp = ApiError::Unauthorized(
        "the dashboard needs the admin key (as a bearer token, or as the password of Basic auth)",
    )
    .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"SecureInfer dashboard\", charset=\"UTF-8\""),
    );
    resp
}

fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

/// The operator dashboard (HTML; admin key as bearer token or Basic-auth password).
#[utoipa::path(
    get,
    path = "/dashboard",
    tag = "operations",
    security(("api_key" = []), ("dashboard_basic" = [])),
    responses(
        (status = 200, description = "The dashboard page", content_type = "text/html"),
        (status = 401, description = "No admin key (with a Basic challenge for browsers)", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn page_handler(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !is_admin(&state, &headers) {
        return challenge();
    }
    let (html, csp) = page();
    let mut resp = (StatusCode::OK, html.clone()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(csp) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    no_store(&mut resp);
    resp.extensions_mut()
        .insert(crate::auth::LoggedTenant("admin".to_string()));
    resp
}

#[derive(Deserialize)]
pub struct SummaryQuery {
    /// Seconds to look back (default 3600).
    window: Option<u32>,
}

/// The figures the dashboard shows, over the last `window` seconds.
#[utoipa::path(
    get,
    path = "/dashboard/summary",
    tag = "operations",
    security(("api_key" = []), ("dashboard_basic" = [])),
    params(("window" = Option<u32>, Query, description = "Seconds to look back, 60-604800 (default 3600)")),
    responses(
        (status = 200, description = "Dashboard figures", body = crate::openapi::schemas::DashboardSummary),
        (status = 400, description = "Bad window", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "No admin key", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn summary(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SummaryQuery>,
) -> Result<Response, ApiError> {
    if !is_admin(&state, &headers) {
        return Ok(challenge());
    }
    let window = q.window.unwrap_or(3600);
    if !(60..=604_800).contains(&window) {
        return Err(ApiError::bad_request(
            "window must be 60-604800 seconds",
            Some("window".to_string()),
        ));
    }
    let body = build_summary(&state, window).await?;
    let mut resp = Json(body).into_response();
    no_store(&mut resp);
    resp.extensions_mut()
        .insert(crate::auth::LoggedTenant("admin".to_string()));
    Ok(resp)
}

async fn build_summary(state: &AppState, window: u32) -> Result<Value, ApiError> {
    let now = now_ms();
    let since = now - i64::from(window) * 1000;
    // Requests that finished before this one are queued for the audit writer: let them land.
    state.audit.flush().await;
    let requests = state
        .store
        .list_audit(&AuditFilter {
            kind: Some(AuditKind::Request),
            since_ms: Some(since),
            limit: MAX_RECORDS,
            ..AuditFilter::default()
        })
        .await?;
    let events = state
        .store
        .list_events(&EventFilter {
            since_ms: Some(since),
            limit: MAX_RECORDS,
            ..EventFilter::default()
        })
        .await?;

    let mut decisions: BTreeMap<&str, u64> = [("allow", 0), ("warn", 0), ("block", 0)].into();
    let mut rejected = 0u64;
    for r in &requests {
        if let Some(d) = r.decision.as_deref()
            && let Some(n) = decisions.get_mut(d)
        {
            *n += 1;
        }
        if r.status == Some(429) {
            rejected += 1;
        }
    }

    let mut reasons: HashMap<&str, u64> = HashMap::new();
    // tenant id -> (blocked, warned, last blocked at)
    let mut tenants: HashMap<&str, (u64, u64, i64)> = HashMap::new();
    for e in &events {
        for r in &e.reasons {
            *reasons.entry(r.as_str()).or_default() += 1;
        }
        // Gateway-wide events (empty tenant id) belong to no tenant.
        if e.tenant_id.is_empty() {
            continue;
        }
        let t = e.tenant_id.as_str();
        let entry = tenants.entry(t).or_default();
        match (e.decision.as_str(), e.enforced) {
            ("block", true) => {
                entry.0 += 1;
                entry.2 = entry.2.max(e.created_ms);
            }
            ("warn", _) | ("block", false) => entry.1 += 1,
            _ => {}
        }
    }
    let mut top: Vec<(&str, u64)> = reasons.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    top.truncate(TOP);

    let names: HashMap<String, String> = state
        .store
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    let mut blocked: Vec<(&str, (u64, u64, i64))> =
        tenants.into_iter().filter(|(_, c)| c.0 > 0).collect();
    blocked.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));

    let recent: Vec<Value> = events
        .iter()
        .filter(|e| e.decision != "allow")
        .take(RECENT)
        .map(|e| {
            json!({
                "at": rfc3339(e.created_ms),
                "tenant_id": (!e.tenant_id.is_empty()).then_some(&e.tenant_id),
                "type": e.event_type,
                "decision": e.decision,
                "enforced": e.enforced,
                "score": e.score,
                "reasons": e.reasons,
            })
        })
        .collect();

    Ok(json!({
        "object": "dashboard.summary",
        "generated_at": rfc3339(now),
        "window_seconds": window,
        "requests": requests.len(),
        "decisions": decisions,
        "top_reasons": top.iter().map(|(r, c)| json!({"reason": r, "count": c})).collect::<Vec<_>>(),
        "blocked_tenants": blocked.iter().map(|(id, (b, w, last))| json!({
            "tenant_id": id,
            "name": names.get(*id),
            "blocked": b,
            "warned": w,
            "last_blocked_at": rfc3339(*last),
        })).collect::<Vec<_>>(),
        "rate_limit": {
            "rejected": rejected,
            "by_limit_since_start": state.metrics.rate_limit_counts(),
        },
        "recent": recent,
        "truncated": requests.len() >= MAX_RECORDS as usize || events.len() >= MAX_RECORDS as usize,
    }))
}
