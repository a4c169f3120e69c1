//! `GET /health`: no auth; 200 when the upstream and the database answer, 503 otherwise.
//! A model that fails its integrity check makes it 503 too when MODEL_INTEGRITY_MODE=enforce
//! (a load balancer should stop sending traffic); in monitor mode the status is `degraded`.

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
    let (integrity, integrity_blocks, integrity_detail) = state.integrity.health();
    let healthy = upstream_ok && database_ok && !integrity_blocks;
    let status = match (healthy, integrity) {
        (false, _) => "unhealthy",
        (true, Some(false)) => "degraded",
        (true, _) => "healthy",
    };
    let kind = state.upstream.kind();
    let body = json!({
        "status": status,
        "checks": {
            "upstream": upstream_ok,
            "database": database_ok,
            "redis": null,
            "model_integrity": integrity,
        },
        "upstream": {
            "kind": kind.as_str(),
            "simulator": kind == UpstreamKind::Mock,
        },
        "model_integrity": integrity_detail,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
