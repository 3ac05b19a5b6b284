//! Nothing acknowledged is lost: `factorychain up` is killed (SIGKILL, no
//! graceful shutdown) while a device streams; after a restart the device
//! re-sends what was not acknowledged, and every reading is stored exactly once.

use fc_proto::v1::{AckStatus, CreateDeviceRequest, CreateTenantRequest, RangeRequest, ReadingBatch, SeriesKey, SeriesReadings};
use fc_proto::v1::{admin_client::AdminClient, ingest_client::IngestClient, query_client::QueryClient};
use fc_testkit::{NatsServer, bearer, wait_until};
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tonic::transport::Channel;

const BATCHES: u64 = 3000;
const PER_BATCH: usize = 100;

struct Service {
    child: Child,
    grpc: String,
}

const ADMIN_TOKEN: &str = "test-admin-token-of-at-least-32-characters";

/// `factorychain up` with every listener on port 0; the gRPC address is read
/// from what `up` prints, so a second test run (or `make run`) never collides.
fn start(nats: &NatsServer, data: &std::path::Path) -> Service {
    let mut child = Command::new(env!("CARGO_BIN_EXE_factorychain"))
        .arg("up")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FC_DATA_DIR", data)
        .env("FC_BUS__URL", &nats.url)
        .env("FC_GRPC_ADDR", "127.0.0.1:0")
        .env("FC_HTTP_ADDR", "127.0.0.1:0")
        .env("FC_PORTAL__LISTEN_ADDR", "127.0.0.1:0")
        .env("FC_SETTLEMENT__GRPC_ADDR", "127.0.0.1:0")
        .env("FC_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("FC_WRITER__ACK_WAIT_MS", "3000")
        .env("FC_LOG", if std::env::var("TEST_LOG").is_ok() { "info" } else { "warn" })
        .stdout(Stdio::piped())
        .stderr(if std::env::var("TEST_LOG").is_ok() { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .expect("spawn factorychain up");
    let grpc = fc_testkit::printed_address(child.stdout.take().expect("piped stdout"), "gRPC (Ingest, Query, Admin):")
        .unwrap_or_else(|e| panic!("factorychain up: {e}"));
    Service { child, grpc }
}

async fn connect(url: &str) -> Channel {
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

fn batch(seq: u64, t0: i64) -> ReadingBatch {
    let base = t0 + (seq as i64) * PER_BATCH as i64;
    ReadingBatch {
        device_seq: seq,
        readings: vec![],
        series: vec![SeriesReadings {
            machine: "press-1".into(),
            metric: "force".into(),
            unit: "kN".into(),
            base_timestamp_ms: base,
            timestamp_deltas_ms: vec![1; PER_BATCH],
            values: (0..PER_BATCH).map(|i| (seq * 1000 + i as u64) as f64).collect(),
            qualities: vec![],
        }],
    }
}

/// Stream `seqs`; return the acked ones. When `kill` is given, SIGKILL it after `kill_after` acks.
async fn stream(grpc: &str, token: &str, seqs: Vec<u64>, t0: i64, mut kill: Option<(&mut Child, usize)>) -> BTreeSet<u64> {
    let mut client = IngestClient::with_interceptor(connect(grpc).await, bearer(token).unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        for s in seqs {
            if tx.send(batch(s, t0)).await.is_err() {
                return;
            }
        }
    });
    let mut acked = BTreeSet::new();
    let Ok(resp) = client.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await else { return acked };
    let mut acks = resp.into_inner();
    loop {
        match acks.message().await {
            Ok(Some(a)) => {
                // Over the plan's rate: not acked; the device sends it again later.
                if a.status == AckStatus::ResourceExhausted as i32 {
                    continue;
                }
                assert!(a.status == AckStatus::Ok as i32 || a.status == AckStatus::Duplicate as i32, "{a:?}");
                acked.insert(a.device_seq);
                if let Some((child, after)) = kill.as_mut()
                    && acked.len() >= *after
                {
                    child.kill().expect("kill"); // SIGKILL: no graceful shutdown, no flush
                    child.wait().unwrap();
                    kill = None;
                }
            }
            Ok(None) | Err(_) => return acked,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_readings_survive_a_kill_and_resends_are_stored_once() {
    let nats = NatsServer::start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut svc = start(&nats, data.path());

    let admin_channel = connect(&svc.grpc).await;
    let mut admin = AdminClient::with_interceptor(admin_channel, bearer(ADMIN_TOKEN).unwrap());
    let tenant =
        admin.create_tenant(CreateTenantRequest { name: "Crash Test Steel".into(), plan: "enterprise".into() }).await.unwrap().into_inner();
    let device = admin.create_device(CreateDeviceRequest { tenant_id: tenant.id.clone(), name: "gw".into() }).await.unwrap().into_inner();
    let token = device.token;
    let t0 = fc_core::time::now_ms() - 3_600_000;

    // Phase 1: stream everything, kill the service half-way.
    let acked_before = stream(&svc.grpc, &token, (1..=BATCHES).collect(), t0, Some((&mut svc.child, 300))).await;
    assert!(acked_before.len() >= 300 && acked_before.len() < BATCHES as usize, "kill landed mid-stream: {} acked", acked_before.len());

    // Phase 2: restart on the same data; the device re-sends everything not acknowledged.
    let mut svc = start(&nats, data.path());
    let mut acked = acked_before.clone();
    for _round in 0..200 {
        let rest: Vec<u64> = (1..=BATCHES).filter(|s| !acked.contains(s)).collect();
        if rest.is_empty() {
            break;
        }
        acked.extend(stream(&svc.grpc, &token, rest, t0, None).await);
        tokio::time::sleep(Duration::from_millis(250)).await; // back off as a device should
    }
    assert_eq!(acked.len(), BATCHES as usize, "every batch is eventually acked");
    // Re-send some already-acked batches too: duplicates must not be stored twice.
    tokio::time::sleep(Duration::from_millis(1100)).await; // let the device's rate bucket refill
    let again = stream(&svc.grpc, &token, acked_before.iter().take(20).copied().collect(), t0, None).await;
    assert_eq!(again.len(), 20);

    // Every reading is stored exactly once, with its value.
    let mut query = QueryClient::with_interceptor(connect(&svc.grpc).await, bearer(&token).unwrap()).max_decoding_message_size(64 << 20);
    let req = RangeRequest {
        series: Some(SeriesKey { machine: "press-1".into(), metric: "force".into() }),
        start_ms: t0,
        end_ms: t0 + (BATCHES as i64 + 2) * PER_BATCH as i64,
        limit: 1_000_000,
        ..Default::default()
    };
    let expected = BATCHES as usize * PER_BATCH;
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let waited = wait_until(Duration::from_secs(60), "every reading to be stored", || {
        let (mut q, req, count) = (query.clone(), req.clone(), count.clone());
        async move {
            let n = q.range(req).await.map(|r| r.into_inner().readings.len()).unwrap_or(0);
            count.store(n, std::sync::atomic::Ordering::SeqCst);
            n >= expected
        }
    })
    .await;
    if let Err(e) = waited {
        panic!("{e}: {} of {expected} readings stored", count.load(std::sync::atomic::Ordering::SeqCst));
    }
    let readings = query.range(req).await.unwrap().into_inner().readings;
    assert_eq!(readings.len(), expected, "no reading lost, none stored twice");
    for (i, r) in readings.iter().enumerate() {
        let seq = 1 + (i / PER_BATCH) as u64;
        let j = (i % PER_BATCH) as u64;
        assert_eq!(r.timestamp_ms, t0 + (seq as i64) * PER_BATCH as i64 + j as i64 + 1);
        assert_eq!(r.value, (seq * 1000 + j) as f64);
    }
    svc.child.kill().unwrap();
    svc.child.wait().unwrap();
}
