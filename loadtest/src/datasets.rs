//! `replay` and `storage`: the datasets (see `fc-demo`) as devices and as a storage benchmark.

use anyhow::Result;
use clap::Args;
use fc_demo::{default_dir, load_steel, simulate_steel};
use fc_store::{SeriesKey, SeriesPoints, TelemetryStore, TenantBatch};
use std::path::PathBuf;

/// Options of `storage`.
#[derive(Args)]
pub struct StorageArgs {
    /// Where the datasets are.
    #[arg(long)]
    datasets_dir: Option<PathBuf>,
}

/// Write the steel year into a fresh embedded store, flush, compact, and measure the file.
pub async fn storage(args: StorageArgs) -> Result<()> {
    let dir = args.datasets_dir.unwrap_or_else(default_dir);
    let (name, series) = match load_steel(&dir) {
        Ok(s) => ("steel_industry_energy_15min", s),
        Err(e) => {
            eprintln!("dataset not available ({e:#}); using the simulated year instead");
            ("simulated_steel_year", simulate_steel())
        }
    };
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("telemetry.redb");
    let readings: usize = series.iter().map(|s| s.3.len()).sum();
    {
        let store = fc_store::embedded::EmbeddedStore::open(&path, Default::default())?;
        // As the writer would see it: one day of readings per write.
        let days = series[0].3.len().div_ceil(96);
        for d in 0..days {
            let batch = TenantBatch {
                tenant: "t_steel".into(),
                series: series
                    .iter()
                    .map(|(m, x, u, p)| SeriesPoints {
                        key: SeriesKey::new(m, x),
                        unit: u.clone(),
                        points: p[d * 96..((d + 1) * 96).min(p.len())].to_vec(),
                    })
                    .collect(),
            };
            store.write(vec![batch]).await?;
        }
        store.flush().await?;
        // Check it reads back whole before measuring.
        let r = store.range("t_steel", &SeriesKey::new(&series[0].0, &series[0].1), i64::MIN / 2, i64::MAX / 2, 10_000_000).await?;
        anyhow::ensure!(r.points.len() == series[0].3.len(), "read back {} of {}", r.points.len(), series[0].3.len());
    }
    fc_store::embedded::EmbeddedStore::compact_file(&path)?;
    let bytes = std::fs::metadata(&path)?.len();
    let line = serde_json::json!({"bench": "storage", "dataset": name, "readings": readings, "bytes_on_disk": bytes, "bytes_per_reading": bytes as f64 / readings as f64});
    println!("{line}");
    Ok(())
}

/// Options of `replay`.
#[derive(Args)]
pub struct ReplayArgs {
    /// gRPC address of the service.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// Device token.
    #[arg(long, env = "FC_TOKEN", hide_env_values = true)]
    token: String,
    /// Where the datasets are.
    #[arg(long)]
    datasets_dir: Option<PathBuf>,
    /// Dataset time per wall-clock time (60: a 15-minute interval every 15 s).
    #[arg(long, default_value_t = 60.0)]
    speed: f64,
    /// Stop after this many rows per dataset (0: play to the end, then start again).
    #[arg(long, default_value_t = 0)]
    rows: usize,
}

/// Play the datasets as live machines until stopped.
pub async fn replay(a: ReplayArgs) -> Result<()> {
    fc_demo::replay(fc_demo::Replay {
        server: a.server,
        token: a.token,
        datasets_dir: a.datasets_dir.unwrap_or_else(default_dir),
        speed: a.speed,
        rows: a.rows,
        quiet: false,
    })
    .await
}
