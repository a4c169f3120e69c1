//! TLS for the gateway, on rustls with the aws-lc-rs provider (the one reqwest and sqlx use):
//!
//! - [`files`]: the served certificate, key and client CA read from PEM files, and re-read on
//!   a timer so a renewed certificate takes over without a restart;
//! - [`listener`]: an HTTPS listener for `axum::serve` that shakes hands off the accept loop
//!   and hands each request its peer address and verified client certificate;
//! - [`client_cert`]: what a verified client certificate says (its common name can name the
//!   tenant, for mTLS between services);
//! - [`upstream`]: the HTTP client's trust (a private CA) and identity towards the upstream.

pub mod client_cert;
pub mod files;
pub mod listener;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use client_cert::ClientCertificate;
pub use files::TlsFiles;
pub use listener::{PeerInfo, TlsListener, serve_tls};

/// A TLS file that could not be used, naming the setting it came from.
#[derive(Debug, thiserror::Error)]
#[error("{var}={}: {reason}", path.display())]
pub struct TlsError {
    pub var: &'static str,
    pub path: PathBuf,
    pub reason: String,
}

impl TlsError {
    pub(crate) fn new(var: &'static str, path: &Path, reason: impl ToString) -> Self {
        TlsError {
            var,
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// The crypto provider every TLS object here is built with. Naming it explicitly (rather than
/// relying on a process default) keeps one provider even if a dependency enables another.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
