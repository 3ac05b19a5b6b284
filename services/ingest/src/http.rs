//! Operational HTTP endpoints (`fc_rpc::ops`): `/healthz`, `/readyz` (not
//! ready until started, while the telemetry bus is nearly full, and from
//! shutdown on) and `/metrics`.

use crate::AppState;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use fc_rpc::ops::metrics_handle;

/// Serve the endpoints until shutdown.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>) {
    let shutdown = state.shutdown.clone();
    let ready: fc_rpc::ops::Readiness = Arc::new(move || {
        if !state.ready.load(Ordering::SeqCst) {
            Err("starting".into())
        } else if !state.bus_ready.load(Ordering::SeqCst) {
            Err("the telemetry bus is nearly full while the store writer catches up".into())
        } else {
            Ok(())
        }
    });
    fc_rpc::ops::serve(listener, ready, shutdown).await
}
