//! The limits in the request pipeline:
//!
//! ```text
//! request ─▶ [per_ip: client address, before auth] ─▶ [auth] ─▶ [per_tenant: request rate,
//!            or for chat a scope the handler's admit_chat fills] ─▶ handler
//! ```
//!
//! Both write the `X-RateLimit-*` headers on the way out, on every response.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client_ip::client_ip;
use super::headers::{self, Scope};
use crate::app::AppState;
use crate::auth::Principal;

/// The client address the per-IP limit used, for handlers and logs.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Probes and scrapes are not limited: throttling them would make a busy gateway look dead.
fn exempt(path: &str) -> bool {
    matches!(path, "/health" | "/metrics")
}

/// Per-IP limit, before authentication, so floods of bad keys cost a map lookup, not a
/// database query. Without socket information (a router served without connect info) there is
/// no address to limit by and the request passes.
pub async fn per_ip(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if exempt(req.uri().path()) {
        return next.run(req).await;
    }
    let Some(peer) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return next.run(req).await;
    };
    let ip = client_ip(
        peer,
        req.headers(),
        &state.limits.settings().trusted_proxies,
    );
    req.extensions_mut().insert(ClientIp(ip));
    match state.limits.check_ip(ip).await {
        Ok(figures) => {
            let mut resp = next.run(req).await;
            headers::write(resp.headers_mut(), &figures);
            resp
        }
        Err(e) => e.into_response(),
    }
}

/// Per-tenant request limit, after authentication. Chat completions are admitted by the
/// handler instead (requests, tokens and concurrency in one atomic step); this middleware only
/// opens the scope that carries their figures to the response.
pub async fn per_tenant(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let tenant = match req.extensions().get::<Principal>() {
        Some(Principal::Tenant(t)) => Some(t.clone()),
        _ => None,
    };
    let is_chat = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| p.as_str().ends_with("/chat/completions"));
    let scope = Scope::default();
    let mut resp = scope
        .run(async {
            if let Some(tenant) = tenant.filter(|_| !is_chat)
                && let Err(e) = state.limits.check_tenant(&tenant).await
            {
                return e.into_response();
            }
            next.run(req).await
        })
        .await;
    scope.write(resp.headers_mut());
    resp
}
