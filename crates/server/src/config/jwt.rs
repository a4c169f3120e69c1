//! JWT/OIDC bearer tokens as an alternative to API keys: where the signing keys come from,
//! which issuer and audience a token must name, and which claim names the tenant.

use std::path::PathBuf;
use std::time::Duration;

use super::ConfigError;
use super::parse::{duration, get, invalid};

/// Where the identity provider's public keys (a JWKS document) are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    /// `https://`, or `http://` to a loopback address only.
    Url(String),
}

#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub jwks: JwksSource,
    pub issuer: String,
    pub audience: String,
    /// The claim whose string value is the tenant's name or id.
    pub tenant_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// How often the JWKS is re-read (key rotation at the identity provider).
    pub refresh: Duration,
}

fn jwks_url(raw: &str) -> Result<String, ConfigError> {
    let expected = "an https:// URL (http:// only to localhost or a loopback address)";
    let parsed = reqwest::Url::parse(raw).map_err(|_| invalid("JWT_JWKS_URL", raw, expected))?;
    let host = parsed.host_str().unwrap_or("");
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    // Keys fetched over plain HTTP could be swapped by anyone on the path, and with them
    // every tenant's identity.
    match parsed.scheme() {
        "https" if !host.is_empty() => Ok(raw.to_string()),
        "http" if loopback => Ok(raw.to_string()),
        _ => Err(invalid("JWT_JWKS_URL", raw, expected)),
    }
}

pub(super) fn parse(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<JwtSettings>, ConfigError> {
    let jwks = match (get(lookup, "JWT_JWKS_FILE"), get(lookup, "JWT_JWKS_URL")) {
        (Some(_), Some(url)) => {
            return Err(invalid(
                "JWT_JWKS_URL",
                &url,
                "to be unset when JWT_JWKS_FILE is set (one key source)",
            ));
        }
        (Some(file), None) => JwksSource::File(PathBuf::from(file)),
        (None, Some(url)) => JwksSource::Url(jwks_url(&url)?),
        (None, None) => {
            for var in ["JWT_ISSUER", "JWT_AUDIENCE", "JWT_TENANT_CLAIM"] {
                if let Some(v) = get(lookup, var) {
                    return Err(invalid(
                        var,
                        &v,
                        "JWT_JWKS_FILE or JWT_JWKS_URL to be set too",
                    ));
                }
            }
            return Ok(None);
        }
    };
    // A token for another service of the same identity provider must not open this one:
    // issuer and audience are both required.
    let issuer = get(lookup, "JWT_ISSUER").ok_or_else(|| {
        invalid(
            "JWT_ISSUER",
            "",
            "the issuer (iss) tokens must carry, required with a JWKS",
        )
    })?;
    let audience = get(lookup, "JWT_AUDIENCE").ok_or_else(|| {
        invalid(
            "JWT_AUDIENCE",
            "",
            "the audience (aud) tokens must carry, required with a JWKS",
        )
    })?;
    let tenant_claim = get(lookup, "JWT_TENANT_CLAIM").unwrap_or_else(|| "tenant".to_string());
    let leeway = duration(lookup, "JWT_LEEWAY", Duration::from_secs(60))?;
    if leeway > Duration::from_secs(600) {
        return Err(invalid(
            "JWT_LEEWAY",
            &humantime::format_duration(leeway).to_string(),
            "at most 10m",
        ));
    }
    let refresh = duration(lookup, "JWT_JWKS_REFRESH", Duration::from_secs(600))?;
    if refresh < Duration::from_secs(1) {
        return Err(invalid(
            "JWT_JWKS_REFRESH",
            &humantime::format_duration(refresh).to_string(),
            "at least 1s",
        ));
    }
    Ok(Some(JwtSettings {
        jwks,
        issuer,
        audience,
        tenant_claim,
        leeway,
        refresh,
    }))
}
