//! Decoding of the bus message the store writer consumes: a `TelemetryMessage` on
//! subject `fc.<tenant>.telemetry.<machine>`. Anything the writer could not store as
//! it is (undecodable bytes, a subject that disagrees with the payload, series whose
//! columns differ in length, timestamps that overflow, non-finite values, unknown
//! qualities) is refused with a reason; the writer terminates such a message.

use crate::validate::expand;
use fc_proto::v1::{SeriesReadings, TelemetryMessage};
use prost::Message;

/// One reading of a decoded series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodedPoint {
    /// Unix epoch milliseconds.
    pub ts_ms: i64,
    /// Finite value.
    pub value: f64,
    /// Quality class: 1 good, 2 uncertain, 3 bad.
    pub quality: u8,
}

/// One series of a decoded message.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedSeries {
    /// Machine (equal to the subject's).
    pub machine: String,
    /// Metric name.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// Readings in message order.
    pub points: Vec<DecodedPoint>,
}

/// A decoded bus message: the tenant of the subject and payload, and its series.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedMessage {
    /// Tenant (equal to the subject's).
    pub tenant: String,
    /// Series of the message's machine.
    pub series: Vec<DecodedSeries>,
}

/// `(tenant, machine)` of a subject `fc.<tenant>.telemetry.<machine>`.
pub fn parse_subject(subject: &str) -> Option<(&str, &str)> {
    let mut parts = subject.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("fc"), Some(tenant), Some("telemetry"), Some(machine), None) => Some((tenant, machine)),
        _ => None,
    }
}

fn check_series(i: usize, s: &SeriesReadings) -> Result<(), String> {
    if s.timestamp_deltas_ms.len() != s.values.len() {
        return Err(format!("series[{i}] has {} timestamps for {} values", s.timestamp_deltas_ms.len(), s.values.len()));
    }
    if !s.qualities.is_empty() && s.qualities.len() != s.values.len() {
        return Err(format!("series[{i}] has {} qualities for {} values", s.qualities.len(), s.values.len()));
    }
    if let Some(q) = s.qualities.iter().find(|q| !(0..=3).contains(*q)) {
        return Err(format!("series[{i}] has unknown quality {q}"));
    }
    if let Some(v) = s.values.iter().find(|v| !v.is_finite()) {
        return Err(format!("series[{i}] has a non-finite value {v}"));
    }
    let mut ts = s.base_timestamp_ms;
    for d in &s.timestamp_deltas_ms {
        ts = ts.checked_add(*d).ok_or_else(|| format!("series[{i}] timestamps overflow"))?;
    }
    Ok(())
}

/// Decode a bus message, checking it against its subject.
pub fn decode(subject: &str, payload: &[u8]) -> Result<DecodedMessage, String> {
    let msg = TelemetryMessage::decode(payload).map_err(|e| format!("undecodable payload: {e}"))?;
    let Some((tenant, machine)) = parse_subject(subject) else {
        return Err(format!("unexpected subject {subject}"));
    };
    if msg.tenant_id != tenant {
        return Err("payload tenant differs from subject tenant".into());
    }
    let mut series = Vec::with_capacity(msg.series.len());
    for (i, s) in msg.series.iter().enumerate() {
        if s.machine != machine {
            return Err("payload machine differs from subject machine".into());
        }
        check_series(i, s)?;
        let points = expand(s).map(|(ts_ms, value, quality)| DecodedPoint { ts_ms, value, quality }).collect();
        series.push(DecodedSeries { machine: s.machine.clone(), metric: s.metric.clone(), unit: s.unit.clone(), points });
    }
    Ok(DecodedMessage { tenant: msg.tenant_id, series })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(series: SeriesReadings) -> Vec<u8> {
        TelemetryMessage { tenant_id: "t1".into(), device_id: "d".into(), device_seq: 1, received_ms: 0, series: vec![series] }
            .encode_to_vec()
    }

    fn series(base: i64, deltas: Vec<i64>, values: Vec<f64>, qualities: Vec<i32>) -> SeriesReadings {
        SeriesReadings {
            machine: "m1".into(),
            metric: "temp".into(),
            unit: "Cel".into(),
            base_timestamp_ms: base,
            timestamp_deltas_ms: deltas,
            values,
            qualities,
        }
    }

    #[test]
    fn decodes_a_good_message_and_refuses_bad_ones() {
        let ok = decode("fc.t1.telemetry.m1", &message(series(100, vec![0, 5], vec![1.0, 2.0], vec![0, 3]))).unwrap();
        assert_eq!(ok.tenant, "t1");
        assert_eq!(
            ok.series[0].points,
            [DecodedPoint { ts_ms: 100, value: 1.0, quality: 1 }, DecodedPoint { ts_ms: 105, value: 2.0, quality: 3 }]
        );
        let good = message(series(0, vec![0], vec![1.0], vec![]));
        assert!(decode("fc.t2.telemetry.m1", &good).unwrap_err().contains("tenant"));
        assert!(decode("fc.t1.telemetry.m2", &good).unwrap_err().contains("machine"));
        assert!(decode("fc.t1.telemetry", &good).unwrap_err().contains("subject"));
        assert!(decode("fc.t1.telemetry.m1", b"\xff").unwrap_err().contains("undecodable"));
    }

    /// Found while writing the fuzz target `ingest_bus_decode` (its invariants): deltas that
    /// overflow `i64` panicked in `expand` (debug) or wrapped to garbage timestamps
    /// (release); a quality above 255 was stored truncated (`256 as u8 == 0`); columns of
    /// different lengths were silently cut to the shortest.
    #[test]
    fn regression_overflowing_or_inconsistent_series_are_refused() {
        let subject = "fc.t1.telemetry.m1";
        assert!(decode(subject, &message(series(i64::MAX, vec![0, 1], vec![1.0, 2.0], vec![]))).unwrap_err().contains("overflow"));
        assert!(decode(subject, &message(series(0, vec![0], vec![1.0], vec![256]))).unwrap_err().contains("quality"));
        assert!(decode(subject, &message(series(0, vec![0], vec![1.0, 2.0], vec![]))).unwrap_err().contains("timestamps"));
        assert!(decode(subject, &message(series(0, vec![0], vec![f64::NAN], vec![]))).unwrap_err().contains("non-finite"));
    }
}
