//! The `secureinfer` binary: parse the command line, run it. Logic lives in the library.

use std::process::ExitCode;

use clap::Parser;
use secureinfer::cli::{self, Cli, Command};

fn main() -> ExitCode {
    // `.env` fills only variables the environment does not already set.
    let _ = dotenvy::dotenv();
    // One rustls crypto provider for the whole process (server TLS, reqwest, sqlx): if a
    // dependency ever compiled in a second one, rustls would otherwise refuse to pick.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("secureinfer: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => {
                let config = cli::config_from(&args)?;
                secureinfer::telemetry::init(&config);
                secureinfer::server::serve(config)
                    .await
                    .map(|()| ExitCode::SUCCESS)
            }
            Command::Tenant {
                action,
                database_url,
            } => cli::tenant(action, database_url).await,
            Command::Audit {
                action,
                database_url,
            } => secureinfer::audit::cli::run(action, database_url).await,
            Command::Scan(args) => secureinfer::scan_cli::run(args),
            Command::Model { command } => secureinfer_integrity::cli::run(command),
            Command::Train(args) => secureinfer::train_cli::run(args),
            #[cfg(feature = "semantic")]
            Command::TrainSemantic(args) => secureinfer::train_semantic_cli::run(args),
            Command::Demo { demo } => secureinfer::demo::run(demo).await,
            Command::MockUpstream {
                host,
                port,
                model,
                latency,
                token_delay,
            } => secureinfer::mock_server::run(&host, port, model, &latency, &token_delay).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("secureinfer: {e:#}");
            ExitCode::from(2)
        }
    }
}
