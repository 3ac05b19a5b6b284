//! Entry encoding tests: one fixed known encoding, table-driven refusals, and
//! proptest round trips over every event type.

use fc_ledger::entry::{
    AcceptancePlan, DeliveryAccepted, DeliveryRejected, DesignAccessChanged, DesignPublished, Entry, EntryError, Event, InspectionRecorded,
    InspectionSource, OrderAccepted, OrderIssued, PaymentConfirmed, PaymentInstruction, Sha256Hex, ShipmentMoved,
};
use proptest::prelude::*;

fn sample_entry() -> Entry {
    Entry::new(
        7,
        1_700_000_000_000,
        "org-buyer",
        Event::InspectionRecorded(InspectionRecorded {
            order_id: "po-1".into(),
            shipment_id: "s-1".into(),
            sampled: 13,
            defects: 1,
            source: InspectionSource::Telemetry,
        }),
    )
}

/// The canonical bytes of `sample_entry`, written out by hand: keys sorted at
/// every depth (`type` sorts among the event's own fields), no whitespace.
const SAMPLE_BYTES: &str = concat!(
    r#"{"actor_org":"org-buyer","at_ms":1700000000000,"#,
    r#""event":{"defects":1,"order_id":"po-1","sampled":13,"shipment_id":"s-1","#,
    r#""source":"telemetry","type":"inspection_recorded"},"#,
    r#""seq":7,"version":1}"#
);

#[test]
fn the_encoding_is_sorted_compact_json() {
    assert_eq!(String::from_utf8(sample_entry().to_bytes()).unwrap(), SAMPLE_BYTES);
    assert_eq!(Entry::from_bytes(SAMPLE_BYTES.as_bytes()).unwrap(), sample_entry());
}

/// The one helper the decoding table goes through.
fn check_decode(input: &str, expected: Result<(), fn(&EntryError) -> bool>) {
    let got = Entry::from_bytes(input.as_bytes());
    match (&got, expected) {
        (Ok(_), Ok(())) => {}
        (Err(error), Err(matches)) if matches(error) => {}
        _ => panic!("from_bytes({input:?}) = {got:?}"),
    }
}

#[test]
fn decoding_refuses_everything_but_the_canonical_version_1_bytes() {
    let non_canonical: fn(&EntryError) -> bool = |e| *e == EntryError::NonCanonical;
    let schema: fn(&EntryError) -> bool = |e| matches!(e, EntryError::Schema(_));
    let malformed: fn(&EntryError) -> bool = |e| matches!(e, EntryError::Malformed(_));
    let version_3: fn(&EntryError) -> bool = |e| *e == EntryError::UnsupportedVersion(3);
    let version_0: fn(&EntryError) -> bool = |e| *e == EntryError::UnsupportedVersion(0);
    let event = r#"{"order_id":"po-1","type":"order_accepted"}"#;
    type Matcher = fn(&EntryError) -> bool;
    let cases: Vec<(String, Result<(), Matcher>)> = vec![
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"seq":0,"version":1}}"#), Ok(())),
        // Key order, whitespace, escapes, duplicate keys: other spellings.
        (format!(r#"{{"at_ms":1,"actor_org":"a","event":{event},"seq":0,"version":1}}"#), Err(non_canonical)),
        (format!(r#"{{"actor_org":"a", "at_ms":1,"event":{event},"seq":0,"version":1}}"#), Err(non_canonical)),
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"seq":0,"version":1}}"#) + "\n", Err(non_canonical)),
        (format!(r#"{{"actor_org":"\u0061","at_ms":1,"event":{event},"seq":0,"version":1}}"#), Err(non_canonical)),
        (
            r#"{"actor_org":"a","at_ms":1,"event":{"type":"order_accepted","order_id":"po-1"},"seq":0,"version":1}"#.into(),
            Err(non_canonical),
        ),
        (format!(r#"{{"actor_org":"a","at_ms":1.0,"event":{event},"seq":0,"version":1}}"#), Err(schema)),
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"seq":0,"seq":0,"version":1}}"#), Err(non_canonical)),
        // Unknown or missing fields, unknown event types, wrong types.
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"extra":0,"seq":0,"version":1}}"#), Err(schema)),
        (
            r#"{"actor_org":"a","at_ms":1,"event":{"extra":0,"order_id":"po-1","type":"order_accepted"},"seq":0,"version":1}"#.into(),
            Err(schema),
        ),
        (r#"{"actor_org":"a","at_ms":1,"event":{"type":"order_accepted"},"seq":0,"version":1}"#.into(), Err(schema)),
        (r#"{"actor_org":"a","at_ms":1,"event":{"order_id":"x","type":"order_exploded"},"seq":0,"version":1}"#.into(), Err(schema)),
        (format!(r#"{{"actor_org":"a","event":{event},"seq":0,"version":1}}"#), Err(schema)),
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"seq":-1,"version":1}}"#), Err(schema)),
        (
            r#"{"actor_org":"a","at_ms":1,"event":{"defects":1,"order_id":"o","sampled":1,"shipment_id":"s","source":"guess","type":"inspection_recorded"},"seq":0,"version":1}"#.into(),
            Err(schema),
        ),
        (
            r#"{"actor_org":"a","at_ms":1,"event":{"ciphertext_sha256":"AB","design_id":"d","recipients":[],"type":"design_published","version":1},"seq":0,"version":1}"#.into(),
            Err(schema),
        ),
        (
            format!(
                r#"{{"actor_org":"a","at_ms":1,"event":{{"ciphertext_sha256":"{}","design_id":"d","recipients":[],"type":"design_published","version":1}},"seq":0,"version":1}}"#,
                "AB".repeat(32)
            ),
            Err(schema),
        ),
        // Versions.
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"salt":"{}","seq":0,"version":2}}"#, "ab".repeat(32)), Ok(())),
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"seq":0,"version":2}}"#), Err(schema)),
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"salt":"{}","seq":0,"version":1}}"#, "ab".repeat(32)), Err(schema)),
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"salt":"{}","seq":0,"version":2}}"#, "AB".repeat(32)), Err(schema)),
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"salt":"ab","seq":0,"version":2}}"#), Err(schema)),
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"salt":null,"seq":0,"version":2}}"#), Err(schema)),
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"seq":0,"version":3}}"#), Err(version_3)),
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"new_field":1,"seq":0,"version":3}}"#), Err(version_3)),
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"seq":0,"version":0}}"#), Err(version_0)),
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"seq":0}}"#), Err(malformed)),
        (format!(r#"{{"actor_org":"a","at_ms":1,"event":{event},"seq":0,"version":"1"}}"#), Err(malformed)),
        // Not JSON, not an object.
        ("".into(), Err(malformed)),
        ("[1]".into(), Err(malformed)),
        ("{".into(), Err(malformed)),
    ];
    for (input, expected) in cases {
        check_decode(&input, expected);
    }
}

// ---------------------------------------------------------------------------
// Property tests over every event type.

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, control characters and quotes included: escaping must be
    // canonical too.
    any::<String>()
}

fn orgs() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 0..4)
}

fn shipment_moved() -> impl Strategy<Value = ShipmentMoved> {
    (text(), text(), any::<u64>(), any::<i64>()).prop_map(|(order_id, shipment_id, quantity, at_ms)| ShipmentMoved {
        order_id,
        shipment_id,
        quantity,
        at_ms,
    })
}

fn order_issued() -> impl Strategy<Value = OrderIssued> {
    (
        (text(), text(), text(), text(), text(), any::<u32>()),
        (any::<u64>(), any::<u64>(), any::<i64>(), any::<u32>(), any::<u32>()),
        (any::<u32>(), any::<u64>(), any::<u64>(), any::<Option<u32>>()),
    )
        .prop_map(
            |(
                (order_id, buyer_org, supplier_org, part, design_id, design_version),
                (quantity, unit_price_krw, due_date_ms, sample_size, allowed_defects),
                (payment_term_days, late_penalty_per_day_krw, late_penalty_cap_krw, transit_days),
            )| OrderIssued {
                order_id,
                buyer_org,
                supplier_org,
                part,
                design_id,
                design_version,
                quantity,
                unit_price_krw,
                due_date_ms,
                acceptance: AcceptancePlan { sample_size, allowed_defects },
                payment_term_days,
                late_penalty_per_day_krw,
                late_penalty_cap_krw,
                transit_days,
            },
        )
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (text(), any::<u32>(), any::<[u8; 32]>(), orgs()).prop_map(|(design_id, version, digest, recipients)| {
            Event::DesignPublished(DesignPublished { design_id, version, ciphertext_sha256: Sha256Hex(digest), recipients })
        }),
        (text(), any::<u32>(), orgs()).prop_map(|(design_id, version, recipients)| {
            Event::DesignAccessChanged(DesignAccessChanged { design_id, version, recipients })
        }),
        order_issued().prop_map(Event::OrderIssued),
        text().prop_map(|order_id| Event::OrderAccepted(OrderAccepted { order_id })),
        shipment_moved().prop_map(Event::ShipmentSent),
        shipment_moved().prop_map(Event::ShipmentReceived),
        (text(), text(), any::<u32>(), any::<u32>(), any::<bool>()).prop_map(|(order_id, shipment_id, sampled, defects, manual)| {
            Event::InspectionRecorded(InspectionRecorded {
                order_id,
                shipment_id,
                sampled,
                defects,
                source: if manual { InspectionSource::Manual } else { InspectionSource::Telemetry },
            })
        }),
        (text(), text(), any::<u64>()).prop_map(|(order_id, shipment_id, accepted_quantity)| {
            Event::DeliveryAccepted(DeliveryAccepted { order_id, shipment_id, accepted_quantity })
        }),
        (text(), text(), text())
            .prop_map(|(order_id, shipment_id, reason)| { Event::DeliveryRejected(DeliveryRejected { order_id, shipment_id, reason }) }),
        (text(), text(), any::<u64>(), any::<u64>(), any::<i64>(), text()).prop_map(
            |(order_id, shipment_id, amount_krw, penalty_krw, due_date_ms, instruction_id)| {
                Event::PaymentInstructed(PaymentInstruction { order_id, shipment_id, amount_krw, penalty_krw, due_date_ms, instruction_id })
            }
        ),
        (text(), text())
            .prop_map(|(instruction_id, bank_reference)| { Event::PaymentConfirmed(PaymentConfirmed { instruction_id, bank_reference }) }),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (any::<u64>(), any::<i64>(), text(), event(), any::<Option<[u8; 32]>>()).prop_map(|(seq, at_ms, actor_org, event, salt)| match salt {
        Some(salt) => Entry::salted(seq, at_ms, actor_org, event, salt),
        None => Entry::new(seq, at_ms, actor_org, event),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn entries_round_trip_through_their_canonical_bytes(entry in entry()) {
        let bytes = entry.to_bytes();
        prop_assert_eq!(&entry.to_bytes(), &bytes, "encoding is a function");
        let decoded = Entry::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&decoded, &entry);
        prop_assert_eq!(decoded.to_bytes(), bytes);
    }

    #[test]
    fn whitespace_anywhere_is_refused(entry in entry(), at in any::<prop::sample::Index>()) {
        let mut bytes = entry.to_bytes();
        // Insert a space at a structural position (outside strings it is
        // legal JSON; inside a string it changes the value): either way the
        // bytes are not the entry's canonical encoding any more.
        let at = at.index(bytes.len() + 1);
        bytes.insert(at, b' ');
        prop_assert!(Entry::from_bytes(&bytes).is_err() || Entry::from_bytes(&bytes).unwrap() != entry);
    }

    #[test]
    fn decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Entry::from_bytes(&bytes);
    }
}

/// An `order_issued` entry as written before `transit_days` existed.
const ORDER_BEFORE_TRANSIT_DAYS: &str = concat!(
    r#"{"actor_org":"b","at_ms":1,"event":{"acceptance":{"allowed_defects":1,"sample_size":8},"buyer_org":"b","design_id":"d","#,
    r#""design_version":1,"due_date_ms":5,"late_penalty_cap_krw":9,"late_penalty_per_day_krw":3,"order_id":"o","part":"p","#,
    r#""payment_term_days":30,"quantity":10,"supplier_org":"s",TRANSIT"type":"order_issued","unit_price_krw":100},"seq":0,"version":1}"#
);

#[test]
fn transit_days_is_optional_and_absent_when_none() {
    let bytes = |transit: &str| ORDER_BEFORE_TRANSIT_DAYS.replace("TRANSIT", transit);
    let transit_days = |e: &Entry| match &e.event {
        Event::OrderIssued(o) => o.transit_days,
        other => panic!("not an order: {other:?}"),
    };
    // Old entries decode, with no allowance, and keep their exact bytes (and leaf hash).
    let old = Entry::from_bytes(bytes("").as_bytes()).unwrap();
    assert_eq!(transit_days(&old), None);
    assert_eq!(old.to_bytes(), bytes("").as_bytes());
    // An allowance, zero included, is written and read back.
    for days in [0, 2] {
        let spelled = bytes(&format!(r#""transit_days":{days},"#));
        let new = Entry::from_bytes(spelled.as_bytes()).unwrap();
        assert_eq!(transit_days(&new), Some(days));
        assert_eq!(new.to_bytes(), spelled.as_bytes());
    }
    // `null` is a second encoding of the old entry: refused.
    assert_eq!(Entry::from_bytes(bytes(r#""transit_days":null,"#).as_bytes()), Err(EntryError::NonCanonical));
    check_decode(&bytes(r#""transit_days":-1,"#), Err(|e| matches!(e, EntryError::Schema(_))));
}

/// A supplier that may not read another supplier's `order_accepted` holds its
/// leaf hash (inclusion proofs carry it) and can guess every field but the
/// salt: the supplier, the order id, `seq` (its index) and `at_ms` within a
/// few seconds.
#[test]
fn a_salted_leaf_cannot_be_confirmed_by_guessing_its_fields() {
    use fc_ledger::merkle::{MemStore, Tree, leaf_hash};
    let event = || Event::OrderAccepted(OrderAccepted { order_id: "PO-7".into() });
    let at_ms = 1_763_800_000_123;
    let hidden = Entry::salted(4, at_ms, "t_supplier_one", event(), [0x5a; 32]);
    let leaf = leaf_hash(&hidden.to_bytes());
    let guesses = |e: fn(i64) -> Entry| (at_ms - 5_000..at_ms + 5_000).any(|t| leaf_hash(&e(t).to_bytes()) == leaf);
    // Before the salt, a guess over ten seconds of at_ms finds the entry...
    let unsalted = leaf_hash(&Entry::new(4, at_ms, "t_supplier_one", event()).to_bytes());
    assert!((at_ms - 5_000..at_ms + 5_000).any(|t| leaf_hash(&Entry::new(4, t, "t_supplier_one", event()).to_bytes()) == unsalted));
    // ...with it, the same guess, unsalted or with any salt but the one drawn, finds nothing.
    assert!(!guesses(|t| Entry::new(4, t, "t_supplier_one", Event::OrderAccepted(OrderAccepted { order_id: "PO-7".into() }))));
    assert!(!guesses(|t| Entry::salted(4, t, "t_supplier_one", Event::OrderAccepted(OrderAccepted { order_id: "PO-7".into() }), [0; 32])));
    // A reader, who receives the entry with its salt, verifies its inclusion as before,
    // next to a version 1 entry, which verifies as it always did.
    let old = Entry::new(3, at_ms - 1, "t_buyer", Event::OrderAccepted(OrderAccepted { order_id: "PO-6".into() }));
    let mut tree = Tree::new(MemStore::new());
    for e in [&old, &hidden] {
        tree.append(&e.to_bytes());
    }
    for (index, e) in [(0, &old), (1, &hidden)] {
        let received = Entry::from_bytes(&e.to_bytes()).unwrap();
        let proof = tree.inclusion_proof(index, 2).unwrap();
        fc_ledger::merkle::verify_inclusion(&leaf_hash(&received.to_bytes()), index, 2, &proof, &tree.root()).unwrap();
    }
}
