//! Log set-up: JSON lines in production, human-readable in development, to stderr. Builds
//! with the `otel` feature also export the gateway's spans (`spans.rs`) over OTLP/HTTP when
//! OTEL_EXPORTER_OTLP_ENDPOINT is set.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::config::{Config, LogFormat};

/// Targets of the spans in `spans.rs`; nothing else logs under them.
const SPAN_TARGETS: [&str; 3] = [
    "secureinfer::http",
    "secureinfer::gate",
    "secureinfer::upstream",
];

pub fn init(config: &Config) {
    // Our crate at LOG_LEVEL; dependencies one notch quieter unless RUST_LOG says otherwise.
    let mut default = format!(
        "warn,secureinfer={lvl},tower_http={lvl}",
        lvl = config.log_level
    );
    // The spans exist for the OTLP exporter. Without one they are switched off at their
    // call sites, so they cost nothing per request.
    if !exporting(config) {
        for target in SPAN_TARGETS {
            default.push_str(&format!(",{target}=off"));
        }
    }
    // One global filter (not a per-layer one): under load a per-layer filter combination lost
    // the start-up ERROR line of a failed model check in CI.
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Log lines carry the event only, never the fields of enclosing spans.
    let fmt_layer = fmt::layer().with_writer(std::io::stderr);
    let fmt_layer = match config.log_format {
        LogFormat::Json => fmt_layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => fmt_layer.compact().boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(fmt_layer);

    #[cfg(feature = "otel")]
    let registry = registry.with(
        config
            .observability
            .otel_endpoint
            .as_deref()
            .and_then(otel::layer),
    );

    let _ = registry.try_init();
}

fn exporting(config: &Config) -> bool {
    cfg!(feature = "otel") && config.observability.otel_endpoint.is_some()
}

/// Sends the spans still queued to the collector. Called once the server has drained on
/// shutdown; a no-op without an exporter. Blocks for at most the exporter's timeout.
pub async fn flush() {
    #[cfg(feature = "otel")]
    {
        let _ = tokio::task::spawn_blocking(otel::shutdown).await;
    }
}

/// A client's W3C trace context (`traceparent` and optional `tracestate`), kept only when
/// well-formed: the values are forwarded to the model server, so nothing else may pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: String,
    tracestate: Option<String>,
}

/// Longest `tracestate` passed on (the W3C limit is 32 entries of at most 256 bytes; real
/// ones are short, and this header is client-controlled).
const MAX_TRACESTATE: usize = 512;

impl TraceContext {
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Option<TraceContext> {
        let traceparent = headers.get("traceparent")?.to_str().ok()?.trim();
        if !valid_traceparent(traceparent) {
            return None;
        }
        let tracestate = headers
            .get("tracestate")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= MAX_TRACESTATE)
            .filter(|v| v.bytes().all(|b| (0x20..0x7f).contains(&b)))
            .map(str::to_string);
        Some(TraceContext {
            traceparent: traceparent.to_string(),
            tracestate,
        })
    }

    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    pub fn apply(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let rb = rb.header("traceparent", &self.traceparent);
        match &self.tracestate {
            Some(state) => rb.header("tracestate", state),
            None => rb,
        }
    }
}

/// `version-traceid-parentid-flags`, lowercase hex, ids not all zero, version not `ff`
/// (W3C Trace Context level 1; a later version's extra fields are not passed on).
fn valid_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [ver, trace, parent, flags]
        if hex(ver, 2) && *ver != "ff" && hex(trace, 32) && nonzero(trace)
            && hex(parent, 16) && nonzero(parent) && hex(flags, 2))
}

/// The trace id a request's log line carries: its exported span's when this build exports
/// traces, otherwise the one the client sent (well-formed only), otherwise none.
pub fn trace_id(span: &tracing::Span, headers: &axum::http::HeaderMap) -> Option<String> {
    #[cfg(feature = "otel")]
    if let Some(id) = otel::trace_id(span) {
        return Some(id);
    }
    let _ = span;
    let ctx = TraceContext::from_headers(headers)?;
    ctx.traceparent.get(3..35).map(str::to_string)
}

/// The trace context to send with a model call: the gateway's current span when this build
/// exports traces (the model server's spans then hang under the gateway's), otherwise the
/// client's context unchanged.
pub fn outgoing(incoming: Option<&TraceContext>) -> Option<TraceContext> {
    #[cfg(feature = "otel")]
    if let Some(own) = otel::current() {
        return Some(own);
    }
    incoming.cloned()
}

/// Makes `span` a child of the W3C `traceparent` the client sent, so the gateway's spans
/// join the caller's trace.
#[cfg(feature = "otel")]
pub fn adopt_remote_parent(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    otel::adopt_remote_parent(span, headers);
}

#[cfg(feature = "otel")]
mod otel {
    use std::sync::OnceLock;

    use axum::http::HeaderMap;
    use opentelemetry::propagation::{Extractor, TextMapPropagator};
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry::{InstrumentationScope, KeyValue};
    use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::registry::LookupSpan;

    /// Kept so shutdown can flush the batch processor's queue.
    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The exporting layer, or `None` (with the reason on stderr) when the exporter cannot
    /// be built: tracing is an aid, the gateway serves without it.
    pub fn layer<S>(endpoint: &str) -> Option<impl Layer<S> + use<S>>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        // OTLP/HTTP with the JSON encoding; the batch processor (OTEL_BSP_* settings) runs on
        // its own thread with a blocking client, away from the request workers.
        let exporter = match SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(format!("{endpoint}/v1/traces"))
            .build()
        {
            Ok(e) => e,
            Err(e) => {
                eprintln!("secureinfer: OTEL_EXPORTER_OTLP_ENDPOINT: cannot export traces: {e}");
                return None;
            }
        };
        let resource = Resource::builder()
            .with_service_name("secureinfer")
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let scope = InstrumentationScope::builder("secureinfer")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let tracer = provider.tracer_with_scope(scope);
        let _ = PROVIDER.set(provider);
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            // Only what spans.rs declares: no source locations, thread ids, idle timings.
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_level(false)
            // Our spans only, never log events: those can name things spans must not carry
            // (LOG_PROMPTS puts prompt text in the request line).
            .with_filter(filter_fn(|meta| {
                meta.is_span() && meta.target().starts_with("secureinfer")
            }));
        Some(layer)
    }

    pub fn shutdown() {
        if let Some(provider) = PROVIDER.get()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("secureinfer: flushing traces on shutdown failed: {e}");
        }
    }

    struct Headers<'a>(&'a HeaderMap);

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }

    /// The current span's context as a trace context to send on, when an exporter is
    /// installed and the span is being recorded.
    pub fn current() -> Option<super::TraceContext> {
        PROVIDER.get()?;
        let cx = tracing::Span::current().context();
        let span = opentelemetry::trace::TraceContextExt::span(&cx);
        let sc = span.span_context();
        if !sc.is_valid() {
            return None;
        }
        let state = sc.trace_state().header();
        Some(super::TraceContext {
            traceparent: format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            ),
            tracestate: (!state.is_empty()).then_some(state),
        })
    }

    /// The trace id of `span` once exported (after `adopt_remote_parent`, the client's).
    pub fn trace_id(span: &tracing::Span) -> Option<String> {
        PROVIDER.get()?;
        let cx = span.context();
        let span = opentelemetry::trace::TraceContextExt::span(&cx);
        let sc = span.span_context();
        sc.is_valid().then(|| sc.trace_id().to_string())
    }

    pub fn adopt_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
        if span.is_disabled() || !headers.contains_key("traceparent") {
            return;
        }
        // An invalid traceparent yields an empty context: the span then starts a new trace.
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let _ = span.set_parent(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_validation() {
        assert!(valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap_or(axum::http::HeaderValue::from_static("x")),
        );
        assert!(TraceContext::from_headers(&h).is_some());
    }
}
