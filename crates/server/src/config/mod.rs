//! Gateway configuration: parsed once at start-up from flags, the environment and `.env`.
//!
//! Parsing is a pure function over a key lookup, so tests hand it a map instead of mutating
//! the process environment. Every error names the variable and what it accepts.

mod extraction;
mod jwt;
mod observability;
mod output;
mod parse;
mod rate_limits;
mod settings;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

pub use extraction::ExtractionSettings;
pub use jwt::{JwksSource, JwtSettings};
pub use observability::ObservabilitySettings;
pub use output::{CanaryPosition, OutputSettings, TenantOutputOverrides};
pub use parse::ConfigError;
pub use parse::classifier as classifier_settings;
pub use rate_limits::{RateLimitSettings, RedisFailure, TenantLimits};
pub use settings::SettingArgs;
pub use tls::{ClientAuth, ServerTls, UpstreamTls};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    Ollama,
    OpenAi,
    Mock,
}

impl UpstreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::Ollama => "ollama",
            UpstreamKind::OpenAi => "openai",
            UpstreamKind::Mock => "mock",
        }
    }
}

/// Which models clients may name in `model`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedModels {
    Any,
    List(Vec<String>),
}

impl AllowedModels {
    pub fn permits(&self, model: &str) -> bool {
        match self {
            AllowedModels::Any => true,
            AllowedModels::List(list) => list.iter().any(|m| m == model),
        }
    }
}

/// Request limits enforced before anything reaches the model.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_messages: usize,
    pub max_prompt_chars: usize,
    pub max_tokens_cap: u32,
}

/// How the security gate acts on its verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityMode {
    /// Block at the block threshold.
    Enforce,
    /// Score, warn and record, but never block: for rolling the gate out.
    Monitor,
}

impl SecurityMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityMode::Enforce => "enforce",
            SecurityMode::Monitor => "monitor",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GateSettings {
    pub thresholds: secureinfer_guard::Thresholds,
    pub mode: SecurityMode,
    pub score_system_prompt: bool,
    pub event_store_prompt: bool,
    pub classifier: ClassifierSettings,
}

/// The learned detector beside the pattern heuristics.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierSettings {
    pub enabled: bool,
    /// A model file to load at start-up instead of the built-in one.
    pub model: Option<std::path::PathBuf>,
    /// Multiplier for its risk points (0..=2).
    pub weight: f32,
    /// The MiniLM encoder files for the second (semantic) tier; only accepted by builds with
    /// the `semantic` feature.
    pub semantic_model_dir: Option<std::path::PathBuf>,
}

impl Default for ClassifierSettings {
    fn default() -> Self {
        ClassifierSettings {
            enabled: true,
            model: None,
            weight: 1.0,
            semantic_model_dir: None,
        }
    }
}

/// What the gateway does while the model fails its integrity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityMode {
    /// Refuse inference (503) until the model verifies again.
    Enforce,
    /// Report in `/health` and `/v1/security/verify`, record an event, keep serving.
    Monitor,
}

impl IntegrityMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrityMode::Enforce => "enforce",
            IntegrityMode::Monitor => "monitor",
        }
    }
}

/// Where the model the upstream loads lives on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelLocation {
    /// An Ollama store; the model is `MODEL_NAME`. `None`: `$HOME/.ollama/models`.
    Ollama { models_dir: Option<PathBuf> },
    /// A model file or directory (`MODEL_PATH`).
    Path(PathBuf),
}

/// Model integrity settings; they map onto `secureinfer_integrity::VerifyOptions`.
#[derive(Debug, Clone)]
pub struct IntegritySettings {
    pub location: ModelLocation,
    /// Normalised: 64 lowercase hex digits.
    pub expected_hash: Option<String>,
    pub signature: Option<PathBuf>,
    pub public_key: Option<PathBuf>,
    pub allowlist: Option<PathBuf>,
    pub require_signature: bool,
    pub verify_on_start: bool,
    /// `None`: no periodic re-verification.
    pub interval: Option<Duration>,
    pub mode: IntegrityMode,
}

impl IntegritySettings {
    /// True when the operator asked for any integrity checking at all.
    pub fn enabled(&self) -> bool {
        self.verify_on_start || self.interval.is_some() || self.pinned()
    }

    /// True when something beyond the model's own digests is checked.
    pub fn pinned(&self) -> bool {
        self.expected_hash.is_some()
            || self.signature.is_some()
            || self.allowlist.is_some()
            || self.require_signature
            || matches!(self.location, ModelLocation::Path(_))
    }
}

#[derive(Debug, Clone)]
pub struct MockSettings {
    pub latency: Duration,
    pub token_delay: Duration,
}

/// The shared Redis server (`REDIS_URL`), when one is configured.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// May carry a password.
    pub url: SecretString,
    /// Per command; a connection whose command runs over is closed.
    pub timeout: Duration,
    pub pool_size: usize,
}

/// Server-side conversation history (`X-Conversation-ID`).
#[derive(Debug, Clone)]
pub struct ContextSettings {
    pub enabled: bool,
    pub ttl: Duration,
    pub max_messages: usize,
    pub max_chars: usize,
    pub max_conversations: usize,
}

/// Whether vLLM's `cache_salt` is sent (`PREFIX_CACHE_SALT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaltMode {
    /// Ask the upstream at start-up: salt when it reports vLLM 0.9.0 or later.
    Auto,
    On,
    Off,
}

/// What to do when the upstream's prefix cache cannot be isolated per tenant (`UNSALTED_UPSTREAM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsaltedPolicy {
    /// Serve one tenant only.
    Refuse,
    /// Serve every tenant; the operator accepted the timing side channel.
    AcceptRisk,
}

impl UnsaltedPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            UnsaltedPolicy::Refuse => "refuse",
            UnsaltedPolicy::AcceptRisk => "accept-risk",
        }
    }
}

#[derive(Debug, Clone)]
pub struct IsolationSettings {
    pub context: ContextSettings,
    pub salt_mode: SaltMode,
    /// `None`: a random secret per run (salts change on restart; only cache reuse is lost).
    pub salt_secret: Option<SecretString>,
    pub unsalted: UnsaltedPolicy,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub host: String,
    pub port: u16,
    pub log_level: String,
    pub log_format: LogFormat,
    pub database_url: String,
    pub upstream: UpstreamKind,
    pub upstream_url: String,
    pub upstream_api_key: Option<SecretString>,
    pub upstream_timeout: Duration,
    pub model_name: String,
    pub allowed_models: AllowedModels,
    /// `None` in development means "generate one at start-up and print it once".
    pub admin_api_key: Option<SecretString>,
    /// How long an API-key lookup is reused (0 = not cached): bounds how late a revocation
    /// made on another replica takes effect here.
    pub auth_cache_ttl: Duration,
    pub limits: Limits,
    pub shutdown_timeout: Duration,
    pub gate: GateSettings,
    pub integrity: IntegritySettings,
    pub extraction: ExtractionSettings,
    /// HTTPS termination; `None` serves plain HTTP (behind a TLS-terminating proxy, or locally).
    pub tls: Option<ServerTls>,
    pub upstream_tls: UpstreamTls,
    /// JWT/OIDC bearer tokens accepted besides API keys.
    pub jwt: Option<JwtSettings>,
    pub output: OutputSettings,
    pub mock: MockSettings,
    pub rate_limits: RateLimitSettings,
    pub redis: Option<RedisSettings>,
    pub isolation: IsolationSettings,
    pub observability: ObservabilitySettings,
}

impl Config {
    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// Parses the configuration from any key lookup (flags + environment in `main`, a map in tests).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        parse::parse(lookup)
    }
}
