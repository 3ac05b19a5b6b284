//! `fc-ingest`: the ingest service as its own process (`factorychain up
//! --split`, one container per service). Configuration: the top level of
//! `--config FILE` (or `FC_CONFIG`) and the `FC_*` variables, as under `up`;
//! the `[portal]` and `[settlement]` sections are the other services'.
//! Peers: NATS (`bus.url`) and the tenancy owner (`tenancy.url`, the portal).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    fc_rpc::ops::exit("fc-ingest", run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path = fc_core::config::path_from_args(std::env::args().skip(1));
    let (top, _) = fc_core::config::split_sections(path.as_deref(), std::env::vars())?;
    let config: fc_ingest::Config = top.load("FC_")?;
    let tracing = fc_rpc::trace::init_from_env("ingest")?;
    let shutdown = fc_core::Shutdown::new();
    shutdown.trigger_on_signals();
    let tenancy = config.tenancy.url.clone();
    let running = fc_ingest::serve(config, shutdown).await?;
    println!("ingest gRPC (Ingest, Query):   http://{}", running.grpc_addr);
    println!("ingest HTTP (health, metrics): http://{}", running.http_addr);
    println!("ingest tenancy owner:          {tenancy}");
    running.wait().await;
    tracing.shutdown().await;
    Ok(())
}
