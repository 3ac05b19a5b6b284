//! Operational HTTP endpoints: `/healthz` (process alive), `/readyz` (ready to
//! take traffic) and `/metrics` (Prometheus text format).

use crate::AppState;
use axum::{Router, extract::State, http::StatusCode, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

/// The process-wide Prometheus recorder (installed once, shared by every service in the process).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Histograms with fixed buckets (not rolling summaries): they add up across
        // instances and cover the whole life of the process.
        const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0];
        let recorder = match PrometheusBuilder::new()
            .set_buckets_for_metric(metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()), &BUCKETS)
        {
            Ok(b) => b.build_recorder(),
            Err(e) => {
                tracing::warn!(error = %e, "metric buckets refused; using summaries");
                PrometheusBuilder::new().build_recorder()
            }
        };
        let handle = recorder.handle();
        // Fails only when another recorder is installed; then our handle renders nothing, which we log.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

/// Serve the endpoints until shutdown.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>) {
    metrics_handle();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(|| async { metrics_handle().render() }))
        .with_state(state.clone());
    let shutdown = state.shutdown.clone();
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.wait().await }).await {
        tracing::error!(error = %e, "http server failed");
    }
}

async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if !state.ready.load(Ordering::SeqCst) || state.shutdown.is_triggered() {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    } else if !state.bus_ready.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: the telemetry bus is nearly full while the store writer catches up\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}
