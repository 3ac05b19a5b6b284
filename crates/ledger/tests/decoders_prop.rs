//! Property tests of the ledger's decoders on arbitrary and on mutated valid input: the
//! entry decoder, the pain.001 parser, signed notes, checkpoints, verifier keys and the
//! proof JSON. The same properties as the fuzz targets in `fuzz/` (entry_decode,
//! pain001_parse, note, proof_json), at a few hundred cases so `make test` stays fast.
//!
//! `write_fuzz_seeds` (ignored) writes the seed corpus of those fuzz targets from the
//! valid inputs below: `cargo test -p fc-ledger --test decoders_prop -- --ignored`.

use fc_ledger::entry::{Entry, Event, InspectionRecorded, InspectionSource, PaymentInstruction};
use fc_ledger::merkle::{MemStore, Tree, leaf_hash};
use fc_ledger::note::{Checkpoint, Signer, Verifier, open_note, sign_note};
use fc_ledger::pain001::{Account, Agent, Batch, CreditTransfer, Party, parse};
use fc_ledger::proof::{ConsistencyProof, InclusionProof};
use fc_ledger::settle::instruction_id;
use proptest::prelude::*;

/// The key the fuzz target `note` knows (the same name and seed as there).
fn signer() -> Signer {
    Signer::from_seed("fuzz.factorychain.test/log", [7; 32]).unwrap()
}

fn entries() -> Vec<Vec<u8>> {
    let inspection = Event::InspectionRecorded(InspectionRecorded {
        order_id: "po-1".into(),
        shipment_id: "s-1".into(),
        sampled: 13,
        defects: 1,
        source: InspectionSource::Telemetry,
    });
    let payment = Event::PaymentInstructed(PaymentInstruction {
        order_id: "po-1".into(),
        shipment_id: "s-1".into(),
        amount_krw: 2_500_000,
        penalty_krw: 10,
        due_date_ms: 1_796_083_200_000,
        instruction_id: instruction_id("po-1", "s-1"),
    });
    vec![
        Entry::new(7, 1_700_000_000_000, "org-buyer", inspection).to_bytes(),
        Entry::new(8, 1_700_000_000_500, "org-buyer", payment).to_bytes(),
    ]
}

fn party(name: &str, account: Account, agent: Agent) -> Party {
    Party { name: name.into(), account, agent }
}

fn pain001_xml() -> Vec<String> {
    let debtor = party("FactoryChain Buyer Co", Account::Domestic("1002-345-678901".into()), Agent::BankCode("004".into()));
    let transfer = |order: &str, shipment: &str, amount_krw: u64, creditor: Party| CreditTransfer {
        instruction: PaymentInstruction {
            order_id: order.into(),
            shipment_id: shipment.into(),
            amount_krw,
            penalty_krw: 0,
            due_date_ms: 1_796_083_200_000,
            instruction_id: instruction_id(order, shipment),
        },
        creditor,
    };
    let domestic = party("(주)대한정밀", Account::Domestic("110-123-456789".into()), Agent::BankCode("088".into()));
    let foreign = party("Präzision GmbH", Account::Iban("DE89370400440532013000".into()), Agent::Bic("DEUTDEFF".into()));
    let one = Batch::new("FC-1", 1_795_299_463_123, debtor.clone(), vec![transfer("PO-1", "S-1", 1_500_000, domestic.clone())]).unwrap();
    let two = Batch::new(
        "FC-2",
        1_795_299_463_123,
        debtor,
        vec![transfer("PO-1", "S-2", 2_500_000, domestic), transfer("PO-7", "S-1", 990, foreign)],
    )
    .unwrap();
    vec![one.to_xml(), two.to_xml()]
}

fn checkpoint_bodies() -> Vec<String> {
    let mut tree = Tree::new(MemStore::new());
    let mut bodies =
        vec![Checkpoint { origin: "fuzz.factorychain.test/log".into(), size: 0, root: tree.root(), extensions: vec![] }.to_body()];
    for i in 0..5u8 {
        tree.append(&[i]);
    }
    bodies.push(
        Checkpoint { origin: "fuzz.factorychain.test/log".into(), size: 5, root: tree.root(), extensions: vec!["ext".into()] }.to_body(),
    );
    bodies
}

fn notes() -> Vec<String> {
    let s = signer();
    checkpoint_bodies().iter().map(|b| sign_note(b, &[&s]).unwrap()).collect()
}

fn proofs() -> Vec<String> {
    let mut tree = Tree::new(MemStore::new());
    let mut roots = vec![tree.root()];
    for i in 0..7u8 {
        tree.append(&[i]);
        roots.push(tree.root());
    }
    let inclusion = InclusionProof {
        leaf_index: 2,
        tree_size: 7,
        leaf_hash: leaf_hash(&[2]),
        root_hash: tree.root(),
        hashes: tree.inclusion_proof(2, 7).unwrap(),
    };
    let consistency =
        ConsistencyProof { size1: 3, size2: 7, root1: roots[3], root2: roots[7], hashes: tree.consistency_proof(3, 7).unwrap() };
    inclusion.verify().unwrap();
    consistency.verify().unwrap();
    vec![inclusion.to_json(), consistency.to_json()]
}

/// Flip, drop or insert a byte: a valid input made slightly invalid (or still valid).
fn mutate(mut bytes: Vec<u8>, at: prop::sample::Index, byte: u8, how: u8) -> Vec<u8> {
    let i = at.index(bytes.len() + 1);
    match how % 3 {
        0 if i < bytes.len() => bytes[i] = byte,
        1 if i < bytes.len() => {
            bytes.remove(i);
        }
        _ => bytes.insert(i, byte),
    }
    bytes
}

fn check_entry(bytes: &[u8]) {
    if let Ok(entry) = Entry::from_bytes(bytes) {
        assert_eq!(entry.to_bytes(), bytes, "an accepted entry is canonical");
    }
}

fn check_pain001(xml: &str) {
    if let Ok(doc) = parse(xml) {
        let transfers = doc.payment_information.iter().flat_map(|b| &b.transfers);
        assert_eq!(doc.number_of_transactions, transfers.clone().count() as u64);
        assert_eq!(doc.control_sum, transfers.map(|t| t.amount).sum::<u64>());
    }
}

fn check_note(text: &str) {
    if let Ok(v) = Verifier::from_vkey(text) {
        assert_eq!(Verifier::from_vkey(&v.verifier_key()).unwrap(), v);
    }
    if let Ok(cp) = Checkpoint::parse(text) {
        assert_eq!(cp.to_body(), text);
    }
    let s = signer();
    if let Ok((body, names)) = open_note(text, &[s.verifier()]) {
        assert_eq!(names, [s.name()]);
        assert!(text.starts_with(&body));
        assert_eq!(open_note(&sign_note(&body, &[&s]).unwrap(), &[s.verifier()]).unwrap().0, body);
    }
}

fn check_proof(json: &str) {
    if let Ok(p) = InclusionProof::parse(json) {
        assert_eq!(InclusionProof::parse(&p.to_json()).unwrap(), p);
        let _ = p.verify();
    }
    if let Ok(p) = ConsistencyProof::parse(json) {
        assert_eq!(ConsistencyProof::parse(&p.to_json()).unwrap(), p);
        let _ = p.verify();
    }
}

#[test]
fn the_valid_inputs_are_accepted() {
    for e in entries() {
        assert_eq!(Entry::from_bytes(&e).unwrap().to_bytes(), e);
    }
    for xml in pain001_xml() {
        parse(&xml).unwrap();
    }
    for note in notes() {
        let (body, _) = open_note(&note, &[signer().verifier()]).unwrap();
        Checkpoint::parse(&body).unwrap();
    }
    assert_eq!(Verifier::from_vkey(&signer().verifier_key()).unwrap(), signer().verifier());
    let p = proofs();
    InclusionProof::parse(&p[0]).unwrap().verify().unwrap();
    ConsistencyProof::parse(&p[1]).unwrap().verify().unwrap();
}

/// Writes the seed corpus of the fuzz targets (run it by hand after a format change).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let write = |target: &str, seeds: Vec<Vec<u8>>| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds.into_iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    };
    write("entry_decode", entries());
    write("pain001_parse", pain001_xml().into_iter().map(String::into_bytes).collect());
    let mut note_seeds: Vec<Vec<u8>> = notes().into_iter().map(String::into_bytes).collect();
    note_seeds.extend(checkpoint_bodies().into_iter().map(String::into_bytes));
    note_seeds.push(signer().verifier_key().into_bytes());
    write("note", note_seeds);
    write("proof_json", proofs().into_iter().map(String::into_bytes).collect());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        check_entry(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        check_pain001(&text);
        check_note(&text);
        check_proof(&text);
    }

    #[test]
    fn arbitrary_text_never_panics_a_decoder(text in "\\PC{0,200}") {
        check_pain001(&text);
        check_note(&text);
        check_proof(&text);
    }

    #[test]
    fn mutated_entries(which in 0..2usize, at in any::<prop::sample::Index>(), byte in any::<u8>(), how in any::<u8>()) {
        check_entry(&mutate(entries()[which].clone(), at, byte, how));
    }

    #[test]
    fn mutated_pain001(which in 0..2usize, at in any::<prop::sample::Index>(), byte in any::<u8>(), how in any::<u8>()) {
        let bytes = mutate(pain001_xml()[which].clone().into_bytes(), at, byte, how);
        check_pain001(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_notes(which in 0..2usize, at in any::<prop::sample::Index>(), byte in any::<u8>(), how in any::<u8>()) {
        let bytes = mutate(notes()[which].clone().into_bytes(), at, byte, how);
        check_note(&String::from_utf8_lossy(&bytes));
        let bytes = mutate(signer().verifier_key().into_bytes(), at, byte, how);
        check_note(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_proofs(which in 0..2usize, at in any::<prop::sample::Index>(), byte in any::<u8>(), how in any::<u8>()) {
        let bytes = mutate(proofs()[which].clone().into_bytes(), at, byte, how);
        check_proof(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn checkpoints_round_trip_through_signed_notes(size in any::<u64>(), root in any::<[u8; 32]>(), origin in "[a-z./]{1,20}", ext in prop::collection::vec("[a-z0-9 ]{1,10}", 0..3)) {
        let cp = Checkpoint { origin, size, root, extensions: ext };
        let s = signer();
        let note = sign_note(&cp.to_body(), &[&s]).unwrap();
        let (body, _) = open_note(&note, &[s.verifier()]).unwrap();
        prop_assert_eq!(Checkpoint::parse(&body).unwrap(), cp);
    }

    #[test]
    fn proofs_round_trip_through_json(a in any::<u64>(), b in any::<u64>(), h in any::<[u8; 32]>(), hashes in prop::collection::vec(any::<[u8; 32]>(), 0..4)) {
        let p = InclusionProof { leaf_index: a, tree_size: b, leaf_hash: h, root_hash: h, hashes: hashes.clone() };
        prop_assert_eq!(InclusionProof::parse(&p.to_json()).unwrap(), p);
        let c = ConsistencyProof { size1: a, size2: b, root1: h, root2: h, hashes };
        prop_assert_eq!(ConsistencyProof::parse(&c.to_json()).unwrap(), c);
    }
}
