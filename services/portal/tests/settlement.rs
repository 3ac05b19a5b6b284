//! Supplier settlement through the REST API, on a real NATS, ingest service,
//! settlement service and portal: designs shared with permitted partners only,
//! the order workflow with table-driven amounts, automatic payment
//! instructions, the pain.001 bank file parsed back, the verifiable ledger, and
//! isolation between suppliers.

use fc_ledger::note::{Checkpoint, Verifier, open_note};
use fc_registry::Role;
use fc_testkit::Harness;
use fc_testkit::http::{Response, request};
use serde_json::{Value, json};
use std::net::SocketAddr;

async fn api(addr: SocketAddr, method: &str, path: &str, key: &str, body: Option<Value>) -> anyhow::Result<Response> {
    let auth = format!("Bearer {key}");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    request(addr, method, path, &[("authorization", &auth), ("content-type", "application/json")], body.as_bytes()).await
}

async fn upload(addr: SocketAddr, path: &str, key: &str, bytes: &[u8]) -> anyhow::Result<Response> {
    let auth = format!("Bearer {key}");
    request(addr, "POST", path, &[("authorization", &auth), ("content-type", "application/octet-stream")], bytes).await
}

fn ok(r: &Response, what: &str) {
    assert!((200..300).contains(&r.status), "{what}: {} {}", r.status, r.body);
}

struct Org {
    id: String,
    key: String,
    keys: fc_sealed::OrgKeys,
}

struct World {
    h: Harness,
    addr: SocketAddr,
    /// The portal's state (bank accounts are entered through it).
    state: std::sync::Arc<fc_portal::PortalState>,
    buyer: Org,
    s1: Org,
    s2: Org,
    outsider: Org,
}

async fn world() -> anyhow::Result<World> {
    let h = Harness::start().await?;
    let portal = h.portal().await?;
    let (addr, state) = (portal.addr, portal.state.clone());
    let reg = h.registry.clone();
    let mut orgs = Vec::new();
    for name in ["Buyer Motors", "Supplier One", "Supplier Two", "Outsider"] {
        let t = reg.create_tenant(name, "growth")?;
        let (_, key) = reg.create_api_key(&t.id, "erp", Role::Operator)?;
        let keys = fc_sealed::OrgKeys::generate();
        let r = api(addr, "PUT", "/api/v1/org/key", &key, Some(json!({ "age_recipient": keys.recipient() }))).await?;
        ok(&r, "register key");
        orgs.push(Org { id: t.id, key, keys });
    }
    let outsider = orgs.pop().unwrap();
    let s2 = orgs.pop().unwrap();
    let s1 = orgs.pop().unwrap();
    let buyer = orgs.pop().unwrap();
    for s in [&s1, &s2] {
        reg.request_partner(&buyer.id, &s.id)?;
        reg.accept_partner(&s.id, &buyer.id)?;
    }
    Ok(World { h, addr, state, buyer, s1, s2, outsider })
}

/// Publishes `plaintext` as `design` v-next, encrypted to the buyer and `to`.
async fn publish(w: &World, design: &str, to: &[&Org], plaintext: &[u8]) -> anyhow::Result<Response> {
    let mut recipients = vec![w.buyer.keys.recipient()];
    recipients.extend(to.iter().map(|o| o.keys.recipient()));
    let sealed = fc_sealed::seal(plaintext, &recipients)?;
    let ids: Vec<&str> = std::iter::once(w.buyer.id.as_str()).chain(to.iter().map(|o| o.id.as_str())).collect();
    upload(w.addr, &format!("/api/v1/networks/{}/designs/{design}?to={}", w.buyer.id, ids.join(",")), &w.buyer.key, &sealed).await
}

fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { walk(&p, out) } else { out.push(p) }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn designs_reach_their_recipients_only_and_never_in_clear() -> anyhow::Result<()> {
    let w = world().await?;
    let (b, net) = (&w.buyer, w.buyer.id.clone());
    let marker = b"PLAINTEXT-DRAWING-7f3a9c: bore 10.00 +/- 0.05 mm";
    let r = publish(&w, "BRK-7", &[&w.s1], marker).await?;
    assert_eq!(r.status, 201, "{}", r.body);
    let d = r.json();
    assert_eq!((d["design_id"].as_str(), d["version"].as_u64()), (Some("BRK-7"), Some(1)));
    let v1 = format!("/api/v1/networks/{net}/designs/BRK-7/versions/1");
    // recipients download; another supplier of the same network and outsiders get 404
    ok(&api(w.addr, "GET", &v1, &w.s1.key, None).await?, "recipient downloads");
    for other in [&w.s2, &w.outsider] {
        assert_eq!(api(w.addr, "GET", &v1, &other.key, None).await?.status, 404);
    }
    let listed = api(w.addr, "GET", &format!("/api/v1/networks/{net}/designs"), &w.s2.key, None).await?;
    assert_eq!(listed.json(), json!([]), "a non-recipient does not even see the design");
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/networks/{net}/designs"), &w.outsider.key, None).await?.status, 404);
    // the recipient decrypts with its own key (the exact ciphertext streams
    // from the settlement service through the portal)
    let sealed = api(w.addr, "GET", &v1, &w.s1.key, None).await?.bytes;
    assert_eq!(fc_sealed::open(&sealed, &w.s1.keys)?, marker);
    assert!(fc_sealed::open(&sealed, &w.s2.keys).is_err(), "another supplier's key cannot open it");
    // a new version drops supplier one and adds supplier two
    let r = publish(&w, "BRK-7", &[&w.s2], b"v2 drawing").await?;
    assert_eq!((r.status, r.json()["version"].as_u64()), (201, Some(2)));
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/networks/{net}/designs/BRK-7/versions/2"), &w.s1.key, None).await?.status, 404);
    ok(&api(w.addr, "GET", &format!("/api/v1/networks/{net}/designs/BRK-7/versions/2"), &w.s2.key, None).await?, "new recipient");
    // and access to v1 can be withdrawn
    let r = api(w.addr, "PUT", &format!("{v1}/recipients"), &b.key, Some(json!({ "recipients": [net] }))).await?;
    ok(&r, "change access");
    assert_eq!(api(w.addr, "GET", &v1, &w.s1.key, None).await?.status, 404, "dropped recipient");
    let r = api(w.addr, "PUT", &format!("{v1}/recipients"), &b.key, Some(json!({ "recipients": [net, w.s2.id] }))).await?;
    assert_eq!(r.status, 409, "v1 is not encrypted to supplier two: {}", r.body);
    // bad input changes nothing
    let before = api(w.addr, "GET", &format!("/api/v1/networks/{net}/designs"), &b.key, None).await?.json();
    assert_eq!(
        upload(w.addr, &format!("/api/v1/networks/{net}/designs/X?to={}", w.s1.id), &b.key, marker).await?.status,
        400,
        "plaintext is refused"
    );
    let sealed_out = fc_sealed::seal(b"x", &[w.outsider.keys.recipient()])?;
    assert_eq!(
        upload(w.addr, &format!("/api/v1/networks/{net}/designs/X?to={}", w.outsider.id), &b.key, &sealed_out).await?.status,
        400,
        "non-member recipient"
    );
    assert_eq!(upload(w.addr, &format!("/api/v1/networks/{net}/designs/bad%20id?to={}", w.s1.id), &b.key, &sealed_out).await?.status, 400);
    assert_eq!(
        upload(w.addr, &format!("/api/v1/networks/{net}/designs/X?to={}", w.s1.id), &w.s1.key, &sealed_out).await?.status,
        403,
        "suppliers do not publish in the buyer's network"
    );
    let big = [b"age-encryption.org/v1\n".as_slice(), &vec![0u8; 33 << 20]].concat();
    assert_eq!(upload(w.addr, &format!("/api/v1/networks/{net}/designs/X?to={}", w.s1.id), &b.key, &big).await?.status, 413);
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/networks/{net}/designs"), &b.key, None).await?.json(), before);
    // keys: co-members read each other's public key, outsiders do not
    ok(&api(w.addr, "GET", &format!("/api/v1/orgs/{}/key", w.s1.id), &b.key, None).await?, "buyer reads supplier key");
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/orgs/{}/key", w.s1.id), &w.outsider.key, None).await?.status, 404);
    assert_eq!(api(w.addr, "PUT", "/api/v1/org/key", &b.key, Some(json!({ "age_recipient": "age1notakey" }))).await?.status, 400);
    // the platform's data directory never holds the plaintext
    let mut files = Vec::new();
    walk(w.h.data.path(), &mut files);
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "age")), "ciphertext is stored");
    for f in &files {
        let bytes = std::fs::read(f)?;
        assert!(!bytes.windows(marker.len()).any(|win| win == marker), "plaintext found in {}", f.display());
    }
    Ok(())
}

/// One step of a scenario: who acts, what, and the status expected.
enum Step {
    Ship(&'static str, u64),
    Receive(&'static str, u64),
    Inspect(&'static str, u32, u32),
    Accept(&'static str, u64),
    Reject(&'static str),
    Expect(u16),
}

struct Case {
    name: &'static str,
    /// Due date relative to now, ms.
    due_in_ms: i64,
    quantity: u64,
    price: u64,
    penalty_per_day: u64,
    penalty_cap: u64,
    steps: Vec<Step>,
    /// (amount, penalty) of each payment, in acceptance order.
    payments: Vec<(u64, u64)>,
}

const DAY: i64 = 86_400_000;

fn cases() -> Vec<Case> {
    use Step::*;
    vec![
        Case {
            name: "full acceptance on time",
            due_in_ms: 10 * DAY,
            quantity: 100,
            price: 1_250,
            penalty_per_day: 1_000,
            penalty_cap: 10_000,
            steps: vec![Ship("S1", 100), Receive("S1", 100), Inspect("S1", 8, 0), Accept("S1", 100)],
            payments: vec![(125_000, 0)],
        },
        Case {
            name: "partial acceptance",
            due_in_ms: 10 * DAY,
            quantity: 100,
            price: 1_000,
            penalty_per_day: 0,
            penalty_cap: 0,
            steps: vec![Ship("S1", 100), Receive("S1", 98), Inspect("S1", 8, 1), Accept("S1", 60)],
            payments: vec![(60_000, 0)],
        },
        Case {
            name: "late delivery, penalty capped across shipments",
            due_in_ms: -(2 * DAY + DAY / 2),
            quantity: 20,
            price: 1_000,
            penalty_per_day: 2_000,
            penalty_cap: 8_000,
            // 3 days late: 6,000, then the second shipment only gets the 2,000 left under the cap
            steps: vec![
                Ship("S1", 10),
                Receive("S1", 10),
                Inspect("S1", 8, 0),
                Accept("S1", 10),
                Ship("S2", 10),
                Receive("S2", 10),
                Inspect("S2", 8, 0),
                Accept("S2", 10),
            ],
            payments: vec![(4_000, 6_000), (8_000, 2_000)],
        },
        Case {
            name: "rejection, then re-delivery",
            due_in_ms: 5 * DAY,
            quantity: 50,
            price: 300,
            penalty_per_day: 0,
            penalty_cap: 0,
            steps: vec![
                Ship("S1", 50),
                Receive("S1", 50),
                Inspect("S1", 8, 3),
                Accept("S1", 50),
                Expect(409),
                Reject("S1"),
                Ship("S2", 50),
                Receive("S2", 50),
                Inspect("S2", 8, 0),
                Accept("S2", 50),
            ],
            payments: vec![(15_000, 0)],
        },
        Case {
            name: "duplicate and impossible events are refused",
            due_in_ms: 5 * DAY,
            quantity: 10,
            price: 100,
            penalty_per_day: 0,
            penalty_cap: 0,
            steps: vec![
                Ship("S1", 11),
                Expect(400),
                Ship("S1", 10),
                Ship("S1", 10),
                Expect(409),
                Receive("S1", 10),
                Receive("S1", 10),
                Expect(409),
                Inspect("S1", 20, 0),
                Expect(400),
                Inspect("S1", 8, 0),
                Accept("S1", 10),
                Accept("S1", 10),
                Expect(409),
            ],
            payments: vec![(1_000, 0)],
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_settle_as_the_contract_says_and_the_bank_file_matches() -> anyhow::Result<()> {
    let w = world().await?;
    let net = w.buyer.id.clone();
    let (b, s1) = (&w.buyer, &w.s1);
    ok(&publish(&w, "BRK-7", &[s1], b"drawing").await?, "publish");
    let now = fc_core::time::now_ms();
    let mut all_payments: Vec<(String, u64, u64)> = Vec::new();
    for (i, c) in cases().into_iter().enumerate() {
        let order_id = format!("PO-{i}");
        let terms = json!({
            "order_id": order_id, "supplier_org": s1.id, "part": "bracket", "design_id": "BRK-7", "design_version": 1,
            "quantity": c.quantity, "unit_price_krw": c.price, "due_date_ms": now + c.due_in_ms, "sample_size": 8, "allowed_defects": 1,
            "payment_term_days": 30, "late_penalty_per_day_krw": c.penalty_per_day, "late_penalty_cap_krw": c.penalty_cap,
            "allow_past_due": c.due_in_ms < 0
        });
        let r = api(w.addr, "POST", &format!("/api/v1/networks/{net}/orders"), &b.key, Some(terms)).await?;
        assert_eq!(r.status, 201, "{}: {}", c.name, r.body);
        let base = format!("/api/v1/networks/{net}/orders/{order_id}");
        ok(&api(w.addr, "POST", &format!("{base}/accept"), &s1.key, None).await?, "supplier accepts");
        let mut last = 0;
        for step in &c.steps {
            let r = match step {
                Step::Ship(s, q) => {
                    api(w.addr, "POST", &format!("{base}/shipments"), &s1.key, Some(json!({ "shipment_id": s, "quantity": q }))).await?
                }
                Step::Receive(s, q) => {
                    api(w.addr, "POST", &format!("{base}/shipments/{s}/receive"), &b.key, Some(json!({ "quantity": q }))).await?
                }
                Step::Inspect(s, n, d) => {
                    api(w.addr, "POST", &format!("{base}/shipments/{s}/inspection"), &b.key, Some(json!({ "sampled": n, "defects": d })))
                        .await?
                }
                Step::Accept(s, q) => {
                    api(w.addr, "POST", &format!("{base}/shipments/{s}/accept"), &b.key, Some(json!({ "quantity": q }))).await?
                }
                Step::Reject(s) => {
                    api(w.addr, "POST", &format!("{base}/shipments/{s}/reject"), &b.key, Some(json!({ "reason": "scratched surfaces" })))
                        .await?
                }
                Step::Expect(code) => {
                    assert_eq!(last, *code, "{}: expected the previous step to answer {code}", c.name);
                    continue;
                }
            };
            last = r.status;
            if r.status >= 400 {
                eprintln!("{}: {} -> {} {}", c.name, i, r.status, r.body);
            }
            if !matches!(r.status, 400 | 409) {
                ok(&r, c.name);
            }
        }
        let pays = api(w.addr, "GET", &format!("/api/v1/networks/{net}/payments"), &b.key, None).await?.json();
        let got: Vec<(u64, u64)> = pays
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["order_id"] == order_id.as_str())
            .map(|p| (p["amount_krw"].as_u64().unwrap(), p["penalty_krw"].as_u64().unwrap()))
            .collect();
        assert_eq!(got, c.payments, "{}", c.name);
        for p in pays.as_array().unwrap().iter().filter(|p| p["order_id"] == order_id.as_str()) {
            assert_eq!(p["status"], "instructed", "{}: the instruction is on the ledger with the acceptance", c.name);
            all_payments.push((
                p["instruction_id"].as_str().unwrap().to_string(),
                p["amount_krw"].as_u64().unwrap(),
                p["due_date_ms"].as_i64().unwrap() as u64,
            ));
        }
    }
    // the other supplier sees none of it
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/networks/{net}/orders"), &w.s2.key, None).await?.json(), json!([]));
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/networks/{net}/payments"), &w.s2.key, None).await?.json(), json!([]));
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/networks/{net}/orders/PO-0"), &w.s2.key, None).await?.status, 404);
    assert_eq!(
        api(
            w.addr,
            "POST",
            &format!("/api/v1/networks/{net}/orders/PO-0/shipments"),
            &w.s2.key,
            Some(json!({ "shipment_id": "X", "quantity": 1 }))
        )
        .await?
        .status,
        404
    );
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/networks/{net}/orders"), &w.outsider.key, None).await?.status, 404);
    // a supplier cannot act for the buyer, nor order from a non-partner
    assert_eq!(
        api(w.addr, "POST", &format!("/api/v1/networks/{net}/orders/PO-0/shipments/S1/accept"), &s1.key, Some(json!({ "quantity": 1 })))
            .await?
            .status,
        403
    );
    let stranger = json!({ "supplier_org": w.outsider.id, "part": "x", "design_id": "BRK-7", "design_version": 1, "quantity": 1, "unit_price_krw": 1, "due_date_ms": now + DAY, "sample_size": 1, "allowed_defects": 0, "payment_term_days": 1, "late_penalty_per_day_krw": 0, "late_penalty_cap_krw": 0 });
    assert_eq!(api(w.addr, "POST", &format!("/api/v1/networks/{net}/orders"), &b.key, Some(stranger)).await?.status, 400);
    let unshared = json!({ "supplier_org": w.s2.id, "part": "x", "design_id": "BRK-7", "design_version": 1, "quantity": 1, "unit_price_krw": 1, "due_date_ms": now + DAY, "sample_size": 1, "allowed_defects": 0, "payment_term_days": 1, "late_penalty_per_day_krw": 0, "late_penalty_cap_krw": 0 });
    assert_eq!(
        api(w.addr, "POST", &format!("/api/v1/networks/{net}/orders"), &b.key, Some(unshared)).await?.status,
        409,
        "the design must be shared with the supplier"
    );
    let tiny = json!({ "supplier_org": s1.id, "part": "x", "design_id": "BRK-7", "design_version": 1, "quantity": 3, "unit_price_krw": 1, "due_date_ms": now + DAY, "sample_size": 5, "allowed_defects": 0, "payment_term_days": 1, "late_penalty_per_day_krw": 0, "late_penalty_cap_krw": 0 });
    assert_eq!(
        api(w.addr, "POST", &format!("/api/v1/networks/{net}/orders"), &b.key, Some(tiny)).await?.status,
        400,
        "a sample larger than the order"
    );
    // a due date already past is refused, naming the field, unless the request confirms it
    let past = json!({ "order_id": "PO-P", "supplier_org": s1.id, "part": "x", "design_id": "BRK-7", "design_version": 1, "quantity": 3, "unit_price_krw": 1, "due_date_ms": now - DAY, "sample_size": 1, "allowed_defects": 0, "payment_term_days": 1, "late_penalty_per_day_krw": 0, "late_penalty_cap_krw": 0 });
    let r = api(w.addr, "POST", &format!("/api/v1/networks/{net}/orders"), &b.key, Some(past.clone())).await?;
    assert_eq!(r.status, 400, "{}", r.body);
    let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.starts_with("due_date_ms:") && detail.contains("allow_past_due"), "{detail}");
    let mut confirmed = past;
    confirmed["allow_past_due"] = json!(true);
    assert_eq!(api(w.addr, "POST", &format!("/api/v1/networks/{net}/orders"), &b.key, Some(confirmed)).await?.status, 201);
    // a transit allowance is part of the contract, shown to both sides; absent, the order has none
    let mut transit = json!({ "order_id": "PO-T", "supplier_org": s1.id, "part": "x", "design_id": "BRK-7", "design_version": 1, "quantity": 3, "unit_price_krw": 1, "due_date_ms": now + DAY, "sample_size": 1, "allowed_defects": 0, "payment_term_days": 1, "late_penalty_per_day_krw": 0, "late_penalty_cap_krw": 0, "transit_days": 366 });
    let r = api(w.addr, "POST", &format!("/api/v1/networks/{net}/orders"), &b.key, Some(transit.clone())).await?;
    assert_eq!((r.status, r.json()["detail"].as_str().is_some_and(|d| d.contains("transit_days"))), (400, true), "{}", r.body);
    transit["transit_days"] = json!(2);
    assert_eq!(api(w.addr, "POST", &format!("/api/v1/networks/{net}/orders"), &b.key, Some(transit)).await?.status, 201);
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/networks/{net}/orders/PO-T"), &s1.key, None).await?.json()["transit_days"], 2);
    assert_eq!(
        api(w.addr, "GET", &format!("/api/v1/networks/{net}/orders/PO-0"), &s1.key, None).await?.json()["transit_days"],
        json!(null)
    );

    // the bank file: refused until both sides entered accounts, then exact
    let pain = format!("/api/v1/networks/{net}/payments/exports");
    assert_eq!(api(w.addr, "POST", &pain, &b.key, None).await?.status, 409);
    // bank accounts are the owners' (signed in); an operator key is refused
    let buyer_bank = json!({ "holder": "(주)바이어모터스", "account_kind": "domestic", "account": "110-123-456789", "bank_kind": "bank_code", "bank": "088" });
    assert_eq!(api(w.addr, "PUT", "/api/v1/org/bank", &b.key, Some(buyer_bank.clone())).await?.status, 403);
    w.state.set_bank_account(&b.id, serde_json::from_value(buyer_bank)?)?;
    let bad_iban: fc_registry::BankAccount = serde_json::from_value(
        json!({ "holder": "Supplier One", "account_kind": "iban", "account": "DE00000000000000000000", "bank_kind": "bic", "bank": "DEUTDEFF" }),
    )?;
    assert_eq!(w.state.set_bank_account(&s1.id, bad_iban).unwrap_err().status, 400, "bad IBAN check digits");
    assert_eq!(api(w.addr, "POST", &pain, &b.key, None).await?.status, 409, "the supplier has no account yet");
    w.state.set_bank_account(&s1.id, serde_json::from_value(json!({ "holder": "Supplier One", "account_kind": "domestic", "account": "356-0987-6543-21", "bank_kind": "bank_code", "bank": "004" }))?)?;
    assert_eq!(api(w.addr, "POST", &pain, &s1.key, None).await?.status, 403, "only the buyer exports");
    let r = api(w.addr, "POST", &pain, &b.key, None).await?;
    assert_eq!(r.status, 201, "bank file: {}", r.body);
    let doc = fc_ledger::pain001::parse(&r.body)?;
    let xfers: Vec<_> = doc.payment_information.iter().flat_map(|pi| pi.transfers.iter()).collect();
    assert_eq!(xfers.len(), all_payments.len());
    for (id, amount, _) in &all_payments {
        let x = xfers.iter().find(|x| &x.end_to_end_id == id).unwrap_or_else(|| panic!("instruction {id} in the file"));
        assert_eq!(x.amount, *amount);
        assert_eq!((x.creditor.name.as_str(), x.currency.as_str()), ("Supplier One", "KRW"));
        assert!(x.remittance.contains("PO-"), "{}", x.remittance);
        assert_eq!(x.creditor.account, fc_ledger::pain001::Account::Domestic("356-0987-6543-21".into()));
    }
    assert_eq!(doc.payment_information[0].debtor.name, "(주)바이어모터스");
    assert_eq!(doc.control_sum, all_payments.iter().map(|p| p.1).sum::<u64>());
    // confirmation is recorded back and leaves the next file
    let first = &all_payments[0].0;
    let r = api(
        w.addr,
        "POST",
        &format!("/api/v1/networks/{net}/payments/{first}/confirm"),
        &b.key,
        Some(json!({ "bank_reference": "KB20261122-0001" })),
    )
    .await?;
    ok(&r, "confirm");
    assert_eq!((r.json()["status"].as_str(), r.json()["bank_reference"].as_str()), (Some("confirmed"), Some("KB20261122-0001")));
    assert_eq!(
        api(
            w.addr,
            "POST",
            &format!("/api/v1/networks/{net}/payments/{first}/confirm"),
            &b.key,
            Some(json!({ "bank_reference": "again" }))
        )
        .await?
        .status,
        409
    );
    // the confirmed payment leaves a re-issue of its export
    let reissued = api(w.addr, "POST", &format!("{pain}/{}/reissue", doc.message_id), &b.key, None).await?;
    assert_eq!(reissued.status, 201, "{}", reissued.body);
    let doc = fc_ledger::pain001::parse(&reissued.body)?;
    assert!(doc.payment_information.iter().flat_map(|pi| pi.transfers.iter()).all(|x| &x.end_to_end_id != first));
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/networks/{net}/orders/PO-0"), &s1.key, None).await?.json()["status"], "settled");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_proves_every_entry_to_members_and_hides_others_entries() -> anyhow::Result<()> {
    let w = world().await?;
    let net = w.buyer.id.clone();
    ok(&publish(&w, "D1", &[&w.s1], b"one").await?, "publish to s1");
    ok(&publish(&w, "D2", &[&w.s2], b"two").await?, "publish to s2");
    let vkey = api(w.addr, "GET", "/api/v1/ledger/key", &w.s2.key, None).await?.body.trim().to_string();
    let verifier = Verifier::from_vkey(&vkey)?;
    let r = api(w.addr, "GET", &format!("/api/v1/ledger/{net}/checkpoint"), &w.s2.key, None).await?;
    ok(&r, "member reads the checkpoint");
    assert!(r.header("content-type").unwrap_or("").starts_with("text/plain"));
    let (text, _) = open_note(&r.body, &[verifier])?;
    let cp = Checkpoint::parse(&text)?;
    assert_eq!((cp.size, cp.origin.ends_with(&net)), (2, true));
    // supplier two reads its own design entry, not supplier one's
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/ledger/{net}/entries/0"), &w.s2.key, None).await?.status, 404);
    let own = api(w.addr, "GET", &format!("/api/v1/ledger/{net}/entries/1"), &w.s2.key, None).await?;
    ok(&own, "own entry");
    let visible = api(w.addr, "GET", &format!("/api/v1/ledger/{net}/entries"), &w.s2.key, None).await?.json();
    assert_eq!(visible.as_array().map(|a| a.iter().map(|e| e["index"].as_u64().unwrap()).collect::<Vec<_>>()), Some(vec![1]));
    // proofs go to every member and verify against the signed root
    let proof: fc_ledger::proof::InclusionProof = serde_json::from_str(
        &api(w.addr, "GET", &format!("/api/v1/ledger/{net}/proof/inclusion?index=1&size={}", cp.size), &w.s2.key, None).await?.body,
    )?;
    proof.verify_entry(own.body.as_bytes(), &cp.root)?;
    ok(
        &api(w.addr, "GET", &format!("/api/v1/ledger/{net}/proof/inclusion?index=0&size=2"), &w.s2.key, None).await?,
        "hashes reveal nothing",
    );
    let c: fc_ledger::proof::ConsistencyProof = serde_json::from_str(
        &api(w.addr, "GET", &format!("/api/v1/ledger/{net}/proof/consistency?from=1&to=2"), &w.s1.key, None).await?.body,
    )?;
    c.verify()?;
    assert_eq!(c.root2, cp.root);
    // outsiders see nothing; bad ranges are clear errors
    for path in [
        format!("/api/v1/ledger/{net}/checkpoint"),
        format!("/api/v1/ledger/{net}/entries/1"),
        format!("/api/v1/ledger/{net}/proof/inclusion?index=0&size=2"),
    ] {
        assert_eq!(api(w.addr, "GET", &path, &w.outsider.key, None).await?.status, 404, "{path}");
    }
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/ledger/{net}/proof/inclusion?index=5&size=2"), &w.s1.key, None).await?.status, 400);
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/ledger/{net}/proof/consistency?from=2&to=9"), &w.s1.key, None).await?.status, 404);
    // every refused parameter says which one is wrong, and how
    let bad = [
        ("entries?start=5&end=3", "end (3) is before start (5): end must be greater than start"),
        ("entries?start=0&end=5000", "end (5000) is 5000 entries after start (0): at most 1000 entries per call"),
        ("entries?start=x", "start"),
        ("proof/inclusion?index=5&size=2", "index (5) must be less than size (2)"),
        ("proof/inclusion?index=2&size=2", "index (2) must be less than size (2)"),
        ("proof/inclusion?index=0", "missing field `size`"),
        ("proof/consistency?from=0&to=2", "from must be at least 1"),
        ("proof/consistency?from=2&to=1", "from (2) is greater than to (1): from must not be greater than to"),
        ("proof/consistency?from=1&to=-2", "to"),
    ];
    for (query, expected) in bad {
        let r = api(w.addr, "GET", &format!("/api/v1/ledger/{net}/{query}"), &w.s1.key, None).await?;
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert!(r.header("content-type").unwrap_or("").starts_with("application/problem+json"), "{query}: a problem");
        let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(detail.contains(expected), "{query}: {detail:?} should say {expected:?}");
    }
    ok(&api(w.addr, "GET", &format!("/api/v1/ledger/{net}/entries?start=1&end=1"), &w.s1.key, None).await?, "an empty range");
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/ledger/{net}/checkpoint"), "fck_wrong", None).await?.status, 401);

    // the same over gRPC
    let grpc = w.h.settlement().await?.grpc_addr;
    let ch = tonic::transport::Channel::from_shared(format!("http://{grpc}"))?.connect().await?;
    let mut client = fc_proto::v1::ledger_client::LedgerClient::new(ch);
    let req = |n: fc_proto::v1::CheckpointRequest, key: &str| {
        let mut r = tonic::Request::new(n);
        r.metadata_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
        r
    };
    let got = client.get_checkpoint(req(fc_proto::v1::CheckpointRequest { network: net.clone() }, &w.s1.key)).await?.into_inner();
    assert_eq!(got.size, 2);
    let err = client.get_checkpoint(req(fc_proto::v1::CheckpointRequest { network: net.clone() }, &w.outsider.key)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let mut er = tonic::Request::new(fc_proto::v1::EntryRequest { network: net.clone(), index: 0 });
    er.metadata_mut().insert("authorization", format!("Bearer {}", w.s2.key).parse().unwrap());
    assert_eq!(client.get_entry(er).await.unwrap_err().code(), tonic::Code::NotFound, "supplier two may not read supplier one's entry");
    let mut ip = tonic::Request::new(fc_proto::v1::InclusionProofRequest { network: net.clone(), index: 1, size: 2 });
    ip.metadata_mut().insert("authorization", format!("Bearer {}", w.s2.key).parse().unwrap());
    let p = client.get_inclusion_proof(ip).await?.into_inner();
    assert_eq!(p.root_hash, cp.root.to_vec());

    // Supplier two holds the leaf hash of supplier one's order_accepted (proofs carry it) and
    // can guess every field of it but the salt: the entry is not confirmable by guessing.
    let now = fc_core::time::now_ms();
    let terms = json!({ "order_id": "PO-S", "supplier_org": w.s1.id, "part": "x", "design_id": "D1", "design_version": 1, "quantity": 1, "unit_price_krw": 1, "due_date_ms": now + DAY, "sample_size": 1, "allowed_defects": 0, "payment_term_days": 1, "late_penalty_per_day_krw": 0, "late_penalty_cap_krw": 0 });
    ok(&api(w.addr, "POST", &format!("/api/v1/networks/{net}/orders"), &w.buyer.key, Some(terms)).await?, "order");
    let t0 = fc_core::time::now_ms();
    ok(&api(w.addr, "POST", &format!("/api/v1/networks/{net}/orders/PO-S/accept"), &w.s1.key, None).await?, "accept");
    let t1 = fc_core::time::now_ms();
    let accepted_at = 3; // design D1, design D2, the order, then its acceptance
    let proof: fc_ledger::proof::InclusionProof = serde_json::from_str(
        &api(w.addr, "GET", &format!("/api/v1/ledger/{net}/proof/inclusion?index={accepted_at}&size=4"), &w.s2.key, None).await?.body,
    )?;
    let event = || fc_ledger::entry::Event::OrderAccepted(fc_ledger::entry::OrderAccepted { order_id: "PO-S".into() });
    let guessed = (t0 - 1_000..=t1 + 1_000).any(|at_ms| {
        let unsalted = fc_ledger::entry::Entry::new(accepted_at, at_ms, w.s1.id.clone(), event());
        let zero_salt = fc_ledger::entry::Entry::salted(accepted_at, at_ms, w.s1.id.clone(), event(), [0; 32]);
        [unsalted, zero_salt].iter().any(|e| fc_ledger::merkle::leaf_hash(&e.to_bytes()) == proof.leaf_hash)
    });
    assert!(!guessed, "a non-reader confirmed a hidden entry from its leaf hash");
    // its reader receives it with the salt, and proves it as before
    let own = api(w.addr, "GET", &format!("/api/v1/ledger/{net}/entries/{accepted_at}"), &w.s1.key, None).await?;
    ok(&own, "the reader's entry");
    let entry = fc_ledger::entry::Entry::from_bytes(own.body.as_bytes())?;
    assert_eq!((entry.version, entry.salt.is_some(), entry.at_ms >= t0 && entry.at_ms <= t1), (2, true, true));
    assert_eq!(fc_ledger::merkle::leaf_hash(own.body.as_bytes()), proof.leaf_hash);
    let listed = api(w.addr, "GET", &format!("/api/v1/ledger/{net}/entries?start={accepted_at}"), &w.s1.key, None).await?.json();
    assert_eq!(listed[0]["entry"]["salt"], serde_json::to_value(entry.salt)?, "listed with its salt");
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/ledger/{net}/entries/{accepted_at}"), &w.s2.key, None).await?.status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inspection_can_be_computed_from_the_inspection_station() -> anyhow::Result<()> {
    let w = world().await?;
    let net = w.buyer.id.clone();
    ok(&publish(&w, "BRK-7", &[&w.s1], b"drawing").await?, "publish");
    // the buyer's inspection station measures 10 parts, 2 out of tolerance
    let reg = w.h.registry.clone();
    let (_, token) = reg.create_device(&net, "qc station")?;
    let mut ingest = w.h.ingest(&token).await?;
    let t0 = fc_core::time::now_ms() - 60_000;
    let values = [10.01, 9.98, 10.00, 10.20, 10.02, 9.99, 9.80, 10.03, 10.00, 10.01];
    let readings = values
        .iter()
        .enumerate()
        .map(|(i, v)| fc_proto::v1::Reading {
            machine: "qc-1".into(),
            metric: "bore_mm".into(),
            unit: "mm".into(),
            timestamp_ms: t0 + i as i64 * 1000,
            value: *v,
            quality: 1,
        })
        .collect();
    ingest.push(fc_proto::v1::ReadingBatch { device_seq: 1, readings, series: vec![] }).await?;
    w.h.wait_writer_idle().await?;
    let now = fc_core::time::now_ms();
    let terms = json!({ "order_id": "PO-QC", "supplier_org": w.s1.id, "part": "bracket", "design_id": "BRK-7", "design_version": 1, "quantity": 10, "unit_price_krw": 500, "due_date_ms": now + DAY, "sample_size": 10, "allowed_defects": 2, "payment_term_days": 0, "late_penalty_per_day_krw": 0, "late_penalty_cap_krw": 0 });
    ok(&api(w.addr, "POST", &format!("/api/v1/networks/{net}/orders"), &w.buyer.key, Some(terms)).await?, "order");
    let base = format!("/api/v1/networks/{net}/orders/PO-QC");
    ok(&api(w.addr, "POST", &format!("{base}/accept"), &w.s1.key, None).await?, "accept");
    ok(&api(w.addr, "POST", &format!("{base}/shipments"), &w.s1.key, Some(json!({ "shipment_id": "S1", "quantity": 10 }))).await?, "ship");
    ok(&api(w.addr, "POST", &format!("{base}/shipments/S1/receive"), &w.buyer.key, Some(json!({ "quantity": 10 }))).await?, "receive");
    let window =
        json!({ "telemetry": { "machine": "qc-1", "metric": "bore_mm", "from_ms": t0, "to_ms": t0 + 60_000, "min": 9.95, "max": 10.05 } });
    assert_eq!(
        api(w.addr, "POST", &format!("{base}/shipments/S1/inspection"), &w.s1.key, Some(window.clone())).await?.status,
        403,
        "suppliers do not inspect"
    );
    let r = api(w.addr, "POST", &format!("{base}/shipments/S1/inspection"), &w.buyer.key, Some(window)).await?;
    ok(&r, "telemetry inspection");
    let s = &r.json()["shipments"][0];
    assert_eq!((s["sampled"].as_u64(), s["defects"].as_u64(), s["inspection_source"].as_str()), (Some(10), Some(2), Some("telemetry")));
    let r = api(w.addr, "POST", &format!("{base}/shipments/S1/accept"), &w.buyer.key, Some(json!({ "quantity": 10 }))).await?;
    ok(&r, "accept");
    let pays = api(w.addr, "GET", &format!("/api/v1/networks/{net}/payments"), &w.s1.key, None).await?.json();
    assert_eq!(pays[0]["amount_krw"], 5_000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_dropped_mid_append_never_split_the_state_from_the_log() -> anyhow::Result<()> {
    let w = world().await?;
    let net = w.buyer.id.clone();
    let st = w.h.settlement().await?.settlement.clone();
    let sealed = fc_sealed::seal(b"d", &[w.buyer.keys.recipient(), w.s1.keys.recipient()])?;
    let to = [net.clone(), w.s1.id.clone()];
    // Clients that give up at every point of a request: before, during and after the append.
    for i in 0..60u64 {
        let _ = tokio::time::timeout(std::time::Duration::from_micros(i * 40), st.publish_design(&net, &net, "D", &to, &sealed)).await;
    }
    let done = st.publish_design(&net, &net, "D", &to, &sealed).await?;
    let size = st.size(&net, &net).await?;
    assert_eq!(u64::from(done.version), size, "every stored entry is a version, and the next version follows the log");
    let versions: Vec<u32> = st.designs(&net, &net).await?.iter().map(|d| d.version).collect();
    assert_eq!(versions, (1..=size as u32).collect::<Vec<_>>());
    Ok(())
}

/// Issues, ships, receives, inspects and accepts one order of `quantity`
/// units at `price` from `supplier`: one instructed payment.
async fn deliver(w: &World, supplier: &Org, order_id: &str, quantity: u64, price: u64) -> anyhow::Result<()> {
    let net = &w.buyer.id;
    let terms = json!({ "order_id": order_id, "supplier_org": supplier.id, "part": "bracket", "design_id": "BRK-7", "design_version": 1,
        "quantity": quantity, "unit_price_krw": price, "due_date_ms": fc_core::time::now_ms() + DAY, "sample_size": 1, "allowed_defects": 0,
        "payment_term_days": 30, "late_penalty_per_day_krw": 0, "late_penalty_cap_krw": 0 });
    let r = api(w.addr, "POST", &format!("/api/v1/networks/{net}/orders"), &w.buyer.key, Some(terms)).await?;
    assert_eq!(r.status, 201, "order {order_id}: {}", r.body);
    let base = format!("/api/v1/networks/{net}/orders/{order_id}");
    ok(&api(w.addr, "POST", &format!("{base}/accept"), &supplier.key, None).await?, "accept order");
    let ship = json!({ "shipment_id": "S1", "quantity": quantity });
    ok(&api(w.addr, "POST", &format!("{base}/shipments"), &supplier.key, Some(ship)).await?, "ship");
    let q = json!({ "quantity": quantity });
    ok(&api(w.addr, "POST", &format!("{base}/shipments/S1/receive"), &w.buyer.key, Some(q.clone())).await?, "receive");
    let inspection = json!({ "sampled": 1, "defects": 0 });
    ok(&api(w.addr, "POST", &format!("{base}/shipments/S1/inspection"), &w.buyer.key, Some(inspection)).await?, "inspect");
    ok(&api(w.addr, "POST", &format!("{base}/shipments/S1/accept"), &w.buyer.key, Some(q)).await?, "accept delivery");
    Ok(())
}

fn end_to_end_ids(xml: &str) -> Vec<String> {
    let doc = fc_ledger::pain001::parse(xml).expect("a pain.001 file");
    let mut ids: Vec<String> = doc.payment_information.iter().flat_map(|pi| pi.transfers.iter()).map(|x| x.end_to_end_id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_file_pays_each_payment_once_and_downloads_again_unchanged() -> anyhow::Result<()> {
    let w = world().await?;
    let net = w.buyer.id.clone();
    let b = &w.buyer;
    ok(&publish(&w, "BRK-7", &[&w.s1], b"drawing").await?, "publish");
    let account = |holder: &str, account: &str| {
        serde_json::from_value::<fc_registry::BankAccount>(
            json!({ "holder": holder, "account_kind": "domestic", "account": account, "bank_kind": "bank_code", "bank": "004" }),
        )
    };
    w.state.set_bank_account(&b.id, account("Buyer Motors", "110-123-456789")?)?;
    w.state.set_bank_account(&w.s1.id, account("Supplier One", "356-0987-6543-21")?)?;
    deliver(&w, &w.s1, "PO-A", 10, 100).await?;
    deliver(&w, &w.s1, "PO-B", 10, 200).await?;
    let exports = format!("/api/v1/networks/{net}/payments/exports");
    let first = api(w.addr, "POST", &exports, &b.key, None).await?;
    assert_eq!(first.status, 201, "{}", first.body);
    let doc = fc_ledger::pain001::parse(&first.body)?;
    let msg_id = doc.message_id.clone();
    assert_eq!(first.header("location").map(str::to_string), Some(format!("{exports}/{msg_id}")));
    assert_eq!(end_to_end_ids(&first.body).len(), 2);
    // exporting again pays nothing twice: there is nothing new to pay
    let again = api(w.addr, "POST", &exports, &b.key, None).await?;
    assert_eq!(again.status, 409, "a second export of the same payments: {}", again.body);
    // downloading the export again gives the very same file, MsgId included
    let download = api(w.addr, "GET", &format!("{exports}/{msg_id}"), &b.key, None).await?;
    ok(&download, "download again");
    assert_eq!(download.body, first.body, "the same bytes, the same MsgId");
    assert_eq!(download.header("content-disposition").map(str::to_string), Some(format!("attachment; filename=\"{msg_id}.xml\"")));
    // a new payment goes into a new export, alone
    deliver(&w, &w.s1, "PO-C", 10, 300).await?;
    let second = api(w.addr, "POST", &exports, &b.key, None).await?;
    assert_eq!(second.status, 201, "{}", second.body);
    let second_id = fc_ledger::pain001::parse(&second.body)?.message_id;
    assert_ne!(second_id, msg_id);
    assert_eq!(end_to_end_ids(&second.body), vec![fc_ledger::settle::instruction_id("PO-C", "S1")]);
    // the buyer re-issues the first export explicitly: a new file, recorded, with the same payments
    let reissue = api(w.addr, "POST", &format!("{exports}/{msg_id}/reissue"), &b.key, None).await?;
    assert_eq!(reissue.status, 201, "{}", reissue.body);
    assert_eq!(end_to_end_ids(&reissue.body), end_to_end_ids(&first.body));
    assert_eq!(api(w.addr, "POST", &format!("{exports}/{msg_id}/reissue"), &b.key, None).await?.status, 409, "re-issued already");
    assert_eq!(api(w.addr, "POST", &format!("{exports}/{msg_id}/reissue"), &w.s1.key, None).await?.status, 403);
    assert_eq!(api(w.addr, "GET", &format!("{exports}/FCNOSUCHEXPORT"), &b.key, None).await?.status, 404);
    let list = api(w.addr, "GET", &exports, &b.key, None).await?.json();
    let listed: Vec<(&str, Option<&str>)> =
        list.as_array().unwrap().iter().map(|e| (e["message_id"].as_str().unwrap(), e["reissue_of"].as_str())).collect();
    assert_eq!(listed.len(), 3);
    assert_eq!((listed[0], listed[1].0, listed[2].1), ((msg_id.as_str(), None), second_id.as_str(), Some(msg_id.as_str())));
    // the exports are ledger entries: the fold of the log knows them, and suppliers do not read them
    let entries = api(w.addr, "GET", &format!("/api/v1/ledger/{net}/entries"), &b.key, None).await?.json();
    let kinds = entries.as_array().unwrap().iter().filter(|e| e["entry"]["event"]["type"] == "payments_exported").count();
    assert_eq!(kinds, 3);
    let supplier_entries = api(w.addr, "GET", &format!("/api/v1/ledger/{net}/entries"), &w.s1.key, None).await?.json();
    assert!(supplier_entries.as_array().unwrap().iter().all(|e| e["entry"]["event"]["type"] != "payments_exported"));
    let pays = api(w.addr, "GET", &format!("/api/v1/networks/{net}/payments"), &b.key, None).await?.json();
    let po_c = pays.as_array().unwrap().iter().find(|p| p["order_id"] == "PO-C").unwrap();
    assert_eq!(po_c["export_message_id"].as_str(), Some(second_id.as_str()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplier_without_a_bank_account_holds_back_only_its_own_payments() -> anyhow::Result<()> {
    let w = world().await?;
    let net = w.buyer.id.clone();
    let b = &w.buyer;
    ok(&publish(&w, "BRK-7", &[&w.s1, &w.s2], b"drawing").await?, "publish");
    let account = |holder: &str| {
        serde_json::from_value::<fc_registry::BankAccount>(
            json!({ "holder": holder, "account_kind": "domestic", "account": "110-123-456789", "bank_kind": "bank_code", "bank": "004" }),
        )
    };
    w.state.set_bank_account(&b.id, account("Buyer Motors")?)?;
    w.state.set_bank_account(&w.s1.id, account("Supplier One")?)?;
    deliver(&w, &w.s1, "PO-1", 10, 100).await?;
    deliver(&w, &w.s2, "PO-2", 10, 200).await?;
    // before exporting, the buyer sees who holds payments back, by name (API and page)
    let blocked = api(w.addr, "GET", &format!("/api/v1/networks/{net}/payments/blocked"), &b.key, None).await?;
    ok(&blocked, "blocked payments");
    let blocked = blocked.json();
    assert_eq!(blocked[0]["supplier_name"], "Supplier Two");
    assert_eq!(blocked[0]["supplier_org"], w.s2.id.as_str());
    assert_eq!((blocked[0]["amount_krw"].as_u64(), blocked.as_array().map(Vec::len)), (Some(2_000), Some(1)));
    let reg = w.h.registry.clone();
    let owner = reg.create_user(&b.id, "owner@buyer.example", "Owner", Role::Owner, "long enough password")?;
    let (sid, _) = reg.create_session(&owner)?;
    let page = request(w.addr, "GET", "/statements", &[("cookie", &format!("fc_session={sid}"))], b"").await?;
    ok(&page, "statements page");
    let warning = page.body.split("id=\"no-bank-account\"").nth(1).unwrap_or_default();
    assert!(warning.contains("Supplier Two") && !warning.contains("Supplier One"), "{}", page.body);
    // the export pays supplier one and leaves supplier two's payment for later
    let exports = format!("/api/v1/networks/{net}/payments/exports");
    let r = api(w.addr, "POST", &exports, &b.key, None).await?;
    assert_eq!(r.status, 201, "one supplier without an account does not block the file: {}", r.body);
    assert_eq!(end_to_end_ids(&r.body), vec![fc_ledger::settle::instruction_id("PO-1", "S1")]);
    assert_eq!(r.header("fc-blocked-payments"), Some("1"));
    // with only blocked payments left, the refusal names the supplier, not its id
    let r = api(w.addr, "POST", &exports, &b.key, None).await?;
    assert_eq!(r.status, 409, "{}", r.body);
    let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("Supplier Two") && !detail.contains(&w.s2.id), "{detail}");
    // once it enters its account, its payment goes into the next file
    w.state.set_bank_account(&w.s2.id, account("Supplier Two")?)?;
    let r = api(w.addr, "POST", &exports, &b.key, None).await?;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(end_to_end_ids(&r.body), vec![fc_ledger::settle::instruction_id("PO-2", "S1")]);
    assert_eq!(r.header("fc-blocked-payments"), None);
    assert_eq!(api(w.addr, "GET", &format!("/api/v1/networks/{net}/payments/blocked"), &b.key, None).await?.json(), json!([]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn design_uploads_check_the_role_first_stream_to_disk_and_keep_to_the_plan_quota() -> anyhow::Result<()> {
    let w = world().await?;
    let net = w.buyer.id.clone();
    let reg = w.h.registry.clone();
    let (_, viewer) = reg.create_api_key(&net, "viewer", Role::Viewer)?;
    let path = format!("/api/v1/networks/{net}/designs/X?to={}", w.s1.id);
    // Who may not publish is told so, whatever the body: the role and the side come first.
    let big = [b"age-encryption.org/v1\n".as_slice(), &vec![0u8; 33 << 20]].concat();
    // (API key, status): a viewer of the buyer, a supplier of the network, an outsider, the buyer's operator
    for (key, status) in [(&viewer, 403), (&w.s1.key, 403), (&w.outsider.key, 404), (&w.buyer.key, 413)] {
        let r = upload(w.addr, &path, key, &big).await?;
        assert_eq!(r.status, status, "{}", r.body);
    }
    // The plan's quota counts every stored design file of the tenant; the refusal names the limit.
    // (through the operator's API: other services hear of the change at once)
    let plan = fc_proto::v1::SetTenantPlanRequest { tenant_id: net.clone(), plan: "starter".into() };
    w.h.admin().await?.set_tenant_plan(plan).await?;
    let limit = fc_registry::plans::plan("starter").unwrap().max_design_bytes;
    ok(&publish(&w, "D1", &[&w.s1], b"first").await?, "within the quota");
    let dir = w.h.settlement_dir().join("designs").join(&net);
    let stored: u64 = std::fs::read_dir(&dir)?.map(|e| e.unwrap().metadata().unwrap().len()).sum();
    // A sparse file stands for the designs stored so far: the quota is nearly used up.
    std::fs::File::create(dir.join(format!("{}.age", "f".repeat(64))))?.set_len(limit - stored - 10)?;
    let r = publish(&w, "D2", &[&w.s1], b"more than ten bytes of drawing").await?;
    assert_eq!(r.status, 429, "{}", r.body);
    let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains(&limit.to_string()) && detail.contains("Starter"), "{detail}");
    // Refused uploads leave no file behind, and nothing on the ledger.
    let left: Vec<String> = std::fs::read_dir(&dir)?.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(left.iter().all(|name| !name.ends_with(".tmp")), "{left:?}");
    let designs = api(w.addr, "GET", &format!("/api/v1/networks/{net}/designs"), &w.buyer.key, None).await?.json();
    assert_eq!(designs.as_array().map(Vec::len), Some(1));
    Ok(())
}
