//! C2SP `tlog-checkpoint` bodies and Ed25519 C2SP `signed-note`s.
//!
//! A checkpoint body is three lines, origin, decimal tree size and base64 root
//! hash, each ending in `\n`, then optional extension lines. A signed note is
//! that text, a blank line, and one line per signature:
//! `— <key name> <base64(4-byte key ID || signature)>\n`.
//!
//! Keys use the text encodings of Go's `golang.org/x/mod/sumdb/note`, so keys
//! and notes move between this crate, the Go tools and other tlog clients:
//! - verifier key: `<name>+<8 hex digits key ID>+<base64(0x01 || public key)>`
//! - signer key: `PRIVATE+KEY+<name>+<8 hex digits key ID>+<base64(0x01 || seed)>`
//! - key ID: the first 4 bytes, big-endian, of
//!   SHA-256(name || 0x0A || 0x01 || 32-byte public key).
//!
//! Invariant: [`open_note`] returns text only if at least one known key signed
//! it, and refuses the whole note if any known key's signature fails.
//!
//! Invariant: [`open_checkpoint`] returns a checkpoint only of the origin its
//! caller expects. One key may sign many logs (FactoryChain's ledger key
//! signs one log per supply network), so a valid signature alone does not
//! say which log a tree head belongs to; the origin does, and C2SP
//! `tlog-checkpoint` leaves checking it to the verifier. Unknown
//! keys' signatures are ignored, as the spec requires (witness cosignatures,
//! key rotation).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// Largest signed note [`open_note`] reads: bounds the work an untrusted note
/// can cause.
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// Most signatures [`open_note`] reads (the spec asks to accept at least 16;
/// Go's package stops at 100).
pub const MAX_SIGNATURES: usize = 100;

/// Signature type byte of Ed25519 in key IDs and key encodings.
const ALG_ED25519: u8 = 0x01;

/// Prefix of a signature line: em dash (U+2014) and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a checkpoint, key or note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The checkpoint body breaks the `tlog-checkpoint` format.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    /// A verifier or signer key string is not well formed.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// The key uses a signature type other than Ed25519.
    #[error("unsupported key algorithm {0:#04x}")]
    UnsupportedAlgorithm(u8),
    /// The key ID in the key string does not match the key.
    #[error("key id {stated:08x} does not match the key (computed {computed:08x})")]
    KeyIdMismatch {
        /// Key ID written in the key string.
        stated: u32,
        /// Key ID computed from the name and public key.
        computed: u32,
    },
    /// A key name is empty or holds a space or a plus.
    #[error("invalid key name {0:?}: must be non-empty, without spaces or '+'")]
    InvalidKeyName(String),
    /// The operating system gave no randomness for a new key.
    #[error("no randomness for a new key: {0}")]
    Randomness(String),
    /// The note text does not end with a newline.
    #[error("note text must end with a newline")]
    TextWithoutFinalNewline,
    /// A note is signed by at least one key.
    #[error("a note needs at least one signer")]
    NoSigners,
    /// The note is larger than [`MAX_NOTE_BYTES`].
    #[error("note of {0} bytes is larger than the {MAX_NOTE_BYTES} bytes limit")]
    TooLarge(usize),
    /// The note holds more than [`MAX_SIGNATURES`] signature lines.
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// The signed note breaks the `signed-note` format.
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// Two known verifiers share a key name and key ID.
    #[error("ambiguous key {name}+{key_id:08x}: several verifiers match")]
    AmbiguousKey {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: u32,
    },
    /// A known key's signature does not verify: the whole note is refused.
    #[error("invalid signature for key {name}+{key_id:08x}")]
    BadSignature {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: u32,
    },
    /// No known key signed the note.
    #[error("note has no signature from a known key")]
    NoKnownSignature,
    /// A validly signed checkpoint of another log than the one expected.
    #[error("checkpoint is of log {found:?}, not of the expected {expected:?}")]
    WrongOrigin {
        /// The origin the verifier expected.
        expected: String,
        /// The origin the checkpoint names.
        found: String,
    },
}

/// The body of a C2SP `tlog-checkpoint`: a log's tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `factorychain.example/settlement`.
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// RFC 9162 root hash of the tree of `size` leaves.
    pub root: Hash,
    /// Opaque, non-empty extension lines (not recommended by the spec).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: origin, size, base64 root, extensions, each ending in
    /// `\n`.
    ///
    /// The fields are not checked here: a body that [`Checkpoint::parse`]
    /// would refuse (an empty origin, a line holding `\n`) comes out as is.
    pub fn to_body(&self) -> String {
        let mut body = format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.root));
        for line in &self.extensions {
            body.push_str(line);
            body.push('\n');
        }
        body
    }

    /// Parses a checkpoint body strictly: a non-empty origin, a decimal size
    /// without leading zeros (except `0`), a canonical base64 root of exactly
    /// 32 bytes, non-empty extension lines, every line ending in `\n`, no
    /// control characters (so no `\r`).
    pub fn parse(body: &str) -> Result<Self, NoteError> {
        let malformed = NoteError::MalformedCheckpoint;
        if body.chars().any(|c| c.is_ascii_control() && c != '\n') {
            return Err(malformed("control character (only \\n may end a line)"));
        }
        let Some(lines) = body.strip_suffix('\n') else {
            return Err(malformed("last line does not end with \\n"));
        };
        let mut lines = lines.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(malformed("empty origin"));
        }
        let size = parse_tree_size(lines.next().ok_or(malformed("missing tree size"))?)?;
        let root = parse_root_hash(lines.next().ok_or(malformed("missing root hash"))?)?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(malformed("empty extension line"));
        }
        Ok(Self { origin: origin.to_owned(), size, root, extensions })
    }
}

fn parse_tree_size(line: &str) -> Result<u64, NoteError> {
    let malformed = NoteError::MalformedCheckpoint;
    if line.is_empty() || !line.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("tree size is not a decimal number"));
    }
    if line.len() > 1 && line.starts_with('0') {
        return Err(malformed("tree size has a leading zero"));
    }
    line.parse().map_err(|_| malformed("tree size does not fit in 64 bits"))
}

fn parse_root_hash(line: &str) -> Result<Hash, NoteError> {
    let malformed = NoteError::MalformedCheckpoint;
    let bytes = BASE64.decode(line).map_err(|_| malformed("root hash is not padded standard base64"))?;
    let root: Hash = bytes.try_into().map_err(|_| malformed("root hash is not 32 bytes"))?;
    // The decoder already refuses stray bits and bad padding; re-encoding
    // makes "one root, one spelling" explicit.
    if BASE64.encode(root) != line {
        return Err(malformed("root hash is not canonical base64"));
    }
    Ok(root)
}

/// A key name is non-empty and holds no Unicode space and no `+`.
fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

fn check_key_name(name: &str) -> Result<(), NoteError> {
    if is_valid_key_name(name) { Ok(()) } else { Err(NoteError::InvalidKeyName(name.to_owned())) }
}

/// The Ed25519 key ID: SHA-256(name || 0x0A || 0x01 || public key)[..4],
/// big-endian.
fn ed25519_key_id(name: &str, public_key: &VerifyingKey) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ALG_ED25519]);
    hasher.update(public_key.as_bytes());
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Parses the `<hex key id>+<base64 key>` tail shared by both key encodings
/// into the key ID and the 32 bytes after the Ed25519 type byte.
fn parse_key_tail(key_id: &str, key: &str) -> Result<(u32, [u8; 32]), NoteError> {
    let malformed = NoteError::MalformedKey;
    // Like Go's strconv.ParseUint(s, 16, 32) with a length check: exactly
    // eight hex digits.
    if key_id.len() != 8 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("key id is not 8 hex digits"));
    }
    let key_id = u32::from_str_radix(key_id, 16).map_err(|_| malformed("key id is not hex"))?;
    let key = BASE64.decode(key).map_err(|_| malformed("key is not padded standard base64"))?;
    let (&algorithm, key) = key.split_first().ok_or(malformed("empty key"))?;
    if algorithm != ALG_ED25519 {
        return Err(NoteError::UnsupportedAlgorithm(algorithm));
    }
    let key: [u8; 32] = key.try_into().map_err(|_| malformed("Ed25519 key is not 32 bytes"))?;
    Ok((key_id, key))
}

fn check_key_id(stated: u32, name: &str, public_key: &VerifyingKey) -> Result<(), NoteError> {
    let computed = ed25519_key_id(name, public_key);
    if stated != computed {
        return Err(NoteError::KeyIdMismatch { stated, computed });
    }
    Ok(())
}

fn verifier_key_string(name: &str, key_id: u32, public_key: &VerifyingKey) -> String {
    let mut encoded = vec![ALG_ED25519];
    encoded.extend_from_slice(public_key.as_bytes());
    format!("{name}+{key_id:08x}+{}", BASE64.encode(encoded))
}

/// An Ed25519 note signing key with its name.
///
/// Secret: its `Debug` output shows the name and key ID only.
#[derive(Clone)]
pub struct Signer {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("name", &self.name).field("key_id", &format_args!("{:08x}", self.key_id)).finish_non_exhaustive()
    }
}

impl Signer {
    /// A new key named `name`, its seed drawn from the operating system.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| NoteError::Randomness(e.to_string()))?;
        Self::from_seed(name, seed)
    }

    /// The key named `name` with the 32-byte Ed25519 `seed`.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_key_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        Ok(Self { name: name.to_owned(), key_id: ed25519_key_id(name, &key.verifying_key()), key })
    }

    /// Parses a signer key `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`
    /// and checks its key ID against the derived public key.
    pub fn from_skey(skey: &str) -> Result<Self, NoteError> {
        // The base64 key may itself hold '+', so split off the first four
        // fields only.
        let mut fields = skey.splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(key_id), Some(key)) =
            (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(NoteError::MalformedKey("signer key is not PRIVATE+KEY+<name>+<id>+<key>"));
        };
        check_key_name(name)?;
        let (key_id, seed) = parse_key_tail(key_id, key)?;
        let signer = Self::from_seed(name, seed)?;
        check_key_id(key_id, name, &signer.key.verifying_key())?;
        Ok(signer)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The verifier key string to hand to those who check this key's notes.
    pub fn verifier_key(&self) -> String {
        verifier_key_string(&self.name, self.key_id, &self.key.verifying_key())
    }

    /// The signer key string `PRIVATE+KEY+...`: a secret, to keep in a secret
    /// store and never log.
    pub fn signer_key(&self) -> String {
        let mut encoded = vec![ALG_ED25519];
        encoded.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(encoded))
    }

    /// The verifier of this key.
    pub fn verifier(&self) -> Verifier {
        Verifier { name: self.name.clone(), key_id: self.key_id, key: self.key.verifying_key() }
    }

    fn signature_line(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        let mut blob = self.key_id.to_be_bytes().to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(blob))
    }
}

/// An Ed25519 note verification key with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl Verifier {
    /// Parses a verifier key `<name>+<hex id>+<base64(0x01 || public key)>`
    /// and checks its key ID.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let mut fields = vkey.splitn(3, '+');
        let (Some(name), Some(key_id), Some(key)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(NoteError::MalformedKey("verifier key is not <name>+<id>+<key>"));
        };
        check_key_name(name)?;
        let (key_id, key) = parse_key_tail(key_id, key)?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| NoteError::MalformedKey("not an Ed25519 public key"))?;
        check_key_id(key_id, name, &key)?;
        Ok(Self { name: name.to_owned(), key_id, key })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The verifier key string.
    pub fn verifier_key(&self) -> String {
        verifier_key_string(&self.name, self.key_id, &self.key)
    }

    fn verifies(&self, text: &str, signature: &[u8]) -> bool {
        // Plain RFC 8032 verification, as Go's crypto/ed25519 does, so a note
        // the Go tools accept is accepted here too.
        Signature::from_slice(signature).is_ok_and(|signature| self.key.verify(text.as_bytes(), &signature).is_ok())
    }
}

/// Signs `text` (which must end with `\n`) with each signer, in order.
pub fn sign_note(text: &str, signers: &[&Signer]) -> Result<String, NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::TextWithoutFinalNewline);
    }
    if text.chars().any(|c| c.is_ascii_control() && c != '\n') {
        return Err(NoteError::MalformedNote("text holds a control character other than \\n"));
    }
    if signers.is_empty() {
        return Err(NoteError::NoSigners);
    }
    let mut note = String::with_capacity(text.len() + 1 + signers.len() * 110);
    note.push_str(text);
    note.push('\n');
    for signer in signers {
        note.push_str(&signer.signature_line(text));
    }
    Ok(note)
}

/// Opens a signed note: returns its text and the names of the known keys
/// whose signatures verified, in note order.
///
/// This checks who signed, not which log the text is about: verifiers of a
/// checkpoint call [`open_checkpoint`], which also checks the origin.
///
/// Refuses notes over [`MAX_NOTE_BYTES`], with more than [`MAX_SIGNATURES`]
/// signatures, with control characters other than `\n`, without the blank
/// line before the signatures, with a malformed signature line, with a known
/// key's signature that fails, or with no known key's signature at all.
/// Signatures of unknown keys are ignored; repeated signatures of one key are
/// checked once.
/// Opens a signed checkpoint of the log named `origin`: the note must be
/// signed by a known key ([`open_note`]), hold a well-formed checkpoint, and
/// name exactly `origin`. A valid checkpoint of another log signed by the
/// same key is refused with [`NoteError::WrongOrigin`].
pub fn open_checkpoint(signed: &str, known: &[Verifier], origin: &str) -> Result<(Checkpoint, Vec<String>), NoteError> {
    let (text, signers) = open_note(signed, known)?;
    let checkpoint = Checkpoint::parse(&text)?;
    if checkpoint.origin != origin {
        return Err(NoteError::WrongOrigin { expected: origin.to_owned(), found: checkpoint.origin });
    }
    Ok((checkpoint, signers))
}

pub fn open_note(signed: &str, known: &[Verifier]) -> Result<(String, Vec<String>), NoteError> {
    let malformed = NoteError::MalformedNote;
    if signed.len() > MAX_NOTE_BYTES {
        return Err(NoteError::TooLarge(signed.len()));
    }
    if signed.chars().any(|c| c.is_ascii_control() && c != '\n') {
        return Err(malformed("control character other than \\n"));
    }
    // The text ends at the last blank line; it keeps its final newline.
    let split = signed.rfind("\n\n").ok_or(malformed("no blank line before the signatures"))?;
    let (text, signatures) = (&signed[..=split], &signed[split + 2..]);
    let Some(signatures) = signatures.strip_suffix('\n') else {
        return Err(malformed("signature block does not end with \\n"));
    };
    let lines: Vec<&str> = signatures.split('\n').collect();
    if lines.len() > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures);
    }
    let mut verified: Vec<(String, u32)> = Vec::new();
    for line in lines {
        let (name, key_id, signature) = parse_signature_line(line)?;
        let Some(verifier) = find_verifier(known, name, key_id)? else {
            continue; // unknown key: ignored, as the spec requires
        };
        if verified.iter().any(|(n, id)| n == name && *id == key_id) {
            continue; // the same key signing twice adds nothing
        }
        if !verifier.verifies(text, &signature) {
            return Err(NoteError::BadSignature { name: name.to_owned(), key_id });
        }
        verified.push((name.to_owned(), key_id));
    }
    if verified.is_empty() {
        return Err(NoteError::NoKnownSignature);
    }
    let names = verified.into_iter().map(|(name, _)| name).collect();
    Ok((text.to_owned(), names))
}

/// Splits `— <name> <base64>` into name, key ID and signature bytes.
fn parse_signature_line(line: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let malformed = NoteError::MalformedNote;
    let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or(malformed("signature line does not start with an em dash and a space"))?;
    let (name, encoded) = rest.split_once(' ').ok_or(malformed("signature line has no space after the key name"))?;
    if !is_valid_key_name(name) {
        return Err(malformed("invalid key name in a signature line"));
    }
    let blob = BASE64.decode(encoded).map_err(|_| malformed("signature is not padded standard base64"))?;
    if blob.len() < 5 {
        return Err(malformed("signature shorter than a key id and one byte"));
    }
    let key_id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
    Ok((name, key_id, blob[4..].to_vec()))
}

fn find_verifier<'a>(known: &'a [Verifier], name: &str, key_id: u32) -> Result<Option<&'a Verifier>, NoteError> {
    let mut matching = known.iter().filter(|v| v.name == name && v.key_id == key_id);
    let first = matching.next();
    if first.is_some() && matching.next().is_some() {
        return Err(NoteError::AmbiguousKey { name: name.to_owned(), key_id });
    }
    Ok(first)
}
