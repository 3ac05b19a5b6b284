//! The settlement entry decoder `fc_ledger::entry::Entry::from_bytes`. Invariant: an
//! accepted entry is canonical: it encodes to exactly the input, which decodes to it again.
#![no_main]

use fc_ledger::entry::Entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Entry::from_bytes(data) {
        let bytes = entry.to_bytes();
        assert_eq!(bytes, data, "decode then encode gives the input back");
        assert_eq!(Entry::from_bytes(&bytes).unwrap(), entry);
    }
});
