//! The served TLS configuration, built from PEM files and swapped when they change.
//!
//! Reloading compares a SHA-256 of the files' contents (not modification times, which can be
//! coarse or preserved by copies). A set that fails to load — say the new certificate was
//! written but not yet its key — is logged and the previous configuration stays in service;
//! the next tick tries again.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use super::{TlsError, provider};
use crate::config::{ClientAuth, ServerTls};

pub struct TlsFiles {
    settings: ServerTls,
    current: RwLock<(Arc<ServerConfig>, [u8; 32])>,
}

fn read(var: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::new(var, path, e))
}

fn certificates(
    var: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(var, path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::new(var, path, "no CERTIFICATE block found"));
    }
    Ok(certs)
}

/// The contents of every configured file, read once so the digest and the configuration
/// describe the same bytes.
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Contents {
    fn read(s: &ServerTls) -> Result<Self, TlsError> {
        Ok(Contents {
            cert: read("TLS_CERT_FILE", &s.cert_file)?,
            key: read("TLS_KEY_FILE", &s.key_file)?,
            client_ca: s
                .client_ca_file
                .as_deref()
                .map(|p| read("TLS_CLIENT_CA_FILE", p))
                .transpose()?,
        })
    }

    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()] {
            let bytes = part.map(Vec::as_slice).unwrap_or_default();
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        h.finalize().into()
    }

    fn server_config(&self, s: &ServerTls) -> Result<ServerConfig, TlsError> {
        let chain = certificates("TLS_CERT_FILE", &s.cert_file, &self.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| {
            TlsError::new(
                "TLS_KEY_FILE",
                &s.key_file,
                format!("no usable PEM private key: {e}"),
            )
        })?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::new("TLS_CERT_FILE", &s.cert_file, e))?;
        let builder = match (&self.client_ca, &s.client_ca_file) {
            (Some(pem), Some(path)) => {
                let mut roots = rustls::RootCertStore::empty();
                for ca in certificates("TLS_CLIENT_CA_FILE", path, pem)? {
                    roots
                        .add(ca)
                        .map_err(|e| TlsError::new("TLS_CLIENT_CA_FILE", path, e))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
                let verifier = match s.client_auth {
                    ClientAuth::Required => verifier,
                    ClientAuth::Optional => verifier.allow_unauthenticated(),
                }
                .build()
                .map_err(|e| TlsError::new("TLS_CLIENT_CA_FILE", path, e))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            TlsError::new(
                "TLS_KEY_FILE",
                &s.key_file,
                format!("cannot be used with TLS_CERT_FILE: {e}"),
            )
        })?;
        // HTTP/2 when the client offers it (ALPN), HTTP/1.1 otherwise.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl TlsFiles {
    /// Loads the files named by the settings; start-up fails on an unusable set.
    pub fn load(settings: ServerTls) -> Result<Arc<Self>, TlsError> {
        let contents = Contents::read(&settings)?;
        let config = Arc::new(contents.server_config(&settings)?);
        Ok(Arc::new(TlsFiles {
            current: RwLock::new((config, contents.digest())),
            settings,
        }))
    }

    /// The configuration new connections are accepted with.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(guard) => guard.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    fn current_digest(&self) -> [u8; 32] {
        match self.current.read() {
            Ok(guard) => guard.1,
            Err(poisoned) => poisoned.into_inner().1,
        }
    }

    /// Re-reads the files; swaps the configuration if they changed and load. Returns whether
    /// a new configuration is now in service.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let contents = Contents::read(&self.settings)?;
        let digest = contents.digest();
        if digest == self.current_digest() {
            return Ok(false);
        }
        let config = Arc::new(contents.server_config(&self.settings)?);
        match self.current.write() {
            Ok(mut guard) => *guard = (config, digest),
            Err(poisoned) => *poisoned.into_inner() = (config, digest),
        }
        Ok(true)
    }

    /// Re-reads the files every `TLS_RELOAD_INTERVAL` until the returned task is aborted.
    pub fn spawn_reloader(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let every = self.settings.reload_interval?;
        let files = Arc::clone(self);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match files.reload_if_changed() {
                    Ok(true) => tracing::info!("TLS files changed: new certificate in service"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS files changed but cannot be used; still serving the previous certificate")
                    }
                }
            }
        }))
    }
}
