//! Settings for metrics, request logs, the audit trail and tracing.

use std::time::Duration;

use secrecy::SecretString;

use super::parse::{ConfigError, duration, flag, get, invalid, number, url};

#[derive(Debug, Clone)]
pub struct ObservabilitySettings {
    pub metrics_enabled: bool,
    /// When set, `/metrics` answers only requests bearing this token.
    pub metrics_token: Option<SecretString>,
    /// When set, `/metrics` is served on this port (on API_HOST) and not on the API port.
    pub metrics_port: Option<u16>,
    /// Most distinct tenant label values in per-tenant metrics.
    pub metrics_tenant_labels: usize,
    /// Raw prompt text in the request log line (off: only its SHA-256 and length).
    pub log_prompts: bool,
    /// `None` keeps audit records forever.
    pub audit_retention: Option<Duration>,
    /// OTLP/HTTP endpoint for traces (only honoured by builds with the `otel` feature).
    pub otel_endpoint: Option<String>,
}

pub(super) fn parse(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ObservabilitySettings, ConfigError> {
    let metrics_token = match get(lookup, "METRICS_TOKEN") {
        Some(t) if t.len() >= 16 => Some(SecretString::from(t)),
        // The value is a secret: never echo it.
        Some(_) => {
            return Err(invalid(
                "METRICS_TOKEN",
                "<hidden>",
                "at least 16 characters",
            ));
        }
        None => None,
    };
    let metrics_port = match get(lookup, "METRICS_PORT") {
        Some(_) => Some(number(lookup, "METRICS_PORT", 0u16, 1, u16::MAX)?),
        None => None,
    };
    let retention = duration(lookup, "AUDIT_RETENTION", Duration::from_secs(90 * 86_400))?;
    let otel_endpoint = match get(lookup, "OTEL_EXPORTER_OTLP_ENDPOINT") {
        Some(raw) => {
            if !cfg!(feature = "otel") {
                return Err(invalid(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    &raw,
                    "unset: this build has no OpenTelemetry exporter (build with --features otel)",
                ));
            }
            Some(url("OTEL_EXPORTER_OTLP_ENDPOINT", &raw)?)
        }
        None => None,
    };
    Ok(ObservabilitySettings {
        metrics_enabled: flag(lookup, "METRICS_ENABLED", true)?,
        metrics_token,
        metrics_port,
        metrics_tenant_labels: number(lookup, "METRICS_TENANT_LABELS", 100usize, 0, 10_000)?,
        log_prompts: flag(lookup, "LOG_PROMPTS", false)?,
        audit_retention: (!retention.is_zero()).then_some(retention),
        otel_endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<ObservabilitySettings, ConfigError> {
        let map: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_values() {
        let d = with(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(d.metrics_enabled && d.metrics_token.is_none() && d.metrics_port.is_none());
        assert_eq!(d.metrics_tenant_labels, 100);
        assert_eq!(d.audit_retention, Some(Duration::from_secs(90 * 86_400)));
        assert!(!d.log_prompts);
        let forever = with(&[("AUDIT_RETENTION", "0")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(forever.audit_retention, None);
    }

    #[test]
    fn bad_values_name_the_variable_and_hide_secrets() {
        let e = with(&[("METRICS_TOKEN", "short")]).err();
        assert_eq!(e.as_ref().map(|e| e.var), Some("METRICS_TOKEN"));
        assert!(
            !e.map(|e| e.to_string())
                .unwrap_or_default()
                .contains("short")
        );
        let e = with(&[("METRICS_PORT", "0")]).err().map(|e| e.var);
        assert_eq!(e, Some("METRICS_PORT"));
        let e = with(&[("AUDIT_RETENTION", "soon")]).err().map(|e| e.var);
        assert_eq!(e, Some("AUDIT_RETENTION"));
        let e = with(&[("METRICS_ENABLED", "yes")]).err().map(|e| e.var);
        assert_eq!(e, Some("METRICS_ENABLED"));
        if !cfg!(feature = "otel") {
            let e = with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]).err();
            assert_eq!(e.map(|e| e.var), Some("OTEL_EXPORTER_OTLP_ENDPOINT"));
        }
    }
}
