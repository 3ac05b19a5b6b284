//! Append-only Merkle tree with RFC 9162 (RFC 6962) hashing and proofs.
//!
//! - leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || left || right),
//!   root of the empty tree = SHA-256("") (RFC 9162 section 2.1.1);
//! - the root of n leaves splits at the largest power of two strictly smaller
//!   than n, so every left subtree is complete.
//!
//! Storage: the tree keeps the hashes of *complete* subtrees in a
//! [`NodeStore`]: a node at `level` L and `index` i covers leaves
//! `[i * 2^L, (i + 1) * 2^L)`; level 0 holds the leaf hashes. Appending a leaf
//! stores its hash and every parent it completes (amortised two puts, no
//! gets). Any subtree a proof needs is either complete (one get) or the
//! right-edge remainder of a tree of the requested size, whose root is folded
//! from at most 64 complete subtrees; a whole proof is O(log n) gets.
//!
//! Invariant: after `append` returned, the store holds every complete subtree
//! of `[0, size)`; the [`Tree`] never reads a node outside them.
//!
//! Boundary: proofs are generated exactly as RFC 9162 sections 2.1.3.1 (PATH)
//! and 2.1.4.1 (PROOF/SUBPROOF) define them and verified exactly by the steps
//! of 2.1.3.2 and 2.1.4.2, so any RFC 9162 / CT client can check them.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, a node hash or a tree root.
pub type Hash = [u8; 32];

/// Why a proof was refused or could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside a tree of that size.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// The leaf index asked for.
        index: u64,
        /// The tree size it was asked for.
        size: u64,
    },
    /// A proof or root was asked for a size the tree has not reached.
    #[error("tree size {size} is beyond the current tree size {tree_size}")]
    SizeBeyondTree {
        /// The size asked for.
        size: u64,
        /// The tree's current size.
        tree_size: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("old tree size {size1} is greater than new tree size {size2}")]
    OldSizeGreater {
        /// The old size.
        size1: u64,
        /// The new size.
        size2: u64,
    },
    /// RFC 9162 defines consistency proofs only for `0 < size1`: the empty tree
    /// is consistent with every tree, so there is nothing to prove.
    #[error("consistency from the empty tree has no meaningful proof (RFC 9162 needs 0 < size1)")]
    EmptyOldTree,
    /// A consistency proof between different sizes must not be empty.
    #[error("consistency proof is empty but the tree sizes differ")]
    EmptyProof,
    /// Between equal sizes the proof must be empty.
    #[error("consistency proof between equal tree sizes must be empty, got {len} hashes")]
    NonEmptyProofForEqualSizes {
        /// Hashes in the proof.
        len: usize,
    },
    /// Equal sizes but different roots: the log forked.
    #[error("tree heads of equal size have different roots")]
    RootsDiffer,
    /// The proof has more hashes than the tree sizes allow.
    #[error("proof is too long ({len} hashes) for these tree sizes")]
    ProofTooLong {
        /// Hashes in the proof.
        len: usize,
    },
    /// The proof has fewer hashes than the tree sizes need.
    #[error("proof is too short ({len} hashes) for these tree sizes")]
    ProofTooShort {
        /// Hashes in the proof.
        len: usize,
    },
    /// The inclusion proof leads to another root.
    #[error("inclusion proof does not lead to the expected root")]
    RootMismatch,
    /// The consistency proof does not rebuild the old root.
    #[error("consistency proof does not rebuild the old root")]
    OldRootMismatch,
    /// The consistency proof does not rebuild the new root.
    #[error("consistency proof does not rebuild the new root")]
    NewRootMismatch,
    /// The node store lacks a complete subtree it must hold (a damaged store).
    #[error("node store has no hash at level {level} index {index}")]
    MissingNode {
        /// Level of the missing node.
        level: u8,
        /// Index of the missing node within its level.
        index: u64,
    },
}

/// SHA-256(0x00 || entry): the hash of one log entry.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(entry);
    hasher.finalize().into()
}

/// SHA-256(0x01 || left || right): the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// SHA-256 of the empty string: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Where the tree keeps the hashes of its complete subtrees.
///
/// A node at `level` L and `index` i covers leaves `[i * 2^L, (i + 1) * 2^L)`;
/// level 0 holds leaf hashes. The tree only ever puts a node once, when the
/// subtree it covers becomes complete, and never changes it afterwards.
pub trait NodeStore {
    /// The hash of the complete subtree at (`level`, `index`), if stored.
    fn get(&self, level: u8, index: u64) -> Option<Hash>;
    /// Stores the hash of the complete subtree at (`level`, `index`).
    fn put(&mut self, level: u8, index: u64, hash: Hash);
}

/// An in-memory [`NodeStore`]: one vector per level.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    levels: Vec<Vec<Option<Hash>>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of nodes stored, over all levels.
    pub fn node_count(&self) -> usize {
        self.levels.iter().flatten().filter(|node| node.is_some()).count()
    }
}

impl NodeStore for MemStore {
    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        let index = usize::try_from(index).ok()?;
        *self.levels.get(usize::from(level))?.get(index)?
    }

    fn put(&mut self, level: u8, index: u64, hash: Hash) {
        let level = usize::from(level);
        // An index that does not fit in memory cannot be stored in memory
        // either; the tree never gets there because it appends one leaf at a
        // time.
        let Ok(index) = usize::try_from(index) else {
            return;
        };
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        let nodes = &mut self.levels[level];
        if nodes.len() <= index {
            nodes.resize(index + 1, None);
        }
        nodes[index] = Some(hash);
    }
}

/// An append-only Merkle tree over a [`NodeStore`].
#[derive(Debug, Clone)]
pub struct Tree<S> {
    store: S,
    size: u64,
    /// Roots of the complete subtrees that make up `[0, size)`, largest first
    /// (one per set bit of `size`). Kept in memory so that `append` and
    /// `root` never read the store.
    frontier: Vec<Hash>,
}

impl<S: NodeStore> Tree<S> {
    /// An empty tree writing into `store`, which must not hold another tree.
    pub fn new(store: S) -> Self {
        Self { store, size: 0, frontier: Vec::new() }
    }

    /// Reopens a tree of `size` leaves kept in `store` (O(log n) gets).
    pub fn open(store: S, size: u64) -> Result<Self, ProofError> {
        let frontier = complete_subtrees(0, size).map(|(level, index)| fetch(&store, level, index)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { store, size, frontier })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The node store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the node store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Appends an entry; returns its leaf index.
    pub fn append(&mut self, entry: &[u8]) -> u64 {
        self.append_leaf_hash(leaf_hash(entry))
    }

    /// Appends an already computed leaf hash; returns its leaf index.
    ///
    /// Stores the leaf hash and each parent this leaf completes: one put per
    /// trailing one bit of the old size, so two puts on average.
    pub fn append_leaf_hash(&mut self, hash: Hash) -> u64 {
        let index = self.size;
        self.store.put(0, index, hash);
        let mut node = hash;
        let mut level = 0u8;
        let mut node_index = index;
        // Each trailing one bit of `index` is a complete left sibling on the
        // frontier that now merges with the new node.
        while node_index & 1 == 1 {
            let Some(left) = self.frontier.pop() else {
                break; // unreachable by the frontier invariant
            };
            node = node_hash(&left, &node);
            level += 1;
            node_index >>= 1;
            self.store.put(level, node_index, node);
        }
        self.frontier.push(node);
        self.size += 1;
        index
    }

    /// The root of the current tree (no store reads).
    pub fn root(&self) -> Hash {
        fold_from_right(self.frontier.iter().copied())
    }

    /// The root of the tree as it was at `size` leaves (O(log n) gets).
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        if size == self.size {
            return Ok(self.root());
        }
        self.range_root(0, size)
    }

    /// The leaf hash at `index` (one get).
    pub fn leaf_hash_at(&self, index: u64) -> Result<Hash, ProofError> {
        if index >= self.size {
            return Err(ProofError::IndexOutOfRange { index, size: self.size });
        }
        fetch(&self.store, 0, index)
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves,
    /// `PATH(index, D[size])` of RFC 9162 section 2.1.3.1, ordered from the leaf
    /// up.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        // Walk PATH's recursion from the root down over the range [lo, hi);
        // each step adds the MTH of the half that does not hold the leaf.
        // PATH appends that sibling after the recursive part, so the siblings
        // come out root-first and are reversed at the end.
        let (mut lo, mut hi) = (0, size);
        let mut siblings = Vec::new();
        while hi - lo > 1 {
            let split = lo + largest_power_of_two_below(hi - lo);
            if index < split {
                siblings.push(self.range_root(split, hi)?);
                hi = split;
            } else {
                siblings.push(self.range_root(lo, split)?);
                lo = split;
            }
        }
        siblings.reverse();
        Ok(siblings)
    }

    /// The consistency proof between the trees of `size1` and `size2`
    /// leaves, `PROOF(size1, D[size2])` of RFC 9162 section 2.1.4.1.
    ///
    /// Equal sizes give the empty proof; `size1 == 0 < size2` is refused with
    /// [`ProofError::EmptyOldTree`], as [`verify_consistency`] refuses it.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size2)?;
        if size1 > size2 {
            return Err(ProofError::OldSizeGreater { size1, size2 });
        }
        if size1 == size2 {
            return Ok(Vec::new());
        }
        if size1 == 0 {
            return Err(ProofError::EmptyOldTree);
        }
        // SUBPROOF(m, D[lo:hi], b), unrolled from the root down; like PATH,
        // each level's hash comes after the recursive part, so reverse.
        let (mut lo, mut hi, mut m) = (0, size2, size1);
        let mut whole_old_tree = true; // SUBPROOF's b
        let mut hashes = Vec::new();
        loop {
            if m == hi - lo {
                if !whole_old_tree {
                    hashes.push(self.range_root(lo, hi)?);
                }
                break;
            }
            let k = largest_power_of_two_below(hi - lo);
            if m <= k {
                hashes.push(self.range_root(lo + k, hi)?);
                hi = lo + k;
            } else {
                hashes.push(self.range_root(lo, lo + k)?);
                lo += k;
                m -= k;
                whole_old_tree = false;
            }
        }
        hashes.reverse();
        Ok(hashes)
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        if size > self.size {
            return Err(ProofError::SizeBeyondTree { size, tree_size: self.size });
        }
        Ok(())
    }

    /// MTH of leaves `[lo, hi)`, with `hi <= self.size`.
    ///
    /// Invariant (holds for every range PATH and PROOF visit): `lo` is a
    /// multiple of the largest power of two not above `hi - lo`, so the range
    /// splits into complete stored subtrees.
    fn range_root(&self, lo: u64, hi: u64) -> Result<Hash, ProofError> {
        if lo == hi {
            return Ok(empty_root());
        }
        let nodes = complete_subtrees(lo, hi - lo).map(|(level, index)| fetch(&self.store, level, index)).collect::<Result<Vec<_>, _>>()?;
        Ok(fold_from_right(nodes))
    }
}

fn fetch<S: NodeStore>(store: &S, level: u8, index: u64) -> Result<Hash, ProofError> {
    store.get(level, index).ok_or(ProofError::MissingNode { level, index })
}

/// The complete subtrees, largest first, that make up `len` leaves starting
/// at `lo` (which must be aligned to the largest of them): one per set bit of
/// `len`.
fn complete_subtrees(lo: u64, len: u64) -> impl Iterator<Item = (u8, u64)> {
    let mut offset = lo;
    (0..64u8).rev().filter_map(move |level| {
        let width = 1u64 << level;
        if len & width == 0 {
            return None;
        }
        let node = (level, offset >> level);
        offset = offset.wrapping_add(width);
        Some(node)
    })
}

/// The MTH of consecutive complete subtrees given largest first: each split
/// of MTH puts one complete subtree on the left and the rest on the right.
fn fold_from_right(nodes: impl IntoIterator<Item = Hash, IntoIter: DoubleEndedIterator>) -> Hash {
    nodes.into_iter().rev().reduce(|right, left| node_hash(&left, &right)).unwrap_or_else(empty_root)
}

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn largest_power_of_two_below(n: u64) -> u64 {
    1 << (n - 1).ilog2()
}

fn is_lsb_set(value: u64) -> bool {
    value & 1 == 1
}

/// Verifies that `leaf_hash` is leaf `index` of the tree of `size` leaves
/// whose root is `root`, by the steps of RFC 9162 section 2.1.3.2.
pub fn verify_inclusion(leaf_hash: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    // 1. leaf_index must be inside the tree.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf_hash;
    // 4. Fold in each proof hash.
    for p in proof {
        // 4a. Nothing left to combine with: the proof is too long.
        if sn == 0 {
            return Err(ProofError::ProofTooLong { len: proof.len() });
        }
        // 4b. p is a left sibling when fn is a right child or the last node of
        // its level; otherwise a right sibling.
        if is_lsb_set(fn_) || fn_ == sn {
            r = node_hash(p, &r);
            if !is_lsb_set(fn_) {
                // Skip the levels where this node had no right sibling.
                while !(is_lsb_set(fn_) || fn_ == 0) {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        // 4c.
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5. The proof must reach the root level, and reach the root.
    if sn != 0 {
        return Err(ProofError::ProofTooShort { len: proof.len() });
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `size2` leaves with root `root2` extends the tree
/// of `size1` leaves with root `root1`, by the steps of RFC 9162 section
/// 2.1.4.2.
///
/// Equal sizes need an empty proof and equal roots. `size1 == 0` is refused
/// ([`ProofError::EmptyOldTree`]): the RFC's algorithm is defined for
/// `0 < size1 < size2` only and the empty tree has no meaningful proof.
pub fn verify_consistency(size1: u64, size2: u64, root1: &Hash, root2: &Hash, proof: &[Hash]) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::OldSizeGreater { size1, size2 });
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::NonEmptyProofForEqualSizes { len: proof.len() });
        }
        if root1 != root2 {
            return Err(ProofError::RootsDiffer);
        }
        return Ok(());
    }
    if size1 == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    // 1. An empty consistency_path fails.
    if proof.is_empty() {
        return Err(ProofError::EmptyProof);
    }
    // 2. If first is an exact power of 2, prepend first_hash: the old root is
    // then itself a node of the new tree and the log does not send it.
    let old_root_is_node = size1.is_power_of_two();
    let mut path = std::iter::once(root1).filter(|_| old_root_is_node).chain(proof.iter());
    // 3. fn = first - 1, sn = second - 1.
    let (mut fn_, mut sn) = (size1 - 1, size2 - 1);
    // 4. Climb while fn is a right child.
    while is_lsb_set(fn_) {
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5. fr = sr = first value of the path (not empty: checked in step 1).
    let Some(first) = path.next() else {
        return Err(ProofError::EmptyProof);
    };
    let (mut fr, mut sr) = (*first, *first);
    // 6. Fold in each subsequent value.
    for c in path {
        // 6a.
        if sn == 0 {
            return Err(ProofError::ProofTooLong { len: proof.len() });
        }
        // 6b.
        if is_lsb_set(fn_) || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if !is_lsb_set(fn_) {
                while !(is_lsb_set(fn_) || fn_ == 0) {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        // 6c.
        fn_ >>= 1;
        sn >>= 1;
    }
    // 7. fr must be first_hash, sr second_hash, and sn 0.
    if sn != 0 {
        return Err(ProofError::ProofTooShort { len: proof.len() });
    }
    if fr != *root1 {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *root2 {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_power_of_two_below_is_strict() {
        let cases = [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (u64::MAX, 1 << 63)];
        for (n, expected) in cases {
            assert_eq!(largest_power_of_two_below(n), expected, "n = {n}");
        }
    }

    #[test]
    fn complete_subtrees_follow_the_bits_of_the_length() {
        type Nodes = &'static [(u8, u64)];
        let cases: [(u64, u64, Nodes); 4] =
            [(0, 0, &[]), (0, 7, &[(2, 0), (1, 2), (0, 6)]), (8, 5, &[(2, 2), (0, 12)]), (16, 16, &[(4, 1)])];
        for (lo, len, expected) in cases {
            let got: Vec<_> = complete_subtrees(lo, len).collect();
            assert_eq!(got, expected, "lo = {lo}, len = {len}");
        }
    }
}
