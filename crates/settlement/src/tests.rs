//! The ledger on real redb files in temporary directories.

use super::*;
use crate::store::{CHECKPOINTS, ENTRIES, NODES, SIZES};
use fc_ledger::merkle::{MemStore, Tree};
use fc_ledger::note::{Verifier, open_note};
use std::path::PathBuf;
use std::time::Instant;

const PREFIX: &str = "factorychain.test/ledger";

fn signer() -> Signer {
    Signer::from_seed(PREFIX, [7; 32]).unwrap()
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("ledger.redb")
}

fn open(dir: &tempfile::TempDir) -> Arc<Ledger> {
    Ledger::open(&db_path(dir), signer(), PREFIX).unwrap()
}

/// A distinct entry per log and index, shaped like a settlement event.
fn entry(log: &str, i: u64) -> Vec<u8> {
    format!(
        r#"{{"actor_org":"org_{log}","at_ms":{},"event":{{"order_id":"PO-{i:06}","type":"order_accepted"}},"seq":{i},"version":1}}"#,
        1_767_225_600_000u64 + i
    )
    .into_bytes()
}

fn memory_tree(log: &str, size: u64) -> Tree<MemStore> {
    let mut tree = Tree::new(MemStore::new());
    for i in 0..size {
        tree.append(&entry(log, i));
    }
    tree
}

/// Appends `log`'s entries `[from, to)` in calls of 1, 2, 3, ... entries.
async fn append_range(ledger: &Ledger, log: &str, from: u64, to: u64) {
    let mut next = from;
    let mut batch = 1;
    while next < to {
        let end = (next + batch).min(to);
        let first = ledger.append(log, (next..end).map(|i| entry(log, i)).collect()).await.unwrap();
        assert_eq!(first, next, "log {log}: first index of the call");
        next = end;
        batch = batch % 5 + 1;
    }
}

/// The signed checkpoint of `note`, checked with the ledger's published key.
fn open_checkpoint(ledger: &Ledger, note: &str) -> Checkpoint {
    let verifier = Verifier::from_vkey(&ledger.verifier_key()).unwrap();
    let (text, signers) = open_note(note, &[verifier]).unwrap();
    assert_eq!(signers, [PREFIX]);
    Checkpoint::parse(&text).unwrap()
}

/// Waits for `condition`, polling, up to `timeout`.
async fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Opens the ledger file without the ledger (as an attacker or a disk
/// would) and runs `f` in one committed write transaction.
fn tamper(dir: &tempfile::TempDir, f: impl FnOnce(&redb::WriteTransaction)) {
    let db = redb::Database::create(db_path(dir)).unwrap();
    let txn = db.begin_write().unwrap();
    f(&txn);
    txn.commit().unwrap();
}

const SIZES_UNDER_TEST: [u64; 9] = [0, 1, 2, 3, 7, 8, 9, 64, 100];

fn check_against_memory(ledger: &Ledger, log: &str, size: u64) {
    let tree = memory_tree(log, size);
    assert_eq!(ledger.size(log).unwrap(), size, "size of {log}");
    assert_eq!(ledger.root_at(log, size).unwrap(), tree.root(), "root of {log}");
    for k in 0..=size {
        assert_eq!(ledger.root_at(log, k).unwrap(), tree.root_at(k).unwrap(), "root of {log} at {k}");
    }
    for i in 0..size {
        assert_eq!(ledger.entry(log, i).unwrap(), entry(log, i), "entry {i} of {log}");
    }
    let all = ledger.entries(log, 0, size).unwrap();
    assert_eq!(all, (0..size).map(|i| entry(log, i)).collect::<Vec<_>>(), "entries of {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_match_the_memory_tree_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = |n: u64| format!("t_size{n}");
    {
        let ledger = open(&dir);
        for n in SIZES_UNDER_TEST {
            append_range(&ledger, &log(n), 0, n).await;
            check_against_memory(&ledger, &log(n), n);
        }
        let mut logs = ledger.logs().unwrap();
        logs.sort();
        let mut expected: Vec<String> = SIZES_UNDER_TEST.iter().filter(|&&n| n > 0).map(|&n| log(n)).collect();
        expected.sort();
        assert_eq!(logs, expected, "an empty log is not listed");
    }
    // Reopen: sizes and roots come back, and the reloaded frontier keeps
    // appending the same tree.
    let ledger = open(&dir);
    for n in SIZES_UNDER_TEST {
        check_against_memory(&ledger, &log(n), n);
        append_range(&ledger, &log(n), n, n + 13).await;
        check_against_memory(&ledger, &log(n), n + 13);
        assert!(ledger.audit(&log(n)).unwrap().is_intact());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_proof_up_to_size_40_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    let log = "t_proofs";
    append_range(&ledger, log, 0, 40).await;
    let tree = memory_tree(log, 40);
    for size in 1..=40 {
        let root = ledger.root_at(log, size).unwrap();
        for index in 0..size {
            let proof = ledger.inclusion_proof(log, index, size).unwrap();
            assert_eq!(proof.hashes, tree.inclusion_proof(index, size).unwrap(), "inclusion {index} in {size}");
            assert_eq!((proof.root_hash, proof.leaf_index, proof.tree_size), (root, index, size));
            proof.verify().unwrap_or_else(|e| panic!("inclusion {index} in {size}: {e}"));
            proof.verify_entry(&entry(log, index), &root).unwrap();
            assert!(proof.verify_entry(&entry(log, index + 1), &root).is_err(), "another entry must not verify");
        }
        for size1 in 1..=size {
            let proof = ledger.consistency_proof(log, size1, size).unwrap();
            assert_eq!(proof.hashes, tree.consistency_proof(size1, size).unwrap(), "consistency {size1} -> {size}");
            proof.verify().unwrap_or_else(|e| panic!("consistency {size1} -> {size}: {e}"));
            proof.verify_between(&tree.root_at(size1).unwrap(), &root).unwrap();
        }
    }
}

#[test]
fn proofs_have_the_json_factorychain_verify_reads() {
    let inclusion =
        InclusionProof { leaf_index: 2, tree_size: 5, leaf_hash: [0xab; 32], root_hash: [0x01; 32], hashes: vec![[0xcd; 32], [0x0f; 32]] };
    let json = serde_json::to_value(&inclusion).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"leaf_index": 2, "tree_size": 5, "leaf_hash": "ab".repeat(32), "root_hash": "01".repeat(32), "hashes": ["cd".repeat(32), "0f".repeat(32)]})
    );
    assert_eq!(serde_json::from_value::<InclusionProof>(json).unwrap(), inclusion);
    let consistency = ConsistencyProof { size1: 3, size2: 7, root1: [0x10; 32], root2: [0xfe; 32], hashes: vec![] };
    let json = serde_json::to_value(&consistency).unwrap();
    assert_eq!(json, serde_json::json!({"size1": 3, "size2": 7, "root1": "10".repeat(32), "root2": "fe".repeat(32), "hashes": []}));
    assert_eq!(serde_json::from_value::<ConsistencyProof>(json).unwrap(), consistency);
    // One spelling per hash, and no unknown fields, as the CLI demands.
    let refused = [
        serde_json::json!({"size1": 3, "size2": 7, "root1": "AB".repeat(32), "root2": "fe".repeat(32), "hashes": []}),
        serde_json::json!({"size1": 3, "size2": 7, "root1": "ab".repeat(31), "root2": "fe".repeat(32), "hashes": []}),
        serde_json::json!({"size1": 3, "size2": 7, "root1": "10".repeat(32), "root2": "fe".repeat(32), "hashes": ["zz"]}),
        serde_json::json!({"size1": 3, "size2": 7, "root1": "10".repeat(32), "root2": "fe".repeat(32), "hashes": [], "extra": 1}),
    ];
    for json in refused {
        assert!(serde_json::from_value::<ConsistencyProof>(json.clone()).is_err(), "accepted {json}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_unique_dense_indices() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    let logs = ["t_buyer-a", "t_buyer-b", "t_buyer-c"];
    let mut tasks = Vec::new();
    for task in 0..8u64 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut appended = Vec::new();
            for call in 0..60u64 {
                let log = logs[((task + call) % 3) as usize];
                let count = call % 3 + 1;
                let entries: Vec<Vec<u8>> = (0..count).map(|k| format!("task {task} call {call} entry {k}").into_bytes()).collect();
                let first = ledger.append(log, entries.clone()).await.unwrap();
                appended.push((log, first, entries));
            }
            appended
        }));
    }
    let mut by_log: HashMap<&str, Vec<(u64, Vec<u8>)>> = HashMap::new();
    for task in tasks {
        for (log, first, entries) in task.await.unwrap() {
            for (k, bytes) in entries.into_iter().enumerate() {
                by_log.entry(log).or_default().push((first + k as u64, bytes));
            }
        }
    }
    for log in logs {
        let mut appended = by_log.remove(log).unwrap();
        appended.sort();
        let size = ledger.size(log).unwrap();
        assert_eq!(appended.len() as u64, size, "{log}: every entry counted once");
        for (expected, (index, bytes)) in appended.into_iter().enumerate() {
            assert_eq!(index, expected as u64, "{log}: indices unique and dense");
            assert_eq!(ledger.entry(log, index).unwrap(), bytes, "{log}: entry {index}");
        }
        assert!(ledger.audit(log).unwrap().is_intact());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_signed_over_committed_trees() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    let log = "t_0123456789abcdef";
    assert_eq!(ledger.checkpoint(log).unwrap(), None);
    append_range(&ledger, log, 0, 11).await;

    let note = ledger.sign_checkpoint(log).unwrap();
    let checkpoint = open_checkpoint(&ledger, &note);
    assert_eq!(checkpoint.origin, "factorychain.test/ledger/t_0123456789abcdef");
    assert_eq!(checkpoint.origin, ledger.origin(log));
    assert_eq!((checkpoint.size, checkpoint.root), (11, ledger.root_at(log, 11).unwrap()));
    assert_eq!(ledger.checkpoint(log).unwrap().as_deref(), Some(note.as_str()));
    assert_eq!(ledger.sign_checkpoint(log).unwrap(), note, "no new checkpoint without new entries");
    assert_eq!(ledger.checkpoints_signed(), 1);

    // The checkpointer signs what was appended within about one interval.
    let shutdown = fc_core::Shutdown::new();
    let checkpointer = tokio::spawn(ledger.clone().run_checkpointer(Duration::from_millis(100), shutdown.clone()));
    append_range(&ledger, log, 11, 30).await;
    let started = Instant::now();
    wait_for("a checkpoint of size 30", Duration::from_secs(5), || {
        ledger.checkpoint(log).unwrap().is_some_and(|note| open_checkpoint(&ledger, &note).size == 30)
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?} at a 100 ms interval", started.elapsed());
    let checkpoint = open_checkpoint(&ledger, &ledger.checkpoint(log).unwrap().unwrap());
    assert_eq!(checkpoint.root, ledger.root_at(log, 30).unwrap());

    // Appends right before shutdown are covered by the final round.
    append_range(&ledger, log, 30, 33).await;
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), checkpointer).await.unwrap().unwrap();
    let checkpoint = open_checkpoint(&ledger, &ledger.checkpoint(log).unwrap().unwrap());
    assert_eq!((checkpoint.size, checkpoint.root), (33, ledger.root_at(log, 33).unwrap()));

    // The old checkpoint's tree is a prefix of the new one.
    let proof = ledger.consistency_proof(log, 11, 33).unwrap();
    proof.verify().unwrap();
    assert!(ledger.audit(log).unwrap().is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_entry_is_found_and_fails_its_proof() {
    let dir = tempfile::tempdir().unwrap();
    let log = "t_tamper-entry";
    let note = {
        let ledger = open(&dir);
        append_range(&ledger, log, 0, 10).await;
        ledger.sign_checkpoint(log).unwrap()
    };
    tamper(&dir, |txn| {
        let mut entries = txn.open_table(ENTRIES).unwrap();
        let mut bytes = entries.get((log, 3u64)).unwrap().unwrap().value().to_vec();
        bytes[20] ^= 0x01;
        entries.insert((log, 3u64), bytes.as_slice()).unwrap();
    });
    let ledger = open(&dir);
    let report = ledger.audit(log).unwrap();
    assert_eq!(report.first_mismatch, Some(Mismatch::Leaf { index: 3 }), "{report:?}");
    assert_eq!(report.first_mismatch.unwrap().to_string(), "entry 3 does not hash to its stored leaf hash");

    let checkpoint = open_checkpoint(&ledger, &note);
    let served = ledger.entry(log, 3).unwrap();
    assert_ne!(served, entry(log, 3));
    let proof = ledger.inclusion_proof(log, 3, checkpoint.size).unwrap();
    assert!(proof.verify_entry(&served, &checkpoint.root).is_err(), "the changed entry must not prove in the signed tree");
    proof.verify_entry(&entry(log, 3), &checkpoint.root).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_node_is_found_and_fails_the_proofs_using_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = "t_tamper-node";
    let note = {
        let ledger = open(&dir);
        append_range(&ledger, log, 0, 16).await;
        ledger.sign_checkpoint(log).unwrap()
    };
    // Node (1, 0) covers leaves 0 and 1: the proof of leaf 2 uses it.
    tamper(&dir, |txn| {
        let mut nodes = txn.open_table(NODES).unwrap();
        let key = (log, crate::store::completing_leaf(1, 0).unwrap());
        let mut row = nodes.get(key).unwrap().unwrap().value().to_vec();
        row[32] ^= 0x80; // level 1 is the second hash of the row
        nodes.insert(key, row.as_slice()).unwrap();
    });
    let ledger = open(&dir);
    let report = ledger.audit(log).unwrap();
    assert_eq!(report.first_mismatch, Some(Mismatch::Node { level: 1, index: 0 }), "{report:?}");
    let checkpoint = open_checkpoint(&ledger, &note);
    let proof = ledger.inclusion_proof(log, 2, 16).unwrap();
    assert!(proof.verify_entry(&entry(log, 2), &checkpoint.root).is_err(), "a proof through the changed node must fail");
    // A proof that does not use it still verifies.
    let proof = ledger.inclusion_proof(log, 9, 16).unwrap();
    proof.verify_entry(&entry(log, 9), &checkpoint.root).unwrap();
}

/// A log of 13 leaves (levels 0 to 3, an unpaired right edge) with a
/// checkpoint, to damage in copies.
async fn audit_template(dir: &tempfile::TempDir) -> &'static str {
    let log = "t_audit";
    let ledger = open(dir);
    append_range(&ledger, log, 0, 13).await;
    ledger.sign_checkpoint(log).unwrap();
    log
}

/// Copies the template file, damages it with `damage` and audits `log`.
fn audit_after(template: &tempfile::TempDir, log: &str, damage: impl FnOnce(&redb::WriteTransaction)) -> AuditReport {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(db_path(template), db_path(&dir)).unwrap();
    tamper(&dir, damage);
    open(&dir).audit(log).unwrap()
}

/// Flips bit 0 of byte `at` of a row of `table`.
fn flip(txn: &redb::WriteTransaction, table: redb::TableDefinition<(&str, u64), &[u8]>, key: (&str, u64), at: usize) {
    let mut table = txn.open_table(table).unwrap();
    let mut row = table.get(key).unwrap().unwrap().value().to_vec();
    row[at] ^= 0x01;
    table.insert(key, row.as_slice()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_names_the_first_damage() {
    let template = tempfile::tempdir().unwrap();
    let log = audit_template(&template).await;
    let intact = audit_after(&template, log, |_| {});
    assert_eq!((intact.first_mismatch.as_ref(), intact.entries_checked, intact.nodes_checked), (None, 13, 13 - 13u64.count_ones() as u64));
    assert_eq!(intact.checkpoint_size, Some(13));

    // Every entry, and every node at its place in the row of its completing leaf.
    for leaf in 0..13u64 {
        let report = audit_after(&template, log, |txn| flip(txn, ENTRIES, (log, leaf), 5));
        assert_eq!(report.first_mismatch, Some(Mismatch::Leaf { index: leaf }), "entry {leaf}");
        for level in 0..crate::store::completed_levels(leaf) {
            let report = audit_after(&template, log, |txn| flip(txn, NODES, (log, leaf), 32 * usize::from(level) + 7));
            let index = crate::store::node_index(leaf, level);
            let expected = if level == 0 { Mismatch::Leaf { index } } else { Mismatch::Node { level, index } };
            assert_eq!(report.first_mismatch, Some(expected), "node ({level}, {index})");
        }
    }

    type Damage = Box<dyn FnOnce(&redb::WriteTransaction)>;
    let cases: Vec<(&str, Damage, Mismatch)> = vec![
        (
            "entry removed",
            Box::new(move |txn| drop(txn.open_table(ENTRIES).unwrap().remove((log, 5u64)).unwrap())),
            Mismatch::MissingEntry { index: 5 },
        ),
        (
            "node row cut short",
            Box::new(move |txn| {
                let mut nodes = txn.open_table(NODES).unwrap();
                let row = nodes.get((log, 7u64)).unwrap().unwrap().value()[..64].to_vec();
                nodes.insert((log, 7u64), row.as_slice()).unwrap();
            }),
            Mismatch::MissingNode { level: 2, index: 1 },
        ),
        (
            "entry beyond the size",
            Box::new(move |txn| drop(txn.open_table(ENTRIES).unwrap().insert((log, 13u64), b"late".as_slice()).unwrap())),
            Mismatch::UnexpectedEntry { index: 13 },
        ),
        (
            "size shrunk",
            Box::new(move |txn| drop(txn.open_table(SIZES).unwrap().insert(log, 12u64).unwrap())),
            Mismatch::UnexpectedEntry { index: 12 },
        ),
        (
            "size grown",
            Box::new(move |txn| drop(txn.open_table(SIZES).unwrap().insert(log, 14u64).unwrap())),
            Mismatch::MissingEntry { index: 13 },
        ),
        (
            "checkpoint signed by another key",
            Box::new(move |txn| {
                let other = Signer::from_seed(PREFIX, [8; 32]).unwrap();
                let body = Checkpoint { origin: format!("{PREFIX}/{log}"), size: 13, root: [0; 32], extensions: vec![] }.to_body();
                let note = sign_note(&body, &[&other]).unwrap();
                txn.open_table(CHECKPOINTS).unwrap().insert(log, (13u64, note.as_str())).unwrap();
            }),
            Mismatch::CheckpointSignature,
        ),
        (
            "checkpoint of another origin",
            Box::new(move |txn| {
                let body = Checkpoint { origin: format!("{PREFIX}/t_other"), size: 13, root: [0; 32], extensions: vec![] }.to_body();
                let note = sign_note(&body, &[&signer()]).unwrap();
                txn.open_table(CHECKPOINTS).unwrap().insert(log, (13u64, note.as_str())).unwrap();
            }),
            Mismatch::CheckpointOrigin { origin: format!("{PREFIX}/t_other") },
        ),
    ];
    for (what, damage, expected) in cases {
        let report = audit_after(&template, log, damage);
        assert_eq!(report.first_mismatch, Some(expected), "{what}: {report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_whose_next_index_is_taken_refuses_appends_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = audit_template(&dir).await;
    // A size row that went back (a restored backup of one table, say): the
    // next index is taken already.
    tamper(&dir, |txn| drop(txn.open_table(SIZES).unwrap().insert(log, 12u64).unwrap()));
    let ledger = open(&dir);
    // Appends to the damaged log and to a healthy one in the same rounds.
    let (damaged, healthy) = tokio::join!(ledger.append(log, vec![b"overwrite?".to_vec()]), ledger.append("t_other", vec![b"x".to_vec()]));
    match damaged {
        Err(LedgerError::Storage(message)) => {
            assert!(message.contains("leaf 12 is already stored") && message.contains("read-only"), "{message}")
        }
        other => panic!("expected a storage error, got {other:?}"),
    }
    assert_eq!(healthy.expect("another log is not held up by a damaged one"), 0);
    match ledger.append(log, vec![b"again?".to_vec()]).await {
        Err(LedgerError::Storage(message)) => assert!(message.contains("read-only"), "{message}"),
        other => panic!("the damaged log stays read-only, got {other:?}"),
    }
    assert_eq!(ledger.append("t_other", vec![b"y".to_vec()]).await.unwrap(), 1);
    assert_eq!(ledger.size(log).unwrap(), 12, "nothing was committed to the damaged log");
    drop(ledger);
    tamper(&dir, |txn| {
        let entries = txn.open_table(ENTRIES).unwrap();
        assert_eq!(entries.get((log, 12u64)).unwrap().unwrap().value(), entry(log, 12), "the stored entry is unchanged");
    });
}

/// A full disk (a small tmpfs) makes commits fail; once space is back the
/// writer reloads its trees from the file and appends go on at the right
/// indices, with every log intact and every acknowledged entry kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_resume_after_the_disk_was_full() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: the full-disk ledger test mounts a tmpfs and needs root (CI and `make test` run as root)");
        return;
    }
    let ledger = open(&dir);
    append_range(&ledger, "t_disk", 0, 10).await;
    let filler = dir.path().join("filler");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&filler).unwrap();
        while file.write_all(&[0u8; 16 << 10]).is_ok() {}
    }
    // Appends of 64 KiB entries until one fails; the acked ones must stay.
    let mut acked = Vec::new();
    let mut failed = None;
    for i in 0..200u64 {
        let big = vec![b'a' + (i % 26) as u8; 64 << 10];
        match ledger.append("t_disk", vec![big.clone()]).await {
            Ok(index) => acked.push((index, big)),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let failed = failed.expect("the disk filled up");
    assert!(matches!(failed, LedgerError::Storage(_)), "{failed:?}");
    std::fs::remove_file(&filler).unwrap();
    let size = ledger.size("t_disk").unwrap();
    let next = ledger.append("t_disk", vec![b"after".to_vec()]).await.expect("appends resume once the disk has room");
    assert_eq!(next, ledger.size("t_disk").unwrap() - 1, "the append took the next index");
    assert!(next >= size, "no stored index was reused");
    assert_eq!(ledger.entry("t_disk", next).unwrap(), b"after");
    for i in 0..10 {
        assert_eq!(ledger.entry("t_disk", i).unwrap(), entry("t_disk", i), "entry {i} kept");
    }
    for (index, big) in &acked {
        assert_eq!(&ledger.entry("t_disk", *index).unwrap(), big, "acked entry {index} kept");
    }
    let report = ledger.audit("t_disk").unwrap();
    assert_eq!(report.first_mismatch, None, "{report:?}");
    drop(ledger);
    let _ = std::process::Command::new("umount").arg("-l").arg(dir.path()).status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_with_a_damaged_frontier_stays_readable_and_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = audit_template(&dir).await;
    {
        let ledger = open(&dir);
        append_range(&ledger, "t_healthy", 0, 3).await;
    }
    // Node (3, 0), on the frontier of 13 leaves, sits in the row of leaf 7.
    tamper(&dir, |txn| {
        let mut nodes = txn.open_table(NODES).unwrap();
        let row = nodes.get((log, 7u64)).unwrap().unwrap().value()[..96].to_vec();
        nodes.insert((log, 7u64), row.as_slice()).unwrap();
    });
    let ledger = open(&dir);
    assert_eq!(ledger.audit(log).unwrap().first_mismatch, Some(Mismatch::MissingNode { level: 3, index: 0 }));
    assert_eq!(ledger.entry(log, 12).unwrap(), entry(log, 12), "entries stay readable");
    match ledger.append(log, vec![b"more".to_vec()]).await {
        Err(LedgerError::Storage(message)) => assert!(message.contains("log t_audit of size 13 is damaged"), "{message}"),
        other => panic!("expected a storage error, got {other:?}"),
    }
    assert_eq!(ledger.append("t_healthy", vec![entry("t_healthy", 3)]).await.unwrap(), 3, "other logs go on");
}

/// Deletes every row of `log`, the checkpoint too when `with_checkpoint`.
fn erase_log(dir: &tempfile::TempDir, log: &'static str, with_checkpoint: bool) {
    tamper(dir, |txn| {
        let mut entries = txn.open_table(ENTRIES).unwrap();
        entries.retain_in((log, 0u64)..=(log, u64::MAX), |_, _| false).unwrap();
        let mut nodes = txn.open_table(NODES).unwrap();
        nodes.retain_in((log, 0u64)..=(log, u64::MAX), |_, _| false).unwrap();
        txn.open_table(SIZES).unwrap().remove(log).unwrap();
        if with_checkpoint {
            txn.open_table(CHECKPOINTS).unwrap().remove(log).unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_history_cannot_prove_consistency_with_the_old_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (log, kept) = ("t_rewritten", "t_rewritten-kept");
    let old_note = {
        let ledger = open(&dir);
        append_range(&ledger, log, 0, 20).await;
        append_range(&ledger, kept, 0, 20).await;
        ledger.sign_checkpoint(kept).unwrap();
        ledger.sign_checkpoint(log).unwrap()
    };
    erase_log(&dir, log, true);
    erase_log(&dir, kept, false);
    let ledger = open(&dir);
    let old = open_checkpoint(&ledger, &old_note);
    assert_eq!(ledger.size(log).unwrap(), 0);
    for other in [log, kept] {
        let forged: Vec<Vec<u8>> = (0..25).map(|i| format!("forged {i}").into_bytes()).collect();
        ledger.append(other, forged).await.unwrap();
    }
    assert_ne!(ledger.root_at(log, old.size).unwrap(), old.root, "the rewritten tree has another root");
    let new = open_checkpoint(&ledger, &ledger.sign_checkpoint(log).unwrap());
    assert_eq!(new.size, 25);
    let proof = ledger.consistency_proof(log, old.size, new.size).unwrap();
    proof.verify().unwrap(); // consistent with itself...
    assert!(proof.verify_between(&old.root, &new.root).is_err(), "...but not with the old checkpoint");
    assert!(
        ledger.audit(log).unwrap().is_intact(),
        "a whole rewrite with its checkpoint gone is only visible to holders of the old checkpoint"
    );
    // Keeping the old checkpoint row, the operator's audit sees the rewrite.
    let report = ledger.audit(kept).unwrap();
    assert_eq!(report.first_mismatch, Some(Mismatch::CheckpointRoot { size: 20 }), "{report:?}");
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, LedgerError>, needle: &str) {
    match result {
        Err(LedgerError::Invalid(message)) => {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}")
        }
        other => panic!("expected Invalid containing {needle:?}, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, LedgerError>, needle: &str) {
    match result {
        Err(LedgerError::NotFound(message)) => {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}")
        }
        other => panic!("expected NotFound containing {needle:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_is_refused_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir);
    let log = "t_valid";
    append_range(&ledger, log, 0, 5).await;

    let long = "t".repeat(65);
    for bad in ["", long.as_str(), "t/x", "t x", "t.x", "tü", "t\n"] {
        assert_invalid(ledger.append(bad, vec![b"x".to_vec()]).await, "must be 1 to 64 characters");
        assert_invalid(ledger.size(bad), "must be 1 to 64 characters");
        assert_invalid(ledger.entry(bad, 0), "must be 1 to 64 characters");
        assert_invalid(ledger.inclusion_proof(bad, 0, 1), "must be 1 to 64 characters");
        assert_invalid(ledger.checkpoint(bad), "must be 1 to 64 characters");
    }
    assert_eq!(ledger.size(&"t".repeat(64)).unwrap(), 0, "64 characters is fine");

    assert_invalid(ledger.append(log, vec![vec![b'x'; MAX_ENTRY_BYTES + 1]]).await, "65537 bytes, the limit is 65536");
    assert_invalid(ledger.append(log, vec![b"ok".to_vec(), vec![0; MAX_ENTRY_BYTES + 1]]).await, "entry 1 is");
    assert_invalid(ledger.append(log, Vec::new()).await, "no entries");
    assert_eq!(ledger.size(log).unwrap(), 5, "refused calls append nothing");
    assert_eq!(ledger.append(log, vec![vec![b'x'; MAX_ENTRY_BYTES]]).await.unwrap(), 5, "64 KiB is fine");

    assert_not_found(ledger.entry(log, 6), "log t_valid has 6 entries; there is no entry 6");
    assert_not_found(ledger.entry("t_unknown", 0), "has 0 entries");
    assert_invalid(ledger.entries(log, 4, 2), "start 4 is after end 2");
    assert_invalid(ledger.entries(log, 0, 1001), "at most 1000 per call");
    assert_not_found(ledger.entries(log, 0, 7), "cannot read up to 7");
    assert_eq!(ledger.entries(log, 2, 2).unwrap(), Vec::<Vec<u8>>::new());

    assert_not_found(ledger.root_at(log, 7), "there is no tree of size 7");
    assert_not_found(ledger.inclusion_proof(log, 0, 7), "there is no tree of size 7");
    assert_invalid(ledger.inclusion_proof(log, 6, 6), "leaf index 6 is not in a tree of size 6");
    assert_invalid(ledger.inclusion_proof(log, 0, 0), "not in a tree of size 0");
    assert_invalid(ledger.consistency_proof(log, 4, 3), "old size 4 is greater than new size 3");
    assert_invalid(ledger.consistency_proof(log, 0, 3), "old size must be at least 1");
    assert_not_found(ledger.consistency_proof(log, 2, 7), "there is no tree of size 7");
    assert_not_found(ledger.sign_checkpoint("t_unknown"), "no entries to checkpoint");
    assert_eq!(ledger.root_at("t_unknown", 0).unwrap(), fc_ledger::merkle::empty_root());

    assert_invalid(Ledger::open(&dir.path().join("other.redb"), signer(), "has space"), "origin prefix");
}

#[test]
fn the_signer_key_is_created_once_privately_and_checked_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("ledger.key");
    let created = Ledger::load_or_create_signer(&path, PREFIX).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("PRIVATE+KEY+factorychain.test/ledger+"));
    let loaded = Ledger::load_or_create_signer(&path, PREFIX).unwrap();
    assert_eq!(loaded.verifier_key(), created.verifier_key(), "the second start loads the same key");
    assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temporary file is left");

    assert_invalid(Ledger::load_or_create_signer(&path, "factorychain.other/ledger"), "the ledger expects");
    std::fs::write(&path, "PRIVATE+KEY+garbage-secret-text\n").unwrap();
    match Ledger::load_or_create_signer(&path, PREFIX) {
        Err(LedgerError::Invalid(message)) => {
            assert!(message.contains("not a note signer key"), "{message}");
            assert!(!message.contains("garbage-secret-text"), "the key text leaked: {message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn errors_map_to_service_codes() {
    use fc_core::{ErrorCode, ServiceError};
    let table = [
        (LedgerError::Invalid("bad".into()), ErrorCode::InvalidArgument),
        (LedgerError::NotFound("gone".into()), ErrorCode::NotFound),
        (LedgerError::Storage("disk".into()), ErrorCode::Internal),
        (LedgerError::Closed, ErrorCode::Unavailable),
    ];
    for (error, code) in table {
        assert_eq!(ServiceError::from(error.clone()).code, code, "{error}");
    }
}
