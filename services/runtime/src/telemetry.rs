//! Logs and traces. Logging: `RUST_LOG` filters (default `info`); `GOVPULSE_LOG_FORMAT=json`
//! gives one JSON object per line for the cluster, anything else a compact human format.
//! Traces: OpenTelemetry spans exported over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; otherwise no exporter exists and a span
//! costs what a `tracing` span costs. The W3C trace context (`traceparent`) travels in gRPC
//! metadata: clients add it with [`traced`], servers read it in [`request_span`].

use std::{collections::HashMap, io::IsTerminal, sync::OnceLock};

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{SpanContext, TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tonic::{
    codegen::http,
    metadata::{MetadataKey, MetadataMap, MetadataValue},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// What [`init`] installed; [`Telemetry::shutdown`] flushes the spans not exported yet.
#[derive(Debug)]
#[must_use = "call shutdown() on exit, or spans still buffered are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported (an OTLP endpoint was configured).
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered and stops the exporter; call it after the server has
    /// drained. Waits at most the exporter's timeout when the collector is unreachable.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The SDK's shutdown blocks until its export thread is done; keep it off the runtime.
        let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "trace exporter shutdown failed"),
            Err(e) => tracing::warn!(error = %e, "trace exporter shutdown panicked"),
        }
    }
}

/// Installs logging (and tracing export when configured) once; later calls (tests, the
/// all-in-one CLI running three services in one process) install nothing and return a
/// [`Telemetry`] whose shutdown does nothing.
pub fn init(service: &'static str) -> Telemetry {
    init_with_default(service, "info")
}

/// As [`init`], with another filter than `info` when `RUST_LOG` is unset.
pub fn init_with_default(service: &'static str, default_filter: &str) -> Telemetry {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.set(()).is_err() {
        return Telemetry { provider: None };
    }
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("GOVPULSE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let (provider, export_error) = match tracer_provider(service) {
        Ok(provider) => (provider, None),
        Err(e) => (None, Some(e)),
    };
    let exporting = provider.is_some();
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("govpulse")));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_span_list(exporting)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(
                fmt::layer()
                    .compact()
                    // Colours for a person at a terminal; a file or a pipe gets plain text.
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    if installed.is_err() {
        // Someone else installed a subscriber: spans would never reach this exporter.
        if let Some(provider) = provider {
            let _ = provider.shutdown();
        }
        return Telemetry { provider: None };
    }
    if let Some(error) = export_error {
        tracing::warn!(%error, "traces are not exported: cannot build the OTLP exporter");
    }
    tracing::debug!(
        service,
        exporting = provider.is_some(),
        "telemetry initialised"
    );
    Telemetry { provider }
}

/// An OTLP/gRPC exporter when an endpoint is configured, batching spans (the standard
/// `OTEL_BSP_*` variables tune the batches). The service name is `OTEL_SERVICE_NAME`, else
/// `service`.
fn tracer_provider(service: &'static str) -> Result<Option<SdkTracerProvider>, String> {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|v| !v.is_empty()));
    if !configured {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| e.to_string())?;
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| service.to_owned());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(name).build())
        .build();
    Ok(Some(provider))
}

/// The span of one gRPC call on a server, a child of the caller's span when the request
/// carries a `traceparent`. Installed on every server with tonic's `trace_fn`, so a
/// handler's own spans and the calls it makes belong to the caller's trace.
pub fn request_span(request: &http::Request<()>) -> tracing::Span {
    let method = request.uri().path().trim_start_matches('/');
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = method,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.method = method,
        trace_id = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    // Fails only when no OpenTelemetry layer is installed: nothing to link then.
    if span.set_parent(parent).is_ok() {
        // In the JSON logs of the call (the `spans` list), so a log line leads to its trace.
        let context = span.context();
        let span_context = context.span().span_context().clone();
        if span_context.is_valid() {
            span.record("trace_id", tracing::field::display(span_context.trace_id()));
        }
    }
    span
}

/// A request carrying the current span's trace context, for calls between services.
pub fn traced<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    inject(request.metadata_mut());
    request
}

/// Adds the current span's trace context (`traceparent`, `tracestate`) to `metadata`; adds
/// nothing when no span is being exported.
pub fn inject(metadata: &mut MetadataMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut MetadataInjector(metadata));
}

/// The current span's W3C `traceparent`, or an empty string when no span is being exported:
/// for messages that outlive a call (change notices on a long-lived stream), where request
/// metadata cannot carry it.
pub fn current_traceparent() -> String {
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent").unwrap_or_default()
}

/// The span context a `traceparent` names, if it is a valid one.
pub fn span_context(traceparent: &str) -> Option<SpanContext> {
    if traceparent.is_empty() {
        return None;
    }
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context: Context = TraceContextPropagator::new().extract(&carrier);
    let span = context.span().span_context().clone();
    span.is_valid().then_some(span)
}

/// Makes `span` a child of the span `parent` names and links it to each of `links`.
pub fn adopt(span: &tracing::Span, parent: Option<&SpanContext>, links: &[SpanContext]) {
    if let Some(parent) = parent {
        let _ = span.set_parent(Context::new().with_remote_span_context(parent.clone()));
    }
    for link in links {
        span.add_link(link.clone());
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_names_its_span_and_anything_else_names_none() {
        let span = span_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("a valid traceparent");
        assert_eq!(
            span.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(span.span_id().to_string(), "00f067aa0ba902b7");
        assert!(span.is_remote() && span.is_sampled());
        for bad in [
            "",
            "garbage",
            // An all-zero trace id is invalid.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            assert_eq!(span_context(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn without_an_exported_span_nothing_is_injected() {
        let request = traced(());
        assert!(request.metadata().get("traceparent").is_none());
        assert_eq!(current_traceparent(), "");
    }
}
