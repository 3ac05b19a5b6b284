//! Settlement as a deterministic fold over the log's entries.
//!
//! [`replay`] folds the entries, from the log's first entry on, into a
//! [`Ledger`]: per order its status and quantities, and the payments the
//! contract terms make due. Nothing is stored that the entries do not imply.
//!
//! Rules (all amounts integer KRW, checked arithmetic: an overflow is an
//! error, never a wrap):
//! - An accepted shipment owes `accepted quantity x unit price - penalty`.
//! - `late days = ceil((arrived_at - order due date) / 1 day)`, at least 0;
//!   `arrived_at` is the earlier of the `at_ms` of `shipment_received` and
//!   the `at_ms` of `shipment_sent` plus the order's `transit_days`: the
//!   buyer alone cannot make a delivery late by recording its receipt late.
//!   An order without `transit_days` (every order written before it
//!   existed) counts from the receipt alone.
//! - `penalty = late days x penalty per day`, limited so that the penalties of
//!   all shipments of the order together stay within the order's cap, and
//!   never more than the shipment's gross amount (a payment is never
//!   negative).
//! - The payment is due `payment_term_days` days after the acceptance, whose
//!   time is the `at_ms` of the `delivery_accepted` entry.
//! - The instruction ID is [`instruction_id`]: hex of SHA-256 over order and
//!   shipment IDs, truncated to 16 bytes.
//! - A delivery may be accepted only when its inspection passes [`judge`]:
//!   the sample is at least the contract's sample size, or every unit
//!   received when the shipment is smaller than that, and holds at most the
//!   allowed defects. The buyer may reject any received delivery; a rejected
//!   shipment's quantity may be shipped again under a new shipment ID.
//! - A bank file pays instructed, unconfirmed payments above zero
//!   (`payments_exported`). A payment is in at most one export, unless a
//!   later export names the one it is in as the export it re-issues: paying
//!   twice takes the buyer's explicit decision, never a second download.
//!
//! Invariant: every `payment_instructed` entry equals the instruction these
//! rules compute for its shipment; a mismatch fails the replay, naming the
//! entry.
//!
//! Invariant: an event that repeats one already applied (an order issued
//! twice, a shipment received twice, a second inspection, decision,
//! instruction or confirmation) is rejected with [`SettleError::Duplicate`],
//! never silently ignored: a log that says the same thing twice was written by
//! a faulty or malicious writer, and settlement must stop rather than guess.
//!
//! Invariant: who may record what: the buyer issues the order, records
//! receipt, inspection, acceptance or rejection, payment instructions and
//! confirmations; the supplier accepts the order and sends shipments. Design
//! events do not take part in settlement and are only sequence-checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sha2::{Digest, Sha256};

use crate::entry::{
    DeliveryAccepted, DeliveryRejected, ENTRY_VERSION, ENTRY_VERSION_UNSALTED, Entry, Event, InspectionRecorded, OrderIssued,
    PaymentConfirmed, PaymentInstruction, PaymentsExported, Sha256Hex, ShipmentMoved,
};

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// Why the entries do not settle. Every variant names the entry (`seq`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettleError {
    /// Entries must be the log from its start, in order.
    #[error("entry {seq}: expected seq {expected} (replay needs the log from its start, in order)")]
    OutOfSequence {
        /// The entry's seq.
        seq: u64,
        /// The seq expected at its position.
        expected: u64,
    },
    /// An entry version this crate does not settle.
    #[error("entry {seq}: unsupported entry version {version}")]
    UnsupportedVersion {
        /// The entry.
        seq: u64,
        /// Its version.
        version: u8,
    },
    /// The event names an order that was never issued.
    #[error("entry {seq}: unknown order {order_id:?}")]
    UnknownOrder {
        /// The entry.
        seq: u64,
        /// The order it names.
        order_id: String,
    },
    /// The event names a shipment that was never sent.
    #[error("entry {seq}: unknown shipment {shipment_id:?} of order {order_id:?}")]
    UnknownShipment {
        /// The entry.
        seq: u64,
        /// The order it names.
        order_id: String,
        /// The shipment it names.
        shipment_id: String,
    },
    /// The event repeats one already applied.
    #[error("entry {seq}: duplicate event: {what}")]
    Duplicate {
        /// The entry.
        seq: u64,
        /// What was already recorded.
        what: String,
    },
    /// The actor may not record this event.
    #[error("entry {seq}: {actor:?} may not record {event}; only {allowed:?} may")]
    WrongActor {
        /// The entry.
        seq: u64,
        /// The event type.
        event: &'static str,
        /// The entry's actor.
        actor: String,
        /// The organisation allowed to.
        allowed: String,
    },
    /// The event comes before what it depends on, or after the shipment was
    /// decided.
    #[error("entry {seq}: {event} not allowed now: {reason}")]
    OutOfOrder {
        /// The entry.
        seq: u64,
        /// The event type.
        event: &'static str,
        /// What is missing or already final.
        reason: &'static str,
    },
    /// A quantity breaks the order or the shipment.
    #[error("entry {seq}: invalid quantity: {reason}")]
    Quantity {
        /// The entry.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// The delivery was accepted although its inspection fails the plan.
    #[error("entry {seq}: delivery may not be accepted: {verdict}")]
    AcceptanceRefused {
        /// The entry.
        seq: u64,
        /// The rule's verdict.
        verdict: Verdict,
    },
    /// A logged payment instruction differs from the computed one.
    #[error("entry {seq}: payment instruction differs from the rules: expected {expected:?}, found {found:?}")]
    InstructionMismatch {
        /// The entry.
        seq: u64,
        /// What the rules compute.
        expected: Box<PaymentInstruction>,
        /// What the log holds.
        found: Box<PaymentInstruction>,
    },
    /// A payment event for which no payment is due or instructed.
    #[error("entry {seq}: no payment is due for {what}")]
    NothingDue {
        /// The entry.
        seq: u64,
        /// The shipment or instruction named.
        what: String,
    },
    /// A bank-file export the rules refuse (a payment already exported, not
    /// payable, or a repeated or unknown message id).
    #[error("entry {seq}: export refused: {reason}")]
    Export {
        /// The entry.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// Integer arithmetic left the range of its type.
    #[error("entry {seq}: arithmetic overflow computing {what}")]
    Overflow {
        /// The entry.
        seq: u64,
        /// The quantity being computed.
        what: &'static str,
    },
}

/// Why [`judge`] refuses a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The inspection passes the plan: the delivery may be accepted.
    Accept,
    /// Fewer units sampled than the plan requires.
    SampleTooSmall {
        /// Units sampled.
        sampled: u32,
        /// Units the plan requires.
        required: u32,
    },
    /// More defects found than the plan allows.
    TooManyDefects {
        /// Defects found.
        defects: u32,
        /// Defects allowed.
        allowed: u32,
    },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => write!(f, "inspection passes"),
            Verdict::SampleTooSmall { sampled, required } => {
                write!(f, "sample of {sampled} is below the required {required}")
            }
            Verdict::TooManyDefects { defects, allowed } => {
                write!(f, "{defects} defects exceed the {allowed} allowed")
            }
        }
    }
}

/// The acceptance rule: accept only if the inspection sampled at least the
/// contract's sample size, capped at the `received_quantity` units of the
/// shipment, and found at most the allowed defects.
///
/// The cap matters for a shipment smaller than the sample size (the last
/// few units of an order): a sample can never be larger than what arrived,
/// so without it such a shipment could never be accepted. Inspecting every
/// unit received is the strictest inspection possible. (Logs written under
/// the uncapped rule still replay: it accepted a subset of what this one
/// accepts.)
pub fn judge(order: &OrderIssued, inspection: &InspectionRecorded, received_quantity: u64) -> Verdict {
    let plan = order.acceptance;
    // A received quantity above u32::MAX cannot cap a u32 sample size.
    let required = u32::try_from(received_quantity).map_or(plan.sample_size, |received| plan.sample_size.min(received));
    if inspection.sampled < required {
        return Verdict::SampleTooSmall { sampled: inspection.sampled, required };
    }
    if inspection.defects > plan.allowed_defects {
        return Verdict::TooManyDefects { defects: inspection.defects, allowed: plan.allowed_defects };
    }
    Verdict::Accept
}

/// The instruction ID of a shipment's payment: lowercase hex of the first 16
/// bytes of SHA-256("fc-ledger/payment-instruction/v1" || u64 big-endian
/// length of `order_id` || `order_id` || `shipment_id`). The length prefix
/// keeps ("ab", "c") and ("a", "bc") apart.
pub fn instruction_id(order_id: &str, shipment_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"fc-ledger/payment-instruction/v1");
    hasher.update((order_id.len() as u64).to_be_bytes());
    hasher.update(order_id.as_bytes());
    hasher.update(shipment_id.as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Issued by the buyer, not yet accepted by the supplier.
    Issued,
    /// Accepted by the supplier, nothing shipped yet.
    Accepted,
    /// Shipments under way, or fewer units accepted than ordered.
    InDelivery,
    /// Every ordered unit accepted; some payment not yet confirmed.
    Delivered,
    /// Every ordered unit accepted and every payment confirmed.
    Settled,
}

/// What became of a shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The buyer accepted `quantity` units at `at_ms`.
    Accepted {
        /// Units accepted.
        quantity: u64,
        /// Time of the `delivery_accepted` entry.
        at_ms: i64,
    },
    /// The buyer rejected the shipment.
    Rejected {
        /// Why, for people.
        reason: String,
    },
}

/// One shipment of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    /// Units sent.
    pub sent_quantity: u64,
    /// When it was sent.
    pub sent_at_ms: i64,
    /// Units received and when, once received.
    pub received: Option<(u64, i64)>,
    /// The inspection, once recorded.
    pub inspection: Option<InspectionRecorded>,
    /// Acceptance or rejection, once decided.
    pub decision: Option<Decision>,
}

impl Shipment {
    /// Units this shipment holds against the order: the accepted units once
    /// accepted, none once rejected, the sent units while undecided.
    fn committed_quantity(&self) -> u64 {
        match &self.decision {
            Some(Decision::Accepted { quantity, .. }) => *quantity,
            Some(Decision::Rejected { .. }) => 0,
            None => self.sent_quantity,
        }
    }
}

/// The settlement state of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderState {
    /// The contract terms from `order_issued`.
    pub terms: OrderIssued,
    /// Where the order stands.
    pub status: OrderStatus,
    /// Units received over all shipments.
    pub received_quantity: u64,
    /// Units accepted over all shipments.
    pub accepted_quantity: u64,
    /// Late penalties charged so far, at most the order's cap.
    pub penalty_charged_krw: u64,
    /// Shipments by shipment ID.
    pub shipments: BTreeMap<String, Shipment>,
    supplier_accepted: bool,
    /// Payments of this order not yet confirmed.
    unconfirmed_payments: u64,
}

/// Where a payment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Computed from an acceptance; the service must append its
    /// `payment_instructed` entry.
    Due,
    /// Logged by the `payment_instructed` entry `seq`.
    Instructed {
        /// The instructing entry.
        seq: u64,
    },
    /// The bank confirmed it.
    Confirmed {
        /// The bank's reference.
        bank_reference: String,
    },
}

/// A payment for one accepted shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// What is owed.
    pub instruction: PaymentInstruction,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The message id of the latest bank file that pays it, once exported.
    pub export: Option<String>,
}

/// A bank file the buyer exported (`payments_exported`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The file's message id.
    pub message_id: String,
    /// The instructions it pays, in file order.
    pub instruction_ids: Vec<String>,
    /// SHA-256 of the file.
    pub file_sha256: Sha256Hex,
    /// The export it re-issues, if any.
    pub reissue_of: Option<String>,
    /// The recording entry.
    pub seq: u64,
    /// When it was recorded.
    pub at_ms: i64,
}

impl Payment {
    /// Whether a bank file may pay it: instructed, not confirmed, above zero.
    pub fn is_payable(&self) -> bool {
        matches!(self.status, PaymentStatus::Instructed { .. }) && self.instruction.amount_krw > 0
    }
}

/// The settlement state the entries imply (read-only: only entries change
/// it).
///
/// Applying an entry costs O(log n) map operations (plus the shipments of
/// its order), so the service can keep a `Ledger` and apply each new entry
/// instead of replaying the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Orders by order ID.
    orders: BTreeMap<String, OrderState>,
    /// Payments in the order of the acceptances that made them due.
    payments: Vec<Payment>,
    /// Index into `payments` by (order ID, shipment ID).
    payment_by_shipment: BTreeMap<(String, String), usize>,
    /// Index into `payments` by instruction ID.
    payment_by_id: BTreeMap<String, usize>,
    /// Indexes of the payments still `Due`, in acceptance order.
    due: BTreeSet<usize>,
    /// Bank-file exports by message id.
    exports: BTreeMap<String, Export>,
    next_seq: u64,
    /// Accept gaps in `seq` (a member's view of the log: only the entries it
    /// may read), still refusing any seq at or below one already applied.
    sparse: bool,
}

/// Folds the log's entries, from its first on, into a [`Ledger`].
pub fn replay(entries: &[Entry]) -> Result<Ledger, SettleError> {
    let mut ledger = Ledger::new();
    for entry in entries {
        ledger.apply(entry)?;
    }
    Ok(ledger)
}

/// Folds a member's view of the log (see [`Ledger::sparse`]).
pub fn replay_sparse(entries: &[Entry]) -> Result<Ledger, SettleError> {
    let mut ledger = Ledger::sparse();
    for entry in entries {
        ledger.apply(entry)?;
    }
    Ok(ledger)
}

/// The payment instructions the service must append after replaying
/// `entries`: one per accepted shipment not yet instructed, in acceptance
/// order.
pub fn instructions_due(entries: &[Entry]) -> Result<Vec<PaymentInstruction>, SettleError> {
    Ok(replay(entries)?.instructions_due())
}

impl Ledger {
    /// The state before any entry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A ledger that folds a member's view of the log: the entries of the
    /// orders it is party to, in log order but with gaps in `seq`.
    ///
    /// Settlement of an order depends only on that order's entries (design
    /// events are not settled), so the amounts a supplier computes from its
    /// view equal those computed from the whole log.
    pub fn sparse() -> Self {
        Self { sparse: true, ..Self::default() }
    }

    /// The seq the next entry must have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Orders by order ID.
    pub fn orders(&self) -> &BTreeMap<String, OrderState> {
        &self.orders
    }

    /// The order with this ID.
    pub fn order(&self, order_id: &str) -> Option<&OrderState> {
        self.orders.get(order_id)
    }

    /// Every payment, in the order of the acceptances that made them due.
    pub fn payments(&self) -> &[Payment] {
        &self.payments
    }

    /// Payments computed but not yet instructed, in acceptance order.
    pub fn instructions_due(&self) -> Vec<PaymentInstruction> {
        self.due.iter().map(|&index| self.payments[index].instruction.clone()).collect()
    }

    /// The payment with this instruction ID.
    pub fn payment(&self, instruction_id: &str) -> Option<&Payment> {
        let index = *self.payment_by_id.get(instruction_id)?;
        self.payments.get(index)
    }

    /// Bank-file exports by message id.
    pub fn exports(&self) -> &BTreeMap<String, Export> {
        &self.exports
    }

    /// Payments a new bank file pays: instructed, unconfirmed, above zero and
    /// in no export yet, in acceptance order.
    pub fn exportable(&self) -> impl Iterator<Item = &Payment> {
        self.payments.iter().filter(|p| p.is_payable() && p.export.is_none())
    }

    /// Applies the next entry. On error the ledger is unchanged, so a service
    /// can check an entry before appending it.
    ///
    /// Invariant (of every handler below): all checks, including checked
    /// arithmetic, come before the first change, so a refused entry leaves
    /// no trace.
    pub fn apply(&mut self, entry: &Entry) -> Result<(), SettleError> {
        let seq = entry.seq;
        if seq != self.next_seq && !(self.sparse && seq > self.next_seq) {
            return Err(SettleError::OutOfSequence { seq, expected: self.next_seq });
        }
        if entry.version != ENTRY_VERSION && entry.version != ENTRY_VERSION_UNSALTED {
            return Err(SettleError::UnsupportedVersion { seq, version: entry.version });
        }
        self.apply_event(entry)?;
        self.next_seq = seq + 1;
        Ok(())
    }

    fn apply_event(&mut self, entry: &Entry) -> Result<(), SettleError> {
        let ctx = Context { seq: entry.seq, at_ms: entry.at_ms, actor: &entry.actor_org };
        match &entry.event {
            Event::DesignPublished(_) | Event::DesignAccessChanged(_) => Ok(()),
            Event::OrderIssued(order) => self.order_issued(ctx, order),
            Event::OrderAccepted(accepted) => self.order_accepted(ctx, &accepted.order_id),
            Event::ShipmentSent(sent) => self.shipment_sent(ctx, sent),
            Event::ShipmentReceived(received) => self.shipment_received(ctx, received),
            Event::InspectionRecorded(inspection) => self.inspection_recorded(ctx, inspection),
            Event::DeliveryAccepted(accepted) => self.delivery_accepted(ctx, accepted),
            Event::DeliveryRejected(rejected) => self.delivery_rejected(ctx, rejected),
            Event::PaymentInstructed(instruction) => self.payment_instructed(ctx, instruction),
            Event::PaymentConfirmed(confirmed) => self.payment_confirmed(ctx, confirmed),
            Event::PaymentsExported(exported) => self.payments_exported(ctx, exported),
        }
    }

    fn order_issued(&mut self, ctx: Context<'_>, order: &OrderIssued) -> Result<(), SettleError> {
        ctx.require_actor("order_issued", &order.buyer_org)?;
        if self.orders.contains_key(&order.order_id) {
            return Err(ctx.duplicate(format!("order {:?} already issued", order.order_id)));
        }
        if order.quantity == 0 {
            return Err(ctx.quantity("an order must be for at least one unit".to_owned()));
        }
        self.orders.insert(
            order.order_id.clone(),
            OrderState {
                terms: order.clone(),
                status: OrderStatus::Issued,
                received_quantity: 0,
                accepted_quantity: 0,
                penalty_charged_krw: 0,
                shipments: BTreeMap::new(),
                supplier_accepted: false,
                unconfirmed_payments: 0,
            },
        );
        Ok(())
    }

    fn order_accepted(&mut self, ctx: Context<'_>, order_id: &str) -> Result<(), SettleError> {
        let order = self.order_mut(ctx, order_id)?;
        ctx.require_actor("order_accepted", &order.terms.supplier_org)?;
        if order.supplier_accepted {
            return Err(ctx.duplicate(format!("order {order_id:?} already accepted")));
        }
        order.supplier_accepted = true;
        self.refresh_status(order_id);
        Ok(())
    }

    fn shipment_sent(&mut self, ctx: Context<'_>, sent: &ShipmentMoved) -> Result<(), SettleError> {
        let order = self.order_mut(ctx, &sent.order_id)?;
        ctx.require_actor("shipment_sent", &order.terms.supplier_org)?;
        if !order.supplier_accepted {
            return Err(ctx.out_of_order("shipment_sent", "the supplier has not accepted the order"));
        }
        if order.shipments.contains_key(&sent.shipment_id) {
            return Err(ctx.duplicate(format!("shipment {:?} already sent", sent.shipment_id)));
        }
        if sent.quantity == 0 {
            return Err(ctx.quantity("a shipment must hold at least one unit".to_owned()));
        }
        let committed = order
            .shipments
            .values()
            .try_fold(sent.quantity, |sum, s| sum.checked_add(s.committed_quantity()))
            .ok_or_else(|| ctx.overflow("units committed to the order"))?;
        if committed > order.terms.quantity {
            return Err(
                ctx.quantity(format!("shipping {} would commit {committed} units to an order of {}", sent.quantity, order.terms.quantity))
            );
        }
        order.shipments.insert(
            sent.shipment_id.clone(),
            Shipment { sent_quantity: sent.quantity, sent_at_ms: sent.at_ms, received: None, inspection: None, decision: None },
        );
        self.refresh_status(&sent.order_id);
        Ok(())
    }

    fn shipment_received(&mut self, ctx: Context<'_>, received: &ShipmentMoved) -> Result<(), SettleError> {
        let order = self.order_mut(ctx, &received.order_id)?;
        ctx.require_actor("shipment_received", &order.terms.buyer_org)?;
        let received_total = order.received_quantity.checked_add(received.quantity).ok_or_else(|| ctx.overflow("units received"))?;
        let shipment = shipment_mut(ctx, order, &received.order_id, &received.shipment_id)?;
        if shipment.received.is_some() {
            return Err(ctx.duplicate(format!("shipment {:?} already received", received.shipment_id)));
        }
        if received.quantity > shipment.sent_quantity {
            return Err(ctx.quantity(format!("received {} units of a shipment of {}", received.quantity, shipment.sent_quantity)));
        }
        shipment.received = Some((received.quantity, received.at_ms));
        order.received_quantity = received_total;
        Ok(())
    }

    fn inspection_recorded(&mut self, ctx: Context<'_>, inspection: &InspectionRecorded) -> Result<(), SettleError> {
        let order = self.order_mut(ctx, &inspection.order_id)?;
        ctx.require_actor("inspection_recorded", &order.terms.buyer_org)?;
        let shipment = shipment_mut(ctx, order, &inspection.order_id, &inspection.shipment_id)?;
        let Some((received_quantity, _)) = shipment.received else {
            return Err(ctx.out_of_order("inspection_recorded", "the shipment was not received"));
        };
        if shipment.inspection.is_some() {
            return Err(ctx.duplicate(format!("shipment {:?} already inspected", inspection.shipment_id)));
        }
        if shipment.decision.is_some() {
            return Err(ctx.out_of_order("inspection_recorded", "the shipment is already decided"));
        }
        if u64::from(inspection.sampled) > received_quantity {
            return Err(ctx.quantity(format!("sampled {} units of {} received", inspection.sampled, received_quantity)));
        }
        if inspection.defects > inspection.sampled {
            return Err(ctx.quantity(format!("{} defects in a sample of {}", inspection.defects, inspection.sampled)));
        }
        shipment.inspection = Some(inspection.clone());
        Ok(())
    }

    fn delivery_accepted(&mut self, ctx: Context<'_>, accepted: &DeliveryAccepted) -> Result<(), SettleError> {
        let order = self.order_mut(ctx, &accepted.order_id)?;
        ctx.require_actor("delivery_accepted", &order.terms.buyer_org)?;
        let shipment = shipment_of(ctx, order, &accepted.order_id, &accepted.shipment_id)?;
        let (received_quantity, received_at_ms) = open_received(ctx, shipment, "delivery_accepted")?;
        let arrived_at_ms = arrival(&order.terms, shipment.sent_at_ms, received_at_ms);
        let Some(inspection) = &shipment.inspection else {
            return Err(ctx.out_of_order("delivery_accepted", "the shipment was not inspected"));
        };
        let verdict = judge(&order.terms, inspection, received_quantity);
        if verdict != Verdict::Accept {
            return Err(SettleError::AcceptanceRefused { seq: ctx.seq, verdict });
        }
        let quantity = accepted.accepted_quantity;
        if quantity == 0 || quantity > received_quantity {
            return Err(
                ctx.quantity(format!("accepted {quantity} units of {received_quantity} received (must be 1 to {received_quantity})"))
            );
        }
        let accepted_total = order.accepted_quantity.checked_add(quantity).ok_or_else(|| ctx.overflow("units accepted"))?;
        let instruction =
            compute_instruction(ctx, &order.terms, &accepted.shipment_id, quantity, arrived_at_ms, order.penalty_charged_krw)?;
        // Checks done; commit.
        order.accepted_quantity = accepted_total;
        // Cannot overflow: compute_instruction keeps the sum within the cap.
        order.penalty_charged_krw += instruction.penalty_krw;
        order.unconfirmed_payments += 1;
        if let Some(shipment) = order.shipments.get_mut(&accepted.shipment_id) {
            shipment.decision = Some(Decision::Accepted { quantity, at_ms: ctx.at_ms });
        }
        self.record_due_payment(instruction);
        self.refresh_status(&accepted.order_id);
        Ok(())
    }

    fn record_due_payment(&mut self, instruction: PaymentInstruction) {
        let index = self.payments.len();
        self.payment_by_shipment.insert((instruction.order_id.clone(), instruction.shipment_id.clone()), index);
        self.payment_by_id.insert(instruction.instruction_id.clone(), index);
        self.due.insert(index);
        self.payments.push(Payment { instruction, status: PaymentStatus::Due, export: None });
    }

    fn delivery_rejected(&mut self, ctx: Context<'_>, rejected: &DeliveryRejected) -> Result<(), SettleError> {
        let order = self.order_mut(ctx, &rejected.order_id)?;
        ctx.require_actor("delivery_rejected", &order.terms.buyer_org)?;
        let shipment = shipment_mut(ctx, order, &rejected.order_id, &rejected.shipment_id)?;
        open_received(ctx, shipment, "delivery_rejected")?;
        shipment.decision = Some(Decision::Rejected { reason: rejected.reason.clone() });
        self.refresh_status(&rejected.order_id);
        Ok(())
    }

    fn payment_instructed(&mut self, ctx: Context<'_>, found: &PaymentInstruction) -> Result<(), SettleError> {
        let order = self.order_mut(ctx, &found.order_id)?;
        ctx.require_actor("payment_instructed", &order.terms.buyer_org)?;
        let key = (found.order_id.clone(), found.shipment_id.clone());
        let index = *self.payment_by_shipment.get(&key).ok_or_else(|| SettleError::NothingDue {
            seq: ctx.seq,
            what: format!("shipment {:?} of order {:?}", found.shipment_id, found.order_id),
        })?;
        let payment = &mut self.payments[index];
        if payment.status != PaymentStatus::Due {
            return Err(ctx.duplicate(format!("payment {} already instructed", payment.instruction.instruction_id)));
        }
        if payment.instruction != *found {
            return Err(SettleError::InstructionMismatch {
                seq: ctx.seq,
                expected: Box::new(payment.instruction.clone()),
                found: Box::new(found.clone()),
            });
        }
        payment.status = PaymentStatus::Instructed { seq: ctx.seq };
        self.due.remove(&index);
        Ok(())
    }

    fn payment_confirmed(&mut self, ctx: Context<'_>, confirmed: &PaymentConfirmed) -> Result<(), SettleError> {
        let nothing_due = || SettleError::NothingDue { seq: ctx.seq, what: format!("instruction {:?}", confirmed.instruction_id) };
        let index = *self.payment_by_id.get(&confirmed.instruction_id).ok_or_else(nothing_due)?;
        let payment = &mut self.payments[index];
        let order = self.orders.get_mut(&payment.instruction.order_id).ok_or_else(nothing_due)?; // unreachable: payments belong to orders
        ctx.require_actor("payment_confirmed", &order.terms.buyer_org)?;
        match payment.status {
            PaymentStatus::Due => return Err(nothing_due()),
            PaymentStatus::Confirmed { .. } => {
                return Err(ctx.duplicate(format!("payment {} already confirmed", confirmed.instruction_id)));
            }
            PaymentStatus::Instructed { .. } => {}
        }
        payment.status = PaymentStatus::Confirmed { bank_reference: confirmed.bank_reference.clone() };
        order.unconfirmed_payments -= 1; // this payment was counted, unconfirmed
        let order_id = payment.instruction.order_id.clone();
        self.refresh_status(&order_id);
        Ok(())
    }

    fn payments_exported(&mut self, ctx: Context<'_>, exported: &PaymentsExported) -> Result<(), SettleError> {
        let refuse = |reason: String| SettleError::Export { seq: ctx.seq, reason };
        if self.exports.contains_key(&exported.message_id) {
            return Err(ctx.duplicate(format!("export {:?} already recorded", exported.message_id)));
        }
        if exported.instruction_ids.is_empty() {
            return Err(refuse("an export pays at least one payment".to_owned()));
        }
        if let Some(original) = &exported.reissue_of
            && !self.exports.contains_key(original)
        {
            return Err(refuse(format!("export {original:?} to re-issue does not exist")));
        }
        let mut indexes = Vec::with_capacity(exported.instruction_ids.len());
        for id in &exported.instruction_ids {
            let index =
                *self.payment_by_id.get(id).ok_or_else(|| SettleError::NothingDue { seq: ctx.seq, what: format!("instruction {id:?}") })?;
            if indexes.contains(&index) {
                return Err(refuse(format!("payment {id} is listed twice")));
            }
            let payment = &self.payments[index];
            let buyer = self.orders.get(&payment.instruction.order_id).map(|o| o.terms.buyer_org.as_str()).unwrap_or_default();
            ctx.require_actor("payments_exported", buyer)?;
            if !payment.is_payable() {
                return Err(refuse(format!("payment {id} is not payable (not instructed, already confirmed, or 0 KRW)")));
            }
            if payment.export != exported.reissue_of {
                return Err(refuse(match &payment.export {
                    Some(m) => format!("payment {id} is already in export {m}; re-issue that export to pay it again"),
                    None => format!("payment {id} was never exported, so it cannot be re-issued"),
                }));
            }
            indexes.push(index);
        }
        // Checks done; commit.
        for index in indexes {
            self.payments[index].export = Some(exported.message_id.clone());
        }
        self.exports.insert(
            exported.message_id.clone(),
            Export {
                message_id: exported.message_id.clone(),
                instruction_ids: exported.instruction_ids.clone(),
                file_sha256: exported.file_sha256,
                reissue_of: exported.reissue_of.clone(),
                seq: ctx.seq,
                at_ms: ctx.at_ms,
            },
        );
        Ok(())
    }

    fn order_mut(&mut self, ctx: Context<'_>, order_id: &str) -> Result<&mut OrderState, SettleError> {
        self.orders.get_mut(order_id).ok_or_else(|| SettleError::UnknownOrder { seq: ctx.seq, order_id: order_id.to_owned() })
    }

    /// Recomputes an order's status from its quantities and payments.
    fn refresh_status(&mut self, order_id: &str) {
        let Some(order) = self.orders.get_mut(order_id) else {
            return;
        };
        order.status = if !order.supplier_accepted {
            OrderStatus::Issued
        } else if order.accepted_quantity >= order.terms.quantity {
            if order.unconfirmed_payments == 0 { OrderStatus::Settled } else { OrderStatus::Delivered }
        } else if order.shipments.is_empty() {
            OrderStatus::Accepted
        } else {
            OrderStatus::InDelivery
        };
    }
}

/// The entry being applied.
#[derive(Clone, Copy)]
struct Context<'a> {
    seq: u64,
    at_ms: i64,
    actor: &'a str,
}

impl Context<'_> {
    fn require_actor(&self, event: &'static str, allowed: &str) -> Result<(), SettleError> {
        if self.actor != allowed {
            return Err(SettleError::WrongActor { seq: self.seq, event, actor: self.actor.to_owned(), allowed: allowed.to_owned() });
        }
        Ok(())
    }

    fn duplicate(&self, what: String) -> SettleError {
        SettleError::Duplicate { seq: self.seq, what }
    }

    fn quantity(&self, reason: String) -> SettleError {
        SettleError::Quantity { seq: self.seq, reason }
    }

    fn out_of_order(&self, event: &'static str, reason: &'static str) -> SettleError {
        SettleError::OutOfOrder { seq: self.seq, event, reason }
    }

    fn overflow(&self, what: &'static str) -> SettleError {
        SettleError::Overflow { seq: self.seq, what }
    }
}

fn shipment_of<'a>(ctx: Context<'_>, order: &'a OrderState, order_id: &str, shipment_id: &str) -> Result<&'a Shipment, SettleError> {
    order.shipments.get(shipment_id).ok_or_else(|| SettleError::UnknownShipment {
        seq: ctx.seq,
        order_id: order_id.to_owned(),
        shipment_id: shipment_id.to_owned(),
    })
}

fn shipment_mut<'a>(
    ctx: Context<'_>,
    order: &'a mut OrderState,
    order_id: &str,
    shipment_id: &str,
) -> Result<&'a mut Shipment, SettleError> {
    order.shipments.get_mut(shipment_id).ok_or_else(|| SettleError::UnknownShipment {
        seq: ctx.seq,
        order_id: order_id.to_owned(),
        shipment_id: shipment_id.to_owned(),
    })
}

/// The receipt of a shipment that is received and not yet decided.
fn open_received(ctx: Context<'_>, shipment: &Shipment, event: &'static str) -> Result<(u64, i64), SettleError> {
    if let Some(decision) = &shipment.decision {
        let what = match decision {
            Decision::Accepted { .. } => "shipment already accepted",
            Decision::Rejected { .. } => "shipment already rejected",
        };
        return Err(ctx.duplicate(what.to_owned()));
    }
    shipment.received.ok_or_else(|| ctx.out_of_order(event, "the shipment was not received"))
}

/// The payment the rules make due for an accepted shipment.
fn compute_instruction(
    ctx: Context<'_>,
    terms: &OrderIssued,
    shipment_id: &str,
    accepted_quantity: u64,
    arrived_at_ms: i64,
    penalty_charged_krw: u64,
) -> Result<PaymentInstruction, SettleError> {
    let gross = accepted_quantity.checked_mul(terms.unit_price_krw).ok_or_else(|| ctx.overflow("accepted quantity x unit price"))?;
    let days = late_days(arrived_at_ms, terms.due_date_ms);
    let uncapped = days.checked_mul(terms.late_penalty_per_day_krw).ok_or_else(|| ctx.overflow("late days x penalty per day"))?;
    let cap_left = terms.late_penalty_cap_krw.saturating_sub(penalty_charged_krw);
    let penalty = uncapped.min(cap_left).min(gross);
    let term_ms = i64::from(terms.payment_term_days).checked_mul(DAY_MS).ok_or_else(|| ctx.overflow("payment term"))?;
    let due_date_ms = ctx.at_ms.checked_add(term_ms).ok_or_else(|| ctx.overflow("payment due date"))?;
    Ok(PaymentInstruction {
        order_id: terms.order_id.clone(),
        shipment_id: shipment_id.to_owned(),
        amount_krw: gross - penalty,
        penalty_krw: penalty,
        due_date_ms,
        instruction_id: instruction_id(&terms.order_id, shipment_id),
    })
}

/// When lateness counts from: the recorded receipt, or the sending plus the
/// order's transit allowance when that is earlier.
pub fn arrival(terms: &OrderIssued, sent_at_ms: i64, received_at_ms: i64) -> i64 {
    let Some(days) = terms.transit_days else {
        return received_at_ms;
    };
    // At most 2^32 days in ms, far inside i64; saturating only near i64::MAX,
    // where the receipt is the earlier anyway.
    received_at_ms.min(sent_at_ms.saturating_add(i64::from(days) * DAY_MS))
}

/// Started days between the due date and the receipt, 0 when on time.
pub fn late_days(received_at_ms: i64, due_date_ms: i64) -> u64 {
    // i128 holds any difference of two i64 exactly.
    let late_ms = i128::from(received_at_ms) - i128::from(due_date_ms);
    if late_ms <= 0 {
        return 0;
    }
    let day = i128::from(DAY_MS);
    // At most 2^64 ms / 1 day, far inside u64.
    u64::try_from((late_ms + day - 1) / day).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_days_round_up_started_days() {
        let cases = [
            (0, 0, 0),
            (-5, 0, 0),
            (1, 0, 1),
            (DAY_MS, 0, 1),
            (DAY_MS + 1, 0, 2),
            (5 * DAY_MS / 2, 0, 3),
            (i64::MAX, i64::MIN, 213_503_982_335),
            (i64::MIN, i64::MAX, 0),
        ];
        for (received, due, expected) in cases {
            assert_eq!(late_days(received, due), expected, "received {received}, due {due}");
        }
    }

    #[test]
    fn instruction_ids_separate_their_parts() {
        assert_ne!(instruction_id("ab", "c"), instruction_id("a", "bc"));
        assert_eq!(instruction_id("o", "s"), instruction_id("o", "s"));
        assert_eq!(instruction_id("o", "s").len(), 32);
    }
}
