//! Nothing acknowledged is lost: `factorychain up` is killed (SIGKILL, no
//! graceful shutdown) while a device streams; after a restart the device
//! re-sends what was not acknowledged, and every reading is stored exactly once.

mod common;

use common::{assert_stored_once, device_token, resend_until_acked, start, stream};
use fc_testkit::NatsServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_readings_survive_a_kill_and_resends_are_stored_once() {
    const BATCHES: u64 = 3000;
    let nats = NatsServer::start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let svc = std::sync::Arc::new(std::sync::Mutex::new(start(&nats.url, data.path(), &[])));
    let grpc = svc.lock().unwrap().grpc.clone();
    let admin = svc.lock().unwrap().admin.clone();
    let token = device_token(&admin).await;
    let t0 = fc_core::time::now_ms() - 3_600_000;

    // Phase 1: stream everything, kill the service after 300 acks.
    let killer = svc.clone();
    let acked_before = stream(&grpc, &token, (1..=3000).collect(), t0, move |n| {
        if n == 300 {
            killer.lock().unwrap().kill();
        }
    })
    .await;
    assert!(acked_before.len() >= 300 && acked_before.len() < BATCHES as usize, "kill landed mid-stream: {} acked", acked_before.len());

    // Phase 2: restart on the same data; the device re-sends everything not acknowledged.
    let svc = start(&nats.url, data.path(), &[]);
    let mut acked = acked_before.clone();
    resend_until_acked(&svc.grpc, &token, BATCHES, t0, &mut acked).await;
    // Re-send some already-acked batches too: duplicates must not be stored twice.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // let the device's rate bucket refill
    let again = stream(&svc.grpc, &token, acked_before.iter().take(20).copied().collect(), t0, |_| {}).await;
    assert_eq!(again.len(), 20);
    assert_stored_once(&svc.grpc, &token, BATCHES, t0).await;
}
