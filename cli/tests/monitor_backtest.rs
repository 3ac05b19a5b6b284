//! `factorychain monitor backtest`: a rule or the anomaly detector over a CSV, the JSON
//! shape the issue names, and clear errors for bad input.

use std::process::Command;

fn backtest(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_factorychain")).args(["monitor", "backtest"]).args(args).output().expect("runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_rule_over_a_csv_prints_the_alarms_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("press.csv");
    std::fs::write(
        &csv,
        "when,temp,load\n2026-01-01 00:00:00,70,1\n2026-01-01T00:01:00Z,85,1\n2026-01-01 00:02:00,86,1\n2026-01-01T09:03:00+09:00,60,1\n",
    )
    .unwrap();
    let rule = dir.path().join("hot.toml");
    std::fs::write(&rule, "id = \"hot\"\nseverity = \"major\"\n[condition]\ntype = \"threshold\"\nmetric = \"temp\"\nabove = 80\n")
        .unwrap();
    let (ok, out, err) = backtest(&["--csv", csv.to_str().unwrap(), "--time-column", "when", "--rule", rule.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["readings"], 8, "both numeric columns are read: {v}");
    assert_eq!(v["alarms"].as_array().unwrap().len(), 1, "{v}");
    let a = &v["alarms"][0];
    assert_eq!(a["raised_at"], "2026-01-01T00:01:00Z");
    assert_eq!(a["cleared_at"], "2026-01-01T00:03:00Z", "a +09:00 timestamp is converted");
    assert_eq!(a["severity"], "major");
    assert_eq!(a["reason"], "temp 85 is above the limit of 80");

    // One value column feeds a rule naming another metric.
    let (ok, out, err) = backtest(&["--csv", csv.to_str().unwrap(), "--value-column", "load", "--rule", rule.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    assert!(out.contains("\"readings\":4"), "{out}");

    let (ok, out, err) = backtest(&["--csv", csv.to_str().unwrap(), "--anomaly", "--sensitivity", "2", "--json"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("{\"readings\":8,\"alarms\":[]"), "too short a history to judge: {out}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("x.csv");
    std::fs::write(&csv, "timestamp,value\n2026-01-01 00:00:00,1\nnot a time,2\n").unwrap();
    let (ok, _, err) = backtest(&["--csv", csv.to_str().unwrap(), "--anomaly"]);
    assert!(!ok);
    assert!(err.contains("line 3: \"not a time\" is not a timestamp"), "{err}");

    let rule = dir.path().join("nan.toml");
    std::fs::write(&rule, "id = \"x\"\n[condition]\ntype = \"threshold\"\nmetric = \"value\"\nabove = nan\n").unwrap();
    std::fs::write(&csv, "timestamp,value\n2026-01-01 00:00:00,1\n").unwrap();
    let (ok, _, err) = backtest(&["--csv", csv.to_str().unwrap(), "--rule", rule.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("threshold must be a finite number"), "{err}");

    let (ok, _, err) = backtest(&["--csv", csv.to_str().unwrap(), "--anomaly", "--sensitivity", "50"]);
    assert!(!ok);
    assert!(err.contains("sensitivity must be 0.1 to 10"), "{err}");

    let (ok, _, err) = backtest(&["--csv", "/nonexistent.csv", "--anomaly"]);
    assert!(!ok);
    assert!(err.contains("cannot read /nonexistent.csv"), "{err}");
}
