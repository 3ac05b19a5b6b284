//! Telemetry storage behind one trait, [`TelemetryStore`], with two backends
//! that pass the same [`conformance`] suite:
//!
//! - [`embedded::EmbeddedStore`] (default): a write-ahead log, an in-memory
//!   head and compressed column blocks per series, all in one redb file;
//! - [`scylla::ScyllaStore`]: ScyllaDB, partition `(tenant, series, day)`.
//!
//! Invariants:
//! - every key starts with the tenant id; no call reads across tenants;
//! - `write` returns only once the readings are durable;
//! - writes are idempotent per (tenant, series, timestamp): the same reading
//!   written twice is stored once, and a later value for a timestamp replaces
//!   the earlier one.

pub mod budget;
pub mod codec;
pub mod conformance;
pub mod embedded;
pub mod range;
pub mod scylla;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A series inside one tenant: a machine and one of its metrics.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Machine identifier.
    pub machine: String,
    /// Metric name.
    pub metric: String,
}

impl SeriesKey {
    /// Build a key.
    pub fn new(machine: impl Into<String>, metric: impl Into<String>) -> Self {
        Self { machine: machine.into(), metric: metric.into() }
    }
}

/// One stored reading of a series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Unix epoch milliseconds.
    pub ts_ms: i64,
    /// Finite value.
    pub value: f64,
    /// Quality class as in the proto enum (1 good, 2 uncertain, 3 bad).
    pub quality: u8,
}

/// Readings of one series to write.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesPoints {
    /// Which series.
    pub key: SeriesKey,
    /// Unit of the values; the latest write's unit is kept.
    pub unit: String,
    /// Readings in any order.
    pub points: Vec<Point>,
}

/// Everything one tenant writes in one call.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantBatch {
    /// Tenant id.
    pub tenant: String,
    /// Series with their readings.
    pub series: Vec<SeriesPoints>,
}

impl TenantBatch {
    /// Number of readings in the batch.
    pub fn len(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }
    /// Whether the batch holds no reading.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What is known about a series.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesInfo {
    /// Which series.
    pub key: SeriesKey,
    /// Unit as last written.
    pub unit: String,
}

/// Answer of a raw range read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RangeResult {
    /// Unit of the series; `None` when the series does not exist.
    pub unit: Option<String>,
    /// Readings in timestamp order, one per timestamp.
    pub points: Vec<Point>,
    /// True when `limit` cut the answer short.
    pub truncated: bool,
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (disk, network, database).
    #[error("storage backend: {0}")]
    Backend(String),
    /// Stored bytes could not be decoded.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The caller asked for something impossible.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl From<StoreError> for fc_core::ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => fc_core::ServiceError::new(fc_core::ErrorCode::InvalidArgument, m),
            StoreError::Backend(m) => fc_core::ServiceError::unavailable(format!("storage: {m}")),
            StoreError::Corrupt(m) => fc_core::ServiceError::internal(format!("storage corrupt: {m}")),
        }
    }
}

/// The telemetry store every service reads and writes through.
#[async_trait]
pub trait TelemetryStore: Send + Sync + 'static {
    /// Short backend name for logs ("embedded", "scylla").
    fn backend(&self) -> &'static str;

    /// Write readings; durable when this returns `Ok`. Idempotent per (tenant, series, timestamp).
    async fn write(&self, batches: Vec<TenantBatch>) -> Result<(), StoreError>;

    /// Readings of one series with `start_ms <= ts < end_ms`, at most `limit`.
    async fn range(&self, tenant: &str, key: &SeriesKey, start_ms: i64, end_ms: i64, limit: usize) -> Result<RangeResult, StoreError>;

    /// Latest reading of each of `keys` that exists (every series of the tenant when `keys` is empty).
    async fn latest(&self, tenant: &str, keys: &[SeriesKey]) -> Result<Vec<(SeriesInfo, Point)>, StoreError>;

    /// Series of the tenant in key order, optionally of one machine.
    async fn list_series(&self, tenant: &str, machine: Option<&str>) -> Result<Vec<SeriesInfo>, StoreError>;

    /// Drop each tenant's readings older than its cutoff, in one pass over the
    /// store (whole blocks or partitions; a block straddling the cutoff may be
    /// kept). Returns how many readings were dropped, when known.
    async fn purge_before(&self, cutoffs: &Cutoffs) -> Result<u64, StoreError>;

    /// Move buffered state into its final compressed form (no-op where there is none).
    async fn flush(&self) -> Result<(), StoreError>;

    /// Bytes the backend uses on local disk, when that is knowable.
    async fn disk_bytes(&self) -> Result<Option<u64>, StoreError>;

    /// Periodic housekeeping (the embedded backend flushes a due head); call about once a second.
    async fn maintain(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A shared handle to a store.
pub type DynStore = Arc<dyn TelemetryStore>;

/// Retention cutoffs (Unix ms) for one purge pass: per tenant, and for every
/// tenant not named.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cutoffs {
    /// Cutoff of each named tenant.
    pub per_tenant: std::collections::HashMap<String, i64>,
    /// Cutoff of tenants not named (`None`: keep their readings).
    pub others: Option<i64>,
}

impl Cutoffs {
    /// One cutoff for every tenant.
    pub fn all(cutoff_ms: i64) -> Self {
        Self { per_tenant: Default::default(), others: Some(cutoff_ms) }
    }

    /// The cutoff of `tenant`, if its readings age out at all.
    pub fn of(&self, tenant: &str) -> Option<i64> {
        self.per_tenant.get(tenant).copied().or(self.others)
    }
}

/// Which backend to open, and its settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// "embedded" (default) or "scylla".
    pub backend: String,
    /// Readings older than this many days are dropped (0 keeps everything).
    pub retention_days: u32,
    /// Settings of the embedded backend.
    pub embedded: embedded::EmbeddedConfig,
    /// Settings of the ScyllaDB backend.
    pub scylla: scylla::ScyllaConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: "embedded".into(),
            retention_days: 0,
            embedded: embedded::EmbeddedConfig::default(),
            scylla: scylla::ScyllaConfig::default(),
        }
    }
}

/// Open the configured backend. `data_dir` holds the embedded backend's files.
pub async fn open(cfg: &StoreConfig, data_dir: &std::path::Path) -> Result<DynStore, StoreError> {
    match cfg.backend.as_str() {
        "embedded" => Ok(Arc::new(embedded::EmbeddedStore::open(data_dir.join("telemetry.redb"), cfg.embedded.clone())?)),
        "scylla" => Ok(Arc::new(scylla::ScyllaStore::connect(&cfg.scylla).await?)),
        other => Err(StoreError::Invalid(format!("store.backend: unknown backend `{other}` (embedded, scylla)"))),
    }
}

/// Aggregate of one step bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Start of the bucket (multiple of the step from the epoch).
    pub start_ms: i64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sum of values (avg = sum / count).
    pub sum: f64,
    /// Number of readings.
    pub count: u64,
    /// Value of the latest reading.
    pub last: f64,
}

impl Bucket {
    /// Mean value.
    pub fn avg(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// Fold time-ordered points into step buckets aligned on the epoch; empty buckets are left out.
pub fn aggregate(points: &[Point], step_ms: i64) -> Vec<Bucket> {
    assert!(step_ms > 0, "step must be positive");
    let mut out: Vec<Bucket> = Vec::new();
    for p in points {
        let start = p.ts_ms.div_euclid(step_ms) * step_ms;
        match out.last_mut() {
            Some(b) if b.start_ms == start => {
                b.min = b.min.min(p.value);
                b.max = b.max.max(p.value);
                b.sum += p.value;
                b.count += 1;
                b.last = p.value;
            }
            _ => out.push(Bucket { start_ms: start, min: p.value, max: p.value, sum: p.value, count: 1, last: p.value }),
        }
    }
    out
}

/// Merge readings from several sources of different age: `ranked` holds
/// `(rank, point)` where a higher rank is newer. The result is sorted by
/// timestamp with one point per timestamp, the newest source winning.
pub fn merge_ranked(mut ranked: Vec<(u64, Point)>) -> Vec<Point> {
    ranked.sort_by(|a, b| a.1.ts_ms.cmp(&b.1.ts_ms).then(a.0.cmp(&b.0)));
    let mut out: Vec<Point> = Vec::with_capacity(ranked.len());
    for (_, p) in ranked {
        match out.last_mut() {
            Some(last) if last.ts_ms == p.ts_ms => *last = p,
            _ => out.push(p),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ts: i64, v: f64) -> Point {
        Point { ts_ms: ts, value: v, quality: 1 }
    }

    #[test]
    fn aggregate_buckets_align_to_epoch() {
        let pts = [p(0, 1.0), p(5, 3.0), p(10, 2.0), p(25, -1.0), p(29, 4.0)];
        let b = aggregate(&pts, 10);
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].start_ms, b[0].min, b[0].max, b[0].count, b[0].last), (0, 1.0, 3.0, 2, 3.0));
        assert_eq!(b[0].avg(), 2.0);
        assert_eq!((b[1].start_ms, b[1].count), (10, 1));
        assert_eq!((b[2].start_ms, b[2].min, b[2].max, b[2].last), (20, -1.0, 4.0, 4.0));
        // negative timestamps floor, not truncate
        assert_eq!(aggregate(&[p(-1, 1.0)], 10)[0].start_ms, -10);
    }

    #[test]
    fn merge_keeps_newest_source_per_timestamp() {
        let merged = merge_ranked(vec![(2, p(1, 20.0)), (1, p(1, 10.0)), (1, p(0, 0.0)), (3, p(2, 3.0))]);
        assert_eq!(merged, vec![p(0, 0.0), p(1, 20.0), p(2, 3.0)]);
    }
}
