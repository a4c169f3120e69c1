//! Prometheus metrics: one registry per gateway, recorded through the small methods below.
//!
//! Any part of the gateway that holds the [`AppState`](crate::app::AppState) (or a clone of
//! its `Arc<Metrics>`) records with one call, e.g. `state.metrics.rate_limited("rpm")` or
//! `state.metrics.backend_error("redis", "incr")`. A registry per gateway (rather than a
//! process global) lets tests run several gateways in one process and assert exact counts.
//!
//! Names follow the Prometheus conventions: a `secureinfer_` prefix, base units in the name
//! (`_seconds`), `_total` on counters (added by the encoder). Every label takes values from a
//! bounded set: route templates (never raw paths), fixed enums, and tenant/reason labels capped
//! at a configured number of distinct values, after which new values are counted as `other`.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The exposition content type of the text this module renders (OpenMetrics 1.0, which
/// Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label value used once a capped label has reached its number of distinct values.
pub const OTHER: &str = "other";

/// The model-integrity states the gauge reports (exactly one is 1 at a time), as
/// `/v1/security/verify` names them.
pub const INTEGRITY_STATES: &[&str] = &["valid", "invalid", "unchecked", "disabled"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    stage: String,
    decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    stage: String,
    decision: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
    mode: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamKindLabels {
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    tenant: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    upstream: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// A set of label values that stops growing at `cap`; later values map to [`OTHER`].
struct BoundedLabel {
    cap: usize,
    seen: Mutex<HashSet<String>>,
}

impl BoundedLabel {
    fn new(cap: usize) -> Self {
        BoundedLabel {
            cap,
            seen: Mutex::new(HashSet::new()),
        }
    }

    fn get(&self, value: &str) -> String {
        if self.cap == 0 {
            return OTHER.to_string();
        }
        // A poisoned lock only means another thread panicked mid-insert; the set is still usable.
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(value) {
            return value.to_string();
        }
        if seen.len() < self.cap {
            seen.insert(value.to_string());
            return value.to_string();
        }
        OTHER.to_string()
    }
}

/// Request latency buckets: 1 ms to about 65 s, doubling.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Gateway overhead is small: 50 µs to about 1.6 s, doubling.
fn overhead_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
    in_flight: Gauge,
    decisions: Family<DecisionLabels, Counter>,
    decision_reasons: Family<ReasonLabels, Counter>,
    risk_score: Histogram,
    overhead: Histogram,
    upstream_duration: Histograms<UpstreamLabels>,
    ttft: Histograms<UpstreamKindLabels>,
    tokens: Family<TokenLabels, Counter>,
    rate_limited: Family<LimitLabels, Counter>,
    backend_errors: Family<BackendLabels, Counter>,
    integrity: Family<StatusLabels, Gauge>,
    integrity_checks: Family<StatusLabels, Counter>,
    audit_records: Family<StatusLabels, Counter>,
    tenants: BoundedLabel,
    reasons: BoundedLabel,
    /// Rejections by limit, readable (the dashboard shows them).
    limits_seen: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// How many distinct security reasons get their own label value.
const MAX_REASON_LABELS: usize = 256;

impl Metrics {
    /// `tenant_labels` caps the distinct tenant label values (0: no per-tenant breakdown).
    pub fn new(version: &str, upstream: &str, tenant_labels: usize) -> Metrics {
        let mut registry = Registry::with_prefix("secureinfer");
        let m = Metrics {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_buckets),
            in_flight: Gauge::default(),
            decisions: Family::default(),
            decision_reasons: Family::default(),
            risk_score: Histogram::new((1..=10).map(|i| f64::from(i) * 10.0)),
            overhead: overhead_buckets(),
            upstream_duration: Family::new_with_constructor(latency_buckets),
            ttft: Family::new_with_constructor(latency_buckets),
            tokens: Family::default(),
            rate_limited: Family::default(),
            backend_errors: Family::default(),
            integrity: Family::default(),
            integrity_checks: Family::default(),
            audit_records: Family::default(),
            tenants: BoundedLabel::new(tenant_labels),
            reasons: BoundedLabel::new(MAX_REASON_LABELS),
            limits_seen: Mutex::new(std::collections::BTreeMap::new()),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status code",
            m.http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from receiving a request to the end of its response body",
            Unit::Seconds,
            m.http_duration.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being handled now (streams count until they end)",
            m.in_flight.clone(),
        );
        registry.register(
            "security_decisions",
            "Security verdicts by stage (prompt, extraction, output, isolation, ...) and decision",
            m.decisions.clone(),
        );
        registry.register(
            "security_decision_reasons",
            "Reasons named by WARN/BLOCK verdicts, by stage, decision and reason",
            m.decision_reasons.clone(),
        );
        registry.register(
            "risk_score",
            "Prompt risk scores (0-100) of scored requests",
            m.risk_score.clone(),
        );
        registry.register_with_unit(
            "gateway_overhead",
            "Time a proxied request spent in the gateway outside the upstream call",
            Unit::Seconds,
            m.overhead.clone(),
        );
        registry.register_with_unit(
            "upstream_request_duration",
            "Upstream call time: whole answer (mode=full) or whole stream (mode=stream)",
            Unit::Seconds,
            m.upstream_duration.clone(),
        );
        registry.register_with_unit(
            "upstream_time_to_first_token",
            "Time from sending a streamed request upstream to its first content chunk",
            Unit::Seconds,
            m.ttft.clone(),
        );
        registry.register(
            "tokens",
            "Tokens reported by the upstream, by tenant (capped label) and kind (prompt or completion)",
            m.tokens.clone(),
        );
        registry.register(
            "rate_limit_rejections",
            "Requests refused with 429, by the limit that refused them",
            m.rate_limited.clone(),
        );
        registry.register(
            "backend_errors",
            "Errors talking to the database or Redis, by backend and operation",
            m.backend_errors.clone(),
        );
        registry.register(
            "model_integrity_status",
            "Model integrity state: 1 for the current state, 0 for the others",
            m.integrity.clone(),
        );
        registry.register(
            "model_integrity_checks",
            "Model integrity checks run, by result (passed or failed)",
            m.integrity_checks.clone(),
        );
        registry.register(
            "audit_records",
            "Audit records by fate: written, or failed (database error)",
            m.audit_records.clone(),
        );
        registry.register(
            "build",
            "Build information",
            Info::new(BuildLabels {
                version: version.to_string(),
                upstream: upstream.to_string(),
            }),
        );
        for state in INTEGRITY_STATES {
            let _ = m.integrity.get_or_create(&StatusLabels {
                status: (*state).to_string(),
            });
        }
        m.model_integrity("disabled");
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    // ---- recorded by the access-log middleware ----

    /// One answered request. `route` must be a route template (bounded), not a raw path.
    pub fn http_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let method = match method {
            "GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD" | "OPTIONS" => method,
            _ => OTHER,
        };
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_string(),
                method: method.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn request_started(&self) {
        self.in_flight.inc();
    }

    pub fn request_finished(&self) {
        self.in_flight.dec();
    }

    // ---- security controls ----

    /// One verdict of a security stage (`prompt`, `extraction`, `output`, `isolation`, ...).
    /// `decision` is `allow`, `warn` or `block`; each reason is counted once.
    pub fn security_decision<R: AsRef<str>>(&self, stage: &str, decision: &str, reasons: &[R]) {
        self.decisions
            .get_or_create(&DecisionLabels {
                stage: stage.to_string(),
                decision: decision.to_string(),
            })
            .inc();
        for reason in reasons {
            self.decision_reasons
                .get_or_create(&ReasonLabels {
                    stage: stage.to_string(),
                    decision: decision.to_string(),
                    reason: self.reasons.get(reason.as_ref()),
                })
                .inc();
        }
    }

    pub fn risk_score(&self, score: u8) {
        self.risk_score.observe(f64::from(score));
    }

    /// A request refused with 429. Counted once per response by the access log, which takes
    /// the limit's name from a `RateLimitHit` response extension or else the error code; code
    /// that refuses requests only needs to set one of those.
    pub(crate) fn rate_limited(&self, limit: &str) {
        self.rate_limited
            .get_or_create(&LimitLabels {
                limit: limit.to_string(),
            })
            .inc();
        let mut seen = self.limits_seen.lock().unwrap_or_else(|e| e.into_inner());
        *seen.entry(limit.to_string()).or_default() += 1;
    }

    /// Rejections per limit since start.
    pub fn rate_limit_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.limits_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A failed call to a backend (`database`, `redis`); `operation` names what was attempted.
    pub fn backend_error(&self, backend: &str, operation: &str) {
        self.backend_errors
            .get_or_create(&BackendLabels {
                backend: backend.to_string(),
                operation: operation.to_string(),
            })
            .inc();
    }

    /// Sets the model-integrity state (one of [`INTEGRITY_STATES`]; anything else reads as `invalid`).
    pub fn model_integrity(&self, state: &str) {
        let current = if INTEGRITY_STATES.contains(&state) {
            state
        } else {
            "invalid"
        };
        for s in INTEGRITY_STATES {
            self.integrity
                .get_or_create(&StatusLabels {
                    status: (*s).to_string(),
                })
                .set(i64::from(*s == current));
        }
    }

    /// Brings the check counters up to the monitor's totals (it counts; this exposes).
    pub fn model_integrity_checks(&self, total: u64, failed: u64) {
        for (result, value) in [("passed", total.saturating_sub(failed)), ("failed", failed)] {
            let counter = self.integrity_checks.get_or_create(&StatusLabels {
                status: result.to_string(),
            });
            counter.inc_by(value.saturating_sub(counter.get()));
        }
    }

    // ---- upstream and tokens ----

    /// One upstream call: `mode` is `full` or `stream`, `outcome` e.g. `ok`, `error`, `client_gone`.
    pub fn upstream_call(&self, upstream: &str, mode: &str, outcome: &str, elapsed: Duration) {
        self.upstream_duration
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_string(),
                mode: mode.to_string(),
                outcome: outcome.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn time_to_first_token(&self, upstream: &str, elapsed: Duration) {
        self.ttft
            .get_or_create(&UpstreamKindLabels {
                upstream: upstream.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn gateway_overhead(&self, elapsed: Duration) {
        self.overhead.observe(elapsed.as_secs_f64());
    }

    pub fn tokens(&self, tenant_id: &str, prompt: u64, completion: u64) {
        let tenant = self.tenants.get(tenant_id);
        for (kind, n) in [("prompt", prompt), ("completion", completion)] {
            self.tokens
                .get_or_create(&TokenLabels {
                    tenant: tenant.clone(),
                    kind: kind.to_string(),
                })
                .inc_by(n);
        }
    }

    pub fn audit_records(&self, status: &str, n: u64) {
        self.audit_records
            .get_or_create(&StatusLabels {
                status: status.to_string(),
            })
            .inc_by(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_label_is_capped() {
        let m = Metrics::new("0", "mock", 2);
        m.tokens("a", 1, 1);
        m.tokens("b", 1, 1);
        m.tokens("c", 5, 0);
        m.tokens("a", 1, 0);
        let text = m.render();
        assert!(text.contains(r#"secureinfer_tokens_total{tenant="a",kind="prompt"} 2"#));
        assert!(text.contains(r#"secureinfer_tokens_total{tenant="other",kind="prompt"} 5"#));
        assert!(!text.contains(r#"tenant="c""#));
    }

    #[test]
    fn integrity_has_exactly_one_state_set() {
        let m = Metrics::new("0", "mock", 0);
        m.model_integrity("valid");
        m.model_integrity_checks(3, 1);
        m.model_integrity_checks(4, 1);
        let text = m.render();
        assert!(text.contains(r#"secureinfer_model_integrity_status{status="valid"} 1"#));
        assert!(text.contains(r#"secureinfer_model_integrity_status{status="unchecked"} 0"#));
        assert!(text.contains(r#"secureinfer_model_integrity_checks_total{status="passed"} 3"#));
        assert!(text.contains(r#"secureinfer_model_integrity_checks_total{status="failed"} 1"#));
        assert!(text.contains(r#"secureinfer_build_info{version="0",upstream="mock"} 1"#));
    }
}
