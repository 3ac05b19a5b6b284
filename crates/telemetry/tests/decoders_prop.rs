//! Property tests of the two telemetry decoders on arbitrary input (the same properties
//! the fuzz targets `ingest_validate` and `ingest_bus_decode` check, at a few hundred
//! cases so `make test` stays fast).

use fc_proto::v1::{Reading, ReadingBatch, SeriesReadings, TelemetryMessage};
use fc_telemetry::bus;
use fc_telemetry::validate::{Limits, expand, validate};
use proptest::prelude::*;
use prost::Message;

const NOW: i64 = 1_800_000_000_000;

fn name() -> impl Strategy<Value = String> {
    prop_oneof![Just("m1".to_owned()), Just("m2".to_owned()), Just("temp".to_owned()), "[a-z.: ]{0,4}"]
}

fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![NOW - 1_000_000..NOW + 1_000_000, any::<i64>()]
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![-1e6..1e6f64, any::<f64>()]
}

fn reading() -> impl Strategy<Value = Reading> {
    (name(), name(), prop_oneof![Just(String::new()), name()], timestamp(), value(), -1..5i32)
        .prop_map(|(machine, metric, unit, timestamp_ms, value, quality)| Reading { machine, metric, unit, timestamp_ms, value, quality })
}

fn series() -> impl Strategy<Value = SeriesReadings> {
    (name(), name(), timestamp(), prop::collection::vec((prop_oneof![0..1000i64, any::<i64>()], value(), -1..5i32), 0..6), any::<bool>())
        .prop_map(|(machine, metric, base, points, with_q)| SeriesReadings {
            machine,
            metric,
            unit: String::new(),
            base_timestamp_ms: base,
            timestamp_deltas_ms: points.iter().map(|p| p.0).collect(),
            values: points.iter().map(|p| p.1).collect(),
            qualities: if with_q { points.iter().map(|p| p.2).collect() } else { vec![] },
        })
}

fn batch() -> impl Strategy<Value = ReadingBatch> {
    (0..3u64, prop::collection::vec(reading(), 0..6), prop::collection::vec(series(), 0..4))
        .prop_map(|(device_seq, readings, series)| ReadingBatch { device_seq, readings, series })
}

/// The invariants of an accepted batch, and the ingest -> bus -> writer round trip.
fn check_accepted(batch: ReadingBatch, limits: &Limits) {
    let Ok(valid) = validate(batch, NOW, limits) else { return };
    assert!(valid.readings > 0 && valid.readings <= limits.max_batch_readings);
    let mut count = 0;
    for (machine, series) in &valid.machines {
        let msg =
            TelemetryMessage { tenant_id: "t1".into(), device_id: "d".into(), device_seq: 1, received_ms: NOW, series: series.clone() };
        let decoded = bus::decode(&format!("fc.t1.telemetry.{machine}"), &msg.encode_to_vec()).expect("validated batches decode");
        for (s, d) in series.iter().zip(&decoded.series) {
            assert_eq!(s.timestamp_deltas_ms.first(), Some(&0));
            let want: Vec<_> = expand(s).collect();
            let got: Vec<_> = d.points.iter().map(|p| (p.ts_ms, p.value, p.quality)).collect();
            assert_eq!(got, want);
            for (ts, v, q) in want {
                assert!(v.is_finite() && (1..=3).contains(&q));
                assert!(ts >= NOW - limits.max_past_ms && ts <= NOW + limits.max_future_ms);
                count += 1;
            }
        }
    }
    assert_eq!(count, valid.readings);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn validate_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(batch) = ReadingBatch::decode(&bytes[..]) {
            check_accepted(batch, &Limits::default());
        }
    }

    #[test]
    fn accepted_batches_respect_the_limits_and_round_trip_through_the_bus(batch in batch(), max in 1..8usize) {
        check_accepted(batch, &Limits { max_batch_readings: max, ..Limits::default() });
    }

    #[test]
    fn bus_decode_never_panics(subject in "fc\\.t1\\.telemetry\\.m[12]|[a-z.]{0,12}", bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(d) = bus::decode(&subject, &bytes) {
            prop_assert_eq!(d.tenant, "t1");
            prop_assert!(d.series.iter().flat_map(|s| &s.points).all(|p| p.value.is_finite() && (1..=3).contains(&p.quality)));
        }
    }

    #[test]
    fn bus_decode_of_arbitrary_series_never_panics(series in prop::collection::vec(series(), 0..3)) {
        let payload = TelemetryMessage { tenant_id: "t1".into(), device_id: "d".into(), device_seq: 1, received_ms: NOW, series }.encode_to_vec();
        for subject in ["fc.t1.telemetry.m1", "fc.t1.telemetry.m2"] {
            if let Ok(d) = bus::decode(subject, &payload) {
                prop_assert!(d.series.iter().flat_map(|s| &s.points).all(|p| p.value.is_finite() && (1..=3).contains(&p.quality)));
            }
        }
    }
}

/// Writes the seed corpus of the fuzz targets `ingest_validate` and `ingest_bus_decode`
/// (run it by hand after a format change: `cargo test -p fc-telemetry --test decoders_prop -- --ignored`).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let reading = |machine: &str, ts: i64, quality: i32| Reading {
        machine: machine.into(),
        metric: "temp".into(),
        unit: "Cel".into(),
        timestamp_ms: ts,
        value: 21.5,
        quality,
    };
    let series = |machine: &str, qualities: Vec<i32>| SeriesReadings {
        machine: machine.into(),
        metric: "energy.usage".into(),
        unit: "kW.h".into(),
        base_timestamp_ms: NOW - 60_000,
        timestamp_deltas_ms: vec![0, 15_000, 15_000],
        values: vec![3.17, 4.0, 3.24],
        qualities,
    };
    let batches = [
        ReadingBatch { device_seq: 1, readings: vec![reading("m1", NOW, 0)], series: vec![] },
        ReadingBatch {
            device_seq: 2,
            readings: vec![reading("m1", NOW - 10, 1), reading("m2", NOW - 5, 3)],
            series: vec![series("m1", vec![])],
        },
        ReadingBatch { device_seq: 3, readings: vec![], series: vec![series("m2", vec![1, 2, 3]), series("m2", vec![])] },
    ];
    let dir = root.join("ingest_validate");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, b) in batches.iter().enumerate() {
        assert!(validate(b.clone(), NOW, &Limits::default()).is_ok());
        std::fs::write(dir.join(format!("seed-{i}")), b.encode_to_vec()).unwrap();
    }
    let dir = root.join("ingest_bus_decode");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, b) in batches.iter().enumerate() {
        let valid = validate(b.clone(), NOW, &Limits::default()).unwrap();
        let (_, series) = valid.machines.into_iter().next().unwrap();
        let msg = TelemetryMessage { tenant_id: "t1".into(), device_id: "d1".into(), device_seq: b.device_seq, received_ms: NOW, series };
        // First byte 0: the target derives the subject from the payload.
        let mut seed = vec![0u8];
        seed.extend(msg.encode_to_vec());
        std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
    }
}
