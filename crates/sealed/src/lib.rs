//! Client-side encryption of part designs that a buyer shares with its
//! suppliers: [age](https://age-encryption.org/v1) files with X25519
//! recipients, one key pair per organisation.
//!
//! A buyer [`seal`]s a design to the public recipient strings (`age1...`) of
//! the organisations that may read it, uploads the ciphertext, and records its
//! [`sha256_hex`] in the ledger. A supplier downloads the ciphertext and
//! [`open`]s it with its own [`OrgKeys`].
//!
//! Invariant: plaintext and identities (secret keys) never leave the client.
//! This crate runs on the client; the platform stores only ciphertext and
//! public recipient strings, and never needs this crate to serve them.
//!
//! Invariant: nothing here puts a secret key into an error message or a
//! `Debug` output; the only ways to get the secret out are
//! [`OrgKeys::to_identity_file`] and [`write_identity_file`].
//!
//! Invariant: [`open`] never returns plaintext that was not authenticated:
//! age checks the header MAC and every payload chunk, including the last-chunk
//! flag, so a flipped byte or a truncation is an error, not partial output.
//!
//! Boundary: only X25519 recipients and identities are supported; no armor,
//! passphrases, SSH keys or plugins (the `age` dependency is built without its
//! optional features to keep the tree lean).

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use age::secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

/// How an identity file's secret key line starts (age writes it uppercase).
const SECRET_KEY_PREFIX: &str = "AGE-SECRET-KEY-1";

/// Everything that can go wrong while sealing, opening or storing keys.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// [`seal`] was called with no recipient: nobody could ever open the result.
    #[error("no recipients: a design must be sealed to at least one organisation")]
    NoRecipients,
    /// A recipient string is not an X25519 age public key.
    #[error("invalid recipient {value:?}: expected an X25519 age public key (age1...): {reason}")]
    BadRecipient {
        /// The string that was given (public data, safe to show).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A secret key was given where a public recipient was expected. The value
    /// is deliberately not repeated here so it never reaches a log.
    #[error("a secret key (AGE-SECRET-KEY-1...) was given as a recipient; give the organisation's public key (age1...) instead")]
    SecretKeyAsRecipient,
    /// The ciphertext is well formed but none of its recipients is this
    /// organisation's key.
    ///
    /// X25519 recipient stanzas are anonymous, so a ciphertext whose recipient
    /// stanza was damaged is indistinguishable from one sealed to someone
    /// else and also ends up here.
    #[error("this organisation is not a recipient of the design: it was not sealed to its key")]
    NotARecipient,
    /// The ciphertext is not a valid age file, or it was altered or truncated.
    #[error("the sealed design is corrupt or truncated: {detail}")]
    Corrupt {
        /// What age reported.
        detail: String,
    },
    /// An identity file could not be parsed. The message never contains the
    /// file's secret content.
    #[error("invalid identity file: {reason}")]
    BadIdentityFile {
        /// What is wrong with it.
        reason: String,
    },
    /// [`write_identity_file`] refuses to replace an existing key file.
    #[error("identity file {} already exists; refusing to overwrite a key", path.display())]
    IdentityFileExists {
        /// The path that already exists.
        path: PathBuf,
    },
    /// A file system error while writing an identity file.
    #[error("cannot write identity file {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// age refused to encrypt (should not happen with X25519 recipients).
    #[error("encryption failed: {detail}")]
    Encrypt {
        /// What age reported.
        detail: String,
    },
}

/// An organisation's X25519 key pair. The secret half stays on the client;
/// only [`OrgKeys::recipient`] is ever sent to the platform.
///
/// `Debug` shows the public key only.
pub struct OrgKeys {
    identity: age::x25519::Identity,
}

impl fmt::Debug for OrgKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrgKeys").field("recipient", &self.recipient()).finish_non_exhaustive()
    }
}

impl OrgKeys {
    /// Generates a new key pair from the operating system's random source.
    pub fn generate() -> OrgKeys {
        OrgKeys { identity: age::x25519::Identity::generate() }
    }

    /// The public recipient string (`age1...`) that others seal designs to.
    pub fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }

    /// The text of an identity file in the layout `age-keygen` writes:
    /// three comment lines (organisation, creation time in RFC 3339 UTC,
    /// public key) and then the `AGE-SECRET-KEY-1...` line.
    ///
    /// The result contains the secret key: write it only to a private file
    /// (see [`write_identity_file`]). Line breaks and other control characters
    /// in `org` are replaced by spaces so the name cannot add lines to the file.
    pub fn to_identity_file(&self, org: &str) -> String {
        let org: String = org.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let created = rfc3339_utc(SystemTime::now());
        let secret = self.identity.to_string();
        format!(
            "# factorychain organisation key for {org}\n# created: {created}\n# public key: {}\n{}\n",
            self.recipient(),
            secret.expose_secret()
        )
    }

    /// Reads keys back from the text of an identity file: blank lines and
    /// `#` comments are ignored, and exactly one secret key line must remain.
    pub fn from_identity_file(text: &str) -> Result<OrgKeys, SealError> {
        let mut found = None;
        let mut keys = 0usize;
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The line is secret (or a garbled secret): report its number only.
            let identity = line.parse::<age::x25519::Identity>().map_err(|reason| SealError::BadIdentityFile {
                reason: format!("line {} is not an X25519 age secret key ({SECRET_KEY_PREFIX}...): {reason}", index + 1),
            })?;
            keys += 1;
            found = Some(identity);
        }
        match (keys, found) {
            (1, Some(identity)) => Ok(OrgKeys { identity }),
            (0, _) => Err(SealError::BadIdentityFile { reason: "no secret key line found".to_owned() }),
            (n, _) => Err(SealError::BadIdentityFile { reason: format!("{n} secret key lines found, expected exactly one") }),
        }
    }
}

/// Parses a public recipient string (`age1...`, surrounding whitespace
/// ignored). The error names the bad value, except when the value looks like a
/// secret key, which is never echoed.
pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient, SealError> {
    let trimmed = s.trim();
    if trimmed.get(..SECRET_KEY_PREFIX.len()).is_some_and(|head| head.eq_ignore_ascii_case(SECRET_KEY_PREFIX)) {
        return Err(SealError::SecretKeyAsRecipient);
    }
    trimmed.parse::<age::x25519::Recipient>().map_err(|reason| SealError::BadRecipient { value: s.to_owned(), reason })
}

/// Encrypts `plaintext` to every recipient in `recipients` (public `age1...`
/// strings) and returns the binary age file.
///
/// Refuses an empty list. Duplicates (after parsing, so different spellings
/// of one key count once) get a single recipient stanza.
pub fn seal(plaintext: &[u8], recipients: &[String]) -> Result<Vec<u8>, SealError> {
    if recipients.is_empty() {
        return Err(SealError::NoRecipients);
    }
    let mut seen = HashSet::new();
    let mut parsed = Vec::with_capacity(recipients.len());
    for value in recipients {
        let recipient = parse_recipient(value)?;
        if seen.insert(recipient.clone()) {
            parsed.push(recipient);
        }
    }
    let encryptor = age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| SealError::Encrypt { detail: e.to_string() })?;
    let mut ciphertext = Vec::with_capacity(plaintext.len() + 512);
    let io_error = |e: io::Error| SealError::Encrypt { detail: e.to_string() };
    let mut writer = encryptor.wrap_output(&mut ciphertext).map_err(io_error)?;
    writer.write_all(plaintext).map_err(io_error)?;
    writer.finish().map_err(io_error)?;
    Ok(ciphertext)
}

/// Decrypts a binary age file with the organisation's keys.
///
/// Returns [`SealError::NotARecipient`] when the file was not sealed to
/// `keys`, and [`SealError::Corrupt`] when it is malformed, altered or
/// truncated; no plaintext is returned unless all of it authenticated.
pub fn open(ciphertext: &[u8], keys: &OrgKeys) -> Result<Vec<u8>, SealError> {
    let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(decrypt_error)?;
    let mut reader = decryptor.decrypt(std::iter::once(&keys.identity as &dyn age::Identity)).map_err(decrypt_error)?;
    let mut plaintext = Vec::with_capacity(ciphertext.len());
    // Reading from memory cannot fail for I/O reasons: any error here is a
    // payload chunk that failed authentication or ended early.
    reader.read_to_end(&mut plaintext).map_err(|e| SealError::Corrupt { detail: e.to_string() })?;
    Ok(plaintext)
}

fn decrypt_error(error: age::DecryptError) -> SealError {
    match error {
        age::DecryptError::NoMatchingKeys => SealError::NotARecipient,
        other => SealError::Corrupt { detail: other.to_string() },
    }
}

/// SHA-256 of `data` as 64 lowercase hex digits: the ciphertext hash the
/// ledger records.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Writes [`OrgKeys::to_identity_file`] to a new file at `path`, creating
/// missing parent directories.
///
/// Never overwrites: an existing file gives [`SealError::IdentityFileExists`]
/// (losing a key would make every design sealed to it unreadable). On unix the
/// file is created with mode 0600 and new directories with mode 0700.
pub fn write_identity_file(path: &Path, keys: &OrgKeys, org: &str) -> Result<(), SealError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(parent).map_err(|source| SealError::Io { path: parent.to_owned(), source })?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            SealError::IdentityFileExists { path: path.to_owned() }
        } else {
            SealError::Io { path: path.to_owned(), source }
        }
    })?;
    let written = file.write_all(keys.to_identity_file(org).as_bytes()).and_then(|()| file.sync_all());
    if let Err(source) = written {
        // Don't leave a partial key file behind: it would block the retry.
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(SealError::Io { path: path.to_owned(), source });
    }
    Ok(())
}

/// Formats a time as RFC 3339 in UTC with whole seconds
/// (`2026-05-01T12:34:56Z`). Written out here rather than pulling a date
/// crate into the client for one comment line.
fn rfc3339_utc(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // Seconds after 9999-12-31 are not a time this key file will be written at.
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_matches_known_instants() {
        let check = |secs: u64, expect: &str| {
            assert_eq!(rfc3339_utc(UNIX_EPOCH + Duration::from_secs(secs)), expect, "{secs}");
        };
        check(0, "1970-01-01T00:00:00Z");
        check(951_782_400, "2000-02-29T00:00:00Z");
        check(1_709_251_199, "2024-02-29T23:59:59Z");
        check(1_735_689_600, "2025-01-01T00:00:00Z");
        check(4_102_444_799, "2099-12-31T23:59:59Z");
    }
}
