//! Supplier settlement from the command line, against the portal's REST API
//! with an API key: organisation keys (`keys`), encrypted designs (`design`)
//! and an independent recomputation of every payment (`settlement replay`).
//!
//! Invariant: design plaintext and the organisation's secret key stay on this
//! machine; only ciphertext and the public key are sent.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use fc_ledger::entry::Entry;
use fc_ledger::note::{Verifier, open_checkpoint};
use fc_settlement::InclusionProof;
use fc_settlement_api::{DesignView, EntryView, PaymentView};
use serde::de::DeserializeOwned;
use std::path::PathBuf;

/// How to reach the portal.
#[derive(Args, Clone)]
pub struct Portal {
    /// Portal base URL.
    #[arg(long, env = "FC_PORTAL", default_value = "http://127.0.0.1:8080", global = true)]
    pub portal: String,
    /// API key of your organisation (`factorychain` portal → API keys).
    #[arg(long, env = "FC_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
}

/// `keys`.
#[derive(Subcommand)]
pub enum KeysCmd {
    /// Make your organisation's key pair here; the secret half never leaves this machine.
    Generate {
        /// Where to write the identity file (mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Label written into the file.
        #[arg(long, default_value = "my organisation")]
        org: String,
        /// Also register the public key with the portal.
        #[arg(long)]
        register: bool,
    },
    /// Register the public key of an identity file with the portal (operator API key).
    Register {
        /// The identity file.
        #[arg(long)]
        identity: PathBuf,
    },
}

/// `design`.
#[derive(Subcommand)]
pub enum DesignCmd {
    /// Encrypt a design here to the named organisations (and yours) and upload the ciphertext.
    Push {
        /// The design file.
        file: PathBuf,
        /// Design id (1-35 of A-Z a-z 0-9 - _ .); pushing again makes a new version.
        #[arg(long)]
        design: String,
        /// Organisation ids that may read it (repeat or comma-separate).
        #[arg(long, value_delimiter = ',', required = true)]
        to: Vec<String>,
        /// The supply network (default: your own, as buyer).
        #[arg(long)]
        network: Option<String>,
        /// Do not add your own organisation to the recipients.
        #[arg(long)]
        no_self: bool,
    },
    /// Download a design version and decrypt it here.
    Pull {
        /// The supply network (the buyer's organisation id).
        #[arg(long)]
        network: String,
        /// Design id.
        #[arg(long)]
        design: String,
        /// Version.
        #[arg(long)]
        version: u32,
        /// Your identity file.
        #[arg(long)]
        identity: PathBuf,
        /// Where to write the plaintext (not overwritten).
        #[arg(short = 'o', long)]
        out: PathBuf,
    },
}

/// `settlement`.
#[derive(Subcommand)]
pub enum SettlementCmd {
    /// Recompute every payment of the network from the ledger's entries alone
    /// (each checked against the signed checkpoint) and compare with the service.
    Replay {
        /// The supply network (the buyer's organisation id).
        #[arg(long)]
        network: String,
        /// The ledger's verifier key, obtained out of band (default: asked from the portal, with a warning).
        #[arg(long)]
        key: Option<String>,
        /// The platform's origin prefix (`settlement.origin_prefix`): the checkpoint must be of
        /// `<prefix>/<network>`. Default `<key name>/ledger`.
        #[arg(long)]
        origin_prefix: Option<String>,
    },
}

/// A small JSON-over-HTTP client for the portal's API.
struct Client {
    base: String,
    key: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(p: &Portal) -> Result<Self> {
        let key = p.api_key.clone().context("an API key is needed: --api-key or FC_API_KEY")?;
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        Ok(Self { base: p.portal.trim_end_matches('/').to_string(), key, agent })
    }

    fn send(&self, method: &str, path: &str, content_type: &str, body: Option<Vec<u8>>) -> Result<Vec<u8>> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.key);
        let mut res = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("authorization", &auth).call(),
            ("PUT", Some(b)) => self.agent.put(&url).header("authorization", &auth).header("content-type", content_type).send(&b[..]),
            (_, b) => {
                self.agent.post(&url).header("authorization", &auth).header("content-type", content_type).send(&b.unwrap_or_default()[..])
            }
        }
        .with_context(|| format!("{method} {url}"))?;
        let status = res.status().as_u16();
        let bytes = res.body_mut().with_config().limit(1 << 30).read_to_vec().with_context(|| format!("{method} {url}: body"))?;
        if !(200..300).contains(&status) {
            let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            bail!("{method} {path}: {status}: {detail}");
        }
        Ok(bytes)
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        serde_json::from_slice(&self.send("GET", path, "", None)?).with_context(|| format!("GET {path}: JSON"))
    }

    fn get_text(&self, path: &str) -> Result<String> {
        Ok(String::from_utf8(self.send("GET", path, "", None)?)?)
    }
}

/// `keys …`
pub fn keys(p: &Portal, cmd: KeysCmd) -> Result<String> {
    match cmd {
        KeysCmd::Generate { out, org, register } => {
            let keys = fc_sealed::OrgKeys::generate();
            fc_sealed::write_identity_file(&out, &keys, &org).with_context(|| out.display().to_string())?;
            let mut said = format!("wrote {} (keep it private; it is the only copy)\npublic key: {}", out.display(), keys.recipient());
            if register {
                said.push('\n');
                said.push_str(&register_key(p, &keys.recipient())?);
            }
            Ok(said)
        }
        KeysCmd::Register { identity } => {
            let text = std::fs::read_to_string(&identity).with_context(|| identity.display().to_string())?;
            let keys = fc_sealed::OrgKeys::from_identity_file(&text).map_err(|e| anyhow::anyhow!("{}: {e}", identity.display()))?;
            register_key(p, &keys.recipient())
        }
    }
}

fn register_key(p: &Portal, recipient: &str) -> Result<String> {
    let c = Client::new(p)?;
    let body = serde_json::json!({ "age_recipient": recipient }).to_string().into_bytes();
    c.send("PUT", "/api/v1/org/key", "application/json", Some(body))?;
    Ok(format!("registered {recipient} as your organisation's design key"))
}

/// `design …`
pub fn design(p: &Portal, cmd: DesignCmd) -> Result<String> {
    let c = Client::new(p)?;
    match cmd {
        DesignCmd::Push { file, design, to, network, no_self } => {
            let me: serde_json::Value = c.get("/api/v1/org")?;
            let my_id = me["organisation_id"].as_str().context("organisation id")?.to_string();
            let network = network.unwrap_or_else(|| my_id.clone());
            let mut orgs: Vec<String> = to.iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
            if !no_self {
                orgs.push(my_id);
            }
            orgs.sort();
            orgs.dedup();
            let mut recipients = Vec::new();
            for org in &orgs {
                let k: serde_json::Value = c.get(&format!("/api/v1/orgs/{org}/key"))?;
                recipients.push(k["age_recipient"].as_str().context("age_recipient")?.to_string());
            }
            let plaintext = std::fs::read(&file).with_context(|| file.display().to_string())?;
            let sealed = fc_sealed::seal(&plaintext, &recipients).map_err(|e| anyhow::anyhow!("encrypting: {e}"))?;
            let path = format!("/api/v1/networks/{network}/designs/{design}?to={}", orgs.join(","));
            let d: DesignView = serde_json::from_slice(&c.send("POST", &path, "application/octet-stream", Some(sealed))?)?;
            Ok(format!(
                "published {} v{} ({} bytes encrypted to {}), ledger entry {}, sha256 {}",
                d.design_id,
                d.version,
                plaintext.len(),
                d.recipients.join(", "),
                d.seq,
                d.ciphertext_sha256
            ))
        }
        DesignCmd::Pull { network, design, version, identity, out } => {
            let text = std::fs::read_to_string(&identity).with_context(|| identity.display().to_string())?;
            let keys = fc_sealed::OrgKeys::from_identity_file(&text).map_err(|e| anyhow::anyhow!("{}: {e}", identity.display()))?;
            let listed: Vec<DesignView> = c.get(&format!("/api/v1/networks/{network}/designs"))?;
            let meta = listed
                .iter()
                .find(|d| d.design_id == design && d.version == version)
                .with_context(|| format!("design {design} v{version} is not shared with you"))?;
            let sealed = c.send("GET", &format!("/api/v1/networks/{network}/designs/{design}/versions/{version}"), "", None)?;
            if fc_sealed::sha256_hex(&sealed) != meta.ciphertext_sha256 {
                bail!("the downloaded file does not match the hash the ledger recorded");
            }
            let plain = fc_sealed::open(&sealed, &keys).map_err(|e| anyhow::anyhow!("decrypting: {e}"))?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&out)
                .with_context(|| format!("{} (not overwritten)", out.display()))?;
            std::io::Write::write_all(&mut f, &plain)?;
            Ok(format!("wrote {} ({} bytes), design {design} v{version}", out.display(), plain.len()))
        }
    }
}

/// Reads every entry the caller may see up to the checkpoint, checks each
/// against the checkpoint's root, and folds them.
fn replay_once(c: &Client, network: &str, origin: &str, verifier: &Verifier) -> Result<(u64, usize, Vec<PaymentView>)> {
    let note = c.get_text(&format!("/api/v1/ledger/{network}/checkpoint"))?;
    // The origin, not only the signature: the one key signs every network's log.
    let (cp, _) = open_checkpoint(&note, std::slice::from_ref(verifier), origin).map_err(|e| anyhow::anyhow!("the checkpoint: {e}"))?;
    let mut entries = Vec::new();
    let mut start = 0;
    while start < cp.size {
        let end = (start + 1000).min(cp.size);
        let page: Vec<EntryView> = c.get(&format!("/api/v1/ledger/{network}/entries?start={start}&end={end}"))?;
        for v in page {
            let entry: Entry = serde_json::from_value(v.entry).with_context(|| format!("entry {}", v.index))?;
            if entry.seq != v.index {
                bail!("entry served at index {} says seq {}", v.index, entry.seq);
            }
            let bytes = entry.to_bytes();
            let proof: InclusionProof = c.get(&format!("/api/v1/ledger/{network}/proof/inclusion?index={}&size={}", v.index, cp.size))?;
            if (proof.leaf_index, proof.tree_size) != (v.index, cp.size) {
                bail!("asked a proof of entry {} in {} entries, got one of {} in {}", v.index, cp.size, proof.leaf_index, proof.tree_size);
            }
            proof.verify_entry(&bytes, &cp.root).map_err(|e| anyhow::anyhow!("entry {} is not in the signed ledger: {e}", v.index))?;
            entries.push(entry);
        }
        start = end;
    }
    let complete = entries.len() as u64 == cp.size;
    let fold = if complete { fc_ledger::settle::replay(&entries) } else { fc_ledger::settle::replay_sparse(&entries) }
        .map_err(|e| anyhow::anyhow!("the entries do not settle: {e}"))?;
    let payments = fold
        .payments()
        .iter()
        .filter_map(|p| fold.order(&p.instruction.order_id).map(|o| fc_settlement_api::payment_view(p, &o.terms.supplier_org)))
        .collect();
    Ok((cp.size, entries.len(), payments))
}

/// `settlement …`
pub fn settlement(p: &Portal, cmd: SettlementCmd) -> Result<String> {
    let c = Client::new(p)?;
    let SettlementCmd::Replay { network, key, origin_prefix } = cmd;
    let key = match key {
        Some(k) => k,
        None => {
            eprintln!("warning: trusting the ledger key the portal states; pass --key to check against one you got elsewhere");
            c.get_text("/api/v1/ledger/key")?.trim().to_string()
        }
    };
    let verifier = Verifier::from_vkey(&key).map_err(|e| anyhow::anyhow!("--key: {e}"))?;
    let log = crate::verify::LogArgs { network: Some(network.clone()), origin: None, origin_prefix };
    let origin = log.origin(&verifier, None)?;
    // Entries may arrive while we read: compare only against a statement that
    // did not move while the entries were read.
    for _ in 0..5 {
        let before: Vec<PaymentView> = c.get(&format!("/api/v1/networks/{network}/payments"))?;
        let (size, read, mine) = replay_once(&c, &network, &origin, &verifier)?;
        let after: Vec<PaymentView> = c.get(&format!("/api/v1/networks/{network}/payments"))?;
        if before != after {
            continue;
        }
        if mine != after {
            let mut diff = String::new();
            for (i, (a, b)) in mine.iter().zip(after.iter()).enumerate() {
                if a != b {
                    diff.push_str(&format!("\n  #{i}: entries give {a:?}\n       service says {b:?}"));
                }
            }
            if mine.len() != after.len() {
                diff.push_str(&format!("\n  the entries give {} payments, the service lists {}", mine.len(), after.len()));
            }
            bail!("the service's statement differs from the ledger's entries:{diff}");
        }
        let total: u64 = mine.iter().map(|p| p.amount_krw).sum();
        let mut said = format!(
            "replayed {read} entries (of {size}, each proven under the signed checkpoint): {} payments, {total} KRW, equal to the service",
            mine.len()
        );
        for p in &mine {
            said.push_str(&format!(
                "\n  {} {}/{}  {} KRW (penalty {})  {}",
                p.instruction_id, p.order_id, p.shipment_id, p.amount_krw, p.penalty_krw, p.status
            ));
        }
        return Ok(said);
    }
    bail!("the ledger kept changing while it was read; try again")
}
