//! TLS settings: HTTPS termination (with optional client certificates) and the TLS client
//! the gateway uses towards its upstream.

use std::path::PathBuf;
use std::time::Duration;

use super::ConfigError;
use super::parse::{choice, duration, flag, get, invalid};

/// Whether connecting clients must present a certificate signed by `TLS_CLIENT_CA_FILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A certificate is verified when offered; clients without one still connect (and then
    /// authenticate with a bearer key or token).
    Optional,
    /// The handshake fails without a valid client certificate (mTLS).
    Required,
}

/// HTTPS termination. Present only when `TLS_CERT_FILE` and `TLS_KEY_FILE` are set.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// A verified client certificate's subject common name names the tenant (by name or id).
    pub client_cert_tenant: bool,
    /// How often the files are re-read; a changed set replaces the served one. `None`: never.
    pub reload_interval: Option<Duration>,
}

/// How the gateway's HTTP client trusts and identifies itself to the upstream.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTls {
    /// PEM bundle that replaces the system roots for upstream connections.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key presented to an upstream that requires mTLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

fn path(lookup: &dyn Fn(&str) -> Option<String>, var: &str) -> Option<PathBuf> {
    get(lookup, var).map(PathBuf::from)
}

pub(super) fn server(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ServerTls>, ConfigError> {
    let cert = path(lookup, "TLS_CERT_FILE");
    let key = path(lookup, "TLS_KEY_FILE");
    let client_ca_file = path(lookup, "TLS_CLIENT_CA_FILE");
    let (cert_file, key_file) = match (cert, key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => {
            for var in [
                "TLS_CLIENT_CA_FILE",
                "TLS_CLIENT_AUTH",
                "TLS_CLIENT_CERT_TENANT",
            ] {
                if let Some(v) = get(lookup, var) {
                    return Err(invalid(
                        var,
                        &v,
                        "TLS_CERT_FILE and TLS_KEY_FILE to be set too (client certificates need HTTPS)",
                    ));
                }
            }
            return Ok(None);
        }
        (Some(_), None) => {
            return Err(invalid(
                "TLS_KEY_FILE",
                "",
                "the PEM private key for TLS_CERT_FILE",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "TLS_CERT_FILE",
                "",
                "the PEM certificate chain for TLS_KEY_FILE",
            ));
        }
    };
    let client_auth = choice(
        lookup,
        "TLS_CLIENT_AUTH",
        &[
            ("required", ClientAuth::Required),
            ("optional", ClientAuth::Optional),
        ],
        ClientAuth::Required,
    )?;
    if client_ca_file.is_none()
        && let Some(v) = get(lookup, "TLS_CLIENT_AUTH")
    {
        return Err(invalid(
            "TLS_CLIENT_AUTH",
            &v,
            "TLS_CLIENT_CA_FILE to be set too",
        ));
    }
    let client_cert_tenant = flag(lookup, "TLS_CLIENT_CERT_TENANT", false)?;
    if client_cert_tenant && client_ca_file.is_none() {
        return Err(invalid(
            "TLS_CLIENT_CERT_TENANT",
            "true",
            "TLS_CLIENT_CA_FILE to be set too (only verified certificates can name a tenant)",
        ));
    }
    let reload = duration(lookup, "TLS_RELOAD_INTERVAL", Duration::from_secs(30))?;
    Ok(Some(ServerTls {
        cert_file,
        key_file,
        client_ca_file,
        client_auth,
        client_cert_tenant,
        reload_interval: (!reload.is_zero()).then_some(reload),
    }))
}

pub(super) fn upstream(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<UpstreamTls, ConfigError> {
    let client_cert = match (
        path(lookup, "UPSTREAM_CLIENT_CERT_FILE"),
        path(lookup, "UPSTREAM_CLIENT_KEY_FILE"),
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "UPSTREAM_CLIENT_KEY_FILE",
                "",
                "the PEM private key for UPSTREAM_CLIENT_CERT_FILE",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "UPSTREAM_CLIENT_CERT_FILE",
                "",
                "the PEM certificate for UPSTREAM_CLIENT_KEY_FILE",
            ));
        }
    };
    Ok(UpstreamTls {
        ca_file: path(lookup, "UPSTREAM_CA_FILE"),
        client_cert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Option<ServerTls>, ConfigError> {
        let map: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        server(&|k| map.get(k).cloned())
    }

    #[test]
    fn no_files_means_plain_http() {
        assert!(parse(&[]).unwrap().is_none());
    }

    #[test]
    fn certificate_and_key_come_together() {
        assert_eq!(
            parse(&[("TLS_CERT_FILE", "c")]).unwrap_err().var,
            "TLS_KEY_FILE"
        );
        assert_eq!(
            parse(&[("TLS_KEY_FILE", "k")]).unwrap_err().var,
            "TLS_CERT_FILE"
        );
    }

    #[test]
    fn client_settings_need_https_and_a_client_ca() {
        let err = parse(&[("TLS_CLIENT_CA_FILE", "ca")]).unwrap_err();
        assert_eq!(err.var, "TLS_CLIENT_CA_FILE");
        let files = [("TLS_CERT_FILE", "c"), ("TLS_KEY_FILE", "k")];
        let err = parse(&[files[0], files[1], ("TLS_CLIENT_AUTH", "optional")]).unwrap_err();
        assert_eq!(err.var, "TLS_CLIENT_AUTH");
        let err = parse(&[files[0], files[1], ("TLS_CLIENT_CERT_TENANT", "true")]).unwrap_err();
        assert_eq!(err.var, "TLS_CLIENT_CERT_TENANT");
        let err = parse(&[
            files[0],
            files[1],
            ("TLS_CLIENT_CA_FILE", "ca"),
            ("TLS_CLIENT_AUTH", "sometimes"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "TLS_CLIENT_AUTH");
    }

    #[test]
    fn defaults_and_reload_off() {
        let files = [("TLS_CERT_FILE", "c"), ("TLS_KEY_FILE", "k")];
        let tls = parse(&[files[0], files[1], ("TLS_CLIENT_CA_FILE", "ca")])
            .unwrap()
            .unwrap();
        assert_eq!(tls.client_auth, ClientAuth::Required);
        assert!(!tls.client_cert_tenant);
        assert_eq!(tls.reload_interval, Some(Duration::from_secs(30)));
        let tls = parse(&[files[0], files[1], ("TLS_RELOAD_INTERVAL", "0")])
            .unwrap()
            .unwrap();
        assert_eq!(tls.reload_interval, None);
    }
}
