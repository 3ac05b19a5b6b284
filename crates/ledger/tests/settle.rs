//! Settlement fold tests: table-driven scenarios through one `check` helper,
//! and a property test that simulates honest logs.

use fc_ledger::entry::{
    AcceptancePlan, DeliveryAccepted, DeliveryRejected, Entry, Event, InspectionRecorded, InspectionSource, OrderAccepted, OrderIssued,
    PaymentConfirmed, PaymentInstruction, ShipmentMoved,
};
use fc_ledger::settle::{DAY_MS, OrderStatus, SettleError, Verdict, instruction_id, instructions_due, judge, replay};
use proptest::prelude::*;

const BUYER: &str = "org-hyundai-body";
const SUPPLIER: &str = "org-daegu-press";
const ORDER: &str = "po-2024-0001";
/// Order due date: day 10 at midnight UTC, counted from the epoch.
const DUE: i64 = 10 * DAY_MS;
const PRICE: u64 = 12_500;
const PER_DAY: u64 = 10_000;
const CAP: u64 = 50_000;
const TERM_DAYS: u32 = 30;

fn terms(quantity: u64) -> OrderIssued {
    OrderIssued {
        order_id: ORDER.into(),
        buyer_org: BUYER.into(),
        supplier_org: SUPPLIER.into(),
        part: "door-hinge-L".into(),
        design_id: "dsg-77".into(),
        design_version: 3,
        quantity,
        unit_price_krw: PRICE,
        due_date_ms: DUE,
        acceptance: AcceptancePlan { sample_size: 13, allowed_defects: 1 },
        payment_term_days: TERM_DAYS,
        late_penalty_per_day_krw: PER_DAY,
        late_penalty_cap_krw: CAP,
        transit_days: None,
    }
}

/// Builds a log: each step gets the next seq; every entry is appended one
/// hour after the previous unless a step sets the time.
struct Log {
    entries: Vec<Entry>,
    now_ms: i64,
}

impl Log {
    fn new() -> Self {
        Self { entries: Vec::new(), now_ms: 0 }
    }

    fn push(mut self, actor: &str, event: Event) -> Self {
        self.now_ms += 3_600_000;
        let seq = self.entries.len() as u64;
        self.entries.push(Entry::new(seq, self.now_ms, actor, event));
        self
    }

    fn at(mut self, at_ms: i64) -> Self {
        self.now_ms = at_ms - 3_600_000;
        self
    }

    fn order(self, quantity: u64) -> Self {
        self.order_with(terms(quantity))
    }

    fn order_with(self, terms: OrderIssued) -> Self {
        self.push(&terms.buyer_org.clone(), Event::OrderIssued(terms))
    }

    fn accept_order(self) -> Self {
        self.push(SUPPLIER, Event::OrderAccepted(OrderAccepted { order_id: ORDER.into() }))
    }

    fn send(self, shipment: &str, quantity: u64) -> Self {
        let at_ms = self.now_ms;
        self.push(SUPPLIER, Event::ShipmentSent(moved(shipment, quantity, at_ms)))
    }

    fn receive(self, shipment: &str, quantity: u64, at_ms: i64) -> Self {
        self.push(BUYER, Event::ShipmentReceived(moved(shipment, quantity, at_ms)))
    }

    fn inspect(self, shipment: &str, sampled: u32, defects: u32) -> Self {
        self.push(
            BUYER,
            Event::InspectionRecorded(InspectionRecorded {
                order_id: ORDER.into(),
                shipment_id: shipment.into(),
                sampled,
                defects,
                source: InspectionSource::Manual,
            }),
        )
    }

    /// Accepts at `at_ms`.
    fn accept(self, shipment: &str, quantity: u64, at_ms: i64) -> Self {
        self.at(at_ms).push(
            BUYER,
            Event::DeliveryAccepted(DeliveryAccepted { order_id: ORDER.into(), shipment_id: shipment.into(), accepted_quantity: quantity }),
        )
    }

    fn reject(self, shipment: &str) -> Self {
        self.push(
            BUYER,
            Event::DeliveryRejected(DeliveryRejected {
                order_id: ORDER.into(),
                shipment_id: shipment.into(),
                reason: "burrs on the hinge pin".into(),
            }),
        )
    }

    fn instruct(self, instruction: PaymentInstruction) -> Self {
        self.push(BUYER, Event::PaymentInstructed(instruction))
    }

    /// Appends exactly what the rules say is due.
    fn instruct_due(mut self) -> Self {
        for instruction in instructions_due(&self.entries).unwrap() {
            self = self.instruct(instruction);
        }
        self
    }

    fn confirm(self, shipment: &str) -> Self {
        self.push(
            BUYER,
            Event::PaymentConfirmed(PaymentConfirmed {
                instruction_id: instruction_id(ORDER, shipment),
                bank_reference: format!("KB-{shipment}"),
            }),
        )
    }
}

fn moved(shipment: &str, quantity: u64, at_ms: i64) -> ShipmentMoved {
    ShipmentMoved { order_id: ORDER.into(), shipment_id: shipment.into(), quantity, at_ms }
}

fn instruction(shipment: &str, amount_krw: u64, penalty_krw: u64, accepted_at_ms: i64) -> PaymentInstruction {
    PaymentInstruction {
        order_id: ORDER.into(),
        shipment_id: shipment.into(),
        amount_krw,
        penalty_krw,
        due_date_ms: accepted_at_ms + i64::from(TERM_DAYS) * DAY_MS,
        instruction_id: instruction_id(ORDER, shipment),
    }
}

/// What a scenario settles to: the order's status and quantities and the
/// instructions due, or the error.
#[derive(Debug, PartialEq)]
enum Expect {
    Settled { status: OrderStatus, received: u64, accepted: u64, due: Vec<PaymentInstruction> },
    Fails(SettleError),
}

/// The one helper every scenario goes through.
fn check(entries: &[Entry], expected: Expect) {
    let got = match replay(entries) {
        Ok(ledger) => {
            let order = ledger.order(ORDER).unwrap();
            Expect::Settled {
                status: order.status,
                received: order.received_quantity,
                accepted: order.accepted_quantity,
                due: ledger.instructions_due(),
            }
        }
        Err(error) => Expect::Fails(error),
    };
    assert_eq!(got, expected);
    // Replay is a pure function of the entries, and of their bytes.
    let decoded: Vec<Entry> = entries.iter().map(|e| Entry::from_bytes(&e.to_bytes()).unwrap()).collect();
    assert_eq!(replay(&decoded), replay(entries));
}

fn settled(status: OrderStatus, received: u64, accepted: u64, due: Vec<PaymentInstruction>) -> Expect {
    Expect::Settled { status, received, accepted, due }
}

const DAY: i64 = DAY_MS;

#[test]
fn on_time_delivery_pays_the_exact_amount() {
    let delivered = Log::new().order(100).accept_order().send("s1", 100).receive("s1", 100, DUE - DAY).inspect("s1", 13, 1);
    let accepted = delivered.accept("s1", 100, DUE);
    let instructed = accepted_clone(&accepted).instruct_due();
    let confirmed = accepted_clone(&instructed).confirm("s1");
    check(&accepted.entries, settled(OrderStatus::Delivered, 100, 100, vec![instruction("s1", 1_250_000, 0, DUE)]));
    check(&instructed.entries, settled(OrderStatus::Delivered, 100, 100, vec![]));
    check(&confirmed.entries, settled(OrderStatus::Settled, 100, 100, vec![]));
    // Received exactly at the due date is on time.
    let at_due = Log::new().order(20).accept_order().send("s1", 20).receive("s1", 20, DUE).inspect("s1", 13, 0);
    let at_due = at_due.accept("s1", 20, DUE + DAY);
    check(&at_due.entries, settled(OrderStatus::Delivered, 20, 20, vec![instruction("s1", 250_000, 0, DUE + DAY)]));
}

fn accepted_clone(log: &Log) -> Log {
    Log { entries: log.entries.clone(), now_ms: log.now_ms }
}

#[test]
fn partial_acceptance_pays_for_accepted_units_only() {
    // 60 of 100 received; 58 accepted: the order stays in delivery.
    let partial = Log::new().order(100).accept_order().send("s1", 60).receive("s1", 60, DUE).inspect("s1", 13, 1);
    let partial = partial.accept("s1", 58, DUE + 2 * DAY);
    check(&partial.entries, settled(OrderStatus::InDelivery, 60, 58, vec![instruction("s1", 58 * PRICE, 0, DUE + 2 * DAY)]));
    // The 42 still owed may be shipped, not one more.
    let rest = accepted_clone(&partial).instruct_due().send("s2", 42).receive("s2", 42, DUE).inspect("s2", 13, 0);
    let rest = rest.accept("s2", 42, DUE + 3 * DAY);
    check(&rest.entries, settled(OrderStatus::Delivered, 102, 100, vec![instruction("s2", 42 * PRICE, 0, DUE + 3 * DAY)]));
    let over = accepted_clone(&partial).send("s2", 43);
    check(
        &over.entries,
        Expect::Fails(SettleError::Quantity { seq: 6, reason: "shipping 43 would commit 101 units to an order of 100".into() }),
    );
}

#[test]
fn late_delivery_is_penalised_per_started_day_up_to_the_cap() {
    let late = |received_at: i64| {
        let log = Log::new().order(20).accept_order().send("s1", 20).receive("s1", 20, received_at).inspect("s1", 13, 0);
        log.accept("s1", 20, received_at + DAY)
    };
    let gross = 20 * PRICE;
    // 2.5 days late: 3 started days, 30 000 KRW, under the 50 000 cap.
    let under = late(DUE + 5 * DAY / 2);
    check(&under.entries, settled(OrderStatus::Delivered, 20, 20, vec![instruction("s1", gross - 30_000, 30_000, DUE + 7 * DAY / 2)]));
    // One millisecond late is one started day.
    let barely = late(DUE + 1);
    check(&barely.entries, settled(OrderStatus::Delivered, 20, 20, vec![instruction("s1", gross - PER_DAY, PER_DAY, DUE + 1 + DAY)]));
    // 20 days late: 200 000 KRW, capped at 50 000.
    let over = late(DUE + 20 * DAY);
    check(&over.entries, settled(OrderStatus::Delivered, 20, 20, vec![instruction("s1", gross - CAP, CAP, DUE + 21 * DAY)]));
}

#[test]
fn lateness_counts_from_the_earlier_of_receipt_and_sending_plus_transit() {
    // Sent one day before the due date; (transit days, received at, late days).
    let sent_at = DUE - DAY;
    let cases = [
        (None, DUE + 5 * DAY, 5),           // no allowance (every older order): the receipt decides, as before
        (Some(2), DUE + 5 * DAY, 1),        // receipt recorded late: sent + 2 days is the arrival
        (Some(2), DUE - DAY / 2, 0),        // received before sent + 2 days: the receipt decides
        (Some(1), DUE + 5 * DAY, 0),        // sent + 1 day is the due date itself: on time
        (Some(0), DUE + 5 * DAY, 0),        // no transit at all: sent before the due date is on time
        (Some(30), DUE + 3 * DAY, 3),       // a long allowance never makes a receipt later
        (Some(u32::MAX), DUE + 3 * DAY, 3), // nor overflows
    ];
    for (transit_days, received_at, late) in cases {
        let order = OrderIssued { transit_days, late_penalty_cap_krw: 1_000_000, ..terms(20) };
        let log = Log::new().order_with(order).accept_order().at(sent_at).send("s1", 20).receive("s1", 20, received_at);
        let log = log.inspect("s1", 13, 0).accept("s1", 20, DUE + 10 * DAY);
        let penalty = late * PER_DAY;
        let expected = instruction("s1", 20 * PRICE - penalty, penalty, DUE + 10 * DAY);
        assert_eq!(replay(&log.entries).unwrap().instructions_due(), vec![expected], "transit {transit_days:?} received {received_at}");
        assert_eq!(
            fc_ledger::settle::late_days(fc_ledger::settle::arrival(&OrderIssued { transit_days, ..terms(1) }, sent_at, received_at), DUE),
            late
        );
    }
}

#[test]
fn the_cap_holds_for_the_whole_order() {
    // Two late shipments: 4 days (40 000) then 3 days (30 000, of which only
    // 10 000 fit under the 50 000 cap).
    let log = Log::new().order(40).accept_order().send("s1", 20).send("s2", 20);
    let log = log.receive("s1", 20, DUE + 4 * DAY).inspect("s1", 13, 0).accept("s1", 20, DUE + 5 * DAY);
    let log = log.receive("s2", 20, DUE + 3 * DAY).inspect("s2", 13, 0).accept("s2", 20, DUE + 6 * DAY);
    check(
        &log.entries,
        settled(
            OrderStatus::Delivered,
            40,
            40,
            vec![
                instruction("s1", 20 * PRICE - 40_000, 40_000, DUE + 5 * DAY),
                instruction("s2", 20 * PRICE - 10_000, 10_000, DUE + 6 * DAY),
            ],
        ),
    );
}

#[test]
fn a_penalty_never_exceeds_what_is_owed() {
    // 30 days late at 10 000 a day is 300 000, under the cap, over the 20 000
    // owed: the payment is zero, not negative.
    let cheap = OrderIssued { unit_price_krw: 1_000, late_penalty_cap_krw: 1_000_000, ..terms(20) };
    let log = Log::new().order_with(cheap).accept_order().send("s1", 20).receive("s1", 20, DUE + 30 * DAY).inspect("s1", 13, 0);
    let log = log.accept("s1", 20, DUE + 31 * DAY);
    check(&log.entries, settled(OrderStatus::Delivered, 20, 20, vec![instruction("s1", 0, 20_000, DUE + 31 * DAY)]));
}

#[test]
fn rejection_then_redelivery() {
    let rejected = Log::new().order(50).accept_order().send("s1", 50).receive("s1", 50, DUE).inspect("s1", 13, 3).reject("s1");
    check(&rejected.entries, settled(OrderStatus::InDelivery, 50, 0, vec![]));
    // The rejected units may be shipped again; the second try passes.
    let redelivered = accepted_clone(&rejected).send("s2", 50).receive("s2", 50, DUE + DAY).inspect("s2", 20, 0);
    let redelivered = redelivered.accept("s2", 50, DUE + 2 * DAY);
    check(
        &redelivered.entries,
        settled(OrderStatus::Delivered, 100, 50, vec![instruction("s2", 50 * PRICE - PER_DAY, PER_DAY, DUE + 2 * DAY)]),
    );
    // Nothing is ever due for the rejected shipment.
    let pay_rejected = accepted_clone(&rejected).instruct(instruction("s1", 50 * PRICE, 0, DUE));
    check(&pay_rejected.entries, Expect::Fails(SettleError::NothingDue { seq: 6, what: format!("shipment \"s1\" of order \"{ORDER}\"") }));
}

#[test]
fn acceptance_follows_the_inspection_rule() {
    let inspected =
        |sampled, defects| Log::new().order(50).accept_order().send("s1", 50).receive("s1", 50, DUE).inspect("s1", sampled, defects);
    let too_many = inspected(13, 2).accept("s1", 50, DUE);
    check(
        &too_many.entries,
        Expect::Fails(SettleError::AcceptanceRefused { seq: 5, verdict: Verdict::TooManyDefects { defects: 2, allowed: 1 } }),
    );
    let too_small = inspected(12, 0).accept("s1", 50, DUE);
    check(
        &too_small.entries,
        Expect::Fails(SettleError::AcceptanceRefused { seq: 5, verdict: Verdict::SampleTooSmall { sampled: 12, required: 13 } }),
    );
    // The last 5 units of an order, below the sample size of 13: all 5 inspected is enough.
    let small = Log::new().order(50).accept_order().send("s1", 5).receive("s1", 5, DUE).inspect("s1", 5, 1).accept("s1", 5, DUE);
    check(&small.entries, settled(OrderStatus::InDelivery, 5, 5, vec![instruction("s1", 5 * PRICE, 0, DUE)]));
    let short = Log::new().order(50).accept_order().send("s1", 5).receive("s1", 5, DUE).inspect("s1", 4, 0).accept("s1", 5, DUE);
    check(
        &short.entries,
        Expect::Fails(SettleError::AcceptanceRefused { seq: 5, verdict: Verdict::SampleTooSmall { sampled: 4, required: 5 } }),
    );
    // Received fewer than were sent: the cap is what arrived.
    let partial = Log::new().order(50).accept_order().send("s1", 10).receive("s1", 6, DUE).inspect("s1", 6, 0).accept("s1", 6, DUE);
    check(&partial.entries, settled(OrderStatus::InDelivery, 6, 6, vec![instruction("s1", 6 * PRICE, 0, DUE)]));
    let uninspected = Log::new().order(50).accept_order().send("s1", 50).receive("s1", 50, DUE).accept("s1", 50, DUE);
    check(
        &uninspected.entries,
        Expect::Fails(SettleError::OutOfOrder { seq: 4, event: "delivery_accepted", reason: "the shipment was not inspected" }),
    );
}

#[test]
fn judge_applies_the_sampling_plan() {
    let order = terms(100);
    // (sampled, defects, received, verdict); the plan samples 13 and allows 1 defect.
    let cases = [
        (13, 0, 100, Verdict::Accept),
        (13, 1, 100, Verdict::Accept),
        (50, 1, 100, Verdict::Accept),
        (13, 2, 100, Verdict::TooManyDefects { defects: 2, allowed: 1 }),
        (12, 0, 100, Verdict::SampleTooSmall { sampled: 12, required: 13 }),
        (0, 0, 100, Verdict::SampleTooSmall { sampled: 0, required: 13 }),
        (13, 0, 13, Verdict::Accept),
        // A shipment smaller than the sample size: every unit received is the whole sample.
        (5, 0, 5, Verdict::Accept),
        (5, 1, 5, Verdict::Accept),
        (5, 2, 5, Verdict::TooManyDefects { defects: 2, allowed: 1 }),
        (4, 0, 5, Verdict::SampleTooSmall { sampled: 4, required: 5 }),
        (1, 0, 1, Verdict::Accept),
        (12, 0, u64::from(u32::MAX) + 1, Verdict::SampleTooSmall { sampled: 12, required: 13 }),
    ];
    for (sampled, defects, received, expected) in cases {
        let inspection =
            InspectionRecorded { order_id: ORDER.into(), shipment_id: "s1".into(), sampled, defects, source: InspectionSource::Telemetry };
        assert_eq!(judge(&order, &inspection, received), expected, "sampled {sampled}, defects {defects}, received {received}");
    }
}

#[test]
fn duplicate_events_are_rejected() {
    let received = || Log::new().order(50).accept_order().send("s1", 50).receive("s1", 50, DUE);
    let duplicate = |seq: u64, what: &str| Expect::Fails(SettleError::Duplicate { seq, what: what.into() });
    check(&received().receive("s1", 50, DUE).entries, duplicate(4, "shipment \"s1\" already received"));
    check(&received().send("s1", 1).entries, duplicate(4, "shipment \"s1\" already sent"));
    check(&Log::new().order(5).order(5).entries, duplicate(1, &format!("order \"{ORDER}\" already issued")));
    check(&Log::new().order(5).accept_order().accept_order().entries, duplicate(2, &format!("order \"{ORDER}\" already accepted")));
    check(&received().inspect("s1", 13, 0).inspect("s1", 13, 0).entries, duplicate(5, "shipment \"s1\" already inspected"));
    check(&received().reject("s1").reject("s1").entries, duplicate(5, "shipment already rejected"));
    let accepted = received().inspect("s1", 13, 0).accept("s1", 50, DUE);
    check(&accepted_clone(&accepted).accept("s1", 50, DUE).entries, duplicate(6, "shipment already accepted"));
    check(&accepted_clone(&accepted).reject("s1").entries, duplicate(6, "shipment already accepted"));
    let id = instruction_id(ORDER, "s1");
    let instructed = accepted_clone(&accepted).instruct_due();
    check(&accepted_clone(&instructed).instruct_due().entries, settled(OrderStatus::Delivered, 50, 50, vec![]));
    check(
        &accepted_clone(&instructed).instruct(instruction("s1", 50 * PRICE, 0, DUE)).entries,
        duplicate(7, &format!("payment {id} already instructed")),
    );
    check(&instructed.confirm("s1").confirm("s1").entries, duplicate(8, &format!("payment {id} already confirmed")));
}

#[test]
fn logged_instructions_must_equal_the_computed_ones() {
    let accepted = Log::new().order(20).accept_order().send("s1", 20).receive("s1", 20, DUE + DAY).inspect("s1", 13, 0);
    let accepted = accepted.accept("s1", 20, DUE + DAY);
    let expected = instruction("s1", 20 * PRICE - PER_DAY, PER_DAY, DUE + DAY);
    let tampered = [
        PaymentInstruction { amount_krw: expected.amount_krw + 1, ..expected.clone() },
        PaymentInstruction { penalty_krw: 0, amount_krw: 20 * PRICE, ..expected.clone() },
        PaymentInstruction { due_date_ms: expected.due_date_ms + DAY, ..expected.clone() },
        PaymentInstruction { instruction_id: "0".repeat(32), ..expected.clone() },
    ];
    for found in tampered {
        let log = accepted_clone(&accepted).instruct(found.clone());
        check(
            &log.entries,
            Expect::Fails(SettleError::InstructionMismatch { seq: 6, expected: Box::new(expected.clone()), found: Box::new(found) }),
        );
    }
    // A confirmation needs an instruction first.
    check(
        &accepted_clone(&accepted).confirm("s1").entries,
        Expect::Fails(SettleError::NothingDue { seq: 6, what: format!("instruction {:?}", instruction_id(ORDER, "s1")) }),
    );
}

#[test]
fn only_the_right_party_records_each_event() {
    let wrong = |seq, event, actor: &str, allowed: &str| {
        Expect::Fails(SettleError::WrongActor { seq, event, actor: actor.into(), allowed: allowed.into() })
    };
    let issued = Log::new().order(5);
    check(
        &accepted_clone(&issued).push(BUYER, Event::OrderAccepted(OrderAccepted { order_id: ORDER.into() })).entries,
        wrong(1, "order_accepted", BUYER, SUPPLIER),
    );
    let sent = Log::new().order(20).accept_order().send("s1", 20);
    check(
        &accepted_clone(&sent).push(SUPPLIER, Event::ShipmentReceived(moved("s1", 20, DUE))).entries,
        wrong(3, "shipment_received", SUPPLIER, BUYER),
    );
    let inspected = accepted_clone(&sent).receive("s1", 20, DUE).inspect("s1", 13, 0);
    let self_accepted = accepted_clone(&inspected).push(
        SUPPLIER,
        Event::DeliveryAccepted(DeliveryAccepted { order_id: ORDER.into(), shipment_id: "s1".into(), accepted_quantity: 20 }),
    );
    check(&self_accepted.entries, wrong(5, "delivery_accepted", SUPPLIER, BUYER));
    let forged = Log::new().order_with(OrderIssued { buyer_org: "org-other".into(), ..terms(5) });
    let mut entries = forged.entries;
    entries[0].actor_org = SUPPLIER.into();
    assert_eq!(
        replay(&entries),
        Err(SettleError::WrongActor { seq: 0, event: "order_issued", actor: SUPPLIER.into(), allowed: "org-other".into() })
    );
}

#[test]
fn events_must_follow_the_order_lifecycle() {
    let out_of_order = |seq, event, reason| Expect::Fails(SettleError::OutOfOrder { seq, event, reason });
    check(&Log::new().order(5).send("s1", 5).entries, out_of_order(1, "shipment_sent", "the supplier has not accepted the order"));
    check(
        &Log::new().order(5).accept_order().send("s1", 5).inspect("s1", 13, 0).entries,
        out_of_order(3, "inspection_recorded", "the shipment was not received"),
    );
    check(
        &Log::new().order(5).accept_order().send("s1", 5).reject("s1").entries,
        out_of_order(3, "delivery_rejected", "the shipment was not received"),
    );
    check(
        &Log::new().order(5).accept_order().receive("s9", 5, DUE).entries,
        Expect::Fails(SettleError::UnknownShipment { seq: 2, order_id: ORDER.into(), shipment_id: "s9".into() }),
    );
    check(&Log::new().accept_order().entries, Expect::Fails(SettleError::UnknownOrder { seq: 0, order_id: ORDER.into() }));
    check(
        &Log::new().order(5).accept_order().send("s1", 5).receive("s1", 6, DUE).entries,
        Expect::Fails(SettleError::Quantity { seq: 3, reason: "received 6 units of a shipment of 5".into() }),
    );
    check(
        &Log::new().order(5).accept_order().send("s1", 5).receive("s1", 5, DUE).inspect("s1", 6, 0).entries,
        Expect::Fails(SettleError::Quantity { seq: 4, reason: "sampled 6 units of 5 received".into() }),
    );
    check(
        &Log::new().order(20).accept_order().send("s1", 20).receive("s1", 20, DUE).inspect("s1", 13, 0).accept("s1", 21, DUE).entries,
        Expect::Fails(SettleError::Quantity { seq: 5, reason: "accepted 21 units of 20 received (must be 1 to 20)".into() }),
    );
    check(
        &Log::new().order(20).accept_order().send("s1", 20).receive("s1", 20, DUE).inspect("s1", 13, 0).accept("s1", 0, DUE).entries,
        Expect::Fails(SettleError::Quantity { seq: 5, reason: "accepted 0 units of 20 received (must be 1 to 20)".into() }),
    );
    check(&Log::new().order(5).entries, settled(OrderStatus::Issued, 0, 0, vec![]));
    check(&Log::new().order(5).accept_order().entries, settled(OrderStatus::Accepted, 0, 0, vec![]));
}

#[test]
fn entries_must_be_the_log_in_order() {
    let mut entries = Log::new().order(5).accept_order().entries;
    entries[1].seq = 5;
    assert_eq!(replay(&entries), Err(SettleError::OutOfSequence { seq: 5, expected: 1 }));
    let mut entries = Log::new().order(5).entries;
    entries[0].version = 3;
    assert_eq!(replay(&entries), Err(SettleError::UnsupportedVersion { seq: 0, version: 3 }));
}

#[test]
fn overflow_is_an_error_not_a_wrap() {
    let huge = OrderIssued { quantity: u64::MAX, unit_price_krw: 2, ..terms(0) };
    let log = Log::new().order_with(huge).accept_order().send("s1", u64::MAX).receive("s1", u64::MAX, DUE).inspect("s1", 13, 0);
    let log = log.accept("s1", u64::MAX, DUE);
    check(&log.entries, Expect::Fails(SettleError::Overflow { seq: 5, what: "accepted quantity x unit price" }));
    let late = OrderIssued { late_penalty_per_day_krw: u64::MAX, ..terms(20) };
    let log = Log::new().order_with(late).accept_order().send("s1", 20).receive("s1", 20, DUE + 2 * DAY).inspect("s1", 13, 0);
    let log = log.accept("s1", 20, DUE);
    check(&log.entries, Expect::Fails(SettleError::Overflow { seq: 5, what: "late days x penalty per day" }));
    let log = Log::new().order(20).accept_order().send("s1", 20).receive("s1", 20, DUE).inspect("s1", 13, 0);
    let log = log.accept("s1", 20, i64::MAX);
    check(&log.entries, Expect::Fails(SettleError::Overflow { seq: 5, what: "payment due date" }));
}

#[test]
fn a_failed_entry_leaves_the_ledger_unchanged() {
    let log = Log::new().order(5).accept_order().send("s1", 5);
    let mut ledger = replay(&log.entries).unwrap();
    let before = ledger.clone();
    let bad = Entry::new(3, 0, SUPPLIER, Event::ShipmentReceived(moved("s1", 5, DUE)));
    assert!(ledger.apply(&bad).is_err());
    assert_eq!(ledger, before);
    assert_eq!(ledger.next_seq(), 3);
}

// ---------------------------------------------------------------------------
// Honest logs, simulated: whatever the deliveries, replay succeeds, appending
// what is due leaves nothing due, and the money adds up.

#[derive(Debug, Clone)]
struct Delivery {
    quantity: u64,
    late_ms: i64,
    sampled: u32,
    defects: u32,
    keep_percent: u64,
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (1u64..=40, -3 * DAY..30 * DAY, 10u32..=20, 0u32..=3, 50u64..=100)
        .prop_map(|(quantity, late_ms, sampled, defects, keep_percent)| Delivery { quantity, late_ms, sampled, defects, keep_percent })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn honest_logs_settle_and_add_up(quantity in 1u64..=100, deliveries in prop::collection::vec(delivery(), 1..12)) {
        let mut log = Log::new().order(quantity).accept_order();
        let mut accepted_total = 0u64;
        for (i, d) in deliveries.iter().enumerate() {
            let remaining = quantity - accepted_total;
            if remaining == 0 {
                break;
            }
            let shipment = format!("s{i}");
            let sent = d.quantity.min(remaining);
            // An inspection samples at most what arrived.
            let sampled = d.sampled.min(u32::try_from(sent).unwrap());
            let defects = d.defects.min(sampled);
            log = log.send(&shipment, sent).receive(&shipment, sent, DUE + d.late_ms).inspect(&shipment, sampled, defects);
            let inspection = InspectionRecorded {
                order_id: ORDER.into(),
                shipment_id: shipment.clone(),
                sampled,
                defects,
                source: InspectionSource::Manual,
            };
            if judge(&terms(quantity), &inspection, sent) == Verdict::Accept {
                let keep = (sent * d.keep_percent / 100).max(1);
                accepted_total += keep;
                let now = log.now_ms + DAY;
                log = log.accept(&shipment, keep, now).instruct_due();
            } else {
                log = log.reject(&shipment);
            }
        }
        let ledger = replay(&log.entries).unwrap();
        prop_assert!(ledger.instructions_due().is_empty());
        let order = ledger.order(ORDER).unwrap();
        prop_assert_eq!(order.accepted_quantity, accepted_total);
        let paid: u64 = ledger.payments().iter().map(|p| p.instruction.amount_krw + p.instruction.penalty_krw).sum();
        prop_assert_eq!(paid, accepted_total * PRICE);
        let penalties: u64 = ledger.payments().iter().map(|p| p.instruction.penalty_krw).sum();
        prop_assert!(penalties <= CAP);
        prop_assert_eq!(penalties, order.penalty_charged_krw);
        let expected_status = if accepted_total == quantity { OrderStatus::Delivered } else { OrderStatus::InDelivery };
        prop_assert_eq!(order.status, expected_status);
        // Every entry survives its canonical encoding.
        for entry in &log.entries {
            prop_assert_eq!(&Entry::from_bytes(&entry.to_bytes()).unwrap(), entry);
        }
        // Replaying any earlier entry again is refused and changes nothing.
        let mut after = ledger.clone();
        for (i, entry) in log.entries.iter().enumerate() {
            let mut again = entry.clone();
            again.seq = ledger.next_seq();
            prop_assert!(after.apply(&again).is_err(), "entry {} applied twice", i);
            prop_assert_eq!(&after, &ledger);
        }
    }
}

#[test]
fn a_members_view_with_gaps_settles_to_the_same_payments() {
    // Another order's entries (here: a design event) sit between this order's.
    let full = Log::new()
        .order(100)
        .push(
            BUYER,
            Event::DesignAccessChanged(fc_ledger::entry::DesignAccessChanged {
                design_id: "dsg-77".into(),
                version: 3,
                recipients: vec![BUYER.into()],
            }),
        )
        .accept_order()
        .send("s1", 100)
        .receive("s1", 100, DUE + 2 * DAY)
        .inspect("s1", 13, 0)
        .accept("s1", 90, DUE + 3 * DAY)
        .instruct_due();
    let whole = fc_ledger::settle::replay(&full.entries).unwrap();
    let view: Vec<Entry> = full.entries.iter().filter(|e| e.seq != 1).cloned().collect();
    assert!(fc_ledger::settle::replay(&view).is_err(), "a strict replay needs every entry");
    let sparse = fc_ledger::settle::replay_sparse(&view).unwrap();
    assert_eq!(sparse.payments(), whole.payments());
    assert_eq!(sparse.orders(), whole.orders());
    // Gaps are allowed, going back is not.
    let mut backwards = view[..3].to_vec();
    backwards.push(view[1].clone());
    assert!(matches!(fc_ledger::settle::replay_sparse(&backwards), Err(SettleError::OutOfSequence { .. })));
}

fn exported(message_id: &str, shipments: &[&str], reissue_of: Option<&str>) -> Event {
    Event::PaymentsExported(fc_ledger::entry::PaymentsExported {
        message_id: message_id.into(),
        instruction_ids: shipments.iter().map(|s| instruction_id(ORDER, s)).collect(),
        file_sha256: fc_ledger::entry::Sha256Hex([7; 32]),
        reissue_of: reissue_of.map(str::to_string),
    })
}

#[test]
fn a_payment_is_exported_once_unless_its_export_is_reissued() {
    let export_refused = |seq, reason: &str| Expect::Fails(SettleError::Export { seq, reason: reason.into() });
    let instructed = Log::new().order(40).accept_order().send("s1", 20).send("s2", 20);
    let instructed = instructed.receive("s1", 20, DUE).inspect("s1", 13, 0).accept("s1", 20, DUE).instruct_due();
    let instructed = instructed.receive("s2", 20, DUE).inspect("s2", 13, 0).accept("s2", 20, DUE).instruct_due();
    let id1 = instruction_id(ORDER, "s1");
    let first = accepted_clone(&instructed).push(BUYER, exported("M1", &["s1", "s2"], None));
    check(&first.entries, settled(OrderStatus::Delivered, 40, 40, vec![]));
    let ledger = replay(&first.entries).unwrap();
    assert_eq!(ledger.payment(&id1).unwrap().export.as_deref(), Some("M1"));
    assert_eq!(ledger.exportable().count(), 0, "nothing is left for a new file");
    assert_eq!(ledger.exports()["M1"].seq, 12);
    // A second export of the same payments is refused: a second download never pays twice.
    check(
        &accepted_clone(&first).push(BUYER, exported("M2", &["s1"], None)).entries,
        export_refused(13, &format!("payment {id1} is already in export M1; re-issue that export to pay it again")),
    );
    // The buyer re-issues M1 explicitly; then M1 may not be re-issued for the same payment again, M2 may.
    let reissued = accepted_clone(&first).push(BUYER, exported("M2", &["s1"], Some("M1")));
    assert_eq!(replay(&reissued.entries).unwrap().payment(&id1).unwrap().export.as_deref(), Some("M2"));
    check(
        &accepted_clone(&reissued).push(BUYER, exported("M3", &["s1"], Some("M1"))).entries,
        export_refused(14, &format!("payment {id1} is already in export M2; re-issue that export to pay it again")),
    );
    check(
        &accepted_clone(&reissued).push(BUYER, exported("M3", &["s1"], Some("M2"))).entries,
        settled(OrderStatus::Delivered, 40, 40, vec![]),
    );
    // Confirmed payments, unknown exports, repeated ids and other actors are refused.
    check(
        &accepted_clone(&first).confirm("s1").push(BUYER, exported("M2", &["s1"], Some("M1"))).entries,
        export_refused(14, &format!("payment {id1} is not payable (not instructed, already confirmed, or 0 KRW)")),
    );
    check(
        &accepted_clone(&first).push(BUYER, exported("M2", &["s1"], Some("M9"))).entries,
        export_refused(13, "export \"M9\" to re-issue does not exist"),
    );
    check(
        &accepted_clone(&first).push(BUYER, exported("M1", &["s1"], Some("M1"))).entries,
        Expect::Fails(SettleError::Duplicate { seq: 13, what: "export \"M1\" already recorded".into() }),
    );
    check(
        &accepted_clone(&instructed).push(BUYER, exported("M1", &["s1", "s1"], None)).entries,
        export_refused(12, &format!("payment {id1} is listed twice")),
    );
    check(
        &accepted_clone(&instructed).push(SUPPLIER, exported("M1", &["s1"], None)).entries,
        Expect::Fails(SettleError::WrongActor { seq: 12, event: "payments_exported", actor: SUPPLIER.into(), allowed: BUYER.into() }),
    );
    // A refused export leaves the ledger as it was.
    let mut ledger = replay(&first.entries).unwrap();
    let before = ledger.clone();
    assert!(ledger.apply(&Entry::new(13, 0, BUYER, exported("M2", &["s2", "s1"], None))).is_err());
    assert_eq!(ledger, before);
}
