//! `factorychain verify` on proofs and checkpoints made by the ledger crate:
//! valid ones exit 0, every tampered or malformed one exits 1 with a reason.

use fc_ledger::merkle::{MemStore, Tree};
use fc_ledger::note::{Checkpoint, Signer, sign_note};
use std::process::Command;

fn verify(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_factorychain")).arg("verify").args(args).output().expect("run factorychain");
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn proofs_verify_and_tampering_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = Tree::new(MemStore::new());
    for i in 0..37u32 {
        tree.append(format!("entry {i}").as_bytes());
    }
    let root = hex::encode(tree.root());
    let proof = tree.inclusion_proof(11, 37).unwrap();
    let leaf = hex::encode(tree.leaf_hash_at(11).unwrap());
    let hashes: Vec<String> = proof.iter().map(hex::encode).collect();
    let good = serde_json::json!({"leaf_index": 11, "tree_size": 37, "leaf_hash": leaf, "root_hash": root, "hashes": hashes});
    let (code, out) = verify(&["inclusion", &write(dir.path(), "inc.json", &good.to_string())]);
    assert_eq!(code, 0, "{out}");
    // a flipped hash, a wrong index, a malformed file: exit 1 with a reason
    let mut bad = good.clone();
    let h = bad["hashes"][0].as_str().unwrap().to_string();
    bad["hashes"][0] = serde_json::Value::String(format!("{}{}", if h.starts_with('0') { '1' } else { '0' }, &h[1..]));
    let mut wrong_index = good.clone();
    wrong_index["leaf_index"] = 12.into();
    for (name, text) in [
        ("flip.json", bad.to_string()),
        ("index.json", wrong_index.to_string()),
        ("junk.json", "{\"leaf_index\":".into()),
        ("upper.json", good.to_string().replace(&root, &root.to_uppercase())),
    ] {
        let (code, out) = verify(&["inclusion", &write(dir.path(), name, &text)]);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains("invalid:"), "{name}: {out}");
    }
    // consistency between sizes 20 and 37
    let old_root = hex::encode(tree.root_at(20).unwrap());
    let cons: Vec<String> = tree.consistency_proof(20, 37).unwrap().iter().map(hex::encode).collect();
    let good = serde_json::json!({"size1": 20, "size2": 37, "root1": old_root, "root2": root, "hashes": cons});
    assert_eq!(verify(&["consistency", &write(dir.path(), "cons.json", &good.to_string())]).0, 0);
    let mut rewritten = good.clone();
    rewritten["root1"] = serde_json::Value::String(hex::encode(tree.root_at(19).unwrap()));
    let (code, out) = verify(&["consistency", &write(dir.path(), "rewritten.json", &rewritten.to_string())]);
    assert_eq!(code, 1, "a rewritten history is caught: {out}");
}

#[test]
fn checkpoints_verify_against_the_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate("factorychain.example/settlement").unwrap();
    let other = Signer::generate("factorychain.example/settlement").unwrap();
    let mut tree = Tree::new(MemStore::new());
    tree.append(b"order issued");
    const ORIGIN: &str = "factorychain.example/settlement";
    let body = Checkpoint { origin: ORIGIN.into(), size: 1, root: tree.root(), extensions: vec![] }.to_body();
    let note = sign_note(&body, &[&signer]).unwrap();
    let path = write(dir.path(), "cp.note", &note);
    let (code, out) = verify(&["checkpoint", &path, "--key", &signer.verifier_key(), "--origin", ORIGIN]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("size 1"), "{out}");
    assert_eq!(
        verify(&["checkpoint", &path, "--key", &other.verifier_key(), "--origin", ORIGIN]).0,
        1,
        "another key's checkpoint is refused"
    );
    let tampered = write(dir.path(), "t.note", &note.replacen("\n1\n", "\n2\n", 1));
    assert_eq!(
        verify(&["checkpoint", &tampered, "--key", &signer.verifier_key(), "--origin", ORIGIN]).0,
        1,
        "a changed size breaks the signature"
    );
    let (code, out) = verify(&["checkpoint", &path, "--key", &signer.verifier_key()]);
    assert_eq!(code, 1, "a checkpoint is verified only as the log it must be of: {out}");
    assert_eq!(verify(&["checkpoint", &path, "--key", &signer.verifier_key(), "--origin", "factorychain.example/other"]).0, 1);
    assert_eq!(verify(&["checkpoint", &path, "--key", "not-a-key", "--origin", ORIGIN]).0, 1);
}
