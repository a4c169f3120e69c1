//! Abuse-limit settings: per-IP and per-tenant rates, token budgets, concurrency caps, tiers,
//! and the shared (Redis) backend with its failure policy.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;

use super::parse::{ConfigError, choice, duration, get, invalid, number};
use crate::limits::client_ip::TrustedProxies;

/// One set of tenant limits. 0 switches a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantLimits {
    pub rpm: u64,
    pub burst: u64,
    pub tpm: u64,
    pub max_concurrent: u64,
}

/// What the gateway does with a limited request when Redis does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFailure {
    /// Refuse with 503: no request passes unlimited.
    Closed,
    /// Let requests through unlimited: availability first.
    Open,
    /// Limit each replica on its own in-process state until Redis is back.
    Local,
}

impl RedisFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisFailure::Closed => "closed",
            RedisFailure::Open => "open",
            RedisFailure::Local => "local",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// Requests per minute per client IP (0: off) and the burst.
    pub ip_rpm: u64,
    pub ip_burst: u64,
    pub trusted_proxies: TrustedProxies,
    /// Limits of tenants without a tier.
    pub tenant: TenantLimits,
    /// Named limit sets a tenant can be assigned (`PUT /v1/tenants/{id}/limits`).
    pub tiers: BTreeMap<String, TenantLimits>,
    pub redis_url: Option<SecretString>,
    pub redis_timeout: Duration,
    pub redis_failure: RedisFailure,
}

impl RateLimitSettings {
    /// The limits a tenant gets: its tier's, or the defaults (also for a tier that no longer
    /// exists in the configuration).
    pub fn for_tier(&self, tier: Option<&str>) -> TenantLimits {
        tier.and_then(|t| self.tiers.get(t))
            .copied()
            .unwrap_or(self.tenant)
    }
}

const MAX_RPM: u64 = 60_000_000;
const MAX_BURST: u64 = 10_000_000;
const MAX_TPM: u64 = 60_000_000;
const MAX_CONCURRENT: u64 = 1_000_000;
const TIER_FORMAT: &str = "tiers separated by ';', each NAME:key=value,... with keys rpm, burst, tpm, concurrent \
     (whole numbers; unset keys take the TENANT_* defaults), e.g. free:rpm=20,tpm=20000;pro:rpm=600,concurrent=64";

fn tier_name_ok(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Parses `RATE_LIMIT_TIERS`.
fn tiers(raw: &str, base: TenantLimits) -> Result<BTreeMap<String, TenantLimits>, ConfigError> {
    let bad = || invalid("RATE_LIMIT_TIERS", raw, TIER_FORMAT);
    let mut out = BTreeMap::new();
    for tier in raw.split(';').map(str::trim).filter(|t| !t.is_empty()) {
        let (name, fields) = tier.split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        if !tier_name_ok(name) || out.contains_key(name) {
            return Err(bad());
        }
        let mut limits = base;
        for field in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let (key, value) = field.split_once('=').ok_or_else(bad)?;
            let value: u64 = value.trim().parse().map_err(|_| bad())?;
            let (slot, max) = match key.trim() {
                "rpm" => (&mut limits.rpm, MAX_RPM),
                "burst" => (&mut limits.burst, MAX_BURST),
                "tpm" => (&mut limits.tpm, MAX_TPM),
                "concurrent" => (&mut limits.max_concurrent, MAX_CONCURRENT),
                _ => return Err(bad()),
            };
            if value > max {
                return Err(bad());
            }
            *slot = value;
        }
        out.insert(name.to_string(), limits);
    }
    Ok(out)
}

pub(super) fn parse(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<RateLimitSettings, ConfigError> {
    let trusted_proxies = match get(lookup, "TRUSTED_PROXIES") {
        None => TrustedProxies::default(),
        Some(raw) => TrustedProxies::parse(&raw).map_err(|item| {
            invalid(
                "TRUSTED_PROXIES",
                &raw,
                format!(
                    "comma-separated IP addresses or CIDR blocks (e.g. 10.0.0.0/8, ::1); {item:?} is neither"
                ),
            )
        })?,
    };
    let tenant = TenantLimits {
        rpm: number(lookup, "TENANT_RATE_LIMIT_RPM", 600, 0, MAX_RPM)?,
        burst: number(lookup, "TENANT_RATE_LIMIT_BURST", 100, 1, MAX_BURST)?,
        tpm: number(lookup, "TENANT_TOKEN_LIMIT_TPM", 0, 0, MAX_TPM)?,
        max_concurrent: number(lookup, "TENANT_MAX_CONCURRENT", 32, 0, MAX_CONCURRENT)?,
    };
    let tiers = match get(lookup, "RATE_LIMIT_TIERS") {
        Some(raw) => tiers(&raw, tenant)?,
        None => BTreeMap::new(),
    };
    let redis_url = match get(lookup, "REDIS_URL") {
        None => None,
        Some(raw) => {
            // Checked here so a typo stops start-up; the value may hold a password: not echoed.
            if redis::Client::open(raw.as_str()).is_err() {
                return Err(invalid(
                    "REDIS_URL",
                    "<hidden>",
                    "redis://[user:password@]host:port[/db] or unix:///path/to/redis.sock",
                ));
            }
            Some(SecretString::from(raw))
        }
    };
    let redis_timeout = duration(lookup, "REDIS_TIMEOUT", Duration::from_millis(250))?;
    if redis_timeout.is_zero() || redis_timeout > Duration::from_secs(30) {
        return Err(invalid(
            "REDIS_TIMEOUT",
            &format!("{redis_timeout:?}"),
            "a duration above 0 and at most 30s, e.g. 250ms",
        ));
    }
    Ok(RateLimitSettings {
        ip_rpm: number(lookup, "RATE_LIMIT_RPM", 600, 0, MAX_RPM)?,
        ip_burst: number(lookup, "RATE_LIMIT_BURST", 100, 1, MAX_BURST)?,
        trusted_proxies,
        tenant,
        tiers,
        redis_url,
        redis_timeout,
        redis_failure: choice(
            lookup,
            "RATE_LIMIT_REDIS_FAILURE",
            &[
                ("closed", RedisFailure::Closed),
                ("open", RedisFailure::Open),
                ("local", RedisFailure::Local),
            ],
            RedisFailure::Local,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse_map(pairs: &[(&str, &str)]) -> Result<RateLimitSettings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let s = parse_map(&[]).unwrap();
        assert_eq!((s.ip_rpm, s.ip_burst), (600, 100));
        assert_eq!(
            s.tenant,
            TenantLimits {
                rpm: 600,
                burst: 100,
                tpm: 0,
                max_concurrent: 32
            }
        );
        assert!(s.redis_url.is_none());
        assert_eq!(s.redis_failure, RedisFailure::Local);
    }

    #[test]
    fn tiers_inherit_defaults_and_reject_typos() {
        let s = parse_map(&[
            ("TENANT_TOKEN_LIMIT_TPM", "5000"),
            (
                "RATE_LIMIT_TIERS",
                "free:rpm=20,burst=5; pro:tpm=100000,concurrent=64",
            ),
        ])
        .unwrap();
        assert_eq!(
            s.tiers["free"],
            TenantLimits {
                rpm: 20,
                burst: 5,
                tpm: 5000,
                max_concurrent: 32
            }
        );
        assert_eq!(s.for_tier(Some("pro")).tpm, 100_000);
        assert_eq!(s.for_tier(Some("gone")), s.tenant);
        for bad in [
            "free",
            "free:rpm=x",
            "free:rps=1",
            "a b:rpm=1",
            "x:rpm=1;x:rpm=2",
        ] {
            let e = parse_map(&[("RATE_LIMIT_TIERS", bad)]).unwrap_err();
            assert_eq!(e.var, "RATE_LIMIT_TIERS", "{bad}");
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("TRUSTED_PROXIES", "10.0.0.0/8,proxy.local"),
            ("RATE_LIMIT_REDIS_FAILURE", "maybe"),
            ("REDIS_URL", "http://localhost"),
            ("REDIS_TIMEOUT", "0s"),
            ("RATE_LIMIT_BURST", "0"),
            ("TENANT_MAX_CONCURRENT", "-1"),
        ] {
            let e = parse_map(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var);
        }
        let e = parse_map(&[("REDIS_URL", "http://user:secret@host")]).unwrap_err();
        assert!(!e.to_string().contains("secret"));
    }
}
