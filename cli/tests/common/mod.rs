//! What the process-level tests share: `factorychain up` as a child process on
//! port-0 listeners, a device that streams numbered batches and re-sends what
//! was not acknowledged, and the check that every acknowledged reading is
//! stored exactly once with its value.

#![allow(dead_code)] // each test binary uses its own part of this module

use fc_proto::v1::{AckStatus, CreateDeviceRequest, CreateTenantRequest, RangeRequest, ReadingBatch, SeriesKey, SeriesReadings};
use fc_proto::v1::{admin_client::AdminClient, ingest_client::IngestClient, query_client::QueryClient};
use fc_testkit::bearer;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tonic::transport::Channel;

/// Readings per batch.
pub const PER_BATCH: usize = 100;
/// The admin token the services are started with.
pub const ADMIN_TOKEN: &str = "test-admin-token-of-at-least-32-characters";

/// A running `factorychain up`.
pub struct Service {
    /// The process.
    pub child: Child,
    /// `http://<gRPC address>` of Ingest and Query, as `up` printed it.
    pub grpc: String,
    /// `http://<gRPC address>` of Admin (the portal's gRPC port).
    pub admin: String,
}

impl Service {
    /// SIGKILL: no graceful shutdown, no flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `factorychain up` on `nats_url` and `data`, every listener on port 0; the gRPC
/// address is read from what `up` prints, so no two runs (or `make run`) collide.
pub fn start(nats_url: &str, data: &Path, extra_env: &[(&str, &str)]) -> Service {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_factorychain"));
    cmd.arg("up")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FC_DATA_DIR", data)
        .env("FC_BUS__URL", nats_url)
        .env("FC_GRPC_ADDR", "127.0.0.1:0")
        .env("FC_HTTP_ADDR", "127.0.0.1:0")
        .env("FC_PORTAL__LISTEN_ADDR", "127.0.0.1:0")
        .env("FC_SETTLEMENT__GRPC_ADDR", "127.0.0.1:0")
        .env("FC_MONITOR__GRPC_ADDR", "127.0.0.1:0")
        .env("FC_PORTAL__GRPC_ADDR", "127.0.0.1:0")
        .env("FC_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("FC_WRITER__ACK_WAIT_MS", "3000")
        .env("FC_LOG", if std::env::var("TEST_LOG").is_ok() { "info" } else { "warn" })
        .stdout(Stdio::piped())
        .stderr(if std::env::var("TEST_LOG").is_ok() { Stdio::inherit() } else { Stdio::null() });
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn factorychain up");
    let stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let [grpc, admin] = fc_testkit::printed_addresses(stdout, ["gRPC (Ingest, Query):", "gRPC (Admin, Tenancy):"])
        .unwrap_or_else(|e| panic!("factorychain up: {e}"));
    Service { child, grpc, admin }
}

/// A channel to `url`, retrying while the service comes up.
pub async fn connect(url: &str) -> Channel {
    let mut last = None;
    for _ in 0..300 {
        match Channel::from_shared(url.to_string()).unwrap().connect().await {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("service did not come up: {last:?}");
}

/// A tenant on the enterprise plan with one device: its token.
pub async fn device_token(admin: &str) -> String {
    let mut admin = AdminClient::with_interceptor(connect(admin).await, bearer(ADMIN_TOKEN).unwrap());
    let tenant =
        admin.create_tenant(CreateTenantRequest { name: "Chaos Steel".into(), plan: "enterprise".into() }).await.unwrap().into_inner();
    admin.create_device(CreateDeviceRequest { tenant_id: tenant.id, name: "gw".into() }).await.unwrap().into_inner().token
}

/// Batch `seq`: readings 1 ms apart from `t0 + seq * PER_BATCH + 1`, values `seq * 1000 + i`.
pub fn batch(seq: u64, t0: i64) -> ReadingBatch {
    ReadingBatch {
        device_seq: seq,
        readings: vec![],
        series: vec![SeriesReadings {
            machine: "press-1".into(),
            metric: "force".into(),
            unit: "kN".into(),
            base_timestamp_ms: t0 + (seq as i64) * PER_BATCH as i64,
            timestamp_deltas_ms: vec![1; PER_BATCH],
            values: (0..PER_BATCH).map(|i| (seq * 1000 + i as u64) as f64).collect(),
            qualities: vec![],
        }],
    }
}

/// Stream `seqs` once; return the acknowledged ones (OK or DUPLICATE). Refusals
/// (quota, a bus that is down or full) are not acknowledged: a device sends them
/// again later. `on_ack` sees the count of acks so far after each one.
pub async fn stream(grpc: &str, token: &str, seqs: Vec<u64>, t0: i64, mut on_ack: impl FnMut(usize)) -> BTreeSet<u64> {
    let mut acked = BTreeSet::new();
    let Ok(channel) = Channel::from_shared(grpc.to_string()).unwrap().connect().await else { return acked };
    let mut client = IngestClient::with_interceptor(channel, bearer(token).unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        for s in seqs {
            if tx.send(batch(s, t0)).await.is_err() {
                return;
            }
        }
    });
    let Ok(resp) = client.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await else { return acked };
    let mut acks = resp.into_inner();
    while let Ok(Some(a)) = acks.message().await {
        if a.status == AckStatus::Ok as i32 || a.status == AckStatus::Duplicate as i32 {
            acked.insert(a.device_seq);
            on_ack(acked.len());
        } else {
            assert!(
                a.status == AckStatus::ResourceExhausted as i32 || a.status == AckStatus::Unavailable as i32,
                "only retryable refusals are expected: {a:?}"
            );
        }
    }
    acked
}

/// Re-send everything of `1..=batches` not yet in `acked` until all is acknowledged.
pub async fn resend_until_acked(grpc: &str, token: &str, batches: u64, t0: i64, acked: &mut BTreeSet<u64>) {
    for _round in 0..240 {
        let rest: Vec<u64> = (1..=batches).filter(|s| !acked.contains(s)).collect();
        if rest.is_empty() {
            return;
        }
        acked.extend(stream(grpc, token, rest, t0, |_| {}).await);
        tokio::time::sleep(Duration::from_millis(250)).await; // back off as a device should
    }
    panic!("{} of {batches} batches acknowledged after every retry", acked.len());
}

/// Every reading of `1..=batches` is stored exactly once, with its value.
pub async fn assert_stored_once(grpc: &str, token: &str, batches: u64, t0: i64) {
    let query = QueryClient::with_interceptor(connect(grpc).await, bearer(token).unwrap()).max_decoding_message_size(64 << 20);
    let req = RangeRequest {
        series: Some(SeriesKey { machine: "press-1".into(), metric: "force".into() }),
        start_ms: t0,
        end_ms: t0 + (batches as i64 + 2) * PER_BATCH as i64,
        limit: 1_000_000,
        ..Default::default()
    };
    fc_testkit::assert_stored_once(&query, req, batches as usize * PER_BATCH, |i| {
        let (seq, j) = (1 + (i / PER_BATCH) as u64, (i % PER_BATCH) as u64);
        (t0 + (seq as i64) * PER_BATCH as i64 + j as i64 + 1, (seq * 1000 + j) as f64)
    })
    .await
    .unwrap();
}

/// How much each chaos test does: 1 in `make test`, more in `make chaos` (`FC_CHAOS_SCALE`).
pub fn scale() -> u64 {
    std::env::var("FC_CHAOS_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1)
}
