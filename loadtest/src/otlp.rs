//! `otlp-sink`: a real OTLP/gRPC trace receiver that keeps count, for measuring
//! what tracing costs (`make bench` runs ingest with traces exported to it).

use anyhow::Result;
use clap::Args;
use std::time::Duration;

/// Options of `otlp-sink`.
#[derive(Args)]
pub struct SinkArgs {
    /// Write the receiver's URL to this file once it listens.
    #[arg(long)]
    url_file: std::path::PathBuf,
}

/// Receive spans until SIGTERM or Ctrl-C; then print `{"spans_received":N}`.
pub async fn run(args: SinkArgs) -> Result<()> {
    let sink = fc_testkit::OtlpReceiver::start().await?;
    std::fs::write(&args.url_file, &sink.url)?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!("{}", serde_json::json!({ "spans_received": sink.spans().len() }));
    Ok(())
}
