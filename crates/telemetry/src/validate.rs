//! From a device's `ReadingBatch` to per-machine bus messages. Every rule a
//! batch must pass lives here, as pure functions; the first broken rule is
//! reported with the path of the bad field (`series[2].values[7]`).

use fc_core::ServiceError;
use fc_proto::v1::{Quality, ReadingBatch, SeriesReadings};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Limits applied to every batch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most readings in one batch.
    pub max_batch_readings: usize,
    /// Largest encoded batch in bytes (gRPC refuses bigger messages before decoding).
    pub max_message_bytes: usize,
    /// Oldest accepted timestamp, relative to now.
    pub max_past_ms: i64,
    /// Newest accepted timestamp, relative to now (clock skew allowance).
    pub max_future_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_batch_readings: 10_000, max_message_bytes: 4 * 1024 * 1024, max_past_ms: 7 * 86_400_000, max_future_ms: 10 * 60_000 }
    }
}

/// A validated batch: one bus message per machine, in machine order.
#[derive(Debug, PartialEq)]
pub struct ValidBatch {
    /// Readings in the batch.
    pub readings: usize,
    /// `(machine, series groups of that machine)`.
    pub machines: Vec<(String, Vec<SeriesReadings>)>,
}

fn valid_machine(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_metric(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b))
}

fn valid_unit(s: &str) -> bool {
    s.len() <= 32 && s.chars().all(|c| !c.is_control())
}

// The field paths of errors (`series[3].values[17]`) are made only when
// there is an error: formatting one per reading cost ingest an eighth of its CPU.

fn check_names(path: &dyn Fn() -> String, machine: &str, metric: &str, unit: &str) -> Result<(), ServiceError> {
    if !valid_machine(machine) {
        return Err(ServiceError::invalid(
            &format!("{}.machine", path()),
            format!("{machine:?} must be 1-64 characters of A-Z a-z 0-9 _ -"),
        ));
    }
    if !valid_metric(metric) {
        return Err(ServiceError::invalid(
            &format!("{}.metric", path()),
            format!("{metric:?} must be 1-128 characters of A-Z a-z 0-9 _ . : / -"),
        ));
    }
    if !valid_unit(unit) {
        return Err(ServiceError::invalid(&format!("{}.unit", path()), "must be at most 32 printable characters"));
    }
    Ok(())
}

fn check_point(path: &dyn Fn() -> String, ts: i64, value: f64, quality: i32, now_ms: i64, limits: &Limits) -> Result<(), ServiceError> {
    if !value.is_finite() {
        return Err(ServiceError::invalid(&path(), format!("value must be finite, got {value}")));
    }
    if ts < now_ms.saturating_sub(limits.max_past_ms) || ts > now_ms.saturating_add(limits.max_future_ms) {
        return Err(ServiceError::invalid(
            &path(),
            format!(
                "timestamp {ts} ms is outside the accepted window [now-{}s, now+{}s] (now is {now_ms})",
                limits.max_past_ms / 1000,
                limits.max_future_ms / 1000
            ),
        ));
    }
    if Quality::try_from(quality).is_err() {
        return Err(ServiceError::invalid(&path(), format!("unknown quality {quality}")));
    }
    Ok(())
}

/// Validate `batch` at `now_ms` and group its readings by machine.
pub fn validate(batch: ReadingBatch, now_ms: i64, limits: &Limits) -> Result<ValidBatch, ServiceError> {
    if batch.device_seq == 0 {
        return Err(ServiceError::invalid("device_seq", "must be greater than 0 (number batches from 1)"));
    }
    let total = batch.readings.len() + batch.series.iter().map(|s| s.values.len()).sum::<usize>();
    if total == 0 {
        return Err(ServiceError::invalid("readings", "the batch holds no reading"));
    }
    if total > limits.max_batch_readings {
        return Err(ServiceError::invalid(
            "readings",
            format!("the batch holds {total} readings; the limit is {}", limits.max_batch_readings),
        ));
    }
    // (machine) -> (metric, unit) -> group
    let mut groups: BTreeMap<String, BTreeMap<(String, String), SeriesReadings>> = BTreeMap::new();
    for (i, s) in batch.series.into_iter().enumerate() {
        let path = || format!("series[{i}]");
        check_names(&path, &s.machine, &s.metric, &s.unit)?;
        if s.timestamp_deltas_ms.len() != s.values.len() {
            return Err(ServiceError::invalid(
                &format!("{}.timestamp_deltas_ms", path()),
                format!("has {} entries for {} values", s.timestamp_deltas_ms.len(), s.values.len()),
            ));
        }
        if !s.qualities.is_empty() && s.qualities.len() != s.values.len() {
            return Err(ServiceError::invalid(
                &format!("{}.qualities", path()),
                format!("has {} entries for {} values (leave it empty for all GOOD)", s.qualities.len(), s.values.len()),
            ));
        }
        let mut ts = s.base_timestamp_ms;
        for (j, (&d, &v)) in s.timestamp_deltas_ms.iter().zip(&s.values).enumerate() {
            ts = ts
                .checked_add(d)
                .ok_or_else(|| ServiceError::invalid(&format!("{}.timestamp_deltas_ms[{j}]", path()), "timestamp overflows"))?;
            let at = || format!("{}.values[{j}]", path());
            check_point(&at, ts, v, s.qualities.get(j).copied().unwrap_or(1), now_ms, limits)?;
        }
        if s.values.is_empty() {
            continue;
        }
        let g = groups.entry(s.machine.clone()).or_default();
        match g.get_mut(&(s.metric.clone(), s.unit.clone())) {
            Some(existing) => append(existing, &s),
            None => {
                // Normal form: the base is the first reading's timestamp. A base far outside
                // the window with a huge first delta is valid input, but summing such deltas
                // later (`absolute_end`) would overflow.
                let mut s = s;
                s.base_timestamp_ms += s.timestamp_deltas_ms[0];
                s.timestamp_deltas_ms[0] = 0;
                g.insert((s.metric.clone(), s.unit.clone()), s);
            }
        }
    }
    for (i, r) in batch.readings.into_iter().enumerate() {
        let path = || format!("readings[{i}]");
        check_names(&path, &r.machine, &r.metric, &r.unit)?;
        check_point(&path, r.timestamp_ms, r.value, r.quality, now_ms, limits)?;
        let g = groups.entry(r.machine.clone()).or_default();
        let s = g.entry((r.metric.clone(), r.unit.clone())).or_insert_with(|| SeriesReadings {
            machine: r.machine.clone(),
            metric: r.metric.clone(),
            unit: r.unit.clone(),
            base_timestamp_ms: 0,
            ..Default::default()
        });
        let single = SeriesReadings {
            base_timestamp_ms: r.timestamp_ms,
            timestamp_deltas_ms: vec![0],
            values: vec![r.value],
            qualities: vec![r.quality],
            ..Default::default()
        };
        append(s, &single);
    }
    let machines = groups.into_iter().map(|(m, g)| (m, g.into_values().collect())).collect();
    Ok(ValidBatch { readings: total, machines })
}

/// Append `more`'s readings to `into` (same series), keeping the delta form.
fn append(into: &mut SeriesReadings, more: &SeriesReadings) {
    let mut last = absolute_end(into);
    let had = into.values.len();
    let mut ts = more.base_timestamp_ms;
    for &d in &more.timestamp_deltas_ms {
        ts += d;
        match last {
            Some(l) => into.timestamp_deltas_ms.push(ts - l),
            None => {
                into.base_timestamp_ms = ts;
                into.timestamp_deltas_ms.push(0);
            }
        }
        last = Some(ts);
    }
    into.values.extend_from_slice(&more.values);
    // Qualities: keep the "empty = all GOOD" form as long as every reading is GOOD.
    let more_q: Vec<i32> = if more.qualities.is_empty() { vec![Quality::Good as i32; more.values.len()] } else { more.qualities.clone() };
    if into.qualities.is_empty() && more_q.iter().all(|&q| q == Quality::Good as i32 || q == 0) {
        return;
    }
    if into.qualities.is_empty() {
        into.qualities = vec![Quality::Good as i32; had];
    }
    into.qualities.extend(more_q);
}

fn absolute_end(s: &SeriesReadings) -> Option<i64> {
    if s.values.is_empty() {
        return None;
    }
    Some(s.base_timestamp_ms + s.timestamp_deltas_ms.iter().sum::<i64>())
}

/// Expand a series group into `(timestamp, value, quality)` readings (quality 1..=3 for a
/// group that passed [`validate`] or `bus::decode`'s checks; never panics on others).
pub fn expand(s: &SeriesReadings) -> impl Iterator<Item = (i64, f64, u8)> + '_ {
    let mut ts = s.base_timestamp_ms;
    s.timestamp_deltas_ms.iter().zip(&s.values).enumerate().map(move |(i, (&d, &v))| {
        ts = ts.wrapping_add(d);
        let q = s.qualities.get(i).copied().unwrap_or(1);
        (ts, v, if q <= 0 { 1 } else { q as u8 })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fc_proto::v1::Reading;

    const NOW: i64 = 1_800_000_000_000;

    fn reading(machine: &str, metric: &str, ts: i64, v: f64) -> Reading {
        Reading { machine: machine.into(), metric: metric.into(), unit: "Cel".into(), timestamp_ms: ts, value: v, quality: 0 }
    }

    fn check(batch: ReadingBatch, expect: Result<usize, &str>) {
        match (validate(batch, NOW, &Limits::default()), expect) {
            (Ok(v), Ok(n)) => assert_eq!(v.readings, n),
            (Err(e), Err(field)) => {
                assert_eq!(e.code, fc_core::ErrorCode::InvalidArgument);
                assert!(e.message.starts_with(field), "{} should name {field}", e.message);
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn rules_name_the_bad_field() {
        let ok = |rs: Vec<Reading>| ReadingBatch { device_seq: 1, readings: rs, series: vec![] };
        check(ok(vec![reading("m1", "temp", NOW, 1.0)]), Ok(1));
        check(ok(vec![reading("m1", "temp", NOW, f64::NAN)]), Err("readings[0]"));
        check(ok(vec![reading("m1", "t", NOW, 1.0), reading("m1", "temp", NOW, f64::INFINITY)]), Err("readings[1]"));
        check(ok(vec![reading("m1", "", NOW, 1.0)]), Err("readings[0].metric"));
        check(ok(vec![reading("m 1", "x", NOW, 1.0)]), Err("readings[0].machine"));
        check(ok(vec![reading("m1", "x", NOW - 8 * 86_400_000, 1.0)]), Err("readings[0]"));
        check(ok(vec![reading("m1", "x", NOW + 11 * 60_000, 1.0)]), Err("readings[0]"));
        check(ok(vec![reading("m1", "x", NOW + 9 * 60_000, 1.0)]), Ok(1));
        check(ok(vec![]), Err("readings"));
        check(ok((0..10_001).map(|i| reading("m", "x", NOW - i, 1.0)).collect()), Err("readings"));
        check(ReadingBatch { device_seq: 0, readings: vec![reading("m1", "x", NOW, 1.0)], series: vec![] }, Err("device_seq"));
        let mut bad_q = reading("m1", "x", NOW, 1.0);
        bad_q.quality = 9;
        check(ok(vec![bad_q]), Err("readings[0]"));
        let s = |deltas: Vec<i64>, values: Vec<f64>| ReadingBatch {
            device_seq: 1,
            readings: vec![],
            series: vec![SeriesReadings {
                machine: "m".into(),
                metric: "x".into(),
                unit: "".into(),
                base_timestamp_ms: NOW - 1000,
                timestamp_deltas_ms: deltas,
                values,
                qualities: vec![],
            }],
        };
        check(s(vec![0, 10, 10], vec![1.0, 2.0, 3.0]), Ok(3));
        check(s(vec![0, 10], vec![1.0, 2.0, 3.0]), Err("series[0].timestamp_deltas_ms"));
        check(s(vec![0, 10, 10], vec![1.0, f64::NEG_INFINITY, 3.0]), Err("series[0].values[1]"));
        check(s(vec![0, i64::MAX], vec![1.0, 2.0]), Err("series[0].timestamp_deltas_ms[1]"));
    }

    #[test]
    fn readings_are_grouped_by_machine_and_series_losslessly() {
        let mut r2 = reading("m2", "p", NOW - 5, 5.0);
        r2.quality = Quality::Bad as i32;
        let batch = ReadingBatch {
            device_seq: 7,
            readings: vec![reading("m1", "t", NOW - 10, 1.0), r2, reading("m1", "t", NOW - 20, 2.0)],
            series: vec![SeriesReadings {
                machine: "m1".into(),
                metric: "t".into(),
                unit: "Cel".into(),
                base_timestamp_ms: NOW - 100,
                timestamp_deltas_ms: vec![0, 1],
                values: vec![7.0, 8.0],
                qualities: vec![],
            }],
        };
        let v = validate(batch, NOW, &Limits::default()).unwrap();
        assert_eq!(v.readings, 5);
        assert_eq!(v.machines.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(), ["m1", "m2"]);
        let m1: Vec<_> = expand(&v.machines[0].1[0]).collect();
        assert_eq!(m1, vec![(NOW - 100, 7.0, 1), (NOW - 99, 8.0, 1), (NOW - 10, 1.0, 1), (NOW - 20, 2.0, 1)]);
        let m2: Vec<_> = expand(&v.machines[1].1[0]).collect();
        assert_eq!(m2, vec![(NOW - 5, 5.0, 3)]);
    }

    /// A series whose base lies far before the window and whose first delta brings it
    /// back is valid, but its deltas sum past `i64::MAX`: appending a second group of the
    /// same series to it overflowed in `absolute_end` (a panic in debug builds).
    #[test]
    fn regression_far_base_then_append_does_not_overflow() {
        let far = SeriesReadings {
            machine: "m".into(),
            metric: "x".into(),
            unit: "".into(),
            base_timestamp_ms: NOW - i64::MAX,
            timestamp_deltas_ms: vec![i64::MAX, 5],
            values: vec![1.0, 2.0],
            qualities: vec![],
        };
        let batch = ReadingBatch { device_seq: 1, readings: vec![reading("m", "x", NOW + 7, 3.0)], series: vec![far] };
        let mut batch = batch;
        batch.readings[0].unit = "".into();
        let v = validate(batch, NOW, &Limits::default()).unwrap();
        let points: Vec<_> = expand(&v.machines[0].1[0]).collect();
        assert_eq!(points, vec![(NOW, 1.0, 1), (NOW + 5, 2.0, 1), (NOW + 7, 3.0, 1)]);
        assert_eq!(v.machines[0].1[0].timestamp_deltas_ms[0], 0);
    }
}
