//! The shared conformance suite on the embedded backend, fresh and after a reopen.

use fc_store::embedded::{EmbeddedConfig, EmbeddedStore};
use fc_store::{SeriesKey, TelemetryStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_backend_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("t.redb"), EmbeddedConfig::default()).unwrap();
    if let Err(e) = fc_store::conformance::run_all(&store, "t_conf_").await {
        panic!("embedded conformance: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_backend_passes_conformance_with_tiny_heads() {
    // Flushing after every write exercises the block merge path on every check.
    let dir = tempfile::tempdir().unwrap();
    let cfg = EmbeddedConfig { flush_max_readings: 1, ..EmbeddedConfig::default() };
    let store = EmbeddedStore::open(dir.path().join("t.redb"), cfg).unwrap();
    let wrapped = FlushEveryWrite(store);
    if let Err(e) = fc_store::conformance::run_all(&wrapped, "t_tiny_").await {
        panic!("embedded conformance (flush every write): {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopen_with_and_without_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    {
        let s = EmbeddedStore::open(&path, EmbeddedConfig::default()).unwrap();
        fc_store::conformance::round_trip_is_exact(&s, "t_a").await.unwrap();
        s.flush().await.unwrap();
        fc_store::conformance::latest_and_list(&s, "t_b").await.unwrap();
    }
    let s = EmbeddedStore::open(&path, EmbeddedConfig::default()).unwrap();
    let r = s.range("t_a", &SeriesKey::new("press-1", "force"), i64::MIN / 2, i64::MAX / 2, 1_000_000).await.unwrap();
    assert_eq!(r.points.len(), 5000);
    assert_eq!(s.list_series("t_b", None).await.unwrap().len(), 2);
    let latest = s.latest("t_b", &[SeriesKey::new("m2", "b")]).await.unwrap();
    assert_eq!(latest[0].1.value, 3.0);
}

/// A store that flushes after every write.
struct FlushEveryWrite(EmbeddedStore);

#[async_trait::async_trait]
impl TelemetryStore for FlushEveryWrite {
    fn backend(&self) -> &'static str {
        "embedded-flush-every-write"
    }
    async fn write(&self, b: Vec<fc_store::TenantBatch>) -> Result<(), fc_store::StoreError> {
        self.0.write(b).await?;
        self.0.flush().await
    }
    async fn range(&self, t: &str, k: &SeriesKey, s: i64, e: i64, l: usize) -> Result<fc_store::RangeResult, fc_store::StoreError> {
        self.0.range(t, k, s, e, l).await
    }
    async fn latest(&self, t: &str, k: &[SeriesKey]) -> Result<Vec<(fc_store::SeriesInfo, fc_store::Point)>, fc_store::StoreError> {
        self.0.latest(t, k).await
    }
    async fn list_series(&self, t: &str, m: Option<&str>) -> Result<Vec<fc_store::SeriesInfo>, fc_store::StoreError> {
        self.0.list_series(t, m).await
    }
    async fn purge_before(&self, c: &fc_store::Cutoffs) -> Result<u64, fc_store::StoreError> {
        self.0.purge_before(c).await
    }
    async fn flush(&self) -> Result<(), fc_store::StoreError> {
        self.0.flush().await
    }
    async fn disk_bytes(&self) -> Result<Option<u64>, fc_store::StoreError> {
        self.0.disk_bytes().await
    }
}
