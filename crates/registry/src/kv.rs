//! Where the registry keeps its rows: a small keyed-document interface with
//! two backends, the embedded one (redb, the default) and ScyllaDB
//! ([`crate::scylla`]), so a split deployment keeps tenancy beside its
//! telemetry cluster.
//!
//! The registry's rules (quotas, uniqueness of e-mails, token checks) live in
//! [`crate::Registry`] and are the same whatever the backend; a backend only
//! stores opaque values.
//!
//! Invariants every backend keeps (checked by [`crate::conformance`]):
//! - a row is found by `(table, key)` alone; `scope` (the tenant, or `""` for
//!   global tables) only groups rows for [`KvStore::list`];
//! - [`KvStore::insert_new`] is atomic: of two racing inserts of one key,
//!   exactly one wins (redb: one write transaction; ScyllaDB: a lightweight
//!   transaction, `IF NOT EXISTS`);
//! - a row written with an expiry is gone for `get` and `list` once it passed,
//!   and [`KvStore::prune_expired`] removes it for good.

use crate::{RegistryError, st};
use redb::{ReadableTable, TableDefinition};
use std::path::Path;

/// The registry's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// Tenants by id (scope `""`).
    Tenants,
    /// Devices by id (scope: tenant).
    Devices,
    /// Users by id (scope: tenant).
    Users,
    /// User id by normalised e-mail (scope `""`); unique.
    Emails,
    /// Sessions by SHA-256 of the cookie value (scope: tenant); expiring.
    Sessions,
    /// API keys by id (scope: tenant).
    ApiKeys,
    /// Invitations by SHA-256 of the token (scope: tenant); expiring.
    Invitations,
    /// A buyer's supplier partnerships by supplier id (scope: buyer tenant).
    Partners,
    /// The same partnerships by buyer id (scope: supplier tenant).
    PartnerOf,
    /// Settlement profiles (design key, bank account) by tenant id (scope `""`).
    Orgs,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 10] = [
        Table::Tenants,
        Table::Devices,
        Table::Users,
        Table::Emails,
        Table::Sessions,
        Table::ApiKeys,
        Table::Invitations,
        Table::Partners,
        Table::PartnerOf,
        Table::Orgs,
    ];

    /// Stable name, stored by both backends.
    pub fn name(self) -> &'static str {
        match self {
            Table::Tenants => "tenants",
            Table::Devices => "devices",
            Table::Users => "users",
            Table::Emails => "emails",
            Table::Sessions => "sessions",
            Table::ApiKeys => "api_keys",
            Table::Invitations => "invitations",
            Table::Partners => "partners",
            Table::PartnerOf => "partner_of",
            Table::Orgs => "orgs",
        }
    }
}

/// A registry storage backend. Calls block; async callers run them as they
/// run any short blocking call (the embedded backend answers from memory-mapped
/// pages in microseconds).
pub trait KvStore: Send + Sync {
    /// Backend name for logs (`embedded`, `scylla`).
    fn backend(&self) -> &'static str;
    /// The value at `(table, key)`, unless missing or expired.
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, RegistryError>;
    /// Write (or overwrite) a row; `expires_ms` makes it vanish at that Unix ms time.
    fn put(&self, table: Table, scope: &str, key: &str, value: &[u8], expires_ms: Option<i64>) -> Result<(), RegistryError>;
    /// Write a row only if `(table, key)` holds none; `false` when one exists.
    fn insert_new(&self, table: Table, scope: &str, key: &str, value: &[u8]) -> Result<bool, RegistryError>;
    /// Remove a row (no error when missing).
    fn remove(&self, table: Table, scope: &str, key: &str) -> Result<(), RegistryError>;
    /// Every live value of `table` in `scope`, ordered by key.
    fn list(&self, table: Table, scope: &str) -> Result<Vec<Vec<u8>>, RegistryError>;
    /// Remove expired rows; returns how many went. Backends with native expiry may return 0.
    fn prune_expired(&self, now_ms: i64) -> Result<u64, RegistryError>;
}

/// A backend shared by several registries (processes sharing one cluster, in tests).
impl<T: KvStore + ?Sized> KvStore for std::sync::Arc<T> {
    fn backend(&self) -> &'static str {
        (**self).backend()
    }
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        (**self).get(table, key)
    }
    fn put(&self, table: Table, scope: &str, key: &str, value: &[u8], expires_ms: Option<i64>) -> Result<(), RegistryError> {
        (**self).put(table, scope, key, value, expires_ms)
    }
    fn insert_new(&self, table: Table, scope: &str, key: &str, value: &[u8]) -> Result<bool, RegistryError> {
        (**self).insert_new(table, scope, key, value)
    }
    fn remove(&self, table: Table, scope: &str, key: &str) -> Result<(), RegistryError> {
        (**self).remove(table, scope, key)
    }
    fn list(&self, table: Table, scope: &str) -> Result<Vec<Vec<u8>>, RegistryError> {
        (**self).list(table, scope)
    }
    fn prune_expired(&self, now_ms: i64) -> Result<u64, RegistryError> {
        (**self).prune_expired(now_ms)
    }
}

/// Rows: (table, key) -> (expires_ms or i64::MAX, scope, value).
const ROWS: TableDefinition<(&str, &str), (i64, &str, &[u8])> = TableDefinition::new("kv_rows");
/// Scope index: (table, scope, key) -> expires_ms or i64::MAX.
const SCOPED: TableDefinition<(&str, &str, &str), i64> = TableDefinition::new("kv_scoped");

const NEVER: i64 = i64::MAX;

/// The embedded backend: one redb file (reopened after an I/O error, so the
/// registry recovers when a full disk does).
pub struct RedbKv {
    db: fc_core::redbfile::RedbFile,
}

impl RedbKv {
    /// Open or create the file.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(st)?;
        }
        let db = fc_core::redbfile::RedbFile::open(path, 16 << 20).map_err(st)?;
        let txn = db.begin_write().map_err(st)?;
        txn.open_table(ROWS).map_err(st)?;
        txn.open_table(SCOPED).map_err(st)?;
        txn.commit().map_err(st)?;
        Ok(Self { db })
    }

    fn write(
        &self,
        table: Table,
        scope: &str,
        key: &str,
        value: &[u8],
        expires_ms: Option<i64>,
        only_new: bool,
    ) -> Result<bool, RegistryError> {
        let now = fc_core::time::now_ms();
        let txn = self.db.begin_write().map_err(st)?;
        {
            let mut rows = txn.open_table(ROWS).map_err(st)?;
            let old = rows.get((table.name(), key)).map_err(st)?.map(|v| {
                let (exp, scope, _) = v.value();
                (exp, scope.to_string())
            });
            if let Some((exp, old_scope)) = old {
                if only_new && exp > now {
                    return Ok(false);
                }
                if old_scope != scope {
                    txn.open_table(SCOPED).map_err(st)?.remove((table.name(), old_scope.as_str(), key)).map_err(st)?;
                }
            }
            let exp = expires_ms.unwrap_or(NEVER);
            rows.insert((table.name(), key), (exp, scope, value)).map_err(st)?;
            txn.open_table(SCOPED).map_err(st)?.insert((table.name(), scope, key), exp).map_err(st)?;
        }
        txn.commit().map_err(st)?;
        Ok(true)
    }
}

impl KvStore for RedbKv {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let txn = self.db.begin_read().map_err(st)?;
        let rows = txn.open_table(ROWS).map_err(st)?;
        let now = fc_core::time::now_ms();
        Ok(rows.get((table.name(), key)).map_err(st)?.and_then(|v| {
            let (exp, _, value) = v.value();
            (exp > now).then(|| value.to_vec())
        }))
    }

    fn put(&self, table: Table, scope: &str, key: &str, value: &[u8], expires_ms: Option<i64>) -> Result<(), RegistryError> {
        self.write(table, scope, key, value, expires_ms, false).map(|_| ())
    }

    fn insert_new(&self, table: Table, scope: &str, key: &str, value: &[u8]) -> Result<bool, RegistryError> {
        self.write(table, scope, key, value, None, true)
    }

    fn remove(&self, table: Table, scope: &str, key: &str) -> Result<(), RegistryError> {
        let txn = self.db.begin_write().map_err(st)?;
        {
            let mut rows = txn.open_table(ROWS).map_err(st)?;
            let old_scope = rows.remove((table.name(), key)).map_err(st)?.map(|v| v.value().1.to_string());
            let mut scoped = txn.open_table(SCOPED).map_err(st)?;
            scoped.remove((table.name(), scope, key)).map_err(st)?;
            if let Some(s) = old_scope {
                scoped.remove((table.name(), s.as_str(), key)).map_err(st)?;
            }
        }
        txn.commit().map_err(st)
    }

    fn list(&self, table: Table, scope: &str) -> Result<Vec<Vec<u8>>, RegistryError> {
        let txn = self.db.begin_read().map_err(st)?;
        let scoped = txn.open_table(SCOPED).map_err(st)?;
        let rows = txn.open_table(ROWS).map_err(st)?;
        let now = fc_core::time::now_ms();
        let mut out = Vec::new();
        // Keys run from "" up; every key sorts below "\u{10ffff}".
        for item in scoped.range((table.name(), scope, "")..=(table.name(), scope, "\u{10ffff}")).map_err(st)? {
            let (k, exp) = item.map_err(st)?;
            if exp.value() <= now {
                continue;
            }
            let (_, _, key) = k.value();
            if let Some(v) = rows.get((table.name(), key)).map_err(st)? {
                out.push(v.value().2.to_vec());
            }
        }
        Ok(out)
    }

    fn prune_expired(&self, now_ms: i64) -> Result<u64, RegistryError> {
        let txn = self.db.begin_write().map_err(st)?;
        let mut removed = 0;
        {
            let mut rows = txn.open_table(ROWS).map_err(st)?;
            let mut scoped = txn.open_table(SCOPED).map_err(st)?;
            let expired: Vec<(String, String, String)> = scoped
                .iter()
                .map_err(st)?
                .filter_map(|item| item.ok())
                .filter(|(_, exp)| exp.value() <= now_ms)
                .map(|(k, _)| {
                    let (t, s, key) = k.value();
                    (t.to_string(), s.to_string(), key.to_string())
                })
                .collect();
            for (t, s, key) in expired {
                scoped.remove((t.as_str(), s.as_str(), key.as_str())).map_err(st)?;
                rows.remove((t.as_str(), key.as_str())).map_err(st)?;
                removed += 1;
            }
        }
        txn.commit().map_err(st)?;
        Ok(removed)
    }
}
