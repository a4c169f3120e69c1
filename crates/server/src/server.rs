//! Starting and stopping the gateway: bind, bootstrap a development setup, serve, and on
//! SIGTERM/SIGINT stop accepting and drain in-flight requests for up to SHUTDOWN_TIMEOUT.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::serve::ListenerExt as _;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::app::{AppState, router};
use crate::audit::AuditLog;
use crate::auth::jwt::JwtVerifier;
use crate::auth::keys;
use crate::config::{Config, UpstreamKind};
use crate::extraction::Extraction;
use crate::gate::Gate;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::model_integrity::IntegrityMonitor;
use crate::output_filter::OutputFilter;
use crate::tls::{TlsFiles, serve_tls};
use crate::{store, upstream};

/// Builds the shared state from configuration (store opened and migrated, upstream client),
/// and verifies the model first when MODEL_VERIFY_ON_START is on.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let store = store::connect(&config.database_url)
        .await
        .with_context(|| "DATABASE_URL: could not open the database".to_string())?;
    let upstream =
        upstream::from_config(&config).context("could not build the upstream HTTP client")?;
    let admin_key = config.admin_api_key.clone().map(Arc::new);
    let jwt = match config.jwt.clone() {
        Some(settings) => Some(
            JwtVerifier::start(settings)
                .await
                .context("JWT: cannot load the identity provider's keys")?,
        ),
        None => None,
    };
    let metrics = Arc::new(Metrics::new(
        env!("CARGO_PKG_VERSION"),
        upstream.kind().as_str(),
        config.observability.metrics_tenant_labels,
    ));
    let audit = AuditLog::start(
        store.clone(),
        metrics.clone(),
        config.observability.audit_retention,
    );
    let gate = Arc::new(Gate::new(config.gate.clone())?);
    let integrity = Arc::new(IntegrityMonitor::new(
        config.integrity.clone(),
        &config.model_name,
        store.clone(),
    )?);
    integrity.start().await;
    let redis_url = config
        .rate_limits
        .redis_url
        .as_ref()
        .map(|u| u.expose_secret().to_string());
    let extraction = Arc::new(
        Extraction::new(
            config.extraction.clone(),
            &config.gate,
            redis_url
                .as_deref()
                .map(|u| (u, config.rate_limits.redis_timeout)),
        )
        .context("REDIS_URL: the extraction state could not use it")?,
    );
    let limits = Limiter::new(config.rate_limits.clone())
        .context("REDIS_URL: could not set up the Redis client")?;
    let output = Arc::new(
        OutputFilter::new(config.output.clone())
            .context("the output guard's patterns failed to compile")?,
    );
    let isolation = Arc::new(crate::isolation::Isolation::build(&config, upstream.as_ref()).await?);
    if let Some(warning) = isolation.warning() {
        tracing::warn!(upstream = upstream.kind().as_str(), "{warning}");
    }
    let active = store
        .list_tenants()
        .await?
        .iter()
        .filter(|t| t.status == store::TenantStatus::Active)
        .count();
    isolation.check_tenant_count(active)?;
    Ok(AppState {
        key_cache: Arc::new(crate::auth::cache::KeyCache::new(config.auth_cache_ttl)),
        output,
        config: Arc::new(config),
        store,
        upstream,
        gate,
        integrity,
        extraction,
        limits,
        admin_key,
        jwt,
        isolation,
        metrics,
        audit,
    })
}

/// In development, a run with no admin key and no tenant gets both, shown once on stdout
/// (never through the log) so `serve` alone is enough to try the gateway.
async fn bootstrap(state: &mut AppState) -> anyhow::Result<()> {
    if state.config.is_production() {
        return Ok(());
    }
    let mut banner = Vec::new();
    if state.admin_key.is_none() {
        let generated = keys::generate();
        banner.push(format!(
            "  admin key (this run only; set ADMIN_API_KEY to keep one): {}",
            generated.key.expose_secret()
        ));
        state.admin_key = Some(Arc::new(generated.key));
    }
    if state.store.list_tenants().await?.is_empty() {
        let key = keys::generate();
        let tenant = state.store.create_tenant("demo", &key.stored).await?;
        banner.push(format!(
            "  tenant \"demo\" ({}) API key: {}",
            tenant.id,
            key.key.expose_secret()
        ));
    }
    if !banner.is_empty() {
        println!("SecureInfer development bootstrap — these keys are shown once:");
        for line in banner {
            println!("{line}");
        }
    }
    Ok(())
}

/// In production, metrics open to anyone who can reach the API port are worth a warning.
fn warn_open_metrics(state: &AppState) {
    let o = &state.config.observability;
    if state.config.is_production()
        && o.metrics_enabled
        && o.metrics_token.is_none()
        && o.metrics_port.is_none()
    {
        tracing::warn!(
            "/metrics is served on the API port without a token: set METRICS_TOKEN or METRICS_PORT"
        );
    }
}

/// Resolves when the process is asked to stop.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Streamed answers are many small writes; with Nagle's algorithm a chunk can wait for the
/// client's delayed ACK (40 ms on Linux) before it leaves.
pub(crate) fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let addr = format!("{}:{}", config.host, config.port);
    let shutdown_timeout = config.shutdown_timeout;
    // Unusable TLS files stop start-up before anything else happens.
    let tls = match config.tls.clone() {
        Some(settings) => Some(TlsFiles::load(settings).context("TLS: cannot serve HTTPS")?),
        None => None,
    };
    let mut state = build_state(config).await?;
    bootstrap(&mut state).await?;
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("API_HOST/API_PORT: cannot listen on {addr}"))?;
    let local: SocketAddr = listener.local_addr()?;
    if state.upstream.kind() == UpstreamKind::Mock {
        tracing::warn!(
            upstream = "mock",
            "serving the built-in MOCK model: a simulator for demos and tests, not a real LLM"
        );
    }
    tracing::info!(
        addr = %local,
        upstream = state.upstream.kind().as_str(),
        detectors = %state.gate.detectors(),
        "listening"
    );
    let scheme = if tls.is_some() { "https" } else { "http" };
    // A plain line on stdout that scripts and tests read to find the bound port.
    println!("secureinfer listening on {scheme}://{local}");

    let audit = state.audit.clone();
    if let Some(port) = state.config.observability.metrics_port {
        let host = state.config.host.clone();
        crate::routes::metrics::serve_dedicated(state.clone(), &host, port).await?;
    }
    warn_open_metrics(&state);
    let app = router(state);
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let stopped = async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    };
    // Both paths give handlers (the per-IP limit) the peer address as `ConnectInfo<SocketAddr>`.
    let mut server = match tls {
        Some(files) => {
            let server = serve_tls(listener, files, app)?.with_graceful_shutdown(stopped);
            tokio::spawn(async move { server.await })
        }
        None => {
            let server = axum::serve(
                listener.tap_io(no_delay),
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stopped);
            tokio::spawn(async move { server.await })
        }
    };
    tokio::select! {
        result = &mut server => {
            audit.flush().await;
            crate::telemetry::flush().await;
            return Ok(result??);
        }
        _ = shutdown_signal() => {}
    }
    tracing::info!(
        timeout_s = shutdown_timeout.as_secs_f64(),
        "shutting down: draining in-flight requests"
    );
    let _ = stop_tx.send(true);
    match tokio::time::timeout(shutdown_timeout, &mut server).await {
        Ok(result) => {
            result??;
            // Every finished request has queued its audit record; write them before exiting.
            audit.flush().await;
            tracing::info!("drained; exiting");
        }
        Err(_) => {
            server.abort();
            tracing::warn!(
                "SHUTDOWN_TIMEOUT reached with requests still in flight; exiting anyway"
            );
        }
    }
    // Last, so the spans of the requests just drained are in the final export.
    crate::telemetry::flush().await;
    Ok(())
}
