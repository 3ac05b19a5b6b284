//! The ScyllaDB backend: readings partitioned by `(tenant, machine, metric, day)`.
//!
//! Schema (created with `IF NOT EXISTS` by [`ScyllaStore::connect`]):
//!
//! ```text
//! readings ((tenant, machine, metric, day int), ts bigint ASC) value double, quality tinyint
//!          TimeWindowCompactionStrategy, 1-day windows, default_time_to_live from the config
//! series   ((tenant), machine, metric) unit text,
//!          first_day int, last_day int, purged_day int,
//!          latest frozen<tuple<bigint, double, tinyint>>
//! ```
//!
//! `day` is `ts.div_euclid(86_400_000)`. A day partition holds at most one day
//! of one series, so partitions stay bounded and retention drops whole
//! partitions. The series table has one partition per tenant, clustered by
//! `(machine, metric)`, so `list_series` is one ordered partition read.
//!
//! Invariants:
//! - writes only ever INSERT `(partition, ts)` rows: writing a reading again
//!   overwrites it, and the driver's monotonic client timestamps make a later
//!   call win over an earlier one from the same process;
//! - `first_day` is at most, and `last_day` at least, the day of every reading
//!   ever written. Both are written *before* the readings they cover, so range
//!   reads that visit `[first_day, last_day]` never miss an acknowledged
//!   reading, even after a crash halfway through a write;
//! - every cell of the series row except `unit` carries a synthetic write
//!   timestamp so Scylla's last-write-wins merge computes the right value
//!   across processes without any read-before-write or lightweight transaction:
//!   `first_day` uses `BASE - day` (smallest day wins), `last_day` and
//!   `purged_day` use `BASE + day` (largest wins), and `latest` uses the
//!   reading's own time in microseconds (newest reading wins, not last write).
//!   `latest` is one tuple cell so a tie resolves to one whole reading rather
//!   than mixing columns of two; a tie (same timestamp written again with a
//!   different value) keeps whichever value Scylla's tie-break picks;
//! - series rows are never deleted: a row tombstone would shadow the synthetic
//!   timestamps (which lie in the past) forever;
//! - `purged_day` records that every day before it was deleted once, so each
//!   (series, day) partition is deleted at most once over the store's life
//!   instead of on every purge run. Readings written later into a day before
//!   `purged_day` stay visible but are not purged again; a table TTL bounds them.

use crate::{Cutoffs, Point, RangeResult, SeriesInfo, SeriesKey, SeriesPoints, StoreError, TelemetryStore, TenantBatch, merge_ranked};
use ::scylla::client::session::Session;
use ::scylla::client::session_builder::SessionBuilder;
use ::scylla::deserialize::row::DeserializeRow;
use ::scylla::errors::{NextPageError, NextRowError};
use ::scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use ::scylla::serialize::row::SerializeRow;
use ::scylla::statement::Consistency;
use ::scylla::statement::batch::{Batch, BatchStatement, BatchType};
use ::scylla::statement::prepared::PreparedStatement;
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt, future, stream};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

const DAY_MS: i64 = 86_400_000;
/// Most statements in one batch: large enough to amortise round trips, small
/// enough to stay far below Scylla's batch size warning.
const MAX_BATCH: usize = 100;
/// Batches in flight during one write.
const WRITE_CONCURRENCY: usize = 64;
/// Day partitions fetched ahead of the one being consumed by a range read.
const RANGE_PREFETCH_DAYS: usize = 4;
/// Point lookups in flight for `latest` with explicit keys.
const LATEST_CONCURRENCY: usize = 32;
/// Series purged at once, and partition deletes in flight per series.
const PURGE_SERIES_CONCURRENCY: usize = 8;
const PURGE_DELETES_PER_SERIES: usize = 8;
/// Base of the synthetic write timestamps of the day cells. Far below any real
/// clock (about 71 minutes after the epoch in microseconds), so no
/// future-timestamp guard can reject them, and `BASE ± day` stays positive for
/// every `i32` day.
const SYNTHETIC_TS_BASE: i64 = 1 << 32;
/// Scylla refuses TTLs above 20 years.
const MAX_TTL_DAYS: u32 = 7300;

/// Settings of the ScyllaDB backend.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScyllaConfig {
    /// Contact points as `host:port`; the driver discovers the rest of the cluster.
    pub nodes: Vec<String>,
    /// Keyspace holding the tables; created when missing.
    pub keyspace: String,
    /// Replication factor used when the keyspace is created (an existing keyspace is left as is).
    pub replication_factor: u32,
    /// Readings expire this many days after they were written (0: never).
    /// Applied when the readings table is created.
    pub default_ttl_days: u32,
}

impl Default for ScyllaConfig {
    fn default() -> Self {
        Self { nodes: vec!["127.0.0.1:9042".into()], keyspace: "factorychain".into(), replication_factor: 1, default_ttl_days: 0 }
    }
}

impl ScyllaConfig {
    /// Defaults with the contact points of a comma-separated list such as the
    /// value of `FC_SCYLLA_NODES` (`"10.0.0.1:9042, 10.0.0.2:9042"`).
    pub fn from_env_nodes(s: &str) -> Self {
        Self { nodes: s.split(',').map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect(), ..Self::default() }
    }

    fn validate(&self) -> Result<(), StoreError> {
        if self.nodes.is_empty() {
            return Err(StoreError::Invalid("store.scylla.nodes: at least one host:port is needed".into()));
        }
        // The keyspace name is spliced into CQL text, so only plain identifiers pass.
        let ks = self.keyspace.as_bytes();
        let plain =
            !ks.is_empty() && ks.len() <= 48 && ks[0].is_ascii_alphabetic() && ks.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
        if !plain {
            return Err(StoreError::Invalid(format!(
                "store.scylla.keyspace: `{}` must be 1-48 letters, digits or `_`, starting with a letter",
                self.keyspace
            )));
        }
        if self.replication_factor == 0 {
            return Err(StoreError::Invalid("store.scylla.replication_factor must be at least 1".into()));
        }
        if self.default_ttl_days > MAX_TTL_DAYS {
            return Err(StoreError::Invalid(format!("store.scylla.default_ttl_days must be at most {MAX_TTL_DAYS}")));
        }
        Ok(())
    }
}

/// Statements prepared once at connect.
struct Statements {
    insert_reading: PreparedStatement,
    select_readings: PreparedStatement,
    delete_day: PreparedStatement,
    set_unit: PreparedStatement,
    set_first_day: PreparedStatement,
    set_last_day: PreparedStatement,
    set_purged_day: PreparedStatement,
    set_latest: PreparedStatement,
    select_bounds: PreparedStatement,
    select_series: PreparedStatement,
    select_machine_series: PreparedStatement,
    select_latest_one: PreparedStatement,
    select_latest_all: PreparedStatement,
    scan_series: PreparedStatement,
}

/// What this process last stored for a series. Only used to skip writes that
/// the synthetic timestamps would turn into no-ops anyway (and unchanged units).
struct Known {
    unit: String,
    first_day: i32,
    last_day: i32,
    latest_ts: Option<i64>,
}

type SeriesId = (String, SeriesKey);
type BoxedRow = Box<dyn SerializeRow + Send + Sync>;
type ReadingRow<'a> = (&'a str, &'a str, &'a str, i32, i64, f64, i8);
type ScanRow = (String, String, String, Option<i32>, Option<i32>, Option<i32>);

/// The writes one series needs for one `write` call.
struct Plan {
    id: SeriesId,
    unit: String,
    /// Sorted by timestamp, one reading per timestamp (the last one given wins).
    points: Vec<Point>,
    first_day: i32,
    last_day: i32,
    set_unit: bool,
    set_first_day: bool,
    set_last_day: bool,
    set_latest: bool,
}

/// The ScyllaDB telemetry store. Holds one driver session (a connection pool
/// per node and shard), so keep one per process and share it.
pub struct ScyllaStore {
    session: Session,
    st: Statements,
    /// Full-size insert batch, reused because building one clones every statement.
    full_insert_batch: Batch,
    known: Mutex<HashMap<SeriesId, Known>>,
}

fn be<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn corrupt<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A failed page fetch is the cluster's fault; rows that do not fit the expected types are ours.
fn row_error(e: NextRowError) -> StoreError {
    match e {
        NextRowError::RowDeserializationError(_)
        | NextRowError::NextPageError(NextPageError::TypeCheckError(_) | NextPageError::ResultMetadataParseError(_)) => corrupt(e),
        _ => be(e),
    }
}

/// Day of a timestamp, saturated to the `int` column's range (only bounds of reads get there).
fn day_of(ts_ms: i64) -> i32 {
    ts_ms.div_euclid(DAY_MS).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

fn checked_day(ts_ms: i64) -> Result<i32, StoreError> {
    i32::try_from(ts_ms.div_euclid(DAY_MS)).map_err(|_| StoreError::Invalid(format!("timestamp {ts_ms} ms is out of range")))
}

fn point((ts_ms, value, quality): (i64, f64, i8)) -> Point {
    // tinyint is signed; the cast keeps the bits so every u8 round-trips.
    Point { ts_ms, value, quality: quality as u8 }
}

fn unlogged(statements: Vec<BatchStatement>) -> Batch {
    let mut b = Batch::new_with_statements(BatchType::Unlogged, statements);
    b.set_consistency(Consistency::LocalQuorum);
    b.set_is_idempotent(true);
    b
}

fn lock_known(m: &Mutex<HashMap<SeriesId, Known>>) -> std::sync::MutexGuard<'_, HashMap<SeriesId, Known>> {
    // The map only ever holds values that were stored, so it stays usable after a panic elsewhere.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ScyllaStore {
    /// Connect, create the keyspace and tables when missing, wait for schema
    /// agreement and prepare every statement.
    pub async fn connect(cfg: &ScyllaConfig) -> Result<ScyllaStore, StoreError> {
        cfg.validate()?;
        let session = SessionBuilder::new()
            .known_nodes(&cfg.nodes)
            // Client-side monotonic timestamps order rewrites of one reading by call order,
            // independent of coordinator clocks.
            .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
            .build()
            .await
            .map_err(|e| StoreError::Backend(format!("connect to {:?}: {e}", cfg.nodes)))?;
        let ks = &cfg.keyspace;
        let ttl_s = u64::from(cfg.default_ttl_days) * 86_400;
        let ddl = [
            format!(
                "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {{'class': 'NetworkTopologyStrategy', 'replication_factor': {}}}",
                cfg.replication_factor
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {ks}.readings (\
                 tenant text, machine text, metric text, day int, ts bigint, value double, quality tinyint, \
                 PRIMARY KEY ((tenant, machine, metric, day), ts)) \
                 WITH CLUSTERING ORDER BY (ts ASC) \
                 AND compaction = {{'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}} \
                 AND default_time_to_live = {ttl_s}"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {ks}.series (\
                 tenant text, machine text, metric text, unit text, \
                 first_day int, last_day int, purged_day int, latest frozen<tuple<bigint, double, tinyint>>, \
                 PRIMARY KEY ((tenant), machine, metric)) \
                 WITH CLUSTERING ORDER BY (machine ASC, metric ASC)"
            ),
        ];
        for cql in ddl {
            session.query_unpaged(cql.as_str(), ()).await.map_err(|e| StoreError::Backend(format!("{cql}: {e}")))?;
        }
        session.await_schema_agreement().await.map_err(|e| StoreError::Backend(format!("schema agreement: {e}")))?;

        let key = "WHERE tenant = ? AND machine = ? AND metric = ?";
        let st = Statements {
            insert_reading: prepare(
                &session,
                format!("INSERT INTO {ks}.readings (tenant, machine, metric, day, ts, value, quality) VALUES (?, ?, ?, ?, ?, ?, ?)"),
            )
            .await?,
            select_readings: prepare(
                &session,
                format!("SELECT ts, value, quality FROM {ks}.readings {key} AND day = ? AND ts >= ? AND ts < ? LIMIT ?"),
            )
            .await?,
            delete_day: prepare(&session, format!("DELETE FROM {ks}.readings {key} AND day = ?")).await?,
            set_unit: prepare(&session, format!("UPDATE {ks}.series SET unit = ? {key}")).await?,
            set_first_day: prepare(&session, format!("UPDATE {ks}.series USING TIMESTAMP ? SET first_day = ? {key}")).await?,
            set_last_day: prepare(&session, format!("UPDATE {ks}.series USING TIMESTAMP ? SET last_day = ? {key}")).await?,
            set_purged_day: prepare(&session, format!("UPDATE {ks}.series USING TIMESTAMP ? SET purged_day = ? {key}")).await?,
            set_latest: prepare(&session, format!("UPDATE {ks}.series USING TIMESTAMP ? SET latest = ? {key}")).await?,
            select_bounds: prepare(&session, format!("SELECT unit, first_day, last_day FROM {ks}.series {key}")).await?,
            select_series: prepare(&session, format!("SELECT machine, metric, unit FROM {ks}.series WHERE tenant = ?")).await?,
            select_machine_series: prepare(
                &session,
                format!("SELECT machine, metric, unit FROM {ks}.series WHERE tenant = ? AND machine = ?"),
            )
            .await?,
            select_latest_one: prepare(&session, format!("SELECT unit, latest FROM {ks}.series {key}")).await?,
            select_latest_all: prepare(&session, format!("SELECT machine, metric, unit, latest FROM {ks}.series WHERE tenant = ?")).await?,
            scan_series: prepare(&session, format!("SELECT tenant, machine, metric, first_day, last_day, purged_day FROM {ks}.series"))
                .await?,
        };
        let full_insert_batch = unlogged(vec![BatchStatement::PreparedStatement(st.insert_reading.clone()); MAX_BATCH]);
        tracing::info!(nodes = ?cfg.nodes, keyspace = %ks, "connected to ScyllaDB");
        Ok(ScyllaStore { session, st, full_insert_batch, known: Mutex::new(HashMap::new()) })
    }

    /// Merge the batches per series and decide which series-row cells need writing.
    fn plan(&self, batches: Vec<TenantBatch>) -> Result<Vec<Plan>, StoreError> {
        // Ranks grow in argument order so that, as in the embedded store, the
        // last reading given for a timestamp wins even inside one call (one
        // batch shares one write timestamp, which would leave ties to Scylla).
        let mut grouped: HashMap<SeriesId, (String, Vec<(u64, Point)>)> = HashMap::new();
        let mut rank = 0u64;
        for TenantBatch { tenant, series } in batches {
            for SeriesPoints { key, unit, points } in series {
                if points.is_empty() {
                    continue;
                }
                if tenant.is_empty() {
                    // Scylla refuses an empty single-column partition key (the series table's).
                    return Err(StoreError::Invalid("tenant id must not be empty".into()));
                }
                let entry = grouped.entry((tenant.clone(), key)).or_default();
                entry.0 = unit;
                entry.1.extend(points.into_iter().map(|p| {
                    rank += 1;
                    (rank, p)
                }));
            }
        }
        let known = lock_known(&self.known);
        let mut plans = Vec::with_capacity(grouped.len());
        for (id, (unit, ranked)) in grouped {
            let points = merge_ranked(ranked);
            let (Some(first), Some(last)) = (points.first(), points.last()) else { continue };
            let (first_day, last_day, newest_ts) = (checked_day(first.ts_ms)?, checked_day(last.ts_ms)?, last.ts_ms);
            let k = known.get(&id);
            plans.push(Plan {
                set_unit: k.is_none_or(|k| k.unit != unit),
                set_first_day: k.is_none_or(|k| first_day < k.first_day),
                set_last_day: k.is_none_or(|k| last_day > k.last_day),
                // Equal timestamps are written too: that is a rewrite of the newest reading.
                set_latest: k.and_then(|k| k.latest_ts).is_none_or(|t| newest_ts >= t),
                id,
                unit,
                points,
                first_day,
                last_day,
            });
        }
        Ok(plans)
    }

    /// Series-row updates that must land before the readings: the unit and the day bounds.
    fn bound_updates(&self, plans: &[Plan]) -> BTreeMap<String, Vec<(PreparedStatement, BoxedRow)>> {
        let mut by_tenant: BTreeMap<String, Vec<(PreparedStatement, BoxedRow)>> = BTreeMap::new();
        for p in plans {
            let (tenant, key) = &p.id;
            let (t, m, n) = (tenant.clone(), key.machine.clone(), key.metric.clone());
            let mut rows: Vec<(PreparedStatement, BoxedRow)> = Vec::new();
            if p.set_unit {
                rows.push((self.st.set_unit.clone(), Box::new((p.unit.clone(), t.clone(), m.clone(), n.clone()))));
            }
            if p.set_first_day {
                let ts = SYNTHETIC_TS_BASE - i64::from(p.first_day);
                rows.push((self.st.set_first_day.clone(), Box::new((ts, p.first_day, t.clone(), m.clone(), n.clone()))));
            }
            if p.set_last_day {
                let ts = SYNTHETIC_TS_BASE + i64::from(p.last_day);
                rows.push((self.st.set_last_day.clone(), Box::new((ts, p.last_day, t.clone(), m.clone(), n.clone()))));
            }
            if !rows.is_empty() {
                by_tenant.entry(t).or_default().extend(rows);
            }
        }
        by_tenant
    }

    /// `latest` updates, written once the readings are stored.
    fn latest_updates(&self, plans: &[Plan]) -> BTreeMap<String, Vec<(PreparedStatement, BoxedRow)>> {
        let mut by_tenant: BTreeMap<String, Vec<(PreparedStatement, BoxedRow)>> = BTreeMap::new();
        for p in plans.iter().filter(|p| p.set_latest) {
            let Some(newest) = p.points.last() else { continue };
            let (tenant, key) = &p.id;
            // The reading's own time as the write timestamp: Scylla then keeps the newest reading.
            let write_ts = newest.ts_ms.saturating_mul(1000).max(i64::MIN + 1);
            let latest = (newest.ts_ms, newest.value, newest.quality as i8);
            let row: BoxedRow = Box::new((write_ts, latest, tenant.clone(), key.machine.clone(), key.metric.clone()));
            by_tenant.entry(tenant.clone()).or_default().push((self.st.set_latest.clone(), row));
        }
        by_tenant
    }

    /// Run series-row updates as unlogged batches: all rows of a tenant share one
    /// partition, so each batch is a single mutation on one replica set.
    async fn run_series_updates(&self, by_tenant: BTreeMap<String, Vec<(PreparedStatement, BoxedRow)>>) -> Result<(), StoreError> {
        let mut jobs = Vec::new();
        for (_, mut updates) in by_tenant {
            while !updates.is_empty() {
                let rest = updates.split_off(updates.len().min(MAX_BATCH));
                let (statements, values): (Vec<_>, Vec<_>) = std::mem::replace(&mut updates, rest).into_iter().unzip();
                jobs.push(
                    self.run_batch(Cow::Owned(unlogged(statements.into_iter().map(BatchStatement::PreparedStatement).collect())), values),
                );
            }
        }
        stream::iter(jobs).buffer_unordered(WRITE_CONCURRENCY).try_for_each(|()| future::ready(Ok(()))).await
    }

    async fn run_batch<V: ::scylla::serialize::batch::BatchValues + Send>(
        &self,
        batch: Cow<'_, Batch>,
        values: V,
    ) -> Result<(), StoreError> {
        self.session.batch(&batch, values).await.map(drop).map_err(be)
    }

    /// Insert every reading, one unlogged batch per run of at most [`MAX_BATCH`]
    /// readings of one day partition; `Ok` only when every batch succeeded.
    async fn insert_readings(&self, plans: &[Plan]) -> Result<(), StoreError> {
        let mut jobs = Vec::new();
        for p in plans {
            let (tenant, key) = &p.id;
            for day_run in p.points.chunk_by(|a, b| day_of(a.ts_ms) == day_of(b.ts_ms)) {
                let day = day_of(day_run[0].ts_ms);
                for chunk in day_run.chunks(MAX_BATCH) {
                    let rows: Vec<ReadingRow<'_>> = chunk
                        .iter()
                        .map(|pt| (tenant.as_str(), key.machine.as_str(), key.metric.as_str(), day, pt.ts_ms, pt.value, pt.quality as i8))
                        .collect();
                    let batch = if chunk.len() == MAX_BATCH {
                        Cow::Borrowed(&self.full_insert_batch)
                    } else {
                        Cow::Owned(unlogged(vec![BatchStatement::PreparedStatement(self.st.insert_reading.clone()); chunk.len()]))
                    };
                    jobs.push(self.run_batch(batch, rows));
                }
            }
        }
        stream::iter(jobs).buffer_unordered(WRITE_CONCURRENCY).try_for_each(|()| future::ready(Ok(()))).await
    }

    /// All rows of a paged query, at most `cap`.
    async fn fetch_rows<R>(&self, statement: &PreparedStatement, values: impl SerializeRow + Send, cap: usize) -> Result<Vec<R>, StoreError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm> + Send,
    {
        let mut rows = self.session.execute_iter(statement.clone(), values).await.map_err(be)?.rows_stream::<R>().map_err(corrupt)?;
        let mut out = Vec::new();
        while out.len() < cap {
            match rows.next().await {
                Some(row) => out.push(row.map_err(row_error)?),
                None => break,
            }
        }
        Ok(out)
    }

    /// The single row a primary-key lookup returns, if any.
    async fn fetch_one<R>(&self, statement: &PreparedStatement, values: impl SerializeRow + Send) -> Result<Option<R>, StoreError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let result = self.session.execute_unpaged(statement, values).await.map_err(be)?;
        let rows = result.into_rows_result().map_err(corrupt)?;
        rows.maybe_first_row::<R>().map_err(corrupt)
    }

    async fn read_day(
        &self,
        tenant: &str,
        key: &SeriesKey,
        day: i32,
        start_ms: i64,
        end_ms: i64,
        limit: i32,
    ) -> Result<Vec<Point>, StoreError> {
        let values = (tenant, key.machine.as_str(), key.metric.as_str(), day, start_ms, end_ms, limit);
        let rows = self.fetch_rows::<(i64, f64, i8)>(&self.st.select_readings, values, usize::MAX).await?;
        Ok(rows.into_iter().map(point).collect())
    }

    async fn latest_of(&self, tenant: &str, key: &SeriesKey) -> Result<Option<(SeriesInfo, Point)>, StoreError> {
        let row = self
            .fetch_one::<(Option<String>, Option<(i64, f64, i8)>)>(
                &self.st.select_latest_one,
                (tenant, key.machine.as_str(), key.metric.as_str()),
            )
            .await?;
        Ok(row.and_then(|(unit, latest)| Some((SeriesInfo { key: key.clone(), unit: unit.unwrap_or_default() }, point(latest?)))))
    }

    /// Delete the day partitions of one series before `cutoff_day` not deleted by an earlier purge.
    async fn purge_series(&self, row: ScanRow, cutoff_day: i32) -> Result<(), StoreError> {
        let (tenant, machine, metric, first_day, last_day, purged_day) = row;
        let Some(first_day) = first_day else { return Ok(()) };
        let from = purged_day.map_or(first_day, |p| p.max(first_day));
        if from >= cutoff_day {
            return Ok(());
        }
        // Days after last_day hold nothing; they still count as purged below.
        let to = last_day.map_or(cutoff_day, |l| l.saturating_add(1).min(cutoff_day));
        let deletes: Vec<_> = (from..to)
            .map(|day| {
                let values = (tenant.as_str(), machine.as_str(), metric.as_str(), day);
                async move { self.session.execute_unpaged(&self.st.delete_day, values).await.map(drop).map_err(be) }
            })
            .collect();
        stream::iter(deletes).buffer_unordered(PURGE_DELETES_PER_SERIES).try_for_each(|()| future::ready(Ok(()))).await?;
        let ts = SYNTHETIC_TS_BASE + i64::from(cutoff_day);
        self.session
            .execute_unpaged(&self.st.set_purged_day, (ts, cutoff_day, tenant.as_str(), machine.as_str(), metric.as_str()))
            .await
            .map_err(be)?;
        Ok(())
    }
}

async fn prepare(session: &Session, cql: String) -> Result<PreparedStatement, StoreError> {
    let mut ps = session.prepare(cql.as_str()).await.map_err(|e| StoreError::Backend(format!("prepare `{cql}`: {e}")))?;
    // A quorum of replicas in the local datacenter acknowledges every write and
    // answers every read, so reads see every acknowledged write.
    ps.set_consistency(Consistency::LocalQuorum);
    // Every statement here can be replayed safely: inserts and updates write
    // fixed values, deletes drop fixed partitions, selects change nothing.
    ps.set_is_idempotent(true);
    Ok(ps)
}

#[async_trait]
impl TelemetryStore for ScyllaStore {
    fn backend(&self) -> &'static str {
        "scylla"
    }

    async fn write(&self, batches: Vec<TenantBatch>) -> Result<(), StoreError> {
        let plans = self.plan(batches)?;
        if plans.is_empty() {
            return Ok(());
        }
        // Bounds first: a reading stored outside [first_day, last_day] would be invisible.
        self.run_series_updates(self.bound_updates(&plans)).await?;
        {
            let mut known = lock_known(&self.known);
            for p in &plans {
                match known.get_mut(&p.id) {
                    Some(k) => {
                        k.unit.clone_from(&p.unit);
                        k.first_day = k.first_day.min(p.first_day);
                        k.last_day = k.last_day.max(p.last_day);
                    }
                    None => {
                        known.insert(
                            p.id.clone(),
                            Known { unit: p.unit.clone(), first_day: p.first_day, last_day: p.last_day, latest_ts: None },
                        );
                    }
                }
            }
        }
        self.insert_readings(&plans).await?;
        // Latest last, so it never names a reading that is not stored.
        self.run_series_updates(self.latest_updates(&plans)).await?;
        let mut known = lock_known(&self.known);
        for p in plans.iter().filter(|p| p.set_latest) {
            if let (Some(k), Some(newest)) = (known.get_mut(&p.id), p.points.last()) {
                k.latest_ts = Some(k.latest_ts.map_or(newest.ts_ms, |t| t.max(newest.ts_ms)));
            }
        }
        Ok(())
    }

    async fn range(&self, tenant: &str, key: &SeriesKey, start_ms: i64, end_ms: i64, limit: usize) -> Result<RangeResult, StoreError> {
        if end_ms <= start_ms {
            return Err(StoreError::Invalid("end must be after start".into()));
        }
        if tenant.is_empty() {
            return Ok(RangeResult::default());
        }
        let bounds = self
            .fetch_one::<(Option<String>, Option<i32>, Option<i32>)>(
                &self.st.select_bounds,
                (tenant, key.machine.as_str(), key.metric.as_str()),
            )
            .await?;
        let Some((unit, first_day, last_day)) = bounds else { return Ok(RangeResult::default()) };
        let unit = Some(unit.unwrap_or_default());
        let (Some(first_day), Some(last_day)) = (first_day, last_day) else {
            return Ok(RangeResult { unit, points: Vec::new(), truncated: false });
        };
        let (lo, hi) = (day_of(start_ms).max(first_day), day_of(end_ms - 1).min(last_day));
        // One more than `limit` tells whether the answer was cut short.
        let per_day = i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX);
        let mut days =
            stream::iter(lo..=hi).map(|day| self.read_day(tenant, key, day, start_ms, end_ms, per_day)).buffered(RANGE_PREFETCH_DAYS);
        let mut points = Vec::new();
        while let Some(day_points) = days.next().await {
            points.extend(day_points?);
            if points.len() > limit {
                break;
            }
        }
        let truncated = points.len() > limit;
        points.truncate(limit);
        Ok(RangeResult { unit, points, truncated })
    }

    async fn latest(&self, tenant: &str, keys: &[SeriesKey]) -> Result<Vec<(SeriesInfo, Point)>, StoreError> {
        if tenant.is_empty() {
            return Ok(Vec::new());
        }
        if keys.is_empty() {
            let rows = self
                .fetch_rows::<(String, String, Option<String>, Option<(i64, f64, i8)>)>(&self.st.select_latest_all, (tenant,), usize::MAX)
                .await?;
            return Ok(rows
                .into_iter()
                .filter_map(|(machine, metric, unit, latest)| {
                    Some((SeriesInfo { key: SeriesKey { machine, metric }, unit: unit.unwrap_or_default() }, point(latest?)))
                })
                .collect());
        }
        let lookups: Vec<_> = keys.iter().map(|k| self.latest_of(tenant, k)).collect();
        let found: Vec<_> = stream::iter(lookups).buffered(LATEST_CONCURRENCY).try_collect().await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn list_series(&self, tenant: &str, machine: Option<&str>) -> Result<Vec<SeriesInfo>, StoreError> {
        if tenant.is_empty() {
            return Ok(Vec::new());
        }
        let rows = match machine {
            Some(m) => self.fetch_rows::<(String, String, Option<String>)>(&self.st.select_machine_series, (tenant, m), usize::MAX).await?,
            None => self.fetch_rows::<(String, String, Option<String>)>(&self.st.select_series, (tenant,), usize::MAX).await?,
        };
        // Clustering order (machine, metric) compares UTF-8 bytes, as `SeriesKey`'s `Ord` does.
        Ok(rows
            .into_iter()
            .map(|(machine, metric, unit)| SeriesInfo { key: SeriesKey { machine, metric }, unit: unit.unwrap_or_default() })
            .collect())
    }

    /// Deletes whole day partitions before `cutoff_ms`'s day (a day straddling
    /// the cutoff is kept). Always returns 0: counting would mean reading every
    /// partition before deleting it.
    async fn purge_before(&self, cutoffs: &Cutoffs) -> Result<u64, StoreError> {
        let rows =
            self.session.execute_iter(self.st.scan_series.clone(), ()).await.map_err(be)?.rows_stream::<ScanRow>().map_err(corrupt)?;
        // One scan of the series table (a row per series, not per reading) serves every tenant's cutoff.
        rows.try_filter_map(|row| future::ready(Ok(cutoffs.of(&row.0).map(|cutoff| (row, day_of(cutoff))))))
            .map(|item| async move {
                let (row, cutoff_day) = item.map_err(row_error)?;
                self.purge_series(row, cutoff_day).await
            })
            .buffer_unordered(PURGE_SERIES_CONCURRENCY)
            .try_for_each(|()| future::ready(Ok(())))
            .await?;
        Ok(0)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every acknowledged write is already durable at quorum; nothing is buffered here.
        Ok(())
    }

    async fn disk_bytes(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_floor_and_saturate() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), 1);
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_of(i64::MAX), i32::MAX);
        assert_eq!(day_of(i64::MIN), i32::MIN);
        assert!(checked_day(i64::MAX).is_err());
        assert_eq!(checked_day(1_763_700_000_000).unwrap(), 20_413);
    }

    #[test]
    fn synthetic_timestamps_order_days_and_stay_positive() {
        for (a, b) in [(i32::MIN, -1), (-1, 0), (0, 20_413), (20_413, i32::MAX)] {
            let (a, b) = (i64::from(a), i64::from(b));
            assert!(SYNTHETIC_TS_BASE - a > SYNTHETIC_TS_BASE - b, "smaller first_day must win");
            assert!(SYNTHETIC_TS_BASE + b > SYNTHETIC_TS_BASE + a, "larger last_day must win");
            assert!(SYNTHETIC_TS_BASE + a > 0 && SYNTHETIC_TS_BASE - b > 0);
        }
    }

    #[test]
    fn config_defaults_env_nodes_and_validation() {
        let c = ScyllaConfig::from_env_nodes(" a:9042, ,b:9042 ");
        assert_eq!(c.nodes, vec!["a:9042".to_string(), "b:9042".to_string()]);
        assert_eq!((c.keyspace.as_str(), c.replication_factor, c.default_ttl_days), ("factorychain", 1, 0));
        assert!(c.validate().is_ok());
        assert!(ScyllaConfig { keyspace: "fc; DROP".into(), ..ScyllaConfig::default() }.validate().is_err());
        assert!(ScyllaConfig { keyspace: "1fc".into(), ..ScyllaConfig::default() }.validate().is_err());
        assert!(ScyllaConfig { nodes: Vec::new(), ..ScyllaConfig::default() }.validate().is_err());
        assert!(ScyllaConfig { replication_factor: 0, ..ScyllaConfig::default() }.validate().is_err());
        assert!(ScyllaConfig { default_ttl_days: MAX_TTL_DAYS + 1, ..ScyllaConfig::default() }.validate().is_err());
    }

    #[test]
    fn quality_round_trips_through_tinyint() {
        for q in 0..=u8::MAX {
            assert_eq!(point((0, 0.0, q as i8)).quality, q);
        }
    }
}
