//! The `audit` subcommands, and the audit records of admin actions done at the command line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::export::{Format, export};
use super::{AuditFilter, AuditKind, AuditRecord, write_admin};
use crate::metrics::Metrics;
use crate::routes::security::parse_time;
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum AuditAction {
    /// Write the audit trail as CSV or JSON Lines, oldest first.
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// File to write (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Only records at or after this time (RFC 3339 or Unix seconds).
        #[arg(long)]
        since: Option<String>,
        /// Only records before this time (RFC 3339 or Unix seconds).
        #[arg(long)]
        until: Option<String>,
        /// Only `request` or `admin` records.
        #[arg(long)]
        kind: Option<String>,
        /// Only records about this tenant id.
        #[arg(long)]
        tenant: Option<String>,
    },
}

fn time(raw: Option<String>, flag: &str) -> anyhow::Result<Option<i64>> {
    raw.map(|r| {
        parse_time(&r, flag)
            .map_err(|_| anyhow::anyhow!("--{flag}: expected RFC 3339 or Unix seconds, got {r:?}"))
    })
    .transpose()
}

pub async fn run(action: AuditAction, database_url: Option<String>) -> anyhow::Result<ExitCode> {
    let store = crate::cli::open_store(database_url).await?;
    match action {
        AuditAction::Export {
            format,
            output,
            since,
            until,
            kind,
            tenant,
        } => {
            let kind = kind
                .map(|k| {
                    AuditKind::parse(&k)
                        .with_context(|| format!("--kind: expected request or admin, got {k:?}"))
                })
                .transpose()?;
            let filter = AuditFilter {
                kind,
                tenant_id: tenant,
                since_ms: time(since, "since")?,
                until_ms: time(until, "until")?,
                ..AuditFilter::default()
            };
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(BufWriter::new(
                    File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(BufWriter::new(std::io::stdout().lock())),
            };
            let n = export(store.as_ref(), filter, format, &mut out).await?;
            drop(out);
            if output.is_some() {
                eprintln!("exported {n} audit records");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Records an admin action done with `secureinfer tenant …` (actor `cli:<user>`).
pub async fn record_cli_action(store: &dyn Store, action: &str, tenant_id: &str) {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty() && u.len() <= 64)
        .unwrap_or_else(|| "unknown".to_string());
    let mut rec = AuditRecord::new(AuditKind::Admin, format!("cli:{user}"), action);
    rec.tenant_id = Some(tenant_id.to_string());
    // The CLI has no metrics endpoint; a throwaway registry keeps the call uniform.
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"), "none", 0);
    write_admin(store, &metrics, rec).await;
}
