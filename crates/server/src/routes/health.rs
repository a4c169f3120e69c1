//! `GET /health`: no auth; 200 when the upstream and the database answer, 503 otherwise.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::config::UpstreamKind;

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (upstream, database) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, state.upstream.health()),
        tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()),
    );
    let upstream_ok = matches!(upstream, Ok(Ok(())));
    let database_ok = matches!(database, Ok(Ok(())));
    let healthy = upstream_ok && database_ok;
    let kind = state.upstream.kind();
    let body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "checks": {
            "upstream": upstream_ok,
            "database": database_ok,
            "redis": null,
            "model_integrity": null,
        },
        "upstream": {
            "kind": kind.as_str(),
            "simulator": kind == UpstreamKind::Mock,
        },
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
