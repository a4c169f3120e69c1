//! `GET /metrics`: the Prometheus exposition. Open unless METRICS_TOKEN is set; not served on
//! the API port when METRICS_PORT moves it to its own listener; 404 when METRICS_ENABLED=false.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use crate::app::AppState;
use crate::auth::keys;
use crate::error::ApiError;

/// Serves the metrics if this listener is the one they are on (`dedicated`: the METRICS_PORT one).
pub fn render(state: &AppState, headers: &HeaderMap, dedicated: bool) -> Response {
    let settings = &state.config.observability;
    if !settings.metrics_enabled || settings.metrics_port.is_some() != dedicated {
        return ApiError::not_found("no such route").into_response();
    }
    if let Some(token) = &settings.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        if !given.is_some_and(|t| keys::secrets_equal(t, token.expose_secret())) {
            return ApiError::Unauthorized("this endpoint needs the metrics token (METRICS_TOKEN)")
                .into_response();
        }
    }
    // The integrity monitor keeps its own state; read it at scrape time.
    let (_, _, summary) = state.integrity.health();
    let status = summary["status"].as_str().unwrap_or("invalid");
    state.metrics.model_integrity(status);
    let counters = state.integrity.counters();
    state
        .metrics
        .model_integrity_checks(counters.checks_total, counters.failed_checks_total);
    let mut text = state.metrics.render();
    append_limiter(state, &mut text);
    let mut controls = String::new();
    state.output.counters.render_prometheus(&mut controls);
    state.isolation.render_prometheus(&mut controls);
    insert_before_eof(&mut text, &controls);
    let mut resp = (StatusCode::OK, text).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    resp
}

/// Adds the limiter's own counters (rendered by `limits::Stats`) before the closing `# EOF`.
fn append_limiter(state: &AppState, text: &mut String) {
    let mut extra = String::new();
    let redis = state.limits.settings().redis_url.is_some();
    state.limits.stats().render_prometheus(&mut extra, redis);
    insert_before_eof(text, &extra);
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "Prometheus/OpenMetrics text exposition", content_type = "application/openmetrics-text"),
        (status = 401, description = "METRICS_TOKEN is set and was not sent", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "METRICS_ENABLED=false, or metrics are on METRICS_PORT", body = crate::openapi::schemas::ErrorBody),
    )
)]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    render(&state, &headers, false)
}

/// Serves `/metrics` alone on its own port (METRICS_PORT), for scrapers on a private network.
pub async fn serve_dedicated(state: AppState, host: &str, port: u16) -> anyhow::Result<()> {
    use anyhow::Context;
    let addr = format!("{host}:{port}");
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("METRICS_PORT: cannot listen on {addr}"))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(
            |State(state): State<AppState>, headers: HeaderMap| async move {
                render(&state, &headers, true)
            },
        ),
    );
    let app = app.with_state(state);
    tracing::info!(addr = %addr, "serving metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    Ok(())
}

/// OpenMetrics ends with `# EOF`; families appended later must come before it.
fn insert_before_eof(text: &mut String, extra: &str) {
    match text.rfind("# EOF") {
        Some(at) => text.insert_str(at, extra),
        None => text.push_str(extra),
    }
}
