//! `fc-settlement`: the settlement service as its own process (`factorychain
//! up --split`, one container per service). Configuration: `[settlement]` and
//! `FC_SETTLEMENT__*`, the platform's `[bus]` (`FC_BUS__*`), from `--config
//! FILE` (or `FC_CONFIG`); an empty `settlement.data_dir` is the `settlement`
//! directory of the top-level `data_dir` (`FC_DATA_DIR`, else `./data`).
//! Peers: NATS, the tenancy owner (`settlement.tenancy.url`, the portal) and
//! ingest's `Query` (`settlement.telemetry_url`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    fc_rpc::ops::exit("fc-settlement", run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path = fc_core::config::path_from_args(std::env::args().skip(1));
    let (top, [_, settlement_part, _]) = fc_core::config::split_sections(path.as_deref(), std::env::vars())?;
    let bus: fc_bus::BusConfig = top.section("bus", "FC_").load("FC_BUS__")?;
    let mut config: fc_settlement_service::Config = settlement_part.load("FC_SETTLEMENT__")?;
    let from_file = top.file.as_ref().and_then(|t| t.get("data_dir")).and_then(|v| v.as_str()).map(String::from);
    let platform = std::env::var("FC_DATA_DIR").ok().or(from_file).unwrap_or_else(|| "./data".into());
    let data_dir = config.resolve_data_dir(std::path::Path::new(&platform))?;
    let tracing = fc_rpc::trace::init_from_env("settlement")?;
    let shutdown = fc_core::Shutdown::new();
    shutdown.trigger_on_signals();
    let ops_listener =
        tokio::net::TcpListener::bind(&config.ops_addr).await.map_err(|e| format!("settlement.ops_addr {}: {e}", config.ops_addr))?;
    let ops_addr = ops_listener.local_addr()?;
    let (tenancy, telemetry) = (config.tenancy.url.clone(), config.telemetry_url.clone());
    let running = fc_settlement_service::serve(config, &bus, shutdown.clone()).await?;
    let nats = running.nats.clone();
    let ready: fc_rpc::ops::Readiness = std::sync::Arc::new(move || match nats.connection_state() {
        async_nats::connection::State::Connected => Ok(()),
        _ => Err("NATS is unreachable".into()),
    });
    let ops = tokio::spawn(fc_rpc::ops::serve(ops_listener, ready, shutdown));
    println!("gRPC (Ledger, Settlement):     http://{}", running.grpc_addr);
    println!("ledger verifier key:           {}", running.settlement.verifier_key());
    println!("settlement data:               {}", data_dir.display());
    println!("settlement HTTP (health, metrics): http://{ops_addr}");
    println!("settlement tenancy owner:      {tenancy}");
    println!("settlement telemetry (Query):  {telemetry}");
    running.wait().await;
    let _ = ops.await;
    tracing.shutdown().await;
    Ok(())
}
