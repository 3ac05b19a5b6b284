//! The operator's audit: recompute a log from its stored entries up.
//!
//! One pass over a read snapshot, in the order the leaves were appended:
//! every leaf hash from its entry, every node from its two stored children,
//! rows where there must be none; then the signature, origin and root of the
//! latest checkpoint against the (now checked) nodes. It stops at the first
//! mismatch, so the reported place is the earliest damage: a changed entry is
//! reported as its leaf, a changed node as that node (its children were
//! checked before it, its parent would be checked after).

use crate::LedgerError;
use crate::store::{CHECKPOINTS, ENTRIES, NODES, NodeTable, ReadNodes, SIZES, completed_levels, hash_in_row, node_index, node_row_len};
use fc_ledger::merkle::{Hash, Tree, leaf_hash, node_hash};
use fc_ledger::note::{Checkpoint, Verifier, open_note};
use redb::ReadTransaction;
use std::cell::RefCell;
use std::fmt;

/// What [`crate::Ledger::audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// The log audited.
    pub log: String,
    /// Its committed size.
    pub size: u64,
    /// Entries whose leaf hash was recomputed.
    pub entries_checked: u64,
    /// Interior nodes recomputed from their children.
    pub nodes_checked: u64,
    /// Size of the latest signed checkpoint, if any.
    pub checkpoint_size: Option<u64>,
    /// The first damage found, or `None` when the log is intact.
    pub first_mismatch: Option<Mismatch>,
}

impl AuditReport {
    /// Whether nothing was found.
    pub fn is_intact(&self) -> bool {
        self.first_mismatch.is_none()
    }
}

/// One kind of damage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// No entry at an index below the size.
    MissingEntry {
        /// Leaf index.
        index: u64,
    },
    /// The entry's leaf hash differs from the stored leaf node: the entry (or
    /// its leaf hash) was changed.
    Leaf {
        /// Leaf index.
        index: u64,
    },
    /// A complete subtree of the tree has no stored node.
    MissingNode {
        /// Level (0: leaves).
        level: u8,
        /// Index within the level.
        index: u64,
    },
    /// A stored node differs from the hash of its two stored children.
    Node {
        /// Level (at least 1).
        level: u8,
        /// Index within the level.
        index: u64,
    },
    /// An entry at or beyond the size.
    UnexpectedEntry {
        /// Leaf index.
        index: u64,
    },
    /// A node that covers leaves at or beyond the size.
    UnexpectedNode {
        /// Level.
        level: u8,
        /// Index within the level.
        index: u64,
    },
    /// The stored checkpoint does not open with this ledger's key, or its
    /// body is not a checkpoint of the size stored beside it.
    CheckpointSignature,
    /// The checkpoint names another log.
    CheckpointOrigin {
        /// The origin in the note.
        origin: String,
    },
    /// The checkpoint is of a tree larger than the log.
    CheckpointBeyondTree {
        /// Size in the checkpoint.
        size: u64,
    },
    /// The root of the stored tree at the checkpoint's size is not the
    /// signed root: the history was rewritten.
    CheckpointRoot {
        /// Size in the checkpoint.
        size: u64,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingEntry { index } => write!(f, "entry {index} is missing"),
            Self::Leaf { index } => {
                write!(f, "entry {index} does not hash to its stored leaf hash")
            }
            Self::MissingNode { level, index } => {
                write!(f, "node (level {level}, index {index}) is missing")
            }
            Self::Node { level, index } => {
                write!(f, "node (level {level}, index {index}) is not the hash of its children")
            }
            Self::UnexpectedEntry { index } => {
                write!(f, "entry {index} lies beyond the log's size")
            }
            Self::UnexpectedNode { level, index } => {
                write!(f, "node (level {level}, index {index}) lies beyond the log's size")
            }
            Self::CheckpointSignature => f.write_str("the stored checkpoint does not verify with the ledger's key"),
            Self::CheckpointOrigin { origin } => {
                write!(f, "the stored checkpoint is for origin {origin:?}")
            }
            Self::CheckpointBeyondTree { size } => {
                write!(f, "the stored checkpoint of size {size} is beyond the log")
            }
            Self::CheckpointRoot { size } => {
                write!(f, "the stored tree of size {size} does not have the checkpoint's signed root")
            }
        }
    }
}

fn storage<E: fmt::Display>(e: E) -> LedgerError {
    LedgerError::Storage(e.to_string())
}

/// Audits `log` in the snapshot `txn`.
pub(crate) fn audit(txn: &ReadTransaction, log: &str, verifier: &Verifier, origin: &str) -> Result<AuditReport, LedgerError> {
    let size = txn.open_table(SIZES).map_err(storage)?.get(log).map_err(storage)?.map_or(0, |row| row.value());
    let checkpoint = txn.open_table(CHECKPOINTS).map_err(storage)?.get(log).map_err(storage)?.map(|row| {
        let (size, note) = row.value();
        (size, note.to_owned())
    });
    let nodes = txn.open_table(NODES).map_err(storage)?;
    let mut report = AuditReport {
        log: log.to_owned(),
        size,
        entries_checked: 0,
        nodes_checked: 0,
        checkpoint_size: checkpoint.as_ref().map(|(size, _)| *size),
        first_mismatch: None,
    };
    report.first_mismatch = check_tree(txn, &nodes, log, size, &mut report)?;
    if report.first_mismatch.is_none()
        && let Some((stored_size, note)) = checkpoint
    {
        report.first_mismatch = check_checkpoint(&nodes, log, size, stored_size, &note, verifier, origin)?;
    }
    Ok(report)
}

/// One pass over the entries and node rows in leaf order, replaying the
/// appends: leaf `c` must have its entry and a node row with the levels its
/// append completed; the level-0 hash must be the hash of the entry, each
/// higher one the hash of its stored children: the left one is on the stack
/// of stored complete subtrees, the right one is the level below in the row.
fn check_tree(
    txn: &ReadTransaction,
    nodes: &NodeTable,
    log: &str,
    size: u64,
    report: &mut AuditReport,
) -> Result<Option<Mismatch>, LedgerError> {
    let entries = txn.open_table(ENTRIES).map_err(storage)?;
    let mut entry_rows = entries.range((log, 0u64)..=(log, u64::MAX)).map_err(storage)?;
    let mut node_rows = nodes.range((log, 0u64)..=(log, u64::MAX)).map_err(storage)?;
    let mut stack: Vec<Hash> = Vec::new();
    for leaf in 0..size {
        let entry = match entry_rows.next().transpose().map_err(storage)? {
            Some((key, value)) if key.value().1 == leaf => leaf_hash(value.value()),
            _ => return Ok(Some(Mismatch::MissingEntry { index: leaf })),
        };
        report.entries_checked += 1;
        let row = match node_rows.next().transpose().map_err(storage)? {
            Some((key, value)) if key.value().1 == leaf => value,
            _ => {
                return Ok(Some(Mismatch::MissingNode { level: 0, index: leaf }));
            }
        };
        let row = row.value();
        let levels = completed_levels(leaf);
        let mut node = entry;
        for level in 0..levels {
            let index = node_index(leaf, level);
            let Some(stored) = hash_in_row(row, level) else {
                return Ok(Some(Mismatch::MissingNode { level, index }));
            };
            if level == 0 {
                if stored != entry {
                    return Ok(Some(Mismatch::Leaf { index: leaf }));
                }
            } else {
                let Some(left) = stack.pop() else {
                    return Ok(Some(Mismatch::MissingNode { level: level - 1, index: 2 * index }));
                };
                if node_hash(&left, &node) != stored {
                    return Ok(Some(Mismatch::Node { level, index }));
                }
                report.nodes_checked += 1;
            }
            node = stored;
        }
        if row.len() > node_row_len(leaf) {
            return Ok(Some(Mismatch::UnexpectedNode { level: levels, index: node_index(leaf, levels) }));
        }
        stack.push(node);
    }
    if let Some((key, _)) = entry_rows.next().transpose().map_err(storage)? {
        return Ok(Some(Mismatch::UnexpectedEntry { index: key.value().1 }));
    }
    if let Some((key, _)) = node_rows.next().transpose().map_err(storage)? {
        return Ok(Some(Mismatch::UnexpectedNode { level: 0, index: key.value().1 }));
    }
    Ok(None)
}

fn check_checkpoint(
    nodes: &NodeTable,
    log: &str,
    size: u64,
    stored_size: u64,
    note: &str,
    verifier: &Verifier,
    origin: &str,
) -> Result<Option<Mismatch>, LedgerError> {
    let Ok((text, _)) = open_note(note, std::slice::from_ref(verifier)) else {
        return Ok(Some(Mismatch::CheckpointSignature));
    };
    let checkpoint = match Checkpoint::parse(&text) {
        Ok(checkpoint) if checkpoint.size == stored_size => checkpoint,
        _ => return Ok(Some(Mismatch::CheckpointSignature)),
    };
    if checkpoint.origin != origin {
        return Ok(Some(Mismatch::CheckpointOrigin { origin: checkpoint.origin }));
    }
    if checkpoint.size > size {
        return Ok(Some(Mismatch::CheckpointBeyondTree { size: checkpoint.size }));
    }
    let error = RefCell::new(None);
    let root = Tree::open(ReadNodes::new(nodes, log, &error), checkpoint.size).map(|tree| tree.root());
    if let Some(e) = error.into_inner() {
        return Err(storage(e));
    }
    match root {
        Ok(root) if root == checkpoint.root => Ok(None),
        Ok(_) => Ok(Some(Mismatch::CheckpointRoot { size: checkpoint.size })),
        // The levels were checked complete, so this cannot happen; report it
        // as what it would mean.
        Err(_) => Ok(Some(Mismatch::CheckpointRoot { size: checkpoint.size })),
    }
}
