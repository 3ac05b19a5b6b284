//! The stored, verifiable settlement ledger: one append-only RFC 6962 /
//! RFC 9162 Merkle log per buyer's supply network, kept in one redb file, with
//! signed checkpoints (C2SP `tlog-checkpoint` in a `signed-note`) and proofs
//! any transparency-log client can check.
//!
//! A log is named by its buyer tenant id (its *log id*, 1 to 64 characters
//! of `[A-Za-z0-9_-]`); its checkpoint origin is `{origin_prefix}/{log id}`.
//! Hashing, proofs and notes are [`fc_ledger`]'s; this crate stores them.
//!
//! Code map:
//! - [`Ledger`]: the engine; `append` queues to the writer, reads run on redb
//!   MVCC snapshots and never wait for it.
//! - `writer`: the single writer thread, group-committing all logs' pending
//!   appends (and checkpoints) in one write transaction per round.
//! - `store`: tables and the [`fc_ledger::merkle::NodeStore`] adapters. Per
//!   log: `entries (log, index) -> bytes`, `nodes (log, index) -> the hashes
//!   of the complete subtrees that leaf's append completed` (its leaf hash
//!   first; one row per append keeps a round's inserts adjacent), `sizes log
//!   -> committed size`, `checkpoints log -> (size, latest signed note)`.
//! - [`proof`]: the proof structs clients receive (`factorychain verify`).
//! - [`audit`]: recomputation of a log from its entries up, for operators.
//!
//! Invariant: entries and nodes are written once and never changed: an index
//! is taken only by a committed round, and the writer refuses to overwrite a
//! row (and stops if the file and its memory ever disagree).
//!
//! Invariant: a checkpoint is signed only over a durable tree: its size is
//! read from a committed snapshot, never from the writer's memory.
//!
//! Invariant: `append` returns only after the redb commit (fsync, redb's
//! `Durability::Immediate`) that holds its entries, their nodes and the new
//! size.
//!
//! Invariant: proofs and roots take O(log n) reads: the hashes of complete
//! subtrees are stored, and any other subtree a proof needs folds from at most
//! 64 of them.
//!
//! Boundary: proofs serialise to exactly the JSON `factorychain verify`
//! reads; checkpoints are notes Go's `sumdb/note` and tlog tools read.

pub mod audit;
mod key;
pub mod proof;
mod store;
mod writer;

pub use audit::{AuditReport, Mismatch};
pub use proof::{ConsistencyProof, InclusionProof};

use fc_ledger::ProofError;
use fc_ledger::merkle::{Hash, Tree, leaf_hash};
use fc_ledger::note::{Checkpoint, Signer, Verifier, sign_note};
use redb::{ReadTransaction, ReadableDatabase, ReadableTable};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use store::{CHECKPOINTS, ENTRIES, NODES, ReadNodes, RecordingNodes, SIZES, WriterNodes};
use tokio::sync::{Semaphore, oneshot};
use writer::{Request, SignedCheckpoint, Writer};

/// Largest entry, in bytes.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;
/// Largest total size of the entries of one `append` call, in bytes.
pub const MAX_APPEND_BYTES: usize = 16 << 20;
/// Most entries one `entries` call returns.
pub const MAX_ENTRIES_PER_READ: u64 = 1000;
/// Longest log id.
pub const MAX_LOG_ID_CHARS: usize = 64;

/// Entry bytes queued for the writer at most; `append` waits beyond this.
const MAX_QUEUED_KIB: usize = 64 * 1024;
/// redb page cache of the ledger file.
const CACHE_BYTES: usize = 256 << 20;

/// Why a ledger call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Bad input: a log id, an entry, a range, a size pair.
    #[error("{0}")]
    Invalid(String),
    /// An entry or a tree size the log does not have (yet).
    #[error("{0}")]
    NotFound(String),
    /// The file failed or is damaged.
    #[error("ledger storage: {0}")]
    Storage(String),
    /// The ledger's writer is gone (the ledger is shutting down).
    #[error("the ledger is closed")]
    Closed,
}

impl From<LedgerError> for fc_core::ServiceError {
    fn from(e: LedgerError) -> Self {
        use fc_core::{ErrorCode, ServiceError};
        match e {
            LedgerError::Invalid(m) => ServiceError::new(ErrorCode::InvalidArgument, m),
            LedgerError::NotFound(m) => ServiceError::not_found(m),
            LedgerError::Storage(m) => ServiceError::internal(format!("ledger storage: {m}")),
            LedgerError::Closed => ServiceError::unavailable("the ledger is shutting down"),
        }
    }
}

fn storage<E: std::fmt::Display>(e: E) -> LedgerError {
    LedgerError::Storage(e.to_string())
}

/// Checks a log id: 1 to 64 characters of `[A-Za-z0-9_-]`.
fn check_log_id(log: &str) -> Result<(), LedgerError> {
    let valid = (1..=MAX_LOG_ID_CHARS).contains(&log.len()) && log.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(LedgerError::Invalid(format!(
            "log id {:?} must be 1 to {MAX_LOG_ID_CHARS} characters of A-Z a-z 0-9 _ -",
            log.chars().take(80).collect::<String>()
        )))
    }
}

/// An origin prefix is non-empty, without whitespace or control characters
/// (it becomes a note's first line and the signing key's name).
fn check_origin_prefix(prefix: &str) -> Result<(), LedgerError> {
    if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+') {
        return Err(LedgerError::Invalid(format!("origin prefix {prefix:?} must be non-empty, without spaces, control characters or '+'")));
    }
    Ok(())
}

/// The stored, verifiable ledger engine. Share it as `Arc<Ledger>`; dropping
/// the last one finishes the queued appends and stops the writer thread.
pub struct Ledger {
    db: Arc<fc_core::redbfile::RedbFile>,
    signer: Signer,
    verifier: Verifier,
    origin_prefix: String,
    /// To the writer thread (never blocks); `None` once dropping.
    queue: Option<std::sync::mpsc::Sender<Request>>,
    /// Bounds the entry bytes queued for the writer (in KiB).
    admission: Arc<Semaphore>,
    writer: Option<std::thread::JoinHandle<()>>,
    checkpoints_signed: Arc<AtomicU64>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("origin_prefix", &self.origin_prefix).field("signer", &self.signer).finish_non_exhaustive()
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and exit;
        // joining it releases the file before the caller may reopen it.
        self.queue.take();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the ledger writer thread panicked");
        }
    }
}

impl Ledger {
    /// Opens (or creates) the ledger file at `path` (redb). `signer` signs
    /// checkpoints; the origin of a log is `{origin_prefix}/{log}`, e.g.
    /// `factorychain.local/ledger/t_0123456789abcdef`.
    ///
    /// Reads each log's size and frontier (O(log n) reads per log) and starts
    /// the writer thread. A log whose frontier is damaged stays readable (and
    /// auditable); appends to it fail with [`LedgerError::Storage`].
    pub fn open(path: &Path, signer: Signer, origin_prefix: &str) -> Result<Arc<Ledger>, LedgerError> {
        check_origin_prefix(origin_prefix)?;
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| LedgerError::Storage(format!("{}: {e}", dir.display())))?;
        }
        // Reopened after an I/O error (a full disk), so appends resume when the disk does.
        let db = fc_core::redbfile::RedbFile::open(path, CACHE_BYTES).map_err(|e| LedgerError::Storage(e.to_string()))?;
        let txn = db.begin_write().map_err(storage)?;
        {
            txn.open_table(ENTRIES).map_err(storage)?;
            txn.open_table(NODES).map_err(storage)?;
            txn.open_table(SIZES).map_err(storage)?;
            txn.open_table(CHECKPOINTS).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        let (trees, damaged) = load_trees(&*db.db().map_err(storage)?)?;
        let db = Arc::new(db);
        let checkpoints_signed = Arc::new(AtomicU64::new(0));
        let (queue, rx) = std::sync::mpsc::channel();
        let writer = Writer::new(db.clone(), rx, trees, damaged, checkpoints_signed.clone());
        let writer = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| LedgerError::Storage(format!("cannot start the ledger writer: {e}")))?;
        Ok(Arc::new(Ledger {
            db,
            verifier: signer.verifier(),
            signer,
            origin_prefix: origin_prefix.to_owned(),
            queue: Some(queue),
            admission: Arc::new(Semaphore::new(MAX_QUEUED_KIB)),
            writer: Some(writer),
            checkpoints_signed,
        }))
    }

    /// Loads the checkpoint signer from `key_path` (conventionally
    /// `<data_dir>/ledger.key`: the note signer-key text, mode 0600), or
    /// generates a key named `name` there on first start. A stored key with
    /// another name is refused: the name is part of the log's identity.
    pub fn load_or_create_signer(key_path: &Path, name: &str) -> Result<Signer, LedgerError> {
        key::load_or_create(key_path, name)
    }

    /// Appends `entries` to `log` (created by its first append) and returns
    /// the index of the first. Returns after the commit that makes them
    /// durable.
    ///
    /// Concurrent calls, for all logs, are group-committed by the writer in
    /// one write transaction. Leaf hashes are computed here, on the caller's
    /// task. Each entry may hold up to [`MAX_ENTRY_BYTES`], a call up to
    /// [`MAX_APPEND_BYTES`]; otherwise [`LedgerError::Invalid`].
    ///
    /// Cancellation: once queued, the entries are appended even if this
    /// future is dropped.
    pub async fn append(&self, log: &str, entries: Vec<Vec<u8>>) -> Result<u64, LedgerError> {
        if fc_core::telemetry::traces_enabled() {
            let span = tracing::info_span!("ledger_append", log, entries = entries.len());
            return tracing::Instrument::instrument(self.append_inner(log, entries), span).await;
        }
        self.append_inner(log, entries).await
    }

    async fn append_inner(&self, log: &str, entries: Vec<Vec<u8>>) -> Result<u64, LedgerError> {
        check_log_id(log)?;
        if entries.is_empty() {
            return Err(LedgerError::Invalid(format!("append to log {log}: no entries")));
        }
        let mut bytes = 0usize;
        for (i, entry) in entries.iter().enumerate() {
            if entry.len() > MAX_ENTRY_BYTES {
                return Err(LedgerError::Invalid(format!(
                    "append to log {log}: entry {i} is {} bytes, the limit is {MAX_ENTRY_BYTES}",
                    entry.len()
                )));
            }
            bytes += entry.len();
        }
        if bytes > MAX_APPEND_BYTES {
            return Err(LedgerError::Invalid(format!("append to log {log}: {bytes} bytes in one call, the limit is {MAX_APPEND_BYTES}")));
        }
        let leaves: Vec<Hash> = entries.iter().map(|entry| leaf_hash(entry)).collect();
        let kib = u32::try_from((bytes / 1024 + 1).min(MAX_QUEUED_KIB)).unwrap_or(u32::MAX);
        let permit = self.admission.clone().acquire_many_owned(kib).await.map_err(|_| LedgerError::Closed)?;
        let (reply, answer) = oneshot::channel();
        let request = Request::Append { log: log.to_owned(), entries, leaves, reply, _permit: permit };
        self.queue.as_ref().ok_or(LedgerError::Closed)?.send(request).map_err(|_| LedgerError::Closed)?;
        answer.await.map_err(|_| LedgerError::Closed)?
    }

    /// The committed number of entries of `log`; 0 for an unknown log.
    pub fn size(&self, log: &str) -> Result<u64, LedgerError> {
        check_log_id(log)?;
        durable_size(&self.snapshot()?, log)
    }

    /// Every log with at least one entry, in id order.
    pub fn logs(&self) -> Result<Vec<String>, LedgerError> {
        let txn = self.snapshot()?;
        let sizes = txn.open_table(SIZES).map_err(storage)?;
        let mut logs = Vec::new();
        for row in sizes.iter().map_err(storage)? {
            let (log, _) = row.map_err(storage)?;
            logs.push(log.value().to_owned());
        }
        Ok(logs)
    }

    /// Entry `index` of `log`; [`LedgerError::NotFound`] when `index >= size`.
    pub fn entry(&self, log: &str, index: u64) -> Result<Vec<u8>, LedgerError> {
        check_log_id(log)?;
        let txn = self.snapshot()?;
        let size = durable_size(&txn, log)?;
        if index >= size {
            return Err(LedgerError::NotFound(format!("log {log} has {size} entries; there is no entry {index}")));
        }
        let entries = txn.open_table(ENTRIES).map_err(storage)?;
        let row = entries.get((log, index)).map_err(storage)?;
        row.map(|row| row.value().to_vec())
            .ok_or_else(|| LedgerError::Storage(format!("log {log}: entry {index} is missing below the size {size}")))
    }

    /// Entries `[start, end)` of `log`, at most [`MAX_ENTRIES_PER_READ`];
    /// [`LedgerError::NotFound`] when `end` is beyond the size.
    pub fn entries(&self, log: &str, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LedgerError> {
        check_log_id(log)?;
        if start > end {
            return Err(LedgerError::Invalid(format!("entries of log {log}: start {start} is after end {end}")));
        }
        if end - start > MAX_ENTRIES_PER_READ {
            return Err(LedgerError::Invalid(format!(
                "entries of log {log}: {} asked, at most {MAX_ENTRIES_PER_READ} per call",
                end - start
            )));
        }
        let txn = self.snapshot()?;
        let size = durable_size(&txn, log)?;
        if end > size {
            return Err(LedgerError::NotFound(format!("log {log} has {size} entries; cannot read up to {end}")));
        }
        let table = txn.open_table(ENTRIES).map_err(storage)?;
        let mut entries = Vec::with_capacity((end - start) as usize);
        for (expected, row) in (start..end).zip(table.range((log, start)..(log, end)).map_err(storage)?) {
            let (key, value) = row.map_err(storage)?;
            if key.value().1 != expected {
                return Err(LedgerError::Storage(format!("log {log}: entry {expected} is missing below the size {size}")));
            }
            entries.push(value.value().to_vec());
        }
        if entries.len() as u64 != end - start {
            let missing = start + entries.len() as u64;
            return Err(LedgerError::Storage(format!("log {log}: entry {missing} is missing below the size {size}")));
        }
        Ok(entries)
    }

    /// The root of `log`'s tree at `size` leaves (the empty root for 0).
    pub fn root_at(&self, log: &str, size: u64) -> Result<Hash, LedgerError> {
        check_log_id(log)?;
        let txn = self.snapshot()?;
        check_tree_size(&txn, log, size)?;
        with_tree(&txn, log, size, |tree| Ok(tree.root()))
    }

    /// Proof that entry `index` is in `log`'s tree of `size` leaves.
    pub fn inclusion_proof(&self, log: &str, index: u64, size: u64) -> Result<InclusionProof, LedgerError> {
        check_log_id(log)?;
        let txn = self.snapshot()?;
        check_tree_size(&txn, log, size)?;
        if index >= size {
            return Err(LedgerError::Invalid(format!("inclusion proof in log {log}: leaf index {index} is not in a tree of size {size}")));
        }
        with_tree(&txn, log, size, |tree| {
            Ok(InclusionProof {
                leaf_index: index,
                tree_size: size,
                leaf_hash: tree.leaf_hash_at(index)?,
                root_hash: tree.root(),
                hashes: tree.inclusion_proof(index, size)?,
            })
        })
    }

    /// Proof that `log`'s tree of `size2` leaves extends its tree of `size1`
    /// leaves (`0 < size1 <= size2`; equal sizes give an empty proof).
    pub fn consistency_proof(&self, log: &str, size1: u64, size2: u64) -> Result<ConsistencyProof, LedgerError> {
        check_log_id(log)?;
        if size1 > size2 {
            return Err(LedgerError::Invalid(format!("consistency proof in log {log}: old size {size1} is greater than new size {size2}")));
        }
        if size1 == 0 {
            return Err(LedgerError::Invalid(format!(
                "consistency proof in log {log}: old size must be at least 1 (every tree extends the empty tree; RFC 9162 defines no proof for it)"
            )));
        }
        let txn = self.snapshot()?;
        check_tree_size(&txn, log, size2)?;
        with_tree(&txn, log, size2, |tree| {
            Ok(ConsistencyProof {
                size1,
                size2,
                root1: tree.root_at(size1)?,
                root2: tree.root(),
                hashes: tree.consistency_proof(size1, size2)?,
            })
        })
    }

    /// The latest signed checkpoint note of `log` (`None` before the first).
    pub fn checkpoint(&self, log: &str) -> Result<Option<String>, LedgerError> {
        check_log_id(log)?;
        Ok(stored_checkpoint(&self.snapshot()?, log)?.map(|(_, note)| note))
    }

    /// Signs and stores a checkpoint of `log`'s committed size now and returns
    /// the note; returns the stored note when it already covers that size.
    /// [`LedgerError::NotFound`] for a log without entries.
    ///
    /// Blocks until the note is committed (one writer round): call it from a
    /// blocking context in async code.
    pub fn sign_checkpoint(&self, log: &str) -> Result<String, LedgerError> {
        check_log_id(log)?;
        let txn = self.snapshot()?;
        let size = durable_size(&txn, log)?;
        if size == 0 {
            return Err(LedgerError::NotFound(format!("log {log} has no entries to checkpoint")));
        }
        if let Some((signed, note)) = stored_checkpoint(&txn, log)?
            && signed >= size
        {
            return Ok(note);
        }
        let note = self.sign_at(&txn, log, size)?;
        drop(txn);
        self.store_checkpoints(vec![SignedCheckpoint { log: log.to_owned(), size, note: note.clone() }])?;
        Ok(note)
    }

    /// Every `interval` until `shutdown` fires, signs a checkpoint for each
    /// log that grew since its latest one (all in one commit); signs once more
    /// at the end, so the last appends are covered.
    pub async fn run_checkpointer(self: Arc<Self>, interval: Duration, shutdown: fc_core::Shutdown) {
        let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                _ = ticks.tick() => {}
            }
            self.clone().checkpoint_round().await;
        }
        self.checkpoint_round().await;
    }

    async fn checkpoint_round(self: Arc<Self>) {
        match tokio::task::spawn_blocking(move || self.checkpoint_grown_logs()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(signed)) => tracing::debug!(logs = signed, "signed ledger checkpoints"),
            Ok(Err(e)) => tracing::warn!(error = %e, "ledger checkpoint round failed"),
            Err(e) => tracing::error!(error = %e, "ledger checkpoint round panicked"),
        }
    }

    /// Signs a checkpoint of every log whose committed size passed its latest
    /// checkpoint's; returns how many were stored.
    fn checkpoint_grown_logs(&self) -> Result<usize, LedgerError> {
        let txn = self.snapshot()?;
        let mut grown = Vec::new();
        {
            let sizes = txn.open_table(SIZES).map_err(storage)?;
            let checkpoints = txn.open_table(CHECKPOINTS).map_err(storage)?;
            for row in sizes.iter().map_err(storage)? {
                let (log, size) = row.map_err(storage)?;
                let (log, size) = (log.value(), size.value());
                let signed = checkpoints.get(log).map_err(storage)?.map_or(0, |row| row.value().0);
                if size > signed {
                    grown.push((log.to_owned(), size));
                }
            }
        }
        if grown.is_empty() {
            return Ok(0);
        }
        // A log that cannot be signed (a damaged file) must not hold back the
        // checkpoints of the others.
        let notes: Vec<SignedCheckpoint> = grown
            .into_iter()
            .filter_map(|(log, size)| match self.sign_at(&txn, &log, size) {
                Ok(note) => Some(SignedCheckpoint { log, size, note }),
                Err(e) => {
                    tracing::warn!(log, size, error = %e, "cannot sign a ledger checkpoint");
                    None
                }
            })
            .collect();
        drop(txn);
        if notes.is_empty() {
            return Ok(0);
        }
        self.store_checkpoints(notes)
    }

    /// The verifier key (`name+id+key`) clients check checkpoints with.
    pub fn verifier_key(&self) -> String {
        self.verifier.verifier_key()
    }

    /// The checkpoint origin of `log`: `{origin_prefix}/{log}`.
    pub fn origin(&self, log: &str) -> String {
        format!("{}/{log}", self.origin_prefix)
    }

    /// Checkpoints this ledger stored since it was opened (for benchmarks and
    /// metrics).
    pub fn checkpoints_signed(&self) -> u64 {
        self.checkpoints_signed.load(Ordering::Relaxed)
    }

    /// Recomputes `log` from its stored entries up: every leaf hash, every
    /// node from its children, and the latest checkpoint's signature, origin
    /// and root. Reports the first mismatch (see [`Mismatch`]). Reads the
    /// whole log (O(n)); for operators and tests.
    pub fn audit(&self, log: &str) -> Result<AuditReport, LedgerError> {
        check_log_id(log)?;
        audit::audit(&self.snapshot()?, log, &self.verifier, &self.origin(log))
    }

    fn snapshot(&self) -> Result<ReadTransaction, LedgerError> {
        self.db.begin_read().map_err(storage)
    }

    /// Signs the checkpoint of `log` at committed `size` in snapshot `txn`.
    fn sign_at(&self, txn: &ReadTransaction, log: &str, size: u64) -> Result<String, LedgerError> {
        let root = with_tree(txn, log, size, |tree| Ok(tree.root()))?;
        let body = Checkpoint { origin: self.origin(log), size, root, extensions: Vec::new() }.to_body();
        sign_note(&body, &[&self.signer]).map_err(|e| LedgerError::Invalid(format!("checkpoint of log {log}: {e}")))
    }

    /// Has the writer store checkpoints (those newer than the stored ones)
    /// and waits for the commit.
    fn store_checkpoints(&self, notes: Vec<SignedCheckpoint>) -> Result<usize, LedgerError> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let queue = self.queue.as_ref().ok_or(LedgerError::Closed)?;
        queue.send(Request::Checkpoints { notes, reply }).map_err(|_| LedgerError::Closed)?;
        answer.recv().map_err(|_| LedgerError::Closed)?
    }
}

/// The committed size of `log` in `txn`.
fn durable_size(txn: &ReadTransaction, log: &str) -> Result<u64, LedgerError> {
    let sizes = txn.open_table(SIZES).map_err(storage)?;
    Ok(sizes.get(log).map_err(storage)?.map_or(0, |row| row.value()))
}

/// [`LedgerError::NotFound`] unless `log` has a tree of `size` in `txn`.
fn check_tree_size(txn: &ReadTransaction, log: &str, size: u64) -> Result<(), LedgerError> {
    let durable = durable_size(txn, log)?;
    if size > durable {
        return Err(LedgerError::NotFound(format!("log {log} has {durable} entries; there is no tree of size {size}")));
    }
    Ok(())
}

fn stored_checkpoint(txn: &ReadTransaction, log: &str) -> Result<Option<(u64, String)>, LedgerError> {
    let checkpoints = txn.open_table(CHECKPOINTS).map_err(storage)?;
    Ok(checkpoints.get(log).map_err(storage)?.map(|row| {
        let (size, note) = row.value();
        (size, note.to_owned())
    }))
}

/// Runs `f` on `log`'s tree of `size` leaves (`size` at most the committed
/// size) over the snapshot `txn`: O(log n) reads to open it, O(log n) per
/// proof.
fn with_tree<T>(
    txn: &ReadTransaction,
    log: &str,
    size: u64,
    f: impl FnOnce(&Tree<ReadNodes<'_>>) -> Result<T, ProofError>,
) -> Result<T, LedgerError> {
    let table = txn.open_table(NODES).map_err(storage)?;
    let error = RefCell::new(None);
    let result = Tree::open(ReadNodes::new(&table, log, &error), size).and_then(|tree| f(&tree));
    if let Some(e) = error.into_inner() {
        return Err(storage(e));
    }
    result.map_err(|e| match e {
        ProofError::MissingNode { .. } => LedgerError::Storage(format!("log {log}: {e}; the ledger file is damaged")),
        other => LedgerError::Invalid(format!("log {log}: {other}")),
    })
}

/// The writer's in-memory tree of each log.
type WriterTrees = HashMap<String, Tree<WriterNodes>>;
/// Logs that cannot be appended to, with why.
type DamagedLogs = HashMap<String, String>;

/// Each log's committed size and frontier, as the writer's in-memory trees,
/// and the logs whose frontier cannot be read (with why): those stay
/// readable and auditable, but the writer refuses to append to them.
pub(crate) fn load_trees(db: &redb::Database) -> Result<(WriterTrees, DamagedLogs), LedgerError> {
    let txn = db.begin_read().map_err(storage)?;
    let sizes = txn.open_table(SIZES).map_err(storage)?;
    let nodes = txn.open_table(NODES).map_err(storage)?;
    let (mut trees, mut damaged) = (HashMap::new(), HashMap::new());
    for row in sizes.iter().map_err(storage)? {
        let (log, size) = row.map_err(storage)?;
        let (log, size) = (log.value(), size.value());
        let error = RefCell::new(None);
        let recorder = RecordingNodes::new(ReadNodes::new(&nodes, log, &error));
        let opened = Tree::open(recorder, size);
        if let Some(e) = error.borrow_mut().take() {
            return Err(storage(e));
        }
        match opened.and_then(|tree| Tree::open(WriterNodes::new(tree.into_store().into_seen()), size)) {
            Ok(tree) => {
                trees.insert(log.to_owned(), tree);
            }
            Err(e) => {
                let why = format!("log {log} of size {size} is damaged ({e}); it is read-only until repaired, see its audit");
                tracing::error!(log, size, error = %e, "ledger log is damaged; refusing appends to it");
                damaged.insert(log.to_owned(), why);
            }
        }
    }
    Ok((trees, damaged))
}

#[cfg(test)]
mod tests;
