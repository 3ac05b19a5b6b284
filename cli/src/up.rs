//! `factorychain up`: every service in one process, on the embedded store,
//! with a local nats-server started when none answers on the configured URL.

use anyhow::{Context, Result, bail};
use clap::Args;
use fc_core::Shutdown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Options of `up`.
#[derive(Args)]
pub struct UpArgs {
    /// TOML configuration file (see config/factorychain.example.toml).
    #[arg(long, env = "FC_CONFIG")]
    config: Option<PathBuf>,
    /// Create (once) a demo tenant, owner login and device; replay the datasets as live machines.
    #[arg(long)]
    demo: bool,
    /// Run each service as its own OS process (fc-portal, fc-settlement, fc-monitor, fc-ingest) instead of one.
    #[arg(long)]
    split: bool,
    /// Dataset playback speed of the demo (dataset time per wall-clock time).
    #[arg(long, default_value_t = 120.0)]
    demo_speed: f64,
}

/// A nats-server this process started; stopped with SIGTERM (so JetStream syncs) on drop.
struct OwnedNats(Child);

impl Drop for OwnedNats {
    fn drop(&mut self) {
        stop_child(&mut self.0, Duration::from_secs(5));
    }
}

/// SIGTERM, then SIGKILL if `child` has not exited within `grace`; false when it had to be killed.
pub fn stop_child(child: &mut Child, grace: Duration) -> bool {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn host_port(url: &str) -> Result<(String, u16)> {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let rest = rest.rsplit('@').next().unwrap_or(rest).split(['/', ',']).next().unwrap_or(rest);
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "4222"));
    Ok((host.to_string(), port.parse().with_context(|| format!("bus.url {url:?}: bad port"))?))
}

async fn answers(host: &str, port: u16) -> bool {
    matches!(tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect((host, port))).await, Ok(Ok(_)))
}

/// The NATS users `up` gives the services of the server it starts (`fc_bus::auth`).
pub struct NatsUsers {
    /// `(service, password)`.
    pub users: Vec<(&'static str, String)>,
}

impl NatsUsers {
    fn new() -> Self {
        Self { users: fc_bus::auth::SERVICES.iter().map(|s| (*s, fc_registry::random_hex(16))).collect() }
    }

    /// `bus` with `service`'s credentials.
    pub fn bus_for(&self, bus: &fc_bus::BusConfig, service: &str) -> fc_bus::BusConfig {
        let mut b = bus.clone();
        if let Some((user, password)) = self.users.iter().find(|(u, _)| *u == service) {
            (b.user, b.password) = (user.to_string(), password.clone());
        }
        b
    }
}

/// Starts a nats-server when none answers at `bus.url`, with a user per
/// service held to its subjects (returned); a server that already answers is
/// used as it is, with the configured `bus.user` (or none).
async fn ensure_nats(bus: &fc_bus::BusConfig, data_dir: &Path) -> Result<(Option<OwnedNats>, Option<NatsUsers>)> {
    let url = &bus.url;
    let (host, port) = host_port(url)?;
    if answers(&host, port).await {
        tracing::info!(%url, "using the NATS server that answers there");
        return Ok((None, None));
    }
    let Some(bin) = fc_bus::nats_server_binary() else {
        bail!(
            "no NATS server answers at {url} and the nats-server binary is not installed.\n\
             Install it (Debian: sudo apt-get install nats-server, or `make run`, which does), \n\
             or point FC_BUS__URL at a running server with JetStream enabled."
        );
    };
    let store = data_dir.join("nats");
    std::fs::create_dir_all(&store)?;
    let log = std::fs::File::create(data_dir.join("nats-server.log"))?;
    // A generated config file, since the fsync policy has no command-line flag.
    let version = fc_bus::nats_server_version(&bin);
    let sync = match version {
        Some(v) if fc_bus::supports_sync_interval(v) => Some(bus.sync.as_str()),
        _ => {
            tracing::warn!(
                nats_server = %bin.display(),
                version = ?version,
                wanted = %bus.sync,
                "this nats-server (before 2.10) cannot be told when to fsync: it syncs every 2 minutes, so a power cut \
                 can lose readings acknowledged since. Point FC_NATS_SERVER at nats-server 2.10 or later, or run a \
                 3-node cluster (docs/operations.md, Durability)"
            );
            None
        }
    };
    let conf = data_dir.join("nats-server.conf");
    let mut text = fc_bus::single_server_config(&host, port, &store, sync).with_context(|| format!("bus.sync {:?}", bus.sync))?;
    let users = NatsUsers::new();
    let pairs: Vec<(&str, &str)> = users.users.iter().map(|(u, p)| (*u, p.as_str())).collect();
    text.push_str(&fc_bus::auth::authorization_config(&pairs));
    // The file holds the services' NATS passwords.
    fc_core::fsutil::replace_private(&conf, &text).with_context(|| format!("writing {}", conf.display()))?;
    let mut cmd = Command::new(&bin);
    cmd.arg("-c").arg(&conf);
    // Its own process group: Ctrl-C reaches only us, and we stop NATS after the service drained.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.stdout(Stdio::null()).stderr(log).spawn().with_context(|| format!("starting {}", bin.display()))?;
    let owned = OwnedNats(child);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !answers(&host, port).await {
        if Instant::now() > deadline {
            bail!("started {} but it does not answer on {host}:{port}; see {}", bin.display(), data_dir.join("nats-server.log").display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(%url, store = %store.display(), sync = sync.unwrap_or("nats-server default (every 2 min)"), "started a local nats-server");
    Ok((Some(owned), Some(users)))
}

/// Run until SIGINT/SIGTERM.
pub async fn run(args: UpArgs) -> Result<()> {
    // Traces go to an OTLP collector only when one is named (docs/operations.md, Traces).
    let tracing = fc_rpc::trace::init_from_env("factorychain").map_err(anyhow::Error::msg)?;
    // One file, four services: `[portal]` (and FC_PORTAL__*) configure the portal,
    // `[settlement]` (FC_SETTLEMENT__*) the settlement service, `[monitor]`
    // (FC_MONITOR__*) the monitor, the rest ingest.
    let (top, [portal_part, settlement_part, monitor_part]) = fc_core::config::split_sections(args.config.as_deref(), std::env::vars())?;
    let mut cfg: fc_ingest::Config = top.load("FC_")?;
    let mut portal_cfg: fc_portal::Config = portal_part.load("FC_PORTAL__")?;
    let mut settlement_cfg: fc_settlement_service::Config = settlement_part.load("FC_SETTLEMENT__")?;
    let mut monitor_cfg: fc_monitor_service::Config = monitor_part.load("FC_MONITOR__")?;
    cfg.validate()?;
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let (_nats, nats_users) = ensure_nats(&cfg.bus, &cfg.data_dir).await?;
    // Each service connects as its own NATS user when `up` started the server.
    let (portal_bus, settlement_bus, monitor_bus) = match &nats_users {
        Some(users) => {
            let others = (users.bus_for(&cfg.bus, "portal"), users.bus_for(&cfg.bus, "settlement"), users.bus_for(&cfg.bus, "monitor"));
            cfg.bus = users.bus_for(&cfg.bus, "ingest");
            others
        }
        None => (cfg.bus.clone(), cfg.bus.clone(), cfg.bus.clone()),
    };
    // Each service keeps its own data directory.
    settlement_cfg.resolve_data_dir(&cfg.data_dir).with_context(|| format!("settlement data in {}", cfg.data_dir.display()))?;
    monitor_cfg.resolve_data_dir(&cfg.data_dir);
    // Links in alarm e-mails lead to this portal unless the operator names a public address.
    if monitor_cfg.portal_url.is_empty() && !portal_cfg.listen_addr.ends_with(":0") {
        monitor_cfg.portal_url = format!("http://{}", portal_cfg.listen_addr);
    }
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    // One process, one data directory, one service issuer: the services get their
    // tokens here and talk over loopback gRPC and NATS as they do when split.
    if portal_cfg.admin_token.is_empty()
        && let Ok(token) = std::env::var("FC_ADMIN_TOKEN")
    {
        portal_cfg.admin_token = token;
    }
    if portal_cfg.data_dir.is_empty() {
        portal_cfg.data_dir = cfg.data_dir.to_string_lossy().into_owned();
    }
    identities(
        &cfg.data_dir,
        [
            ("ingest", &mut cfg.service_auth),
            ("portal", &mut portal_cfg.service_auth),
            ("settlement", &mut settlement_cfg.service_auth),
            ("monitor", &mut monitor_cfg.service_auth),
        ],
    )?;
    if args.split {
        let plan = crate::split::Plan {
            demo: args.demo.then_some(args.demo_speed),
            config: args.config.as_deref(),
            ingest: &cfg,
            portal: &portal_cfg,
            portal_bus: &portal_bus,
            settlement: &settlement_cfg,
            settlement_bus: &settlement_bus,
            monitor: &monitor_cfg,
            monitor_bus: &monitor_bus,
        };
        let r = crate::split::run(plan, shutdown).await;
        tracing.shutdown().await;
        return r;
    }
    let registry = std::sync::Arc::new(fc_portal::open_registry(&portal_cfg).await?);
    let portal_nats = fc_bus::connect_client(&portal_bus, "portal").await?;
    let tenancy = fc_portal::tenancy::serve(&portal_cfg, registry.clone(), portal_nats.clone(), shutdown.clone()).await?;
    cfg.tenancy.url = format!("http://{}", tenancy.addr);
    settlement_cfg.tenancy.url = cfg.tenancy.url.clone();
    let running = fc_ingest::serve(cfg.clone(), shutdown.clone()).await?;
    // The portal and settlement read telemetry through ingest's Query, and the
    // portal calls settlement's API, over loopback gRPC as when split.
    let query_url = format!("http://{}", running.grpc_addr);
    settlement_cfg.telemetry_url = query_url.clone();
    monitor_cfg.telemetry_url = query_url.clone();
    portal_cfg.telemetry_url = query_url;
    let monitor = fc_monitor_service::serve(monitor_cfg, &monitor_bus, shutdown.clone()).await?;
    portal_cfg.monitor_url = format!("http://{}", monitor.grpc_addr);
    let settlement = fc_settlement_service::serve(settlement_cfg, &settlement_bus, shutdown.clone()).await?;
    portal_cfg.settlement_url = format!("http://{}", settlement.grpc_addr);
    let portal = fc_portal::serve(portal_cfg.clone(), registry.clone(), portal_nats, shutdown.clone()).await?;
    let grpc = format!("http://{}", running.grpc_addr);
    println!();
    println!("FactoryChain is up.");
    println!("  portal:                      http://{}", portal.addr);
    println!("  gRPC (Ingest, Query):        {grpc}");
    println!("  gRPC (Admin, Tenancy):       http://{}", tenancy.addr);
    println!("  gRPC (Ledger, Settlement):   http://{}", settlement.grpc_addr);
    println!("  ledger verifier key:         {}", settlement.settlement.verifier_key());
    println!("  gRPC (Monitor):              http://{}", monitor.grpc_addr);
    println!("  health and metrics:          http://{}/healthz  http://{}/metrics", running.http_addr, running.http_addr);
    if portal_cfg.admin_token.is_empty() {
        println!("  admin token:                 {}", portal_cfg.data_dir().join("admin.token").display());
    } else {
        println!("  admin token:                 (from configuration)");
    }
    if args.demo {
        let d = fc_portal::demo::ensure(&registry, &cfg.data_dir.join("demo.json")).map_err(anyhow::Error::msg)?;
        let monitor_client = demo_monitor(&portal_cfg)?;
        start_demo(&d, &grpc, &format!("http://{}", portal.addr), monitor_client, args.demo_speed, shutdown.clone());
    }
    println!("Stop with Ctrl-C.");
    println!();
    running.wait().await;
    portal.wait().await;
    tenancy.wait().await;
    monitor.wait().await;
    settlement.wait().await;
    tracing.shutdown().await;
    Ok(())
}

/// A client of the monitor as the portal (the demo's rules are saved as the portal saves a tenant's).
pub fn demo_monitor(portal: &fc_portal::Config) -> Result<fc_monitor_api::MonitorClient> {
    let credential = portal.service_auth.credential().map_err(|e| anyhow::anyhow!("portal.service_auth: {e}"))?;
    fc_monitor_api::MonitorClient::new(&portal.monitor_url, credential, Duration::from_secs(10)).map_err(anyhow::Error::from)
}

/// Prints the demo's login and device, replays the datasets into ingest at `grpc` until
/// shutdown, and saves the demo's alarm rules with the monitor once their metrics arrived.
pub fn start_demo(
    d: &fc_portal::demo::Demo,
    grpc: &str,
    portal: &str,
    monitor: fc_monitor_api::MonitorClient,
    speed: f64,
    shutdown: Shutdown,
) {
    println!("  demo login:                  {} / {}", d.email, d.password);
    println!("  demo tenant:                 {}", d.tenant_id);
    println!("  demo device token:           {}", d.token);
    let replay = fc_demo::Replay {
        server: grpc.to_string(),
        token: d.token.clone(),
        datasets_dir: fc_demo::default_dir(),
        speed,
        rows: 0,
        quiet: true,
    };
    println!(
        "  demo machines:               steel-plant (energy, 15 min), machine-temp-1 (temperature, 5 min), replayed at {}x from {}",
        speed,
        replay.datasets_dir.display()
    );
    tokio::spawn(fc_portal::demo::install_rules(monitor.clone(), d.tenant_id.clone(), shutdown.clone()));
    tokio::spawn(fc_portal::demo::install_oee(monitor, d.tenant_id.clone(), speed, shutdown.clone()));
    println!("  demo alarm rules:            steel-demand, machine-temp-low, machine-temp-anomaly (see {portal}/alarms)");
    println!("  demo OEE:                    three shifts a day, lines A and B (see {portal}/oee)");
    tokio::spawn(async move {
        tokio::select! {
            r = fc_demo::replay(replay) => if let Err(e) = r { tracing::warn!(error = %e, "demo replay stopped") },
            _ = shutdown.wait() => {}
        }
    });
    println!();
    println!("Try it in another terminal:");
    println!("  export FC_TOKEN={}", d.token);
    println!("  export FC_SERVER={grpc}");
    println!("  target/release/factorychain push --machine press-1 --metric temperature --value 21.5 --unit Cel");
    println!("  target/release/factorychain query range --machine press-1 --metric temperature --since 1h");
    println!("  open {portal} and sign in with the demo login");
}

/// How long the tokens `up` mints are valid (they are minted again at every start).
const TOKEN_TTL: Duration = Duration::from_secs(365 * 86_400);

/// The services' identities in one process: the issuer key in
/// `<data_dir>/service-issuer.key` (created once), a token for each service
/// and the public key each checks callers against, unless configured.
fn identities<const N: usize>(data_dir: &Path, services: [(&str, &mut fc_rpc::service_auth::Config); N]) -> Result<()> {
    let issuer = fc_rpc::service_auth::Issuer::load_or_create(&data_dir.join("service-issuer.key"))?;
    for (name, auth) in services {
        if auth.token.is_empty() && auth.token_file.is_empty() {
            auth.token = issuer.mint(name, TOKEN_TTL)?;
        }
        if auth.issuer_public_key.is_empty() {
            auth.issuer_public_key = issuer.public_key();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn nats_urls_parse() {
        assert_eq!(super::host_port("nats://127.0.0.1:4222").unwrap(), ("127.0.0.1".into(), 4222));
        assert_eq!(super::host_port("nats://user:pw@10.0.0.1:4333").unwrap(), ("10.0.0.1".into(), 4333));
        assert_eq!(super::host_port("localhost").unwrap(), ("localhost".into(), 4222));
        assert!(super::host_port("nats://h:notaport").is_err());
    }
}
