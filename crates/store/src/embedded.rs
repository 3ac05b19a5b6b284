//! The embedded backend: one redb file, no server.
//!
//! Write path: a `write` appends one record to the write-ahead-log table and
//! commits (fsync) before it returns, then adds the readings to the in-memory
//! head (the memtable). A flush turns the head into compressed column blocks
//! ([`crate::codec`]) and deletes the log records it covered, in one commit.
//! Reads merge blocks and the head, newest source winning per timestamp.
//!
//! Invariants:
//! - a reading is in the log or in a block (or both) from the moment `write` returns;
//! - a block holds one series, sorted unique timestamps, at most
//!   [`MAX_BLOCK_POINTS`] readings spanning at most [`MAX_BLOCK_SPAN_MS`];
//! - a block's sequence number is larger than that of every block it may
//!   overlap with older data, so "higher sequence wins" resolves rewrites;
//! - block keys are `(tenant, series id, last timestamp, sequence)`: a read of
//!   `[a, b)` scans keys from `a` to `b + MAX_BLOCK_SPAN_MS`, so reading recent
//!   data never walks old blocks, whatever the span.

use crate::codec;
use crate::{Cutoffs, Point, RangeResult, SeriesInfo, SeriesKey, SeriesPoints, StoreError, TelemetryStore, TenantBatch, merge_ranked};
use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Most readings in one block.
pub const MAX_BLOCK_POINTS: usize = 8192;
/// Blocks smaller than this may be merged with newer readings of their series at flush (tiered).
pub const SMALL_BLOCK_POINTS: u32 = 2048;
/// Longest time a block covers: reads look this far past their end for blocks that may overlap.
pub const MAX_BLOCK_SPAN_MS: i64 = 31 * 86_400_000;

const BLOCKS: TableDefinition<(&str, u64, i64, u64), &[u8]> = TableDefinition::new("blocks_v1");
const WAL: TableDefinition<u64, &[u8]> = TableDefinition::new("wal");
const SERIES: TableDefinition<u64, &[u8]> = TableDefinition::new("series");
const LATEST: TableDefinition<u64, (i64, f64, u8)> = TableDefinition::new("latest");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const RANK_FLUSHING: u64 = u64::MAX - 1;
const RANK_ACTIVE: u64 = u64::MAX;

/// Settings of the embedded backend.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Flush the head into blocks once it holds this many readings.
    pub flush_max_readings: usize,
    /// ... or once its oldest reading arrived this long ago.
    pub flush_interval_ms: u64,
    /// Page cache of the database file.
    pub cache_mb: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self { flush_max_readings: 2_000_000, flush_interval_ms: 10_000, cache_mb: 256 }
    }
}

#[derive(Default)]
struct Memtable {
    series: HashMap<u64, Vec<Point>>,
    readings: usize,
    last_wal_seq: u64,
    started: Option<Instant>,
}

struct SeriesMeta {
    tenant: Arc<str>,
    key: SeriesKey,
    unit: String,
}

#[derive(Default)]
struct State {
    by_id: HashMap<u64, SeriesMeta>,
    by_key: HashMap<Arc<str>, BTreeMap<SeriesKey, u64>>,
    latest: HashMap<u64, Point>,
    active: Memtable,
    flushing: Option<Arc<Memtable>>,
    next_series_id: u64,
    next_block_seq: u64,
    next_wal_seq: u64,
}

struct Inner {
    /// The open file; it reopens itself after an I/O error, so the store recovers
    /// once the disk does, without a restart.
    db: fc_core::redbfile::RedbFile,
    path: PathBuf,
    cfg: EmbeddedConfig,
    /// Serialises writers and the head rotation of a flush.
    writer: Mutex<()>,
    /// Serialises flushes and purges.
    flusher: Mutex<()>,
    /// Admits range reads to the blocking pool a few at a time, first come first
    /// served: hundreds of concurrent readers on a few cores otherwise become
    /// hundreds of threads and an unfair, long-tailed queue.
    readers: tokio::sync::Semaphore,
    state: Mutex<State>,
    /// Blocks decoded by range reads since open (diagnostics: reads stop at their limit).
    blocks_decoded: AtomicU64,
}

/// The embedded telemetry store. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore(Arc<Inner>);

fn be<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl EmbeddedStore {
    /// Open (or create) the store file at `path` and replay its log.
    pub fn open(path: impl AsRef<Path>, cfg: EmbeddedConfig) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(format!("{}: {e}", dir.display())))?;
        }
        let db = fc_core::redbfile::RedbFile::open(&path, cfg.cache_mb.max(1) * 1024 * 1024).map_err(be)?;
        let txn = db.begin_write().map_err(be)?;
        {
            txn.open_table(BLOCKS).map_err(be)?;
            txn.open_table(WAL).map_err(be)?;
            txn.open_table(SERIES).map_err(be)?;
            txn.open_table(LATEST).map_err(be)?;
            txn.open_table(META).map_err(be)?;
        }
        txn.commit().map_err(be)?;

        let mut st = State { next_series_id: 1, next_block_seq: 1, next_wal_seq: 1, ..State::default() };
        let read = db.begin_read().map_err(be)?;
        for row in read.open_table(SERIES).map_err(be)?.iter().map_err(be)? {
            let (id, bytes) = row.map_err(be)?;
            let [tenant, machine, metric, unit] = codec::decode_series(bytes.value())?;
            let id = id.value();
            st.add_series(id, tenant.into(), SeriesKey { machine, metric }, unit);
            st.next_series_id = st.next_series_id.max(id + 1);
        }
        for row in read.open_table(LATEST).map_err(be)?.iter().map_err(be)? {
            let (id, v) = row.map_err(be)?;
            let (ts_ms, value, quality) = v.value();
            st.latest.insert(id.value(), Point { ts_ms, value, quality });
        }
        if let Some(v) = read.open_table(META).map_err(be)?.get("next_block_seq").map_err(be)? {
            st.next_block_seq = v.value();
        }
        let mut replayed = 0usize;
        for row in read.open_table(WAL).map_err(be)?.iter().map_err(be)? {
            let (seq, bytes) = row.map_err(be)?;
            let seq = seq.value();
            for (sid, points) in codec::decode_wal(bytes.value())? {
                replayed += points.len();
                st.apply(sid, points);
            }
            st.active.last_wal_seq = seq;
            st.next_wal_seq = seq + 1;
        }
        drop(read);
        if replayed > 0 {
            tracing::info!(readings = replayed, path = %path.display(), "replayed write-ahead log");
        }
        let readers = tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()) * 2);
        Ok(Self(Arc::new(Inner {
            db,
            path,
            cfg,
            writer: Mutex::new(()),
            flusher: Mutex::new(()),
            readers,
            state: Mutex::new(st),
            blocks_decoded: AtomicU64::new(0),
        })))
    }

    /// The open database.
    fn db(&self) -> Result<Arc<redb::Database>, StoreError> {
        self.0.db.db().map_err(be)
    }

    /// A write transaction; after an earlier I/O failure the file is reopened first.
    fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        self.0.db.begin_write().map_err(be)
    }

    /// Rewrite the file without free pages (the store must not be open elsewhere).
    pub fn compact_file(path: impl AsRef<Path>) -> Result<(), StoreError> {
        let mut db = redb::Database::open(path.as_ref()).map_err(be)?;
        while db.compact().map_err(be)? {}
        Ok(())
    }

    /// Number of stored blocks (all tenants), for tests and diagnostics.
    pub fn block_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        let read = self.db()?.begin_read().map_err(be)?;
        read.open_table(BLOCKS).map_err(be)?.len().map_err(be)
    }

    /// Blocks range reads have decoded since the store was opened.
    pub fn blocks_decoded(&self) -> u64 {
        self.0.blocks_decoded.load(Ordering::Relaxed)
    }

    /// Readings in the in-memory head (not yet in blocks).
    pub fn head_readings(&self) -> usize {
        let st = self.0.state.lock().expect("state lock");
        st.active.readings + st.flushing.as_ref().map_or(0, |m| m.readings)
    }

    fn write_blocking(&self, batches: Vec<TenantBatch>) -> Result<(), StoreError> {
        let inner = &*self.0;
        let _writer = inner.writer.lock().expect("writer lock");
        // Resolve series ids; new series are only published to the in-memory
        // maps after the commit that stores them.
        let mut entries: Vec<(u64, Vec<Point>)> = Vec::new();
        let mut new_series: Vec<(u64, Arc<str>, SeriesKey, String)> = Vec::new();
        let mut unit_changes: Vec<(u64, String)> = Vec::new();
        let (seq, mut next_id) = {
            let st = inner.state.lock().expect("state lock");
            (st.next_wal_seq, st.next_series_id)
        };
        {
            let st = inner.state.lock().expect("state lock");
            let mut pending: HashMap<(Arc<str>, SeriesKey), usize> = HashMap::new();
            for batch in batches {
                let tenant: Arc<str> = batch.tenant.into();
                for SeriesPoints { key, unit, points } in batch.series {
                    if points.is_empty() {
                        continue;
                    }
                    let known = st.by_key.get(&*tenant).and_then(|m| m.get(&key)).copied();
                    let id = match known {
                        Some(id) => {
                            if st.by_id.get(&id).is_some_and(|m| m.unit != unit)
                                && !unit_changes.iter().any(|(i, u)| *i == id && *u == unit)
                            {
                                unit_changes.push((id, unit.clone()));
                            }
                            id
                        }
                        None => match pending.get(&(tenant.clone(), key.clone())) {
                            Some(&i) => {
                                new_series[i].3 = unit.clone();
                                new_series[i].0
                            }
                            None => {
                                let id = next_id;
                                next_id += 1;
                                pending.insert((tenant.clone(), key.clone()), new_series.len());
                                new_series.push((id, tenant.clone(), key, unit));
                                id
                            }
                        },
                    };
                    entries.push((id, points));
                }
            }
        }
        if entries.is_empty() {
            return Ok(());
        }
        let refs: Vec<(u64, &[Point])> = entries.iter().map(|(s, p)| (*s, p.as_slice())).collect();
        let record = codec::encode_wal(&refs);
        let txn = self.begin_write()?;
        {
            txn.open_table(WAL).map_err(be)?.insert(seq, record.as_slice()).map_err(be)?;
            let mut series = txn.open_table(SERIES).map_err(be)?;
            for (id, tenant, key, unit) in &new_series {
                series.insert(id, codec::encode_series(tenant, &key.machine, &key.metric, unit).as_slice()).map_err(be)?;
            }
            if !unit_changes.is_empty() {
                let st = inner.state.lock().expect("state lock");
                for (id, unit) in &unit_changes {
                    let m = &st.by_id[id];
                    series.insert(id, codec::encode_series(&m.tenant, &m.key.machine, &m.key.metric, unit).as_slice()).map_err(be)?;
                }
            }
        }
        txn.commit().map_err(be)?;

        let mut st = inner.state.lock().expect("state lock");
        for (id, tenant, key, unit) in new_series {
            st.add_series(id, tenant, key, unit);
        }
        for (id, unit) in unit_changes {
            if let Some(m) = st.by_id.get_mut(&id) {
                m.unit = unit;
            }
        }
        st.next_series_id = next_id;
        st.next_wal_seq = seq + 1;
        st.active.last_wal_seq = seq;
        for (sid, points) in entries {
            st.apply(sid, points);
        }
        Ok(())
    }

    fn needs_flush(&self) -> bool {
        let st = self.0.state.lock().expect("state lock");
        st.flushing.is_some()
            || st.active.readings >= self.0.cfg.flush_max_readings
            || st.active.started.is_some_and(|t| t.elapsed().as_millis() as u64 >= self.0.cfg.flush_interval_ms)
    }

    fn flush_blocking(&self) -> Result<(), StoreError> {
        let inner = &*self.0;
        let _flusher = inner.flusher.lock().expect("flusher lock");
        // Rotate the head (or retry a head whose flush failed before).
        let head = {
            let _writer = inner.writer.lock().expect("writer lock");
            let mut st = inner.state.lock().expect("state lock");
            match &st.flushing {
                Some(m) => m.clone(),
                None => {
                    if st.active.readings == 0 {
                        return Ok(());
                    }
                    let m = Arc::new(std::mem::take(&mut st.active));
                    st.flushing = Some(m.clone());
                    m
                }
            }
        };
        let mut next_seq = inner.state.lock().expect("state lock").next_block_seq;
        let tenants: HashMap<u64, Arc<str>> = {
            let st = inner.state.lock().expect("state lock");
            head.series.keys().map(|sid| (*sid, st.by_id[sid].tenant.clone())).collect()
        };
        // Plan under a read transaction: decode what merges, encode the new blocks.
        // Only flushes (serialised by `flusher`) and purges (same lock) touch blocks,
        // so the plan is still valid when the short write transaction applies it, and
        // the writer's commits never wait behind the encoding.
        struct Plan {
            tenant: Arc<str>,
            sid: u64,
            remove: Vec<(i64, u64)>,
            insert: Vec<(i64, u64, Vec<u8>)>,
            newest: Point,
        }
        let mut plans = Vec::with_capacity(head.series.len());
        let mut carried: Vec<(u64, Vec<Point>)> = Vec::new();
        {
            let read = self.db()?.begin_read().map_err(be)?;
            let blocks = read.open_table(BLOCKS).map_err(be)?;
            for (sid, raw) in &head.series {
                // A series whose blocks cannot be read (a bad block, an I/O error) must not
                // hold back every other series: its readings stay in the log and the head,
                // and the next flush tries it again.
                let planned = (|| -> Result<Plan, StoreError> {
                    let tenant = &*tenants[sid];
                    let new = merge_ranked(raw.iter().map(|p| (RANK_ACTIVE, *p)).collect());
                    let (first, last) = (new[0].ts_ms, new[new.len() - 1].ts_ms);
                    // Tiered merge, like a binary counter: absorb the series' newest small blocks
                    // while each is at most twice the run built so far, so a reading is re-encoded
                    // O(log n) times on its way into a full block (not once per flush).
                    let mut merge_keys: Vec<(i64, u64)> = Vec::new();
                    let mut ranked: Vec<(u64, Point)> = Vec::new();
                    let (mut lo, mut hi, mut acc) = (first, last, new.len());
                    let mut absorbed = 0usize;
                    for row in blocks.range((tenant, *sid, i64::MIN, 0u64)..=(tenant, *sid, i64::MAX, u64::MAX)).map_err(be)?.rev().take(32)
                    {
                        let (_, v) = row.map_err(be)?;
                        let h = codec::header(v.value())?;
                        let (nlo, nhi) = (lo.min(h.min_ts), hi.max(h.max_ts));
                        if h.count >= SMALL_BLOCK_POINTS
                            || h.count as usize > acc * 2
                            || nhi - nlo > MAX_BLOCK_SPAN_MS
                            || acc + h.count as usize > MAX_BLOCK_POINTS
                        {
                            break;
                        }
                        (lo, hi, acc) = (nlo, nhi, acc + h.count as usize);
                        absorbed += 1;
                    }
                    if absorbed > 0 {
                        // Every block overlapping the merged range must join it, or an older value
                        // would come back with the merged block's newer sequence number.
                        let mut all_small = true;
                        let mut cands = Vec::new();
                        for row in blocks
                            .range((tenant, *sid, lo, 0u64)..=(tenant, *sid, hi.saturating_add(MAX_BLOCK_SPAN_MS), u64::MAX))
                            .map_err(be)?
                        {
                            let (k, v) = row.map_err(be)?;
                            let h = codec::header(v.value())?;
                            if h.min_ts > hi {
                                continue;
                            }
                            all_small &= h.count < SMALL_BLOCK_POINTS;
                            let (_, _, max_ts, seq) = k.value();
                            cands.push((max_ts, seq, codec::decode(v.value())?));
                        }
                        if all_small {
                            for (max_ts, seq, pts) in cands {
                                merge_keys.push((max_ts, seq));
                                ranked.extend(pts.into_iter().map(|p| (seq, p)));
                            }
                        }
                    }
                    let merged = if merge_keys.is_empty() {
                        new
                    } else {
                        ranked.extend(new.into_iter().map(|p| (RANK_ACTIVE, p)));
                        merge_ranked(ranked)
                    };
                    let mut insert = Vec::new();
                    for chunk in chunk_points(&merged) {
                        insert.push((chunk[chunk.len() - 1].ts_ms, next_seq, codec::encode(chunk)?));
                        next_seq += 1;
                    }
                    Ok(Plan { tenant: tenants[sid].clone(), sid: *sid, remove: merge_keys, insert, newest: merged[merged.len() - 1] })
                })();
                match planned {
                    Ok(plan) => plans.push(plan),
                    Err(e) => {
                        metrics::counter!("store_flush_series_failures_total").increment(1);
                        tracing::error!(error = %e, tenant = %tenants[sid], series_id = sid, "flushing a series failed; its readings stay in the log");
                        carried.push((*sid, raw.clone()));
                    }
                }
            }
        }
        let txn = self.begin_write()?;
        {
            let mut blocks = txn.open_table(BLOCKS).map_err(be)?;
            let mut latest = txn.open_table(LATEST).map_err(be)?;
            for plan in &plans {
                let tenant = &*plan.tenant;
                for &(max_ts, seq) in &plan.remove {
                    blocks.remove((tenant, plan.sid, max_ts, seq)).map_err(be)?;
                }
                for (max_ts, seq, bytes) in &plan.insert {
                    blocks.insert((tenant, plan.sid, *max_ts, *seq), bytes.as_slice()).map_err(be)?;
                }
                let replace = match latest.get(plan.sid).map_err(be)? {
                    Some(v) => v.value().0 <= plan.newest.ts_ms,
                    None => true,
                };
                if replace {
                    latest.insert(plan.sid, (plan.newest.ts_ms, plan.newest.value, plan.newest.quality)).map_err(be)?;
                }
            }
            let mut wal = txn.open_table(WAL).map_err(be)?;
            wal.retain_in(..=head.last_wal_seq, |_, _| false).map_err(be)?;
            if !carried.is_empty() {
                // The series that failed keep their readings in one log record under the
                // head's last sequence number: older than every record written since, so
                // a replay still applies them before newer writes.
                let refs: Vec<(u64, &[Point])> = carried.iter().map(|(sid, p)| (*sid, p.as_slice())).collect();
                wal.insert(head.last_wal_seq, codec::encode_wal(&refs).as_slice()).map_err(be)?;
            }
            txn.open_table(META).map_err(be)?.insert("next_block_seq", next_seq).map_err(be)?;
        }
        txn.commit().map_err(be)?;
        let mut st = inner.state.lock().expect("state lock");
        st.next_block_seq = next_seq;
        st.flushing = None;
        if !carried.is_empty() {
            // Back into the active head, before its newer readings of the same series.
            let active = &mut st.active;
            active.last_wal_seq = active.last_wal_seq.max(head.last_wal_seq);
            active.started.get_or_insert_with(Instant::now);
            for (sid, mut points) in carried {
                active.readings += points.len();
                points.extend(active.series.remove(&sid).unwrap_or_default());
                active.series.insert(sid, points);
            }
        }
        tracing::debug!(readings = head.readings, series = head.series.len(), "flushed head into blocks");
        Ok(())
    }

    fn range_blocking(&self, tenant: &str, key: &SeriesKey, start: i64, end: i64, limit: usize) -> Result<RangeResult, StoreError> {
        let inner = &*self.0;
        // Snapshot the head before opening the read transaction: a flush clears its
        // head only after its commit, so one of the two always holds every reading.
        let mut ranked: Vec<(u64, Point)> = Vec::new();
        let (sid, unit) = {
            let st = inner.state.lock().expect("state lock");
            let Some(&sid) = st.by_key.get(tenant).and_then(|m| m.get(key)) else {
                return Ok(RangeResult::default());
            };
            let in_range = |p: &&Point| p.ts_ms >= start && p.ts_ms < end;
            if let Some(m) = &st.flushing
                && let Some(pts) = m.series.get(&sid)
            {
                ranked.extend(pts.iter().filter(in_range).map(|p| (RANK_FLUSHING, *p)));
            }
            if let Some(pts) = st.active.series.get(&sid) {
                ranked.extend(pts.iter().filter(in_range).map(|p| (RANK_ACTIVE, *p)));
            }
            (sid, st.by_id[&sid].unit.clone())
        };
        // Blocks come in key order, by their last timestamp. Once `limit + 1`
        // readings are known, only blocks that may hold earlier ones are decoded,
        // and the scan ends at the first block that cannot: `limit=1` over all of
        // history decodes a block or two, not the whole series.
        let mut cutoff = end;
        let keep = limit.saturating_add(1);
        compact_ranked(&mut ranked, keep, &mut cutoff);
        let mut compacted = false;
        let read = self.db()?.begin_read().map_err(be)?;
        let blocks = read.open_table(BLOCKS).map_err(be)?;
        for row in blocks.range((tenant, sid, start, 0u64)..(tenant, sid, end.saturating_add(MAX_BLOCK_SPAN_MS), 0u64)).map_err(be)? {
            let (k, v) = row.map_err(be)?;
            let (_, _, max_ts, seq) = k.value();
            if max_ts.saturating_sub(MAX_BLOCK_SPAN_MS) >= cutoff {
                break; // this block and every later one start at or after the cutoff
            }
            if codec::header(v.value())?.min_ts >= cutoff {
                continue;
            }
            inner.blocks_decoded.fetch_add(1, Ordering::Relaxed);
            ranked.extend(codec::decode(v.value())?.into_iter().filter(|p| p.ts_ms >= start && p.ts_ms < cutoff).map(|p| (seq, p)));
            // The first time enough readings are known, cut at once (that sets the cutoff);
            // after that, only when the kept readings doubled, so sorting stays amortised.
            if ranked.len() >= keep && (!compacted || ranked.len() >= keep.saturating_mul(2)) {
                compact_ranked(&mut ranked, keep, &mut cutoff);
                compacted = true;
            }
        }
        compact_ranked(&mut ranked, keep, &mut cutoff);
        let mut points: Vec<Point> = ranked.into_iter().map(|(_, p)| p).collect();
        let truncated = points.len() > limit;
        points.truncate(limit);
        Ok(RangeResult { unit: Some(unit), points, truncated })
    }

    fn purge_blocking(&self, cutoffs: &Cutoffs) -> Result<u64, StoreError> {
        let _flusher = self.0.flusher.lock().expect("flusher lock");
        let txn = self.begin_write()?;
        let mut dropped = 0u64;
        {
            let mut blocks = txn.open_table(BLOCKS).map_err(be)?;
            blocks
                .retain(|k, v| match codec::header(v) {
                    Ok(h) if cutoffs.of(k.0).is_some_and(|cutoff| h.max_ts < cutoff) => {
                        dropped += u64::from(h.count);
                        false
                    }
                    _ => true,
                })
                .map_err(be)?;
        }
        txn.commit().map_err(be)?;
        Ok(dropped)
    }
}

impl State {
    fn add_series(&mut self, id: u64, tenant: Arc<str>, key: SeriesKey, unit: String) {
        self.by_key.entry(tenant.clone()).or_default().insert(key.clone(), id);
        self.by_id.insert(id, SeriesMeta { tenant, key, unit });
    }

    fn apply(&mut self, sid: u64, points: Vec<Point>) {
        if let Some(newest) = points.iter().max_by_key(|p| p.ts_ms) {
            let e = self.latest.entry(sid).or_insert(*newest);
            if newest.ts_ms >= e.ts_ms {
                *e = *newest;
            }
        }
        self.active.readings += points.len();
        self.active.started.get_or_insert_with(Instant::now);
        self.active.series.entry(sid).or_default().extend(points);
    }
}

/// Sort `ranked` by time, keep the highest-ranked reading of each timestamp (with its
/// rank, so later sources still override it), and keep at most `keep` of them. When
/// that cut anything, `cutoff` becomes the first timestamp no longer wanted.
fn compact_ranked(ranked: &mut Vec<(u64, Point)>, keep: usize, cutoff: &mut i64) {
    ranked.sort_by(|a, b| a.1.ts_ms.cmp(&b.1.ts_ms).then(a.0.cmp(&b.0)));
    let mut out: Vec<(u64, Point)> = Vec::with_capacity(ranked.len().min(keep));
    for (rank, p) in ranked.drain(..) {
        if out.last().is_some_and(|last| last.1.ts_ms == p.ts_ms) {
            *out.last_mut().expect("checked") = (rank, p);
        } else if out.len() == keep {
            *cutoff = (*cutoff).min(p.ts_ms);
            break;
        } else {
            out.push((rank, p));
        }
    }
    *ranked = out;
}

/// Cut sorted points into runs that respect the block limits.
fn chunk_points(points: &[Point]) -> Vec<&[Point]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        let cut = i == points.len() || i - start >= MAX_BLOCK_POINTS || points[i].ts_ms - points[start].ts_ms > MAX_BLOCK_SPAN_MS;
        if cut {
            out.push(&points[start..i]);
            start = i;
        }
    }
    out
}

#[async_trait]
impl TelemetryStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn write(&self, batches: Vec<TenantBatch>) -> Result<(), StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_blocking(batches)).await.map_err(be)??;
        // The write is durable from here on: whatever happens to the flush below, the
        // caller must hear success, or it would write (and never ack) the same
        // readings again and again.
        if self.needs_flush() && self.0.state.lock().expect("state lock").active.readings >= self.0.cfg.flush_max_readings * 2 {
            // Back-pressure: the head grows faster than maintenance flushes it.
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %e, "back-pressure flush failed; the readings stay in the log");
            }
        }
        Ok(())
    }

    async fn range(&self, tenant: &str, key: &SeriesKey, start_ms: i64, end_ms: i64, limit: usize) -> Result<RangeResult, StoreError> {
        if end_ms <= start_ms {
            return Err(StoreError::Invalid("end must be after start".into()));
        }
        let _permit = self.0.readers.acquire().await.map_err(be)?;
        let (this, tenant, key) = (self.clone(), tenant.to_string(), key.clone());
        tokio::task::spawn_blocking(move || this.range_blocking(&tenant, &key, start_ms, end_ms, limit)).await.map_err(be)?
    }

    async fn latest(&self, tenant: &str, keys: &[SeriesKey]) -> Result<Vec<(SeriesInfo, Point)>, StoreError> {
        let st = self.0.state.lock().expect("state lock");
        let Some(series) = st.by_key.get(tenant) else { return Ok(Vec::new()) };
        let pick = |key: &SeriesKey, sid: u64| {
            st.latest.get(&sid).map(|p| (SeriesInfo { key: key.clone(), unit: st.by_id[&sid].unit.clone() }, *p))
        };
        Ok(if keys.is_empty() {
            series.iter().filter_map(|(k, &sid)| pick(k, sid)).collect()
        } else {
            keys.iter().filter_map(|k| series.get(k).and_then(|&sid| pick(k, sid))).collect()
        })
    }

    async fn list_series(&self, tenant: &str, machine: Option<&str>) -> Result<Vec<SeriesInfo>, StoreError> {
        let st = self.0.state.lock().expect("state lock");
        let Some(series) = st.by_key.get(tenant) else { return Ok(Vec::new()) };
        Ok(series
            .iter()
            .filter(|(k, _)| machine.is_none_or(|m| k.machine == m))
            .map(|(k, sid)| SeriesInfo { key: k.clone(), unit: st.by_id[sid].unit.clone() })
            .collect())
    }

    async fn purge_before(&self, cutoffs: &Cutoffs) -> Result<u64, StoreError> {
        self.flush().await?;
        let this = self.clone();
        let cutoffs = cutoffs.clone();
        tokio::task::spawn_blocking(move || this.purge_blocking(&cutoffs)).await.map_err(be)?
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let this = self.clone();
        let r = tokio::task::spawn_blocking(move || {
            // A failed earlier flush leaves its head in place: flush it, then the active one.
            this.flush_blocking()?;
            this.flush_blocking()
        })
        .await
        .map_err(be)?;
        if r.is_err() {
            metrics::counter!("store_flush_failures_total").increment(1);
        }
        r
    }

    async fn disk_bytes(&self) -> Result<Option<u64>, StoreError> {
        Ok(std::fs::metadata(&self.0.path).ok().map(|m| m.len()))
    }

    /// Flush when the head is due (by size or age).
    async fn maintain(&self) -> Result<(), StoreError> {
        if self.needs_flush() { self.flush().await } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

    fn batch(tenant: &str, metric: &str, pts: &[(i64, f64)]) -> Vec<TenantBatch> {
        vec![TenantBatch {
            tenant: tenant.into(),
            series: vec![SeriesPoints {
                key: SeriesKey::new("m1", metric),
                unit: "Cel".into(),
                points: pts.iter().map(|&(t, v)| Point { ts_ms: t, value: v, quality: 1 }).collect(),
            }],
        }]
    }

    #[test]
    fn chunks_respect_limits() {
        let pts: Vec<Point> = (0..20_000).map(|i| Point { ts_ms: i * 60_000, value: 0.0, quality: 1 }).collect();
        let chunks = chunk_points(&pts);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), pts.len());
        for c in chunks {
            assert!(c.len() <= MAX_BLOCK_POINTS);
            assert!(c[c.len() - 1].ts_ms - c[0].ts_ms <= MAX_BLOCK_SPAN_MS);
        }
    }

    fn points(n: usize, t0: i64, step: i64) -> Vec<(i64, f64)> {
        (0..n).map(|i| (t0 + i as i64 * step, i as f64)).collect()
    }

    #[tokio::test]
    async fn a_small_limit_decodes_a_few_blocks_not_all_of_history() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path().join("t.redb"), EmbeddedConfig::default()).unwrap();
        // 20 full-size blocks (too big to be merged), one day apart.
        for day in 0..20i64 {
            s.write(batch("t1", "temp", &points(3000, day * 86_400_000, 1000))).await.unwrap();
            s.flush().await.unwrap();
        }
        assert_eq!(s.block_count().unwrap(), 20);
        let key = SeriesKey::new("m1", "temp");
        let before = s.blocks_decoded();
        let r = s.range("t1", &key, i64::MIN, i64::MAX, 1).await.unwrap();
        assert_eq!((r.points.len(), r.points[0].ts_ms, r.truncated), (1, 0, true));
        assert!(s.blocks_decoded() - before <= 1, "limit=1 decoded {} blocks", s.blocks_decoded() - before);
        // A limit inside the third block stops there.
        let before = s.blocks_decoded();
        let r = s.range("t1", &key, 0, i64::MAX, 6500).await.unwrap();
        assert_eq!((r.points.len(), r.truncated), (6500, true));
        assert_eq!(r.points[6499].ts_ms, 2 * 86_400_000 + 499 * 1000);
        assert!(s.blocks_decoded() - before <= 3, "decoded {} blocks", s.blocks_decoded() - before);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]
        /// A range cut at `limit` equals the first `limit` readings of the whole
        /// range, whatever the rewrites across blocks and the head.
        #[test]
        fn a_limited_range_is_a_prefix_of_the_whole(
            rounds in proptest::collection::vec(proptest::collection::vec((0i64..5_000, -100i32..100), 1..400), 1..6),
            limit in 1usize..600,
            start in 0i64..2_000,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let s = EmbeddedStore::open(dir.path().join("t.redb"), EmbeddedConfig::default()).unwrap();
                for (i, round) in rounds.iter().enumerate() {
                    let mut pts: Vec<(i64, f64)> = round.iter().map(|&(t, v)| (t * 1000, f64::from(v))).collect();
                    pts.sort_by_key(|p| p.0);
                    pts.dedup_by_key(|p| p.0);
                    s.write(batch("t1", "temp", &pts)).await.unwrap();
                    if i + 1 < rounds.len() { s.flush().await.unwrap(); }
                }
                let key = SeriesKey::new("m1", "temp");
                let all = s.range("t1", &key, start * 1000, i64::MAX, usize::MAX - 1).await.unwrap();
                let cut = s.range("t1", &key, start * 1000, i64::MAX, limit).await.unwrap();
                let want: Vec<_> = all.points.iter().take(limit).map(|p| (p.ts_ms, p.value)).collect();
                assert_eq!(cut.points.iter().map(|p| (p.ts_ms, p.value)).collect::<Vec<_>>(), want);
                assert_eq!(cut.truncated, all.points.len() > limit);
            });
        }
    }

    #[tokio::test]
    async fn a_series_that_cannot_flush_holds_back_no_other_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let (a, b) = (SeriesKey::new("m1", "temp"), SeriesKey::new("m1", "press"));
        {
            let s = EmbeddedStore::open(&path, EmbeddedConfig { flush_max_readings: 4, ..Default::default() }).unwrap();
            s.write(batch("t1", "temp", &[(1, 1.0), (2, 2.0)])).await.unwrap();
            s.write(batch("t1", "press", &[(1, 10.0)])).await.unwrap();
            s.flush().await.unwrap();
            // Damage series a's only block.
            let sid = s.0.state.lock().unwrap().by_key["t1"][&a];
            let txn = s.begin_write().unwrap();
            {
                let mut blocks = txn.open_table(BLOCKS).unwrap();
                let keys: Vec<_> = blocks
                    .iter()
                    .unwrap()
                    .map(|r| {
                        let (k, _) = r.unwrap();
                        let (t, i, m, q) = k.value();
                        (t.to_string(), i, m, q)
                    })
                    .collect();
                let (t, i, m, q) = keys.into_iter().find(|k| k.1 == sid).unwrap();
                blocks.insert((t.as_str(), i, m, q), b"not a block".as_slice()).unwrap();
            }
            txn.commit().unwrap();
            // Writes still succeed, also those whose back-pressure flush fails.
            for t in 3..10 {
                s.write(batch("t1", "temp", &[(t, t as f64)])).await.unwrap();
                s.write(batch("t1", "press", &[(t, 10.0 * t as f64)])).await.unwrap();
            }
            s.flush().await.expect("the healthy series flushes");
            assert_eq!(s.head_readings(), 7, "only the damaged series' new readings stay in the head");
            let r = s.range("t1", &b, 0, 100, 100).await.unwrap();
            assert_eq!(r.points.len(), 8);
        }
        // Nothing acknowledged was lost: the damaged series' readings come back from the log.
        let s = EmbeddedStore::open(&path, EmbeddedConfig::default()).unwrap();
        assert_eq!(s.head_readings(), 7);
        let st = s.0.state.lock().unwrap();
        let sid = st.by_key["t1"][&a];
        let mut ts: Vec<i64> = st.active.series[&sid].iter().map(|p| p.ts_ms).collect();
        ts.sort();
        assert_eq!(ts, (3..10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn unflushed_log_survives_reopen_and_flush_merges_small_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let s = EmbeddedStore::open(&path, EmbeddedConfig::default()).unwrap();
            s.write(batch("t1", "temp", &[(1, 1.0), (2, 2.0)])).await.unwrap();
            s.flush().await.unwrap();
            s.write(batch("t1", "temp", &[(3, 3.0), (2, 20.0)])).await.unwrap();
            // dropped without flush: the second write lives only in the log
        }
        let s = EmbeddedStore::open(&path, EmbeddedConfig::default()).unwrap();
        assert_eq!(s.head_readings(), 2);
        let r = s.range("t1", &SeriesKey::new("m1", "temp"), 0, 10, 100).await.unwrap();
        assert_eq!(r.points.iter().map(|p| (p.ts_ms, p.value)).collect::<Vec<_>>(), vec![(1, 1.0), (2, 20.0), (3, 3.0)]);
        s.flush().await.unwrap();
        assert_eq!(s.head_readings(), 0);
        let read = s.db().unwrap().begin_read().unwrap();
        assert_eq!(read.open_table(BLOCKS).unwrap().len().unwrap(), 1, "small tail block merged");
        assert_eq!(read.open_table(WAL).unwrap().len().unwrap(), 0, "log truncated after flush");
        drop(read);
        let r = s.range("t1", &SeriesKey::new("m1", "temp"), 0, 10, 100).await.unwrap();
        assert_eq!(r.points.iter().map(|p| (p.ts_ms, p.value)).collect::<Vec<_>>(), vec![(1, 1.0), (2, 20.0), (3, 3.0)]);
    }
}
