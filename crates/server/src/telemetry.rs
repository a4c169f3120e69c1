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

    pub fn adopt_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
        if span.is_disabled() || !headers.contains_key("traceparent") {
            return;
        }
        // An invalid traceparent yields an empty context: the span then starts a new trace.
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let _ = span.set_parent(parent);
    }
}
