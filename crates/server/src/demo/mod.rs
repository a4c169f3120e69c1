//! `secureinfer demo …`: attack demonstrations against a gateway on the mock model.
//!
//! Each demo starts its own gateways in-process (SQLite in memory, the mock upstream) unless
//! `--url` points it at a running one.

mod dos;
mod extraction;
mod injection;
mod isolation;
mod leak;
mod tampering;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use secrecy::ExposeSecret;

use crate::app::router;
use crate::auth::keys;
use crate::config::{Config, SecurityMode};
use crate::server::build_state;

#[derive(Subcommand, Debug)]
pub enum DemoCommand {
    /// Prompt injection and jailbreaks, plain and obfuscated: scores, reasons and verdicts,
    /// and what the unguarded mock model answers.
    Injection {
        /// Target a running gateway instead of starting one.
        #[arg(long, requires = "key")]
        url: Option<String>,
        /// Tenant API key for --url.
        #[arg(long, env = "SECUREINFER_API_KEY", hide_env_values = true)]
        key: Option<String>,
    },
    /// Model tampering: a gateway pins its model's hash, then a byte of the weights is flipped
    /// and a tag re-pointed; the gateway refuses inference (503) until the model is back.
    Tampering,
    /// Model extraction: templated enumeration, a logit_bias sweep, full logprobs and the
    /// "repeat forever" divergence attack; prints the extraction score rising and where each
    /// attack is stopped.
    Extraction,
    /// Denial of service: one tenant floods with concurrent requests while another keeps
    /// working; prints 200s vs 429s and the other tenant's latency, with limits off and on.
    Dos {
        /// Target a running gateway instead of starting two (limits off, then on).
        #[arg(long, requires_all = ["key", "victim_key"])]
        url: Option<String>,
        /// API key of the flooding tenant, for --url.
        #[arg(long, env = "SECUREINFER_API_KEY", hide_env_values = true)]
        key: Option<String>,
        /// API key of another tenant whose latency is measured during the flood, for --url.
        #[arg(long)]
        victim_key: Option<String>,
        /// Concurrent flooding connections.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// How long the flood lasts, in seconds.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
    /// System-prompt, credential and customer-data leaks by the mock model: what an unguarded
    /// gateway lets through and what the output guard blocks or redacts, plain and streamed.
    Leak {
        /// Target a running gateway instead of starting one.
        #[arg(long, requires = "key")]
        url: Option<String>,
        /// Tenant API key for --url.
        #[arg(long, env = "SECUREINFER_API_KEY", hide_env_values = true)]
        key: Option<String>,
    },
    /// Tenant isolation (the seed's exercise): tenant A tells a secret, tenant B tries to get
    /// it back through a shared conversation id, the model, A's ids, and the prefix cache.
    Isolation,
}

/// A gateway started for a demo: its base URL and a tenant key.
pub struct DemoGateway {
    pub url: String,
    pub key: String,
}

/// Starts a gateway on 127.0.0.1 with the mock upstream and an in-memory database.
pub async fn start_gateway(
    mode: SecurityMode,
    extra: &[(&str, &str)],
) -> anyhow::Result<DemoGateway> {
    // `extra` first: lookups take the first match, so a demo's own settings win.
    let mut vars: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.extend([
        ("UPSTREAM".into(), "mock".into()),
        ("DATABASE_URL".into(), "sqlite::memory:".into()),
        ("SECURITY_MODE".into(), mode.as_str().into()),
    ]);
    // Demos of other controls send bursts from one address: the abuse limits stay out of their
    // way unless the demo sets them itself (`demo dos` does).
    for name in [
        "RATE_LIMIT_RPM",
        "TENANT_RATE_LIMIT_RPM",
        "TENANT_MAX_CONCURRENT",
    ] {
        vars.push((name.into(), "0".into()));
    }
    let lookup = move |k: &str| {
        vars.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    };
    let config = Config::from_lookup(&lookup)?;
    let state = build_state(config).await?;
    let key = keys::generate();
    state.store.create_tenant("demo", &key.stored).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind a loopback port")?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = router(state);
    // Connect info: the per-IP limit needs the peer address.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(DemoGateway {
        url,
        key: key.key.expose_secret().to_string(),
    })
}

pub async fn run(cmd: DemoCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DemoCommand::Injection { url, key } => injection::run(url.zip(key)).await,
        DemoCommand::Tampering => tampering::run().await,
        DemoCommand::Extraction => extraction::run().await,
        DemoCommand::Dos {
            url,
            key,
            victim_key,
            concurrency,
            seconds,
        } => {
            dos::run(dos::Options {
                url,
                key,
                victim_key,
                concurrency: concurrency.clamp(1, 1024),
                seconds: seconds.clamp(1, 300),
            })
            .await
        }
        DemoCommand::Leak { url, key } => leak::run(url.zip(key)).await,
        DemoCommand::Isolation => isolation::run().await,
    }
}

/// Shared HTTP client for demos.
pub fn client() -> anyhow::Result<Arc<reqwest::Client>> {
    Ok(Arc::new(reqwest::Client::builder().build()?))
}
