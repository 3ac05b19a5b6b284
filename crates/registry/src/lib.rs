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
pub mod plans;
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
        plans::plan(&self.plan_id).unwrap_or(&PLANS[0])
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
    /// Verified tokens (by SHA-256 of the whole token) -> identity; cleared on revoke.
    /// Entries expire after [`TOKEN_CACHE_TTL`], so a revocation made by another
    /// process sharing the backend (ScyllaDB) takes effect here within that time.
    cache: Mutex<HashMap<[u8; 32], (DeviceIdentity, std::time::Instant)>>,
    token_cache_ttl: std::time::Duration,
    password_work: identity::PasswordWork,
}

/// How long a verified device token is trusted without reading the backend
/// again. Revocations in this process apply at once; revocations by another
/// process sharing the backend apply within this time.
pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// Most cached tokens.
const TOKEN_CACHE_MAX: usize = 100_000;

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
        Self { kv, cache: Mutex::new(HashMap::new()), token_cache_ttl: TOKEN_CACHE_TTL, password_work: Default::default() }
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

    /// Sign-up: a tenant on `plan_id` with its first user as owner.
    pub fn sign_up(&self, company: &str, plan_id: &str, email: &str, name: &str, password: &str) -> Result<(Tenant, User), RegistryError> {
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
        let mut cache = self.cache.lock().expect("cache lock");
        let mut d = self.get_device(tenant_id, device_id)?;
        d.revoked_ms.get_or_insert(fc_core::time::now_ms());
        self.put_json(Table::Devices, tenant_id, device_id, &d, None)?;
        cache.retain(|_, (ident, _)| &*ident.device_id != device_id);
        Ok(())
    }

    /// Replace a device's token: the old one stops working at once (open streams
    /// included), the new one is returned (the only time it exists in clear).
    pub fn rotate_device_token(&self, tenant_id: &str, device_id: &str) -> Result<(Device, String), RegistryError> {
        let mut d = self.get_device(tenant_id, device_id)?;
        if d.revoked_ms.is_some() {
            return Err(RegistryError::FailedPrecondition("a revoked device cannot get a new token; create a new device".into()));
        }
        let secret = random_hex(32);
        d.token_sha256 = hex::encode(sha256(secret.as_bytes()));
        let mut cache = self.cache.lock().expect("cache lock");
        self.put_json(Table::Devices, tenant_id, device_id, &d, None)?;
        cache.retain(|_, (ident, _)| &*ident.device_id != device_id);
        Ok((d.clone(), format!("fcd_{}_{secret}", d.id)))
    }

    /// Who `token` speaks for, or `Unauthenticated` (malformed, unknown, wrong secret or revoked alike).
    pub fn authenticate_device(&self, token: &str) -> Result<DeviceIdentity, RegistryError> {
        let whole = sha256(token.as_bytes());
        // The cache lock is held across a miss's read and insert; revoke and rotate
        // hold it across their commit and eviction. So a revoked token can never be
        // put back into the cache by a check that read the device before the revoke.
        let mut cache = self.cache.lock().expect("cache lock");
        if let Some((id, at)) = cache.get(&whole)
            && at.elapsed() < self.token_cache_ttl
        {
            return Ok(id.clone());
        }
        let (device_id, secret) = split_credential(token, "fcd", "d_")?;
        let d: Device = self.get_json(Table::Devices, device_id)?.ok_or(RegistryError::Unauthenticated)?;
        if !secret_matches(secret, &d.token_sha256)? || d.revoked_ms.is_some() {
            return Err(RegistryError::Unauthenticated);
        }
        let ident = DeviceIdentity { tenant_id: d.tenant_id.into(), device_id: d.id.into() };
        if cache.len() >= TOKEN_CACHE_MAX {
            // Bounded: drop expired entries, and everything if that is not enough.
            cache.retain(|_, (_, at)| at.elapsed() < self.token_cache_ttl);
            if cache.len() >= TOKEN_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(whole, (ident.clone(), std::time::Instant::now()));
        Ok(ident)
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
