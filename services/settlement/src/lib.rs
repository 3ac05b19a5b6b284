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
//! - `grpc.rs`: the `factorychain.v1.Ledger` gRPC service;
//! - [`serve`]: opens everything, starts the checkpointer and the gRPC server.
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

use fc_core::Shutdown;
use fc_registry::Registry;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;
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
    /// This service's identity (its token for the calls it makes).
    pub service_auth: fc_rpc::service_auth::Config,
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
        }
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
}

/// A running settlement service.
pub struct Running {
    /// Where the `Ledger` gRPC service listens.
    pub grpc_addr: SocketAddr,
    /// The engine, shared with the portal.
    pub settlement: Arc<Settlement>,
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

/// What the settlement gRPC port serves (health and reflection come with it).
pub const GRPC_SERVICES: [&str; 1] = ["factorychain.v1.Ledger"];

/// Opens the ledger (`<data_dir>/settlement.redb`, key `<data_dir>/ledger.key`)
/// and the design store (`<data_dir>/designs/`), starts the checkpointer and
/// the gRPC server. Telemetry is read through ingest's `Query` at
/// `config.telemetry_url` with this service's credential.
pub async fn serve(config: Config, data_dir: &Path, registry: Arc<Registry>, shutdown: Shutdown) -> Result<Running, StartError> {
    let credential = config.service_auth.credential().map_err(|e| StartError::Identity(format!("settlement.service_auth: {e}")))?;
    let telemetry = fc_query_api::QueryClient::new(&config.telemetry_url, credential, Duration::from_secs(30))
        .map_err(|e| StartError::Identity(format!("settlement.telemetry_url: {e}")))?;
    let settlement = Settlement::open(config.clone(), data_dir, registry, telemetry)?;
    let checkpointer = tokio::spawn(
        settlement.ledger().clone().run_checkpointer(Duration::from_millis(config.checkpoint_interval_ms.max(1)), shutdown.clone()),
    );
    let listener = tokio::net::TcpListener::bind(&config.grpc_addr)
        .await
        .map_err(|source| StartError::Bind { addr: config.grpc_addr.clone(), source })?;
    let grpc_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.grpc_addr.clone(), source })?;
    let svc = grpc::service(settlement.clone());
    let router = tonic::transport::Server::builder().layer(fc_rpc::trace::GrpcServerLayer).add_service(svc);
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
    tracing::info!(%grpc_addr, vkey = %settlement.verifier_key(), "settlement ready");
    Ok(Running { grpc_addr, settlement, tasks: vec![checkpointer, server] })
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
}
