//! `factorychain verify`: check the settlement ledger's checkpoints and proofs
//! offline, trusting nothing the server says. Exit 0 when valid, 1 with the
//! reason when not (malformed input included).

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use fc_ledger::merkle::{Hash, verify_consistency, verify_inclusion};
use fc_ledger::note::{Checkpoint, Verifier, open_note};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What to verify.
#[derive(Subcommand)]
pub enum VerifyCmd {
    /// A signed checkpoint (C2SP signed-note with a tlog-checkpoint body).
    Checkpoint {
        /// The note file (`-` for standard input).
        note: PathBuf,
        /// The log's verifier key (`name+hexid+base64key`).
        #[arg(long)]
        key: String,
    },
    /// An inclusion proof: `{"leaf_index","tree_size","leaf_hash","root_hash","hashes":[hex...]}`.
    Inclusion {
        /// The proof file (`-` for standard input).
        proof: PathBuf,
    },
    /// A consistency proof: `{"size1","size2","root1","root2","hashes":[hex...]}`.
    Consistency {
        /// The proof file (`-` for standard input).
        proof: PathBuf,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionProof {
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: String,
    root_hash: String,
    hashes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyProof {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    hashes: Vec<String>,
}

fn read(path: &Path) -> Result<String> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::Read::read_to_string(&mut std::io::stdin().take_limit(), &mut text)?;
    } else {
        let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        if meta.len() > fc_ledger::note::MAX_NOTE_BYTES as u64 {
            bail!("{} is larger than {} bytes", path.display(), fc_ledger::note::MAX_NOTE_BYTES);
        }
        text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    }
    Ok(text)
}

trait TakeLimit: std::io::Read + Sized {
    fn take_limit(self) -> std::io::Take<Self> {
        self.take(fc_ledger::note::MAX_NOTE_BYTES as u64 + 1)
    }
}
impl<R: std::io::Read> TakeLimit for R {}

/// A 32-byte hash from lowercase hex.
fn hash(field: &str, s: &str) -> Result<Hash> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        bail!("{field}: expected 64 lowercase hex digits");
    }
    let bytes = hex::decode(s).with_context(|| field.to_string())?;
    Ok(bytes.try_into().expect("32 bytes"))
}

fn hashes(list: &[String]) -> Result<Vec<Hash>> {
    list.iter().enumerate().map(|(i, h)| hash(&format!("hashes[{i}]"), h)).collect()
}

/// Check and describe; `Err` carries the reason it is not valid.
pub fn check(cmd: &VerifyCmd) -> Result<String> {
    match cmd {
        VerifyCmd::Checkpoint { note, key } => {
            let verifier = Verifier::from_vkey(key).map_err(|e| anyhow::anyhow!("--key: {e}"))?;
            let signed = read(note)?;
            let (text, signers) = open_note(&signed, &[verifier]).map_err(|e| anyhow::anyhow!("signature: {e}"))?;
            let cp = Checkpoint::parse(&text).map_err(|e| anyhow::anyhow!("checkpoint: {e}"))?;
            Ok(format!("valid checkpoint of {} signed by {}: size {}, root {}", cp.origin, signers.join(", "), cp.size, hex::encode(cp.root)))
        }
        VerifyCmd::Inclusion { proof } => {
            let p: InclusionProof = serde_json::from_str(&read(proof)?).context("proof JSON")?;
            let (leaf, root) = (hash("leaf_hash", &p.leaf_hash)?, hash("root_hash", &p.root_hash)?);
            verify_inclusion(&leaf, p.leaf_index, p.tree_size, &hashes(&p.hashes)?, &root).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(format!("valid: leaf {} is in the tree of size {} with root {}", p.leaf_index, p.tree_size, p.root_hash))
        }
        VerifyCmd::Consistency { proof } => {
            let p: ConsistencyProof = serde_json::from_str(&read(proof)?).context("proof JSON")?;
            let (r1, r2) = (hash("root1", &p.root1)?, hash("root2", &p.root2)?);
            verify_consistency(p.size1, p.size2, &r1, &r2, &hashes(&p.hashes)?).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(format!("valid: the tree of size {} is a prefix of the tree of size {}", p.size1, p.size2))
        }
    }
}
