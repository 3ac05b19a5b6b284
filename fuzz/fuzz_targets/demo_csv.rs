//! The dataset CSV parsers of `fc-demo` (`parse_steel`, `parse_temperature`) and the
//! timestamp parser they use. Invariants: every value returned is finite, the steel
//! parser returns its six series of equal length, and an accepted timestamp is one that
//! the calendar knows.
#![no_main]

use fc_demo::{parse_local, parse_steel, parse_temperature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(series) = parse_steel(data) {
        assert_eq!(series.len(), 6);
        assert!(series.iter().all(|s| s.3.len() == series[0].3.len()));
        assert!(series.iter().flat_map(|s| &s.3).all(|p| p.value.is_finite()));
    }
    if let Ok(series) = parse_temperature(data) {
        assert!(series.iter().flat_map(|s| &s.3).all(|p| p.value.is_finite()));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ms) = parse_local(text, 0) {
            // Years 0000-9999: within about +-320,000 years' worth of milliseconds.
            assert!(ms.unsigned_abs() < 400_000_000_000_000, "{text:?} -> {ms}");
        }
    }
});
