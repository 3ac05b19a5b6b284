//! Raw bytes -> `ReadingBatch` (prost) -> `fc_telemetry::validate::validate`.
//! Invariants of an accepted batch: it respects the limits (count, window, finite values,
//! known qualities), its groups are in normal delta form, and what ingest would publish
//! for it decodes back (`fc_telemetry::bus::decode`) to the same readings.
#![no_main]

use fc_proto::v1::{ReadingBatch, TelemetryMessage};
use fc_telemetry::bus;
use fc_telemetry::validate::{Limits, expand, validate};
use libfuzzer_sys::fuzz_target;
use prost::Message;

const NOW: i64 = 1_800_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = ReadingBatch::decode(data) else { return };
    let limits = Limits { max_batch_readings: 1000, ..Limits::default() };
    let Ok(valid) = validate(batch, NOW, &limits) else { return };
    assert!(valid.readings > 0 && valid.readings <= limits.max_batch_readings);
    assert!(valid.machines.windows(2).all(|w| w[0].0 < w[1].0), "machines in order, once each");
    let mut count = 0;
    for (machine, series) in &valid.machines {
        for s in series {
            assert_eq!(&s.machine, machine);
            assert_eq!(s.timestamp_deltas_ms.len(), s.values.len());
            assert!(s.qualities.is_empty() || s.qualities.len() == s.values.len());
            assert_eq!(s.timestamp_deltas_ms.first(), Some(&0), "normal delta form");
            for (ts, v, q) in expand(s) {
                assert!(v.is_finite());
                assert!((NOW - limits.max_past_ms..=NOW + limits.max_future_ms).contains(&ts), "{ts} outside the window");
                assert!((1..=3).contains(&q));
                count += 1;
            }
        }
        // What ingest publishes for this machine, the store writer decodes to the same readings.
        let msg =
            TelemetryMessage { tenant_id: "t1".into(), device_id: "d1".into(), device_seq: 1, received_ms: NOW, series: series.clone() };
        let decoded = bus::decode(&format!("fc.t1.telemetry.{machine}"), &msg.encode_to_vec()).expect("a validated batch decodes");
        for (d, s) in decoded.series.iter().zip(series) {
            let want: Vec<_> = expand(s).collect();
            let got: Vec<_> = d.points.iter().map(|p| (p.ts_ms, p.value, p.quality)).collect();
            assert_eq!(got, want);
        }
    }
    assert_eq!(count, valid.readings);
});
