//! The ingest service: device authentication, validation, durable publishing
//! to JetStream, the store writer (a durable consumer), and the `Query` gRPC
//! service.
//!
//! Data flow: `Ingest.Stream`/`Push` -> [`validate`] -> JetStream subject
//! `fc.<tenant>.telemetry.<machine>` -> PubAck -> `Ack` to the device;
//! [`writer`] pulls from the durable consumer `store-writer`, commits to the
//! store, then acks NATS.
//!
//! Tenancy is the portal's: devices are authenticated and plans read through
//! [`fc_tenancy_api::TenancyClient`] (cached; revocations arrive over NATS and
//! end open streams), with this service's credential (`service_auth`).
//!
//! Invariants:
//! - tenant and device come from the credential, never from the payload;
//! - a device is acked only after JetStream's PubAck for every part of its batch;
//! - the writer acks a NATS message only after the store committed it.

pub mod admission;
pub mod auth;
pub mod http;
pub mod ingest;
pub mod query;
pub mod quota;
pub mod series;
pub mod writer;

/// Batch validation lives in the pure `fc-telemetry` crate (fuzzed and property-tested).
pub use fc_telemetry::validate;

use fc_bus::{Bus, BusConfig};
use fc_core::Shutdown;
use fc_store::{DynStore, StoreConfig};
use fc_tenancy_api::TenancyClient;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Everything the service reads from its configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory of the embedded stores.
    pub data_dir: PathBuf,
    /// gRPC listen address (Ingest, Query, health, reflection); port 0 picks a free port.
    pub grpc_addr: String,
    /// HTTP listen address of /healthz, /readyz and /metrics.
    pub http_addr: String,
    /// Longest time shutdown may take before it gives up waiting.
    pub shutdown_deadline_ms: u64,
    /// NATS JetStream.
    pub bus: BusConfig,
    /// Telemetry storage.
    pub store: StoreConfig,
    /// The tenancy owner (the portal) and how long its answers are kept.
    pub tenancy: fc_tenancy_api::CacheConfig,
    /// This service's identity (its token for the calls it makes).
    pub service_auth: fc_rpc::service_auth::Config,
    /// Batch validation limits.
    pub limits: validate::Limits,
    /// Store writer.
    pub writer: writer::WriterConfig,
    /// Batches one device stream may have waiting for their PubAck.
    pub stream_inflight_batches: usize,
    /// Each tenant's share of the telemetry bus.
    pub admission: admission::AdmissionConfig,
    /// A `Query` call first waits (at most this long) until what its tenant had
    /// published when it came in is stored, so a read after an acknowledged push
    /// sees it; 0 reads at once.
    pub query_settle_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            grpc_addr: "127.0.0.1:50051".into(),
            http_addr: "127.0.0.1:9464".into(),
            shutdown_deadline_ms: 15_000,
            bus: BusConfig::default(),
            store: StoreConfig::default(),
            tenancy: fc_tenancy_api::CacheConfig::default(),
            service_auth: fc_rpc::service_auth::Config::default(),
            limits: validate::Limits::default(),
            writer: writer::WriterConfig::default(),
            stream_inflight_batches: 64,
            admission: admission::AdmissionConfig::default(),
            query_settle_ms: 2_000,
        }
    }
}

impl Config {
    /// Check what serde cannot; every problem at once.
    pub fn validate(&self) -> Result<(), fc_core::config::ConfigError> {
        let mut errs = Vec::new();
        if self.grpc_addr.parse::<SocketAddr>().is_err() {
            errs.push(format!("grpc_addr: {:?} is not host:port", self.grpc_addr));
        }
        if self.http_addr.parse::<SocketAddr>().is_err() {
            errs.push(format!("http_addr: {:?} is not host:port", self.http_addr));
        }
        if self.limits.max_batch_readings == 0 {
            errs.push("limits.max_batch_readings: must be positive".into());
        }
        if self.limits.max_message_bytes < 1024 {
            errs.push("limits.max_message_bytes: must be at least 1024".into());
        }
        if self.query_settle_ms > 60_000 {
            errs.push("query_settle_ms: at most 60000".into());
        }
        if self.stream_inflight_batches == 0 {
            errs.push("stream_inflight_batches: must be positive".into());
        }
        if !["embedded", "scylla"].contains(&self.store.backend.as_str()) {
            errs.push(format!("store.backend: {:?} is not embedded or scylla", self.store.backend));
        }
        errs.extend(self.bus.problems());
        errs.extend(self.admission.problems());
        if errs.is_empty() { Ok(()) } else { Err(fc_core::config::ConfigError(errs)) }
    }
}

/// State shared by the handlers.
pub struct AppState {
    /// Devices and plans, asked of the tenancy owner.
    pub tenancy: Arc<TenancyClient>,
    /// Checks the service credential of `Query` calls made for a tenant
    /// (none: only devices may read).
    pub verifier: Option<fc_rpc::service_auth::Verifier>,
    /// Telemetry store.
    pub store: DynStore,
    /// JetStream.
    pub bus: Bus,
    /// The configuration the service runs with.
    pub config: Config,
    /// Fires on shutdown.
    pub shutdown: Shutdown,
    /// Readiness latch: set once everything is up, cleared at shutdown.
    pub ready: AtomicBool,
    /// Plan rate limits.
    pub quotas: quota::Quotas,
    /// Each tenant's series, for the plan's `max_series`.
    pub series: series::SeriesCatalog,
    /// Each tenant's read budget (plan's `max_read_points_per_s`, concurrent reads).
    pub reads: fc_store::budget::ReadBudgets,
    /// Each tenant's share of the telemetry bus.
    pub admission: admission::Admission,
    /// False while the telemetry bus is nearly full (`/readyz` answers 503).
    pub bus_ready: AtomicBool,
}

/// A running service.
pub struct Running {
    /// Where gRPC listens.
    pub grpc_addr: SocketAddr,
    /// Where /healthz, /readyz and /metrics listen.
    pub http_addr: SocketAddr,
    /// Shared state (registry, store, bus).
    pub state: Arc<AppState>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

/// Errors that stop the service from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration invalid.
    #[error(transparent)]
    Config(#[from] fc_core::config::ConfigError),
    /// A listener could not bind.
    #[error("bind {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Store failed to open.
    #[error(transparent)]
    Store(#[from] fc_store::StoreError),
    /// This service's identity or its tenancy client is misconfigured.
    #[error("{0}")]
    Identity(String),
    /// NATS unreachable or JetStream refused.
    #[error(transparent)]
    Bus(#[from] fc_bus::BusError),
    /// Filesystem.
    #[error("{0}")]
    Io(String),
}

/// Start every part of the service; returns once it listens and is ready.
pub async fn serve(config: Config, shutdown: Shutdown) -> Result<Running, StartError> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| StartError::Io(format!("{}: {e}", config.data_dir.display())))?;
    let credential = config.service_auth.credential().map_err(|e| StartError::Identity(format!("service_auth: {e}")))?;
    let tenancy = Arc::new(TenancyClient::new(config.tenancy.clone(), credential).map_err(|e| StartError::Identity(e.to_string()))?);
    let store = fc_store::open(&config.store, &config.data_dir).await?;
    let bus = Bus::connect(&config.bus).await?;
    let follow = {
        let stop = shutdown.clone();
        tenancy
            .follow(bus.client(), async move { stop.wait().await })
            .await
            .map_err(|e| StartError::Identity(format!("tenancy changes: {e}")))?
    };
    // The store writer's consumer exists before the first publish: the stream keeps a
    // message only for the consumers that exist when it arrives.
    bus.durable_consumer(
        fc_bus::TELEMETRY_STREAM,
        &config.writer.durable,
        None,
        config.writer.max_ack_pending,
        Duration::from_millis(config.writer.ack_wait_ms),
    )
    .await?;
    let admission = admission::Admission::new(&config.admission, config.bus.telemetry_max_bytes as u64);
    let grpc_listener = tokio::net::TcpListener::bind(&config.grpc_addr)
        .await
        .map_err(|source| StartError::Bind { addr: config.grpc_addr.clone(), source })?;
    let http_listener = tokio::net::TcpListener::bind(&config.http_addr)
        .await
        .map_err(|source| StartError::Bind { addr: config.http_addr.clone(), source })?;
    let grpc_addr = grpc_listener.local_addr().map_err(|e| StartError::Io(e.to_string()))?;
    let http_addr = http_listener.local_addr().map_err(|e| StartError::Io(e.to_string()))?;

    let verifier = match config.service_auth.issuer_public_key.as_str() {
        "" => None,
        key => Some(
            fc_rpc::service_auth::Verifier::parse(key).map_err(|e| StartError::Identity(format!("service_auth.issuer_public_key: {e}")))?,
        ),
    };
    let state = Arc::new(AppState {
        tenancy,
        verifier,
        store,
        bus,
        config,
        shutdown: shutdown.clone(),
        ready: AtomicBool::new(false),
        quotas: quota::Quotas::default(),
        series: series::SeriesCatalog::default(),
        reads: fc_store::budget::ReadBudgets::default(),
        admission,
        bus_ready: AtomicBool::new(true),
    });
    let mut tasks = vec![("tenancy-changes", follow), ("bus-backlog", tokio::spawn(watch_backlog(state.clone())))];
    if state.config.writer.enabled {
        tasks.push(("store-writer", tokio::spawn(writer::run(state.clone()))));
    }
    tasks.extend([
        ("store-maintenance", tokio::spawn(maintenance(state.clone()))),
        ("http", tokio::spawn(http::serve(http_listener, state.clone()))),
        ("grpc", tokio::spawn(grpc(grpc_listener, state.clone()))),
    ]);
    state.ready.store(true, Ordering::SeqCst);
    tracing::info!(%grpc_addr, %http_addr, store = state.store.backend(), nats = %state.config.bus.url, "ingest service ready");
    Ok(Running { grpc_addr, http_addr, state, tasks })
}

impl Running {
    /// Wait until the shutdown token fires and every part has stopped (within the deadline).
    pub async fn wait(self) {
        self.state.shutdown.wait().await;
        self.state.ready.store(false, Ordering::SeqCst);
        let deadline = Duration::from_millis(self.state.config.shutdown_deadline_ms);
        let started = tokio::time::Instant::now();
        for (name, task) in self.tasks {
            let left = deadline.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, task).await {
                Ok(_) => tracing::debug!(task = name, "stopped"),
                Err(_) => {
                    tracing::warn!(task = name, deadline_ms = deadline.as_millis() as u64, "did not stop before the shutdown deadline")
                }
            }
        }
        // The writer wrote and acked what it had pulled; flush the store head too so a restart has nothing to replay.
        if let Err(e) = self.state.store.flush().await {
            tracing::warn!(error = %e, "final store flush failed; the log will be replayed at start");
        }
        tracing::info!("ingest service stopped");
    }

    /// Fire the shutdown token and wait for a graceful stop.
    pub async fn stop(self) {
        self.state.shutdown.trigger();
        self.wait().await
    }
}

/// What the main gRPC port serves (health and reflection come with them).
pub const GRPC_SERVICES: [&str; 2] = ["factorychain.v1.Ingest", "factorychain.v1.Query"];

async fn grpc(listener: tokio::net::TcpListener, state: Arc<AppState>) {
    let max = state.config.limits.max_message_bytes;
    let ingest = fc_proto::v1::ingest_server::IngestServer::new(ingest::IngestService::new(state.clone()))
        .max_decoding_message_size(max.saturating_mul(2));
    let query =
        fc_proto::v1::query_server::QueryServer::new(query::QueryService::new(state.clone())).max_encoding_message_size(64 * 1024 * 1024);
    let shutdown = state.shutdown.clone();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let mut builder = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .layer(fc_rpc::trace::GrpcServerLayer);
    let router = builder.add_service(ingest).add_service(query);
    let router = match fc_rpc::add_introspection(router, &[fc_proto::FILE_DESCRIPTOR_SET], &GRPC_SERVICES, shutdown.clone()).await {
        Ok(router) => router,
        Err(e) => {
            tracing::error!(error = %e, "gRPC health and reflection could not be set up");
            return;
        }
    };
    if let Err(e) = router.serve_with_incoming_shutdown(incoming, async move { shutdown.wait().await }).await {
        tracing::error!(error = %e, "grpc server failed");
    }
}

/// Read the bus backlog every `admission.backlog_poll_ms`: metrics, admission, readiness.
async fn watch_backlog(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_millis(state.config.admission.backlog_poll_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = state.shutdown.wait() => return,
            _ = tick.tick() => {}
        }
        match state.bus.stream_backlog(fc_bus::TELEMETRY_STREAM).await {
            Ok((bytes, messages)) => {
                metrics::gauge!("ingest_bus_backlog_bytes").set(bytes as f64);
                metrics::gauge!("ingest_bus_backlog_messages").set(messages as f64);
                let ok = state.admission.observe_stream(bytes);
                if state.bus_ready.swap(ok, Ordering::SeqCst) != ok {
                    tracing::warn!(bytes, ready = ok, "telemetry bus backlog crossed the readiness mark");
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the telemetry stream's size"),
        }
        if let Ok(n) = state.bus.consumer_backlog(fc_bus::TELEMETRY_STREAM, &state.config.writer.durable).await {
            metrics::gauge!("store_writer_backlog_messages").set(n as f64);
        }
    }
}

async fn maintenance(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_purge = tokio::time::Instant::now() - Duration::from_secs(3600);
    loop {
        tokio::select! {
            _ = state.shutdown.wait() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = state.store.maintain().await {
            tracing::warn!(error = %e, "store maintenance failed");
        }
        state.quotas.prune(quota::IDLE_LIMITER);
        state.series.prune(quota::IDLE_LIMITER);
        if last_purge.elapsed() >= Duration::from_secs(3600) {
            last_purge = tokio::time::Instant::now();
            purge_expired(&state).await;
        }
    }
}

/// Hourly housekeeping: each tenant's readings past its plan's retention.
async fn purge_expired(state: &AppState) {
    let tenants = match state.tenancy.tenants().await {
        Ok(tenants) => tenants,
        Err(e) => return tracing::warn!(error = %e, "retention purge: cannot list tenants"),
    };
    let cutoffs = fc_store::Cutoffs {
        per_tenant: retention_cutoffs(&tenants, fc_core::time::now_ms(), state.config.store.retention_days).into_iter().collect(),
        others: None,
    };
    // One pass over the store for every tenant. Readings of a tenant the registry
    // does not know (`others: None`) are kept.
    match state.store.purge_before(&cutoffs).await {
        Ok(n) => tracing::info!(tenants = cutoffs.per_tenant.len(), readings = n, "retention purge done"),
        Err(e) => tracing::warn!(error = %e, "retention purge failed"),
    }
}

/// Per tenant, the time before which its readings go: its plan's
/// `retention_days`, capped by the platform-wide `store.retention_days` when that is set.
pub fn retention_cutoffs(tenants: &[fc_tenancy_api::Tenant], now_ms: i64, platform_max_days: u32) -> Vec<(String, i64)> {
    tenants
        .iter()
        .map(|t| {
            let plan_days = t.plan.retention_days;
            let days = if platform_max_days > 0 { plan_days.min(platform_max_days) } else { plan_days };
            (t.id.clone(), now_ms - i64::from(days) * fc_core::time::DAY_MS)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_equals_the_defaults() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/factorychain.example.toml");
        // `factorychain up` hands the services' tables to those services (tested there).
        let mut table = fc_core::config::read_table(&path).expect("example config parses");
        for section in fc_core::config::SERVICE_SECTIONS {
            table.remove(section);
        }
        let cfg: Config = fc_core::config::load_table(Some(table), "FC_", Vec::new()).expect("example config parses");
        cfg.validate().expect("example config is valid");
        assert_eq!(cfg, Config::default(), "the example documents the defaults");
    }

    #[test]
    fn retention_follows_each_tenants_plan_within_the_platform_cap() {
        let t = |id: &str, plan: &str| fc_tenancy_api::Tenant {
            id: id.into(),
            name: id.into(),
            plan: fc_tenancy_api::plans::plan(plan).expect("a plan"),
        };
        let tenants = [t("t_s", "starter"), t("t_g", "growth"), t("t_e", "enterprise")];
        let now = 1_000 * fc_core::time::DAY_MS;
        let days =
            |cutoffs: Vec<(String, i64)>| cutoffs.into_iter().map(|(id, c)| (id, (now - c) / fc_core::time::DAY_MS)).collect::<Vec<_>>();
        assert_eq!(days(retention_cutoffs(&tenants, now, 0)), vec![("t_s".into(), 30), ("t_g".into(), 365), ("t_e".into(), 1825)]);
        assert_eq!(days(retention_cutoffs(&tenants, now, 90)), vec![("t_s".into(), 30), ("t_g".into(), 90), ("t_e".into(), 90)]);
    }

    #[test]
    fn bad_settings_are_all_reported() {
        let c = Config { grpc_addr: "nope".into(), http_addr: "x".into(), stream_inflight_batches: 0, ..Config::default() };
        let err = c.validate().unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        let mut c = Config::default();
        c.bus.sync = "sometimes".into();
        c.bus.replicas = 0;
        let err = c.validate().unwrap_err().to_string();
        for field in ["bus.sync", "bus.replicas"] {
            assert!(err.contains(field), "{field}: {err}");
        }
        for sync in ["always", "1s", "500ms", "2m"] {
            let mut c = Config::default();
            c.bus.sync = sync.into();
            c.validate().unwrap_or_else(|e| panic!("{sync}: {e}"));
        }
    }
}
