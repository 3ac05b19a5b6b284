//! Backtests: run a rule over recorded readings with the live engine and list the
//! alarms it would have raised. The CLI feeds it a CSV; the service feeds it history.
//!
//! Timestamps are RFC 3339 (`2014-01-27T12:25:00Z`, `+09:00`), the same without a zone
//! or with a space for the `T` (taken as UTC), a date alone (midnight UTC), or Unix time
//! as an integer (seconds, or milliseconds from 12 digits on).

use crate::engine::{Reading, RuleRunner, TransitionKind};
use crate::rule::Rule;
use serde::Serialize;
use std::collections::HashMap;

/// Most rows a CSV backtest reads.
pub const MAX_ROWS: usize = 10_000_000;

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BacktestError {
    /// The CSV is not usable; the message names the line and column.
    #[error("{0}")]
    Csv(String),
    /// The rule is not valid.
    #[error(transparent)]
    Rule(#[from] crate::rule::RuleError),
}

/// Readings in rows: a time column and one or more value columns.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The time column's header.
    pub time_column: String,
    /// The value columns' headers (metric names).
    pub columns: Vec<String>,
    /// Rows in file order: time and one value per column (empty cells are `None`).
    pub rows: Vec<(i64, Vec<Option<f64>>)>,
}

const TIME_NAMES: [&str; 6] = ["timestamp", "time", "datetime", "date", "ts", "timestamp_end_local"];

/// Read a CSV with a header row. Without `time_column`, the first column named like a
/// time (timestamp, time, datetime, date, ts) is used, else the first column; without
/// `value_column`, every other column whose first value is a number.
pub fn read_csv(input: impl std::io::Read, time_column: Option<&str>, value_column: Option<&str>) -> Result<Table, BacktestError> {
    let bad = BacktestError::Csv;
    let mut rdr = csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::All).from_reader(input);
    let headers: Vec<String> = rdr.headers().map_err(|e| bad(format!("header: {e}")))?.iter().map(str::to_owned).collect();
    let find = |name: &str, what: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| bad(format!("no {what} column {name:?}; the header has {}", headers.join(", "))))
    };
    let t = match time_column {
        Some(name) => find(name, "time")?,
        None => headers
            .iter()
            .position(|h| TIME_NAMES.contains(&h.to_ascii_lowercase().as_str()))
            .or_else(|| headers.iter().position(|h| h.to_ascii_lowercase().contains("time")))
            .unwrap_or(0),
    };
    let mut records = rdr.records();
    let mut rows = Vec::new();
    let mut line = 1usize;
    let first = records.next().transpose().map_err(|e| bad(format!("line 2: {e}")))?;
    let cols: Vec<usize> = match (value_column, &first) {
        (Some(name), _) => vec![find(name, "value")?],
        (None, Some(rec)) => (0..headers.len()).filter(|&i| i != t && rec.get(i).is_some_and(|v| v.parse::<f64>().is_ok())).collect(),
        (None, None) => Vec::new(),
    };
    if first.is_some() && cols.is_empty() {
        return Err(bad("no numeric value column; name one with --value-column".into()));
    }
    for rec in first.into_iter().map(Ok).chain(records) {
        line += 1;
        let rec = rec.map_err(|e| bad(format!("line {line}: {e}")))?;
        if rows.len() >= MAX_ROWS {
            return Err(bad(format!("more than {MAX_ROWS} rows")));
        }
        let ts_text = rec.get(t).unwrap_or("");
        let ts = parse_timestamp(ts_text)
            .ok_or_else(|| bad(format!("line {line}: {:?} is not a timestamp (RFC 3339, or Unix seconds/ms)", ts_text)))?;
        let mut values = Vec::with_capacity(cols.len());
        for &c in &cols {
            let cell = rec.get(c).unwrap_or("");
            values.push(if cell.is_empty() {
                None
            } else {
                let v: f64 = cell.parse().map_err(|_| bad(format!("line {line}, column {}: {cell:?} is not a number", headers[c])))?;
                if !v.is_finite() {
                    return Err(bad(format!("line {line}, column {}: {cell:?} is not a finite number", headers[c])));
                }
                Some(v)
            });
        }
        rows.push((ts, values));
    }
    Ok(Table { time_column: headers[t].clone(), columns: cols.iter().map(|&c| headers[c].clone()).collect(), rows })
}

/// One alarm of a backtest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alarm {
    /// RFC 3339, UTC.
    pub raised_at: String,
    /// RFC 3339, UTC; `null` while still open at the end of the data.
    pub cleared_at: Option<String>,
    /// The highest severity the alarm reached.
    pub severity: String,
    /// Why it was raised, in words.
    pub reason: String,
    /// The metric (rules that run per series) or `null` (per machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// The machine (backtests over stored history; a CSV is one machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
}

/// What a backtest found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Readings judged.
    pub readings: usize,
    /// Alarms in the order raised.
    pub alarms: Vec<Alarm>,
}

/// Run `rule` over a table as the live service would, as one machine (the rule's machine
/// pattern is not applied). A rule naming one metric reads the table's only value column
/// whatever its header; otherwise each column is the metric its header names.
pub fn run(rule: &Rule, table: &Table, unit: &str) -> Result<Report, BacktestError> {
    let mut rule = rule.clone();
    rule.machine.clear();
    let metrics = rule.metrics();
    let names: Vec<String> = match (metrics.as_slice(), table.columns.as_slice()) {
        ([m], [_]) if !m.contains(['*', '?']) => vec![(*m).to_owned()],
        _ => table.columns.clone(),
    };
    let readings = table.rows.iter().flat_map(|(ts, values)| {
        names
            .iter()
            .zip(values)
            .filter_map(move |(name, v)| v.map(|value| Reading { machine: "backtest", metric: name, unit, ts_ms: *ts, value }))
    });
    replay(rule, readings, false)
}

/// Run `rule` over readings of stored history (every machine and metric it watches, in
/// time order) as the live service would, time passing with the readings (so lost
/// heartbeats are found too).
pub fn run_history<'a>(rule: &Rule, readings: impl Iterator<Item = Reading<'a>>) -> Result<Report, BacktestError> {
    replay(rule.clone(), readings, true)
}

fn replay<'a>(rule: Rule, readings: impl Iterator<Item = Reading<'a>>, name_machines: bool) -> Result<Report, BacktestError> {
    let mut runner = RuleRunner::new(rule)?;
    let mut out = Vec::new();
    let mut report = Report { readings: 0, alarms: Vec::new() };
    let mut open: HashMap<(String, Option<String>, i64), usize> = HashMap::new();
    for r in readings {
        report.readings += 1;
        if name_machines {
            runner.tick(r.ts_ms, &mut out);
        }
        runner.observe(&r, &mut out);
        for t in out.drain(..) {
            let key = (t.machine.clone(), t.metric.clone(), t.raised_at_ms);
            match t.kind {
                TransitionKind::Raised => {
                    open.insert(key, report.alarms.len());
                    report.alarms.push(Alarm {
                        raised_at: rfc3339(t.at_ms),
                        cleared_at: None,
                        severity: t.severity.to_string(),
                        reason: t.reason,
                        metric: t.metric,
                        machine: name_machines.then_some(t.machine),
                    });
                }
                TransitionKind::Escalated => {
                    if let Some(&i) = open.get(&key) {
                        report.alarms[i].severity = t.severity.to_string();
                    }
                }
                TransitionKind::Cleared => {
                    if let Some(i) = open.remove(&key) {
                        report.alarms[i].cleared_at = Some(rfc3339(t.at_ms));
                    }
                }
                TransitionKind::Suppressed => {}
            }
        }
    }
    Ok(report)
}

/// Unix ms of a timestamp (see the module docs); `None` if it is none of those shapes.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().enumerate().all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-')) {
        let n: i64 = s.parse().ok()?;
        let digits = s.trim_start_matches('-').len();
        return if digits >= 12 { Some(n) } else { n.checked_mul(1000) };
    }
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().ok() } else { None }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(num(0..4)?).ok()?, month, u8::try_from(num(8..10)?).ok()?).ok()?;
    let days = i64::from(date.to_julian_day() - time::Date::from_calendar_date(1970, time::Month::January, 1).ok()?.to_julian_day());
    let mut ms = days * 86_400_000;
    let mut rest = &s[10..];
    if rest.is_empty() {
        return Some(ms);
    }
    if !rest.starts_with(['T', 't', ' ']) {
        return None;
    }
    rest = &rest[1..];
    let rb = rest.as_bytes();
    if rb.len() < 5 || rb[2] != b':' {
        return None;
    }
    let hm = |r: std::ops::Range<usize>| rest.get(r).filter(|p| p.bytes().all(|c| c.is_ascii_digit())).and_then(|p| p.parse::<i64>().ok());
    let (h, m) = (hm(0..2)?, hm(3..5)?);
    let mut sec = 0;
    let mut i = 5;
    if rb.get(5) == Some(&b':') {
        sec = hm(6..8)?;
        i = 8;
    }
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    ms += (h * 3600 + m * 60 + sec) * 1000;
    if rb.get(i) == Some(&b'.') {
        let frac: String = rest[i + 1..].chars().take_while(char::is_ascii_digit).collect();
        if frac.is_empty() {
            return None;
        }
        let padded = format!("{frac:0<3}");
        ms += padded[..3].parse::<i64>().ok()?;
        i += 1 + frac.len();
    }
    let zone = rest[i..].trim_start();
    let offset_min = match zone {
        "" | "Z" | "z" | "UTC" => 0,
        z if z.starts_with(['+', '-']) => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let (oh, om): (i64, i64) = (digits[..2].parse().ok()?, digits[2..].parse().ok()?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 60 + om)
        }
        _ => return None,
    };
    Some(ms - offset_min * 60_000)
}

/// RFC 3339 in UTC (`2014-01-27T12:25:00Z`, with milliseconds when there are any).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let Ok(dt) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        return format!("{ms}ms");
    };
    let base =
        format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", dt.year(), u8::from(dt.month()), dt.day(), dt.hour(), dt.minute(), dt.second());
    if milli == 0 { format!("{base}Z") } else { format!("{base}.{milli:03}Z") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn history_names_machines_and_finds_lost_heartbeats_between_readings() {
        let rule: Rule =
            serde_json::from_str(r#"{"id":"quiet","machine":"press-*","condition":{"type":"no_data","after_ms":60000}}"#).unwrap();
        // press-1 reports every 10 s but falls silent for 5 minutes; press-2 never does.
        let mut rows: Vec<(i64, &str)> = Vec::new();
        for i in 0..100i64 {
            let t = 1_000_000 + i * 10_000;
            if !(20..50).contains(&i) {
                rows.push((t, "press-1"));
            }
            rows.push((t, "press-2"));
        }
        let readings = rows.iter().map(|(t, m)| Reading { machine: m, metric: "temp", unit: "Cel", ts_ms: *t, value: 20.0 });
        let report = run_history(&rule, readings).unwrap();
        assert_eq!(report.readings, 170);
        assert_eq!(report.alarms.len(), 1, "{:?}", report.alarms);
        let a = &report.alarms[0];
        assert_eq!(a.machine.as_deref(), Some("press-1"));
        assert!(a.cleared_at.is_some(), "cleared when press-1 reports again");
    }

    #[test]
    fn timestamps_of_every_shape() {
        let base = 1_390_825_500_000; // 2014-01-27T12:25:00Z
        for (s, want) in [
            ("2014-01-27T12:25:00Z", Some(base)),
            ("2014-01-27 12:25:00", Some(base)),
            ("2014-01-27T12:25", Some(base)),
            ("2014-01-27T21:25:00+09:00", Some(base)),
            ("2014-01-27T04:25:00-0800", Some(base)),
            ("2014-01-27T12:25:00.5Z", Some(base + 500)),
            ("2014-01-27T12:25:00.123456Z", Some(base + 123)),
            ("2014-01-27", Some(base - (12 * 60 + 25) * 60_000)),
            ("1390825500", Some(base)),
            ("1390825500000", Some(base)),
            ("2014-02-30T00:00:00", None),
            ("2014-01-27T25:00:00", None),
            ("2014-01-27T12:25:00+9", None),
            ("yesterday", None),
            ("2014-01-27X12:25", None),
            ("", None),
            ("2014-1-27", None),
        ] {
            assert_eq!(parse_timestamp(s), want, "{s}");
        }
        assert_eq!(rfc3339(base), "2014-01-27T12:25:00Z");
        assert_eq!(rfc3339(base + 7), "2014-01-27T12:25:00.007Z");
        assert_eq!(rfc3339(-1000), "1969-12-31T23:59:59Z");
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(ms in -2_000_000_000_000i64..8_000_000_000_000) {
            prop_assert_eq!(parse_timestamp(&rfc3339(ms)), Some(ms));
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = parse_timestamp(&s);
        }
    }

    const CSV: &str = "timestamp,value,note\n2014-01-01 00:00:00,10,a\n2014-01-01 00:01:00,90,b\n2014-01-01 00:02:00,,c\n2014-01-01 00:03:00,95,d\n2014-01-01 00:04:00,10,e\n";

    #[test]
    fn csv_columns_are_found_or_named() {
        let t = read_csv(CSV.as_bytes(), None, None).unwrap();
        assert_eq!((t.time_column.as_str(), t.columns.clone(), t.rows.len()), ("timestamp", vec!["value".to_owned()], 5));
        assert_eq!(t.rows[2].1, vec![None]);
        let e = read_csv(CSV.as_bytes(), Some("when"), None).unwrap_err();
        assert!(e.to_string().contains("no time column \"when\"; the header has timestamp, value, note"), "{e}");
        let e = read_csv(CSV.as_bytes(), None, Some("note")).unwrap_err();
        assert_eq!(e.to_string(), "line 2, column note: \"a\" is not a number");
        let e = read_csv("t,v\nnoon,1\n".as_bytes(), None, None).unwrap_err();
        assert!(e.to_string().starts_with("line 2: \"noon\" is not a timestamp"), "{e}");
        let e = read_csv("t,v\n2014-01-01,1\n2014-01-02,1,2\n".as_bytes(), None, None).unwrap_err();
        assert!(e.to_string().starts_with("line 3:"), "{e}");
        let e = read_csv("t,v\n2014-01-01,inf\n".as_bytes(), Some("t"), Some("v")).unwrap_err();
        assert!(e.to_string().contains("not a finite number"), "{e}");
    }

    #[test]
    fn a_threshold_backtest_lists_raises_and_clears() {
        let rule = Rule::from_toml("id = \"hot\"\n[condition]\ntype = \"threshold\"\nmetric = \"temp\"\nabove = 80").unwrap();
        let t = read_csv(CSV.as_bytes(), None, None).unwrap();
        let r = run(&rule, &t, "Cel").unwrap();
        assert_eq!(r.readings, 4);
        assert_eq!(
            r.alarms,
            vec![Alarm {
                raised_at: "2014-01-01T00:01:00Z".into(),
                cleared_at: Some("2014-01-01T00:04:00Z".into()),
                severity: "warning".into(),
                reason: "temp 90 Cel is above the limit of 80 Cel".into(),
                metric: Some("temp".into()),
                machine: None,
            }]
        );
    }
}
