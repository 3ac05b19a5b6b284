//! Inclusion and consistency proofs as served to clients: the pure types and
//! their JSON form live in [`fc_ledger::proof`] (fuzzed and property-tested);
//! this module keeps the old paths.
//!
//! Boundary: the JSON of these structs is exactly what
//! `factorychain verify inclusion|consistency` reads.

pub use fc_ledger::proof::{ConsistencyProof, InclusionProof, ProofJsonError};
