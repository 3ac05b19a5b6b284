//! `factorychain monitor ...`: what runs without a service. `backtest` runs a rule (or the
//! anomaly detector) over a CSV with the monitor's own engine (`fc-monitor`) and prints
//! the alarms it would have raised.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use fc_monitor::{Condition, Rule, backtest};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum MonitorCmd {
    /// Run a rule over a CSV as the live monitor would and list the alarms it raises.
    Backtest(BacktestArgs),
}

#[derive(Args)]
pub struct BacktestArgs {
    /// The CSV (a header row; a time column and one or more value columns).
    #[arg(long)]
    csv: PathBuf,
    /// The time column (default: the first named timestamp/time/datetime/date/ts).
    /// Timestamps without a zone are UTC.
    #[arg(long)]
    time_column: Option<String>,
    /// The value column (default: every numeric column, each the metric of its header).
    #[arg(long)]
    value_column: Option<String>,
    /// The rule, as TOML (see docs/monitor.md).
    #[arg(long, conflicts_with = "anomaly", required_unless_present = "anomaly")]
    rule: Option<PathBuf>,
    /// Instead of a rule: the anomaly detector alone.
    #[arg(long)]
    anomaly: bool,
    /// The anomaly detector's sensitivity (higher: more alarms), 0.1 to 10.
    #[arg(long, default_value_t = 1.0, requires = "anomaly")]
    sensitivity: f64,
    /// Unit of the values, for the reasons ("°C").
    #[arg(long, default_value = "")]
    unit: String,
    /// Print JSON: {"readings":N,"alarms":[{"raised_at","cleared_at","severity","reason"}]}.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: MonitorCmd) -> Result<String> {
    match cmd {
        MonitorCmd::Backtest(a) => backtest_csv(&a),
    }
}

fn backtest_csv(a: &BacktestArgs) -> Result<String> {
    let file = std::fs::File::open(&a.csv).with_context(|| format!("cannot read {}", a.csv.display()))?;
    let table = backtest::read_csv(std::io::BufReader::new(file), a.time_column.as_deref(), a.value_column.as_deref())
        .with_context(|| a.csv.display().to_string())?;
    let rule = match &a.rule {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Rule::from_toml(&text).with_context(|| path.display().to_string())?
        }
        None => {
            let metric = table.columns.first().cloned().unwrap_or_else(|| "value".into());
            let rule = Rule::from_toml(&format!("id = \"anomaly\"\n[condition]\ntype = \"anomaly\"\nmetric = {metric:?}\n"))?;
            let rule = Rule { condition: Condition::Anomaly { metric, sensitivity: a.sensitivity }, ..rule };
            rule.validate()?;
            rule
        }
    };
    let report = backtest::run(&rule, &table, &a.unit)?;
    if a.json {
        return Ok(serde_json::to_string(&report)?);
    }
    let mut out = format!("{} readings, {} alarms\n", report.readings, report.alarms.len());
    for al in &report.alarms {
        let cleared = al.cleared_at.as_deref().unwrap_or("(open)");
        out.push_str(&format!("{}  {:<8}  until {cleared}  {}\n", al.raised_at, al.severity, al.reason));
    }
    Ok(out.trim_end().to_owned())
}
