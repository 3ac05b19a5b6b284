//! The settlement service: one verifiable log per buyer's supply network
//! ([`fc_settlement::Ledger`]), and the workflow on top of it: encrypted
//! designs shared with chosen partners, purchase orders, shipments,
//! inspections, acceptance, automatic payment instructions, the buyer's
//! ISO 20022 bank file and payment confirmations.
//!
//! Code map:
//! - [`Settlement`] (`engine.rs`): every operation, for an acting organisation
//!   (a tenant id taken from its credential by the caller: portal or gRPC);
//! - `network.rs`: the in-memory state of one network, folded from its log;
//! - `designs.rs`: the ciphertext files;
//! - `grpc.rs`: the gRPC port: `factorychain.v1.Ledger` (members, by API
//!   key) and `factorychain.v1.Settlement` (the complete internal API, for
//!   services: the portal is its client through
//!   [`fc_settlement_api::SettlementClient`]);
//! - [`serve`]: opens everything in its own data directory, follows tenancy
//!   changes on NATS, starts the checkpointer and the gRPC server;
//!   `src/main.rs` is the `fc-settlement` process around it.
//!
//! Peers: the tenancy owner (membership, names, plans, bank accounts, API
//! keys; [`fc_tenancy_api::TenancyClient`], cached, with partnership changes
//! pushed over NATS), ingest's `Query` (inspections from telemetry).
//!
//! Invariants:
//! - every change is an entry of the network's log; the state the service
//!   answers from is the fold of those entries ([`fc_ledger::settle`]), so
//!   `factorychain settlement replay` recomputes it from the entries alone;
//! - an entry is appended only after the fold accepted it, and one network's
//!   entries are decided and appended one call at a time (a per-network lock),
//!   so the log never holds an entry its rules refuse;
//! - a payment instruction is appended in the same commit as the acceptance
//!   that made it due, by the service, never by a client;
//! - the platform holds design ciphertext only: encryption happens on the
//!   client, to the recipients' public keys, and downloads go to recipients;
//! - a network is visible to its buyer and its accepted suppliers only; an
//!   entry to the organisations it concerns (the buyer; the order's supplier;
//!   a design's recipients); others get "not found", as for a network that
//!   does not exist.

mod designs;
mod engine;
mod grpc;
mod network;

pub use engine::{DesignUpload, Settlement, UploadError};
/// The request and answer types, from the client crate callers use.
pub use fc_settlement_api as api;
pub use grpc::CALLERS;

use fc_core::Shutdown;
use fc_tenancy_api::TenancyClient;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Settings (`[settlement]` in the config file, `FC_SETTLEMENT__*` in the environment).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// gRPC listen address of the `Ledger` service; port 0 picks a free port.
    pub grpc_addr: String,
    /// How often grown logs get a signed checkpoint.
    pub checkpoint_interval_ms: u64,
    /// Checkpoint origins are `{origin_prefix}/{network}`; its first path
    /// segment names the signing key.
    pub origin_prefix: String,
    /// Largest design ciphertext accepted, in bytes.
    pub max_design_bytes: usize,
    /// Ingest's `Query` (inspections read telemetry there).
    pub telemetry_url: String,
    /// This service's identity (its token for the calls it makes, the
    /// issuer's public key for the calls it takes).
    pub service_auth: fc_rpc::service_auth::Config,
    /// Its own data directory (ledger, key, designs, bank files); empty: the
    /// `settlement` directory in the platform's `data_dir` ([`Config::resolve_data_dir`]).
    pub data_dir: String,
    /// Health, readiness and metrics of the `fc-settlement` process.
    pub ops_addr: String,
    /// The tenancy owner (the portal's gRPC port) and how long its answers are kept.
    pub tenancy: fc_tenancy_api::CacheConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc_addr: "127.0.0.1:50052".into(),
            checkpoint_interval_ms: 1000,
            origin_prefix: "factorychain.local/ledger".into(),
            max_design_bytes: 32 << 20,
            telemetry_url: "http://127.0.0.1:50051".into(),
            service_auth: fc_rpc::service_auth::Config::default(),
            data_dir: String::new(),
            ops_addr: "127.0.0.1:9466".into(),
            tenancy: fc_tenancy_api::CacheConfig::default(),
        }
    }
}

/// What the settlement service keeps; once in the platform's `data_dir`
/// itself, now in its own directory.
const FILES: [&str; 4] = ["settlement.redb", "ledger.key", "designs", "exports"];

impl Config {
    /// Sets an empty `data_dir` to `<platform>/settlement`, and moves the
    /// service's files there from `platform` when an earlier version kept
    /// them in the platform's directory itself (and the new one has none).
    /// Returns the directory.
    pub fn resolve_data_dir(&mut self, platform: &Path) -> std::io::Result<PathBuf> {
        if self.data_dir.is_empty() {
            self.data_dir = platform.join("settlement").to_string_lossy().into_owned();
        }
        let dir = PathBuf::from(&self.data_dir);
        if dir != platform && platform.join(FILES[0]).exists() && !dir.join(FILES[0]).exists() {
            fc_core::fsutil::create_dir_durably(&dir)?;
            for name in FILES {
                let from = platform.join(name);
                if from.exists() {
                    std::fs::rename(&from, dir.join(name))?;
                    tracing::info!(from = %from.display(), to = %dir.display(), "moved settlement data into its own directory");
                }
            }
            fc_core::fsutil::sync_dir(&dir)?;
            fc_core::fsutil::sync_dir(platform)?;
        }
        Ok(dir)
    }
}

/// Errors that stop the service from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The ledger or the design store could not be opened.
    #[error("settlement storage: {0}")]
    Storage(String),
    /// Could not bind.
    #[error("settlement gRPC bind {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Health or reflection could not be set up.
    #[error("settlement gRPC: {0}")]
    Grpc(String),
    /// This service's identity or a peer's address is misconfigured.
    #[error("{0}")]
    Identity(String),
    /// NATS (tenancy changes) is unreachable.
    #[error("{0}")]
    Bus(String),
}

/// A running settlement service.
pub struct Running {
    /// Where the `Ledger` gRPC service listens.
    pub grpc_addr: SocketAddr,
    /// The engine (tests and benchmarks drive it directly).
    pub settlement: Arc<Settlement>,
    /// Its NATS connection (readiness).
    pub nats: async_nats::Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Wait until the checkpointer and the gRPC server stopped (after shutdown
    /// fired); the ledger's final checkpoint is signed by then.
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// How long [`serve`] waits for NATS.
const NATS_WAIT: Duration = Duration::from_secs(10);

/// What the settlement gRPC port serves (health and reflection come with it).
pub const GRPC_SERVICES: [&str; 2] = ["factorychain.v1.Ledger", "factorychain.v1.Settlement"];

/// Opens the ledger (`<data_dir>/settlement.redb`, key `<data_dir>/ledger.key`)
/// and the design store (`<data_dir>/designs/`) in `config.data_dir` (empty:
/// `./data/settlement`), connects to NATS (`bus`) as the `settlement` user to
/// follow tenancy changes, starts the checkpointer and the gRPC server.
/// Telemetry is read through ingest's `Query` at `config.telemetry_url`,
/// tenancy asked of `config.tenancy.url`, with this service's credential.
pub async fn serve(mut config: Config, bus: &fc_bus::BusConfig, shutdown: Shutdown) -> Result<Running, StartError> {
    if config.data_dir.is_empty() {
        config.data_dir = "./data/settlement".into();
    }
    let data_dir = PathBuf::from(&config.data_dir);
    fc_core::fsutil::create_dir_durably(&data_dir).map_err(|e| StartError::Storage(format!("{}: {e}", data_dir.display())))?;
    let identity = |e: fc_rpc::service_auth::AuthError| StartError::Identity(format!("settlement.service_auth: {e}"));
    let credential = config.service_auth.credential().map_err(identity)?;
    let verifier = config.service_auth.verifier().map_err(identity)?;
    let telemetry = fc_query_api::QueryClient::new(&config.telemetry_url, credential.clone(), Duration::from_secs(30))
        .map_err(|e| StartError::Identity(format!("settlement.telemetry_url: {e}")))?;
    let tenancy = Arc::new(
        TenancyClient::new(config.tenancy.clone(), credential).map_err(|e| StartError::Identity(format!("settlement.tenancy: {e}")))?,
    );
    let nats = fc_bus::connect_client(bus, "settlement").await.map_err(|e| StartError::Bus(e.to_string()))?;
    let stop = shutdown.clone();
    // Without the change notices a revoked key or an ended partnership would
    // apply only when the cache expires: NATS is needed to start.
    let follow = match tokio::time::timeout(NATS_WAIT, tenancy.follow(&nats, async move { stop.wait().await })).await {
        Ok(Ok(task)) => task,
        Ok(Err(e)) => return Err(StartError::Bus(format!("settlement: following tenancy changes on NATS: {e}"))),
        Err(_) => {
            return Err(StartError::Bus(format!(
                "no NATS server answers at {} (bus.url) within {} s; settlement follows tenancy changes there",
                bus.url,
                NATS_WAIT.as_secs()
            )));
        }
    };
    let settlement = Settlement::open(config.clone(), &data_dir, tenancy, telemetry)?;
    let checkpointer = tokio::spawn(
        settlement.ledger().clone().run_checkpointer(Duration::from_millis(config.checkpoint_interval_ms.max(1)), shutdown.clone()),
    );
    let listener = tokio::net::TcpListener::bind(&config.grpc_addr)
        .await
        .map_err(|source| StartError::Bind { addr: config.grpc_addr.clone(), source })?;
    let grpc_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.grpc_addr.clone(), source })?;
    let router = tonic::transport::Server::builder()
        .layer(fc_rpc::trace::GrpcServerLayer)
        .add_service(grpc::ledger(settlement.clone()))
        .add_service(grpc::internal(settlement.clone(), verifier));
    let router = fc_rpc::add_introspection(router, &[fc_proto::FILE_DESCRIPTOR_SET], &GRPC_SERVICES, shutdown.clone())
        .await
        .map_err(|e| StartError::Grpc(e.to_string()))?;
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, async move { stop.wait().await }).await {
            tracing::error!(error = %e, "settlement gRPC server failed");
        }
    });
    tracing::info!(%grpc_addr, data_dir = %data_dir.display(), vkey = %settlement.verifier_key(), "settlement ready");
    Ok(Running { grpc_addr, settlement, nats, tasks: vec![checkpointer, server, follow] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_documents_the_settlement_defaults() {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/factorychain.example.toml");
        let mut table = fc_core::config::read_table(&path).expect("example config parses");
        let section = match table.remove("settlement") {
            Some(toml::Value::Table(t)) => t,
            other => panic!("the example has no [settlement] table: {other:?}"),
        };
        let cfg: Config = fc_core::config::load_table(Some(section), "FC_SETTLEMENT__", Vec::new()).expect("the [settlement] table parses");
        assert_eq!(cfg, Config::default(), "the example documents the defaults");
    }

    #[test]
    fn files_of_the_old_layout_move_into_the_service_directory() {
        let platform = tempfile::tempdir().unwrap();
        std::fs::write(platform.path().join("settlement.redb"), b"ledger").unwrap();
        std::fs::write(platform.path().join("ledger.key"), b"key").unwrap();
        std::fs::create_dir_all(platform.path().join("designs/t_1")).unwrap();
        std::fs::write(platform.path().join("registry.redb"), b"not ours").unwrap();
        let mut cfg = Config::default();
        let dir = cfg.resolve_data_dir(platform.path()).unwrap();
        assert_eq!(dir, platform.path().join("settlement"));
        assert_eq!(std::fs::read(dir.join("settlement.redb")).unwrap(), b"ledger");
        assert_eq!(std::fs::read(dir.join("ledger.key")).unwrap(), b"key");
        assert!(dir.join("designs/t_1").is_dir());
        assert!(!platform.path().join("settlement.redb").exists());
        assert!(platform.path().join("registry.redb").exists(), "other services' files stay");
        // A second start finds everything in place; a stray old file is left alone.
        std::fs::write(platform.path().join("settlement.redb"), b"stray").unwrap();
        assert_eq!(cfg.resolve_data_dir(platform.path()).unwrap(), dir);
        assert_eq!(std::fs::read(dir.join("settlement.redb")).unwrap(), b"ledger");
    }
}
