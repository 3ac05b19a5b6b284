//! A redb file that recovers from I/O errors without a restart.
//!
//! After a commit fails (a full disk, an I/O error), redb refuses every later
//! write transaction with `PreviousIo` until the database is closed and opened
//! again; opening repairs the file to its last commit. Every embedded store of
//! ours (telemetry, registry) opens its file through [`RedbFile`], whose
//! [`RedbFile::begin_write`] does that reopen, so a service recovers as soon as
//! the disk does.
//!
//! Invariant: callers change their in-memory state only after a commit
//! succeeded, so the repaired file and that state agree.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The open file, reopened after an I/O failure.
pub struct RedbFile {
    path: PathBuf,
    cache_bytes: usize,
    db: RwLock<Option<Arc<redb::Database>>>,
}

/// Why the file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RedbFileError {
    /// redb refused (or failed) the operation.
    #[error("{path}: {message}")]
    Redb {
        /// The file.
        path: String,
        /// What redb said.
        message: String,
    },
}

impl RedbFile {
    /// Open (or create) the file at `path` with a page cache of `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self, RedbFileError> {
        let db = Self::open_db(path, cache_bytes)?;
        Ok(Self { path: path.to_path_buf(), cache_bytes, db: RwLock::new(Some(Arc::new(db))) })
    }

    fn open_db(path: &Path, cache_bytes: usize) -> Result<redb::Database, RedbFileError> {
        redb::Database::builder()
            .set_cache_size(cache_bytes.max(1 << 20))
            .create(path)
            .map_err(|e| RedbFileError::Redb { path: path.display().to_string(), message: e.to_string() })
    }

    fn err(&self, e: impl std::fmt::Display) -> RedbFileError {
        RedbFileError::Redb { path: self.path.display().to_string(), message: e.to_string() }
    }

    /// The open database; opened again here if an earlier reopen could not open it.
    pub fn db(&self) -> Result<Arc<redb::Database>, RedbFileError> {
        if let Some(db) = self.db.read().expect("redb file lock").clone() {
            return Ok(db);
        }
        let mut slot = self.db.write().expect("redb file lock");
        if slot.is_none() {
            *slot = Some(Arc::new(Self::open_db(&self.path, self.cache_bytes)?));
        }
        Ok(slot.clone().expect("just set"))
    }

    /// A read transaction.
    pub fn begin_read(&self) -> Result<redb::ReadTransaction, RedbFileError> {
        use redb::ReadableDatabase as _;
        self.db()?.begin_read().map_err(|e| self.err(e))
    }

    /// A write transaction; after an earlier I/O failure, the file is reopened first.
    pub fn begin_write(&self) -> Result<redb::WriteTransaction, RedbFileError> {
        let db = self.db()?;
        match db.begin_write() {
            Ok(txn) => Ok(txn),
            Err(redb::TransactionError::Storage(redb::StorageError::PreviousIo)) => {
                drop(db);
                self.reopen()?;
                self.db()?.begin_write().map_err(|e| self.err(e))
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// Close the file once nobody else holds it (waiting up to 10 s), and open it again.
    pub fn reopen(&self) -> Result<(), RedbFileError> {
        let mut slot = self.db.write().expect("redb file lock");
        if let Some(mut held) = slot.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match Arc::try_unwrap(held) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still) if Instant::now() < deadline => {
                        held = still;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(still) => {
                        *slot = Some(still);
                        return Err(self.err("cannot reopen: the file is still in use"));
                    }
                }
            }
        }
        tracing::warn!(path = %self.path.display(), "reopening a database file after an I/O error");
        *slot = Some(Arc::new(Self::open_db(&self.path, self.cache_bytes)?));
        Ok(())
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("t");

    fn write(f: &RedbFile, k: u64, v: &[u8]) -> Result<(), String> {
        let txn = f.begin_write().map_err(|e| e.to_string())?;
        txn.open_table(T).map_err(|e| e.to_string())?.insert(k, v).map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())
    }

    /// A full disk (a 8 MiB tmpfs) makes a commit fail; once space is back, the
    /// next write reopens the file and succeeds, and nothing committed is lost.
    #[test]
    fn writes_recover_after_the_disk_was_full() {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED: the full-disk test mounts a tmpfs and needs root (CI and `make test` run as root)");
            return;
        }
        let f = RedbFile::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
        write(&f, 0, b"kept").unwrap();
        let filler = dir.path().join("filler");
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&filler).unwrap();
            while file.write_all(&[0u8; 64 << 10]).is_ok() {}
        }
        let big = vec![7u8; 1 << 20];
        assert!((1..20).map(|k| write(&f, k, &big)).any(|r| r.is_err()), "the disk filled up");
        std::fs::remove_file(&filler).unwrap();
        write(&f, 100, b"after").expect("the file was reopened and takes writes again");
        let read = f.begin_read().unwrap();
        let t = read.open_table(T).unwrap();
        assert_eq!(t.get(0).unwrap().unwrap().value(), b"kept");
        assert_eq!(t.get(100).unwrap().unwrap().value(), b"after");
        drop((t, read));
        let _ = std::process::Command::new("umount").arg("-l").arg(dir.path()).status();
    }
}
