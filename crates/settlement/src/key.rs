//! The checkpoint signing key on disk: the note signer-key text
//! (`PRIVATE+KEY+<name>+<id>+<key>`), one line, mode 0600.
//!
//! Invariant: the key text never appears in an error or a log line.

use crate::LedgerError;
use fc_ledger::note::Signer;
use std::io::Write as _;
use std::path::Path;

pub(crate) fn load_or_create(key_path: &Path, name: &str) -> Result<Signer, LedgerError> {
    match std::fs::read_to_string(key_path) {
        Ok(text) => return parse(key_path, &text, name),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(key_path, &e)),
    }
    let signer = Signer::generate(name).map_err(|e| LedgerError::Invalid(format!("checkpoint key name {name:?}: {e}")))?;
    if let Some(dir) = key_path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
    }
    // Written whole to a private temporary file, then linked into place:
    // the link fails if another process created the key meanwhile, and then
    // that key is the one to use.
    let tmp = key_path.with_extension(format!("tmp.{}", std::process::id()));
    let written = write_private(&tmp, &format!("{}\n", signer.signer_key()));
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, key_path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(key_path);
            tracing::info!(path = %key_path.display(), key = %signer.verifier_key(), "generated the ledger checkpoint key");
            Ok(signer)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(key_path).map_err(|e| io_error(key_path, &e))?;
            parse(key_path, &text, name)
        }
        Err(e) => Err(io_error(key_path, &e)),
    }
}

fn parse(path: &Path, text: &str, name: &str) -> Result<Signer, LedgerError> {
    warn_if_shared(path);
    let signer =
        Signer::from_skey(text.trim_end()).map_err(|e| LedgerError::Invalid(format!("{}: not a note signer key ({e})", path.display())))?;
    if signer.name() != name {
        return Err(LedgerError::Invalid(format!(
            "{}: the key is named {:?}, the ledger expects {name:?} (the origin prefix); move the old key away to start a new log identity",
            path.display(),
            signer.name()
        )));
    }
    Ok(signer)
}

fn io_error(path: &Path, e: &std::io::Error) -> LedgerError {
    LedgerError::Storage(format!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Makes the new directory entry durable (best effort: not every platform
/// can open a directory).
fn sync_dir(key_path: &Path) {
    if let Some(dir) = key_path.parent().filter(|dir| !dir.as_os_str().is_empty())
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "the ledger key is readable by others; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}
