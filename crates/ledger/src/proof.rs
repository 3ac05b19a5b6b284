//! Inclusion and consistency proofs in the JSON form the REST API serves and
//! `factorychain verify inclusion|consistency` reads (moved here from
//! `fc-settlement`, which re-exports them, so the parser is pure, fuzzed and
//! property-tested):
//!
//! - inclusion: `{"leaf_index","tree_size","leaf_hash","root_hash","hashes":[hex...]}`;
//! - consistency: `{"size1","size2","root1","root2","hashes":[hex...]}`.
//!
//! Boundary: exactly these field names, hashes as 64 lowercase hex digits (one
//! spelling per hash), no other fields.
//!
//! Invariants: parsing and verifying never panic; whatever `parse` accepts,
//! `to_json` writes back to JSON that parses to the same proof.

use crate::merkle::{Hash, ProofError, leaf_hash, verify_consistency, verify_inclusion};
use serde::{Deserialize, Serialize};

/// A proof file or response that is not a proof's JSON form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("proof JSON: {0}")]
pub struct ProofJsonError(pub String);

/// Proof that a leaf is in the tree of `tree_size` leaves (RFC 9162 2.1.3).
///
/// JSON: `{"leaf_index","tree_size","leaf_hash","root_hash","hashes":[hex...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// Index of the leaf in the log.
    pub leaf_index: u64,
    /// Size of the tree the proof is for.
    pub tree_size: u64,
    /// The leaf hash as stored by the log: SHA-256(0x00 || entry).
    #[serde(with = "hex_hash")]
    pub leaf_hash: Hash,
    /// Root of the tree of `tree_size` leaves, as computed by the log.
    #[serde(with = "hex_hash")]
    pub root_hash: Hash,
    /// The audit path, from the leaf up.
    #[serde(with = "hex_hashes")]
    pub hashes: Vec<Hash>,
}

impl InclusionProof {
    /// Reads the JSON form (a proof file, a REST response).
    pub fn parse(json: &str) -> Result<Self, ProofJsonError> {
        serde_json::from_str(json).map_err(|e| ProofJsonError(e.to_string()))
    }

    /// Writes the JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("integers and hex strings serialise to JSON")
    }

    /// Checks the proof against its own `leaf_hash` and `root_hash`. This
    /// shows the log's answer is self-consistent; a client that holds the
    /// entry and a trusted root uses [`InclusionProof::verify_entry`].
    pub fn verify(&self) -> Result<(), ProofError> {
        verify_inclusion(&self.leaf_hash, self.leaf_index, self.tree_size, &self.hashes, &self.root_hash)
    }

    /// Checks that `entry` is leaf `leaf_index` of the tree of `tree_size`
    /// leaves whose root is `trusted_root` (taken from a verified signed
    /// checkpoint of that size), ignoring the hashes the log stated.
    pub fn verify_entry(&self, entry: &[u8], trusted_root: &Hash) -> Result<(), ProofError> {
        verify_inclusion(&leaf_hash(entry), self.leaf_index, self.tree_size, &self.hashes, trusted_root)
    }
}

/// Proof that the tree of `size2` leaves extends the tree of `size1` leaves
/// (RFC 9162 2.1.4).
///
/// JSON: `{"size1","size2","root1","root2","hashes":[hex...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The old tree size.
    pub size1: u64,
    /// The new tree size.
    pub size2: u64,
    /// Root of the old tree, as computed by the log.
    #[serde(with = "hex_hash")]
    pub root1: Hash,
    /// Root of the new tree, as computed by the log.
    #[serde(with = "hex_hash")]
    pub root2: Hash,
    /// The consistency path.
    #[serde(with = "hex_hashes")]
    pub hashes: Vec<Hash>,
}

impl ConsistencyProof {
    /// Reads the JSON form (a proof file, a REST response).
    pub fn parse(json: &str) -> Result<Self, ProofJsonError> {
        serde_json::from_str(json).map_err(|e| ProofJsonError(e.to_string()))
    }

    /// Writes the JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("integers and hex strings serialise to JSON")
    }

    /// Checks the proof against its own roots. A client compares `root1` and
    /// `root2` with the roots of checkpoints it verified, or calls
    /// [`ConsistencyProof::verify_between`].
    pub fn verify(&self) -> Result<(), ProofError> {
        verify_consistency(self.size1, self.size2, &self.root1, &self.root2, &self.hashes)
    }

    /// Checks the proof between roots the client trusts (from verified
    /// checkpoints of sizes `size1` and `size2`), ignoring the stated roots.
    pub fn verify_between(&self, trusted_root1: &Hash, trusted_root2: &Hash) -> Result<(), ProofError> {
        verify_consistency(self.size1, self.size2, trusted_root1, trusted_root2, &self.hashes)
    }
}

/// A hash from exactly 64 lowercase hex digits (one spelling per hash).
fn parse_hash(text: &str) -> Result<Hash, String> {
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("expected 64 lowercase hex digits, got {:?}", text.chars().take(70).collect::<String>()));
    }
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).map_err(|e| e.to_string())?;
    Ok(hash)
}

mod hex_hash {
    use crate::merkle::Hash;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(hash: &Hash, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(hash))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_hash(&text).map_err(D::Error::custom)
    }
}

mod hex_hashes {
    use crate::merkle::Hash;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(hashes: &[Hash], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(hashes.iter().map(hex::encode))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Hash>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .enumerate()
            .map(|(i, text)| super::parse_hash(text).map_err(|e| D::Error::custom(format!("hashes[{i}]: {e}"))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{MemStore, Tree};

    #[test]
    fn proofs_from_a_tree_round_trip_and_verify() {
        let mut tree = Tree::new(MemStore::new());
        for i in 0..7u8 {
            tree.append(&[i]);
        }
        let old_root = {
            let mut t = Tree::new(MemStore::new());
            for i in 0..3u8 {
                t.append(&[i]);
            }
            t.root()
        };
        let c = ConsistencyProof { size1: 3, size2: 7, root1: old_root, root2: tree.root(), hashes: tree.consistency_proof(3, 7).unwrap() };
        let parsed = ConsistencyProof::parse(&c.to_json()).unwrap();
        assert_eq!(parsed, c);
        parsed.verify().unwrap();
        let bad = c.to_json().replace("\"size1\":3", "\"size1\":3,\"extra\":1");
        assert!(ConsistencyProof::parse(&bad).unwrap_err().to_string().contains("unknown field"));
        let upper = c.to_json().replace(&hex::encode(c.root1), &hex::encode(c.root1).to_uppercase());
        assert!(ConsistencyProof::parse(&upper).unwrap_err().to_string().contains("64 lowercase hex digits"));
    }
}
