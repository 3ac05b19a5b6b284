//! `fc_ledger::pain001::parse` on any UTF-8 text. Invariants of an accepted document:
//! every `NbOfTxs` and `CtrlSum` agrees with its transactions, amounts are above zero in
//! the one accepted currency, and parsing is deterministic.
#![no_main]

use fc_ledger::pain001::{CURRENCY, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else { return };
    let Ok(doc) = parse(xml) else { return };
    let mut count = 0u64;
    let mut sum = 0u64;
    for block in &doc.payment_information {
        assert_eq!(block.number_of_transactions, block.transfers.len() as u64);
        let block_sum: u64 = block.transfers.iter().map(|t| t.amount).sum();
        assert_eq!(block.control_sum, block_sum);
        for t in &block.transfers {
            assert!(t.amount > 0);
            assert_eq!(t.currency, CURRENCY);
        }
        count += block.transfers.len() as u64;
        sum += block_sum;
    }
    assert_eq!(doc.number_of_transactions, count);
    assert_eq!(doc.control_sum, sum);
    assert_eq!(parse(xml).unwrap(), doc);
});
