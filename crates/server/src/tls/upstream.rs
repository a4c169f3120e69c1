//! The HTTP client's TLS towards the upstream: a private CA instead of the system roots (the
//! model server usually has a certificate from an internal CA), and a client certificate when
//! the upstream demands mTLS.

use crate::config::UpstreamTls;

use super::TlsError;

pub fn configure(
    mut builder: reqwest::ClientBuilder,
    tls: &UpstreamTls,
) -> Result<reqwest::ClientBuilder, TlsError> {
    if let Some(path) = &tls.ca_file {
        let pem = std::fs::read(path).map_err(|e| TlsError::new("UPSTREAM_CA_FILE", path, e))?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| TlsError::new("UPSTREAM_CA_FILE", path, e))?;
        if roots.is_empty() {
            return Err(TlsError::new(
                "UPSTREAM_CA_FILE",
                path,
                "no CERTIFICATE block found",
            ));
        }
        // Only this CA: a public CA must not be able to vouch for the internal model server.
        builder = builder.tls_certs_only(roots);
    }
    if let Some((cert, key)) = &tls.client_cert {
        let mut pem =
            std::fs::read(cert).map_err(|e| TlsError::new("UPSTREAM_CLIENT_CERT_FILE", cert, e))?;
        pem.push(b'\n');
        pem.extend(
            std::fs::read(key).map_err(|e| TlsError::new("UPSTREAM_CLIENT_KEY_FILE", key, e))?,
        );
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            TlsError::new(
                "UPSTREAM_CLIENT_CERT_FILE",
                cert,
                format!("certificate and UPSTREAM_CLIENT_KEY_FILE unusable: {e}"),
            )
        })?;
        builder = builder.identity(identity);
    }
    Ok(builder)
}
