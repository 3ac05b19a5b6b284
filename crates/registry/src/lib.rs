//! Tenants and their plans, devices and device credentials, and portal
//! identity (users, roles, sessions, invitations, API keys: [`identity`]).
//!
//! Invariants:
//! - a device token is `fcd_<device id>_<secret>` with 256 random bits of
//!   secret; only SHA-256 of the secret is stored (a high-entropy secret needs
//!   no slow hash), and it is compared in constant time;
//! - a token is shown once, at creation; a revoked device never authenticates
//!   again, including through the in-memory cache;
//! - tenant and device of a request come from here, never from a payload.

pub mod conformance;
pub mod identity;
pub mod kv;
pub mod orgs;
pub mod partners;
pub use fc_tenancy_api::plans;
pub mod scylla;

pub use identity::{ApiKey, Invitation, PasswordWorkStats, Role, Session, User};
pub use kv::{KvStore, RedbKv, Table};
pub use orgs::{AccountKind, BankAccount, BankKind, OrgProfile};
pub use partners::Partnership;
pub use plans::{PLANS, Plan};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// Registry failures.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Bad name or id.
    #[error("{0}")]
    Invalid(String),
    /// No such tenant or device (in the caller's scope).
    #[error("{0} not found")]
    NotFound(String),
    /// The credential is missing, malformed, unknown or revoked.
    #[error("missing or invalid credential")]
    Unauthenticated,
    /// The plan's quota does not allow it.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The object exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Not allowed in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The database failed.
    #[error("registry storage: {0}")]
    Storage(String),
}

impl From<RegistryError> for fc_core::ServiceError {
    fn from(e: RegistryError) -> Self {
        use fc_core::{ErrorCode, ServiceError};
        match e {
            RegistryError::Invalid(m) => ServiceError::new(ErrorCode::InvalidArgument, m),
            RegistryError::NotFound(m) => ServiceError::not_found(format!("{m} not found")),
            RegistryError::Unauthenticated => ServiceError::unauthenticated(),
            RegistryError::QuotaExceeded(m) => ServiceError::new(ErrorCode::ResourceExhausted, m),
            RegistryError::AlreadyExists(m) => ServiceError::new(ErrorCode::AlreadyExists, format!("{m} already exists")),
            RegistryError::FailedPrecondition(m) => ServiceError::new(ErrorCode::FailedPrecondition, m),
            RegistryError::Storage(m) => ServiceError::internal(m),
        }
    }
}

pub(crate) fn st<E: std::fmt::Display>(e: E) -> RegistryError {
    RegistryError::Storage(e.to_string())
}

/// A tenant (one factory company).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tenant {
    /// `t_` + 16 hex digits.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time, Unix ms.
    pub created_ms: i64,
    /// Subscription plan id (see [`plans::PLANS`]).
    #[serde(default = "default_plan")]
    pub plan_id: String,
}

fn default_plan() -> String {
    "starter".into()
}

impl Tenant {
    /// The tenant's plan (the cheapest if its id is unknown).
    pub fn plan(&self) -> &'static Plan {
        plans::plan_or_default(&self.plan_id)
    }
}

/// A registered device.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    /// `d_` + 16 hex digits.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// Creation time, Unix ms.
    pub created_ms: i64,
    /// Hex SHA-256 of the token's secret part.
    token_sha256: String,
    /// Revocation time, when revoked.
    pub revoked_ms: Option<i64>,
}

/// Who a valid device credential speaks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeviceIdentity {
    /// Tenant id.
    pub tenant_id: Arc<str>,
    /// Device id.
    pub device_id: Arc<str>,
}

/// The tenant and device registry, over a [`KvStore`] backend.
pub struct Registry {
    kv: Box<dyn KvStore>,
    /// Verified device tokens, and what bounds the backend reads of unverified ones.
    /// Never held across a backend call: one slow read must not hold up every
    /// other device's authentication.
    tokens: Mutex<TokenCache>,
    token_cache_ttl: std::time::Duration,
    /// Serialises this process's read-modify-writes of a device (revoke, rotate), so
    /// one cannot write back a copy that lacks the other's change. Authentication
    /// never takes it.
    device_writes: Mutex<()>,
    password_work: identity::PasswordWork,
}

/// The in-memory side of device authentication.
struct TokenCache {
    /// Verified tokens (by SHA-256 of the whole token) -> identity and when verified;
    /// cleared per device on revoke and rotate. An entry older than the TTL is re-read
    /// from the backend (so a revocation made by another process sharing the backend,
    /// ScyllaDB, applies here within that time), but as a known token: it passes the
    /// look-up limits below, which only an unverified token must fit.
    verified: HashMap<[u8; 32], (DeviceIdentity, std::time::Instant)>,
    /// Bumped after a revoke or rotate has committed and evicted. A check caches what
    /// it read only if no bump happened since before its read; otherwise the read may
    /// predate the change, and it reads again. This is what keeps a revoked token out
    /// of the cache now that the read happens outside the lock.
    generation: u64,
    /// Backend look-ups for unverified tokens, for all devices together.
    unknown_lookups: Budget,
    /// Failed look-ups per device id in the current minute: `(count, window start)`.
    failures: HashMap<String, (u32, std::time::Instant)>,
    failures_per_device: u32,
}

/// A token bucket: `burst` at most, refilled at `burst` per `per`.
struct Budget {
    tokens: f64,
    burst: f64,
    per: std::time::Duration,
    last: std::time::Instant,
}

impl Budget {
    fn new(burst: u32, per: std::time::Duration) -> Self {
        Self { tokens: f64::from(burst), burst: f64::from(burst), per, last: std::time::Instant::now() }
    }
    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() / self.per.as_secs_f64().max(f64::MIN_POSITIVE) * self.burst;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

impl TokenCache {
    fn new(lookups_per_second: u32, failures_per_device_per_minute: u32) -> Self {
        Self {
            verified: HashMap::new(),
            generation: 0,
            unknown_lookups: Budget::new(lookups_per_second.max(1), std::time::Duration::from_secs(1)),
            failures: HashMap::new(),
            failures_per_device: failures_per_device_per_minute.max(1),
        }
    }

    /// Whether an unverified token of `device_id` may be looked up now. Takes one
    /// look-up from the global budget when the device's own failures allow it.
    fn may_look_up(&mut self, device_id: &str) -> bool {
        let failed =
            self.failures.get(device_id).is_some_and(|(n, since)| since.elapsed() < FAILURE_WINDOW && *n >= self.failures_per_device);
        !failed && self.unknown_lookups.take()
    }

    fn failed(&mut self, device_id: &str) {
        if self.failures.len() >= TOKEN_CACHE_MAX && !self.failures.contains_key(device_id) {
            // Bounded like the cache: drop finished windows, and everything if that is not enough.
            self.failures.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
            if self.failures.len() >= TOKEN_CACHE_MAX {
                self.failures.clear();
            }
        }
        let (n, since) = self.failures.entry(device_id.to_string()).or_insert((0, std::time::Instant::now()));
        if since.elapsed() >= FAILURE_WINDOW {
            (*n, *since) = (0, std::time::Instant::now());
        }
        *n += 1;
    }

    fn insert(&mut self, whole: [u8; 32], ident: DeviceIdentity, ttl: std::time::Duration) {
        if self.verified.len() >= TOKEN_CACHE_MAX && !self.verified.contains_key(&whole) {
            // Bounded: drop expired entries, and everything if that is not enough.
            self.verified.retain(|_, (_, at)| at.elapsed() < ttl);
            if self.verified.len() >= TOKEN_CACHE_MAX {
                self.verified.clear();
            }
        }
        self.verified.insert(whole, (ident, std::time::Instant::now()));
    }
}

/// How long a verified device token is trusted without reading the backend
/// again. Revocations in this process apply at once; revocations by another
/// process sharing the backend apply within this time.
pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// Most cached tokens (and most device ids with counted failures).
const TOKEN_CACHE_MAX: usize = 100_000;
/// Backend look-ups per second for device tokens this process has not verified
/// (new devices, new tokens, restarts, and guesses), all devices together, with a
/// burst of the same size. Beyond it such a token is refused without a look-up, so a
/// flood of random tokens cannot hammer the backend; verified tokens are unaffected.
pub const UNKNOWN_TOKEN_LOOKUPS_PER_SECOND: u32 = 1_000;
/// Failed look-ups per device id per minute; beyond them, unverified tokens naming
/// that device are refused without a look-up until the minute is over.
pub const FAILED_TOKENS_PER_DEVICE_PER_MINUTE: u32 = 10;

/// Random lowercase hex of `bytes` random bytes.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    hex::encode(buf)
}

/// Split a bearer credential `<prefix>_<id>_<64 hex secret>` whose id is
/// `<id_prefix>_` + 16 hex digits. Anything else is `Unauthenticated`.
pub(crate) fn split_credential<'a>(token: &'a str, prefix: &str, id_prefix: &str) -> Result<(&'a str, &'a str), RegistryError> {
    let rest = token.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')).ok_or(RegistryError::Unauthenticated)?;
    let (id, secret) = rest.rsplit_once('_').ok_or(RegistryError::Unauthenticated)?;
    if !id.starts_with(id_prefix) || id.len() != id_prefix.len() + 16 || secret.len() != 64 {
        return Err(RegistryError::Unauthenticated);
    }
    Ok((id, secret))
}

/// Whether `secret` matches the stored hex SHA-256, in constant time.
pub(crate) fn secret_matches(secret: &str, stored_hex: &str) -> Result<bool, RegistryError> {
    let stored = hex::decode(stored_hex).map_err(st)?;
    Ok(sha256(secret.as_bytes()).ct_eq(stored.as_slice()).into())
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = Sha256::digest(data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_slice());
    out
}

pub(crate) fn validate_name(what: &str, name: &str) -> Result<String, RegistryError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(RegistryError::Invalid(format!("{what}: must be 1-100 characters")));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(RegistryError::Invalid(format!("{what}: control characters are not allowed")));
    }
    Ok(name.to_string())
}

impl Registry {
    /// Open or create the embedded registry file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RegistryError> {
        Ok(Self::with_backend(Box::new(RedbKv::open(path.as_ref())?)))
    }

    /// A registry over any backend.
    pub fn with_backend(kv: Box<dyn KvStore>) -> Self {
        Self {
            kv,
            tokens: Mutex::new(TokenCache::new(UNKNOWN_TOKEN_LOOKUPS_PER_SECOND, FAILED_TOKENS_PER_DEVICE_PER_MINUTE)),
            token_cache_ttl: TOKEN_CACHE_TTL,
            device_writes: Mutex::new(()),
            password_work: Default::default(),
        }
    }

    /// Look-up limits for unverified device tokens other than
    /// [`UNKNOWN_TOKEN_LOOKUPS_PER_SECOND`] and [`FAILED_TOKENS_PER_DEVICE_PER_MINUTE`]:
    /// `lookups` per `per`, all devices together, and `failures_per_device` per minute.
    pub fn with_token_lookup_limits(self, lookups: u32, per: std::time::Duration, failures_per_device: u32) -> Self {
        {
            let mut tokens = self.tokens.lock().expect("token cache lock");
            tokens.unknown_lookups = Budget::new(lookups.max(1), per);
            tokens.failures_per_device = failures_per_device.max(1);
        }
        self
    }

    /// Trust verified device tokens for `ttl` instead of [`TOKEN_CACHE_TTL`].
    pub fn with_token_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.token_cache_ttl = ttl;
        self
    }

    /// The backend's name (`embedded`, `scylla`).
    pub fn backend(&self) -> &'static str {
        self.kv.backend()
    }

    /// Remove expired sessions and invitations for good; returns how many went.
    /// (Expired rows are already invisible; this gives their space back.)
    pub fn prune_expired(&self) -> Result<u64, RegistryError> {
        self.kv.prune_expired(fc_core::time::now_ms())
    }

    /// Create a tenant on a plan.
    pub fn create_tenant(&self, name: &str, plan_id: &str) -> Result<Tenant, RegistryError> {
        let plan = plans::plan(plan_id)
            .ok_or_else(|| RegistryError::Invalid(format!("plan: {plan_id:?} is not one of starter, growth, enterprise")))?;
        let t = Tenant {
            id: format!("t_{}", random_hex(8)),
            name: validate_name("name", name)?,
            created_ms: fc_core::time::now_ms(),
            plan_id: plan.id.into(),
        };
        self.put_json(Table::Tenants, "", &t.id, &t, None)?;
        Ok(t)
    }

    /// Every tenant, by id.
    pub fn list_tenants(&self) -> Result<Vec<Tenant>, RegistryError> {
        self.scan(Table::Tenants, "")
    }

    /// One tenant.
    pub fn get_tenant(&self, id: &str) -> Result<Tenant, RegistryError> {
        self.get_json(Table::Tenants, id)?.ok_or_else(|| RegistryError::NotFound("tenant".into()))
    }

    /// Sign-up: a tenant on `plan_id` with its first user as owner. Only plans
    /// offered to self-service tenants may be chosen; the operator grants the others
    /// ([`Registry::set_plan`]).
    pub fn sign_up(&self, company: &str, plan_id: &str, email: &str, name: &str, password: &str) -> Result<(Tenant, User), RegistryError> {
        if plans::plan(plan_id).is_some_and(|p| !p.self_service) {
            let offered: Vec<&str> = plans::self_service_plans().map(|p| p.id).collect();
            return Err(RegistryError::Invalid(format!(
                "plan: {plan_id} is granted by the operator; sign up on {} and ask for an upgrade",
                offered.join(" or ")
            )));
        }
        // Validate the user's fields before creating anything.
        validate_name("name", name)?;
        validate_name("company", company)?;
        identity::normalise_email(email)?;
        identity::check_password(password)?;
        let t = self.create_tenant(company, plan_id)?;
        match self.create_user(&t.id, email, name, Role::Owner, password) {
            Ok(u) => Ok((t, u)),
            Err(e) => {
                // Leave no owner-less tenant behind.
                self.kv.remove(Table::Tenants, "", &t.id)?;
                Err(e)
            }
        }
    }

    /// Move a tenant to another plan.
    pub fn set_plan(&self, tenant_id: &str, plan_id: &str) -> Result<Tenant, RegistryError> {
        let plan = plans::plan(plan_id).ok_or_else(|| RegistryError::Invalid(format!("plan: {plan_id:?} is unknown")))?;
        let mut t = self.get_tenant(tenant_id)?;
        t.plan_id = plan.id.into();
        self.put_json(Table::Tenants, "", &t.id, &t, None)?;
        Ok(t)
    }

    /// Register a device of `tenant_id`; returns it and its token (the only time the token exists in clear).
    /// Refused with `QuotaExceeded` beyond the plan's device count.
    pub fn create_device(&self, tenant_id: &str, name: &str) -> Result<(Device, String), RegistryError> {
        let tenant = self.get_tenant(tenant_id)?;
        let plan = tenant.plan();
        let active = self.list_devices(tenant_id)?.iter().filter(|d| d.revoked_ms.is_none()).count() as u32;
        if active >= plan.max_devices {
            return Err(RegistryError::QuotaExceeded(format!(
                "the {} plan allows {} devices; revoke one or change plan",
                plan.name, plan.max_devices
            )));
        }
        let id = format!("d_{}", random_hex(8));
        let secret = random_hex(32);
        let token = format!("fcd_{id}_{secret}");
        let d = Device {
            id: id.clone(),
            tenant_id: tenant_id.to_string(),
            name: validate_name("name", name)?,
            created_ms: fc_core::time::now_ms(),
            token_sha256: hex::encode(sha256(secret.as_bytes())),
            revoked_ms: None,
        };
        self.put_json(Table::Devices, tenant_id, &id, &d, None)?;
        Ok((d, token))
    }

    /// Every row of `table` in `scope`, decoded.
    pub(crate) fn scan<T: serde::de::DeserializeOwned>(&self, table: Table, scope: &str) -> Result<Vec<T>, RegistryError> {
        self.kv.list(table, scope)?.iter().map(|v| serde_json::from_slice(v).map_err(st)).collect()
    }

    /// One JSON row.
    pub(crate) fn get_json<T: serde::de::DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, RegistryError> {
        match self.kv.get(table, key)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(st)?)),
            None => Ok(None),
        }
    }

    /// Write one JSON row.
    pub(crate) fn put_json<T: Serialize>(
        &self,
        table: Table,
        scope: &str,
        key: &str,
        value: &T,
        expires_ms: Option<i64>,
    ) -> Result<(), RegistryError> {
        self.kv.put(table, scope, key, &serde_json::to_vec(value).map_err(st)?, expires_ms)
    }

    /// One device of the tenant.
    pub fn get_device(&self, tenant_id: &str, device_id: &str) -> Result<Device, RegistryError> {
        self.get_json::<Device>(Table::Devices, device_id)?
            .filter(|d| d.tenant_id == tenant_id)
            .ok_or_else(|| RegistryError::NotFound("device".into()))
    }

    /// Devices of a tenant.
    pub fn list_devices(&self, tenant_id: &str) -> Result<Vec<Device>, RegistryError> {
        self.scan(Table::Devices, tenant_id)
    }

    /// Revoke a device of `tenant_id`. A device of another tenant is "not found".
    pub fn revoke_device(&self, tenant_id: &str, device_id: &str) -> Result<(), RegistryError> {
        let _writes = self.device_writes.lock().expect("device writes lock");
        let mut d = self.get_device(tenant_id, device_id)?;
        d.revoked_ms.get_or_insert(fc_core::time::now_ms());
        self.put_json(Table::Devices, tenant_id, device_id, &d, None)?;
        self.forget_device_tokens(device_id);
        Ok(())
    }

    /// Replace a device's token: the old one stops working at once (open streams
    /// included), the new one is returned (the only time it exists in clear).
    pub fn rotate_device_token(&self, tenant_id: &str, device_id: &str) -> Result<(Device, String), RegistryError> {
        let _writes = self.device_writes.lock().expect("device writes lock");
        let mut d = self.get_device(tenant_id, device_id)?;
        if d.revoked_ms.is_some() {
            return Err(RegistryError::FailedPrecondition("a revoked device cannot get a new token; create a new device".into()));
        }
        let secret = random_hex(32);
        d.token_sha256 = hex::encode(sha256(secret.as_bytes()));
        self.put_json(Table::Devices, tenant_id, device_id, &d, None)?;
        self.forget_device_tokens(device_id);
        Ok((d.clone(), format!("fcd_{}_{secret}", d.id)))
    }

    /// After a committed change of a device: evict its verified tokens and tell
    /// checks reading meanwhile that their read may predate the change.
    fn forget_device_tokens(&self, device_id: &str) {
        let mut tokens = self.tokens.lock().expect("token cache lock");
        tokens.generation += 1;
        tokens.verified.retain(|_, (ident, _)| &*ident.device_id != device_id);
    }

    /// Who `token` speaks for, or `Unauthenticated` (malformed, unknown, wrong secret or revoked alike).
    ///
    /// The cache lock is never held across the backend read. A token this process
    /// has not verified is looked up only within the device's failure limit and the
    /// global look-up budget; beyond them it is refused without a read.
    pub fn authenticate_device(&self, token: &str) -> Result<DeviceIdentity, RegistryError> {
        let whole = sha256(token.as_bytes());
        let mut generation = {
            let mut tokens = self.tokens.lock().expect("token cache lock");
            match tokens.verified.get(&whole) {
                Some((id, at)) if at.elapsed() < self.token_cache_ttl => return Ok(id.clone()),
                Some(_) => tokens.generation, // verified before: re-read, outside the look-up limits
                None => {
                    let (device_id, _) = split_credential(token, "fcd", "d_")?;
                    if !tokens.may_look_up(device_id) {
                        return Err(RegistryError::Unauthenticated);
                    }
                    tokens.generation
                }
            }
        };
        let (device_id, secret) = split_credential(token, "fcd", "d_")?;
        // A read that overlapped a revoke or rotate is done again (at most twice), so
        // the answer reflects every change committed before the check ends.
        for attempt in 0..3 {
            let d: Option<Device> = self.get_json(Table::Devices, device_id)?;
            let valid = match &d {
                Some(d) => secret_matches(secret, &d.token_sha256)? && d.revoked_ms.is_none(),
                None => false,
            };
            let mut tokens = self.tokens.lock().expect("token cache lock");
            let unchanged = tokens.generation == generation;
            if !unchanged && attempt < 2 {
                generation = tokens.generation;
                continue;
            }
            let Some(d) = d.filter(|_| valid) else {
                tokens.verified.remove(&whole);
                tokens.failed(device_id);
                return Err(RegistryError::Unauthenticated);
            };
            let ident = DeviceIdentity { tenant_id: d.tenant_id.into(), device_id: d.id.into() };
            if unchanged {
                tokens.insert(whole, ident.clone(), self.token_cache_ttl);
            }
            return Ok(ident);
        }
        unreachable!("the last attempt always answers")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path().join("r.redb")).unwrap();
        let a = r.create_tenant("Acme Metal", "starter").unwrap();
        let b = r.create_tenant("Busan Plastics", "starter").unwrap();
        let (dev, token) = r.create_device(&a.id, "press line 1").unwrap();
        let who = r.authenticate_device(&token).unwrap();
        assert_eq!((&*who.tenant_id, &*who.device_id), (a.id.as_str(), dev.id.as_str()));
        // the token is not stored anywhere
        let raw = std::fs::read(dir.path().join("r.redb")).unwrap();
        let secret = token.rsplit('_').next().unwrap();
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));
        // wrong secret, malformed, other tenant's revoke
        let mut bad = token.clone();
        bad.pop();
        bad.push(if token.ends_with('0') { '1' } else { '0' });
        for t in [bad.as_str(), "", "fcd_", "Bearer x", "fcd_d_00_11"] {
            assert!(matches!(r.authenticate_device(t), Err(RegistryError::Unauthenticated)), "{t}");
        }
        assert!(matches!(r.revoke_device(&b.id, &dev.id), Err(RegistryError::NotFound(_))));
        assert!(r.authenticate_device(&token).is_ok());
        let (_, rotated) = r.rotate_device_token(&a.id, &dev.id).unwrap();
        assert!(matches!(r.authenticate_device(&token), Err(RegistryError::Unauthenticated)), "the old token stops working");
        assert_eq!(&*r.authenticate_device(&rotated).unwrap().device_id, dev.id.as_str());
        assert!(matches!(r.rotate_device_token(&b.id, &dev.id), Err(RegistryError::NotFound(_))));
        r.revoke_device(&a.id, &dev.id).unwrap();
        assert!(matches!(r.authenticate_device(&rotated), Err(RegistryError::Unauthenticated)));
        assert!(r.rotate_device_token(&a.id, &dev.id).is_err(), "a revoked device stays revoked");
        assert!(r.create_device("t_nope", "x").is_err());
        assert!(r.create_tenant("   ", "starter").is_err());
        assert!(r.create_tenant("x", "gold").is_err());
        assert_eq!(r.list_devices(&a.id).unwrap().len(), 1);
        assert_eq!(r.list_devices(&b.id).unwrap().len(), 0);
    }
}

#[cfg(test)]
mod shared_backend_tests {
    use super::*;

    #[test]
    fn a_revocation_by_another_process_applies_within_the_cache_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(RedbKv::open(&dir.path().join("r.redb")).unwrap());
        let here = Registry::with_backend(Box::new(shared.clone()));
        let there = Registry::with_backend(Box::new(shared)).with_token_cache_ttl(std::time::Duration::from_millis(200));
        let t = here.create_tenant("A", "starter").unwrap();
        let (d, token) = here.create_device(&t.id, "gw").unwrap();
        assert!(there.authenticate_device(&token).is_ok(), "cached over there");
        here.revoke_device(&t.id, &d.id).unwrap();
        assert!(here.authenticate_device(&token).is_err(), "at once in the revoking process");
        let started = std::time::Instant::now();
        while there.authenticate_device(&token).is_ok() {
            assert!(started.elapsed() < std::time::Duration::from_secs(5), "the other process still trusts a revoked token");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod conformance_tests {
    #[test]
    fn embedded_backend_passes_conformance() {
        let dir = tempfile::tempdir().unwrap();
        let kv = crate::RedbKv::open(&dir.path().join("kv.redb")).unwrap();
        crate::conformance::kv_suite(&kv, "run1");
        let r = crate::Registry::open(dir.path().join("r.redb")).unwrap();
        crate::conformance::registry_suite(&r, "run1");
    }

    #[test]
    fn embedded_backend_keeps_rows_across_reopen_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.redb");
        let (tenant, token) = {
            let r = crate::Registry::open(&path).unwrap();
            let t = r.create_tenant("Acme", "starter").unwrap();
            let (_, token) = r.create_device(&t.id, "gw").unwrap();
            r.invite(&t.id, "a@b.example", crate::Role::Viewer).unwrap();
            (t, token)
        };
        let kv = crate::RedbKv::open(&path).unwrap();
        let now = fc_core::time::now_ms();
        crate::KvStore::put(&kv, crate::Table::Sessions, &tenant.id, "s1", b"x", Some(now - 10)).unwrap();
        assert_eq!(crate::KvStore::prune_expired(&kv, now).unwrap(), 1, "only the expired session goes");
        drop(kv);
        let r = crate::Registry::open(&path).unwrap();
        assert_eq!(r.get_tenant(&tenant.id).unwrap(), tenant);
        assert!(r.authenticate_device(&token).is_ok());
        assert_eq!(r.list_invitations(&tenant.id).unwrap().len(), 1);
    }
}

#[cfg(test)]
mod identity_tests {
    use super::*;

    fn reg() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path().join("r.redb")).unwrap();
        (dir, r)
    }

    #[test]
    fn sign_up_login_sessions_and_roles() {
        let (_d, r) = reg();
        let (t, owner) = r.sign_up("Acme Metal", "starter", "Kim@Acme.example", "Kim", "correct horse battery").unwrap();
        assert_eq!((owner.role, owner.email.as_str()), (Role::Owner, "kim@acme.example"));
        assert!(matches!(
            r.sign_up("Other", "starter", "kim@acme.example", "K2", "another long password"),
            Err(RegistryError::AlreadyExists(_))
        ));
        assert_eq!(r.list_tenants().unwrap().len(), 1, "a failed sign-up leaves no tenant behind");
        assert!(r.sign_up("Bad", "starter", "not-an-email", "x", "long enough password").is_err());
        assert!(r.sign_up("Bad", "starter", "a@b.example", "x", "short").is_err());
        assert!(matches!(r.login("kim@acme.example", "wrong password!"), Err(RegistryError::Unauthenticated)));
        assert!(matches!(r.login("nobody@acme.example", "correct horse battery"), Err(RegistryError::Unauthenticated)));
        let u = r.login("KIM@acme.example", "correct horse battery").unwrap();
        let (sid, s) = r.create_session(&u).unwrap();
        assert_eq!(r.session(&sid).unwrap().csrf, s.csrf);
        assert!(r.session(&"0".repeat(64)).is_err());
        // the last owner cannot be demoted; a second owner makes it possible
        assert!(matches!(r.set_role(&t.id, &u.id, Role::Viewer), Err(RegistryError::FailedPrecondition(_))));
        let (tok, inv) = r.invite(&t.id, "lee@acme.example", Role::Operator).unwrap();
        assert_eq!(inv.role, Role::Operator);
        let lee = r.accept_invitation(&tok, "Lee", "another long password").unwrap();
        assert!(r.accept_invitation(&tok, "Lee", "another long password").is_err(), "an invitation is used once");
        r.set_role(&t.id, &lee.id, Role::Owner).unwrap();
        r.set_role(&t.id, &u.id, Role::Viewer).unwrap();
        assert_eq!(r.session(&sid).unwrap().role, Role::Viewer, "role changes apply to live sessions");
        r.delete_session(&sid).unwrap();
        assert!(r.session(&sid).is_err());
    }

    #[test]
    fn api_keys_and_quotas() {
        let (_d, r) = reg();
        let a = r.create_tenant("A", "starter").unwrap();
        let b = r.create_tenant("B", "starter").unwrap();
        let (key, token) = r.create_api_key(&a.id, "erp sync", Role::Viewer).unwrap();
        assert_eq!(r.authenticate_api_key(&token).unwrap().tenant_id, a.id);
        assert!(r.create_api_key(&a.id, "x", Role::Owner).is_err());
        assert!(matches!(r.revoke_api_key(&b.id, &key.id), Err(RegistryError::NotFound(_))));
        r.revoke_api_key(&a.id, &key.id).unwrap();
        assert!(r.authenticate_api_key(&token).is_err());
        // 10 devices on starter; the 11th is refused with a clear message; revoking frees a slot
        let mut last = None;
        for i in 0..10 {
            last = Some(r.create_device(&a.id, &format!("d{i}")).unwrap().0);
        }
        match r.create_device(&a.id, "d11") {
            Err(RegistryError::QuotaExceeded(m)) => assert!(m.contains("10 devices"), "{m}"),
            other => panic!("{other:?}"),
        }
        r.revoke_device(&a.id, &last.unwrap().id).unwrap();
        r.create_device(&a.id, "d11").unwrap();
        // users: starter allows 5
        r.create_user(&a.id, "o@a.example", "O", Role::Owner, "long enough password").unwrap();
        for i in 0..4 {
            r.create_user(&a.id, &format!("u{i}@a.example"), "U", Role::Viewer, "long enough password").unwrap();
        }
        assert!(matches!(
            r.create_user(&a.id, "u9@a.example", "U", Role::Viewer, "long enough password"),
            Err(RegistryError::QuotaExceeded(_))
        ));
    }
}

#[cfg(test)]
mod token_lookup_tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A backend that counts device reads by key, and can hold one read of a chosen
    /// device (after reading it) until released.
    struct Watched {
        inner: RedbKv,
        reads: Mutex<HashMap<String, usize>>,
        hold_once: Mutex<Option<String>>,
        holding: Mutex<Option<mpsc::Sender<()>>>,
        release: Mutex<Option<mpsc::Receiver<()>>>,
    }

    impl Watched {
        fn open(dir: &std::path::Path) -> Arc<Self> {
            Arc::new(Self {
                inner: RedbKv::open(&dir.join("r.redb")).unwrap(),
                reads: Mutex::new(HashMap::new()),
                hold_once: Mutex::new(None),
                holding: Mutex::new(None),
                release: Mutex::new(None),
            })
        }
        fn reads(&self, key: &str) -> usize {
            self.reads.lock().unwrap().get(key).copied().unwrap_or(0)
        }
        fn all_reads(&self) -> usize {
            self.reads.lock().unwrap().values().sum()
        }
        /// Hold the next read of `device`; returns (is being held, release).
        fn hold_next_read(&self, device: &str) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
            let (held_tx, held_rx) = mpsc::channel();
            let (release_tx, release_rx) = mpsc::channel();
            *self.hold_once.lock().unwrap() = Some(device.to_string());
            *self.holding.lock().unwrap() = Some(held_tx);
            *self.release.lock().unwrap() = Some(release_rx);
            (held_rx, release_tx)
        }
    }

    impl KvStore for Watched {
        fn backend(&self) -> &'static str {
            "watched"
        }
        fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, RegistryError> {
            let value = self.inner.get(table, key)?;
            if table == Table::Devices {
                *self.reads.lock().unwrap().entry(key.to_string()).or_default() += 1;
                let hold = { self.hold_once.lock().unwrap().take_if(|k| k == key) };
                if hold.is_some() {
                    let release = self.release.lock().unwrap().take().unwrap();
                    self.holding.lock().unwrap().take().unwrap().send(()).unwrap();
                    let _ = release.recv();
                }
            }
            Ok(value)
        }
        fn put(&self, table: Table, scope: &str, key: &str, value: &[u8], expires_ms: Option<i64>) -> Result<(), RegistryError> {
            self.inner.put(table, scope, key, value, expires_ms)
        }
        fn insert_new(&self, table: Table, scope: &str, key: &str, value: &[u8]) -> Result<bool, RegistryError> {
            self.inner.insert_new(table, scope, key, value)
        }
        fn remove(&self, table: Table, scope: &str, key: &str) -> Result<(), RegistryError> {
            self.inner.remove(table, scope, key)
        }
        fn list(&self, table: Table, scope: &str) -> Result<Vec<Vec<u8>>, RegistryError> {
            self.inner.list(table, scope)
        }
        fn prune_expired(&self, now_ms: i64) -> Result<u64, RegistryError> {
            self.inner.prune_expired(now_ms)
        }
    }

    fn unauthenticated(r: Result<DeviceIdentity, RegistryError>) -> bool {
        matches!(r, Err(RegistryError::Unauthenticated))
    }

    #[test]
    fn a_slow_backend_read_holds_up_no_other_device() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Watched::open(dir.path());
        let r = Arc::new(Registry::with_backend(Box::new(kv.clone())));
        let t = r.create_tenant("A", "growth").unwrap();
        let (slow, slow_token) = r.create_device(&t.id, "slow").unwrap();
        let (_, cached_token) = r.create_device(&t.id, "cached").unwrap();
        let (_, new_token) = r.create_device(&t.id, "new").unwrap();
        r.authenticate_device(&cached_token).unwrap();
        let (held, release) = kv.hold_next_read(&slow.id);
        let slow_check = std::thread::spawn({
            let r = r.clone();
            move || r.authenticate_device(&slow_token)
        });
        held.recv_timeout(Duration::from_secs(10)).expect("the slow read started");
        // Meanwhile, a cached token and a token never seen before both get their answer.
        let (done_tx, done) = mpsc::channel();
        std::thread::spawn({
            let r = r.clone();
            move || done_tx.send((r.authenticate_device(&cached_token).is_ok(), r.authenticate_device(&new_token).is_ok())).unwrap()
        });
        let others = done.recv_timeout(Duration::from_secs(10));
        release.send(()).unwrap();
        assert_eq!(others, Ok((true, true)), "other devices authenticated while one backend read was slow");
        assert!(slow_check.join().unwrap().is_ok());
    }

    #[test]
    fn a_revocation_wins_over_a_check_that_read_before_it() {
        for change in ["revoke", "rotate"] {
            let dir = tempfile::tempdir().unwrap();
            let kv = Watched::open(dir.path());
            let r = Arc::new(Registry::with_backend(Box::new(kv.clone())));
            let t = r.create_tenant("A", "growth").unwrap();
            let (d, token) = r.create_device(&t.id, "gw").unwrap();
            // The check reads the device (still valid), then stalls before it caches.
            let (held, release) = kv.hold_next_read(&d.id);
            let check = std::thread::spawn({
                let (r, token) = (r.clone(), token.clone());
                move || r.authenticate_device(&token)
            });
            held.recv_timeout(Duration::from_secs(10)).expect("the check read the device");
            let (changed_tx, changed) = mpsc::channel();
            std::thread::spawn({
                let (r, tenant, device) = (r.clone(), t.id.clone(), d.id.clone());
                move || {
                    match change {
                        "revoke" => r.revoke_device(&tenant, &device).unwrap(),
                        _ => drop(r.rotate_device_token(&tenant, &device).unwrap()),
                    }
                    changed_tx.send(()).unwrap();
                }
            });
            let waited = changed.recv_timeout(Duration::from_secs(10));
            release.send(()).unwrap();
            assert!(waited.is_ok(), "{change}: it waited for a check's backend read");
            assert!(unauthenticated(check.join().unwrap()), "{change}: the overlapping check read again and saw it");
            assert!(unauthenticated(r.authenticate_device(&token)), "{change}: the old token was not cached");
        }
    }

    #[test]
    fn a_flood_of_bad_tokens_costs_at_most_the_look_up_budget() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Watched::open(dir.path());
        // 40 look-ups an hour (no refill during the test), 5 failures per device; every
        // verified token is re-read on each use (TTL 0), the slowest path valid devices take.
        let r = Registry::with_backend(Box::new(kv.clone())).with_token_cache_ttl(Duration::ZERO).with_token_lookup_limits(
            40,
            Duration::from_secs(3600),
            5,
        );
        let t = r.create_tenant("A", "growth").unwrap();
        let (known, known_token) = r.create_device(&t.id, "known").unwrap();
        let (target, target_token) = r.create_device(&t.id, "target").unwrap();
        r.authenticate_device(&known_token).unwrap();
        r.authenticate_device(&target_token).unwrap();
        let spent = kv.all_reads(); // 2 look-ups of the budget
        let guess = |device: &str| format!("fcd_{device}_{}", random_hex(32));
        for i in 0..2_000 {
            // Guesses at one real device, and at random device ids.
            assert!(unauthenticated(r.authenticate_device(&guess(&target.id))));
            assert!(unauthenticated(r.authenticate_device(&guess(&format!("d_{}", random_hex(8))))));
            if i % 100 == 0 {
                assert!(r.authenticate_device(&known_token).is_ok(), "a verified device keeps authenticating");
                assert!(r.authenticate_device(&target_token).is_ok(), "so does the device whose id is guessed at");
            }
        }
        let known_reads = kv.reads(&known.id);
        let guessed = kv.all_reads() - spent - known_reads - kv.reads(&target.id);
        assert!(kv.reads(&target.id) <= 5 + 20 + 1, "guesses at one device stop after its 5 failures (besides its own 20 checks)");
        assert!(guessed + 5 <= 40 - 2, "guesses cost at most the budget: {guessed} random-id look-ups");
        // Revocation still applies, with the budget spent and the token verified before.
        r.revoke_device(&t.id, &known.id).unwrap();
        assert!(unauthenticated(r.authenticate_device(&known_token)));
        // A malformed token never costs a look-up.
        let before = kv.all_reads();
        for bad in ["", "fcd_", "Bearer x", "fcd_d_00_11"] {
            assert!(unauthenticated(r.authenticate_device(bad)));
        }
        assert_eq!(kv.all_reads(), before);
    }
}
