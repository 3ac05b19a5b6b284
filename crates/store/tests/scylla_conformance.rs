//! The shared conformance suite on a real ScyllaDB cluster, when one is named.
//!
//! Set `FC_SCYLLA_NODES=host:9042[,host:9042…]` (and optionally
//! `FC_SCYLLA_KEYSPACE`) to run it; without a cluster the test says loudly that
//! it skipped rather than pass silently.

use fc_store::scylla::{ScyllaConfig, ScyllaStore};
use std::time::{SystemTime, UNIX_EPOCH};

#[tokio::test(flavor = "multi_thread")]
async fn scylla_backend_passes_conformance() {
    let nodes = std::env::var("FC_SCYLLA_NODES").unwrap_or_default();
    if nodes.trim().is_empty() {
        eprintln!("SKIPPED: ScyllaDB conformance suite (set FC_SCYLLA_NODES=host:9042 to run it)");
        return;
    }
    let mut cfg = ScyllaConfig::from_env_nodes(&nodes);
    if let Ok(keyspace) = std::env::var("FC_SCYLLA_KEYSPACE")
        && !keyspace.trim().is_empty()
    {
        cfg.keyspace = keyspace.trim().to_string();
    }
    let store = ScyllaStore::connect(&cfg).await.unwrap_or_else(|e| panic!("connect to ScyllaDB {:?}: {e}", cfg.nodes));
    // Tenants unique to this run: the cluster keeps earlier runs' data.
    let run = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos();
    if let Err(e) = fc_store::conformance::run_all(&store, &format!("t_conf_{run}_")).await {
        panic!("scylla conformance: {e}");
    }
}
