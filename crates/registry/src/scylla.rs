//! The ScyllaDB registry backend, for deployments whose services run on
//! several hosts (the embedded file is one process's).
//!
//! Schema (keyspace shared with the telemetry store):
//! - `registry_rows ((tbl, key))`: a row by its key, for `get` and `insert_new`;
//! - `registry_scoped ((tbl, scope), key)`: the same value grouped by scope
//!   (the tenant), for `list`; one partition per tenant and table.
//!
//! Both are written by one logged batch, so they never disagree for long.
//! Expiring rows (sessions, invitations) use CQL TTLs; `prune_expired` has
//! nothing to do. `insert_new` is a lightweight transaction (`IF NOT EXISTS`)
//! at SERIAL consistency, which makes e-mail uniqueness hold across hosts.
//!
//! Boundary: the [`KvStore`] trait is blocking. Calls run the driver's futures
//! with `block_in_place` on the multi-threaded Tokio runtime (what
//! `factorychain up` uses), or on a private runtime outside of Tokio. A
//! current-thread runtime cannot block in place: use the embedded backend there.

use crate::kv::{KvStore, Table};
use crate::{RegistryError, st};
use ::scylla::client::session::Session;
use ::scylla::client::session_builder::SessionBuilder;
use ::scylla::statement::Consistency;
use ::scylla::statement::batch::{Batch, BatchType};
use ::scylla::statement::prepared::PreparedStatement;
use std::future::Future;

/// The ScyllaDB registry backend.
pub struct ScyllaKv {
    session: Session,
    get: PreparedStatement,
    put_row: PreparedStatement,
    put_scoped: PreparedStatement,
    insert_new: PreparedStatement,
    del_row: PreparedStatement,
    del_scoped: PreparedStatement,
    list: PreparedStatement,
    /// Used only when called outside a Tokio runtime.
    own_runtime: std::sync::OnceLock<tokio::runtime::Runtime>,
}

fn valid_keyspace(ks: &str) -> bool {
    let b = ks.as_bytes();
    !b.is_empty() && b.len() <= 48 && b[0].is_ascii_alphabetic() && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

async fn prepare(session: &Session, cql: String, consistency: Consistency) -> Result<PreparedStatement, RegistryError> {
    let mut ps = session.prepare(cql.as_str()).await.map_err(|e| RegistryError::Storage(format!("prepare `{cql}`: {e}")))?;
    ps.set_consistency(consistency);
    Ok(ps)
}

impl ScyllaKv {
    /// Connect, create the keyspace and tables when missing, prepare statements.
    pub async fn connect(nodes: &[String], keyspace: &str, replication_factor: u32) -> Result<Self, RegistryError> {
        if nodes.is_empty() {
            return Err(RegistryError::Invalid("registry on ScyllaDB: at least one host:port is needed".into()));
        }
        if !valid_keyspace(keyspace) {
            return Err(RegistryError::Invalid(format!(
                "keyspace `{keyspace}` must be 1-48 letters, digits or `_`, starting with a letter"
            )));
        }
        let session = SessionBuilder::new()
            .known_nodes(nodes)
            .build()
            .await
            .map_err(|e| RegistryError::Storage(format!("connect to {nodes:?}: {e}")))?;
        let ks = keyspace;
        let ddl = [
            format!(
                "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {{'class': 'NetworkTopologyStrategy', 'replication_factor': {replication_factor}}}"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {ks}.registry_rows (tbl text, key text, scope text, value blob, expires_ms bigint, PRIMARY KEY ((tbl, key)))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {ks}.registry_scoped (tbl text, scope text, key text, value blob, expires_ms bigint, PRIMARY KEY ((tbl, scope), key))"
            ),
        ];
        for cql in ddl {
            session.query_unpaged(cql.as_str(), ()).await.map_err(|e| RegistryError::Storage(format!("{cql}: {e}")))?;
        }
        session.await_schema_agreement().await.map_err(|e| RegistryError::Storage(format!("schema agreement: {e}")))?;
        let q = Consistency::LocalQuorum;
        let kv = Self {
            get: prepare(&session, format!("SELECT value, expires_ms FROM {ks}.registry_rows WHERE tbl = ? AND key = ?"), q).await?,
            put_row: prepare(
                &session,
                format!("INSERT INTO {ks}.registry_rows (tbl, key, scope, value, expires_ms) VALUES (?, ?, ?, ?, ?) USING TTL ?"),
                q,
            )
            .await?,
            put_scoped: prepare(
                &session,
                format!("INSERT INTO {ks}.registry_scoped (tbl, scope, key, value, expires_ms) VALUES (?, ?, ?, ?, ?) USING TTL ?"),
                q,
            )
            .await?,
            insert_new: prepare(
                &session,
                format!("INSERT INTO {ks}.registry_rows (tbl, key, scope, value, expires_ms) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS"),
                q,
            )
            .await?,
            del_row: prepare(&session, format!("DELETE FROM {ks}.registry_rows WHERE tbl = ? AND key = ?"), q).await?,
            del_scoped: prepare(&session, format!("DELETE FROM {ks}.registry_scoped WHERE tbl = ? AND scope = ? AND key = ?"), q).await?,
            list: prepare(&session, format!("SELECT value, expires_ms FROM {ks}.registry_scoped WHERE tbl = ? AND scope = ?"), q).await?,
            session,
            own_runtime: std::sync::OnceLock::new(),
        };
        tracing::info!(?nodes, keyspace = %ks, "registry on ScyllaDB");
        Ok(kv)
    }

    /// Run a driver future from the blocking trait.
    fn block<T>(&self, fut: impl Future<Output = T>) -> T {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => tokio::task::block_in_place(|| handle.block_on(fut)),
            Err(_) => self
                .own_runtime
                .get_or_init(|| {
                    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a Tokio runtime for the registry")
                })
                .block_on(fut),
        }
    }

    async fn write(&self, table: Table, scope: &str, key: &str, value: &[u8], expires_ms: Option<i64>) -> Result<(), RegistryError> {
        let (exp, ttl) = match expires_ms {
            Some(e) => {
                let left_s = (e - fc_core::time::now_ms()).div_euclid(1000) + 1;
                if left_s <= 0 {
                    // Already expired: nothing would be visible, so nothing is written.
                    return Ok(());
                }
                (e, i32::try_from(left_s).unwrap_or(i32::MAX))
            }
            None => (i64::MAX, 0),
        };
        let mut batch = Batch::new(BatchType::Logged);
        batch.append_statement(self.put_row.clone());
        batch.append_statement(self.put_scoped.clone());
        batch.set_consistency(Consistency::LocalQuorum);
        let t = table.name();
        self.session
            .batch(&batch, ((t, key, scope, value, exp, ttl), (t, scope, key, value, exp, ttl)))
            .await
            .map_err(|e| RegistryError::Storage(format!("write {t}: {e}")))?;
        Ok(())
    }
}

fn live(row: Option<(Vec<u8>, Option<i64>)>, now: i64) -> Option<Vec<u8>> {
    row.and_then(|(v, exp)| (exp.unwrap_or(i64::MAX) > now).then_some(v))
}

impl KvStore for ScyllaKv {
    fn backend(&self) -> &'static str {
        "scylla"
    }

    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        self.block(async {
            let res = self.session.execute_unpaged(&self.get, (table.name(), key)).await.map_err(st)?;
            let rows = res.into_rows_result().map_err(st)?;
            let row = rows.maybe_first_row::<(Vec<u8>, Option<i64>)>().map_err(st)?;
            Ok(live(row, fc_core::time::now_ms()))
        })
    }

    fn put(&self, table: Table, scope: &str, key: &str, value: &[u8], expires_ms: Option<i64>) -> Result<(), RegistryError> {
        self.block(self.write(table, scope, key, value, expires_ms))
    }

    fn insert_new(&self, table: Table, scope: &str, key: &str, value: &[u8]) -> Result<bool, RegistryError> {
        self.block(async {
            let t = table.name();
            let res = self.session.execute_unpaged(&self.insert_new, (t, key, scope, value, i64::MAX)).await.map_err(st)?;
            // An LWT answers with `[applied]` first (and the existing row when not applied).
            let rows = res.into_rows_result().map_err(st)?;
            let applied = rows.rows::<(bool,)>().map_err(st)?.next().transpose().map_err(st)?.is_some_and(|(a,)| a);
            if applied {
                self.session.execute_unpaged(&self.put_scoped, (t, scope, key, value, i64::MAX, 0i32)).await.map_err(st)?;
            }
            Ok(applied)
        })
    }

    fn remove(&self, table: Table, scope: &str, key: &str) -> Result<(), RegistryError> {
        self.block(async {
            let t = table.name();
            self.session.execute_unpaged(&self.del_row, (t, key)).await.map_err(st)?;
            self.session.execute_unpaged(&self.del_scoped, (t, scope, key)).await.map_err(st)?;
            Ok(())
        })
    }

    fn list(&self, table: Table, scope: &str) -> Result<Vec<Vec<u8>>, RegistryError> {
        use futures::TryStreamExt;
        self.block(async {
            let now = fc_core::time::now_ms();
            let rows: Vec<(Vec<u8>, Option<i64>)> = self
                .session
                .execute_iter(self.list.clone(), (table.name(), scope))
                .await
                .map_err(st)?
                .rows_stream::<(Vec<u8>, Option<i64>)>()
                .map_err(st)?
                .try_collect()
                .await
                .map_err(st)?;
            Ok(rows.into_iter().filter_map(|r| live(Some(r), now)).collect())
        })
    }

    fn prune_expired(&self, _now_ms: i64) -> Result<u64, RegistryError> {
        // TTLs expire the rows; compaction reclaims them.
        Ok(0)
    }
}
