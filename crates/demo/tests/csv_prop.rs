//! Property tests of the dataset CSV parsers on arbitrary input (the properties of the
//! fuzz target `demo_csv`), and regression tests of the inputs that used to panic.

use fc_demo::{parse_local, parse_steel, parse_temperature};
use proptest::prelude::*;

const STEEL_HEADER: &str = "timestamp_end_local,Usage_kWh,Lagging_Current_Reactive.Power_kVarh,Leading_Current_Reactive_Power_kVarh,CO2(tCO2),Lagging_Current_Power_Factor,Leading_Current_Power_Factor,NSM\n";

fn check(bytes: &[u8]) {
    if let Ok(series) = parse_steel(bytes) {
        assert_eq!(series.len(), 6);
        assert!(series.iter().all(|s| s.3.len() == series[0].3.len()));
        assert!(series.iter().flat_map(|s| &s.3).all(|p| p.value.is_finite()));
    }
    if let Ok(series) = parse_temperature(bytes) {
        assert!(series.iter().flat_map(|s| &s.3).all(|p| p.value.is_finite()));
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = parse_local(text, 9);
    }
}

#[test]
fn small_files_parse() {
    let steel = format!("{STEEL_HEADER}2018-01-01T00:15:00,3.17,2.95,0,0,73.21,100,900\n2018-01-01T00:30:00,4,4.46,0,0,66.77,100,1800\n");
    let s = parse_steel(steel.as_bytes()).unwrap();
    assert_eq!(s[0].3.len(), 2);
    assert_eq!(s[0].3[0].ts_ms, 1_514_733_300_000);
    let t = parse_temperature(&b"timestamp,value\n2013-12-02 21:15:00,73.96732207\n"[..]).unwrap();
    assert_eq!(t[0].3[0].ts_ms, 1_386_018_900_000);
}

/// Inputs that panicked (a multi-byte character where `parse_local` slices, a temperature
/// file of one column) or were accepted wrongly (a `NaN` value, an hour 99).
#[test]
fn regression_malformed_rows_are_errors_not_panics() {
    assert!(parse_local("2018-01-01T00:1é:00xx", 0).is_err());
    assert!(parse_local("2018-01-01T99:00:00", 0).is_err());
    assert!(parse_temperature(&b"timestamp\n2013-12-02 21:15:00\n"[..]).is_err());
    assert!(parse_temperature(&b"timestamp,value\n2013-12-02 21:15:00,NaN\n"[..]).is_err());
    let steel = format!("{STEEL_HEADER}2018-01-01T00:15:00,inf,2.95,0,0,73.21,100,900\n");
    assert!(parse_steel(steel.as_bytes()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        check(&bytes);
    }

    #[test]
    fn arbitrary_rows_never_panic(rows in prop::collection::vec("[0-9T :,.eE+-]{0,40}|\\PC{0,30}", 0..5)) {
        let body = rows.join("\n");
        check(format!("{STEEL_HEADER}{body}").as_bytes());
        check(format!("timestamp,value\n{body}").as_bytes());
    }

    #[test]
    fn timestamps_of_the_dataset_shape_round_trip(y in 1970..2100i64, mo in 1..13i64, d in 1..29i64, h in 0..24i64, mi in 0..60i64, s in 0..60i64) {
        let t = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
        let ms = parse_local(&t, 0).unwrap();
        prop_assert_eq!(ms.rem_euclid(86_400_000), ((h * 60 + mi) * 60 + s) * 1000);
    }
}
