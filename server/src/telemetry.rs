//! Logging, set up once per process: human-readable lines by default, JSON on request.
//! Every call's events carry its `rpc` span: method, organisation and request id.
//!
//! With the `otlp` feature and `[traces] otlp_endpoint`, the spans also go to an
//! OpenTelemetry collector over OTLP/gRPC, a call's span continuing the trace its W3C
//! `traceparent` names ([`continue_trace`]).

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogFormat, TraceSettings};

/// Installs the global subscriber, writing to standard error. `RUST_LOG`, when set, replaces
/// `filter`. Text is coloured only on a terminal, and never with `NO_COLOR` set: a log file
/// or a journal gets plain lines. A second call does nothing (tests and the demo start
/// several hubs).
pub fn init(format: LogFormat, filter: &str) {
    let _ = init_with(format, filter, &TraceSettings::default());
}

/// [`init`], exporting spans as `traces` says; an endpoint this build cannot export to (no
/// `otlp` feature) or cannot use is an error, named by its key.
pub fn init_with(format: LogFormat, filter: &str, traces: &TraceSettings) -> Result<(), String> {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    #[cfg(feature = "otlp")]
    let registry = registry.with(otlp::layer(traces)?);
    #[cfg(not(feature = "otlp"))]
    if let Some(endpoint) = &traces.otlp_endpoint {
        return Err(format!(
            "traces.otlp_endpoint is {endpoint:?}, but this telesub was built without OTLP export: \
             build it with `--features otlp`, or leave the key out"
        ));
    }
    let _ = match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            registry.with(fmt::layer().with_ansi(colour).with_writer(std::io::stderr)).try_init()
        }
        LogFormat::Json => registry
            .with(fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(std::io::stderr))
            .try_init(),
    };
    Ok(())
}

/// Makes `span` continue the trace a W3C `traceparent` header names, where spans are exported.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    #[cfg(feature = "otlp")]
    otlp::continue_trace(span, headers);
    #[cfg(not(feature = "otlp"))]
    let _ = (span, headers);
}

/// Sends the spans not yet sent, before the process ends.
pub fn flush() {
    #[cfg(feature = "otlp")]
    otlp::flush();
}

#[cfg(feature = "otlp")]
mod otlp {
    use std::sync::OnceLock;

    use opentelemetry::{propagation::TextMapPropagator, trace::TracerProvider};
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::registry::LookupSpan;

    use crate::config::TraceSettings;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The layer that exports spans, when an endpoint is set.
    pub(super) fn layer<S>(
        traces: &TraceSettings,
    ) -> Result<Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>>, String>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        let Some(endpoint) = &traces.otlp_endpoint else { return Ok(None) };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| format!("traces.otlp_endpoint {endpoint:?}: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(traces.service_name.clone()).build())
            .build();
        let tracer = provider.tracer("telesub");
        // One subscriber per process: a second hub in it (tests, the demo) exports through
        // the first's provider.
        let _ = PROVIDER.set(provider);
        Ok(Some(tracing_opentelemetry::layer().with_tracer(tracer)))
    }

    /// The headers, as the propagator reads them.
    struct Headers<'a>(&'a http::HeaderMap);

    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }

    pub(super) fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
        if PROVIDER.get().is_none() || !headers.contains_key("traceparent") {
            return;
        }
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        // Refused only where the span is not recorded (filtered out): nothing to continue.
        let _ = span.set_parent(parent);
    }

    pub(super) fn flush() {
        if let Some(provider) = PROVIDER.get()
            && let Err(e) = provider.force_flush()
        {
            tracing::warn!(error = %e, "spans could not all be sent to the OpenTelemetry collector");
        }
    }
}
