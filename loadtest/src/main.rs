//! `fc-loadtest`: a device-fleet simulator and load generator for FactoryChain.
//!
//! - `ingest`: N devices x M metrics stream batches over gRPC at a rate, re-send
//!   what was not acknowledged after a reconnect, and report readings/s and ack
//!   latency (HDR histogram);
//! - `raw-jetstream`: the same batches published straight to JetStream with a
//!   durable consumer acking them (the ceiling the service is compared with);
//! - `replay`: the real datasets as live machines, time-shifted to now;
//! - `storage`: bytes per reading of the steel-plant year in the embedded store;
//! - `portal`: page and API latency (wrk) and live-chart fan-out of a running portal;
//! - `ledger`: durable appends/s and inclusion-proof latency of the settlement ledger;
//! - `monitor`: the monitor's readings/s and alarm latency under the fleet;
//! - `noisy`: a tenant's ack latency at its plan rate, alone and beside a tenant
//!   offering ten times its plan and running the largest queries allowed.

mod datasets;
mod fleet;
mod ledger;
mod monitor;
mod noisy;
mod otlp;
mod portal;
mod raw;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "fc-loadtest", about = "FactoryChain device-fleet simulator and load generator")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Stream readings from a simulated fleet through the Ingest service.
    Ingest(fleet::IngestArgs),
    /// Publish the same batches straight to JetStream (baseline).
    RawJetstream(raw::RawArgs),
    /// Replay the datasets as live machines (simulated data when they are absent).
    Replay(datasets::ReplayArgs),
    /// Store the steel-plant year in the embedded store and report bytes per reading.
    Storage(datasets::StorageArgs),
    /// Page and API latency at 200 connections, and live-chart fan-out, of a running portal.
    Portal(portal::PortalArgs),
    /// Durable appends/s (group commit, checkpoint every second) and inclusion-proof latency of the settlement ledger.
    Ledger(ledger::LedgerArgs),
    /// The monitor under the fleet: readings/s judged, alarm latency from ack to event.
    Monitor(monitor::MonitorArgs),
    /// Tenant B's ack latency alone and while tenant A offers 10x its plan and runs huge queries.
    Noisy(noisy::NoisyArgs),
    /// A real OTLP/gRPC trace receiver that counts spans (the tracing-cost step of `make bench`).
    #[command(hide = true)]
    OtlpSink(otlp::SinkArgs),
    /// Tenant A's side of `noisy`, as its own process (started by `noisy`).
    #[command(hide = true)]
    NoisyAttacker(noisy::AttackerArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Ingest(a) => fleet::run(a).await,
        Cmd::Noisy(a) => noisy::run(a).await,
        Cmd::Monitor(a) => monitor::run(a).await,
        Cmd::NoisyAttacker(a) => noisy::attack(a).await,
        Cmd::OtlpSink(a) => otlp::run(a).await,
        Cmd::RawJetstream(a) => raw::run(a).await,
        Cmd::Replay(a) => datasets::replay(a).await,
        Cmd::Storage(a) => datasets::storage(a).await,
        Cmd::Portal(a) => portal::run(a).await,
        Cmd::Ledger(a) => ledger::run(a).await,
    }
}

/// Parse "30s", "2m", "500ms" into a duration.
pub fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().map_err(|_| anyhow::anyhow!("duration {s:?}: expected e.g. 30s, 2m, 500ms"))?;
    Ok(match &s[split..] {
        "ms" => std::time::Duration::from_millis(n),
        "s" | "" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n * 60),
        "h" => std::time::Duration::from_secs(n * 3600),
        u => anyhow::bail!("duration {s:?}: unknown unit {u:?}"),
    })
}

/// One simulated batch of `machine`: `metrics` series, `per_series` readings each, 1 ms apart.
pub fn make_series(machine: &str, metrics: usize, per_series: usize, first_ts: i64, seed: u64) -> Vec<fc_proto::v1::SeriesReadings> {
    (0..metrics)
        .map(|j| fc_proto::v1::SeriesReadings {
            machine: machine.to_string(),
            metric: format!("metric{j:02}"),
            unit: "Cel".into(),
            base_timestamp_ms: first_ts,
            timestamp_deltas_ms: (0..per_series).map(|k| if k == 0 { 0 } else { 1 }).collect(),
            // A sensor-like signal: slow sine plus jitter, two decimals.
            values: (0..per_series)
                .map(|k| {
                    let x = (seed as f64 + k as f64) * 0.01 + j as f64;
                    ((x.sin() * 20.0 + 50.0 + ((seed + k as u64) % 7) as f64 * 0.03) * 100.0).round() / 100.0
                })
                .collect(),
            qualities: vec![],
        })
        .collect()
}
