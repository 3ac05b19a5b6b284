//! The monitor service: it watches every tenant's machines. A durable consumer of the
//! TELEMETRY stream feeds each tenant's alarm rules (`fc-monitor`, the pure engine the
//! CLI's backtest runs too); alarms are stored in the monitor's own file and announced
//! on `fc.<tenant>.events.alarm` (the EVENTS stream); operators act on them through the
//! `factorychain.v1.Monitor` gRPC API (the portal is its client).
//!
//! Code map:
//! - `monitor.rs`: [`Monitor`], the tenants' rule runners, recording and announcing
//!   transitions, the operators' actions;
//! - `store.rs`: rules (every version), alarms (notes, history), runner checkpoints;
//! - `consumer.rs`: the telemetry consumer, the clock, the checkpointer;
//! - `deliver.rs`: signed webhook deliveries, retries, the dead-letter list;
//! - `grpc.rs`: the API; [`serve`] wires it all; `src/main.rs` is `fc-monitor`.
//!
//! Peers: NATS (telemetry in, events out), ingest's `Query` (a rule's metrics must exist).
//!
//! Invariants:
//! - a telemetry message is acked only after the alarm transitions it caused are
//!   stored and announced; an alarm's id is derived from what raised it, so a replay
//!   neither loses nor repeats one;
//! - runners resume from checkpoints and are reconciled with the stored open alarms at
//!   start, so a restart raises no alarm twice;
//! - a tenant's rules and alarms are reached only with that tenant's id, taken from an
//!   authenticated service's request.

mod consumer;
mod deliver;
mod grpc;
pub mod monitor;
pub mod oee;
pub mod store;

pub use grpc::{CALLERS, alarm_pb};
pub use monitor::{Monitor, events_subject};

use fc_core::Shutdown;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Settings (`[monitor]` in the config file, `FC_MONITOR__*` in the environment).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// gRPC listen address of the `Monitor` API; port 0 picks a free port.
    pub grpc_addr: String,
    /// Health, readiness and metrics of the `fc-monitor` process.
    pub ops_addr: String,
    /// Its own data directory; empty: `monitor` in the platform's `data_dir`.
    pub data_dir: String,
    /// Durable consumer name on the TELEMETRY stream.
    pub durable: String,
    /// Messages delivered but not yet acked.
    pub max_ack_pending: i64,
    /// How long JetStream waits for an ack before delivering again.
    pub ack_wait_ms: u64,
    /// The server deletes the monitor's consumer after this long without the monitor:
    /// the stream keeps telemetry for every consumer, so one that is gone for good
    /// would otherwise fill it until ingest refuses readings. A monitor back later
    /// starts from what the stream still holds.
    pub consumer_inactive_threshold_ms: u64,
    /// How often time passes for rules without readings (heartbeats, durations, escalation).
    pub tick_interval_ms: u64,
    /// How often the rule runners' state is saved (and at shutdown).
    pub checkpoint_interval_ms: u64,
    /// Ingest's `Query` (a rule must name metrics the tenant has); empty: not checked.
    pub telemetry_url: String,
    /// This service's identity.
    pub service_auth: fc_rpc::service_auth::Config,
    /// Let webhooks reach loopback, link-local and private addresses (a plant's own
    /// network, tests); off in a shared cloud, where they would reach the platform.
    pub allow_private_webhooks: bool,
    /// Webhook notifications per tenant per minute; more wait their turn.
    pub notifications_per_minute: u32,
    /// How long one webhook request may take.
    pub webhook_timeout_ms: u64,
    /// Attempts of one delivery (1 s, 2 s, 4 s ... apart) before the dead-letter list.
    pub webhook_attempts: u32,
    /// The SMTP server alarm e-mails go through: `smtp://host:25` (plain),
    /// `smtp://user:password@host:587?tls=required` (STARTTLS) or
    /// `smtps://user:password@host:465` (TLS); empty: no e-mail (subscriptions are refused).
    pub smtp_url: String,
    /// The e-mails' sender.
    pub smtp_from: String,
    /// The portal's public address, for links in e-mails (empty: no links).
    pub portal_url: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc_addr: "127.0.0.1:50054".into(),
            ops_addr: "127.0.0.1:9467".into(),
            data_dir: String::new(),
            durable: "monitor".into(),
            max_ack_pending: 20_000,
            ack_wait_ms: 30_000,
            consumer_inactive_threshold_ms: 3_600_000,
            tick_interval_ms: 1000,
            checkpoint_interval_ms: 30_000,
            telemetry_url: "http://127.0.0.1:50051".into(),
            service_auth: fc_rpc::service_auth::Config::default(),
            allow_private_webhooks: false,
            notifications_per_minute: 60,
            webhook_timeout_ms: 10_000,
            webhook_attempts: 8,
            smtp_url: String::new(),
            smtp_from: "FactoryChain <alarms@factorychain.invalid>".into(),
            portal_url: String::new(),
        }
    }
}

impl Config {
    /// Sets an empty `data_dir` to `<platform>/monitor`; returns it.
    pub fn resolve_data_dir(&mut self, platform: &Path) -> PathBuf {
        if self.data_dir.is_empty() {
            self.data_dir = platform.join("monitor").to_string_lossy().into_owned();
        }
        PathBuf::from(&self.data_dir)
    }
}

/// Errors that stop the service from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("monitor storage: {0}")]
    Storage(String),
    /// Could not bind.
    #[error("monitor gRPC bind {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Health or reflection could not be set up.
    #[error("monitor gRPC: {0}")]
    Grpc(String),
    /// Identity or a peer's address is misconfigured.
    #[error("{0}")]
    Identity(String),
    /// NATS is unreachable.
    #[error("{0}")]
    Bus(String),
}

/// A running monitor.
pub struct Running {
    /// Where the `Monitor` API listens.
    pub grpc_addr: SocketAddr,
    /// The core (tests drive it directly).
    pub monitor: Arc<Monitor>,
    /// Its NATS connection (readiness).
    pub nats: async_nats::Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Wait until every loop stopped (after shutdown fired); the last checkpoint is saved by then.
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// What the monitor's gRPC port serves (health and reflection come with it).
pub const GRPC_SERVICES: [&str; 3] = ["factorychain.v1.Monitor", "factorychain.v1.MonitorNotifications", "factorychain.v1.MonitorOee"];

/// How long [`serve`] waits for NATS.
const NATS_WAIT: Duration = Duration::from_secs(10);

/// Opens `<data_dir>/monitor.redb`, connects to NATS (`bus`, as the `monitor` user),
/// starts the telemetry consumer, the clock, the checkpointer and the gRPC API.
pub async fn serve(mut config: Config, bus: &fc_bus::BusConfig, shutdown: Shutdown) -> Result<Running, StartError> {
    if config.data_dir.is_empty() {
        config.data_dir = "./data/monitor".into();
    }
    let data_dir = PathBuf::from(&config.data_dir);
    fc_core::fsutil::create_dir_durably(&data_dir).map_err(|e| StartError::Storage(format!("{}: {e}", data_dir.display())))?;
    let identity = |e: fc_rpc::service_auth::AuthError| StartError::Identity(format!("monitor.service_auth: {e}"));
    let credential = config.service_auth.credential().map_err(identity)?;
    let verifier = config.service_auth.verifier().map_err(identity)?;
    let series = if config.telemetry_url.is_empty() {
        None
    } else {
        Some(
            fc_query_api::QueryClient::new(&config.telemetry_url, credential, Duration::from_secs(10))
                .map_err(|e| StartError::Identity(format!("monitor.telemetry_url: {e}")))?,
        )
    };
    let bus_conn = match tokio::time::timeout(NATS_WAIT, fc_bus::Bus::connect(bus)).await {
        Ok(Ok(b)) => Arc::new(b),
        Ok(Err(e)) => return Err(StartError::Bus(format!("monitor: {e}"))),
        Err(_) => {
            return Err(StartError::Bus(format!(
                "no NATS server answers at {} (bus.url) within {} s; the monitor reads telemetry there",
                bus.url,
                NATS_WAIT.as_secs()
            )));
        }
    };
    let mailer = deliver::Mailer::new(&config).map_err(StartError::Identity)?;
    let store = store::Store::open(&data_dir.join("monitor.redb")).map_err(|e| StartError::Storage(e.message))?;
    let monitor = Arc::new(
        Monitor::open(store, bus_conn.clone(), series, config.allow_private_webhooks, !config.smtp_url.is_empty())
            .map_err(|e| StartError::Storage(e.message))?,
    );
    let listener = tokio::net::TcpListener::bind(&config.grpc_addr)
        .await
        .map_err(|source| StartError::Bind { addr: config.grpc_addr.clone(), source })?;
    let grpc_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.grpc_addr.clone(), source })?;
    let router = tonic::transport::Server::builder()
        .layer(fc_rpc::trace::GrpcServerLayer)
        .add_service(grpc::server(monitor.clone(), verifier.clone()))
        .add_service(grpc::notifications(monitor.clone(), verifier.clone()))
        .add_service(grpc::oee(monitor.clone(), verifier));
    let router = fc_rpc::add_introspection(router, &[fc_proto::FILE_DESCRIPTOR_SET], &GRPC_SERVICES, shutdown.clone())
        .await
        .map_err(|e| StartError::Grpc(e.to_string()))?;
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, async move { stop.wait().await }).await {
            tracing::error!(error = %e, "monitor gRPC server failed");
        }
    });
    let tasks = vec![
        tokio::spawn(consumer::consume(monitor.clone(), bus_conn.clone(), config.clone(), shutdown.clone())),
        tokio::spawn(consumer::clock(monitor.clone(), config.clone(), shutdown.clone())),
        tokio::spawn(consumer::checkpointer(monitor.clone(), config.clone(), shutdown.clone())),
        tokio::spawn(deliver::run(monitor.clone(), config.clone(), mailer, shutdown.clone())),
        server,
    ];
    tracing::info!(%grpc_addr, data_dir = %data_dir.display(), "monitor ready");
    Ok(Running { grpc_addr, monitor, nats: bus_conn.client().clone(), tasks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_documents_the_monitor_defaults() {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/factorychain.example.toml");
        let mut table = fc_core::config::read_table(&path).expect("example config parses");
        let section = match table.remove("monitor") {
            Some(toml::Value::Table(t)) => t,
            other => panic!("the example has no [monitor] table: {other:?}"),
        };
        let cfg: Config = fc_core::config::load_table(Some(section), "FC_MONITOR__", Vec::new()).expect("the [monitor] table parses");
        assert_eq!(cfg, Config::default(), "the example documents the defaults");
    }
}
