//! The settlement service's contract for its callers: the request and answer
//! types of every operation (orders, shipments, designs, payments, bank
//! files, ledger entries), shared by the service, the portal and the CLI.
//! Callers depend on this crate, never on the service's server crate.
//!
//! - the views (this file): data only (serde + OpenAPI schemas);
//! - [`wire`]: the views as the internal gRPC API carries them, both ways;
//! - [`SettlementClient`] (`client.rs`): the internal API's client.

mod client;
pub mod wire;

pub use client::{LogInfo, SettlementClient, UPLOAD_CHUNK, UploadError};

use fc_ledger::settle::PaymentStatus;
use serde::{Deserialize, Serialize};

/// A supply network the caller belongs to.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NetworkView {
    /// The network's id: its buyer's organisation id.
    pub network: String,
    /// The buyer's name.
    pub buyer_name: String,
    /// `buyer` or `supplier`: the caller's side.
    pub role: String,
    /// Entries in its log.
    pub size: u64,
}

/// A design version, as its reader sees it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DesignView {
    /// Design id.
    pub design_id: String,
    /// Version, from 1.
    pub version: u32,
    /// SHA-256 of the ciphertext (lowercase hex).
    pub ciphertext_sha256: String,
    /// Organisations that may download and decrypt it.
    pub recipients: Vec<String>,
    /// When it was published, Unix ms.
    pub published_ms: i64,
    /// The ledger entry that published it.
    pub seq: u64,
    /// Whether the caller may download it.
    pub downloadable: bool,
}

/// A new purchase order (the buyer is the caller).
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    /// Order id (1-35 of `A-Z a-z 0-9 - _ .`); generated when absent.
    #[serde(default)]
    pub order_id: Option<String>,
    /// The supplier: an accepted partner of the buyer.
    pub supplier_org: String,
    /// Part number.
    pub part: String,
    /// The design the part is made to; the supplier must be one of its recipients.
    pub design_id: String,
    /// Its version.
    pub design_version: u32,
    /// Units ordered.
    pub quantity: u64,
    /// Price per unit, KRW.
    pub unit_price_krw: u64,
    /// Delivery due, Unix ms.
    pub due_date_ms: i64,
    /// Units an inspection must sample at least.
    pub sample_size: u32,
    /// Most defects in the sample for acceptance.
    pub allowed_defects: u32,
    /// Days from acceptance to payment.
    pub payment_term_days: u32,
    /// Penalty per started day late, KRW.
    pub late_penalty_per_day_krw: u64,
    /// Most penalty on the whole order, KRW.
    pub late_penalty_cap_krw: u64,
    /// Days a shipment may spend in transit (0-365): lateness counts from the
    /// earlier of the recorded receipt and the sending plus these days.
    /// Absent: from the recorded receipt alone.
    #[serde(default)]
    pub transit_days: Option<u32>,
    /// Confirms a due date already in the past (e.g. an order recorded after
    /// the fact); without it such an order is refused.
    #[serde(default)]
    pub allow_past_due: bool,
}

/// A shipment of an order.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShipmentView {
    /// Shipment id.
    pub shipment_id: String,
    /// Units sent.
    pub sent_quantity: u64,
    /// When sent, Unix ms.
    pub sent_at_ms: i64,
    /// Units received, once received.
    pub received_quantity: Option<u64>,
    /// When received, Unix ms.
    pub received_at_ms: Option<i64>,
    /// Units sampled by the inspection.
    pub sampled: Option<u32>,
    /// Defects found.
    pub defects: Option<u32>,
    /// `manual` or `telemetry`.
    pub inspection_source: Option<String>,
    /// `accepted` or `rejected`, once decided.
    pub decision: Option<String>,
    /// Units accepted.
    pub accepted_quantity: Option<u64>,
    /// Why it was rejected.
    pub rejection_reason: Option<String>,
}

/// An order and where it stands.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderView {
    /// The network (the buyer's id).
    pub network: String,
    /// Order id.
    pub order_id: String,
    /// Buyer.
    pub buyer_org: String,
    /// Supplier.
    pub supplier_org: String,
    /// Part number.
    pub part: String,
    /// Design id.
    pub design_id: String,
    /// Design version.
    pub design_version: u32,
    /// Units ordered.
    pub quantity: u64,
    /// KRW per unit.
    pub unit_price_krw: u64,
    /// Due, Unix ms.
    pub due_date_ms: i64,
    /// Sample size of the acceptance plan.
    pub sample_size: u32,
    /// Allowed defects in the sample.
    pub allowed_defects: u32,
    /// Days from acceptance to payment.
    pub payment_term_days: u32,
    /// Penalty per day late, KRW.
    pub late_penalty_per_day_krw: u64,
    /// Penalty cap, KRW.
    pub late_penalty_cap_krw: u64,
    /// Transit allowance in days, if the order has one.
    pub transit_days: Option<u32>,
    /// `issued`, `accepted`, `in_delivery`, `delivered` or `settled`.
    pub status: String,
    /// Units received.
    pub received_quantity: u64,
    /// Units accepted.
    pub accepted_quantity: u64,
    /// Penalties charged so far, KRW.
    pub penalty_charged_krw: u64,
    /// Shipments.
    pub shipments: Vec<ShipmentView>,
}

/// A payment the ledger made due.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PaymentView {
    /// Deterministic id (from order and shipment).
    pub instruction_id: String,
    /// Order.
    pub order_id: String,
    /// Shipment.
    pub shipment_id: String,
    /// Who is paid.
    pub supplier_org: String,
    /// Amount to pay, KRW, after the penalty.
    pub amount_krw: u64,
    /// Late penalty deducted, KRW.
    pub penalty_krw: u64,
    /// Due, Unix ms.
    pub due_date_ms: i64,
    /// `instructed` or `confirmed`.
    pub status: String,
    /// The bank's reference, once confirmed.
    pub bank_reference: Option<String>,
    /// The message id of the latest bank file that pays it (shown to the buyer only).
    pub export_message_id: Option<String>,
}

/// A bank file the buyer exported (a `payments_exported` entry).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ExportView {
    /// The file's `GrpHdr/MsgId`; also its file name (`<message_id>.xml`).
    pub message_id: String,
    /// The instructions it pays.
    pub instruction_ids: Vec<String>,
    /// Their total, KRW.
    pub amount_krw: u64,
    /// How many of them are not confirmed yet.
    pub unconfirmed: usize,
    /// SHA-256 of the file (lowercase hex), as the ledger recorded it.
    pub file_sha256: String,
    /// The export this one re-issues, if any.
    pub reissue_of: Option<String>,
    /// When it was exported, Unix ms.
    pub exported_ms: i64,
    /// The ledger entry that recorded it.
    pub seq: u64,
}

/// A bank file: its message id and its XML.
#[derive(Clone, Debug)]
pub struct BankFile {
    /// `GrpHdr/MsgId`.
    pub message_id: String,
    /// The ISO 20022 `pain.001.001.09` document.
    pub xml: String,
    /// Payable payments left out of a new file because their supplier has no
    /// bank account (empty for a file downloaded again).
    pub blocked: Vec<BlockedView>,
}

/// Payments no bank file can pay yet: their supplier has not entered a bank
/// account.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct BlockedView {
    /// The supplier's organisation id.
    pub supplier_org: String,
    /// Its name, as people know it.
    pub supplier_name: String,
    /// The payments waiting for its account.
    pub instruction_ids: Vec<String>,
    /// Their total, KRW.
    pub amount_krw: u64,
}

/// An entry the caller may read.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntryView {
    /// Its index (leaf index) in the log.
    pub index: u64,
    /// The entry (its canonical bytes are this JSON with sorted keys and no spaces).
    #[schema(value_type = Object)]
    pub entry: serde_json::Value,
}

/// An inspection computed from an inspection station's readings: every
/// reading of the series in the window is one sampled unit, and a reading
/// outside `[min, max]` a defect.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryInspection {
    /// The inspection station (machine id) of the buyer.
    pub machine: String,
    /// The measured metric, e.g. `bore_diameter_mm`.
    pub metric: String,
    /// Window start, Unix ms (inclusive).
    pub from_ms: i64,
    /// Window end, Unix ms (exclusive).
    pub to_ms: i64,
    /// Lowest good value.
    pub min: f64,
    /// Highest good value.
    pub max: f64,
}

/// A bank account as a bank file names its holder (the portal validates an
/// account with it before saving; the service writes it into the file).
pub fn bank_party(bank: &fc_tenancy_api::BankAccount) -> fc_ledger::pain001::Party {
    use fc_ledger::pain001::{Account, Agent, Party};
    use fc_tenancy_api::{AccountKind, BankKind};
    Party {
        name: bank.holder.clone(),
        account: match bank.account_kind {
            AccountKind::Iban => Account::Iban(bank.account.clone()),
            AccountKind::Domestic => Account::Domestic(bank.account.clone()),
        },
        agent: match bank.bank_kind {
            BankKind::Bic => Agent::Bic(bank.bank.clone()),
            BankKind::BankCode => Agent::BankCode(bank.bank.clone()),
        },
    }
}

/// A payment as statements show it (shared with `factorychain settlement replay`).
pub fn payment_view(p: &fc_ledger::settle::Payment, supplier: &str) -> PaymentView {
    let i = &p.instruction;
    let (status, bank_reference) = match &p.status {
        PaymentStatus::Due => ("due", None),
        PaymentStatus::Instructed { .. } => ("instructed", None),
        PaymentStatus::Confirmed { bank_reference } => ("confirmed", Some(bank_reference.clone())),
    };
    PaymentView {
        instruction_id: i.instruction_id.clone(),
        order_id: i.order_id.clone(),
        shipment_id: i.shipment_id.clone(),
        supplier_org: supplier.to_string(),
        amount_krw: i.amount_krw,
        penalty_krw: i.penalty_krw,
        due_date_ms: i.due_date_ms,
        status: status.into(),
        bank_reference,
        export_message_id: p.export.clone(),
    }
}
