//! The registry conformance suite on a real ScyllaDB cluster, when one is named.
//!
//! Set `FC_SCYLLA_NODES=host:9042[,host:9042…]` (and optionally
//! `FC_SCYLLA_KEYSPACE`) to run it; without a cluster the test says loudly that
//! it skipped rather than pass silently.

use fc_registry::Registry;
use fc_registry::scylla::ScyllaKv;
use std::time::{SystemTime, UNIX_EPOCH};

#[tokio::test(flavor = "multi_thread")]
async fn scylla_registry_passes_conformance() {
    let nodes: Vec<String> = std::env::var("FC_SCYLLA_NODES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    if nodes.is_empty() {
        eprintln!("SKIPPED: ScyllaDB registry conformance suite (set FC_SCYLLA_NODES=host:9042 to run it)");
        return;
    }
    let keyspace = std::env::var("FC_SCYLLA_KEYSPACE").ok().filter(|k| !k.trim().is_empty()).unwrap_or_else(|| "factorychain".into());
    let run = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos().to_string();
    let kv = ScyllaKv::connect(&nodes, &keyspace, 1).await.unwrap_or_else(|e| panic!("connect to ScyllaDB {nodes:?}: {e}"));
    fc_registry::conformance::kv_suite(&kv, &run);
    let r = Registry::with_backend(Box::new(kv));
    fc_registry::conformance::registry_suite(&r, &run);
}
