//! Turning raw strings into a validated [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use super::{
    AllowedModels, ClassifierSettings, Config, ContextSettings, Environment, GateSettings,
    IntegrityMode, IntegritySettings, IsolationSettings, Limits, LogFormat, MockSettings,
    ModelLocation, RedisSettings, SaltMode, SecurityMode, UnsaltedPolicy, UpstreamKind, extraction,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {var}={value:?}: expected {expected}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub expected: String,
}

pub(super) fn invalid(var: &'static str, value: &str, expected: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// Reads a variable, treating an empty value like an unset one (as `.env` files often leave them).
pub(super) fn get(lookup: &dyn Fn(&str) -> Option<String>, var: &str) -> Option<String> {
    lookup(var)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

pub(super) fn choice<T: Copy>(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    options: &[(&str, T)],
    default: T,
) -> Result<T, ConfigError> {
    let Some(raw) = get(lookup, var) else {
        return Ok(default);
    };
    options
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&raw))
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            invalid(var, &raw, format!("one of {}", names.join(", ")))
        })
}

pub(super) fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let Some(raw) = get(lookup, var) else {
        return Ok(default);
    };
    match raw.parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(invalid(
            var,
            &raw,
            format!("a whole number from {min} to {max}"),
        )),
    }
}

pub(super) fn duration(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(raw) = get(lookup, var) else {
        return Ok(default);
    };
    humantime::parse_duration(&raw)
        .map_err(|_| invalid(var, &raw, "a duration such as 500ms, 30s, 5m or 1h"))
}

pub(super) fn url(var: &'static str, raw: &str) -> Result<String, ConfigError> {
    let parsed =
        reqwest::Url::parse(raw).map_err(|_| invalid(var, raw, "an http:// or https:// URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(var, raw, "an http:// or https:// URL"));
    }
    Ok(raw.trim_end_matches('/').to_string())
}

/// Accepts the seed's plain path (`./data/secureinfer.db`) as well as `sqlite:` and `postgres:` URLs.
fn database_url(raw: Option<String>) -> Result<String, ConfigError> {
    let raw = raw.unwrap_or_else(|| "sqlite://./data/secureinfer.db".to_string());
    if raw.starts_with("sqlite:")
        || raw.starts_with("postgres://")
        || raw.starts_with("postgresql://")
    {
        return Ok(raw);
    }
    if raw.contains("://") {
        return Err(invalid(
            "DATABASE_URL",
            &raw,
            "sqlite://<path>, sqlite::memory:, postgres://… or a plain file path",
        ));
    }
    Ok(format!("sqlite://{raw}"))
}

pub(super) fn flag(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    choice(
        lookup,
        var,
        &[("true", true), ("false", false), ("1", true), ("0", false)],
        default,
    )
}

fn gate(lookup: &dyn Fn(&str) -> Option<String>) -> Result<GateSettings, ConfigError> {
    let defaults = secureinfer_guard::Thresholds::default();
    let thresholds = secureinfer_guard::Thresholds {
        warn: number(lookup, "RISK_THRESHOLD_WARN", defaults.warn, 1, 100)?,
        block: number(lookup, "RISK_THRESHOLD_BLOCK", defaults.block, 1, 100)?,
    };
    if thresholds.warn > thresholds.block {
        return Err(invalid(
            "RISK_THRESHOLD_WARN",
            &thresholds.warn.to_string(),
            format!(
                "a value not above RISK_THRESHOLD_BLOCK ({})",
                thresholds.block
            ),
        ));
    }
    Ok(GateSettings {
        thresholds,
        mode: choice(
            lookup,
            "SECURITY_MODE",
            &[
                ("enforce", SecurityMode::Enforce),
                ("monitor", SecurityMode::Monitor),
            ],
            SecurityMode::Enforce,
        )?,
        score_system_prompt: flag(lookup, "SCORE_SYSTEM_PROMPT", false)?,
        event_store_prompt: flag(lookup, "EVENT_STORE_PROMPT", false)?,
        classifier: classifier(lookup)?,
    })
}

/// `CLASSIFIER_*`: whether to run the learned detector, which model, how much it counts.
pub fn classifier(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ClassifierSettings, ConfigError> {
    let weight = match get(lookup, "CLASSIFIER_WEIGHT") {
        None => 1.0,
        Some(raw) => match raw.parse::<f32>() {
            Ok(w) if (0.0..=2.0).contains(&w) => w,
            _ => {
                return Err(invalid(
                    "CLASSIFIER_WEIGHT",
                    &raw,
                    "a number from 0 to 2 (1 = as calibrated)",
                ));
            }
        },
    };
    let semantic_model_dir = match get(lookup, "SEMANTIC_MODEL_DIR") {
        None => None,
        Some(raw) if !cfg!(feature = "semantic") => {
            return Err(invalid(
                "SEMANTIC_MODEL_DIR",
                &raw,
                "unset: this build has no semantic encoder (build with --features semantic)",
            ));
        }
        Some(raw) => Some(std::path::PathBuf::from(raw)),
    };
    Ok(ClassifierSettings {
        enabled: flag(lookup, "CLASSIFIER_ENABLED", true)?,
        model: get(lookup, "CLASSIFIER_MODEL").map(std::path::PathBuf::from),
        weight,
        semantic_model_dir,
    })
}

/// `sha256:`-prefixed or bare, any case → 64 lowercase hex digits.
fn expected_hash(raw: &str) -> Result<String, ConfigError> {
    let hex = raw
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("sha256:"))
        .map_or(raw, |_| &raw[7..]);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(invalid(
            "MODEL_EXPECTED_HASH",
            raw,
            "64 hex digits, optionally prefixed by sha256: (see `secureinfer model hash`)",
        ))
    }
}

fn integrity(
    lookup: &dyn Fn(&str) -> Option<String>,
    production: bool,
) -> Result<IntegritySettings, ConfigError> {
    let path = |var| get(lookup, var).map(PathBuf::from);
    let location = match path("MODEL_PATH") {
        Some(p) => ModelLocation::Path(p),
        None => ModelLocation::Ollama {
            models_dir: path("OLLAMA_MODELS"),
        },
    };
    let expected_hash = get(lookup, "MODEL_EXPECTED_HASH")
        .map(|raw| expected_hash(&raw))
        .transpose()?;
    let signature = path("MODEL_SIGNATURE");
    let public_key = path("MODEL_PUBLIC_KEY");
    let allowlist = path("MODEL_ALLOWLIST");
    let require_signature = flag(lookup, "MODEL_REQUIRE_SIGNATURE", false)?;
    if let (Some(list), ModelLocation::Path(_)) = (&allowlist, &location) {
        return Err(invalid(
            "MODEL_ALLOWLIST",
            &list.display().to_string(),
            "an allowlist only with an Ollama store: unset MODEL_PATH, or sign the model files (MODEL_SIGNATURE)",
        ));
    }
    if public_key.is_none() && (signature.is_some() || allowlist.is_some()) {
        return Err(invalid(
            "MODEL_PUBLIC_KEY",
            "",
            "the PEM public key that verifies MODEL_SIGNATURE / MODEL_ALLOWLIST",
        ));
    }
    if require_signature && signature.is_none() && allowlist.is_none() {
        return Err(invalid(
            "MODEL_REQUIRE_SIGNATURE",
            "true",
            "false, unless MODEL_SIGNATURE or MODEL_ALLOWLIST is set",
        ));
    }
    let interval = duration(lookup, "MODEL_VERIFY_INTERVAL", Duration::ZERO)?;
    let mut settings = IntegritySettings {
        location,
        expected_hash,
        signature,
        public_key,
        allowlist,
        require_signature,
        verify_on_start: false,
        interval: (!interval.is_zero()).then_some(interval),
        mode: choice(
            lookup,
            "MODEL_INTEGRITY_MODE",
            &[
                ("enforce", IntegrityMode::Enforce),
                ("monitor", IntegrityMode::Monitor),
            ],
            if production {
                IntegrityMode::Enforce
            } else {
                IntegrityMode::Monitor
            },
        )?,
    };
    // Pinning something and then not checking it at start-up is almost never what is meant.
    settings.verify_on_start = flag(lookup, "MODEL_VERIFY_ON_START", settings.pinned())?;
    Ok(settings)
}

/// The conversation store's Redis: the same server as the limits (`REDIS_URL`, `REDIS_TIMEOUT`,
/// parsed with them), with its own connection pool.
fn redis(
    lookup: &dyn Fn(&str) -> Option<String>,
    limits: &super::RateLimitSettings,
) -> Result<Option<RedisSettings>, ConfigError> {
    let pool_size = number(lookup, "REDIS_POOL_SIZE", 32usize, 1, 1024)?;
    Ok(limits.redis_url.as_ref().map(|url| RedisSettings {
        url: url.clone(),
        timeout: limits.redis_timeout,
        pool_size,
    }))
}

fn isolation(
    lookup: &dyn Fn(&str) -> Option<String>,
    production: bool,
) -> Result<IsolationSettings, ConfigError> {
    let context = ContextSettings {
        enabled: flag(lookup, "CONTEXT_ENABLED", true)?,
        ttl: duration(lookup, "CONTEXT_TTL", Duration::from_secs(3600))?,
        max_messages: number(lookup, "CONTEXT_MAX_MESSAGES", 50usize, 1, 10_000)?,
        max_chars: number(lookup, "CONTEXT_MAX_CHARS", 32_000usize, 1, 10_000_000)?,
        max_conversations: number(
            lookup,
            "CONTEXT_MAX_CONVERSATIONS",
            10_000usize,
            1,
            10_000_000,
        )?,
    };
    if context.ttl < Duration::from_secs(1) {
        return Err(invalid(
            "CONTEXT_TTL",
            &humantime::format_duration(context.ttl).to_string(),
            "a duration of at least 1s",
        ));
    }
    let salt_secret = match get(lookup, "CACHE_SALT_SECRET") {
        Some(s) if s.len() >= 32 => Some(SecretString::from(s)),
        Some(_) => {
            return Err(invalid(
                "CACHE_SALT_SECRET",
                "<hidden>",
                "at least 32 characters",
            ));
        }
        None => None,
    };
    Ok(IsolationSettings {
        context,
        salt_mode: choice(
            lookup,
            "PREFIX_CACHE_SALT",
            &[
                ("auto", SaltMode::Auto),
                ("on", SaltMode::On),
                ("off", SaltMode::Off),
            ],
            SaltMode::Auto,
        )?,
        salt_secret,
        // Production must decide explicitly to share an unisolated cache; development, where
        // the dev bootstrap and demos use several tenants on one local model, accepts it.
        unsalted: choice(
            lookup,
            "UNSALTED_UPSTREAM",
            &[
                ("refuse", UnsaltedPolicy::Refuse),
                ("accept-risk", UnsaltedPolicy::AcceptRisk),
            ],
            if production {
                UnsaltedPolicy::Refuse
            } else {
                UnsaltedPolicy::AcceptRisk
            },
        )?,
    })
}

pub(super) fn parse(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let environment = choice(
        lookup,
        "SECUREINFER_ENV",
        &[
            ("development", Environment::Development),
            ("production", Environment::Production),
        ],
        Environment::Development,
    )?;
    let production = environment == Environment::Production;

    let log_level = get(lookup, "LOG_LEVEL").unwrap_or_else(|| "info".to_string());
    if !["trace", "debug", "info", "warn", "error"]
        .contains(&log_level.to_ascii_lowercase().as_str())
    {
        return Err(invalid(
            "LOG_LEVEL",
            &log_level,
            "one of trace, debug, info, warn, error",
        ));
    }
    let log_format = choice(
        lookup,
        "LOG_FORMAT",
        &[("json", LogFormat::Json), ("pretty", LogFormat::Pretty)],
        if production {
            LogFormat::Json
        } else {
            LogFormat::Pretty
        },
    )?;

    let upstream = choice(
        lookup,
        "UPSTREAM",
        &[
            ("ollama", UpstreamKind::Ollama),
            ("openai", UpstreamKind::OpenAi),
            ("mock", UpstreamKind::Mock),
        ],
        UpstreamKind::Ollama,
    )?;
    let ollama_url = match get(lookup, "OLLAMA_URL") {
        Some(raw) => url("OLLAMA_URL", &raw)?,
        None => "http://localhost:11434".to_string(),
    };
    let upstream_url = match (get(lookup, "UPSTREAM_URL"), upstream) {
        (Some(raw), _) => url("UPSTREAM_URL", &raw)?,
        (None, UpstreamKind::Ollama) => ollama_url,
        (None, UpstreamKind::Mock) => String::new(),
        (None, UpstreamKind::OpenAi) => {
            return Err(invalid(
                "UPSTREAM_URL",
                "",
                "the base URL of the OpenAI-compatible server (required when UPSTREAM=openai)",
            ));
        }
    };

    let model_name = get(lookup, "MODEL_NAME").unwrap_or_else(|| match upstream {
        UpstreamKind::Mock => "secureinfer-mock".to_string(),
        _ => "phi3.5:3.8b-mini-instruct-q4_K_M".to_string(),
    });
    let allowed_models = match get(lookup, "ALLOWED_MODELS") {
        Some(raw) if raw == "*" => AllowedModels::Any,
        Some(raw) => {
            let list: Vec<String> = raw
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            if list.is_empty() {
                return Err(invalid(
                    "ALLOWED_MODELS",
                    &raw,
                    "a comma-separated list of model names, or *",
                ));
            }
            AllowedModels::List(list)
        }
        None => AllowedModels::List(vec![model_name.clone()]),
    };

    let admin_api_key = match get(lookup, "ADMIN_API_KEY") {
        Some(key) if key.len() >= 32 => Some(SecretString::from(key)),
        Some(_) => {
            // The value itself is a secret: never echo it in the error.
            return Err(invalid(
                "ADMIN_API_KEY",
                "<hidden>",
                "at least 32 characters",
            ));
        }
        None if production => {
            return Err(invalid(
                "ADMIN_API_KEY",
                "",
                "a key of at least 32 characters (required when SECUREINFER_ENV=production)",
            ));
        }
        None => None,
    };

    let rate_limits = super::rate_limits::parse(lookup)?;
    let redis = redis(lookup, &rate_limits)?;
    Ok(Config {
        environment,
        host: get(lookup, "API_HOST").unwrap_or_else(|| "0.0.0.0".to_string()),
        port: number(lookup, "API_PORT", 8000u16, 0, u16::MAX)?,
        log_level: log_level.to_ascii_lowercase(),
        log_format,
        database_url: database_url(get(lookup, "DATABASE_URL"))?,
        upstream,
        upstream_url,
        upstream_api_key: get(lookup, "UPSTREAM_API_KEY").map(SecretString::from),
        upstream_timeout: duration(lookup, "UPSTREAM_TIMEOUT", Duration::from_secs(120))?,
        model_name,
        allowed_models,
        admin_api_key,
        auth_cache_ttl: {
            let ttl = duration(lookup, "AUTH_CACHE_TTL", Duration::from_secs(1))?;
            if ttl > Duration::from_secs(60) {
                return Err(invalid(
                    "AUTH_CACHE_TTL",
                    &humantime::format_duration(ttl).to_string(),
                    "a duration from 0s to 60s",
                ));
            }
            ttl
        },
        limits: Limits {
            max_body_bytes: number(
                lookup,
                "MAX_BODY_BYTES",
                1_048_576usize,
                1024,
                64 * 1_048_576,
            )?,
            max_messages: number(lookup, "MAX_MESSAGES", 256usize, 1, 10_000)?,
            max_prompt_chars: number(lookup, "MAX_PROMPT_CHARS", 200_000usize, 1, 10_000_000)?,
            max_tokens_cap: number(lookup, "MAX_TOKENS_CAP", 4096u32, 1, 1_000_000)?,
        },
        shutdown_timeout: duration(lookup, "SHUTDOWN_TIMEOUT", Duration::from_secs(30))?,
        gate: gate(lookup)?,
        integrity: integrity(lookup, production)?,
        extraction: extraction::parse(lookup)?,
        tls: super::tls::server(lookup)?,
        upstream_tls: super::tls::upstream(lookup)?,
        jwt: super::jwt::parse(lookup)?,
        output: super::output::parse(lookup)?,
        mock: MockSettings {
            latency: duration(lookup, "MOCK_LATENCY", Duration::ZERO)?,
            token_delay: duration(lookup, "MOCK_TOKEN_DELAY", Duration::ZERO)?,
        },
        rate_limits,
        redis,
        isolation: isolation(lookup, production)?,
        observability: super::observability::parse(lookup)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::HashMap;
    use std::time::Duration;

    use super::super::Config;
    use super::ConfigError;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = [("UPSTREAM", "mock")]
            .iter()
            .chain(pairs)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&|k| map.get(k).cloned())
    }

    #[test]
    fn auth_cache_ttl_defaults_to_one_second_and_is_bounded() {
        assert_eq!(config(&[]).unwrap().auth_cache_ttl, Duration::from_secs(1));
        let off = config(&[("AUTH_CACHE_TTL", "0s")]).unwrap();
        assert_eq!(off.auth_cache_ttl, Duration::ZERO);
        let max = config(&[("AUTH_CACHE_TTL", "60s")]).unwrap();
        assert_eq!(max.auth_cache_ttl, Duration::from_secs(60));
        for bad in ["61s", "1h", "soon"] {
            let e = config(&[("AUTH_CACHE_TTL", bad)]).unwrap_err().to_string();
            assert!(e.contains("AUTH_CACHE_TTL"), "{bad}: {e}");
        }
    }
}
