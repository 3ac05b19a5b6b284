//! The settlement commands against a live platform (NATS, ingest, settlement,
//! portal): `keys generate --register`, `design push` / `design pull`,
//! `settlement replay` as buyer and as supplier, and `verify follow`, which
//! accepts the log's growth and reports a server that rewrote its history.

use fc_registry::Role;
use fc_testkit::Harness;
use fc_testkit::http::request;
use serde_json::json;
use std::net::SocketAddr;

async fn cli(portal: SocketAddr, key: &str, args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_factorychain"))
        .args(args)
        .env("FC_PORTAL", format!("http://{portal}"))
        .env("FC_API_KEY", key)
        .output()
        .await
        .expect("run factorychain");
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn post(addr: SocketAddr, path: &str, key: &str, body: serde_json::Value) -> anyhow::Result<()> {
    let auth = format!("Bearer {key}");
    let r =
        request(addr, "POST", path, &[("authorization", &auth), ("content-type", "application/json")], body.to_string().as_bytes()).await?;
    anyhow::ensure!((200..300).contains(&r.status), "POST {path}: {} {}", r.status, r.body);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn designs_travel_encrypted_and_replay_equals_the_service() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let portal = h.portal().await?.addr;
    let reg = h.registry.clone();
    let dir = tempfile::tempdir()?;
    let mut orgs = Vec::new();
    for name in ["Buyer", "Supplier A", "Supplier B"] {
        let t = reg.create_tenant(name, "growth")?;
        let (_, key) = reg.create_api_key(&t.id, "cli", Role::Operator)?;
        let identity = dir.path().join(format!("{}.key", t.id));
        let (code, out) = cli(portal, &key, &["keys", "generate", "--out", identity.to_str().unwrap(), "--org", name, "--register"]).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("registered age1"), "{out}");
        orgs.push((t.id, key, identity));
    }
    let (buyer, sa, sb) = (&orgs[0], &orgs[1], &orgs[2]);
    for s in [sa, sb] {
        reg.request_partner(&buyer.0, &s.0)?;
        reg.accept_partner(&s.0, &buyer.0)?;
    }
    // the identity file is private and never overwritten
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&buyer.2)?.permissions().mode() & 0o777, 0o600);
    }
    let (code, _) = cli(portal, &buyer.1, &["keys", "generate", "--out", buyer.2.to_str().unwrap()]).await;
    assert_eq!(code, 1, "an existing key file is not overwritten");

    let drawing = dir.path().join("bracket.step");
    std::fs::write(&drawing, b"ISO-10303-21; bracket, bore 10.00 +/- 0.05")?;
    let (code, out) = cli(portal, &buyer.1, &["design", "push", drawing.to_str().unwrap(), "--design", "BRK-7", "--to", &sa.0]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("published BRK-7 v1"), "{out}");
    let got = dir.path().join("a.step");
    let (code, out) = cli(
        portal,
        &sa.1,
        &[
            "design",
            "pull",
            "--network",
            &buyer.0,
            "--design",
            "BRK-7",
            "--version",
            "1",
            "--identity",
            sa.2.to_str().unwrap(),
            "-o",
            got.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(std::fs::read(&got)?, std::fs::read(&drawing)?);
    let (code, out) = cli(
        portal,
        &sb.1,
        &[
            "design",
            "pull",
            "--network",
            &buyer.0,
            "--design",
            "BRK-7",
            "--version",
            "1",
            "--identity",
            sb.2.to_str().unwrap(),
            "-o",
            dir.path().join("b.step").to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 1, "not shared with supplier B: {out}");
    assert!(!dir.path().join("b.step").exists());

    // orders for both suppliers, one late; replay must equal the service for every party
    let net = &buyer.0;
    let now = fc_core::time::now_ms();
    for (i, s) in [sa, sa].iter().enumerate() {
        let id = format!("PO-{i}");
        post(portal, &format!("/api/v1/networks/{net}/orders"), &buyer.1, json!({ "order_id": id, "supplier_org": s.0, "part": "bracket", "design_id": "BRK-7", "design_version": 1, "quantity": 40, "unit_price_krw": 2_500, "due_date_ms": now - 86_400_000 * i as i64 - 1, "sample_size": 5, "allowed_defects": 0, "payment_term_days": 30, "late_penalty_per_day_krw": 7_000, "late_penalty_cap_krw": 20_000, "allow_past_due": true })).await?;
        let base = format!("/api/v1/networks/{net}/orders/{id}");
        post(portal, &format!("{base}/accept"), &s.1, json!(null)).await?;
        post(portal, &format!("{base}/shipments"), &s.1, json!({ "shipment_id": "S1", "quantity": 40 })).await?;
        post(portal, &format!("{base}/shipments/S1/receive"), &buyer.1, json!({ "quantity": 40 })).await?;
        post(portal, &format!("{base}/shipments/S1/inspection"), &buyer.1, json!({ "sampled": 5, "defects": 0 })).await?;
        post(portal, &format!("{base}/shipments/S1/accept"), &buyer.1, json!({ "quantity": 30 })).await?;
    }
    let vkey = h.settlement().await?.settlement.verifier_key();
    for who in [buyer, sa, sb] {
        let (code, out) = cli(portal, &who.1, &["settlement", "replay", "--network", net, "--key", &vkey]).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("equal to the service"), "{out}");
        let payments = if who.0 == sb.0 { 0 } else { 2 };
        assert!(out.contains(&format!(": {payments} payments")), "{out}");
    }
    // a wrong key is refused before anything is compared
    let other = fc_ledger::note::Signer::generate("factorychain.local")?.verifier_key();
    let (code, out) = cli(portal, &buyer.1, &["settlement", "replay", "--network", net, "--key", &other]).await;
    assert_eq!(code, 1, "{out}");
    Ok(())
}

/// Serves a fixed checkpoint and proof answer, as a server that rewrote its log would.
async fn forged_server(checkpoint: String, consistency: String) -> anyhow::Result<SocketAddr> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = if req.contains("/checkpoint") { &checkpoint } else { &consistency };
            let _ = s
                .write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
                .await;
        }
    });
    Ok(addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_follows_the_live_ledger_and_catches_a_rewritten_history() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let portal = h.portal().await?.addr;
    let reg = h.registry.clone();
    let t = reg.create_tenant("Buyer", "growth")?;
    let s = reg.create_tenant("Supplier", "growth")?;
    reg.request_partner(&t.id, &s.id)?;
    reg.accept_partner(&s.id, &t.id)?;
    let (_, key) = reg.create_api_key(&s.id, "witness", Role::Viewer)?;
    let st = h.settlement().await?.settlement.clone();
    let vkey = st.verifier_key();
    let sealed = fc_sealed::seal(b"d", &[fc_sealed::OrgKeys::generate().recipient()])?;
    let publish = |n: usize| {
        let st = st.clone();
        let (tid, sid, sealed) = (t.id.clone(), s.id.clone(), sealed.clone());
        async move {
            for i in 0..n {
                st.publish_design(&tid, &tid, &format!("D{i}"), std::slice::from_ref(&sid), &sealed).await?;
            }
            anyhow::Ok(())
        }
    };
    publish(3).await?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("witness.note");
    let url = format!("http://{portal}/api/v1/ledger/{}", t.id);
    let follow = |url: String| {
        let (state, vkey, key) = (state.clone(), vkey.clone(), key.clone());
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_factorychain"))
                .args(["verify", "follow", &url, "--key", &vkey, "--state", state.to_str().unwrap(), "--once"])
                .env("FC_API_KEY", key)
                .output()
                .await
                .expect("run");
            (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
        }
    };
    let (code, out) = follow(url.clone()).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("size 3"), "{out}");
    publish(4).await?;
    let (code, out) = follow(url.clone()).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("grew from 3 to 7"), "{out}");

    // The operator's signing key in hand, a forger truncates the log to 2 and
    // re-appends different entries: a validly signed checkpoint of size 9 whose
    // history does not extend the one the witness kept.
    let forged = fc_settlement::Ledger::open(
        &dir.path().join("forged.redb"),
        fc_settlement::Ledger::load_or_create_signer(&h.settlement_dir().join("ledger.key"), "factorychain.local")?,
        "factorychain.local/ledger",
    )?;
    let mut entries = Vec::new();
    for i in 0..9u64 {
        entries.push(st.ledger().entry(&t.id, i.min(1)).map(|e| if i < 2 { e } else { format!("{{\"forged\":{i}}}").into_bytes() })?);
    }
    forged.append(&t.id, entries).await?;
    let note = tokio::task::spawn_blocking({
        let (f, id) = (forged.clone(), t.id.clone());
        move || f.sign_checkpoint(&id)
    })
    .await??;
    let proof = serde_json::to_string(&forged.consistency_proof(&t.id, 7, 9)?)?;
    let evil = forged_server(note, proof).await?;
    let (code, out) = follow(format!("http://{evil}/api/v1/ledger/{}", t.id)).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("history was rewritten"), "{out}");
    // the witness kept the last good checkpoint
    let (code, out) = follow(url).await;
    assert_eq!(code, 0, "{out}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_checkpoint_of_one_network_is_refused_as_another() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let portal = h.portal().await?.addr;
    let reg = h.registry.clone();
    let st = h.settlement().await?.settlement.clone();
    let vkey = st.verifier_key();
    let sealed = fc_sealed::seal(b"d", &[fc_sealed::OrgKeys::generate().recipient()])?;
    let (a, b) = (reg.create_tenant("Buyer A", "growth")?, reg.create_tenant("Buyer B", "growth")?);
    for t in [&a, &b] {
        st.publish_design(&t.id, &t.id, "D", std::slice::from_ref(&t.id), &sealed).await?;
    }
    let (_, key) = reg.create_api_key(&b.id, "verifier", Role::Viewer)?;
    // A's checkpoint is validly signed by the one ledger key that also signs B's.
    let a_note = st.checkpoint(&a.id, &a.id).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("a.note");
    std::fs::write(&file, &a_note)?;
    let file = file.to_str().unwrap();
    let verify = |args: Vec<String>| {
        let key = key.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_factorychain"))
                .args(&args)
                .env("FC_API_KEY", key)
                .output()
                .await
                .expect("run");
            (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
        }
    };
    let args = |extra: &[&str]| -> Vec<String> {
        ["verify", "checkpoint", file, "--key", &vkey].iter().chain(extra).map(|s| s.to_string()).collect()
    };
    // (arguments, exit code, what the output says)
    let a_origin = format!("factorychain.local/ledger/{}", a.id);
    let cases: Vec<(Vec<String>, i32, String)> = vec![
        (args(&["--network", &a.id]), 0, format!("valid checkpoint of {a_origin}")),
        (args(&["--origin", &a_origin]), 0, format!("valid checkpoint of {a_origin}")),
        (args(&["--network", &b.id]), 1, format!("not of the expected \"factorychain.local/ledger/{}\"", b.id)),
        (args(&["--network", &a.id, "--origin-prefix", "elsewhere/ledger"]), 1, "not of the expected".into()),
        (args(&[]), 1, "--network".into()),
    ];
    for (args, code, says) in cases {
        let (got, out) = verify(args.clone()).await;
        assert_eq!(got, code, "{args:?}: {out}");
        assert!(out.contains(&says), "{args:?}: {out}");
    }
    // A server that answers B's URLs with A's checkpoint: the witness and the replay refuse it.
    let evil = forged_server(a_note, "[]".into()).await?;
    let state = dir.path().join("witness.note");
    let (code, out) = verify(
        [
            "verify",
            "follow",
            &format!("http://{evil}/api/v1/ledger/{}", b.id),
            "--key",
            &vkey,
            "--state",
            state.to_str().unwrap(),
            "--once",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not of the expected"), "{out}");
    assert!(!state.exists(), "nothing trusted");
    let (code, out) = cli(evil, &key, &["settlement", "replay", "--network", &b.id, "--key", &vkey]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not of the expected"), "{out}");
    // B's own checkpoint from the real portal passes
    let (code, out) = cli(portal, &key, &["settlement", "replay", "--network", &b.id, "--key", &vkey]).await;
    assert_eq!(code, 0, "{out}");
    Ok(())
}
