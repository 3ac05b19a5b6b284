//! The store writer's bus-message decode: (subject, payload) -> `fc_telemetry::bus::decode`.
//! The first byte chooses the subject: even, the one the payload's own tenant and first
//! machine name (so the checks past the subject are reached); odd, a fixed one.
//! Invariants of an accepted message: tenant and machines match the subject, points are
//! finite with quality 1..=3, one point per value, timestamps are base + running deltas.
#![no_main]

use fc_proto::v1::TelemetryMessage;
use fc_telemetry::bus::{decode, parse_subject};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, payload)) = data.split_first() else { return };
    let subject = match (mode % 2, TelemetryMessage::decode(payload)) {
        (0, Ok(m)) => format!("fc.{}.telemetry.{}", m.tenant_id, m.series.first().map(|s| s.machine.as_str()).unwrap_or("m1")),
        _ => "fc.t1.telemetry.m1".to_owned(),
    };
    let Ok(decoded) = decode(&subject, payload) else { return };
    let (tenant, machine) = parse_subject(&subject).expect("an accepted subject parses");
    assert_eq!(decoded.tenant, tenant);
    let msg = TelemetryMessage::decode(payload).expect("accepted payload decodes");
    assert_eq!(decoded.series.len(), msg.series.len());
    for (d, s) in decoded.series.iter().zip(&msg.series) {
        assert_eq!(d.machine, machine);
        assert_eq!(d.points.len(), s.values.len());
        let mut ts = s.base_timestamp_ms;
        for (p, delta) in d.points.iter().zip(&s.timestamp_deltas_ms) {
            ts = ts.checked_add(*delta).expect("accepted timestamps do not overflow");
            assert_eq!(p.ts_ms, ts);
            assert!(p.value.is_finite());
            assert!((1..=3).contains(&p.quality));
        }
    }
});
