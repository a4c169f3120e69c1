//! `GET /health`: no auth; 200 when the upstream and the database answer, 503 otherwise.
//! A model that fails its integrity check makes it 503 too when MODEL_INTEGRITY_MODE=enforce
//! (a load balancer should stop sending traffic); in monitor mode the status is `degraded`.
//! Redis (abuse limits) unreachable is `degraded`, or 503 under RATE_LIMIT_REDIS_FAILURE=closed.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::config::{RedisFailure, UpstreamKind};

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "Healthy (or degraded: the model failed a monitored check)", body = crate::openapi::schemas::Health),
        (status = 503, description = "Upstream or database down, or the model failed an enforced check", body = crate::openapi::schemas::Health),
    )
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (upstream, database, redis) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, state.upstream.health()),
        tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()),
        state.limits.redis_reachable(),
    );
    let upstream_ok = matches!(upstream, Ok(Ok(())));
    let database_ok = matches!(database, Ok(Ok(())));
    let (integrity, integrity_blocks, integrity_detail) = state.integrity.health();
    // Redis down is fatal only when the failure policy refuses every limited request; with
    // `open` or `local` the gateway still serves and says so.
    let limits_closed = state.limits.settings().redis_failure == RedisFailure::Closed;
    let redis_ok = redis.unwrap_or(true);
    let healthy = upstream_ok && database_ok && !integrity_blocks && (redis_ok || !limits_closed);
    let status = match (healthy, integrity, redis_ok) {
        (false, _, _) => "unhealthy",
        (true, Some(false), _) | (true, _, false) => "degraded",
        (true, _, true) => "healthy",
    };
    let kind = state.upstream.kind();
    let body = json!({
        "status": status,
        "checks": {
            "upstream": upstream_ok,
            "database": database_ok,
            "redis": redis,
            "model_integrity": integrity,
        },
        "upstream": {
            "kind": kind.as_str(),
            "simulator": kind == UpstreamKind::Mock,
        },
        "model_integrity": integrity_detail,
        "rate_limits": {
            "backend": state.limits.backend_name(),
            "redis_failure_policy": state.limits.settings().redis_failure.as_str(),
            "counters": state.limits.stats().json(),
        },
        "detectors": state.gate.detectors(),
        "prefix_cache": state.isolation.prefix_cache,
        "warnings": state.isolation.warning().into_iter().collect::<Vec<_>>(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
