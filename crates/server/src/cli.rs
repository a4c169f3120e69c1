//! The `secureinfer` command line: `serve`, `tenant …`, `scan`, `model …`, `demo …`,
//! `mock-upstream`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::auth::keys;
use crate::config::{Config, SettingArgs};
use crate::routes::tenants::{tenant_json, validate_name};
use crate::store::{self, Store};

#[derive(Parser, Debug)]
#[command(
    name = "secureinfer",
    version,
    about = "Security gateway for LLM inference (OpenAI-compatible)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway.
    Serve(Box<SettingArgs>),
    /// Manage tenants directly in the database (for operators).
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
        /// Database to work on (same as the gateway's DATABASE_URL).
        #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Read the audit trail directly from the database (for operators).
    Audit {
        #[command(subcommand)]
        action: crate::audit::cli::AuditAction,
        /// Database to read (same as the gateway's DATABASE_URL).
        #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Score prompts offline with the gate's detection core (JSON verdicts, or quality with --labels).
    Scan(crate::scan_cli::ScanArgs),
    /// Model integrity: hash a model, verify it (pinned hash, signature, allowlist), sign it.
    Model {
        #[command(subcommand)]
        command: secureinfer_integrity::cli::ModelCommand,
    },
    /// Train the learned detector from labelled JSONL (plus synthetic rows) and write the model file.
    Train(crate::train_cli::TrainArgs),
    /// Train the semantic tier's head over MiniLM embeddings (builds with the `semantic` feature).
    #[cfg(feature = "semantic")]
    TrainSemantic(crate::train_semantic_cli::TrainSemanticArgs),
    /// Attack demonstrations against a gateway on the mock model.
    Demo {
        #[command(subcommand)]
        demo: crate::demo::DemoCommand,
    },
    /// Serve the built-in mock model alone, over the OpenAI and Ollama wire formats
    /// (a simulator for benchmarks, tests and demos).
    MockUpstream {
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 9000)]
        port: u16,
        #[arg(long, default_value = "secureinfer-mock")]
        model: String,
        /// Delay before the first token, e.g. 20ms.
        #[arg(long, default_value = "0ms")]
        latency: String,
        /// Delay between streamed tokens.
        #[arg(long, default_value = "0ms")]
        token_delay: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TenantAction {
    /// Create a tenant and print its API key (shown once).
    Create {
        #[arg(long)]
        name: String,
    },
    /// List tenants.
    List,
    /// Issue a new key; the old one stops working at once.
    RotateKey { tenant: String },
    /// Revoke a tenant: all its keys stop working at once.
    Revoke { tenant: String },
}

/// Reads the serve configuration: flags first, then the environment (which `.env` filled).
pub fn config_from(args: &SettingArgs) -> Result<Config, crate::config::ConfigError> {
    Config::from_lookup(&|key| args.get(key))
}

pub(crate) async fn open_store(
    database_url: Option<String>,
) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    let lookup = move |key: &str| {
        if key == "DATABASE_URL" {
            database_url.clone()
        } else {
            None
        }
    };
    let config = Config::from_lookup(&lookup)?;
    store::connect(&config.database_url)
        .await
        .context("DATABASE_URL: could not open the database")
}

async fn find(store: &dyn Store, id_or_name: &str) -> anyhow::Result<crate::store::Tenant> {
    store
        .find_tenant(id_or_name)
        .await?
        .with_context(|| format!("no tenant with id or name {id_or_name:?}"))
}

pub async fn tenant(
    action: TenantAction,
    database_url: Option<String>,
) -> anyhow::Result<ExitCode> {
    let store = open_store(database_url).await?;
    let audit = |action: &'static str, tenant_id: String| {
        let store = store.clone();
        async move { crate::audit::cli::record_cli_action(store.as_ref(), action, &tenant_id).await }
    };
    match action {
        TenantAction::Create { name } => {
            validate_name(&name).map_err(|e| anyhow::anyhow!("{e}"))?;
            let key = keys::generate();
            let tenant = store.create_tenant(&name, &key.stored).await?;
            audit("tenant_created", tenant.id.clone()).await;
            println!(
                "{}",
                serde_json::json!({"tenant": tenant_json(&tenant), "api_key": key.key.expose_secret()})
            );
        }
        TenantAction::List => {
            for t in store.list_tenants().await? {
                println!("{}", tenant_json(&t));
            }
        }
        TenantAction::RotateKey { tenant } => {
            let t = find(store.as_ref(), &tenant).await?;
            let key = keys::generate();
            let t = store.rotate_key(&t.id, &key.stored).await?;
            audit("key_rotated", t.id.clone()).await;
            println!(
                "{}",
                serde_json::json!({"tenant": tenant_json(&t), "api_key": key.key.expose_secret()})
            );
        }
        TenantAction::Revoke { tenant } => {
            let t = find(store.as_ref(), &tenant).await?;
            let t = store.revoke_tenant(&t.id).await?;
            audit("tenant_revoked", t.id.clone()).await;
            println!("{}", serde_json::json!({"tenant": tenant_json(&t)}));
        }
    }
    Ok(ExitCode::SUCCESS)
}
