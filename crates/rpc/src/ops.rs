//! Every service process's operational HTTP endpoints: `/healthz` (alive),
//! `/readyz` (ready for traffic: 200, or 503 with the reason) and `/metrics`
//! (Prometheus text format, the process's one recorder).

use axum::{Router, http::StatusCode, routing::get};
use fc_core::Shutdown;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
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

/// Whether the service is ready, and if not why.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Serves the endpoints on `listener` until shutdown; `/readyz` answers 503
/// from the moment shutdown fires.
pub async fn serve(listener: tokio::net::TcpListener, ready: Readiness, shutdown: Shutdown) {
    metrics_handle();
    let stop = shutdown.clone();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let answer = if stop.is_triggered() { Err("shutting down".to_string()) } else { ready() };
                async move {
                    match answer {
                        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
                    }
                }
            }),
        )
        .route("/metrics", get(|| async { metrics_handle().render() }));
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.wait().await }).await {
        tracing::error!(error = %e, "ops HTTP server failed");
    }
}

/// A service binary's exit: success, or its error printed as `<binary>: <error>`
/// (the peer it misses, the setting that is wrong) and a failure status.
pub fn exit(binary: &str, result: Result<(), Box<dyn std::error::Error>>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{binary}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
