//! `factorychain verify`: check the settlement ledger's checkpoints and proofs
//! offline, trusting nothing the server says. Exit 0 when valid, 1 with the
//! reason when not (malformed input included).
//!
//! Invariant: a checkpoint is accepted only for the log the user names
//! (`--network` or `--origin`, or the network of the URL followed). The one
//! ledger key signs every network's checkpoints, so a valid signature alone
//! would let a server pass one network's tree head off as another's.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use fc_ledger::merkle::{Hash, verify_consistency};
use fc_ledger::note::{Checkpoint, Verifier, open_checkpoint};
use fc_ledger::proof::{ConsistencyProof, InclusionProof};
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
        #[command(flatten)]
        log: LogArgs,
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
    /// Witness a log: keep the last checkpoint seen and prove every new one
    /// consistent with it. A rewritten or forked history is reported (exit 1).
    Follow {
        /// The log's base URL, e.g. `http://127.0.0.1:8080/api/v1/ledger/t_0123456789abcdef`
        /// (`/checkpoint` and `/proof/consistency` are read below it).
        url: String,
        /// The log's verifier key (`name+hexid+base64key`).
        #[arg(long)]
        key: String,
        #[command(flatten)]
        log: LogArgs,
        /// API key of a member organisation (or the `FC_API_KEY` environment variable).
        #[arg(long, env = "FC_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Where the last verified checkpoint is kept between runs.
        #[arg(long, default_value = "factorychain-witness.note")]
        state: PathBuf,
        /// Seconds between polls.
        #[arg(long, default_value_t = 5)]
        interval_s: u64,
        /// Check once and exit (for cron jobs and tests).
        #[arg(long)]
        once: bool,
    },
}

/// Which log a checkpoint must be of.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct LogArgs {
    /// The supply network (buyer's organisation id) the checkpoint must be of: its origin is
    /// `<origin prefix>/<network>`. `verify follow` takes it from the URL's last segment.
    #[arg(long)]
    pub network: Option<String>,
    /// The exact origin the checkpoint must name, instead of --network.
    #[arg(long, conflicts_with = "network")]
    pub origin: Option<String>,
    /// The platform's origin prefix (its `settlement.origin_prefix`); default `<key name>/ledger`.
    #[arg(long, conflicts_with = "origin")]
    pub origin_prefix: Option<String>,
}

impl LogArgs {
    /// The origin to expect; `network` is the fallback (e.g. from a URL) when
    /// neither `--network` nor `--origin` is given.
    pub fn origin(&self, verifier: &Verifier, network: Option<&str>) -> Result<String> {
        if let Some(origin) = &self.origin {
            return Ok(origin.clone());
        }
        let Some(network) = self.network.as_deref().or(network).filter(|n| !n.is_empty()) else {
            bail!("name the log the checkpoint must be of: --network <organisation id> (or --origin)");
        };
        let prefix = self.origin_prefix.clone().unwrap_or_else(|| default_origin_prefix(verifier));
        Ok(format!("{}/{network}", prefix.trim_end_matches('/')))
    }
}

/// The service's default layout: origins `<key name>/ledger/<network>`.
pub fn default_origin_prefix(verifier: &Verifier) -> String {
    format!("{}/ledger", verifier.name())
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

/// What a witness concludes about a new checkpoint, given the last one it trusted.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The first checkpoint seen: nothing to compare with.
    First,
    /// Same tree as before.
    Unchanged,
    /// The new tree extends the old one; the proof checked out.
    Extended {
        /// Old size.
        from: u64,
    },
}

/// Judge `new` against `old` (both signature-checked already). `proof` is the
/// server's consistency proof from `old.size` to `new.size`, needed only when
/// the tree grew. Any rewrite of history is an error naming what differs.
pub fn judge(old: Option<&Checkpoint>, new: &Checkpoint, proof: Option<&[Hash]>) -> Result<Step> {
    let Some(old) = old else { return Ok(Step::First) };
    if old.origin != new.origin {
        bail!("the log's origin changed from {:?} to {:?}", old.origin, new.origin);
    }
    if new.size < old.size {
        bail!("the log shrank from {} to {} entries: history was rewritten", old.size, new.size);
    }
    if new.size == old.size {
        if new.root != old.root {
            bail!(
                "two different roots for size {}: {} then {} (a fork: history was rewritten)",
                new.size,
                hex::encode(old.root),
                hex::encode(new.root)
            );
        }
        return Ok(Step::Unchanged);
    }
    let proof = proof.context("a consistency proof is needed")?;
    verify_consistency(old.size, new.size, &old.root, &new.root, proof).map_err(|e| {
        anyhow::anyhow!(
            "checkpoint of size {} is not consistent with the one of size {} seen before ({e}): history was rewritten",
            new.size,
            old.size
        )
    })?;
    Ok(Step::Extended { from: old.size })
}

fn get(url: &str, api_key: Option<&str>) -> Result<String> {
    let mut req = ureq::get(url);
    if let Some(k) = api_key {
        req = req.header("authorization", &format!("Bearer {k}"));
    }
    let mut res = req.call().with_context(|| format!("GET {url}"))?;
    res.body_mut().with_config().limit(1 << 20).read_to_string().with_context(|| format!("GET {url}: body"))
}

/// `verify follow`: poll the log, judge every new checkpoint, keep the last good one.
pub fn follow(url: &str, key: &str, log: &LogArgs, api_key: Option<&str>, state: &Path, interval_s: u64, once: bool) -> Result<String> {
    let verifier = Verifier::from_vkey(key).map_err(|e| anyhow::anyhow!("--key: {e}"))?;
    let base = url.trim_end_matches('/');
    let origin = log.origin(&verifier, base.rsplit('/').next())?;
    let mut last: Option<Checkpoint> = match std::fs::read_to_string(state) {
        Ok(note) => Some(
            open_checkpoint(&note, std::slice::from_ref(&verifier), &origin)
                .map_err(|e| anyhow::anyhow!("{}: the kept checkpoint does not verify: {e}", state.display()))?
                .0,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", state.display())),
    };
    loop {
        let note = get(&format!("{base}/checkpoint"), api_key)?;
        let (cp, _) =
            open_checkpoint(&note, std::slice::from_ref(&verifier), &origin).map_err(|e| anyhow::anyhow!("the served checkpoint: {e}"))?;
        let proof = match &last {
            Some(old) if cp.size > old.size => {
                let body = get(&format!("{base}/proof/consistency?from={}&to={}", old.size, cp.size), api_key)?;
                let p = ConsistencyProof::parse(&body).map_err(|e| anyhow::anyhow!("consistency {e}"))?;
                if (p.size1, p.size2) != (old.size, cp.size) {
                    bail!("the server answered a proof for sizes {}..{} instead of {}..{}", p.size1, p.size2, old.size, cp.size);
                }
                Some(p.hashes)
            }
            _ => None,
        };
        let step = judge(last.as_ref(), &cp, proof.as_deref())?;
        let said = match step {
            Step::First => format!("trusting {} at size {} (first checkpoint seen)", cp.origin, cp.size),
            Step::Unchanged => format!("{} unchanged at size {}", cp.origin, cp.size),
            Step::Extended { from } => format!("{} grew from {from} to {} entries, consistent", cp.origin, cp.size),
        };
        if step != Step::Unchanged {
            // Written only after the new checkpoint was judged good.
            let tmp = state.with_extension("tmp");
            std::fs::write(&tmp, &note).with_context(|| tmp.display().to_string())?;
            std::fs::rename(&tmp, state).with_context(|| state.display().to_string())?;
        }
        last = Some(cp);
        if once {
            return Ok(said);
        }
        println!("{said}");
        std::thread::sleep(std::time::Duration::from_secs(interval_s.max(1)));
    }
}

/// Check and describe; `Err` carries the reason it is not valid.
pub fn check(cmd: &VerifyCmd) -> Result<String> {
    match cmd {
        VerifyCmd::Follow { url, key, log, api_key, state, interval_s, once } => {
            follow(url, key, log, api_key.as_deref(), state, *interval_s, *once)
        }
        VerifyCmd::Checkpoint { note, key, log } => {
            let verifier = Verifier::from_vkey(key).map_err(|e| anyhow::anyhow!("--key: {e}"))?;
            let origin = log.origin(&verifier, None)?;
            let signed = read(note)?;
            let (cp, signers) = open_checkpoint(&signed, &[verifier], &origin).map_err(|e| anyhow::anyhow!("checkpoint: {e}"))?;
            Ok(format!(
                "valid checkpoint of {} signed by {}: size {}, root {}",
                cp.origin,
                signers.join(", "),
                cp.size,
                hex::encode(cp.root)
            ))
        }
        VerifyCmd::Inclusion { proof } => {
            let p = InclusionProof::parse(&read(proof)?).map_err(|e| anyhow::anyhow!("{e}"))?;
            p.verify().map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(format!("valid: leaf {} is in the tree of size {} with root {}", p.leaf_index, p.tree_size, hex::encode(p.root_hash)))
        }
        VerifyCmd::Consistency { proof } => {
            let p = ConsistencyProof::parse(&read(proof)?).map_err(|e| anyhow::anyhow!("{e}"))?;
            p.verify().map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(format!("valid: the tree of size {} is a prefix of the tree of size {}", p.size1, p.size2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fc_ledger::merkle::{MemStore, Tree};

    fn cp(tree: &Tree<MemStore>) -> Checkpoint {
        Checkpoint { origin: "factorychain.test/ledger/t_1".into(), size: tree.size(), root: tree.root(), extensions: vec![] }
    }

    #[test]
    fn a_witness_accepts_growth_and_catches_rewrites() {
        let mut tree = Tree::new(MemStore::new());
        for i in 0..5u8 {
            tree.append(&[i]);
        }
        let old = cp(&tree);
        assert_eq!(judge(None, &old, None).unwrap(), Step::First);
        assert_eq!(judge(Some(&old), &old, None).unwrap(), Step::Unchanged);
        for i in 5..9u8 {
            tree.append(&[i]);
        }
        let new = cp(&tree);
        let proof = tree.consistency_proof(5, 9).unwrap();
        assert_eq!(judge(Some(&old), &new, Some(&proof)).unwrap(), Step::Extended { from: 5 });
        // Truncate and re-append different entries: same sizes, other roots.
        let mut forged = Tree::new(MemStore::new());
        for i in 0..9u8 {
            forged.append(&[if i == 2 { 99 } else { i }]);
        }
        let forged_cp = cp(&forged);
        let forged_proof = forged.consistency_proof(5, 9).unwrap();
        let err = judge(Some(&old), &forged_cp, Some(&forged_proof)).unwrap_err().to_string();
        assert!(err.contains("history was rewritten"), "{err}");
        let err = judge(Some(&new), &forged_cp, None).unwrap_err().to_string();
        assert!(err.contains("fork"), "{err}");
        let err = judge(Some(&new), &old, None).unwrap_err().to_string();
        assert!(err.contains("shrank"), "{err}");
        let other = Checkpoint { origin: "elsewhere".into(), ..new.clone() };
        assert!(judge(Some(&new), &other, None).is_err());
    }
}
