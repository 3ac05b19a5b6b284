//! `fc-portal`: the portal as its own process (`factorychain up --split`,
//! one container per service): the tenancy owner's gRPC port, the portal, and
//! the settlement service it still hosts. Configuration: `[portal]` and
//! `FC_PORTAL__*`, `[settlement]` and `FC_SETTLEMENT__*`, the platform's
//! `[bus]` (`FC_BUS__*`), from `--config FILE` (or `FC_CONFIG`); an empty
//! `portal.data_dir` takes the top-level `data_dir` (`FC_DATA_DIR`).
//! Peers: NATS and ingest's `Query` (`portal.telemetry_url`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fc-portal: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path = fc_core::config::path_from_args(std::env::args().skip(1));
    let (top, [portal_part, settlement_part]) = fc_core::config::split_sections(path.as_deref(), std::env::vars())?;
    let bus: fc_bus::BusConfig = top.section("bus", "FC_").load("FC_BUS__")?;
    let mut config: fc_portal::Config = portal_part.load("FC_PORTAL__")?;
    let settlement: fc_settlement_service::Config = settlement_part.load("FC_SETTLEMENT__")?;
    if config.data_dir.is_empty() {
        let from_file = top.file.as_ref().and_then(|t| t.get("data_dir")).and_then(|v| v.as_str()).map(String::from);
        config.data_dir = std::env::var("FC_DATA_DIR").ok().or(from_file).unwrap_or_default();
    }
    if config.admin_token.is_empty()
        && let Ok(token) = std::env::var("FC_ADMIN_TOKEN")
    {
        config.admin_token = token;
    }
    let otlp = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok();
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "portal".into());
    let tracing = fc_rpc::trace::init(&service, "info", otlp.as_deref())?;
    let shutdown = fc_core::Shutdown::new();
    shutdown.trigger_on_signals();
    let telemetry = config.telemetry_url.clone();
    let p = fc_portal::serve_process(config, settlement, &bus, shutdown).await?;
    println!("portal:                        http://{}", p.portal.addr);
    println!("gRPC (Admin, Tenancy):         http://{}", p.tenancy.addr);
    println!("gRPC (settlement Ledger):      http://{}", p.settlement.grpc_addr);
    println!("ledger verifier key:           {}", p.settlement.settlement.verifier_key());
    println!("portal HTTP (health, metrics): http://{}", p.ops_addr);
    println!("portal telemetry (Query):      {telemetry}");
    // `up --split --demo`: the demo tenant is made here, where the registry is.
    if let Some(path) = fc_core::config::arg_value(std::env::args().skip(1), "--demo-file").map(std::path::PathBuf::from) {
        fc_portal::demo::ensure(&p.portal.state.registry, &path)?;
        println!("portal demo file:              {}", path.display());
    }
    p.wait().await;
    tracing.shutdown().await;
    Ok(())
}
