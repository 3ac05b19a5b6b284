//! `fc-portal`: the portal as its own process (`factorychain up --split`,
//! one container per service): the tenancy owner's gRPC port and the portal.
//! Configuration: `[portal]` and `FC_PORTAL__*`, the platform's `[bus]`
//! (`FC_BUS__*`), from `--config FILE` (or `FC_CONFIG`); an empty
//! `portal.data_dir` takes the top-level `data_dir` (`FC_DATA_DIR`).
//! Peers: NATS, ingest's `Query` (`portal.telemetry_url`) and the settlement
//! service (`portal.settlement_url`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    fc_rpc::ops::exit("fc-portal", run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path = fc_core::config::path_from_args(std::env::args().skip(1));
    let (top, [portal_part, _, _]) = fc_core::config::split_sections(path.as_deref(), std::env::vars())?;
    let bus: fc_bus::BusConfig = top.section("bus", "FC_").load("FC_BUS__")?;
    let mut config: fc_portal::Config = portal_part.load("FC_PORTAL__")?;
    if config.data_dir.is_empty() {
        let from_file = top.file.as_ref().and_then(|t| t.get("data_dir")).and_then(|v| v.as_str()).map(String::from);
        config.data_dir = std::env::var("FC_DATA_DIR").ok().or(from_file).unwrap_or_default();
    }
    if config.admin_token.is_empty()
        && let Ok(token) = std::env::var("FC_ADMIN_TOKEN")
    {
        config.admin_token = token;
    }
    let tracing = fc_rpc::trace::init_from_env("portal")?;
    let shutdown = fc_core::Shutdown::new();
    shutdown.trigger_on_signals();
    let (telemetry, settlement) = (config.telemetry_url.clone(), config.settlement_url.clone());
    let p = fc_portal::serve_process(config, &bus, shutdown).await?;
    println!("portal:                        http://{}", p.portal.addr);
    println!("gRPC (Admin, Tenancy):         http://{}", p.tenancy.addr);
    println!("portal HTTP (health, metrics): http://{}", p.ops_addr);
    println!("portal telemetry (Query):      {telemetry}");
    println!("portal settlement:             {settlement}");
    // `up --split --demo`: the demo tenant is made here, where the registry is.
    if let Some(path) = fc_core::config::arg_value(std::env::args().skip(1), "--demo-file").map(std::path::PathBuf::from) {
        fc_portal::demo::ensure(&p.portal.state.registry, &path)?;
        println!("portal demo file:              {}", path.display());
    }
    p.wait().await;
    tracing.shutdown().await;
    Ok(())
}
