//! Tenants, devices and device credentials.
//!
//! Invariants:
//! - a device token is `fcd_<device id>_<secret>` with 256 random bits of
//!   secret; only SHA-256 of the secret is stored (a high-entropy secret needs
//!   no slow hash), and it is compared in constant time;
//! - a token is shown once, at creation; a revoked device never authenticates
//!   again, including through the in-memory cache;
//! - tenant and device of a request come from here, never from a payload.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");

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
            RegistryError::Storage(m) => ServiceError::internal(m),
        }
    }
}

fn st<E: std::fmt::Display>(e: E) -> RegistryError {
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

/// The tenant and device registry, in its own redb file.
pub struct Registry {
    db: redb::Database,
    /// Verified tokens (by SHA-256 of the whole token) -> identity; cleared on revoke.
    cache: Mutex<HashMap<[u8; 32], DeviceIdentity>>,
}

/// Random lowercase hex of `bytes` random bytes.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    hex::encode(buf)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = Sha256::digest(data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_slice());
    out
}

fn validate_name(what: &str, name: &str) -> Result<String, RegistryError> {
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
    /// Open or create the registry file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RegistryError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(st)?;
        }
        let db = redb::Database::create(path).map_err(|e| RegistryError::Storage(format!("{}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(st)?;
        txn.open_table(TENANTS).map_err(st)?;
        txn.open_table(DEVICES).map_err(st)?;
        txn.commit().map_err(st)?;
        Ok(Self { db, cache: Mutex::new(HashMap::new()) })
    }

    /// Create a tenant.
    pub fn create_tenant(&self, name: &str) -> Result<Tenant, RegistryError> {
        let t = Tenant { id: format!("t_{}", random_hex(8)), name: validate_name("name", name)?, created_ms: fc_core::time::now_ms() };
        let txn = self.db.begin_write().map_err(st)?;
        txn.open_table(TENANTS).map_err(st)?.insert(t.id.as_str(), serde_json::to_vec(&t).map_err(st)?.as_slice()).map_err(st)?;
        txn.commit().map_err(st)?;
        Ok(t)
    }

    /// Every tenant, by id.
    pub fn list_tenants(&self) -> Result<Vec<Tenant>, RegistryError> {
        let txn = self.db.begin_read().map_err(st)?;
        let table = txn.open_table(TENANTS).map_err(st)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(st)? {
            let (_, v) = row.map_err(st)?;
            out.push(serde_json::from_slice(v.value()).map_err(st)?);
        }
        Ok(out)
    }

    /// One tenant.
    pub fn get_tenant(&self, id: &str) -> Result<Tenant, RegistryError> {
        let txn = self.db.begin_read().map_err(st)?;
        let table = txn.open_table(TENANTS).map_err(st)?;
        let v = table.get(id).map_err(st)?.ok_or_else(|| RegistryError::NotFound("tenant".into()))?;
        serde_json::from_slice(v.value()).map_err(st)
    }

    /// Register a device of `tenant_id`; returns it and its token (the only time the token exists in clear).
    pub fn create_device(&self, tenant_id: &str, name: &str) -> Result<(Device, String), RegistryError> {
        self.get_tenant(tenant_id)?;
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
        let txn = self.db.begin_write().map_err(st)?;
        txn.open_table(DEVICES).map_err(st)?.insert(id.as_str(), serde_json::to_vec(&d).map_err(st)?.as_slice()).map_err(st)?;
        txn.commit().map_err(st)?;
        Ok((d, token))
    }

    /// Devices of a tenant.
    pub fn list_devices(&self, tenant_id: &str) -> Result<Vec<Device>, RegistryError> {
        let txn = self.db.begin_read().map_err(st)?;
        let table = txn.open_table(DEVICES).map_err(st)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(st)? {
            let (_, v) = row.map_err(st)?;
            let d: Device = serde_json::from_slice(v.value()).map_err(st)?;
            if d.tenant_id == tenant_id {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Revoke a device of `tenant_id`. A device of another tenant is "not found".
    pub fn revoke_device(&self, tenant_id: &str, device_id: &str) -> Result<(), RegistryError> {
        let txn = self.db.begin_write().map_err(st)?;
        {
            let mut table = txn.open_table(DEVICES).map_err(st)?;
            let mut d: Device = match table.get(device_id).map_err(st)? {
                Some(v) => serde_json::from_slice(v.value()).map_err(st)?,
                None => return Err(RegistryError::NotFound("device".into())),
            };
            if d.tenant_id != tenant_id {
                return Err(RegistryError::NotFound("device".into()));
            }
            d.revoked_ms.get_or_insert(fc_core::time::now_ms());
            table.insert(device_id, serde_json::to_vec(&d).map_err(st)?.as_slice()).map_err(st)?;
        }
        txn.commit().map_err(st)?;
        self.cache.lock().expect("cache lock").retain(|_, ident| &*ident.device_id != device_id);
        Ok(())
    }

    /// Who `token` speaks for, or `Unauthenticated` (malformed, unknown, wrong secret or revoked alike).
    pub fn authenticate_device(&self, token: &str) -> Result<DeviceIdentity, RegistryError> {
        let whole = sha256(token.as_bytes());
        if let Some(id) = self.cache.lock().expect("cache lock").get(&whole) {
            return Ok(id.clone());
        }
        let rest = token.strip_prefix("fcd_").ok_or(RegistryError::Unauthenticated)?;
        let (device_id, secret) = rest.rsplit_once('_').ok_or(RegistryError::Unauthenticated)?;
        if !device_id.starts_with("d_") || device_id.len() != 18 || secret.len() != 64 {
            return Err(RegistryError::Unauthenticated);
        }
        let txn = self.db.begin_read().map_err(st)?;
        let table = txn.open_table(DEVICES).map_err(st)?;
        let d: Device = match table.get(device_id).map_err(st)? {
            Some(v) => serde_json::from_slice(v.value()).map_err(st)?,
            None => return Err(RegistryError::Unauthenticated),
        };
        let stored = hex::decode(&d.token_sha256).map_err(st)?;
        let ok: bool = sha256(secret.as_bytes()).ct_eq(stored.as_slice()).into();
        if !ok || d.revoked_ms.is_some() {
            return Err(RegistryError::Unauthenticated);
        }
        let ident = DeviceIdentity { tenant_id: d.tenant_id.into(), device_id: d.id.into() };
        // Take the lock before checking revocation again would be racy with a
        // concurrent revoke; inserting after the read is safe because revoke
        // clears the cache after its commit.
        self.cache.lock().expect("cache lock").insert(whole, ident.clone());
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
        let a = r.create_tenant("Acme Metal").unwrap();
        let b = r.create_tenant("Busan Plastics").unwrap();
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
        r.revoke_device(&a.id, &dev.id).unwrap();
        assert!(matches!(r.authenticate_device(&token), Err(RegistryError::Unauthenticated)));
        assert!(r.create_device("t_nope", "x").is_err());
        assert!(r.create_tenant("   ").is_err());
        assert_eq!(r.list_devices(&a.id).unwrap().len(), 1);
        assert_eq!(r.list_devices(&b.id).unwrap().len(), 0);
    }
}
