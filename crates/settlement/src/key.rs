//! The checkpoint signing key on disk: the note signer-key text
//! (`PRIVATE+KEY+<name>+<id>+<key>`), one line, mode 0600.
//!
//! Invariant: the key text never appears in an error or a log line.

use crate::LedgerError;
use fc_ledger::note::Signer;
use std::path::Path;

pub(crate) fn load_or_create(key_path: &Path, name: &str) -> Result<Signer, LedgerError> {
    use fc_core::fsutil::{Created, create_private_once};
    let signer = Signer::generate(name).map_err(|e| LedgerError::Invalid(format!("checkpoint key name {name:?}: {e}")))?;
    // Created whole and private, or the key that is already there (perhaps written
    // by a racing process) is the one to use.
    match create_private_once(key_path, &format!("{}\n", signer.signer_key())) {
        Ok(Created::New) => {
            tracing::info!(path = %key_path.display(), key = %signer.verifier_key(), "generated the ledger checkpoint key");
            Ok(signer)
        }
        Ok(Created::Existing(text)) => parse(key_path, &text, name),
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

fn warn_if_shared(path: &Path) {
    if fc_core::fsutil::is_shared(path) {
        tracing::warn!(path = %path.display(), "the ledger key is readable by others; chmod 600 it");
    }
}
