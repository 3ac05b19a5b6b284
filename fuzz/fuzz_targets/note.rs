//! Signed notes and checkpoints on any UTF-8 text: `Verifier::from_vkey`,
//! `Checkpoint::parse`, `open_note` (with a fixed known key; the seeds hold notes it
//! signed). Invariants: an accepted verifier key re-serialises to a key that parses to the
//! same verifier; an accepted checkpoint body is canonical (`to_body` gives the input back);
//! an opened note names only the known key and its text, signed again, opens again.
#![no_main]

use fc_ledger::note::{Checkpoint, Signer, Verifier, open_note, sign_note};
use libfuzzer_sys::fuzz_target;

/// The key the seed notes are signed with (see README.md).
fn signer() -> Signer {
    Signer::from_seed("fuzz.factorychain.test/log", [7; 32]).unwrap()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(v) = Verifier::from_vkey(text) {
        assert_eq!(Verifier::from_vkey(&v.verifier_key()).unwrap(), v);
    }
    if let Ok(cp) = Checkpoint::parse(text) {
        assert_eq!(cp.to_body(), text, "one checkpoint, one spelling");
    }
    let signer = signer();
    let verifier = signer.verifier();
    if let Ok((body, names)) = open_note(text, std::slice::from_ref(&verifier)) {
        assert!(!names.is_empty() && names.iter().all(|n| n == signer.name()));
        assert!(text.starts_with(&body) && body.ends_with('\n'));
        let again = sign_note(&body, &[&signer]).expect("an opened note's text can be signed");
        assert_eq!(open_note(&again, &[verifier]).unwrap().0, body);
        if let Ok(cp) = Checkpoint::parse(&body) {
            assert_eq!(cp.to_body(), body);
        }
    }
});
