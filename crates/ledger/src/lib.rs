//! The verifiable ledger of supplier settlement: pure logic, no I/O.
//!
//! Every settlement event (an order issued, a shipment received, a delivery
//! accepted, a payment instructed, ...) is one [`entry::Entry`], encoded to
//! canonical bytes and appended as one leaf of an append-only Merkle tree
//! ([`merkle`]). The tree head is published as a C2SP `tlog-checkpoint` inside
//! a C2SP `signed-note` ([`note`]), so any transparency-log tool can check that
//! the log only grows and that a given entry is in it. What is owed to whom is
//! not stored anywhere: it is recomputed by folding the entries ([`settle`]).
//!
//! Code map:
//! - [`merkle`]: RFC 9162 tree hashing, a [`merkle::NodeStore`] abstraction so
//!   the service keeps nodes in its database, inclusion and consistency proofs
//!   (generation in O(log n) store reads, verification as RFC 9162 writes it).
//! - [`note`]: `tlog-checkpoint` bodies and Ed25519 `signed-note`s, key
//!   encodings compatible with Go's `golang.org/x/mod/sumdb/note`.
//! - [`entry`]: the versioned, canonical JSON encoding of settlement events.
//! - [`settle`]: the deterministic settlement fold and the acceptance rule.
//! - [`pain001`]: the buyer's payment instructions as an ISO 20022
//!   `pain.001.001.09` credit transfer file for its bank, and its parser.
//! - [`proof`]: the JSON form of inclusion and consistency proofs (what the
//!   REST API serves and `factorychain verify` reads).
//!
//! Invariant: the same entries always give the same bytes, the same tree head
//! and the same settlement; nothing here reads a clock, a file, the network or
//! a random source, except [`note::Signer::generate`] which draws a key seed.
//!
//! Invariant: parsers and verifiers return errors on untrusted input, they do
//! not panic.
//!
//! Errors: each module has one error enum ([`ProofError`], [`NoteError`],
//! [`EntryError`], [`SettleError`], [`Pain001Error`]) because its callers
//! match on that module's failure modes (a proof that is too short is not a
//! bad signature); [`Error`] wraps them for callers that only propagate with
//! `?`. (Our style asks for one enum per crate; five small, precise ones
//! serve the callers of this crate better than one wide one, and [`Error`]
//! is the one.)

pub mod entry;
pub mod merkle;
pub mod note;
pub mod pain001;
pub mod proof;
pub mod settle;

pub use entry::EntryError;
pub use merkle::ProofError;
pub use note::NoteError;
pub use pain001::Pain001Error;
pub use settle::SettleError;

/// Any error of this crate, for callers that only propagate errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Merkle proof was refused or could not be produced.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// A checkpoint, key or signed note was refused.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// An entry could not be decoded.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// The entries do not settle.
    #[error(transparent)]
    Settle(#[from] SettleError),
    /// A payment file could not be written or was refused.
    #[error(transparent)]
    Pain001(#[from] Pain001Error),
}
