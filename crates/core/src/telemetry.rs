//! Logging and tracing set-up. `RUST_LOG` (or `FC_LOG`) filters; `FC_LOG_FORMAT=json`
//! switches to JSON lines for log collectors.

use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

static TRACES: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (set by `fc_rpc::trace::init`): code that makes
/// spans only for traces (one per message, per append) checks this first.
pub fn traces_enabled() -> bool {
    TRACES.load(Ordering::Relaxed)
}

/// Marks span export as on (`fc_rpc::trace::init` calls it).
pub fn set_traces_enabled() {
    TRACES.store(true, Ordering::Relaxed);
}

/// A layer added beside logging (the OpenTelemetry export of `fc_rpc::trace`),
/// with its own filter: the log level (`FC_LOG`) never decides which spans are exported.
pub type ExtraLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static>;

/// Install the global subscriber once; later calls are no-ops (tests call it often).
pub fn init(default_filter: &str) {
    init_with(default_filter, None)
}

/// [`init`] with another layer beside the log output. The log filter applies to the
/// log output only; `extra` brings its own.
pub fn init_with(default_filter: &str, extra: Option<ExtraLayer>) {
    let filter = std::env::var("FC_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| default_filter.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("FC_LOG_FORMAT").is_ok_and(|v| v == "json");
    let registry = tracing_subscriber::registry().with(extra);
    let _ = if json {
        registry.with(fmt::layer().json().with_writer(std::io::stderr).with_filter(filter)).try_init()
    } else {
        registry.with(fmt::layer().with_writer(std::io::stderr).with_filter(filter)).try_init()
    };
}

/// For tests: logs only when `TEST_LOG=1`.
pub fn init_for_tests() {
    if std::env::var("TEST_LOG").is_ok_and(|v| v == "1") {
        init("info,fc_ingest=debug,fc_store=debug");
    }
}
