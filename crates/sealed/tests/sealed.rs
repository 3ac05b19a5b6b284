//! Behaviour of the public API: who can open what, what tampering gives, and
//! how identity files are written and read.

use fc_sealed::{OrgKeys, SealError, open, parse_recipient, seal, sha256_hex, write_identity_file};

/// A few KB of recognisable text, so a leak of plaintext would be obvious.
fn design_plaintext() -> Vec<u8> {
    (0..80).map(|i| format!("BRACKET-7731 rev C, line {i:03}: bore 12.000 H7, chamfer 0.5x45\n")).collect::<String>().into_bytes()
}

fn recipients(keys: &[&OrgKeys]) -> Vec<String> {
    keys.iter().map(|k| k.recipient()).collect()
}

/// Where the binary age header ends (just after the `--- <mac>\n` line).
fn header_len(ciphertext: &[u8]) -> usize {
    let mac_line = ciphertext.windows(5).position(|w| w == b"\n--- ").expect("age header has a MAC line") + 1;
    mac_line + ciphertext[mac_line..].iter().position(|&b| b == b'\n').expect("MAC line ends") + 1
}

#[test]
fn round_trip_one_and_three_recipients() {
    let plaintext = design_plaintext();
    let a = OrgKeys::generate();
    let b = OrgKeys::generate();
    let c = OrgKeys::generate();

    let sealed = seal(&plaintext, &recipients(&[&a])).unwrap();
    assert_eq!(open(&sealed, &a).unwrap(), plaintext);

    let sealed = seal(&plaintext, &recipients(&[&a, &b, &c])).unwrap();
    for keys in [&a, &b, &c] {
        assert_eq!(open(&sealed, keys).unwrap(), plaintext);
    }

    // Empty designs are valid too.
    let sealed = seal(b"", &recipients(&[&a])).unwrap();
    assert_eq!(open(&sealed, &a).unwrap(), b"");
}

#[test]
fn non_recipient_cannot_open() {
    let buyer = OrgKeys::generate();
    let outsider = OrgKeys::generate();
    let sealed = seal(&design_plaintext(), &recipients(&[&buyer])).unwrap();
    let err = open(&sealed, &outsider).unwrap_err();
    assert!(matches!(err, SealError::NotARecipient), "{err:?}");
    assert!(err.to_string().contains("not a recipient"), "{err}");
}

#[test]
fn removed_recipient_cannot_open_the_next_ciphertext() {
    let plaintext = design_plaintext();
    let buyer = OrgKeys::generate();
    let kept = OrgKeys::generate();
    let dropped = OrgKeys::generate();

    let before = seal(&plaintext, &recipients(&[&buyer, &kept, &dropped])).unwrap();
    assert_eq!(open(&before, &dropped).unwrap(), plaintext);

    let after = seal(&plaintext, &recipients(&[&buyer, &kept])).unwrap();
    assert!(matches!(open(&after, &dropped), Err(SealError::NotARecipient)));
    assert_eq!(open(&after, &buyer).unwrap(), plaintext);
    assert_eq!(open(&after, &kept).unwrap(), plaintext);
}

#[test]
fn flipped_payload_byte_is_corrupt() {
    let keys = OrgKeys::generate();
    let sealed = seal(&design_plaintext(), &recipients(&[&keys])).unwrap();
    let header = header_len(&sealed);
    // The payload nonce, the first chunk, and the last byte (final tag).
    for at in [header, header + 20, header + 1000, sealed.len() - 1] {
        let mut tampered = sealed.clone();
        tampered[at] ^= 0x01;
        let err = open(&tampered, &keys).unwrap_err();
        assert!(matches!(err, SealError::Corrupt { .. }), "byte {at}: {err:?}");
        assert!(err.to_string().contains("corrupt"), "{err}");
    }
}

#[test]
fn flipped_header_byte_never_opens() {
    // Inside the header, a damaged X25519 stanza cannot be told apart from a
    // stanza for someone else (they are anonymous), so either error is right;
    // the version line and the MAC must give Corrupt.
    let keys = OrgKeys::generate();
    let sealed = seal(b"small design", &recipients(&[&keys])).unwrap();
    let header = header_len(&sealed);
    for at in 0..header {
        let mut tampered = sealed.clone();
        tampered[at] ^= 0x01;
        match open(&tampered, &keys) {
            Err(SealError::Corrupt { .. } | SealError::NotARecipient) => {}
            other => panic!("byte {at}: {other:?}"),
        }
    }
    let mut tampered = sealed.clone();
    tampered[0] ^= 0x01; // "age-encryption.org/v1"
    assert!(matches!(open(&tampered, &keys), Err(SealError::Corrupt { .. })));
    let mut tampered = sealed.clone();
    tampered[header - 2] ^= 0x01; // last base64 digit of the MAC
    assert!(matches!(open(&tampered, &keys), Err(SealError::Corrupt { .. })));
}

#[test]
fn truncated_is_corrupt() {
    let keys = OrgKeys::generate();
    let sealed = seal(&design_plaintext(), &recipients(&[&keys])).unwrap();
    let header = header_len(&sealed);
    for len in [0, 10, header - 1, header, header + 16, sealed.len() - 17, sealed.len() - 1] {
        let err = open(&sealed[..len], &keys).unwrap_err();
        assert!(matches!(err, SealError::Corrupt { .. }), "length {len}: {err:?}");
    }
}

#[test]
fn ciphertext_does_not_contain_plaintext() {
    let plaintext = design_plaintext();
    assert!(plaintext.len() > 4000);
    let keys = OrgKeys::generate();
    let sealed = seal(&plaintext, &recipients(&[&keys])).unwrap();
    // No 16-byte run of the design appears anywhere in the ciphertext.
    for window in plaintext.chunks(16).filter(|w| w.len() == 16) {
        assert!(!sealed.windows(16).any(|c| c == window), "plaintext {:?} leaked", String::from_utf8_lossy(window));
    }
    assert!(!sealed.windows(12).any(|c| c == b"BRACKET-7731"));
}

#[test]
fn empty_recipients_refused() {
    let err = seal(b"design", &[]).unwrap_err();
    assert!(matches!(err, SealError::NoRecipients));
    assert!(err.to_string().contains("at least one"), "{err}");
}

#[test]
fn bad_recipient_refused_with_its_value() {
    let good = OrgKeys::generate().recipient();
    let check = |value: &str| {
        let err = seal(b"design", &[good.clone(), value.to_owned()]).unwrap_err();
        assert!(matches!(err, SealError::BadRecipient { .. }), "{value}: {err:?}");
        assert!(err.to_string().contains(value), "{value}: {err}");
        assert!(parse_recipient(value).is_err());
    };
    check("");
    check("not-a-key");
    check("age1qqqq");
    check(&good[..good.len() - 1]);
    // The last character changed (to one it is not: a key ending in 'x' stayed valid, 1 run in 32).
    let last = if good.ends_with('x') { 'y' } else { 'x' };
    check(&format!("{}{last}", &good[..good.len() - 1]));
    check("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB");
}

#[test]
fn secret_key_as_recipient_is_refused_without_echoing_it() {
    let keys = OrgKeys::generate();
    let file = keys.to_identity_file("Acme");
    let secret = file.lines().last().unwrap();
    for value in [secret.to_owned(), secret.to_lowercase()] {
        let err = seal(b"design", std::slice::from_ref(&value)).unwrap_err();
        assert!(matches!(err, SealError::SecretKeyAsRecipient), "{err:?}");
        assert!(!err.to_string().contains(&value));
        assert!(!format!("{err:?}").contains(&value));
    }
}

#[test]
fn duplicate_recipients_get_one_stanza() {
    let a = OrgKeys::generate();
    let b = OrgKeys::generate();
    let plaintext = design_plaintext();
    let once = seal(&plaintext, &recipients(&[&a, &b])).unwrap();
    let twice = seal(&plaintext, &[a.recipient(), b.recipient(), format!(" {} ", a.recipient()), b.recipient().to_uppercase()]).unwrap();
    // Count X25519 stanzas only: age also adds random "grease" stanzas.
    let stanzas = |c: &[u8]| c.windows(10).filter(|w| w == b"\n-> X25519").count();
    assert_eq!(stanzas(&once), 2);
    assert_eq!(stanzas(&twice), 2);
    assert_eq!(open(&twice, &a).unwrap(), plaintext);
}

#[test]
fn parse_recipient_accepts_our_own() {
    let keys = OrgKeys::generate();
    let recipient = keys.recipient();
    assert!(recipient.starts_with("age1"), "{recipient}");
    assert_eq!(parse_recipient(&recipient).unwrap().to_string(), recipient);
}

#[test]
fn identity_file_round_trip() {
    let keys = OrgKeys::generate();
    let recipient = keys.recipient();
    let text = keys.to_identity_file("Acme Castings GmbH");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], "# factorychain organisation key for Acme Castings GmbH");
    assert!(lines[1].starts_with("# created: 20") && lines[1].ends_with('Z'), "{}", lines[1]);
    assert_eq!(lines[2], format!("# public key: {recipient}"));
    assert!(lines[3].starts_with("AGE-SECRET-KEY-1"));
    assert_eq!(text.matches(&recipient).count(), 1);
    assert_eq!(text.matches(lines[3]).count(), 1);
    assert_eq!(text.matches("AGE-SECRET-KEY-").count(), 1);

    let back = OrgKeys::from_identity_file(&text).unwrap();
    assert_eq!(back.recipient(), recipient);
    let sealed = seal(b"design", &[recipient]).unwrap();
    assert_eq!(open(&sealed, &back).unwrap(), b"design");

    // Windows line endings and blank lines are fine too.
    let crlf = format!("\r\n{}", text.replace('\n', "\r\n"));
    assert_eq!(OrgKeys::from_identity_file(&crlf).unwrap().recipient(), keys.recipient());
}

#[test]
fn identity_file_org_name_cannot_add_lines() {
    let keys = OrgKeys::generate();
    let other = OrgKeys::generate().to_identity_file("x");
    let injected = format!("Evil\n{}", other.lines().last().unwrap());
    let text = keys.to_identity_file(&injected);
    assert_eq!(text.lines().count(), 4, "{text}");
    assert_eq!(OrgKeys::from_identity_file(&text).unwrap().recipient(), keys.recipient());
}

#[test]
fn bad_identity_files_refused_without_echoing_secrets() {
    let a = OrgKeys::generate().to_identity_file("A");
    let b = OrgKeys::generate().to_identity_file("B");
    let secret = a.lines().last().unwrap();
    let check = |text: &str, expect: &str| {
        let err = OrgKeys::from_identity_file(text).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, SealError::BadIdentityFile { .. }), "{err:?}");
        assert!(message.contains(expect), "{message}");
        assert!(!message.contains(&secret[20..]), "{message}");
    };
    check("", "no secret key");
    check("# only a comment\n\n", "no secret key");
    check(&format!("{a}{b}"), "2 secret key lines");
    check(&format!("{a}{secret}\n"), "2 secret key lines");
    check(&format!("{}X\n", &a[..a.len() - 1]), "line 4");
    check(&a.replace("AGE-SECRET-KEY-1", "AGE-SECRET-KEY-2"), "line 4");
    check(&OrgKeys::generate().recipient(), "line 1");
}

#[test]
fn debug_shows_no_secret() {
    let keys = OrgKeys::generate();
    let file = keys.to_identity_file("A");
    let secret = file.lines().last().unwrap();
    let debug = format!("{keys:?}");
    assert!(debug.contains(&keys.recipient()), "{debug}");
    assert!(!debug.to_uppercase().contains(&secret[16..]), "{debug}");
}

#[test]
fn sha256_hex_is_lowercase_hex() {
    let check = |data: &[u8], expect: &str| assert_eq!(sha256_hex(data), expect);
    check(b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check(b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

#[cfg(unix)]
#[test]
fn write_identity_file_is_private_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys").join("acme").join("org.key");
    let keys = OrgKeys::generate();
    write_identity_file(&path, &keys, "Acme").unwrap();

    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let parent_mode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode();
    assert_eq!(parent_mode & 0o077, 0, "{parent_mode:o}");

    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(OrgKeys::from_identity_file(&text).unwrap().recipient(), keys.recipient());

    let err = write_identity_file(&path, &OrgKeys::generate(), "Acme").unwrap_err();
    assert!(matches!(err, SealError::IdentityFileExists { .. }), "{err:?}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "file unchanged");
}
