//! Merkle tree tests: a naive reference straight from RFC 9162's recursive
//! definitions, the certificate-transparency known answers, every proof of
//! every tree up to 64 leaves, mutated proofs, and proptest beyond.

use std::cell::Cell;

use fc_ledger::merkle::{
    Hash, MemStore, NodeStore, ProofError, Tree, empty_root, leaf_hash, node_hash, verify_consistency, verify_inclusion,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Naive reference: RFC 9162 section 2.1.1 MTH, 2.1.3.1 PATH, 2.1.4.1 PROOF,
// written recursively over a slice of leaf entries, with no shared code.

fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn ref_mth(leaves: &[Vec<u8>]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = split_point(n);
            node_hash(&ref_mth(&leaves[..k]), &ref_mth(&leaves[k..]))
        }
    }
}

fn ref_path(m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
    let n = leaves.len();
    if n == 1 {
        return Vec::new();
    }
    let k = split_point(n);
    if m < k {
        let mut path = ref_path(m, &leaves[..k]);
        path.push(ref_mth(&leaves[k..]));
        path
    } else {
        let mut path = ref_path(m - k, &leaves[k..]);
        path.push(ref_mth(&leaves[..k]));
        path
    }
}

fn ref_proof(m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
    ref_subproof(m, leaves, true)
}

fn ref_subproof(m: usize, leaves: &[Vec<u8>], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if whole { Vec::new() } else { vec![ref_mth(leaves)] };
    }
    let k = split_point(n);
    if m <= k {
        let mut proof = ref_subproof(m, &leaves[..k], whole);
        proof.push(ref_mth(&leaves[k..]));
        proof
    } else {
        let mut proof = ref_subproof(m - k, &leaves[k..], false);
        proof.push(ref_mth(&leaves[..k]));
        proof
    }
}

// ---------------------------------------------------------------------------
// Helpers.

fn h(hex: &str) -> Hash {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex, &mut hash).unwrap();
    hash
}

/// Distinct entries, so that no two leaves hash alike (a proof cannot tell
/// apart two positions holding the same hash).
fn distinct_leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n as u64).map(|i| i.to_be_bytes().to_vec()).collect()
}

fn tree_of(leaves: &[Vec<u8>]) -> Tree<MemStore> {
    let mut tree = Tree::new(MemStore::new());
    for leaf in leaves {
        tree.append(leaf);
    }
    tree
}

/// The certificate-transparency test leaves (RFC 6962 reference tests of the
/// Go and C++ implementations).
fn ct_leaves() -> Vec<Vec<u8>> {
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
        .iter()
        .map(|leaf| hex::decode(leaf).unwrap())
        .collect()
}

/// Roots of the first 0..=8 CT leaves, from transparency-dev/merkle
/// testonly/constants.go (RootHashes) and proof/verify_test.go (roots).
const CT_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Complete-subtree hashes of the 8 CT leaves by (level, index), from
/// transparency-dev/merkle testonly/constants.go (NodeHashes).
const CT_NODES: [(u8, u64, &str); 15] = [
    (0, 0, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    (0, 1, "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
    (0, 2, "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
    (0, 3, "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
    (0, 4, "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
    (0, 5, "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
    (0, 6, "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
    (0, 7, "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    (1, 0, "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    (1, 1, "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
    (1, 2, "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
    (1, 3, "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    (2, 0, "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    (2, 1, "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    (3, 0, "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
];

/// Published inclusion proofs over the CT leaves: (leaf index, tree size,
/// proof), from transparency-dev/merkle proof/verify_test.go
/// (inclusionProofs; that table counts leaves from 1, converted here).
fn ct_inclusion_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (0, 1, vec![]),
        (
            0,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            5,
            8,
            vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (2, 3, vec![h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
        (
            1,
            5,
            vec![
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
    ]
}

/// Published consistency proofs over the CT leaves: (size1, size2, proof),
/// from transparency-dev/merkle proof/verify_test.go (consistencyProofs).
fn ct_consistency_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            5,
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
        (
            6,
            7,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
    ]
}

/// Every single-bit flip of every hash of the proof.
fn bit_flips(proof: &[Hash]) -> impl Iterator<Item = Vec<Hash>> + '_ {
    (0..proof.len()).flat_map(move |i| {
        (0..256).map(move |bit| {
            let mut bad = proof.to_vec();
            bad[i][bit / 8] ^= 1 << (bit % 8);
            bad
        })
    })
}

/// The proof with one hash dropped, at each position.
fn drops(proof: &[Hash]) -> impl Iterator<Item = Vec<Hash>> + '_ {
    (0..proof.len()).map(move |i| {
        let mut bad = proof.to_vec();
        bad.remove(i);
        bad
    })
}

/// The proof with one hash added, at the front, in the middle and at the end.
fn additions(proof: &[Hash], extra: Hash) -> Vec<Vec<Hash>> {
    let mut positions = vec![0, proof.len() / 2, proof.len()];
    positions.dedup();
    positions
        .into_iter()
        .map(|i| {
            let mut bad = proof.to_vec();
            bad.insert(i, extra);
            bad
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Known answers.

#[test]
fn ct_roots_match_the_reference_and_the_tree() {
    let leaves = ct_leaves();
    let tree = tree_of(&leaves);
    for (size, expected) in CT_ROOTS.iter().enumerate() {
        let expected = h(expected);
        assert_eq!(ref_mth(&leaves[..size]), expected, "reference root of size {size}");
        assert_eq!(tree.root_at(size as u64).unwrap(), expected, "tree root of size {size}");
        assert_eq!(tree_of(&leaves[..size]).root(), expected, "grown root of size {size}");
    }
}

#[test]
fn ct_nodes_are_what_the_store_holds() {
    let tree = tree_of(&ct_leaves());
    for (level, index, expected) in CT_NODES {
        assert_eq!(tree.store().get(level, index), Some(h(expected)), "node ({level}, {index})");
    }
    assert_eq!(tree.store().node_count(), CT_NODES.len(), "only complete subtrees are stored");
}

#[test]
fn ct_inclusion_vectors_match_and_verify() {
    let leaves = ct_leaves();
    let tree = tree_of(&leaves);
    for (index, size, expected) in ct_inclusion_vectors() {
        let i = index as usize;
        assert_eq!(ref_path(i, &leaves[..size as usize]), expected, "reference {index}/{size}");
        assert_eq!(tree.inclusion_proof(index, size).unwrap(), expected, "tree {index}/{size}");
        let root = h(CT_ROOTS[size as usize]);
        verify_inclusion(&leaf_hash(&leaves[i]), index, size, &expected, &root).unwrap();
    }
}

#[test]
fn ct_consistency_vectors_match_and_verify() {
    let leaves = ct_leaves();
    let tree = tree_of(&leaves);
    for (size1, size2, expected) in ct_consistency_vectors() {
        let reference = ref_proof(size1 as usize, &leaves[..size2 as usize]);
        assert_eq!(reference, expected, "reference {size1}->{size2}");
        assert_eq!(tree.consistency_proof(size1, size2).unwrap(), expected, "tree {size1}->{size2}");
        let (root1, root2) = (h(CT_ROOTS[size1 as usize]), h(CT_ROOTS[size2 as usize]));
        verify_consistency(size1, size2, &root1, &root2, &expected).unwrap();
    }
}

// ---------------------------------------------------------------------------
// Every proof of every tree of up to 64 leaves.

const EXHAUSTIVE_MAX: usize = 64;

#[test]
fn every_inclusion_proof_up_to_64_leaves_matches_verifies_and_resists_mutation() {
    let leaves = distinct_leaves(EXHAUSTIVE_MAX);
    let tree = tree_of(&leaves);
    let roots: Vec<Hash> = (0..=EXHAUSTIVE_MAX).map(|n| ref_mth(&leaves[..n])).collect();
    for size in 0..=EXHAUSTIVE_MAX {
        assert_eq!(tree.root_at(size as u64).unwrap(), roots[size], "root_at({size})");
        for index in 0..size {
            check_inclusion(&tree, &leaves, &roots, index, size);
        }
        // No proof for a leaf outside the tree.
        assert_eq!(
            tree.inclusion_proof(size as u64, size as u64),
            Err(ProofError::IndexOutOfRange { index: size as u64, size: size as u64 })
        );
    }
}

fn check_inclusion(tree: &Tree<MemStore>, leaves: &[Vec<u8>], roots: &[Hash], index: usize, size: usize) {
    let (i, n) = (index as u64, size as u64);
    let proof = tree.inclusion_proof(i, n).unwrap();
    let context = format!("inclusion {index}/{size}");
    assert_eq!(proof, ref_path(index, &leaves[..size]), "{context}");
    let leaf = leaf_hash(&leaves[index]);
    let root = roots[size];
    verify_inclusion(&leaf, i, n, &proof, &root).unwrap_or_else(|e| panic!("{context}: {e}"));

    let refuse = |leaf: &Hash, i: u64, n: u64, proof: &[Hash], root: &Hash, what: &str| {
        assert!(verify_inclusion(leaf, i, n, proof, root).is_err(), "{context}: accepted {what}");
    };
    for bad in bit_flips(&proof) {
        refuse(&leaf, i, n, &bad, &root, "a flipped bit");
    }
    for bad in drops(&proof) {
        refuse(&leaf, i, n, &bad, &root, "a dropped hash");
    }
    for bad in additions(&proof, root) {
        refuse(&leaf, i, n, &bad, &root, "an added hash");
    }
    let mut wrong_leaf = leaf;
    wrong_leaf[0] ^= 1;
    refuse(&wrong_leaf, i, n, &proof, &root, "a wrong leaf");
    let mut wrong_root = root;
    wrong_root[31] ^= 0x80;
    refuse(&leaf, i, n, &proof, &wrong_root, "a wrong root");
    for other in 0..size as u64 + 2 {
        if other != i {
            refuse(&leaf, other, n, &proof, &root, "a wrong index");
        }
    }
    // A wrong size is checked against the true root of that size: the
    // statement "leaf i is in the tree of n' leaves with root R(n')" is then
    // true, so only the honest proof for it may verify. (The same proof
    // against the root of the right size can verify for another size with
    // the same shape: tree size is not bound by the hashes, RFC 9162 binds
    // it in the signed tree head.)
    for other in [n.saturating_sub(1), n + 1, n * 2, n / 2] {
        if other != n && (other as usize) < roots.len() && ref_path_or_none(index, other, leaves) != Some(proof.clone()) {
            refuse(&leaf, i, other, &proof, &roots[other as usize], "a wrong size");
        }
    }
}

fn ref_path_or_none(index: usize, size: u64, leaves: &[Vec<u8>]) -> Option<Vec<Hash>> {
    (index < size as usize).then(|| ref_path(index, &leaves[..size as usize]))
}

#[test]
fn every_consistency_proof_up_to_64_leaves_matches_verifies_and_resists_mutation() {
    let leaves = distinct_leaves(EXHAUSTIVE_MAX);
    let tree = tree_of(&leaves);
    let roots: Vec<Hash> = (0..=EXHAUSTIVE_MAX).map(|n| ref_mth(&leaves[..n])).collect();
    for size2 in 0..=EXHAUSTIVE_MAX {
        for size1 in 0..=size2 {
            check_consistency(&tree, &leaves, &roots, size1, size2);
        }
    }
}

fn check_consistency(tree: &Tree<MemStore>, leaves: &[Vec<u8>], roots: &[Hash], size1: usize, size2: usize) {
    let (m, n) = (size1 as u64, size2 as u64);
    let (root1, root2) = (roots[size1], roots[size2]);
    let context = format!("consistency {size1}->{size2}");
    if size1 == 0 && size2 > 0 {
        assert_eq!(tree.consistency_proof(m, n), Err(ProofError::EmptyOldTree), "{context}");
        assert_eq!(verify_consistency(m, n, &root1, &root2, &[]), Err(ProofError::EmptyOldTree));
        return;
    }
    let proof = tree.consistency_proof(m, n).unwrap();
    assert_eq!(proof, ref_proof(size1, &leaves[..size2]), "{context}");
    verify_consistency(m, n, &root1, &root2, &proof).unwrap_or_else(|e| panic!("{context}: {e}"));

    let refuse = |m: u64, n: u64, root1: &Hash, root2: &Hash, proof: &[Hash], what: &str| {
        assert!(verify_consistency(m, n, root1, root2, proof).is_err(), "{context}: accepted {what}");
    };
    for bad in bit_flips(&proof) {
        refuse(m, n, &root1, &root2, &bad, "a flipped bit");
    }
    for bad in drops(&proof) {
        refuse(m, n, &root1, &root2, &bad, "a dropped hash");
    }
    for bad in additions(&proof, root1) {
        refuse(m, n, &root1, &root2, &bad, "an added old root");
    }
    for bad in additions(&proof, root2) {
        refuse(m, n, &root1, &root2, &bad, "an added new root");
    }
    let mut wrong = root1;
    wrong[0] ^= 1;
    refuse(m, n, &wrong, &root2, &proof, "a wrong old root");
    let mut wrong = root2;
    wrong[0] ^= 1;
    refuse(m, n, &root1, &wrong, &proof, "a wrong new root");
    if root1 != root2 {
        refuse(m, n, &root2, &root1, &proof, "swapped roots");
    }
    // Wrong sizes, checked against the true roots of those sizes (see
    // check_inclusion): only the honest proof of that statement may verify.
    let max = roots.len() as u64 - 1;
    let wrong_sizes = [(m.wrapping_sub(1), n), (m + 1, n), (m ^ 2, n), (m, n + 1), (m, n.wrapping_sub(1)), (m, n * 2), (m, n / 2)];
    for (m2, n2) in wrong_sizes {
        if (m2, n2) == (m, n) || m2 > max || n2 > max || m2 > n2 || m2 == 0 {
            continue;
        }
        if ref_proof(m2 as usize, &leaves[..n2 as usize]) != proof {
            refuse(m2, n2, &roots[m2 as usize], &roots[n2 as usize], &proof, "wrong sizes");
        }
    }
}

// ---------------------------------------------------------------------------
// Edge cases, table-driven through one helper.

fn check_verify_consistency(size1: u64, size2: u64, root1: Hash, root2: Hash, proof: &[Hash], expected: Result<(), ProofError>) {
    assert_eq!(
        verify_consistency(size1, size2, &root1, &root2, proof),
        expected,
        "verify_consistency({size1}, {size2}, .., {} hashes)",
        proof.len()
    );
}

/// size1, size2, root1, root2, proof, expected.
type ConsistencyCase = (u64, u64, Hash, Hash, Vec<Hash>, Result<(), ProofError>);

#[test]
fn consistency_edge_cases_follow_rfc_9162() {
    let (a, b) = ([1u8; 32], [2u8; 32]);
    let empty = empty_root();
    let cases: Vec<ConsistencyCase> = vec![
        (0, 0, empty, empty, vec![], Ok(())),
        (0, 0, a, b, vec![], Err(ProofError::RootsDiffer)),
        (1, 1, a, a, vec![], Ok(())),
        (1, 1, a, b, vec![], Err(ProofError::RootsDiffer)),
        (1, 1, a, a, vec![a], Err(ProofError::NonEmptyProofForEqualSizes { len: 1 })),
        (0, 1, empty, a, vec![], Err(ProofError::EmptyOldTree)),
        (0, 5, empty, a, vec![a], Err(ProofError::EmptyOldTree)),
        (2, 1, a, b, vec![], Err(ProofError::OldSizeGreater { size1: 2, size2: 1 })),
        (1, 2, a, b, vec![], Err(ProofError::EmptyProof)),
        (3, 4, a, b, vec![a], Err(ProofError::ProofTooShort { len: 1 })),
        (1, 2, a, b, vec![a, b], Err(ProofError::ProofTooLong { len: 2 })),
    ];
    for (size1, size2, root1, root2, proof, expected) in cases {
        check_verify_consistency(size1, size2, root1, root2, &proof, expected);
    }
}

#[test]
fn inclusion_edge_cases_follow_rfc_9162() {
    let leaf = leaf_hash(b"data");
    let other = [7u8; 32];
    type InclusionCase = (u64, u64, Vec<Hash>, Hash, Result<(), ProofError>);
    let cases: Vec<InclusionCase> = vec![
        // A one-leaf tree's root is its leaf hash and the proof is empty.
        (0, 1, vec![], leaf, Ok(())),
        (0, 1, vec![], other, Err(ProofError::RootMismatch)),
        (0, 1, vec![other], leaf, Err(ProofError::ProofTooLong { len: 1 })),
        (0, 0, vec![], leaf, Err(ProofError::IndexOutOfRange { index: 0, size: 0 })),
        (2, 1, vec![], leaf, Err(ProofError::IndexOutOfRange { index: 2, size: 1 })),
        (0, 2, vec![], leaf, Err(ProofError::ProofTooShort { len: 0 })),
        (u64::MAX - 1, u64::MAX, vec![], leaf, Err(ProofError::ProofTooShort { len: 0 })),
    ];
    for (index, size, proof, root, expected) in cases {
        assert_eq!(
            verify_inclusion(&leaf, index, size, &proof, &root),
            expected,
            "verify_inclusion({index}, {size}, {} hashes)",
            proof.len()
        );
    }
}

#[test]
fn generation_refuses_sizes_beyond_the_tree() {
    let tree = tree_of(&distinct_leaves(5));
    let beyond = ProofError::SizeBeyondTree { size: 6, tree_size: 5 };
    assert_eq!(tree.root_at(6).err(), Some(beyond.clone()));
    assert_eq!(tree.inclusion_proof(0, 6).err(), Some(beyond.clone()));
    assert_eq!(tree.consistency_proof(1, 6).err(), Some(beyond));
    assert_eq!(tree.consistency_proof(4, 3), Err(ProofError::OldSizeGreater { size1: 4, size2: 3 }));
    assert_eq!(tree.consistency_proof(3, 3), Ok(vec![]));
    assert_eq!(tree.consistency_proof(0, 0), Ok(vec![]));
    assert_eq!(tree.leaf_hash_at(5), Err(ProofError::IndexOutOfRange { index: 5, size: 5 }));
    assert_eq!(tree.leaf_hash_at(4), Ok(leaf_hash(&4u64.to_be_bytes())));
}

// ---------------------------------------------------------------------------
// Storage: O(1) amortised puts, O(log n) gets, reopening.

/// A store that counts its reads and writes.
#[derive(Default)]
struct CountingStore {
    inner: MemStore,
    gets: Cell<u64>,
    puts: u64,
}

impl NodeStore for CountingStore {
    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        self.gets.set(self.gets.get() + 1);
        self.inner.get(level, index)
    }

    fn put(&mut self, level: u8, index: u64, hash: Hash) {
        self.puts += 1;
        self.inner.put(level, index, hash);
    }
}

#[test]
fn appends_use_amortised_constant_puts_and_no_gets() {
    let mut tree = Tree::new(CountingStore::default());
    let n = 10_000u64;
    for i in 0..n {
        tree.append(&i.to_be_bytes());
    }
    let store = tree.store();
    assert_eq!(store.gets.get(), 0, "append reads nothing");
    // One leaf plus one node per completed parent: fewer than 2n in total.
    assert!(store.puts < 2 * n, "{} puts for {n} leaves", store.puts);
}

#[test]
fn proofs_read_logarithmically_many_nodes() {
    let n = 5_000u64;
    let mut tree = Tree::new(CountingStore::default());
    for i in 0..n {
        tree.append(&i.to_be_bytes());
    }
    // log2(5000) < 13; a proof reads at most ~2 log n nodes (its siblings and
    // one right-edge subtree folded from complete subtrees).
    let bound = 2 * 64 - u64::from(n.leading_zeros()) * 2 + 2;
    let reads = |f: &dyn Fn(&Tree<CountingStore>)| {
        let before = tree.store().gets.get();
        f(&tree);
        tree.store().gets.get() - before
    };
    for (index, size) in [(0, n), (n - 1, n), (1234, 4321), (4095, 4097), (0, 1), (17, 18)] {
        let gets = reads(&|t| {
            t.inclusion_proof(index, size).unwrap();
        });
        assert!(gets <= bound, "inclusion {index}/{size}: {gets} gets > {bound}");
    }
    for (size1, size2) in [(1, n), (n - 1, n), (1234, 4321), (4096, 4097), (3, 5000)] {
        let gets = reads(&|t| {
            t.consistency_proof(size1, size2).unwrap();
        });
        assert!(gets <= bound, "consistency {size1}->{size2}: {gets} gets > {bound}");
    }
    for size in [1, 1000, 4097, n - 1] {
        let gets = reads(&|t| {
            t.root_at(size).unwrap();
        });
        assert!(gets <= 64, "root_at({size}): {gets} gets");
    }
}

#[test]
fn a_reopened_tree_continues_where_it_stopped() {
    let leaves = distinct_leaves(37);
    let mut whole = tree_of(&leaves[..20]);
    let mut reopened = Tree::open(tree_of(&leaves[..20]).into_store(), 20).unwrap();
    assert_eq!(reopened.root(), whole.root());
    for leaf in &leaves[20..] {
        assert_eq!(reopened.append(leaf), whole.append(leaf));
    }
    assert_eq!(reopened.root(), ref_mth(&leaves));
    assert_eq!(reopened.inclusion_proof(3, 37), whole.inclusion_proof(3, 37));
    // A store that lacks the tree is reported, not trusted.
    assert_eq!(Tree::open(MemStore::new(), 3).err(), Some(ProofError::MissingNode { level: 1, index: 0 }));
}

#[test]
fn the_empty_tree_has_the_empty_root() {
    let tree = Tree::new(MemStore::new());
    assert_eq!(tree.size(), 0);
    assert_eq!(tree.root(), h(CT_ROOTS[0]));
    assert_eq!(tree.root_at(0), Ok(h(CT_ROOTS[0])));
}

// ---------------------------------------------------------------------------
// Larger random trees against the reference.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_trees_match_the_reference(
        size2 in 1usize..=5_000,
        picks in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 4),
    ) {
        let leaves = distinct_leaves(size2);
        let tree = tree_of(&leaves);
        let root2 = ref_mth(&leaves);
        prop_assert_eq!(tree.root(), root2);
        for (a, b) in picks {
            let index = a.index(size2);
            let proof = tree.inclusion_proof(index as u64, size2 as u64).unwrap();
            prop_assert_eq!(&proof, &ref_path(index, &leaves));
            verify_inclusion(&leaf_hash(&leaves[index]), index as u64, size2 as u64, &proof, &root2).unwrap();
            if let Some(flipped) = bit_flips(&proof).nth(b.index(256 * proof.len().max(1))) {
                prop_assert!(verify_inclusion(&leaf_hash(&leaves[index]), index as u64, size2 as u64, &flipped, &root2).is_err());
            }

            let size1 = 1 + b.index(size2);
            let root1 = ref_mth(&leaves[..size1]);
            prop_assert_eq!(tree.root_at(size1 as u64).unwrap(), root1);
            let proof = tree.consistency_proof(size1 as u64, size2 as u64).unwrap();
            prop_assert_eq!(&proof, &ref_proof(size1, &leaves));
            verify_consistency(size1 as u64, size2 as u64, &root1, &root2, &proof).unwrap();
            if let Some(flipped) = bit_flips(&proof).nth(a.index(256 * proof.len().max(1))) {
                prop_assert!(verify_consistency(size1 as u64, size2 as u64, &root1, &root2, &flipped).is_err());
            }
            if !proof.is_empty() {
                prop_assert!(verify_consistency(size1 as u64, size2 as u64, &root1, &root2, &proof[1..]).is_err());
            }
        }
    }
}
