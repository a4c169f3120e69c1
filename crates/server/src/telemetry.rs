//! Log set-up: JSON lines in production, human-readable in development, to stderr.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

pub fn init(config: &Config) {
    // Our crate at LOG_LEVEL; dependencies one notch quieter unless RUST_LOG says otherwise.
    let default = format!(
        "warn,secureinfer={lvl},tower_http={lvl}",
        lvl = config.log_level
    );
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
