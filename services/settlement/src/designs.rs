//! Content-addressed files per network: design ciphertext
//! (`<data_dir>/designs/<network>/<sha256>.age`) and the bank files the
//! buyer exported (`<data_dir>/exports/<network>/<sha256>.xml`).
//!
//! Invariant: a file is written to a temporary name, synced, then renamed,
//! and the directory is synced after the rename, so a crash leaves either the
//! whole file or none; the ledger entry that names its hash is appended only
//! after that. A network's directory is synced into its parent when it is
//! created, so the first file of a network does not vanish with its
//! directory entry after a crash.
//!
//! Invariant: only age files are stored as designs (the client encrypted
//! them); the service never holds a key that opens them.

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
        fc_core::fsutil::create_dir_durably(&dir)?;
        Ok(Self { dir, extension })
    }

    fn path(&self, network: &str, sha256: &str) -> PathBuf {
        self.dir.join(network).join(format!("{sha256}.{}", self.extension))
    }

    /// A new, empty temporary file in `network`'s directory (created
    /// durably if it is the network's first), for a file to be committed
    /// with [`BlobStore::commit`].
    pub fn temp_file(&self, network: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
        let dir = self.dir.join(network);
        fc_core::fsutil::create_dir_durably(&dir)?;
        // A name of its own per write: two uploads of the same file never share it.
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = dir.join(format!(".upload.{}.tmp", hex::encode(nonce)));
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        Ok((tmp, file))
    }

    /// Moves a synced temporary file into place under its SHA-256 (hex); an
    /// identical file already stored is kept and the temporary one removed.
    pub fn commit(&self, network: &str, sha256: &str, tmp: &Path) -> std::io::Result<()> {
        let path = self.path(network, sha256);
        if path.exists() {
            return std::fs::remove_file(tmp);
        }
        std::fs::rename(tmp, &path)?;
        fc_core::fsutil::sync_dir(path.parent().unwrap_or(Path::new(".")))
    }

    /// Stores `bytes` under their SHA-256 (hex).
    pub fn put(&self, network: &str, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        if self.path(network, sha256).exists() {
            return Ok(());
        }
        let (tmp, mut f) = self.temp_file(network)?;
        let written = f.write_all(bytes).and_then(|()| f.sync_all()).and_then(|()| self.commit(network, sha256, &tmp));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    pub fn get(&self, network: &str, sha256: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(network, sha256))
    }

    /// Bytes of the files stored for `network` (not counting uploads in
    /// progress): what its plan's quota counts.
    pub fn stored_bytes(&self, network: &str) -> std::io::Result<u64> {
        let dir = match std::fs::read_dir(self.dir.join(network)) {
            Ok(dir) => dir,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let suffix = format!(".{}", self.extension);
        let mut total = 0u64;
        for entry in dir {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(&suffix) && !name.to_string_lossy().starts_with('.') {
                total = total.saturating_add(entry.metadata()?.len());
            }
        }
        Ok(total)
    }
}
