//! [`Settlement`]: every operation of the settlement service, for an acting
//! organisation whose id the caller took from its credential.

use crate::designs::{AGE_HEADER, BlobStore};
use crate::network::{Network, Refusal};
use crate::{Config, StartError};
use fc_core::{ErrorCode, ServiceError};
use fc_ledger::entry::{
    AcceptancePlan, DeliveryAccepted, DeliveryRejected, DesignAccessChanged, DesignPublished, Entry, Event, InspectionRecorded,
    InspectionSource, OrderAccepted, OrderIssued, PaymentConfirmed, PaymentsExported, Sha256Hex, ShipmentMoved,
};
use fc_ledger::pain001;
use fc_ledger::settle::{Decision, OrderStatus, Payment, PaymentStatus, SettleError};
use fc_settlement::{ConsistencyProof, InclusionProof, Ledger, LedgerError};
use fc_settlement_api::{
    BankFile, BlockedView, DesignView, EntryView, ExportView, NetworkView, OrderInput, OrderView, PaymentView, ShipmentView,
    TelemetryInspection, bank_party, payment_view,
};
use fc_tenancy_api::TenancyClient;

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Mutex;

type Res<T> = Result<T, ServiceError>;

/// Most readings one telemetry inspection counts.
const MAX_INSPECTED_READINGS: u64 = 100_000;
/// Largest amount of an order or a penalty, in KRW (the bank file's 18 digits hold it).
const MAX_KRW: u64 = 999_999_999_999_999;

pub use fc_settlement_api::UploadError;

/// A tenant's design storage: its plan's limit and what it stores.
#[derive(Debug)]
struct DesignQuota {
    plan: String,
    limit: u64,
    stored: u64,
}

/// A design being uploaded: its ciphertext streams to a temporary file (never
/// held whole in memory), hashed on the way; the file is removed unless
/// [`Settlement::finish_design_upload`] stores it.
pub struct DesignUpload {
    network: String,
    actor: String,
    design_id: String,
    recipients: Vec<String>,
    tmp: std::path::PathBuf,
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    written: u64,
    /// The first bytes, to check the age header.
    head: Vec<u8>,
    max_file: u64,
    quota: DesignQuota,
}

impl DesignUpload {
    /// Refuses a file of `size` bytes over the per-file limit or the plan's quota.
    fn check_size(&self, size: u64) -> Result<(), UploadError> {
        if size > self.max_file {
            return Err(UploadError {
                too_large: true,
                error: ServiceError::invalid(
                    "body",
                    format!("the design is over the {} bytes limit of one design file (settlement.max_design_bytes)", self.max_file),
                ),
            });
        }
        // Counted as new bytes while streaming: the hash (and so whether the
        // very file is stored already) is known only at the end.
        let q = &self.quota;
        if q.stored.saturating_add(size) > q.limit {
            return Err(ServiceError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "design storage quota: the {} plan stores at most {} bytes of designs; {} are stored and this file needs {} more",
                    q.plan, q.limit, q.stored, size
                ),
            )
            .into());
        }
        Ok(())
    }

    /// Appends the next part of the ciphertext.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.check_size(self.written.saturating_add(chunk.len() as u64))?;
        let missing = AGE_HEADER.len().saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..missing.min(chunk.len())]);
        self.hasher.update(chunk);
        let file = self.file.as_mut().ok_or_else(|| ServiceError::internal("design upload already finished"))?;
        tokio::io::AsyncWriteExt::write_all(file, chunk).await.map_err(|e| ServiceError::internal(format!("design store: {e}")))?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// The temporary file became the stored file: nothing to remove.
    fn committed(&mut self) {
        self.tmp = std::path::PathBuf::new();
    }
}

impl Drop for DesignUpload {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// What a supplier's payments go to.
enum Creditor {
    Account(pain001::Party),
    NoAccount { name: String },
}

impl Creditor {
    async fn of(tenancy: &TenancyClient, supplier: &str) -> Res<Self> {
        let org = match tenancy.organisation(supplier).await {
            Ok(org) => org,
            // A supplier whose tenant is gone is paid nothing until an operator looks.
            Err(e) if e.code == ErrorCode::NotFound => return Ok(Creditor::NoAccount { name: supplier.to_string() }),
            Err(e) => return Err(e),
        };
        Ok(match org.bank {
            Some(bank) => Creditor::Account(bank_party(&bank)),
            // The name, not the id: the buyer's people know their suppliers by name.
            None => Creditor::NoAccount { name: org.name },
        })
    }
}

/// The creditor of each of `payments` (from `accounts`, see
/// [`Settlement::accounts`]), and the payments of suppliers without an
/// account. A supplier missing from `accounts` (its first payment became due
/// after they were read) waits for the next export.
fn creditors(
    s: &Network,
    payments: &[&Payment],
    accounts: &HashMap<String, Creditor>,
) -> (HashMap<String, pain001::Party>, BlockedSuppliers) {
    let mut parties = HashMap::new();
    let mut blocked = BlockedSuppliers::default();
    for p in payments {
        let Some(supplier) = s.supplier_of(&p.instruction.order_id) else { continue };
        match accounts.get(supplier) {
            Some(Creditor::Account(party)) => {
                parties.entry(supplier.to_string()).or_insert_with(|| party.clone());
            }
            Some(Creditor::NoAccount { name }) => blocked.add(supplier, name, p),
            None => blocked.add(supplier, supplier, p),
        }
    }
    (parties, blocked)
}

/// Payments left out, grouped by supplier in the order first met.
#[derive(Default)]
struct BlockedSuppliers(Vec<BlockedView>);

impl BlockedSuppliers {
    fn add(&mut self, supplier_org: &str, name: &str, p: &Payment) {
        let i = match self.0.iter().position(|b| b.supplier_org == supplier_org) {
            Some(i) => i,
            None => {
                self.0.push(BlockedView {
                    supplier_org: supplier_org.to_string(),
                    supplier_name: name.to_string(),
                    instruction_ids: Vec::new(),
                    amount_krw: 0,
                });
                self.0.len() - 1
            }
        };
        self.0[i].instruction_ids.push(p.instruction.instruction_id.clone());
        self.0[i].amount_krw += p.instruction.amount_krw;
    }

    fn names(&self) -> Vec<&str> {
        self.0.iter().map(|b| b.supplier_name.as_str()).collect()
    }
}

/// The settlement engine.
pub struct Settlement {
    ledger: Arc<Ledger>,
    /// Membership, names, plans and bank accounts: the tenancy owner's, asked over gRPC.
    tenancy: Arc<TenancyClient>,
    /// The telemetry store, read through ingest's `Query` (range rules and read budgets there).
    telemetry: fc_query_api::QueryClient,
    blobs: Arc<BlobStore>,
    /// The bank files exported, by SHA-256 (the ledger names the hash).
    exports: BlobStore,
    networks: std::sync::Mutex<HashMap<String, Arc<Mutex<Option<Network>>>>>,
    config: Config,
}

fn settle_error(e: SettleError) -> ServiceError {
    // The fold names the entry it would have been; callers care about the rule.
    let text = e.to_string();
    let msg = text.split_once(": ").map_or(text.as_str(), |(_, m)| m).to_string();
    let code = match e {
        SettleError::Duplicate { .. } => ErrorCode::AlreadyExists,
        SettleError::UnknownOrder { .. } | SettleError::UnknownShipment { .. } => ErrorCode::NotFound,
        SettleError::WrongActor { .. } => ErrorCode::PermissionDenied,
        SettleError::OutOfOrder { .. } | SettleError::AcceptanceRefused { .. } | SettleError::NothingDue { .. } => {
            ErrorCode::FailedPrecondition
        }
        SettleError::Export { .. } => ErrorCode::FailedPrecondition,
        SettleError::Quantity { .. } | SettleError::Overflow { .. } => ErrorCode::InvalidArgument,
        SettleError::OutOfSequence { .. } | SettleError::UnsupportedVersion { .. } | SettleError::InstructionMismatch { .. } => {
            return ServiceError::internal(text);
        }
    };
    ServiceError::new(code, msg)
}

fn refusal(r: Refusal) -> ServiceError {
    match r {
        Refusal::Settle(e) => settle_error(e),
        Refusal::Design(m) => ServiceError::new(ErrorCode::FailedPrecondition, m),
    }
}

/// Ids of orders, shipments and designs: 1-35 of `A-Z a-z 0-9 - _ .` (they
/// travel into the bank file's remittance text).
fn check_id(field: &str, id: &str) -> Res<()> {
    if (1..=35).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        Ok(())
    } else {
        Err(ServiceError::invalid(field, "1 to 35 of A-Z a-z 0-9 - _ ."))
    }
}

fn check_text(field: &str, text: &str, max: usize) -> Res<()> {
    if text.trim().is_empty() || text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(ServiceError::invalid(field, format!("1 to {max} characters, no control characters")));
    }
    Ok(())
}

fn not_found_network(network: &str) -> ServiceError {
    ServiceError::not_found(format!("supply network {network}"))
}

/// A bank file's message id: `FC`, the buyer's id (16 characters) and `E`
/// with the seq of the entry that records the export, in hex: unique in the
/// network, deterministic, and at most 35 characters (`Max35Text`).
fn export_message_id(network: &str, seq: u64) -> String {
    let org: String = network.strip_prefix("t_").unwrap_or(network).chars().filter(char::is_ascii_alphanumeric).take(16).collect();
    format!("FC{org}E{seq:X}")
}

/// A fresh salt for one entry (see `fc_ledger::entry`: it keeps the entry's
/// leaf hash from confirming a guess of its fields to members who may not
/// read it).
fn salt() -> [u8; 32] {
    let mut salt = [0u8; 32];
    getrandom::fill(&mut salt).expect("the operating system's random source failed");
    salt
}

fn random_id(prefix: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    format!("{prefix}-{}", hex::encode(b).to_uppercase())
}

impl Settlement {
    /// Opens the ledger and design store under `data_dir` (no tasks started: see [`crate::serve`]).
    pub fn open(
        config: Config,
        data_dir: &Path,
        tenancy: Arc<TenancyClient>,
        telemetry: fc_query_api::QueryClient,
    ) -> Result<Arc<Self>, StartError> {
        let key_name = config.origin_prefix.split('/').next().unwrap_or("factorychain").to_string();
        let signer =
            Ledger::load_or_create_signer(&data_dir.join("ledger.key"), &key_name).map_err(|e| StartError::Storage(e.to_string()))?;
        let ledger = Ledger::open(&data_dir.join("settlement.redb"), signer, &config.origin_prefix)
            .map_err(|e| StartError::Storage(e.to_string()))?;
        let blobs = Arc::new(BlobStore::open(data_dir.join("designs"), "age").map_err(|e| StartError::Storage(format!("designs: {e}")))?);
        let exports = BlobStore::open(data_dir.join("exports"), "xml").map_err(|e| StartError::Storage(format!("exports: {e}")))?;
        Ok(Arc::new(Self { ledger, tenancy, telemetry, blobs, exports, networks: Default::default(), config }))
    }

    /// The tenancy owner's client (API keys, membership, profiles).
    pub fn tenancy(&self) -> &Arc<TenancyClient> {
        &self.tenancy
    }

    /// The underlying ledger (checkpointer, audits, benchmarks).
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// The key checkpoints verify with (`name+id+key`).
    pub fn verifier_key(&self) -> String {
        self.ledger.verifier_key()
    }

    /// The origin a network's checkpoints name (`<origin_prefix>/<network>`):
    /// what a verifier must expect, since one key signs every network's log.
    pub fn origin(&self, network: &str) -> String {
        self.ledger.origin(network)
    }

    /// Largest design accepted, in bytes.
    pub fn max_design_bytes(&self) -> usize {
        self.config.max_design_bytes
    }

    // ---- membership and state -------------------------------------------------

    /// Checks that `org` belongs to `network` (its buyer or an accepted supplier).
    async fn member(&self, network: &str, org: &str) -> Res<()> {
        if network == org || self.tenancy.is_member(network, org).await? { Ok(()) } else { Err(not_found_network(network)) }
    }

    fn slot(&self, network: &str) -> Arc<Mutex<Option<Network>>> {
        self.networks.lock().expect("network map poisoned").entry(network.to_string()).or_default().clone()
    }

    /// Replays a network's log into its state (on the blocking pool: O(entries)).
    async fn load(&self, network: &str) -> Res<Network> {
        let (ledger, net) = (self.ledger.clone(), network.to_string());
        tokio::task::spawn_blocking(move || replay_log(&ledger, &net)).await.map_err(ServiceError::internal)?
    }

    /// The network's lock, with its state loaded (on first use).
    async fn locked(&self, network: &str) -> Res<tokio::sync::OwnedMutexGuard<Option<Network>>> {
        let mut guard = self.slot(network).lock_owned().await;
        if guard.is_none() {
            *guard = Some(self.load(network).await?);
        }
        Ok(guard)
    }

    /// Runs `f` on the network's state, under its lock.
    async fn with_state<T>(&self, network: &str, f: impl FnOnce(&Network) -> Res<T>) -> Res<T> {
        f(self.locked(network).await?.as_ref().expect("loaded"))
    }

    /// Decides the events `make` returns against the state, appends them (and
    /// the payment instructions they make due) in one commit, and returns the
    /// appended entries.
    ///
    /// Invariant: the state equals the fold of the log whenever the network's
    /// lock is free. The deciding and the append run in a task of their own
    /// that holds the lock until the append answered, so a caller that goes
    /// away (a client disconnect drops this future) cannot leave an append in
    /// flight while the next request decides against a stale log.
    async fn record(&self, network: &str, actor: &str, make: impl FnOnce(&Network) -> Res<Vec<Event>>) -> Res<Vec<Entry>> {
        self.member(network, actor).await?;
        let mut guard = self.locked(network).await?;
        let events = make(guard.as_ref().expect("loaded"))?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (ledger, network, actor) = (self.ledger.clone(), network.to_string(), actor.to_string());
        // In the caller's span: with traces on, the append is part of its request's trace.
        tokio::spawn(tracing::Instrument::in_current_span(async move {
            let result = decide_and_append(&mut guard, &ledger, &network, &actor, events).await;
            if result.as_ref().is_err_and(|(changed, _)| *changed) {
                // The state moved ahead of the log: rebuild it from the log next time.
                *guard = None;
            }
            result.map_err(|(_, e)| e)
        }))
        .await
        .map_err(ServiceError::internal)?
    }

    // ---- networks ---------------------------------------------------------------

    /// The networks `org` belongs to: its own (as buyer) and those of its buyers.
    pub async fn networks(&self, org: &str) -> Res<Vec<NetworkView>> {
        let me = self.tenancy.tenant(org).await?;
        let mut out = vec![NetworkView { network: me.id.clone(), buyer_name: me.name, role: "buyer".into(), size: self.ledger.size(org)? }];
        for b in self.tenancy.buyers(org).await? {
            let size = self.ledger.size(&b.id)?;
            out.push(NetworkView { network: b.id, buyer_name: b.name, role: "supplier".into(), size });
        }
        Ok(out)
    }

    // ---- designs ----------------------------------------------------------------

    /// Publishes a new version of a design from bytes in memory (tests and
    /// small files); the REST route streams instead
    /// ([`Settlement::begin_design_upload`]).
    pub async fn publish_design(
        &self,
        network: &str,
        actor: &str,
        design_id: &str,
        recipients: &[String],
        ciphertext: &[u8],
    ) -> Res<DesignView> {
        let mut upload =
            self.begin_design_upload(network, actor, design_id, recipients, Some(ciphertext.len() as u64)).await.map_err(|e| e.error)?;
        upload.write(ciphertext).await.map_err(|e| e.error)?;
        self.finish_design_upload(upload).await
    }

    /// Starts publishing a new version of a design: `recipients` must be
    /// network members, and the ciphertext (an age file the buyer encrypted
    /// to them on its own machine) is then streamed with
    /// [`DesignUpload::write`] to a temporary file and published with
    /// [`Settlement::finish_design_upload`].
    ///
    /// Everything that does not need the body is checked here, before a byte
    /// of it is read: the design id, that the actor is the network's buyer,
    /// the recipients, and, from `content_length` when the client states it,
    /// the per-file limit and the plan's design quota.
    pub async fn begin_design_upload(
        &self,
        network: &str,
        actor: &str,
        design_id: &str,
        recipients: &[String],
        content_length: Option<u64>,
    ) -> Result<DesignUpload, UploadError> {
        if actor != network {
            self.member(network, actor).await?;
            return Err(ServiceError::new(ErrorCode::PermissionDenied, "only the network's buyer publishes designs").into());
        }
        check_id("design_id", design_id)?;
        let recipients = self.check_recipients(network, recipients).await?;
        let plan = self.tenancy.plan(network).await?;
        let (blobs, net) = (self.blobs.clone(), network.to_string());
        let (stored, (tmp, file)) =
            tokio::task::spawn_blocking(move || Ok::<_, std::io::Error>((blobs.stored_bytes(&net)?, blobs.temp_file(&net)?)))
                .await
                .map_err(ServiceError::internal)?
                .map_err(|e| ServiceError::internal(format!("design store: {e}")))?;
        let upload = DesignUpload {
            network: network.to_string(),
            actor: actor.to_string(),
            design_id: design_id.to_string(),
            recipients,
            tmp,
            file: Some(tokio::fs::File::from_std(file)),
            hasher: Sha256::new(),
            written: 0,
            head: Vec::with_capacity(AGE_HEADER.len()),
            max_file: self.config.max_design_bytes as u64,
            quota: DesignQuota { plan: plan.name.to_string(), limit: plan.max_design_bytes, stored },
        };
        if let Some(length) = content_length {
            upload.check_size(length)?;
        }
        Ok(upload)
    }

    /// Publishes a streamed design: checks it is an age file, moves it into
    /// the store under its SHA-256 (synced), and records the
    /// `design_published` entry.
    pub async fn finish_design_upload(&self, mut upload: DesignUpload) -> Res<DesignView> {
        if upload.head != AGE_HEADER {
            return Err(ServiceError::invalid("body", "not an age-encrypted file: encrypt it on your machine (factorychain design push)"));
        }
        let file = upload.file.take().ok_or_else(|| ServiceError::internal("design upload finished twice"))?;
        file.sync_all().await.map_err(|e| ServiceError::internal(format!("design store: {e}")))?;
        drop(file);
        let digest: [u8; 32] = std::mem::take(&mut upload.hasher).finalize().into();
        let sha = hex::encode(digest);
        let (blobs, net, sha_c, tmp) = (self.blobs.clone(), upload.network.clone(), sha.clone(), upload.tmp.clone());
        tokio::task::spawn_blocking(move || blobs.commit(&net, &sha_c, &tmp))
            .await
            .map_err(ServiceError::internal)?
            .map_err(|e| ServiceError::internal(format!("design store: {e}")))?;
        upload.committed();
        let (network, actor, id, recipients) = (&upload.network, &upload.actor, &upload.design_id, &upload.recipients);
        let entries = self
            .record(network, actor, |s| {
                Ok(vec![Event::DesignPublished(DesignPublished {
                    version: s.next_version(id),
                    design_id: id.clone(),
                    ciphertext_sha256: Sha256Hex(digest),
                    recipients: recipients.clone(),
                })])
            })
            .await?;
        let Event::DesignPublished(d) = &entries[0].event else { unreachable!("recorded a design publication") };
        Ok(DesignView {
            design_id: d.design_id.clone(),
            version: d.version,
            ciphertext_sha256: sha,
            recipients: recipients.clone(),
            published_ms: entries[0].at_ms,
            seq: entries[0].seq,
            downloadable: d.recipients.iter().any(|r| r == actor),
        })
    }

    /// Recipients must be members of the network; sorted, without repeats.
    async fn check_recipients(&self, network: &str, recipients: &[String]) -> Res<Vec<String>> {
        let mut out: Vec<String> = recipients.iter().map(|r| r.trim().to_string()).collect();
        out.sort();
        out.dedup();
        if out.is_empty() {
            return Err(ServiceError::invalid("to", "name at least one recipient organisation"));
        }
        for r in &out {
            if !self.tenancy.is_member(network, r).await? {
                return Err(ServiceError::invalid(
                    "to",
                    format!("{r} is not a member of this supply network (an accepted supplier or the buyer)"),
                ));
            }
        }
        Ok(out)
    }

    /// Replaces who may download a design version (e.g. to drop a supplier).
    pub async fn change_design_access(
        &self,
        network: &str,
        actor: &str,
        design_id: &str,
        version: u32,
        recipients: &[String],
    ) -> Res<DesignView> {
        if actor != network {
            self.member(network, actor).await?;
            return Err(ServiceError::new(ErrorCode::PermissionDenied, "only the network's buyer changes design access"));
        }
        let recipients = self.check_recipients(network, recipients).await?;
        let id = design_id.to_string();
        self.record(network, actor, |s| {
            s.version(&id, version).ok_or_else(|| ServiceError::not_found(format!("design {id} version {version}")))?;
            Ok(vec![Event::DesignAccessChanged(DesignAccessChanged { design_id: id.clone(), version, recipients: recipients.clone() })])
        })
        .await?;
        self.designs(network, actor)
            .await?
            .into_iter()
            .find(|d| d.design_id == design_id && d.version == version)
            .ok_or_else(|| ServiceError::internal("design vanished"))
    }

    /// The design versions `org` may see: all for the buyer, those it
    /// receives for a supplier.
    pub async fn designs(&self, network: &str, org: &str) -> Res<Vec<DesignView>> {
        self.member(network, org).await?;
        self.with_state(network, |s| {
            Ok(s.designs
                .iter()
                .flat_map(|(id, versions)| versions.iter().map(move |v| (id, v)))
                .filter(|(_, v)| org == network || v.recipients.iter().any(|r| r == org))
                .map(|(id, v)| DesignView {
                    design_id: id.clone(),
                    version: v.version,
                    ciphertext_sha256: v.sha256.clone(),
                    recipients: v.recipients.clone(),
                    published_ms: v.published_ms,
                    seq: v.seq,
                    downloadable: v.recipients.iter().any(|r| r == org),
                })
                .collect())
        })
        .await
    }

    /// A design version's ciphertext, to its recipients only (anyone else: not found).
    pub async fn download_design(&self, network: &str, org: &str, design_id: &str, version: u32) -> Res<Vec<u8>> {
        self.member(network, org).await?;
        let sha = self
            .with_state(network, |s| match s.version(design_id, version) {
                Some(v) if v.recipients.iter().any(|r| r == org) => Ok(v.sha256.clone()),
                _ => Err(ServiceError::not_found(format!("design {design_id} version {version}"))),
            })
            .await?;
        let (blobs, net, want) = (self.blobs.clone(), network.to_string(), sha.clone());
        let (bytes, digest) = tokio::task::spawn_blocking(move || {
            blobs.get(&net, &want).map(|b| {
                let d = hex::encode(Sha256::digest(&b));
                (b, d)
            })
        })
        .await
        .map_err(ServiceError::internal)?
        .map_err(|e| ServiceError::internal(format!("design store: {e}")))?;
        if digest != sha {
            return Err(ServiceError::internal(format!("design {design_id} v{version}: stored file does not match its ledger hash")));
        }
        Ok(bytes)
    }

    // ---- orders -----------------------------------------------------------------

    /// The buyer issues a purchase order to one of its suppliers.
    pub async fn issue_order(&self, network: &str, actor: &str, o: OrderInput) -> Res<OrderView> {
        if actor != network {
            self.member(network, actor).await?;
            return Err(ServiceError::new(ErrorCode::PermissionDenied, "only the network's buyer issues orders"));
        }
        let order_id = match &o.order_id {
            Some(id) => id.clone(),
            None => random_id("PO"),
        };
        check_id("order_id", &order_id)?;
        check_text("part", &o.part, 100)?;
        check_id("design_id", &o.design_id)?;
        if o.supplier_org == network || !self.tenancy.is_member(network, &o.supplier_org).await? {
            return Err(ServiceError::invalid("supplier_org", format!("{} is not an accepted supplier of this network", o.supplier_org)));
        }
        if o.quantity == 0 || o.unit_price_krw == 0 {
            return Err(ServiceError::invalid("quantity", "quantity and unit_price_krw must be above zero"));
        }
        o.quantity
            .checked_mul(o.unit_price_krw)
            .filter(|v| *v <= MAX_KRW)
            .ok_or_else(|| ServiceError::invalid("unit_price_krw", "the order's total must stay below 10^15 KRW"))?;
        let now = fc_core::time::now_ms();
        if !(now - 366 * fc_ledger::settle::DAY_MS..=now + 5 * 366 * fc_ledger::settle::DAY_MS).contains(&o.due_date_ms) {
            return Err(ServiceError::invalid("due_date_ms", "must be within a year before and five years after today"));
        }
        // An order due before it is issued is late on arrival and pays
        // penalties from its first shipment: almost always a typo.
        if o.due_date_ms < now && !o.allow_past_due {
            return Err(ServiceError::invalid(
                "due_date_ms",
                "is in the past; set \"allow_past_due\": true to issue an order that is already due",
            ));
        }
        if o.allowed_defects > o.sample_size {
            return Err(ServiceError::invalid("allowed_defects", "cannot exceed sample_size"));
        }
        if u64::from(o.sample_size) > o.quantity {
            return Err(ServiceError::invalid("sample_size", "cannot exceed the quantity ordered"));
        }
        if o.late_penalty_per_day_krw > MAX_KRW || o.late_penalty_cap_krw > MAX_KRW {
            return Err(ServiceError::invalid("late_penalty_per_day_krw", "penalties must stay below 10^15 KRW"));
        }
        if o.payment_term_days > 365 {
            return Err(ServiceError::invalid("payment_term_days", "at most 365"));
        }
        if o.transit_days.is_some_and(|d| d > 365) {
            return Err(ServiceError::invalid("transit_days", "at most 365"));
        }
        let terms = OrderIssued {
            order_id: order_id.clone(),
            buyer_org: network.to_string(),
            supplier_org: o.supplier_org.clone(),
            part: o.part.trim().to_string(),
            design_id: o.design_id.clone(),
            design_version: o.design_version,
            quantity: o.quantity,
            unit_price_krw: o.unit_price_krw,
            due_date_ms: o.due_date_ms,
            acceptance: AcceptancePlan { sample_size: o.sample_size, allowed_defects: o.allowed_defects },
            payment_term_days: o.payment_term_days,
            late_penalty_per_day_krw: o.late_penalty_per_day_krw,
            late_penalty_cap_krw: o.late_penalty_cap_krw,
            transit_days: o.transit_days,
        };
        self.record(network, actor, |s| {
            match s.version(&o.design_id, o.design_version) {
                Some(v) if v.recipients.contains(&o.supplier_org) => {}
                Some(_) => {
                    return Err(ServiceError::new(
                        ErrorCode::FailedPrecondition,
                        format!("share design {} v{} with the supplier first", o.design_id, o.design_version),
                    ));
                }
                None => return Err(ServiceError::not_found(format!("design {} version {}", o.design_id, o.design_version))),
            }
            Ok(vec![Event::OrderIssued(terms)])
        })
        .await?;
        self.order(network, actor, &order_id).await
    }

    /// The supplier accepts an order.
    pub async fn accept_order(&self, network: &str, actor: &str, order_id: &str) -> Res<OrderView> {
        self.order_event(network, actor, order_id, Event::OrderAccepted(OrderAccepted { order_id: order_id.into() })).await
    }

    /// The supplier sends a shipment.
    pub async fn send_shipment(&self, network: &str, actor: &str, order_id: &str, shipment_id: &str, quantity: u64) -> Res<OrderView> {
        check_id("shipment_id", shipment_id)?;
        let e = Event::ShipmentSent(ShipmentMoved {
            order_id: order_id.into(),
            shipment_id: shipment_id.into(),
            quantity,
            at_ms: fc_core::time::now_ms(),
        });
        self.order_event(network, actor, order_id, e).await
    }

    /// The buyer records receipt of a shipment (now: lateness counts from this
    /// entry, or from the sending plus the order's transit days if earlier).
    pub async fn receive_shipment(&self, network: &str, actor: &str, order_id: &str, shipment_id: &str, quantity: u64) -> Res<OrderView> {
        let e = Event::ShipmentReceived(ShipmentMoved {
            order_id: order_id.into(),
            shipment_id: shipment_id.into(),
            quantity,
            at_ms: fc_core::time::now_ms(),
        });
        self.order_event(network, actor, order_id, e).await
    }

    /// The buyer records an inspection it entered.
    pub async fn record_inspection(
        &self,
        network: &str,
        actor: &str,
        order_id: &str,
        shipment_id: &str,
        sampled: u32,
        defects: u32,
    ) -> Res<OrderView> {
        let e = Event::InspectionRecorded(InspectionRecorded {
            order_id: order_id.into(),
            shipment_id: shipment_id.into(),
            sampled,
            defects,
            source: InspectionSource::Manual,
        });
        self.order_event(network, actor, order_id, e).await
    }

    /// The buyer records an inspection computed from its inspection station's
    /// telemetry (see [`TelemetryInspection`]).
    pub async fn inspect_from_telemetry(
        &self,
        network: &str,
        actor: &str,
        order_id: &str,
        shipment_id: &str,
        t: &TelemetryInspection,
    ) -> Res<OrderView> {
        self.member(network, actor).await?;
        if actor != network {
            return Err(ServiceError::new(ErrorCode::PermissionDenied, "only the buyer inspects deliveries"));
        }
        if !(t.min.is_finite() && t.max.is_finite() && t.min <= t.max) {
            return Err(ServiceError::invalid("min", "min and max must be finite, min <= max"));
        }
        if t.from_ms >= t.to_ms {
            return Err(ServiceError::invalid("from_ms", "must be before to_ms"));
        }
        // A sample is at most the units received: read no more readings than that.
        let received = self
            .with_state(network, |s| {
                let shipment = s
                    .fold
                    .order(order_id)
                    .and_then(|o| o.shipments.get(shipment_id))
                    .ok_or_else(|| ServiceError::not_found(format!("shipment {shipment_id} of order {order_id}")))?;
                shipment
                    .received
                    .map(|(q, _)| q)
                    .ok_or_else(|| ServiceError::new(ErrorCode::FailedPrecondition, "record the shipment's receipt first"))
            })
            .await?;
        let limit = received.min(MAX_INSPECTED_READINGS);
        let spec = fc_query_api::RangeSpec { start_ms: t.from_ms, end_ms: t.to_ms, step_ms: 0, limit: limit as u32 + 1 };
        let range = self.telemetry.range(actor, &t.machine, &t.metric, spec).await?;
        if range.unit.is_none() {
            return Err(ServiceError::not_found(format!("series {}/{}", t.machine, t.metric)));
        }
        if range.points.len() as u64 > limit {
            return Err(ServiceError::invalid(
                "from_ms",
                format!(
                    "the window holds more readings than the {limit} units that can be sampled; narrow it to this shipment's inspection"
                ),
            ));
        }
        let sampled = range.points.len() as u32;
        let defects = range.points.iter().filter(|p| !(t.min..=t.max).contains(&p.value)).count() as u32;
        let e = Event::InspectionRecorded(InspectionRecorded {
            order_id: order_id.into(),
            shipment_id: shipment_id.into(),
            sampled,
            defects,
            source: InspectionSource::Telemetry,
        });
        self.order_event(network, actor, order_id, e).await
    }

    /// The buyer accepts (part of) a delivery; the payment instruction is
    /// appended with it.
    pub async fn accept_delivery(&self, network: &str, actor: &str, order_id: &str, shipment_id: &str, quantity: u64) -> Res<OrderView> {
        let e = Event::DeliveryAccepted(DeliveryAccepted {
            order_id: order_id.into(),
            shipment_id: shipment_id.into(),
            accepted_quantity: quantity,
        });
        self.order_event(network, actor, order_id, e).await
    }

    /// The buyer rejects a delivery.
    pub async fn reject_delivery(&self, network: &str, actor: &str, order_id: &str, shipment_id: &str, reason: &str) -> Res<OrderView> {
        check_text("reason", reason, 500)?;
        let e = Event::DeliveryRejected(DeliveryRejected {
            order_id: order_id.into(),
            shipment_id: shipment_id.into(),
            reason: reason.trim().into(),
        });
        self.order_event(network, actor, order_id, e).await
    }

    async fn order_event(&self, network: &str, actor: &str, order_id: &str, event: Event) -> Res<OrderView> {
        // An order the actor is not party to answers "not found", as for one
        // that does not exist.
        self.record(network, actor, |s| match s.supplier_of(order_id) {
            Some(supplier) if actor == network || actor == supplier => Ok(vec![event]),
            _ => Err(ServiceError::not_found(format!("order {order_id}"))),
        })
        .await?;
        self.order(network, actor, order_id).await
    }

    /// One order, to its buyer and supplier.
    pub async fn order(&self, network: &str, org: &str, order_id: &str) -> Res<OrderView> {
        self.member(network, org).await?;
        self.with_state(network, |s| match s.fold.order(order_id) {
            Some(o) if org == network || o.terms.supplier_org == org => Ok(order_view(network, o)),
            _ => Err(ServiceError::not_found(format!("order {order_id}"))),
        })
        .await
    }

    /// The orders `org` is party to in `network` (all of them for the buyer).
    pub async fn orders(&self, network: &str, org: &str) -> Res<Vec<OrderView>> {
        self.member(network, org).await?;
        self.with_state(network, |s| {
            Ok(s.fold.orders().values().filter(|o| org == network || o.terms.supplier_org == org).map(|o| order_view(network, o)).collect())
        })
        .await
    }

    // ---- payments ---------------------------------------------------------------

    /// The payments of the orders `org` is party to: its statement.
    pub async fn payments(&self, network: &str, org: &str) -> Res<Vec<PaymentView>> {
        self.member(network, org).await?;
        self.with_state(network, |s| {
            Ok(s.fold
                .payments()
                .iter()
                .filter_map(|p| {
                    let supplier = s.supplier_of(&p.instruction.order_id)?;
                    let mut view = (org == network || org == supplier).then(|| payment_view(p, supplier))?;
                    if org != network {
                        // Exports are the buyer's entries; a supplier's fold never sees them.
                        view.export_message_id = None;
                    }
                    Some(view)
                })
                .collect())
        })
        .await
    }

    /// The buyer records the bank's confirmation of an instructed payment.
    pub async fn confirm_payment(&self, network: &str, actor: &str, instruction_id: &str, bank_reference: &str) -> Res<PaymentView> {
        if actor != network {
            self.member(network, actor).await?;
            return Err(ServiceError::new(ErrorCode::PermissionDenied, "only the buyer confirms payments"));
        }
        if !(1..=35).contains(&bank_reference.len()) || !bank_reference.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(ServiceError::invalid("bank_reference", "1 to 35 printable ASCII characters"));
        }
        let id = instruction_id.to_string();
        self.record(network, actor, |s| {
            s.fold.payment(&id).ok_or_else(|| ServiceError::not_found(format!("payment {id}")))?;
            Ok(vec![Event::PaymentConfirmed(PaymentConfirmed { instruction_id: id.clone(), bank_reference: bank_reference.to_string() })])
        })
        .await?;
        self.payments(network, actor)
            .await?
            .into_iter()
            .find(|p| p.instruction_id == instruction_id)
            .ok_or_else(|| ServiceError::internal("payment vanished"))
    }

    /// Only the buyer handles its bank files.
    async fn require_buyer(&self, network: &str, actor: &str) -> Res<()> {
        if actor != network {
            self.member(network, actor).await?;
            return Err(ServiceError::new(ErrorCode::PermissionDenied, "only the buyer exports and reads its bank files"));
        }
        Ok(())
    }

    /// Exports every instructed, unconfirmed payment above zero that no bank
    /// file holds yet into a new bank file (ISO 20022 `pain.001.001.09`), and
    /// records it on the ledger (`payments_exported`) in the same step.
    ///
    /// Invariant: a payment is in one export only, unless the buyer re-issues
    /// that export ([`Settlement::reissue_export`]), so downloading twice never
    /// pays twice; [`Settlement::export_file`] returns an export's file again.
    pub async fn export_payments(&self, network: &str, actor: &str) -> Res<BankFile> {
        self.export(network, actor, None).await
    }

    /// A new bank file paying again the still unconfirmed payments of export
    /// `message_id` (the bank refused or lost that file).
    pub async fn reissue_export(&self, network: &str, actor: &str, message_id: &str) -> Res<BankFile> {
        self.export(network, actor, Some(message_id)).await
    }

    async fn export(&self, network: &str, actor: &str, reissue_of: Option<&str>) -> Res<BankFile> {
        self.require_buyer(network, actor).await?;
        let debtor = self
            .tenancy
            .organisation(network)
            .await?
            .bank
            .ok_or_else(|| ServiceError::new(ErrorCode::FailedPrecondition, "enter your bank account first (organisation profile)"))?;
        // The suppliers' accounts are asked for before the network's lock is
        // taken (a remote call must not hold it); an order that reaches
        // payment meanwhile waits for the next export.
        let accounts = self.accounts(network).await?;
        let mut file = None;
        self.record(network, actor, |s| {
            let payments: Vec<&Payment> = match reissue_of {
                None => s.fold.exportable().collect(),
                Some(m) => {
                    let export = s.fold.exports().get(m).ok_or_else(|| ServiceError::not_found(format!("export {m}")))?;
                    export
                        .instruction_ids
                        .iter()
                        .filter_map(|id| s.fold.payment(id))
                        .filter(|p| p.is_payable() && p.export.as_deref() == Some(m))
                        .collect()
                }
            };
            if payments.is_empty() {
                let why = match reissue_of {
                    None => {
                        "no instructed payment is waiting for a bank file (each is in an export already: download or re-issue that one)"
                            .to_string()
                    }
                    Some(m) => format!("export {m} has no payment left to re-issue (confirmed, or re-issued in a later export)"),
                };
                return Err(ServiceError::new(ErrorCode::FailedPrecondition, why));
            }
            // A supplier without a bank account holds back its own payments
            // only (they wait for the next export), not the buyer's whole file.
            let (creditors, blocked) = creditors(s, &payments, &accounts);
            let transfers: Vec<pain001::CreditTransfer> = payments
                .iter()
                .filter_map(|p| {
                    let creditor = creditors.get(s.supplier_of(&p.instruction.order_id)?)?.clone();
                    Some(pain001::CreditTransfer { instruction: p.instruction.clone(), creditor })
                })
                .collect();
            if transfers.is_empty() {
                return Err(ServiceError::new(
                    ErrorCode::FailedPrecondition,
                    format!(
                        "no bank file: every payment waiting is to a supplier without a bank account ({}); they enter it on their organisation page",
                        blocked.names().join(", ")
                    ),
                ));
            }
            // Derived from the entry's seq: unique in the network, and the same
            // however often the file is downloaded.
            // Only what the file pays is exported; the blocked wait for the next export.
            let instruction_ids: Vec<String> = transfers.iter().map(|t| t.instruction.instruction_id.clone()).collect();
            let message_id = export_message_id(network, s.fold.next_seq());
            let batch = pain001::Batch::new(message_id.clone(), fc_core::time::now_ms(), bank_party(&debtor), transfers)
                .map_err(|e| ServiceError::new(ErrorCode::FailedPrecondition, e.to_string()))?;
            let xml = batch.to_xml();
            let digest: [u8; 32] = Sha256::digest(xml.as_bytes()).into();
            // Stored before the entry that names it is appended (a few KiB:
            // written here, under the network's lock, so no other export can
            // take the same seq meanwhile).
            self.exports
                .put(network, &hex::encode(digest), xml.as_bytes())
                .map_err(|e| ServiceError::internal(format!("export store: {e}")))?;
            let event = Event::PaymentsExported(PaymentsExported {
                message_id: message_id.clone(),
                instruction_ids,
                file_sha256: Sha256Hex(digest),
                reissue_of: reissue_of.map(str::to_string),
            });
            file = Some(BankFile { message_id, xml, blocked: blocked.0 });
            Ok(vec![event])
        })
        .await?;
        file.ok_or_else(|| ServiceError::internal("export recorded without a file"))
    }

    /// The bank account (or the name, without one) of every supplier the
    /// network has a payable payment for (the only ones a bank file, new or
    /// re-issued, can pay), asked once per supplier.
    async fn accounts(&self, network: &str) -> Res<HashMap<String, Creditor>> {
        let suppliers: std::collections::BTreeSet<String> = self
            .with_state(network, |s| {
                Ok(s.fold
                    .payments()
                    .iter()
                    .filter(|p| p.is_payable())
                    .filter_map(|p| s.supplier_of(&p.instruction.order_id).map(str::to_string))
                    .collect())
            })
            .await?;
        let mut accounts = HashMap::new();
        for supplier in suppliers {
            let c = Creditor::of(&self.tenancy, &supplier).await?;
            accounts.insert(supplier, c);
        }
        Ok(accounts)
    }

    /// The payments a new bank file would leave out because their supplier
    /// has no bank account yet, by supplier: what the buyer chases before
    /// exporting.
    pub async fn blocked_payments(&self, network: &str, actor: &str) -> Res<Vec<BlockedView>> {
        self.require_buyer(network, actor).await?;
        let accounts = self.accounts(network).await?;
        self.with_state(network, |s| {
            let payments: Vec<&Payment> = s.fold.exportable().collect();
            Ok(creditors(s, &payments, &accounts).1.0)
        })
        .await
    }

    /// The bank files the buyer exported, oldest first.
    pub async fn exports(&self, network: &str, actor: &str) -> Res<Vec<ExportView>> {
        self.require_buyer(network, actor).await?;
        self.with_state(network, |s| {
            let mut out: Vec<ExportView> = s
                .fold
                .exports()
                .values()
                .map(|e| {
                    let payments: Vec<&Payment> = e.instruction_ids.iter().filter_map(|id| s.fold.payment(id)).collect();
                    ExportView {
                        message_id: e.message_id.clone(),
                        instruction_ids: e.instruction_ids.clone(),
                        amount_krw: payments.iter().map(|p| p.instruction.amount_krw).sum(),
                        unconfirmed: payments.iter().filter(|p| matches!(p.status, PaymentStatus::Instructed { .. })).count(),
                        file_sha256: hex::encode(e.file_sha256.0),
                        reissue_of: e.reissue_of.clone(),
                        exported_ms: e.at_ms,
                        seq: e.seq,
                    }
                })
                .collect();
            out.sort_by_key(|e| e.seq);
            Ok(out)
        })
        .await
    }

    /// Export `message_id`'s bank file again: the very bytes the ledger
    /// recorded the hash of (same `MsgId`, same payments).
    pub async fn export_file(&self, network: &str, actor: &str, message_id: &str) -> Res<BankFile> {
        self.require_buyer(network, actor).await?;
        let sha = self
            .with_state(network, |s| {
                s.fold
                    .exports()
                    .get(message_id)
                    .map(|e| hex::encode(e.file_sha256.0))
                    .ok_or_else(|| ServiceError::not_found(format!("export {message_id}")))
            })
            .await?;
        let bytes = self.exports.get(network, &sha).map_err(|e| ServiceError::internal(format!("export store: {e}")))?;
        if hex::encode(Sha256::digest(&bytes)) != sha {
            return Err(ServiceError::internal(format!("export {message_id}: stored file does not match its ledger hash")));
        }
        let xml = String::from_utf8(bytes).map_err(|_| ServiceError::internal(format!("export {message_id}: not UTF-8")))?;
        Ok(BankFile { message_id: message_id.to_string(), xml, blocked: Vec::new() })
    }

    // ---- the log ----------------------------------------------------------------

    /// The latest signed checkpoint of a network's log, signing one now when
    /// the log grew since (so a reader never waits for the next round).
    pub async fn checkpoint(&self, network: &str, org: &str) -> Res<String> {
        self.member(network, org).await?;
        if self.ledger.size(network)? == 0 {
            return Err(ServiceError::not_found(format!("entries in the ledger of {network} (none yet)")));
        }
        let ledger = self.ledger.clone();
        let net = network.to_string();
        tokio::task::spawn_blocking(move || ledger.sign_checkpoint(&net)).await.map_err(ServiceError::internal)?.map_err(ServiceError::from)
    }

    /// Entry `index`, to the organisations it concerns (others: not found).
    pub async fn entry(&self, network: &str, org: &str, index: u64) -> Res<Vec<u8>> {
        self.member(network, org).await?;
        let hidden = || ServiceError::not_found(format!("entry {index}"));
        let bytes = self.ledger.entry(network, index).map_err(|e| match e {
            LedgerError::NotFound(_) => hidden(),
            e => e.into(),
        })?;
        let entry = Entry::from_bytes(&bytes).map_err(|e| ServiceError::internal(format!("ledger {network} entry {index}: {e}")))?;
        // The state must know the entry's order (it may be newer than the state).
        let visible = self.with_state(network, |s| Ok(s.may_read(org, &entry))).await?;
        if visible { Ok(bytes) } else { Err(hidden()) }
    }

    /// The entries of `[start, end)` that `org` may read (at most 1000 asked).
    pub async fn entries(&self, network: &str, org: &str, start: u64, end: u64) -> Res<Vec<EntryView>> {
        self.member(network, org).await?;
        let size = self.ledger.size(network)?;
        let end = end.min(size);
        if start >= end {
            return Ok(Vec::new());
        }
        let raw = self.ledger.entries(network, start, end)?;
        let decoded: Vec<(u64, Entry)> = raw
            .iter()
            .enumerate()
            .map(|(i, b)| Entry::from_bytes(b).map(|e| (start + i as u64, e)))
            .collect::<Result<_, _>>()
            .map_err(|e| ServiceError::internal(format!("ledger {network}: {e}")))?;
        self.with_state(network, |s| {
            Ok(decoded
                .into_iter()
                .filter(|(_, e)| s.may_read(org, e))
                .map(|(index, e)| EntryView { index, entry: serde_json::to_value(&e).unwrap_or(serde_json::Value::Null) })
                .collect())
        })
        .await
    }

    /// Inclusion proof of leaf `index` in the tree of `size` leaves (every member).
    pub async fn inclusion_proof(&self, network: &str, org: &str, index: u64, size: u64) -> Res<InclusionProof> {
        self.member(network, org).await?;
        Ok(self.ledger.inclusion_proof(network, index, size)?)
    }

    /// Consistency proof between two tree sizes (every member).
    pub async fn consistency_proof(&self, network: &str, org: &str, size1: u64, size2: u64) -> Res<ConsistencyProof> {
        self.member(network, org).await?;
        Ok(self.ledger.consistency_proof(network, size1, size2)?)
    }

    /// The log's size (every member).
    pub async fn size(&self, network: &str, org: &str) -> Res<u64> {
        self.member(network, org).await?;
        Ok(self.ledger.size(network)?)
    }
}

/// Applies `events` (then the payment instructions they make due) to the
/// state and appends them. On error, says whether the state was changed.
async fn decide_and_append(
    guard: &mut Option<Network>,
    ledger: &Ledger,
    network: &str,
    actor: &str,
    events: Vec<Event>,
) -> Result<Vec<Entry>, (bool, ServiceError)> {
    let state = guard.as_mut().expect("loaded");
    let now = fc_core::time::now_ms();
    let mut entries = Vec::new();
    for event in events {
        let entry = Entry::salted(state.fold.next_seq(), now, actor, event, salt());
        // A refused first event changed nothing; a later one follows changes.
        state.apply(&entry).map_err(|e| (!entries.is_empty(), refusal(e)))?;
        entries.push(entry);
    }
    // Settlement's own entries: the instructions the acceptances made due.
    for instruction in state.fold.instructions_due() {
        let entry = Entry::salted(state.fold.next_seq(), now, network, Event::PaymentInstructed(instruction), salt());
        state.apply(&entry).map_err(|e| (true, refusal(e)))?;
        entries.push(entry);
    }
    let first = state.fold.next_seq() - entries.len() as u64;
    let size = ledger.size(network).map_err(|e| (true, e.into()))?;
    if size != first {
        return Err((true, ServiceError::internal(format!("ledger {network}: the log ends at {size}, its state at {first}"))));
    }
    match ledger.append(network, entries.iter().map(Entry::to_bytes).collect()).await {
        Ok(index) if index == first => Ok(entries),
        Ok(index) => Err((true, ServiceError::internal(format!("ledger {network}: appended at {index}, expected {first}")))),
        Err(e) => Err((true, e.into())),
    }
}

/// Folds a network's whole log.
fn replay_log(ledger: &Ledger, network: &str) -> Res<Network> {
    let mut state = Network::new(network);
    let size = ledger.size(network)?;
    let mut start = 0;
    while start < size {
        let end = (start + fc_settlement::MAX_ENTRIES_PER_READ).min(size);
        for (i, bytes) in ledger.entries(network, start, end)?.into_iter().enumerate() {
            let seq = start + i as u64;
            let entry = Entry::from_bytes(&bytes).map_err(|e| ServiceError::internal(format!("ledger {network} entry {seq}: {e}")))?;
            state.apply(&entry).map_err(|e| ServiceError::internal(format!("ledger {network} entry {seq} does not settle: {e:?}")))?;
        }
        start = end;
    }
    Ok(state)
}

fn order_view(network: &str, o: &fc_ledger::settle::OrderState) -> OrderView {
    let t = &o.terms;
    let status = match o.status {
        OrderStatus::Issued => "issued",
        OrderStatus::Accepted => "accepted",
        OrderStatus::InDelivery => "in_delivery",
        OrderStatus::Delivered => "delivered",
        OrderStatus::Settled => "settled",
    };
    let shipments = o
        .shipments
        .iter()
        .map(|(id, s)| {
            let (decision, accepted_quantity, rejection_reason) = match &s.decision {
                Some(Decision::Accepted { quantity, .. }) => (Some("accepted".to_string()), Some(*quantity), None),
                Some(Decision::Rejected { reason }) => (Some("rejected".to_string()), None, Some(reason.clone())),
                None => (None, None, None),
            };
            ShipmentView {
                shipment_id: id.clone(),
                sent_quantity: s.sent_quantity,
                sent_at_ms: s.sent_at_ms,
                received_quantity: s.received.map(|r| r.0),
                received_at_ms: s.received.map(|r| r.1),
                sampled: s.inspection.as_ref().map(|i| i.sampled),
                defects: s.inspection.as_ref().map(|i| i.defects),
                inspection_source: s.inspection.as_ref().map(|i| match i.source {
                    InspectionSource::Manual => "manual".to_string(),
                    InspectionSource::Telemetry => "telemetry".to_string(),
                }),
                decision,
                accepted_quantity,
                rejection_reason,
            }
        })
        .collect();
    OrderView {
        network: network.to_string(),
        order_id: t.order_id.clone(),
        buyer_org: t.buyer_org.clone(),
        supplier_org: t.supplier_org.clone(),
        part: t.part.clone(),
        design_id: t.design_id.clone(),
        design_version: t.design_version,
        quantity: t.quantity,
        unit_price_krw: t.unit_price_krw,
        due_date_ms: t.due_date_ms,
        sample_size: t.acceptance.sample_size,
        allowed_defects: t.acceptance.allowed_defects,
        payment_term_days: t.payment_term_days,
        late_penalty_per_day_krw: t.late_penalty_per_day_krw,
        late_penalty_cap_krw: t.late_penalty_cap_krw,
        transit_days: t.transit_days,
        status: status.into(),
        received_quantity: o.received_quantity,
        accepted_quantity: o.accepted_quantity,
        penalty_charged_krw: o.penalty_charged_krw,
        shipments,
    }
}
