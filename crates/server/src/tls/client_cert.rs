//! What the gateway takes from a client certificate that rustls has already verified against
//! `TLS_CLIENT_CA_FILE`: its subject common name (which may name the tenant) and fingerprint.

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The subject's first common name, if it has one that is valid UTF-8.
    pub common_name: Option<String>,
    /// SHA-256 of the DER certificate, hex: safe to log, identifies the certificate.
    pub sha256: String,
}

impl ClientCertificate {
    /// Reads the end-entity certificate of a verified chain.
    pub fn from_der(der: &CertificateDer<'_>) -> ClientCertificate {
        let common_name = x509_parser::parse_x509_certificate(der.as_ref())
            .ok()
            .and_then(|(_, cert)| {
                cert.subject()
                    .iter_common_name()
                    .next()
                    .and_then(|cn| cn.as_str().ok())
                    .map(str::to_string)
            });
        ClientCertificate {
            common_name,
            sha256: hex::encode(Sha256::digest(der.as_ref())),
        }
    }
}
