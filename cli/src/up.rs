//! `factorychain up`: every service in one process, on the embedded store,
//! with a local nats-server started when none answers on the configured URL.

use anyhow::{Context, Result, bail};
use clap::Args;
use fc_core::Shutdown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variables of the CLI itself, not service configuration.
const NON_CONFIG_ENV: &[&str] = &["FC_CONFIG", "FC_SERVER", "FC_TOKEN", "FC_LOG", "FC_LOG_FORMAT", "FC_SCYLLA_NODES", "FC_SCYLLA_KEYSPACE", "FC_DATASETS_DIR", "FC_NATS_SERVER"];

/// Options of `up`.
#[derive(Args)]
pub struct UpArgs {
    /// TOML configuration file (see config/factorychain.example.toml).
    #[arg(long, env = "FC_CONFIG")]
    config: Option<PathBuf>,
    /// Create (once) a demo tenant and device, and print the device token.
    #[arg(long)]
    demo: bool,
}

/// A nats-server this process started; stopped with SIGTERM (so JetStream syncs) on drop.
struct OwnedNats(Child);

impl Drop for OwnedNats {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nats_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("FC_NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
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

async fn ensure_nats(url: &str, data_dir: &Path) -> Result<Option<OwnedNats>> {
    let (host, port) = host_port(url)?;
    if answers(&host, port).await {
        tracing::info!(%url, "using the NATS server that answers there");
        return Ok(None);
    }
    let Some(bin) = nats_binary() else {
        bail!(
            "no NATS server answers at {url} and the nats-server binary is not installed.\n\
             Install it (Debian: sudo apt-get install nats-server, or `make run`, which does), \n\
             or point FC_BUS__URL at a running server with JetStream enabled."
        );
    };
    let store = data_dir.join("nats");
    std::fs::create_dir_all(&store)?;
    let log = std::fs::File::create(data_dir.join("nats-server.log"))?;
    let mut cmd = Command::new(&bin);
    cmd.args(["-js", "-a", &host, "-p", &port.to_string(), "-sd"]).arg(&store);
    // Its own process group: Ctrl-C reaches only us, and we stop NATS after the service drained.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let owned = OwnedNats(child);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !answers(&host, port).await {
        if Instant::now() > deadline {
            bail!("started {} but it does not answer on {host}:{port}; see {}", bin.display(), data_dir.join("nats-server.log").display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(%url, store = %store.display(), "started a local nats-server");
    Ok(Some(owned))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Demo {
    tenant_id: String,
    device_id: String,
    token: String,
}

fn ensure_demo(state: &fc_ingest::AppState) -> Result<Demo> {
    let path = state.config.data_dir.join("demo.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(d) = serde_json::from_str::<Demo>(&text) {
            if state.registry.authenticate_device(&d.token).is_ok() {
                return Ok(d);
            }
        }
    }
    let t = state.registry.create_tenant("Demo Steel Works", "growth")?;
    let (dev, token) = state.registry.create_device(&t.id, "demo gateway")?;
    let d = Demo { tenant_id: t.id, device_id: dev.id, token };
    // The demo token is kept in clear on purpose so `make run` can print it again; it is a demo tenant.
    std::fs::write(&path, serde_json::to_string_pretty(&d)?)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(d)
}

/// Run until SIGINT/SIGTERM.
pub async fn run(args: UpArgs) -> Result<()> {
    fc_core::telemetry::init("info");
    let env = std::env::vars().filter(|(k, _)| !NON_CONFIG_ENV.contains(&k.as_str()));
    let cfg: fc_ingest::Config = fc_core::config::load(args.config.as_deref(), "FC_", env)?;
    cfg.validate()?;
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let _nats = ensure_nats(&cfg.bus.url, &cfg.data_dir).await?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let running = fc_ingest::serve(cfg.clone(), shutdown.clone()).await?;
    let grpc = format!("http://{}", running.grpc_addr);
    println!();
    println!("FactoryChain is up.");
    println!("  gRPC (Ingest, Query, Admin): {grpc}");
    println!("  health and metrics:          http://{}/healthz  http://{}/metrics", running.http_addr, running.http_addr);
    if cfg.admin_token.is_empty() {
        println!("  admin token:                 {}", cfg.data_dir.join("admin.token").display());
    } else {
        println!("  admin token:                 (from configuration)");
    }
    if args.demo {
        let d = ensure_demo(&running.state)?;
        println!("  demo tenant:                 {}", d.tenant_id);
        println!("  demo device token:           {}", d.token);
        println!();
        println!("Try it in another terminal:");
        println!("  export FC_TOKEN={}", d.token);
        println!("  target/release/factorychain push --machine press-1 --metric temperature --value 21.5 --unit Cel");
        println!("  target/release/factorychain query range --machine press-1 --metric temperature --since 1h");
        println!("  target/release/fc-loadtest replay --server {grpc} --token $FC_TOKEN   # the datasets as live machines");
    }
    println!("Stop with Ctrl-C.");
    println!();
    running.wait().await;
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
