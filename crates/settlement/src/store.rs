//! The redb tables of the ledger file and the [`NodeStore`] adapters over them.
//!
//! Invariant: rows of [`ENTRIES`] and [`NODES`] are inserted once, by the
//! writer (`crate::writer`), and never updated or removed; [`SIZES`] only
//! grows; [`CHECKPOINTS`] only moves to a larger tree size.

use fc_ledger::merkle::{Hash, NodeStore};
use redb::{ReadOnlyTable, StorageError, TableDefinition};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `(log, leaf index) -> entry bytes`.
pub(crate) const ENTRIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("entries");
/// `(log, leaf index) -> hashes` of the complete subtrees the append of that
/// leaf completed: levels 0 (its leaf hash) up to the number of trailing one
/// bits of the index, 32 bytes each, lowest first ([`node_row_len`]).
///
/// Node (level L, index i) is therefore found in the row of its completing
/// leaf `(i + 1) * 2^L - 1` ([`completing_leaf`]) at byte `32 * L`. One row
/// per append, at the end of the log's key range: a round of appends is a
/// run of adjacent inserts (half the B-tree work of a row per node, and a
/// few dirty pages at the right edge instead of one per level).
pub(crate) const NODES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("nodes");
/// `log -> committed number of entries`.
pub(crate) const SIZES: TableDefinition<&str, u64> = TableDefinition::new("sizes");
/// `log -> (tree size, signed note)` of the latest signed checkpoint. The size
/// is kept beside the note so the checkpointer need not parse every note.
pub(crate) const CHECKPOINTS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("checkpoints");

/// The node table of a read transaction.
pub(crate) type NodeTable = ReadOnlyTable<(&'static str, u64), &'static [u8]>;

/// The leaf whose append completes node (`level`, `index`): the last leaf it
/// covers, `(index + 1) * 2^level - 1`; `None` past 2^64 leaves.
pub(crate) fn completing_leaf(level: u8, index: u64) -> Option<u64> {
    let end = index.checked_add(1)?.checked_mul(1u64.checked_shl(u32::from(level))?)?;
    Some(end - 1)
}

/// The index within its level of a node completed by `leaf`: the low `level`
/// bits of a completing leaf are all ones, so a shift undoes
/// [`completing_leaf`].
pub(crate) fn node_index(leaf: u64, level: u8) -> u64 {
    leaf.checked_shr(u32::from(level)).unwrap_or(0)
}

/// Levels whose node the append of `leaf` completes: 0 to its trailing ones.
pub(crate) fn completed_levels(leaf: u64) -> u8 {
    // At most 65 (leaf u64::MAX), so the cast is exact.
    leaf.trailing_ones() as u8 + 1
}

/// Byte length of the node row of `leaf`.
pub(crate) fn node_row_len(leaf: u64) -> usize {
    32 * usize::from(completed_levels(leaf))
}

/// Hash of `level` in a node row, if the row holds it.
pub(crate) fn hash_in_row(row: &[u8], level: u8) -> Option<Hash> {
    let start = 32 * usize::from(level);
    row.get(start..start + 32)?.try_into().ok()
}

/// A [`NodeStore`] over one log's nodes in a read transaction (a consistent
/// MVCC snapshot, so readers never wait for the writer).
///
/// `NodeStore::get` cannot fail, so a storage error is parked in `error`
/// (the tree then reports a missing node) and the caller surfaces it.
pub(crate) struct ReadNodes<'a> {
    table: &'a NodeTable,
    log: &'a str,
    error: &'a RefCell<Option<StorageError>>,
}

impl<'a> ReadNodes<'a> {
    pub(crate) fn new(table: &'a NodeTable, log: &'a str, error: &'a RefCell<Option<StorageError>>) -> Self {
        Self { table, log, error }
    }
}

impl NodeStore for ReadNodes<'_> {
    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        let leaf = completing_leaf(level, index)?;
        match self.table.get((self.log, leaf)) {
            Ok(row) => row.and_then(|row| hash_in_row(row.value(), level)),
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                None
            }
        }
    }

    fn put(&mut self, _level: u8, _index: u64, _hash: Hash) {
        // Trees over a read snapshot serve roots and proofs only; they never
        // append, so the tree never calls this.
    }
}

/// Records the nodes a `Tree::open` reads through it: the frontier, used to
/// seed the writer's in-memory tree of a log.
pub(crate) struct RecordingNodes<'a> {
    inner: ReadNodes<'a>,
    seen: RefCell<HashMap<(u8, u64), Hash>>,
}

impl<'a> RecordingNodes<'a> {
    pub(crate) fn new(inner: ReadNodes<'a>) -> Self {
        Self { inner, seen: RefCell::default() }
    }

    pub(crate) fn into_seen(self) -> HashMap<(u8, u64), Hash> {
        self.seen.into_inner()
    }
}

impl NodeStore for RecordingNodes<'_> {
    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        let hash = self.inner.get(level, index)?;
        self.seen.borrow_mut().insert((level, index), hash);
        Some(hash)
    }

    fn put(&mut self, _level: u8, _index: u64, _hash: Hash) {}
}

/// A node put by the writer's tree, waiting for the commit round.
pub(crate) type PendingNode = (u8, u64, Hash);

/// The writer's [`NodeStore`] of one log. The tree keeps its frontier in
/// memory and never reads after `Tree::open` (answered from `seed`); puts go
/// to `pending`, which the commit round drains into the write transaction,
/// where a storage error can be reported (`put` itself cannot fail).
#[derive(Clone, Default)]
pub(crate) struct WriterNodes {
    seed: Arc<HashMap<(u8, u64), Hash>>,
    pending: Arc<Mutex<Vec<PendingNode>>>,
}

impl WriterNodes {
    pub(crate) fn new(seed: HashMap<(u8, u64), Hash>) -> Self {
        Self { seed: Arc::new(seed), pending: Arc::default() }
    }

    /// Takes the nodes put since the last call.
    pub(crate) fn take_pending(&self) -> Vec<PendingNode> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Takes the nodes the append of `leaf` put, as its node row; `None` if
    /// they are not exactly that leaf's levels 0, 1, ... in order (which
    /// would be a bug: the tree puts them so).
    pub(crate) fn take_row(&self, leaf: u64) -> Option<Vec<u8>> {
        let nodes = self.take_pending();
        let mut row = Vec::with_capacity(node_row_len(leaf));
        for (expected, (level, index, hash)) in nodes.iter().enumerate() {
            if usize::from(*level) != expected || completing_leaf(*level, *index) != Some(leaf) {
                return None;
            }
            row.extend_from_slice(hash);
        }
        (row.len() == node_row_len(leaf)).then_some(row)
    }
}

impl NodeStore for WriterNodes {
    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        self.seed.get(&(level, index)).copied()
    }

    fn put(&mut self, level: u8, index: u64, hash: Hash) {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((level, index, hash));
    }
}
