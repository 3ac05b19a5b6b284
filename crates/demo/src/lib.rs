//! The real datasets (a steel plant's year of 15-minute energy use, a machine's
//! temperature through a failure) as series, a simulator that stands in when
//! they are absent, and a replay that plays them as live devices over gRPC.
//! Datasets are read from a directory given by the caller (default
//! `FC_DATASETS_DIR`, else `../shared/datasets`).

use anyhow::{Context, Result};
use fc_proto::v1::{ReadingBatch, SeriesReadings, ingest_client::IngestClient};
use fc_store::Point;
use std::path::{Path, PathBuf};
use std::time::Duration;

const STEEL: &str = "steel_industry_energy_15min.csv";
const TEMPERATURE: &str = "machine_temperature_5min.csv";
/// Numeric columns of the steel CSV: (column, metric, unit).
pub const STEEL_METRICS: [(&str, &str, &str); 6] = [
    ("Usage_kWh", "energy.usage", "kW.h"),
    ("Lagging_Current_Reactive.Power_kVarh", "energy.reactive_lagging", "kvar.h"),
    ("Leading_Current_Reactive_Power_kVarh", "energy.reactive_leading", "kvar.h"),
    ("CO2(tCO2)", "energy.co2", "t"),
    ("Lagging_Current_Power_Factor", "power_factor.lagging", "%"),
    ("Leading_Current_Power_Factor", "power_factor.leading", "%"),
];

/// `FC_DATASETS_DIR`, else `../shared/datasets`.
pub fn default_dir() -> PathBuf {
    std::env::var_os("FC_DATASETS_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("../shared/datasets"))
}

/// Days since 1970-01-01 of a proleptic Gregorian date; an impossible date is an error.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> Result<i64> {
    let bad = || anyhow::anyhow!("no such date: {y:04}-{m:02}-{d:02}");
    let month = u8::try_from(m).ok().and_then(|m| time::Month::try_from(m).ok()).ok_or_else(bad)?;
    let date = time::Date::from_calendar_date(i32::try_from(y).map_err(|_| bad())?, month, u8::try_from(d).map_err(|_| bad())?)
        .map_err(|_| bad())?;
    Ok(i64::from(date.to_julian_day() - time::OffsetDateTime::UNIX_EPOCH.date().to_julian_day()))
}

/// "2018-01-01T00:15:00" or "2013-12-02 21:15:00" (local time at `utc_offset_h`) to Unix ms.
/// Anything else (a shorter string, non-digits where digits belong, an hour, minute or
/// second out of range) is an error, never a panic.
pub fn parse_local(s: &str, utc_offset_h: i64) -> Result<i64> {
    let b = s.as_bytes();
    let shape_ok = b.len() >= 19
        && b[..19].iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T' || c == b' ',
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        });
    anyhow::ensure!(shape_ok, "timestamp {s:?}");
    // ASCII digits only from here: slicing at these offsets cannot split a character.
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().with_context(|| format!("timestamp {s:?}"));
    let (hour, minute, second) = (n(11..13)?, n(14..16)?, n(17..19)?);
    anyhow::ensure!(hour < 24 && minute < 60 && second < 60, "timestamp {s:?}");
    let days = days_from_civil(n(0..4)?, n(5..7)?, n(8..10)?).with_context(|| format!("timestamp {s:?}"))?;
    Ok(((days * 24 + hour - utc_offset_h) * 60 + minute) * 60_000 + second * 1000)
}

/// A finite number from a CSV field.
fn parse_value(field: &str) -> Result<f64> {
    let v: f64 = field.parse().with_context(|| format!("value {field:?}"))?;
    anyhow::ensure!(v.is_finite(), "value {field:?} is not finite");
    Ok(v)
}

/// A dataset as series: `(machine, metric, unit, points)`.
pub type Series = (String, String, String, Vec<Point>);

/// The steel plant's year: six series, 35,040 readings each (KST, UTC+9).
pub fn load_steel(dir: &Path) -> Result<Vec<Series>> {
    let path = dir.join(STEEL);
    let file = std::fs::File::open(&path).with_context(|| format!("{}", path.display()))?;
    parse_steel(std::io::BufReader::new(file)).with_context(|| format!("{}", path.display()))
}

/// Parses the steel CSV (a header row naming [`STEEL_METRICS`]' columns, the local
/// timestamp in the first column) from any reader. Malformed input is an error, never a
/// panic; every value returned is finite.
pub fn parse_steel(input: impl std::io::Read) -> Result<Vec<Series>> {
    let mut rdr = csv::Reader::from_reader(input);
    let headers = rdr.headers()?.clone();
    let idx: Vec<usize> = STEEL_METRICS
        .iter()
        .map(|(c, _, _)| headers.iter().position(|h| h == *c).with_context(|| format!("column {c}")))
        .collect::<Result<_>>()?;
    let mut series: Vec<Series> =
        STEEL_METRICS.iter().map(|(_, m, u)| ("steel-plant".to_string(), m.to_string(), u.to_string(), Vec::new())).collect();
    for rec in rdr.records() {
        let rec = rec?;
        let ts = parse_local(rec.get(0).context("no timestamp column")?, 9)?;
        for (k, &i) in idx.iter().enumerate() {
            let v = parse_value(rec.get(i).with_context(|| format!("no column {}", STEEL_METRICS[k].0))?)?;
            series[k].3.push(Point { ts_ms: ts, value: v, quality: 1 });
        }
    }
    Ok(series)
}

/// The machine temperature trace (the clock steps back once: later duplicates replace earlier ones in the store).
pub fn load_temperature(dir: &Path) -> Result<Vec<Series>> {
    let path = dir.join(TEMPERATURE);
    let file = std::fs::File::open(&path).with_context(|| format!("{}", path.display()))?;
    parse_temperature(std::io::BufReader::new(file)).with_context(|| format!("{}", path.display()))
}

/// Parses the temperature CSV (a header row, then `timestamp,value` rows) from any
/// reader. Malformed input is an error, never a panic; every value returned is finite.
pub fn parse_temperature(input: impl std::io::Read) -> Result<Vec<Series>> {
    let mut rdr = csv::Reader::from_reader(input);
    let mut pts = Vec::new();
    for rec in rdr.records() {
        let rec = rec?;
        let ts = parse_local(rec.get(0).context("no timestamp column")?, 0)?;
        let value = parse_value(rec.get(1).context("no value column")?)?;
        pts.push(Point { ts_ms: ts, value, quality: 1 });
    }
    Ok(vec![("machine-temp-1".into(), "temperature".into(), String::new(), pts)])
}

/// A year of simulated 15-minute energy readings, when the dataset is absent.
pub fn simulate_steel() -> Vec<Series> {
    let start = days_from_civil(2018, 1, 1).expect("a real date") * 86_400_000;
    STEEL_METRICS
        .iter()
        .enumerate()
        .map(|(k, (_, m, u))| {
            let pts = (0..35_040)
                .map(|i| {
                    let hour = (i / 4) % 24;
                    let busy = if (8..18).contains(&hour) { 1.0 } else { 0.2 };
                    let v = ((busy * 50.0 + (i as f64 * 0.7 + k as f64).sin() * 5.0).abs() * 100.0).round() / 100.0;
                    Point { ts_ms: start + (i + 1) * 900_000, value: v, quality: 1 }
                })
                .collect();
            ("steel-plant".to_string(), m.to_string(), u.to_string(), pts)
        })
        .collect()
}

/// What to replay, where, how fast.
#[derive(Clone, Debug)]
pub struct Replay {
    /// gRPC address of the ingest service.
    pub server: String,
    /// Device token.
    pub token: String,
    /// Where the datasets are.
    pub datasets_dir: PathBuf,
    /// Dataset time per wall-clock time (60: a 15-minute interval every 15 s).
    pub speed: f64,
    /// Stop after this many rows per dataset (0: loop forever).
    pub rows: usize,
    /// No progress output.
    pub quiet: bool,
}

/// The machine-temperature machine counts as running above this temperature (°C).
pub const DEMO_RUNNING_ABOVE: f64 = 75.0;

/// Play the datasets as live machines: each row is sent when its (sped-up) time comes, stamped now.
pub async fn replay(args: Replay) -> Result<()> {
    anyhow::ensure!(args.speed > 0.0, "--speed must be positive");
    let dir = args.datasets_dir.clone();
    let mut all = Vec::new();
    match (load_steel(&dir), load_temperature(&dir)) {
        (Ok(a), Ok(b)) => {
            all.extend(a);
            all.extend(b);
        }
        (a, b) => {
            if !args.quiet {
                eprintln!(
                    "datasets not available in {} ({:?} / {:?}); replaying simulated data",
                    dir.display(),
                    a.err().map(|e| e.to_string()),
                    b.err().map(|e| e.to_string())
                );
            }
            all.extend(simulate_steel());
        }
    }
    let channel = tonic::transport::Channel::from_shared(args.server.clone())?.connect().await?;
    let header: tonic::metadata::MetadataValue<_> = format!("Bearer {}", args.token).parse()?;
    let mut client = IngestClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
        r.metadata_mut().insert("authorization", header.clone());
        Ok(r)
    });
    let mut seq = fc_core::time::now_ms() as u64 * 1000;
    let started = std::time::Instant::now();
    let mut cursors = vec![0usize; all.len()];
    let origin: Vec<i64> = all.iter().map(|s| s.3[0].ts_ms).collect();
    let mut laps = vec![0i64; all.len()];
    let mut sent = 0u64;
    // The temperature dataset has no counts: while the machine is warm (running), the demo
    // counts 10 parts per row and one scrapped part per 5 rows, so its OEE page has all
    // three factors. These counters are simulated, and named so.
    let (mut parts, mut scrap, mut warm_rows) = (0.0f64, 0.0f64, 0u64);
    if !args.quiet {
        eprintln!("replaying {} series at {}x", all.len(), args.speed);
    }
    loop {
        let dataset_elapsed = (started.elapsed().as_secs_f64() * args.speed * 1000.0) as i64;
        let now = fc_core::time::now_ms();
        let mut series = Vec::new();
        for (k, (machine, metric, unit, pts)) in all.iter().enumerate() {
            let span = pts[pts.len() - 1].ts_ms - origin[k] + 1;
            let mut vals = Vec::new();
            while (args.rows == 0 || cursors[k] < args.rows) && pts[cursors[k]].ts_ms - origin[k] + laps[k] * span <= dataset_elapsed {
                vals.push(pts[cursors[k]].value);
                cursors[k] += 1;
                if cursors[k] == pts.len() {
                    if args.rows != 0 {
                        break;
                    }
                    cursors[k] = 0;
                    laps[k] += 1;
                }
            }
            if !vals.is_empty() {
                // Stamped now, 1 ms apart, so a burst after a pause stays unique and in order.
                let n = vals.len() as i64;
                if metric == "temperature" {
                    let (mut p, mut sc) = (Vec::with_capacity(vals.len()), Vec::with_capacity(vals.len()));
                    for v in &vals {
                        if *v > DEMO_RUNNING_ABOVE {
                            parts += 10.0;
                            warm_rows += 1;
                            if warm_rows % 5 == 0 {
                                scrap += 1.0;
                            }
                        }
                        p.push(parts);
                        sc.push(scrap);
                    }
                    for (name, values) in [("parts_simulated", p), ("scrap_simulated", sc)] {
                        series.push(SeriesReadings {
                            machine: machine.clone(),
                            metric: name.into(),
                            unit: "1".into(),
                            base_timestamp_ms: now - n,
                            timestamp_deltas_ms: (0..n).map(|i| if i == 0 { 0 } else { 1 }).collect(),
                            values,
                            qualities: vec![],
                        });
                    }
                }
                series.push(SeriesReadings {
                    machine: machine.clone(),
                    metric: metric.clone(),
                    unit: unit.clone(),
                    base_timestamp_ms: now - n,
                    timestamp_deltas_ms: (0..n).map(|i| if i == 0 { 0 } else { 1 }).collect(),
                    values: vals,
                    qualities: vec![],
                });
            }
        }
        if !series.is_empty() {
            seq += 1;
            let n: usize = series.iter().map(|s| s.values.len()).sum();
            match client.push(ReadingBatch { device_seq: seq, readings: vec![], series }).await {
                Ok(_) => sent += n as u64,
                Err(e) if !args.quiet => eprintln!("push failed ({}): {}", e.code(), e.message()),
                Err(_) => {}
            }
        }
        if args.rows != 0 && cursors.iter().all(|&c| c >= args.rows) {
            if !args.quiet {
                eprintln!("replayed {sent} readings");
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_timestamps_convert() {
        assert_eq!(parse_local("1970-01-01T00:00:00", 0).unwrap(), 0);
        assert_eq!(parse_local("2018-01-01T00:15:00", 9).unwrap(), 1_514_733_300_000);
        assert_eq!(parse_local("2013-12-02 21:15:00", 0).unwrap(), 1_386_018_900_000);
        assert!(parse_local("2018-01", 0).is_err());
    }

    #[test]
    fn simulated_year_has_the_dataset_shape() {
        let s = simulate_steel();
        assert_eq!(s.len(), 6);
        assert!(s.iter().all(|x| x.3.len() == 35_040));
    }
}
