//! The one writer: group commit of every log's appends and checkpoints.
//!
//! A dedicated thread takes the first queued request, then everything else
//! already queued (up to [`MAX_ROUND_ENTRIES`] / [`MAX_ROUND_BYTES`]), applies
//! it all in ONE redb write transaction and commits it (fsync) once; only then
//! does it answer the callers. One fsync per round instead of per append is
//! what makes tens of thousands of durable appends per second possible.
//!
//! Gathering: the callers a round answers are usually request handlers that
//! come back with their next append within microseconds, but only after the
//! writer has already started the next round. Left alone, rounds settle into
//! alternating between two halves of the callers, each append waiting for
//! one and a half commits. So the writer expects, for the next round, the
//! requests that queued during the commit (taken before answering, so they
//! are surely other callers) plus the callers it just answered, and waits
//! for them at most [`MAX_GATHER`] and half a commit: a short wait that fills
//! a round is far cheaper than another fsync. At low load nobody is expected
//! and nobody waits.
//!
//! Invariant: the in-memory tree of a log (size and frontier) equals the tree
//! of its committed rows between rounds. A round that fails before its commit
//! restores the trees it touched (nothing of it is durable). A log whose next
//! index is already stored (the file and memory disagree, e.g. a size row
//! restored from an older backup) is marked damaged and the round is tried
//! again without it: the other logs go on. A failed commit is ambiguous (the
//! data may or may not be on disk), so the writer refuses requests until it
//! has reopened the file and reloaded every tree from what is committed there
//! (tried again at each later request): reusing an index that might be taken
//! would change a written entry.

use crate::LedgerError;
use crate::store::{CHECKPOINTS, ENTRIES, NODES, SIZES, WriterNodes};
use fc_ledger::merkle::{Hash, Tree};
use redb::ReadableTable as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

/// Most entries one round commits.
pub(crate) const MAX_ROUND_ENTRIES: usize = 64 * 1024;
/// Most entry bytes one round commits.
pub(crate) const MAX_ROUND_BYTES: usize = 32 << 20;
/// Longest wait for the callers of the last round to come back.
pub(crate) const MAX_GATHER: Duration = Duration::from_micros(300);

/// A checkpoint signed over a committed tree size, to store.
pub(crate) struct SignedCheckpoint {
    pub(crate) log: String,
    pub(crate) size: u64,
    pub(crate) note: String,
}

/// Work for the writer.
pub(crate) enum Request {
    /// Append entries (with their leaf hashes, computed by the caller's task)
    /// and answer the index of the first.
    Append {
        log: String,
        entries: Vec<Vec<u8>>,
        leaves: Vec<Hash>,
        reply: oneshot::Sender<Result<u64, LedgerError>>,
        /// Queue admission, released once answered.
        _permit: OwnedSemaphorePermit,
    },
    /// Store checkpoints that are newer than the stored ones; answer how many
    /// were stored.
    Checkpoints { notes: Vec<SignedCheckpoint>, reply: std::sync::mpsc::SyncSender<Result<usize, LedgerError>> },
}

impl Request {
    fn weight(&self) -> (usize, usize) {
        match self {
            Request::Append { entries, .. } => (entries.len(), entries.iter().map(Vec::len).sum()),
            Request::Checkpoints { notes, .. } => (notes.len(), notes.iter().map(|n| n.note.len()).sum()),
        }
    }

    fn fail(self, error: LedgerError) {
        match self {
            Request::Append { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Request::Checkpoints { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// What a request got from a committed round.
enum Outcome {
    Appended(u64),
    CheckpointsStored(usize),
    Refused(LedgerError),
}

/// Why a round failed.
enum RoundError {
    /// Nothing of the round is durable: roll back and go on.
    BeforeCommit(LedgerError),
    /// Nothing is durable, but `log` disagrees with the file: mark it
    /// damaged and try the round again without it.
    Damaged { log: String, why: String },
    /// The commit failed: the store may hold part of it. Reload from the file.
    Fatal(LedgerError),
}

fn before<E: std::fmt::Display>(e: E) -> RoundError {
    RoundError::BeforeCommit(LedgerError::Storage(e.to_string()))
}

/// The requests of one round and their weight.
struct Round {
    requests: Vec<Request>,
    entries: usize,
    bytes: usize,
}

impl Round {
    fn new(first: Request) -> Self {
        let mut round = Self { requests: Vec::with_capacity(64), entries: 0, bytes: 0 };
        round.push(first);
        round
    }

    fn push(&mut self, request: Request) {
        let (entries, bytes) = request.weight();
        self.entries += entries;
        self.bytes += bytes;
        self.requests.push(request);
    }

    fn full(&self) -> bool {
        self.entries >= MAX_ROUND_ENTRIES || self.bytes >= MAX_ROUND_BYTES
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    db: Arc<fc_core::redbfile::RedbFile>,
    rx: Receiver<Request>,
    /// Each log's tree as committed: size and frontier, no nodes.
    trees: HashMap<String, Tree<WriterNodes>>,
    /// Logs whose stored frontier could not be read at open, with why:
    /// appending to them would build on unknown hashes.
    damaged: HashMap<String, String>,
    /// Set after a failed commit, until the trees are reloaded from the file.
    stopped: Option<String>,
    checkpoints_signed: Arc<AtomicU64>,
}

impl Writer {
    pub(crate) fn new(
        db: Arc<fc_core::redbfile::RedbFile>,
        rx: Receiver<Request>,
        trees: HashMap<String, Tree<WriterNodes>>,
        damaged: HashMap<String, String>,
        checkpoints_signed: Arc<AtomicU64>,
    ) -> Self {
        Self { db, rx, trees, damaged, stopped: None, checkpoints_signed }
    }

    /// Runs rounds until every sender is gone and the queue is empty.
    pub(crate) fn run(mut self) {
        // Requests the last round answered, and how long its commit took.
        let (mut answered, mut last_commit) = (0usize, Duration::ZERO);
        // Requests that queued while the last round committed, taken before
        // its callers were answered: they come from other callers.
        let mut carried: Option<Round> = None;
        loop {
            let (mut round, others) = match carried.take() {
                Some(round) => {
                    let others = round.requests.len();
                    (round, others)
                }
                None => match self.rx.recv() {
                    Ok(first) => (Round::new(first), 0),
                    Err(_) => break,
                },
            };
            self.drain_into(&mut round);
            // Gather: wait for the callers the last round answered.
            let deadline = Instant::now() + MAX_GATHER.min(last_commit / 2);
            while !round.full() && round.requests.len() < others + answered {
                match self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(next) => round.push(next),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
            let started = Instant::now();
            let outcomes = self.commit_round(&round.requests);
            last_commit = started.elapsed();
            carried = self.rx.try_recv().ok().map(|first| {
                let mut next = Round::new(first);
                self.drain_into(&mut next);
                next
            });
            answered = round.requests.len();
            self.answer(round.requests, outcomes);
        }
    }

    /// Moves queued requests into `round` until it is full or none is queued.
    fn drain_into(&self, round: &mut Round) {
        while !round.full() {
            let Ok(next) = self.rx.try_recv() else { break };
            round.push(next);
        }
    }

    /// Writes and commits a round: one outcome per request, or the error
    /// that failed the whole round.
    fn commit_round(&mut self, round: &[Request]) -> Result<Vec<Outcome>, LedgerError> {
        if let Some(why) = self.stopped.take() {
            self.reload().map_err(|error| {
                let why = format!("{why}; reloading the ledger from its file failed too ({error})");
                self.stopped = Some(why.clone());
                LedgerError::Storage(why)
            })?;
        }
        // One more try per log that turns out damaged; each try marks one.
        loop {
            let mut touched: HashMap<String, Tree<WriterNodes>> = HashMap::new();
            let result = self.write_round(round, &mut touched);
            if !matches!(result, Ok(_) | Err(RoundError::Fatal(_))) {
                for (log, tree) in touched {
                    tree.store().take_pending();
                    self.trees.insert(log, tree);
                }
            }
            match result {
                Ok(outcomes) => return Ok(outcomes),
                Err(RoundError::BeforeCommit(error)) => {
                    tracing::warn!(error = %error, requests = round.len(), "ledger round failed before its commit; rolled back");
                    return Err(error);
                }
                Err(RoundError::Damaged { log, why }) => {
                    tracing::error!(log = %log, why = %why, "ledger log disagrees with its file; refusing appends to it");
                    self.trees.remove(&log);
                    self.damaged.insert(log, why);
                }
                Err(RoundError::Fatal(error)) => {
                    let why = format!("a ledger commit failed ({error})");
                    tracing::error!(error = %error, "ledger commit failed; writes wait until the file is reloaded");
                    self.stopped = Some(why.clone());
                    // Reload at once if the file allows it: the next round then
                    // goes ahead. If not, the next request tries again.
                    if let Ok(()) = self.reload() {
                        self.stopped = None;
                    }
                    return Err(LedgerError::Storage(why));
                }
            }
        }
    }

    /// Reopens the file (redb repairs it to its last commit) and replaces the
    /// in-memory trees with the committed ones.
    fn reload(&mut self) -> Result<(), LedgerError> {
        self.db.reopen().map_err(|e| LedgerError::Storage(e.to_string()))?;
        let db = self.db.db().map_err(|e| LedgerError::Storage(e.to_string()))?;
        let (trees, damaged) = crate::load_trees(&db)?;
        tracing::info!(logs = trees.len(), damaged = damaged.len(), "ledger reloaded from its file after a failed commit");
        self.trees = trees;
        self.damaged = damaged;
        Ok(())
    }

    /// Answers the callers of a round.
    fn answer(&self, round: Vec<Request>, outcomes: Result<Vec<Outcome>, LedgerError>) {
        let outcomes = match outcomes {
            Ok(outcomes) => outcomes,
            Err(error) => {
                for request in round {
                    request.fail(error.clone());
                }
                return;
            }
        };
        for (request, outcome) in round.into_iter().zip(outcomes) {
            match (request, outcome) {
                (Request::Append { reply, .. }, Outcome::Appended(first)) => {
                    let _ = reply.send(Ok(first));
                }
                (Request::Checkpoints { reply, .. }, Outcome::CheckpointsStored(stored)) => {
                    self.checkpoints_signed.fetch_add(stored as u64, Ordering::Relaxed);
                    let _ = reply.send(Ok(stored));
                }
                (request, Outcome::Refused(error)) => request.fail(error),
                (request, _) => request.fail(LedgerError::Storage("writer answered out of order".into())),
            }
        }
    }

    /// Applies a round in one write transaction and commits it. `touched`
    /// receives the tree of each appended log as it was before the round.
    fn write_round(&mut self, round: &[Request], touched: &mut HashMap<String, Tree<WriterNodes>>) -> Result<Vec<Outcome>, RoundError> {
        // Durability::Immediate (the default): commit returns after fsync.
        let txn = self.db.begin_write().map_err(before)?;
        let mut outcomes = Vec::with_capacity(round.len());
        {
            let mut entry_rows = txn.open_table(ENTRIES).map_err(before)?;
            let mut node_rows = txn.open_table(NODES).map_err(before)?;
            let mut size_rows = txn.open_table(SIZES).map_err(before)?;
            let mut checkpoint_rows = txn.open_table(CHECKPOINTS).map_err(before)?;
            for request in round {
                match request {
                    Request::Append { log, entries, leaves, .. } => {
                        if let Some(why) = self.damaged.get(log) {
                            outcomes.push(Outcome::Refused(LedgerError::Storage(why.clone())));
                            continue;
                        }
                        if !self.trees.contains_key(log) {
                            self.trees.insert(log.clone(), Tree::new(WriterNodes::default()));
                        }
                        let tree = self.trees.get_mut(log).ok_or_else(|| before("tree vanished"))?;
                        if !touched.contains_key(log) {
                            touched.insert(log.clone(), tree.clone());
                        }
                        let first = tree.size();
                        for (bytes, leaf) in entries.iter().zip(leaves) {
                            let index = tree.append_leaf_hash(*leaf);
                            let row = tree
                                .store()
                                .take_row(index)
                                .ok_or_else(|| before(format!("log {log}: leaf {index} put unexpected nodes")))?;
                            let previous_entry = entry_rows.insert((log.as_str(), index), bytes.as_slice()).map_err(before)?.is_some();
                            let previous_nodes = node_rows.insert((log.as_str(), index), row.as_slice()).map_err(before)?.is_some();
                            if previous_entry || previous_nodes {
                                return Err(RoundError::Damaged {
                                    log: log.clone(),
                                    why: format!(
                                        "log {log}: leaf {index} is already stored; the file and the writer disagree, so the log is read-only until repaired (see its audit)"
                                    ),
                                });
                            }
                        }
                        outcomes.push(Outcome::Appended(first));
                    }
                    Request::Checkpoints { notes, .. } => {
                        let mut stored = 0;
                        for cp in notes {
                            let newer = checkpoint_rows.get(cp.log.as_str()).map_err(before)?.is_none_or(|row| row.value().0 < cp.size);
                            if newer {
                                checkpoint_rows.insert(cp.log.as_str(), (cp.size, cp.note.as_str())).map_err(before)?;
                                stored += 1;
                            }
                        }
                        outcomes.push(Outcome::CheckpointsStored(stored));
                    }
                }
            }
            for log in touched.keys() {
                let tree = self.trees.get(log).ok_or_else(|| before("tree vanished"))?;
                size_rows.insert(log.as_str(), tree.size()).map_err(before)?;
            }
        }
        txn.commit().map_err(|e| RoundError::Fatal(LedgerError::Storage(e.to_string())))?;
        Ok(outcomes)
    }
}
