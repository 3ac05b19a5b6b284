//! The proof JSON `factorychain verify inclusion|consistency` reads
//! (`fc_ledger::proof`). Invariants: an accepted proof writes back to JSON that parses to
//! the same proof, and verifying it never panics.
#![no_main]

use fc_ledger::proof::{ConsistencyProof, InclusionProof};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else { return };
    if let Ok(p) = InclusionProof::parse(json) {
        assert_eq!(InclusionProof::parse(&p.to_json()).unwrap(), p);
        let _ = p.verify();
    }
    if let Ok(p) = ConsistencyProof::parse(json) {
        assert_eq!(ConsistencyProof::parse(&p.to_json()).unwrap(), p);
        let _ = p.verify();
    }
});
