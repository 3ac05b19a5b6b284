//! Traces across services: OpenTelemetry over OTLP/gRPC, and W3C trace
//! context carried in gRPC metadata and NATS headers.
//!
//! Off unless an endpoint is configured ([`init`] with `Some(endpoint)`, which
//! `factorychain up` takes from `OTEL_EXPORTER_OTLP_ENDPOINT`). When off, no
//! span is exported, nothing is injected into messages and incoming
//! `traceparent`s are ignored: the cost is one atomic load per call site.
//!
//! Shape of a device batch's trace: `grpc` (server span of the call, child of
//! the device's `traceparent` if it sent one) → `ingest_batch` → `store_write`
//! (in the store writer, child of the context the batch's NATS message carried).

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::task::{Context, Poll};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Whether spans are exported (and so worth propagating).
pub fn enabled() -> bool {
    fc_core::telemetry::traces_enabled()
}

/// The installed exporter; [`Tracing::shutdown`] flushes what is buffered.
pub struct Tracing {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Tracing {
    /// Export what is buffered and stop the exporter.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The exporter's flush blocks; on an async worker it would stall.
            let _ = tokio::task::spawn_blocking(move || {
                let _ = provider.force_flush();
                let _ = provider.shutdown();
            })
            .await;
        }
    }

    /// Export what is buffered now (tests).
    pub async fn flush(&self) {
        if let Some(provider) = self.provider.clone() {
            let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;
        }
    }
}

/// [`init`] as the standard variables say: `OTEL_EXPORTER_OTLP_ENDPOINT` (off
/// when unset) and `OTEL_SERVICE_NAME` (`default_service` when unset), filter `info`.
pub fn init_from_env(default_service: &str) -> Result<Tracing, String> {
    let otlp = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok();
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| default_service.into());
    init(&service, "info", otlp.as_deref())
}

/// Install logging (see `fc_core::telemetry`) and, with `otlp_endpoint` (e.g.
/// `http://127.0.0.1:4317`), span export over OTLP/gRPC as service `service`.
/// Call once per process, inside a tokio runtime.
pub fn init(service: &str, default_filter: &str, otlp_endpoint: Option<&str>) -> Result<Tracing, String> {
    let Some(endpoint) = otlp_endpoint.filter(|e| !e.trim().is_empty()) else {
        fc_core::telemetry::init_with(default_filter, None);
        return Ok(Tracing { provider: None });
    };
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| format!("OTLP exporter for {endpoint}: {e}"))?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service.to_string()).build())
        .build();
    let tracer = provider.tracer("factorychain");
    // Spans of every level up to INFO are exported, whatever the log level (FC_LOG) says.
    use tracing_subscriber::Layer as _;
    let layer = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    fc_core::telemetry::init_with(default_filter, Some(Box::new(layer)));
    fc_core::telemetry::set_traces_enabled();
    tracing::info!(endpoint, service, "exporting traces over OTLP");
    Ok(Tracing { provider: Some(provider) })
}

/// Writes `span`'s context as W3C `traceparent` (and `tracestate`) through `set`.
pub fn inject(span: &tracing::Span, mut set: impl FnMut(&'static str, String)) {
    if !enabled() {
        return;
    }
    struct Sink<'a, F: FnMut(&'static str, String)>(&'a mut F);
    impl<F: FnMut(&'static str, String)> Injector for Sink<'_, F> {
        fn set(&mut self, key: &str, value: String) {
            match key {
                "traceparent" => (self.0)("traceparent", value),
                "tracestate" => (self.0)("tracestate", value),
                _ => {}
            }
        }
    }
    TraceContextPropagator::new().inject_context(&span.context(), &mut Sink(&mut set));
}

/// Makes the W3C context that `get` finds (`traceparent`, `tracestate`) the parent of `span`.
pub fn set_parent(span: &tracing::Span, get: impl Fn(&str) -> Option<String>) {
    if !enabled() {
        return;
    }
    struct Source(Vec<(&'static str, String)>);
    impl Extractor for Source {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(k, _)| *k).collect()
        }
    }
    let found: Vec<(&'static str, String)> = ["traceparent", "tracestate"].into_iter().filter_map(|k| get(k).map(|v| (k, v))).collect();
    if found.is_empty() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Source(found));
    let _ = span.set_parent(parent);
}

/// A tower layer for gRPC servers: each call runs in a server span named after
/// its method, whose parent is the caller's `traceparent` when it sent one.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcServerLayer;

impl<S> tower::Layer<S> for GrpcServerLayer {
    type Service = GrpcServerTrace<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerTrace { inner }
    }
}

/// The service [`GrpcServerLayer`] wraps.
#[derive(Clone, Debug)]
pub struct GrpcServerTrace<S> {
    inner: S,
}

/// Most distinct method labels a process reports; later paths count as `other`.
const MAX_METHOD_LABELS: usize = 200;

/// A request path as a metric label: the path of a method this process was
/// called with, among the first [`MAX_METHOD_LABELS`] seen, else `other` (a
/// client sending made-up paths cannot grow the metrics without bound).
fn method_label(path: &str) -> String {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> = std::sync::OnceLock::new();
    let plausible = path.len() <= 100 && path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_'));
    if !plausible {
        return "other".into();
    }
    let mut seen = SEEN.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if seen.contains(path) || (seen.len() < MAX_METHOD_LABELS && seen.insert(path.to_string())) { path.to_string() } else { "other".into() }
}

impl<S, B> tower::Service<http::Request<B>> for GrpcServerTrace<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        use tracing::Instrument as _;
        // Every service's calls, by method, on its `/metrics`.
        metrics::counter!("grpc_server_requests_total", "method" => method_label(request.uri().path())).increment(1);
        if !enabled() {
            return self.inner.call(request).instrument(tracing::Span::none());
        }
        let method = request.uri().path().to_string();
        let span = tracing::info_span!("grpc", otel.name = %method, otel.kind = "server", rpc.system = "grpc", rpc.method = %method);
        let headers = request.headers();
        set_parent(&span, |k| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned));
        let _entered = span.enter();
        let future = self.inner.call(request);
        drop(_entered);
        future.instrument(span)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(super::method_label("/factorychain.v1.Ledger/GetCheckpoint"), "/factorychain.v1.Ledger/GetCheckpoint");
        assert_eq!(super::method_label("/x y"), "other");
        assert_eq!(super::method_label(&"/a".repeat(60)), "other");
        for i in 0..super::MAX_METHOD_LABELS + 10 {
            let _ = super::method_label(&format!("/made.up/M{i}"));
        }
        assert_eq!(super::method_label("/made.up/late"), "other", "the set is full");
        assert_eq!(
            super::method_label("/factorychain.v1.Ledger/GetCheckpoint"),
            "/factorychain.v1.Ledger/GetCheckpoint",
            "known ones stay"
        );
    }
}
