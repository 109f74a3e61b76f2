//! Traces over OpenTelemetry (OTLP/HTTP), off unless `--otlp-endpoint` (or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`) names a collector. Spans: the HTTP request (method and
//! route), each GraphQL operation (its name, never its variables) and each database read (its
//! kind and where it ran, never its parameters); a W3C `traceparent` header continues the
//! caller's trace.
//!
//! Off, nothing is built and the operation and database spans (DEBUG level, wanted by no
//! other layer) are never created: their call sites are disabled, which costs a branch.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// Whether traces are being sent (the request span then reads `traceparent`).
static ON: AtomicBool = AtomicBool::new(false);

/// The wire format to the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OtlpProtocol {
    /// `http/protobuf`, the OTLP default.
    #[value(name = "http/protobuf")]
    HttpProtobuf,
    /// `http/json`.
    #[value(name = "http/json")]
    HttpJson,
}

/// What to send traces to.
#[derive(Clone, Debug)]
pub struct TraceSettings {
    /// The collector's base URL (`/v1/traces` is added).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// `service.name` of every span.
    pub service_name: String,
}

/// The running trace pipeline; [`Telemetry::shutdown`] sends what is still buffered.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Flushes and stops the exporter (at exit).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "flushing traces at exit");
        }
    }
}

/// The tracing layer that turns spans into OTLP spans, and the pipeline behind it.
pub fn layer<S>(
    settings: &TraceSettings,
) -> Result<(Box<dyn Layer<S> + Send + Sync>, Telemetry), String>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    let endpoint = format!("{}/v1/traces", settings.endpoint.trim_end_matches('/'));
    let protocol = match settings.protocol {
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        OtlpProtocol::HttpJson => Protocol::HttpJson,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .with_protocol(protocol)
        .build()
        .map_err(|e| format!("the OTLP exporter: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(settings.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("mj-tasks");
    ON.store(true, Ordering::Relaxed);
    // The request, operation and database spans of this service; nothing from the drivers.
    let wanted = Targets::new()
        .with_target("mj_tasks", tracing::Level::DEBUG)
        .with_target("tower_http", tracing::Level::INFO);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(wanted)
        .boxed();
    Ok((layer, Telemetry { provider }))
}

/// Continues the caller's trace on `span` when the request carries a W3C `traceparent`.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if !ON.load(Ordering::Relaxed) || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
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
