//! Content-addressed files per network: design ciphertext
//! (`<data_dir>/designs/<network>/<sha256>.age`) and the bank files the
//! buyer exported (`<data_dir>/exports/<network>/<sha256>.xml`).
//!
//! Invariant: a file is written to a temporary name, synced, then renamed, so
//! a crash leaves either the whole ciphertext or none; the ledger entry that
//! names its hash is appended only after that.
//!
//! Invariant: only age files are stored (the client encrypted them); the
//! service never holds a key that opens them.

use std::io::Write;
use std::path::{Path, PathBuf};

/// What an age file starts with.
pub(crate) const AGE_HEADER: &[u8] = b"age-encryption.org/v1\n";

pub(crate) struct BlobStore {
    dir: PathBuf,
    /// File name extension, without the dot (`age`, `xml`).
    extension: &'static str,
}

impl BlobStore {
    pub fn open(dir: PathBuf, extension: &'static str) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir, extension })
    }

    fn path(&self, network: &str, sha256: &str) -> PathBuf {
        self.dir.join(network).join(format!("{sha256}.{}", self.extension))
    }

    /// Stores `bytes` under their SHA-256 (hex) and returns it.
    pub fn put(&self, network: &str, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path(network, sha256);
        if path.exists() {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        // A name of its own per write: two uploads of the same file never share it.
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = dir.join(format!(".{sha256}.{}.tmp", hex::encode(nonce)));
        {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    }

    pub fn get(&self, network: &str, sha256: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(network, sha256))
    }
}
