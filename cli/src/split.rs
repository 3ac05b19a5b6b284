//! `factorychain up --split`: the same services as `up`, each in its own OS
//! process: `fc-portal` (the tenancy owner and the portal), `fc-settlement`,
//! `fc-monitor` and `fc-ingest`, found next to this executable. Each keeps its own files
//! (settlement its own directory) and they talk over loopback gRPC and NATS
//! with the tokens minted here. Started in the order their addresses are
//! learnt: the portal (ingest's and settlement's ports are picked for it
//! beforehand), then settlement, the monitor and ingest, which are told the
//! portal's tenancy port (and ingest's `Query`).

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A service process; stopped with SIGTERM (graceful) on drop.
struct ServiceProcess {
    name: &'static str,
    child: Child,
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if !crate::up::stop_child(&mut self.child, Duration::from_secs(20)) {
            tracing::warn!(service = self.name, "did not stop within 20 s; killed it");
        }
    }
}

/// Where the service binaries are: next to this executable.
fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found next to {} (build it: cargo build --release -p fc-ingest -p fc-portal -p fc-settlement-service -p fc-monitor-service, or make run-split)",
            name,
            exe.display()
        );
    }
    Ok(path)
}

/// Starts `bin` with `env`, waits until it printed every label of `labels`
/// (`label: value` lines) and returns the values; its other output goes to
/// stderr, prefixed with its name.
fn start(
    name: &'static str,
    bin: &Path,
    config: Option<&Path>,
    extra_args: &[String],
    env: &[(String, String)],
    labels: &[&str],
) -> Result<(ServiceProcess, HashMap<String, String>)> {
    let mut cmd = Command::new(bin);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(extra_args);
    cmd.envs(env.iter().map(|(k, v)| (k, v))).stdout(Stdio::piped()).stderr(Stdio::inherit());
    // Its own process group: Ctrl-C reaches only `up`, which stops the services in order.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let proc = ServiceProcess { name, child };
    let (tx, rx) = std::sync::mpsc::channel::<(String, String)>();
    let wanted: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let found = wanted.iter().find(|l| line.trim_start().starts_with(l.as_str()));
            match found {
                Some(l) => {
                    let _ = tx.send((l.clone(), line.trim_start()[l.len()..].trim().to_string()));
                }
                None => eprintln!("[{name}] {line}"),
            }
        }
    });
    let mut got = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut proc = proc;
    while got.len() < labels.len() {
        if let Ok(Some(status)) = proc.child.try_wait() {
            bail!("{name} exited ({status}) before it was ready; its errors are above");
        }
        if Instant::now() > deadline {
            bail!("{name} did not report its addresses within 60 s");
        }
        if let Ok((k, v)) = rx.recv_timeout(Duration::from_millis(100)) {
            got.insert(k, v);
        }
    }
    Ok((proc, got))
}

/// A free loopback port (for a listener another process must know before it starts).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// What `up` worked out before it chose the shape.
pub struct Plan<'a> {
    /// `--demo`, at this dataset speed: fc-portal creates the demo tenant, `up` replays into ingest.
    pub demo: Option<f64>,
    /// `--config`.
    pub config: Option<&'a Path>,
    /// Ingest's (top-level) configuration.
    pub ingest: &'a fc_ingest::Config,
    /// The portal's.
    pub portal: &'a fc_portal::Config,
    /// The portal's NATS settings (its own user when `up` started the server).
    pub portal_bus: &'a fc_bus::BusConfig,
    /// Settlement's (its `data_dir` resolved).
    pub settlement: &'a fc_settlement_service::Config,
    /// Settlement's NATS settings.
    pub settlement_bus: &'a fc_bus::BusConfig,
    /// The monitor's (its `data_dir` resolved).
    pub monitor: &'a fc_monitor_service::Config,
    /// The monitor's NATS settings.
    pub monitor_bus: &'a fc_bus::BusConfig,
}

/// `addr` with a free port when it asks for port 0 (for a listener another
/// process must know before it starts).
fn fixed(addr: &str, what: &str) -> Result<std::net::SocketAddr> {
    let mut a: std::net::SocketAddr = addr.parse().with_context(|| format!("{what} {addr:?}"))?;
    if a.port() == 0 {
        a.set_port(free_port()?);
    }
    Ok(a)
}

/// Starts both processes and waits until `shutdown` fires or one exits.
pub async fn run(plan: Plan<'_>, shutdown: fc_core::Shutdown) -> Result<()> {
    let (fc_ingest_bin, fc_portal_bin, fc_settlement_bin, fc_monitor_bin) =
        (binary("fc-ingest")?, binary("fc-portal")?, binary("fc-settlement")?, binary("fc-monitor")?);
    let ingest = plan.ingest;
    // Ingest's, settlement's and the monitor's gRPC ports must be known to the portal before they start.
    let grpc = fixed(&ingest.grpc_addr, "grpc_addr")?;
    let query_url = format!("http://{grpc}");
    let settlement_grpc = fixed(&plan.settlement.grpc_addr, "settlement.grpc_addr")?;
    let settlement_url = format!("http://{settlement_grpc}");
    let monitor_grpc = fixed(&plan.monitor.grpc_addr, "monitor.grpc_addr")?;
    let monitor_url = format!("http://{monitor_grpc}");
    let loopback_ops = ingest.http_addr.ends_with(":0");
    let mut portal_env = vec![
        ("FC_PORTAL__DATA_DIR".to_string(), plan.portal.data_dir.clone()),
        ("FC_PORTAL__TELEMETRY_URL".into(), query_url.clone()),
        ("FC_PORTAL__SETTLEMENT_URL".into(), settlement_url.clone()),
        ("FC_PORTAL__MONITOR_URL".into(), monitor_url.clone()),
        ("FC_PORTAL__SERVICE_AUTH__TOKEN".into(), plan.portal.service_auth.token.clone()),
        ("FC_PORTAL__SERVICE_AUTH__ISSUER_PUBLIC_KEY".into(), plan.portal.service_auth.issuer_public_key.clone()),
        ("FC_PORTAL__ADMIN_TOKEN".into(), plan.portal.admin_token.clone()),
    ];
    portal_env.extend([
        ("FC_BUS__USER".to_string(), plan.portal_bus.user.clone()),
        ("FC_BUS__PASSWORD".into(), plan.portal_bus.password.clone()),
    ]);
    portal_env.retain(|(_, v)| !v.is_empty());
    if loopback_ops {
        portal_env.push(("FC_PORTAL__OPS_ADDR".into(), "127.0.0.1:0".into()));
    }
    let mut portal_labels = vec!["portal:", "gRPC (Admin, Tenancy):", "portal HTTP (health, metrics):"];
    let demo_file = plan.portal.data_dir().join("demo.json");
    let mut portal_args = Vec::new();
    if plan.demo.is_some() {
        portal_args = vec!["--demo-file".to_string(), demo_file.display().to_string()];
        portal_labels.push("portal demo file:");
    }
    let (portal, p) = start("fc-portal", &fc_portal_bin, plan.config, &portal_args, &portal_env, &portal_labels)?;
    let admin_url = p["gRPC (Admin, Tenancy):"].clone();
    let st = plan.settlement;
    let mut settlement_env = vec![
        ("FC_BUS__USER".to_string(), plan.settlement_bus.user.clone()),
        ("FC_BUS__PASSWORD".into(), plan.settlement_bus.password.clone()),
        ("FC_SETTLEMENT__GRPC_ADDR".into(), settlement_grpc.to_string()),
        ("FC_SETTLEMENT__DATA_DIR".into(), st.data_dir.clone()),
        ("FC_SETTLEMENT__TENANCY__URL".into(), admin_url.clone()),
        ("FC_SETTLEMENT__TELEMETRY_URL".into(), query_url.clone()),
        ("FC_SETTLEMENT__SERVICE_AUTH__TOKEN".into(), st.service_auth.token.clone()),
        ("FC_SETTLEMENT__SERVICE_AUTH__ISSUER_PUBLIC_KEY".into(), st.service_auth.issuer_public_key.clone()),
    ];
    settlement_env.retain(|(_, v)| !v.is_empty());
    if loopback_ops {
        settlement_env.push(("FC_SETTLEMENT__OPS_ADDR".into(), "127.0.0.1:0".into()));
    }
    let settlement_labels = ["gRPC (Ledger, Settlement):", "ledger verifier key:", "settlement HTTP (health, metrics):"];
    let (settlement, l) = start("fc-settlement", &fc_settlement_bin, plan.config, &[], &settlement_env, &settlement_labels)?;
    let mo = plan.monitor;
    let mut monitor_env = vec![
        ("FC_BUS__USER".to_string(), plan.monitor_bus.user.clone()),
        ("FC_BUS__PASSWORD".into(), plan.monitor_bus.password.clone()),
        ("FC_MONITOR__GRPC_ADDR".into(), monitor_grpc.to_string()),
        ("FC_MONITOR__DATA_DIR".into(), mo.data_dir.clone()),
        ("FC_MONITOR__PORTAL_URL".into(), mo.portal_url.clone()),
        ("FC_MONITOR__TELEMETRY_URL".into(), query_url.clone()),
        ("FC_MONITOR__SERVICE_AUTH__TOKEN".into(), mo.service_auth.token.clone()),
        ("FC_MONITOR__SERVICE_AUTH__ISSUER_PUBLIC_KEY".into(), mo.service_auth.issuer_public_key.clone()),
    ];
    monitor_env.retain(|(_, v)| !v.is_empty());
    if loopback_ops {
        monitor_env.push(("FC_MONITOR__OPS_ADDR".into(), "127.0.0.1:0".into()));
    }
    let monitor_labels = ["gRPC (Monitor):", "monitor HTTP (health, metrics):"];
    let (monitor, mon) = start("fc-monitor", &fc_monitor_bin, plan.config, &[], &monitor_env, &monitor_labels)?;
    let mut ingest_env = vec![
        ("FC_BUS__USER".to_string(), ingest.bus.user.clone()),
        ("FC_BUS__PASSWORD".into(), ingest.bus.password.clone()),
        ("FC_GRPC_ADDR".into(), grpc.to_string()),
        ("FC_TENANCY__URL".into(), admin_url.clone()),
        ("FC_SERVICE_AUTH__TOKEN".into(), ingest.service_auth.token.clone()),
        ("FC_SERVICE_AUTH__ISSUER_PUBLIC_KEY".into(), ingest.service_auth.issuer_public_key.clone()),
        ("FC_DATA_DIR".into(), ingest.data_dir.to_string_lossy().into_owned()),
    ];
    ingest_env.retain(|(_, v)| !v.is_empty());
    let ingest_labels = ["ingest gRPC (Ingest, Query):", "ingest HTTP (health, metrics):"];
    let (ingest_proc, i) = start("fc-ingest", &fc_ingest_bin, plan.config, &[], &ingest_env, &ingest_labels)?;
    println!();
    println!(
        "FactoryChain is up (split: fc-portal pid {}, fc-settlement pid {}, fc-monitor pid {}, fc-ingest pid {}).",
        portal.child.id(),
        settlement.child.id(),
        monitor.child.id(),
        ingest_proc.child.id()
    );
    println!("  portal:                      {}", p["portal:"]);
    println!("  gRPC (Ingest, Query):        {}", i["ingest gRPC (Ingest, Query):"]);
    println!("  gRPC (Admin, Tenancy):       {admin_url}");
    println!("  gRPC (Ledger, Settlement):   {}", l["gRPC (Ledger, Settlement):"]);
    println!("  ledger verifier key:         {}", l["ledger verifier key:"]);
    println!("  gRPC (Monitor):              {}", mon["gRPC (Monitor):"]);
    println!(
        "  health and metrics:          {}/healthz (ingest)  {}/healthz (portal)  {}/healthz (settlement)  {}/healthz (monitor)",
        i["ingest HTTP (health, metrics):"],
        p["portal HTTP (health, metrics):"],
        l["settlement HTTP (health, metrics):"],
        mon["monitor HTTP (health, metrics):"]
    );
    if plan.portal.admin_token.is_empty() {
        println!("  admin token:                 {}", plan.portal.data_dir().join("admin.token").display());
    } else {
        println!("  admin token:                 (from configuration)");
    }
    if let Some(speed) = plan.demo {
        let text = std::fs::read_to_string(&demo_file).with_context(|| format!("reading {}", demo_file.display()))?;
        let d: fc_portal::demo::Demo = serde_json::from_str(&text).with_context(|| format!("{}", demo_file.display()))?;
        let mut portal_cfg = plan.portal.clone();
        portal_cfg.monitor_url = monitor_url.clone();
        let monitor_client = crate::up::demo_monitor(&portal_cfg)?;
        crate::up::start_demo(&d, &i["ingest gRPC (Ingest, Query):"], &p["portal:"], monitor_client, speed, shutdown.clone());
    }
    println!("Stop with Ctrl-C.");
    println!();
    let mut procs = [portal, settlement, monitor, ingest_proc];
    // Until a signal, or a service exits by itself.
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if let Some(p) = procs.iter_mut().find_map(|p| matches!(p.child.try_wait(), Ok(Some(_))).then_some(p.name)) {
            tracing::error!(service = p, "a service process exited; stopping the others");
            break;
        }
    }
    // Ingest first (it drains its streams and writer), then the portal (no
    // new calls into settlement or the monitor), then the monitor (its last
    // checkpoint) and settlement (its final ledger checkpoint).
    let [portal, settlement, monitor, ingest_proc] = procs;
    tokio::task::spawn_blocking(move || {
        drop(ingest_proc);
        drop(portal);
        drop(monitor);
        drop(settlement);
    })
    .await?;
    Ok(())
}
