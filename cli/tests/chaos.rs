//! Chaos: the parts a device's readings pass through fail mid-stream, for
//! real, and afterwards every acknowledged reading is stored exactly once.
//!
//! - nats-server is killed with SIGKILL and restarted on the same store;
//! - the data directory's disk fills up (a small tmpfs: ENOSPC), then frees up.
//!
//! `factorychain up` killed mid-stream is `no_loss.rs`; a cluster node (the
//! stream leader) killed is `services/ingest/tests/cluster.rs`. The store writer
//! runs inside the ingest process, so killing it is killing the service.
//! `make test` runs these at scale 1; `make chaos` at `FC_CHAOS_SCALE=5`.

mod common;

use common::{assert_stored_once, device_token, resend_until_acked, scale, start, stream};
use fc_testkit::NatsServer;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_killed_and_restarted_mid_stream_loses_no_acked_reading() {
    let batches = 1000 * scale();
    let nats = Arc::new(tokio::sync::Mutex::new(NatsServer::start().await.unwrap()));
    let url = nats.lock().await.url.clone();
    let data = tempfile::tempdir().unwrap();
    let svc = start(&url, data.path(), &[]);
    let token = device_token(&svc.admin).await;
    let t0 = fc_core::time::now_ms() - 3_600_000;

    // Kill nats-server after a quarter of the batches are acked; bring it back 2 s later.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = Mutex::new(Some(tx));
    let restarter = {
        let nats = nats.clone();
        tokio::spawn(async move {
            if rx.await.is_err() {
                return;
            }
            let mut n = nats.lock().await;
            n.kill();
            tokio::time::sleep(Duration::from_secs(2)).await;
            n.restart().await.expect("nats-server restarts on its store");
        })
    };
    let quarter = (batches / 4) as usize;
    let mut acked = stream(&svc.grpc, &token, (1..=batches).collect(), t0, |n| {
        if n == quarter
            && let Some(tx) = tx.lock().unwrap().take()
        {
            let _ = tx.send(());
        }
    })
    .await;
    restarter.await.unwrap();
    assert!(acked.len() >= quarter, "the kill came after {quarter} acks");
    resend_until_acked(&svc.grpc, &token, batches, t0, &mut acked).await;
    assert_stored_once(&svc.grpc, &token, batches, t0).await;
}

/// A tmpfs of `mb` MiB mounted on `dir` (needs root), unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, mb: u32) -> Option<Self> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_disk_stalls_the_writer_with_clear_errors_and_loses_nothing() {
    let batches = 600 * scale();
    let nats = NatsServer::start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(data.path(), 64) else {
        eprintln!("SKIPPED: the disk-full chaos test mounts a tmpfs and needs root (CI and `make test` run as root)");
        return;
    };
    let svc = start(&nats.url, data.path(), &[("FC_STORE__EMBEDDED__FLUSH_MAX_READINGS", "20000")]);
    let token = device_token(&svc.admin).await;
    let t0 = fc_core::time::now_ms() - 3_600_000;
    // Fill the disk, leaving almost nothing.
    let filler = data.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 1 << 20];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    // Devices are still acked (JetStream has room elsewhere); the store writer cannot write.
    let mut acked = stream(&svc.grpc, &token, (1..=batches).collect(), t0, |_| {}).await;
    resend_until_acked(&svc.grpc, &token, batches, t0, &mut acked).await;
    let mut svc = svc;
    assert!(svc.child.try_wait().unwrap().is_none(), "the service survives a full disk");
    // Space comes back: the writer catches up, every reading once.
    std::fs::remove_file(&filler).unwrap();
    assert_stored_once(&svc.grpc, &token, batches, t0).await;
    // And nothing on disk is corrupt: a restart reads the same.
    svc.kill();
    let svc = start(&nats.url, data.path(), &[]);
    assert_stored_once(&svc.grpc, &token, batches, t0).await;
}
