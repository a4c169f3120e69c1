//! The list of settings. One line per variable: its `--flag` (derived from the field name),
//! its environment name and its help text. `.env.example` documents the same list and a test
//! keeps the two in step.

/// Declares every setting once and derives the clap struct and the name list from it, so a
/// variable cannot exist as a flag but not as an environment name (or the other way round).
macro_rules! settings {
    ($( $field:ident : $env:literal => $help:literal ),* $(,)?) => {
        /// Command-line flags; each also reads the environment variable of the same meaning.
        #[derive(clap::Args, Debug, Default, Clone)]
        pub struct SettingArgs {
            $(
                #[arg(long, env = $env, help = $help, hide_env_values = true)]
                pub $field: Option<String>,
            )*
        }

        impl SettingArgs {
            /// Every setting as `(ENV_NAME, help)`.
            pub const ALL: &'static [(&'static str, &'static str)] = &[$(($env, $help)),*];

            /// The value given for an environment name, by flag or environment.
            pub fn get(&self, key: &str) -> Option<String> {
                match key {
                    $( $env => self.$field.clone(), )*
                    _ => None,
                }
            }
        }
    };
}

settings! {
    secureinfer_env: "SECUREINFER_ENV" => "development or production",
    api_host: "API_HOST" => "address to listen on",
    api_port: "API_PORT" => "port to listen on (0 picks a free port)",
    log_level: "LOG_LEVEL" => "trace, debug, info, warn or error",
    log_format: "LOG_FORMAT" => "json or pretty (default: json in production, pretty otherwise)",
    database_url: "DATABASE_URL" => "sqlite://path, a plain file path, or postgres://",
    upstream: "UPSTREAM" => "ollama, openai or mock",
    upstream_url: "UPSTREAM_URL" => "base URL of the model server",
    ollama_url: "OLLAMA_URL" => "Ollama base URL (used when UPSTREAM=ollama and UPSTREAM_URL is unset)",
    upstream_api_key: "UPSTREAM_API_KEY" => "bearer key sent to an OpenAI-compatible upstream",
    upstream_timeout: "UPSTREAM_TIMEOUT" => "time to wait for the upstream's first byte and between stream chunks",
    model_name: "MODEL_NAME" => "model served when a request names no other allowed model",
    allowed_models: "ALLOWED_MODELS" => "comma-separated models clients may request (* for any)",
    admin_api_key: "ADMIN_API_KEY" => "key for the admin endpoints (at least 32 characters)",
    auth_cache_ttl: "AUTH_CACHE_TTL" => "how long a replica trusts a looked-up API key before asking the database again (0 = every request, at most 60s)",
    max_body_bytes: "MAX_BODY_BYTES" => "largest accepted request body in bytes",
    max_messages: "MAX_MESSAGES" => "most messages in one chat request",
    max_prompt_chars: "MAX_PROMPT_CHARS" => "most characters across all messages of one request",
    max_tokens_cap: "MAX_TOKENS_CAP" => "largest max_tokens a client may ask for (also the default)",
    shutdown_timeout: "SHUTDOWN_TIMEOUT" => "how long SIGTERM waits for in-flight requests",
    risk_threshold_warn: "RISK_THRESHOLD_WARN" => "risk score (0-100) from which a request is answered with X-Security-Warning",
    risk_threshold_block: "RISK_THRESHOLD_BLOCK" => "risk score (0-100) from which a request is refused with 403",
    security_mode: "SECURITY_MODE" => "enforce (block at the block threshold) or monitor (score and log, never block)",
    score_system_prompt: "SCORE_SYSTEM_PROMPT" => "also score the operator's system/developer messages (true or false)",
    classifier_enabled: "CLASSIFIER_ENABLED" => "add the learned prompt-attack detector to the risk score (true or false)",
    classifier_model: "CLASSIFIER_MODEL" => "path of a model file from `secureinfer train` (default: the model built into the binary)",
    classifier_weight: "CLASSIFIER_WEIGHT" => "multiplier for the learned detector's risk points, 0 to 2 (0 = measure only)",
    semantic_model_dir: "SEMANTIC_MODEL_DIR" => "directory with the MiniLM encoder files (scripts/fetch-minilm.sh): adds the semantic tier (needs a build with the semantic feature)",
    event_store_prompt: "EVENT_STORE_PROMPT" => "store the raw prompt in security events (true or false; off keeps only hash and length)",
    ollama_models: "OLLAMA_MODELS" => "Ollama model store the integrity check reads (default: ~/.ollama/models)",
    model_path: "MODEL_PATH" => "model file or directory to verify instead of the Ollama store (vLLM, llama.cpp)",
    model_expected_hash: "MODEL_EXPECTED_HASH" => "pinned aggregate model hash (or Ollama manifest digest): 64 hex digits, optionally sha256:-prefixed",
    model_signature: "MODEL_SIGNATURE" => "model_signing bundle (Sigstore bundle JSON) the model must match",
    model_public_key: "MODEL_PUBLIC_KEY" => "PEM public key (P-256 or P-384) for MODEL_SIGNATURE and MODEL_ALLOWLIST",
    model_allowlist: "MODEL_ALLOWLIST" => "signed allowlist pinning Ollama model:tag names to their digests",
    model_require_signature: "MODEL_REQUIRE_SIGNATURE" => "fail verification unless a signature or allowlist entry verifies (true or false)",
    model_verify_on_start: "MODEL_VERIFY_ON_START" => "verify the model before listening (true or false; default true when a hash, signature, allowlist or MODEL_PATH is set)",
    model_verify_interval: "MODEL_VERIFY_INTERVAL" => "re-verify the model this often, e.g. 1h (off when unset or 0)",
    model_integrity_mode: "MODEL_INTEGRITY_MODE" => "enforce (refuse inference with 503 while the model fails verification) or monitor (report and record only); default enforce in production, monitor otherwise",
    extraction_detection: "EXTRACTION_DETECTION" => "score each tenant's query stream for model extraction (true or false)",
    extraction_window: "EXTRACTION_WINDOW" => "sliding window of the extraction detector, e.g. 1h",
    extraction_similarity_threshold: "EXTRACTION_SIMILARITY_THRESHOLD" => "word Jaccard similarity (0.5-0.99) at which two prompts are near-duplicates",
    extraction_max_similar: "EXTRACTION_MAX_SIMILAR" => "near-duplicates of one prompt tolerated in the window",
    extraction_max_template: "EXTRACTION_MAX_TEMPLATE" => "prompts of one masked template (numbers/names/quotes varied) tolerated in the window",
    extraction_velocity_budget: "EXTRACTION_VELOCITY_BUDGET" => "queries per tenant per window before the velocity signal fires",
    extraction_baseline_ratio: "EXTRACTION_BASELINE_RATIO" => "last-minute rate over the tenant's own baseline that earns full burst points",
    extraction_max_entries: "EXTRACTION_MAX_ENTRIES" => "queries kept per tenant window (oldest dropped beyond it)",
    extraction_prada_delta: "EXTRACTION_PRADA_DELTA" => "Shapiro-Wilk W below which query spacing counts as synthetic (PRADA)",
    extraction_hash_seed: "EXTRACTION_HASH_SEED" => "seed of the detector's MinHash functions (a u64; keep it private, equal on all replicas)",
    logit_bias_allowed: "LOGIT_BIAS_ALLOWED" => "accept logit_bias at all (true or false; per tenant via the policy endpoint)",
    logit_bias_allow_positive: "LOGIT_BIAS_ALLOW_POSITIVE" => "accept positive logit_bias values, not only bans (true or false)",
    logit_bias_max_entries: "LOGIT_BIAS_MAX_ENTRIES" => "most logit_bias entries in one request",
    logit_bias_sweep_threshold: "LOGIT_BIAS_SWEEP_THRESHOLD" => "distinct biased token ids per window that count as a logit-bias sweep",
    logprobs_max_top: "LOGPROBS_MAX_TOP" => "top_logprobs is lowered to this (0-20)",
    logprobs_round_decimals: "LOGPROBS_ROUND_DECIMALS" => "decimals kept in returned logprobs (0-6)",
    logprobs_max_n: "LOGPROBS_MAX_N" => "n (choices per request) is lowered to this",
    logprob_daily_budget: "LOGPROB_DAILY_BUDGET" => "logprob values (tokens x (1 + top_logprobs)) a tenant may receive per UTC day",
    tls_cert_file: "TLS_CERT_FILE" => "PEM certificate chain: serve HTTPS (with TLS_KEY_FILE)",
    tls_key_file: "TLS_KEY_FILE" => "PEM private key for TLS_CERT_FILE",
    tls_client_ca_file: "TLS_CLIENT_CA_FILE" => "PEM CA bundle that verifies client certificates (mTLS)",
    tls_client_auth: "TLS_CLIENT_AUTH" => "required (handshake fails without a valid client certificate) or optional; default required",
    tls_client_cert_tenant: "TLS_CLIENT_CERT_TENANT" => "a verified client certificate's common name names the tenant (true or false)",
    tls_reload_interval: "TLS_RELOAD_INTERVAL" => "how often the TLS files are re-read and, if changed, swapped in (0 disables)",
    upstream_ca_file: "UPSTREAM_CA_FILE" => "PEM CA bundle trusted for the upstream instead of the system roots",
    upstream_client_cert_file: "UPSTREAM_CLIENT_CERT_FILE" => "PEM client certificate presented to the upstream (mTLS)",
    upstream_client_key_file: "UPSTREAM_CLIENT_KEY_FILE" => "PEM private key for UPSTREAM_CLIENT_CERT_FILE",
    jwt_jwks_file: "JWT_JWKS_FILE" => "JWKS file with the identity provider's public keys: accept JWT bearer tokens",
    jwt_jwks_url: "JWT_JWKS_URL" => "JWKS URL (https) of the identity provider: accept JWT bearer tokens",
    jwt_issuer: "JWT_ISSUER" => "issuer (iss) a token must carry; required with a JWKS",
    jwt_audience: "JWT_AUDIENCE" => "audience (aud) a token must carry; required with a JWKS",
    jwt_tenant_claim: "JWT_TENANT_CLAIM" => "claim whose value is the tenant's name or id (default tenant)",
    jwt_leeway: "JWT_LEEWAY" => "clock skew tolerated on exp and nbf (default 60s, at most 10m)",
    jwt_jwks_refresh: "JWT_JWKS_REFRESH" => "how often the JWKS is re-read (default 10m)",
    output_guard_enabled: "OUTPUT_GUARD_ENABLED" => "scan model answers for leaks, secrets and PII (true or false)",
    output_canary_enabled: "OUTPUT_CANARY_ENABLED" => "plant a per-request canary in the system prompt and catch answers that repeat it (true or false)",
    output_canary_position: "OUTPUT_CANARY_POSITION" => "where the canary goes: start (a streamed recital is stopped before any of the prompt) or end (keeps the prompt prefix cacheable upstream)",
    output_prompt_overlap_words: "OUTPUT_PROMPT_OVERLAP_WORDS" => "verbatim words shared with the system prompt that count as a leak (0 turns overlap detection off)",
    output_leak_action: "OUTPUT_LEAK_ACTION" => "canary or system-prompt leak: block, redact (canary only), log or off",
    output_secret_action: "OUTPUT_SECRET_ACTION" => "credentials in answers: redact, block, log or off (unset: redact, private keys block)",
    output_pii_action: "OUTPUT_PII_ACTION" => "e-mail, phone, card, SSN, IBAN in answers: redact, block, log or off",
    output_ip_action: "OUTPUT_IP_ACTION" => "IP addresses in answers: redact, block, log or off",
    output_action_overrides: "OUTPUT_ACTION_OVERRIDES" => "per-category actions applied last, e.g. EMAIL=log,PRIVATE_KEY=redact",
    output_scan_prompts: "OUTPUT_SCAN_PROMPTS" => "also scan user messages for secrets and PII before they go upstream: off, log, redact or block (caps each category's action)",
    redis_pool_size: "REDIS_POOL_SIZE" => "most open Redis connections of the conversation context store (each serves one command at a time)",
    context_enabled: "CONTEXT_ENABLED" => "keep server-side history for requests that send X-Conversation-ID (true or false)",
    context_ttl: "CONTEXT_TTL" => "how long an idle conversation's history is kept",
    context_max_messages: "CONTEXT_MAX_MESSAGES" => "most messages kept per conversation (oldest dropped first)",
    context_max_chars: "CONTEXT_MAX_CHARS" => "most characters of history added to one request (oldest dropped first)",
    context_max_conversations: "CONTEXT_MAX_CONVERSATIONS" => "most conversations the in-process context store holds across tenants (least recently used dropped)",
    prefix_cache_salt: "PREFIX_CACHE_SALT" => "auto, on or off: send vLLM's cache_salt per tenant (auto: when the upstream reports vLLM 0.9 or later)",
    cache_salt_secret: "CACHE_SALT_SECRET" => "secret (at least 32 characters) the per-tenant cache salts are derived from; random per run when unset",
    unsalted_upstream: "UNSALTED_UPSTREAM" => "refuse or accept-risk: whether several tenants may share an upstream whose prefix cache cannot be isolated",
    mock_latency: "MOCK_LATENCY" => "mock upstream: delay before the first token",
    mock_token_delay: "MOCK_TOKEN_DELAY" => "mock upstream: delay between streamed tokens",
    rate_limit_rpm: "RATE_LIMIT_RPM" => "requests per minute from one client IP, checked before authentication (0 turns the limit off)",
    rate_limit_burst: "RATE_LIMIT_BURST" => "requests one client IP may send at once before the per-minute rate applies",
    trusted_proxies: "TRUSTED_PROXIES" => "comma-separated addresses or CIDR blocks of your proxies; only their Forwarded/X-Forwarded-For headers are believed",
    tenant_rate_limit_rpm: "TENANT_RATE_LIMIT_RPM" => "requests per minute per tenant (0 turns the limit off)",
    tenant_rate_limit_burst: "TENANT_RATE_LIMIT_BURST" => "requests one tenant may send at once",
    tenant_token_limit_tpm: "TENANT_TOKEN_LIMIT_TPM" => "tokens per minute per tenant: prompt + max_tokens reserved up front, settled to actual usage (0 turns the budget off)",
    tenant_max_concurrent: "TENANT_MAX_CONCURRENT" => "chat requests one tenant may have in flight at once (0: no cap)",
    rate_limit_tiers: "RATE_LIMIT_TIERS" => "named per-tenant limit sets, e.g. free:rpm=20,tpm=20000;pro:rpm=600,concurrent=64",
    redis_url: "REDIS_URL" => "redis://host:port to share limits and conversation context between replicas (unset: in-process)",
    redis_timeout: "REDIS_TIMEOUT" => "longest wait for one Redis call before the failure policy applies",
    rate_limit_redis_failure: "RATE_LIMIT_REDIS_FAILURE" => "when Redis is unreachable: closed (503), open (no limits) or local (per-replica limits)",
    metrics_enabled: "METRICS_ENABLED" => "serve Prometheus metrics at /metrics (true or false)",
    metrics_token: "METRICS_TOKEN" => "bearer token a scraper must send to read /metrics (unset: no token)",
    metrics_port: "METRICS_PORT" => "serve /metrics on this port (on API_HOST) instead of the API port",
    metrics_tenant_labels: "METRICS_TENANT_LABELS" => "most distinct tenants labelled in per-tenant metrics; the rest count as other (0 turns the label off)",
    log_prompts: "LOG_PROMPTS" => "write raw prompt text into the request log line (true or false; off logs only hash and length)",
    audit_retention: "AUDIT_RETENTION" => "how long audit records are kept, e.g. 90d (0 keeps them forever)",
    otel_exporter_otlp_endpoint: "OTEL_EXPORTER_OTLP_ENDPOINT" => "OTLP/HTTP collector URL for traces (needs a build with the otel feature)",
}
