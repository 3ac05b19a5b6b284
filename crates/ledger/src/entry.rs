//! Canonical, versioned encoding of settlement events: the ledger's entries.
//!
//! An [`Entry`] is encoded as JSON with object keys sorted (by their UTF-8
//! bytes) at every depth, no whitespace, integers only, and strings escaped as
//! `serde_json` escapes them (`"` `\\` and control characters, nothing else).
//! Events are internally tagged: `{"type":"order_issued",...}`.
//!
//! Invariant: the same entry always gives the same bytes, and
//! [`Entry::from_bytes`] accepts only bytes that re-encode to themselves, so
//! every entry has exactly one encoding and one leaf hash.
//!
//! Versions: version 2 (written since the salt) is version 1 plus `salt`, 32
//! random bytes in hex that the writer draws per entry. The leaf commits to
//! the salt, and only the entry's readers receive the entry (salt included),
//! so a member holding a leaf hash of an entry hidden from it cannot confirm
//! a guess of its content: the fields are guessable (ids, `at_ms`), 256
//! random bits are not. Version 1 entries (no salt) are still read, folded
//! and verified; their leaf hashes stay guessable, as they always were.
//!
//! Invariant: versions 1 and 2 are the only versions; decoding refuses other
//! versions, a version 1 entry with a salt or a version 2 entry without one,
//! unknown fields, missing fields and non-canonical spellings.
//!
//! Versioning of version 1: a field added to an event after entries were
//! written without it (so far `order_issued.transit_days`) is an `Option`
//! whose `None` the fold treats exactly as the behaviour before the field
//! existed, and the encoder omits it when it is `None`. So old
//! entries decode, re-encode to their own bytes and keep their leaf hashes;
//! an entry that spells the default out is not canonical (one value, one
//! encoding); and a verifier that predates the field refuses an entry that
//! uses it (an unknown field) instead of settling it wrongly.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The entry version the service writes: salted ([`Entry::salted`]).
pub const ENTRY_VERSION: u8 = 2;

/// The first version: no salt ([`Entry::new`]); still read and verified.
pub const ENTRY_VERSION_UNSALTED: u8 = 1;

/// Why bytes were refused as an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Not JSON, or not an object with a numeric `version`.
    #[error("entry is not a JSON object with a version: {0}")]
    Malformed(String),
    /// A version this crate does not know.
    #[error("unsupported entry version {0} (this ledger reads versions {ENTRY_VERSION_UNSALTED} and {ENTRY_VERSION})")]
    UnsupportedVersion(u64),
    /// Valid JSON that does not match its version's schema (unknown or
    /// missing field, wrong type, unknown event type, a salt in version 1 or
    /// none in version 2).
    #[error("entry does not match its version's schema: {0}")]
    Schema(String),
    /// The bytes decode, but are not the canonical encoding of what they
    /// decode to (key order, whitespace, escapes, duplicate keys).
    #[error("entry bytes are not canonical")]
    NonCanonical,
}

/// One entry of the settlement log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Encoding version: [`ENTRY_VERSION`], or [`ENTRY_VERSION_UNSALTED`].
    pub version: u8,
    /// Version 2: random bytes that make the leaf hash unguessable to anyone
    /// without the entry. Absent in version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<Salt>,
    /// The entry's index in the log (its leaf index).
    pub seq: u64,
    /// When the service appended it, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The organisation that caused the event.
    pub actor_org: String,
    /// What happened.
    pub event: Event,
}

impl Entry {
    /// A version 1 entry: no salt, so its leaf hash can be confirmed by
    /// anyone who guesses its fields. For tests and for reading old logs;
    /// the service writes [`Entry::salted`].
    pub fn new(seq: u64, at_ms: i64, actor_org: impl Into<String>, event: Event) -> Self {
        Self { version: ENTRY_VERSION_UNSALTED, salt: None, seq, at_ms, actor_org: actor_org.into(), event }
    }

    /// A version 2 entry committing to `salt`, which the caller draws from a
    /// cryptographic random source, fresh for every entry (this crate reads
    /// no random source).
    pub fn salted(seq: u64, at_ms: i64, actor_org: impl Into<String>, event: Event, salt: [u8; 32]) -> Self {
        Self { version: ENTRY_VERSION, salt: Some(Salt(salt)), seq, at_ms, actor_org: actor_org.into(), event }
    }

    /// The canonical bytes: the leaf the log appends.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising these types to a Value cannot fail: every map key is a
        // string and there are no floats or custom serialisers that error.
        let value = serde_json::to_value(self).expect("entry types serialise to JSON");
        let mut out = Vec::with_capacity(256);
        write_canonical(&value, &mut out);
        out
    }

    /// Decodes canonical bytes, refusing other versions, unknown fields and
    /// any spelling other than the canonical one.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EntryError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| EntryError::Malformed(e.to_string()))?;
        // The version is read first so that a future version's new fields
        // are reported as a version problem, not as unknown fields.
        let version =
            value.get("version").and_then(Value::as_u64).ok_or_else(|| EntryError::Malformed("no numeric version field".to_owned()))?;
        if version != u64::from(ENTRY_VERSION) && version != u64::from(ENTRY_VERSION_UNSALTED) {
            return Err(EntryError::UnsupportedVersion(version));
        }
        let entry: Entry = serde_json::from_value(value).map_err(|e| EntryError::Schema(e.to_string()))?;
        match (entry.version, &entry.salt) {
            (ENTRY_VERSION, None) => return Err(EntryError::Schema("a version 2 entry needs a salt".to_owned())),
            (ENTRY_VERSION_UNSALTED, Some(_)) => return Err(EntryError::Schema("a version 1 entry has no salt".to_owned())),
            _ => {}
        }
        if entry.to_bytes() != bytes {
            return Err(EntryError::NonCanonical);
        }
        Ok(entry)
    }
}

/// Writes `value` as JSON with sorted keys and no whitespace.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            // Sort explicitly: serde_json's map keeps insertion order when
            // another crate in the build enables its `preserve_order` feature.
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, field)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_canonical(field, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        // Numbers (integers only in this schema), booleans and null print the
        // same way every time.
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(Value::from(s).to_string().as_bytes());
}

/// A settlement event. Encoded with `"type"` set to the snake_case variant
/// name, next to the variant's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A buyer published an encrypted design.
    DesignPublished(DesignPublished),
    /// The set of organisations that may decrypt a design version changed.
    DesignAccessChanged(DesignAccessChanged),
    /// A buyer issued a purchase order to a supplier.
    OrderIssued(OrderIssued),
    /// The supplier accepted the order.
    OrderAccepted(OrderAccepted),
    /// The supplier sent a shipment.
    ShipmentSent(ShipmentMoved),
    /// The buyer received a shipment.
    ShipmentReceived(ShipmentMoved),
    /// The buyer inspected a sample of a shipment.
    InspectionRecorded(InspectionRecorded),
    /// The buyer accepted (part of) a shipment.
    DeliveryAccepted(DeliveryAccepted),
    /// The buyer rejected a shipment.
    DeliveryRejected(DeliveryRejected),
    /// A payment instruction for an accepted shipment.
    PaymentInstructed(PaymentInstruction),
    /// The bank confirmed an instructed payment.
    PaymentConfirmed(PaymentConfirmed),
    /// The buyer exported instructed payments to a bank file.
    PaymentsExported(PaymentsExported),
}

/// `design_published`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesignPublished {
    /// Design identifier.
    pub design_id: String,
    /// Design version.
    pub version: u32,
    /// SHA-256 of the encrypted design file.
    pub ciphertext_sha256: Sha256Hex,
    /// Organisations that may decrypt it.
    pub recipients: Vec<String>,
}

/// `design_access_changed`: the complete list of organisations that may
/// decrypt a design version from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesignAccessChanged {
    /// Design identifier.
    pub design_id: String,
    /// Design version.
    pub version: u32,
    /// Organisations that may decrypt it after the change.
    pub recipients: Vec<String>,
}

/// `order_issued`: the contract terms settlement applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderIssued {
    /// Order identifier, unique in the ledger.
    pub order_id: String,
    /// Paying organisation.
    pub buyer_org: String,
    /// Delivering organisation.
    pub supplier_org: String,
    /// Part number.
    pub part: String,
    /// Design the part is made to.
    pub design_id: String,
    /// Version of that design.
    pub design_version: u32,
    /// Units ordered.
    pub quantity: u64,
    /// Price per unit in KRW.
    pub unit_price_krw: u64,
    /// Delivery due date, ms since the Unix epoch.
    pub due_date_ms: i64,
    /// Sampling plan for acceptance.
    pub acceptance: AcceptancePlan,
    /// Days from acceptance to payment.
    pub payment_term_days: u32,
    /// Penalty per started day late, in KRW.
    pub late_penalty_per_day_krw: u64,
    /// Most penalty charged on the whole order, in KRW.
    pub late_penalty_cap_krw: u64,
    /// Days a shipment may spend in transit: lateness counts from the
    /// earlier of its recorded receipt and its sending plus these days, so
    /// the buyer cannot make a delivery late by recording it late. `None`
    /// (absent, as in every entry written before the field) counts from the
    /// receipt alone, as before; `Some(0)` from the sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit_days: Option<u32>,
}

/// The acceptance sampling plan of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptancePlan {
    /// Fewest units an inspection must sample.
    pub sample_size: u32,
    /// Most defective units in the sample for acceptance.
    pub allowed_defects: u32,
}

/// `order_accepted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderAccepted {
    /// Order identifier.
    pub order_id: String,
}

/// `shipment_sent` and `shipment_received`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipmentMoved {
    /// Order identifier.
    pub order_id: String,
    /// Shipment identifier, unique within the order.
    pub shipment_id: String,
    /// Units in the shipment.
    pub quantity: u64,
    /// When it was sent or received, ms since the Unix epoch.
    pub at_ms: i64,
}

/// Who recorded an inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InspectionSource {
    /// An inspector entered it.
    Manual,
    /// Machine telemetry produced it.
    Telemetry,
}

/// `inspection_recorded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectionRecorded {
    /// Order identifier.
    pub order_id: String,
    /// Shipment identifier.
    pub shipment_id: String,
    /// Units sampled.
    pub sampled: u32,
    /// Defective units in the sample.
    pub defects: u32,
    /// Who recorded it.
    pub source: InspectionSource,
}

/// `delivery_accepted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryAccepted {
    /// Order identifier.
    pub order_id: String,
    /// Shipment identifier.
    pub shipment_id: String,
    /// Units accepted (at most the units received).
    pub accepted_quantity: u64,
}

/// `delivery_rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryRejected {
    /// Order identifier.
    pub order_id: String,
    /// Shipment identifier.
    pub shipment_id: String,
    /// Why, for people.
    pub reason: String,
}

/// `payment_instructed`: what the buyer owes for one accepted shipment.
/// [`crate::settle`] computes it; the log must hold exactly that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentInstruction {
    /// Order identifier.
    pub order_id: String,
    /// Shipment identifier.
    pub shipment_id: String,
    /// Amount to pay in KRW, after the penalty.
    pub amount_krw: u64,
    /// Late penalty deducted, in KRW.
    pub penalty_krw: u64,
    /// Payment due date, ms since the Unix epoch.
    pub due_date_ms: i64,
    /// Deterministic identifier derived from order and shipment.
    pub instruction_id: String,
}

/// `payment_confirmed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentConfirmed {
    /// Identifier of the instructed payment.
    pub instruction_id: String,
    /// The bank's reference for the transfer.
    pub bank_reference: String,
}

/// `payments_exported`: the buyer took a bank file (ISO 20022 `pain.001`)
/// paying these instructions. [`crate::settle`] refuses a payment in a second
/// export unless the export says it re-issues the one the payment is in, so
/// a payment reaches the bank once per explicit decision of the buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsExported {
    /// The file's `GrpHdr/MsgId`, unique in the ledger.
    pub message_id: String,
    /// The instructions the file pays, in file order.
    pub instruction_ids: Vec<String>,
    /// SHA-256 of the file's bytes, so a later download can be checked to be
    /// the very file this entry recorded.
    pub file_sha256: Sha256Hex,
    /// The export whose payments this one pays again (the bank refused or
    /// lost that file); `None` for a first export.
    pub reissue_of: Option<String>,
}

/// An entry's salt: 32 random bytes, written as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Salt(pub [u8; 32]);

impl Serialize for Salt {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Sha256Hex(self.0).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Salt {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Sha256Hex::deserialize(deserializer).map(|h| Salt(h.0))
    }
}

/// A SHA-256 digest written as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Hex(pub [u8; 32]);

impl Serialize for Sha256Hex {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Sha256Hex {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        // Lowercase only: an uppercase spelling would be a second encoding.
        if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(serde::de::Error::custom("expected 64 lowercase hex digits"));
        }
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&text, &mut digest).map_err(serde::de::Error::custom)?;
        Ok(Self(digest))
    }
}
