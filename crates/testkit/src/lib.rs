//! Test harness: a private `nats-server` (free port, temporary store dir, JetStream on)
//! and the real services started in-process on port 0. Nothing is faked: tests
//! talk gRPC to the service, which talks to a real NATS server and a real store.
//!
//! Waits poll a condition with a deadline; there is no fixed sleep.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fc_core::Shutdown;
use fc_ingest::{Config, Running};
use fc_proto::v1::{ingest_client::IngestClient, query_client::QueryClient};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use fc_bus::nats_server_binary;

/// Read a child's stdout until a line starting with `label` (after spaces) appears, and
/// return the rest of that line: how tests learn the port-0 addresses `factorychain up`
/// prints. The rest of the output is drained in the background so the child never blocks.
pub fn printed_address(stdout: std::process::ChildStdout, label: &str) -> anyhow::Result<String> {
    let [addr] = printed_addresses(std::io::BufReader::new(stdout), [label])?;
    Ok(addr)
}

/// [`printed_address`] for several labels, in any order of the output.
pub fn printed_addresses<const N: usize>(stdout: impl std::io::BufRead + Send + 'static, labels: [&str; N]) -> anyhow::Result<[String; N]> {
    let mut found: [Option<String>; N] = std::array::from_fn(|_| None);
    let mut lines = stdout.lines();
    for line in lines.by_ref() {
        let line = line?;
        for (i, label) in labels.iter().enumerate() {
            if let Some(rest) = line.trim_start().strip_prefix(label) {
                found[i] = Some(rest.trim().to_string());
            }
        }
        if found.iter().all(Option::is_some) {
            std::thread::spawn(move || for _ in lines {});
            return Ok(found.map(|a| a.unwrap_or_default()));
        }
    }
    let missing: Vec<&str> = labels.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(l, _)| *l).collect();
    anyhow::bail!("the output ended before {missing:?} was printed (did it start?)")
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `scheme://127.0.0.1:<port>` of a loopback port nothing listens on (for a missing peer).
pub fn unused_url(scheme: &str) -> anyhow::Result<String> {
    Ok(format!("{scheme}://127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()))
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut cond: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A private nats-server with JetStream, stopped (killed) on drop. It binds a
/// port the kernel picks (`-p -1`) and reports it in a ports file, so nothing
/// can take the port between choosing and binding it.
pub struct NatsServer {
    child: Child,
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
    /// The client port.
    pub port: u16,
    /// The route (cluster) port, when the server is part of a cluster.
    pub cluster_port: Option<u16>,
    /// The server's name (its JetStream identity in a cluster).
    pub name: String,
    args: Vec<String>,
    dir: tempfile::TempDir,
    conf: Option<tempfile::TempDir>,
}

fn port_of(url: &str) -> Option<u16> {
    url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
}

impl NatsServer {
    /// Start one and wait until it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        Self::spawn("standalone".into(), Vec::new(), None).await
    }

    /// Start one with `config` (nats-server syntax, e.g. an `authorization`
    /// block) besides the usual flags.
    pub async fn start_with_config(config: &str) -> anyhow::Result<Self> {
        let conf = tempfile::tempdir()?;
        let path = conf.path().join("nats.conf");
        std::fs::write(&path, config)?;
        let mut s = Self::spawn("standalone".into(), vec!["-c".into(), path.display().to_string()], None).await?;
        s.conf = Some(conf);
        Ok(s)
    }

    async fn spawn(name: String, extra: Vec<String>, port: Option<u16>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut me = Self {
            child: Self::launch(dir.path(), &name, &extra, port)?,
            url: String::new(),
            port: 0,
            cluster_port: None,
            name,
            args: extra,
            dir,
            conf: None,
        };
        me.learn_ports().await?;
        Ok(me)
    }

    fn launch(dir: &std::path::Path, name: &str, extra: &[String], port: Option<u16>) -> anyhow::Result<Child> {
        let bin = nats_server_binary()
            .ok_or_else(|| anyhow::anyhow!("nats-server not found: `make test` installs it (apt-get install nats-server)"))?;
        let ports = dir.join("ports");
        let _ = std::fs::remove_dir_all(&ports);
        std::fs::create_dir_all(&ports)?;
        let port = port.map_or_else(|| "-1".to_string(), |p| p.to_string());
        let log = std::env::var("TEST_LOG").is_ok();
        Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port, "-n", name, "-sd"])
            .arg(dir.join("store"))
            .arg("--ports_file_dir")
            .arg(&ports)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", bin.display()))
    }

    async fn learn_ports(&mut self) -> anyhow::Result<()> {
        let ports_dir = self.dir.path().join("ports");
        let mut found = None;
        wait_until(Duration::from_secs(15), "nats-server to report its ports", || {
            let entry = std::fs::read_dir(&ports_dir).ok().and_then(|mut d| d.next()).and_then(Result::ok);
            found =
                entry.and_then(|e| std::fs::read_to_string(e.path()).ok()).and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
            std::future::ready(found.as_ref().is_some_and(|v| v["nats"][0].is_string()))
        })
        .await?;
        let ports = found.expect("waited for it");
        let url = ports["nats"][0].as_str().unwrap_or_default().to_string();
        self.port = port_of(&url).ok_or_else(|| anyhow::anyhow!("bad ports file: {ports}"))?;
        self.url = url;
        self.cluster_port = ports["cluster"][0].as_str().and_then(port_of);
        let addr = format!("127.0.0.1:{}", self.port);
        wait_until(Duration::from_secs(15), "nats-server to listen", || {
            let addr = addr.clone();
            async move { tokio::net::TcpStream::connect(addr).await.is_ok() }
        })
        .await
    }

    /// SIGKILL: no shutdown, no final sync (what a crash or power cut does to the process).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start it again on the same ports and store (after [`NatsServer::kill`]).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let mut extra = self.args.clone();
        if let Some(cp) = self.cluster_port {
            // Same route port as before, so the other nodes' routes find it again.
            if let Some(i) = extra.iter().position(|a| a == "--cluster") {
                extra[i + 1] = format!("nats://127.0.0.1:{cp}");
            }
        }
        self.child = Self::launch(self.dir.path(), &self.name, &extra, Some(self.port))?;
        self.learn_ports().await
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three (or more) nats-servers on loopback, clustered with JetStream.
pub struct NatsCluster {
    /// The nodes, in start order.
    pub nodes: Vec<NatsServer>,
    /// A JetStream cluster node refuses to start without a configured route, and the
    /// first node's peers have no ports yet: it gets this never-answering listener as
    /// its route until the others join it (they gossip the full mesh).
    _placeholder: std::net::TcpListener,
}

impl NatsCluster {
    /// Start `n` nodes: the first on kernel-chosen ports, the others routed to it.
    pub async fn start(n: usize) -> anyhow::Result<Self> {
        let placeholder = std::net::TcpListener::bind("127.0.0.1:0")?;
        let mut nodes: Vec<NatsServer> = Vec::new();
        for i in 0..n {
            let mut extra = vec!["--cluster_name".to_string(), "fc-test".into(), "--cluster".into(), "nats://127.0.0.1:-1".into()];
            let routes: Vec<String> = if nodes.is_empty() {
                vec![format!("nats://{}", placeholder.local_addr()?)]
            } else {
                nodes.iter().filter_map(|n| n.cluster_port).map(|p| format!("nats://127.0.0.1:{p}")).collect()
            };
            anyhow::ensure!(!routes.is_empty(), "the seed node reported no route port");
            extra.extend(["--routes".into(), routes.join(",")]);
            nodes.push(NatsServer::spawn(format!("n{i}"), extra, None).await?);
        }
        // Every node routes to every other (the seed learns the rest by gossip; an
        // explicit list lets a restarted node find them all again).
        let all: Vec<String> = nodes.iter().filter_map(|n| n.cluster_port).map(|p| format!("nats://127.0.0.1:{p}")).collect();
        for node in &mut nodes {
            let own = node.cluster_port.map(|p| format!("nats://127.0.0.1:{p}"));
            let routes: Vec<&String> = all.iter().filter(|r| Some(*r) != own.as_ref()).collect();
            match node.args.iter().position(|a| a == "--routes") {
                Some(i) => node.args[i + 1] = routes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","),
                None => node.args.extend(["--routes".into(), routes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")]),
            }
        }
        let me = Self { nodes, _placeholder: placeholder };
        me.wait_for_jetstream(n).await?;
        Ok(me)
    }

    /// Wait until JetStream can place a stream on `n` nodes: right after start, the
    /// meta group may not know every peer yet ("no suitable peers for placement").
    async fn wait_for_jetstream(&self, n: usize) -> anyhow::Result<()> {
        let client = async_nats::connect(self.nodes[0].url.as_str()).await?;
        let js = async_nats::jetstream::new(client);
        let probe = async_nats::jetstream::stream::Config {
            name: "FC_CLUSTER_PROBE".into(),
            subjects: vec!["fc-cluster-probe".into()],
            num_replicas: n,
            ..Default::default()
        };
        let last = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let ready = wait_until(Duration::from_secs(30), "the JetStream cluster to place a stream on every node", || {
            let (js, probe, last) = (js.clone(), probe.clone(), last.clone());
            async move {
                match js.create_stream(probe).await {
                    Ok(_) => true,
                    Err(e) => {
                        *last.lock().expect("probe error lock") = e.to_string();
                        false
                    }
                }
            }
        })
        .await;
        ready.map_err(|e| anyhow::anyhow!("{e}: {}", last.lock().expect("probe error lock")))?;
        js.delete_stream("FC_CLUSTER_PROBE").await?;
        Ok(())
    }

    /// Every node's client URL, comma-separated (the form `bus.url` takes).
    pub fn url(&self) -> String {
        self.nodes.iter().map(|n| n.url.as_str()).collect::<Vec<_>>().join(",")
    }
}

/// The interceptor that adds `authorization: Bearer <token>`.
#[derive(Clone)]
pub struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// Ingest client authenticated as a device.
pub type DeviceIngest = IngestClient<InterceptedService<Channel, Bearer>>;
/// Query client authenticated as a device.
pub type DeviceQuery = QueryClient<InterceptedService<Channel, Bearer>>;

/// Wait (up to 90 s) until `req` answers `expected` readings, then check that reading
/// `i` is `want(i)` (timestamp, value) for every `i`: every acknowledged reading stored
/// exactly once. The no-loss, chaos and cluster tests end with it.
pub async fn assert_stored_once(
    query: &DeviceQuery,
    req: fc_proto::v1::RangeRequest,
    expected: usize,
    want: impl Fn(usize) -> (i64, f64),
) -> anyhow::Result<()> {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let waited = wait_until(Duration::from_secs(90), "every reading to be stored", || {
        let (mut q, req, count) = (query.clone(), req.clone(), count.clone());
        async move {
            let n = q.range(req).await.map(|r| r.into_inner().readings.len()).unwrap_or(0);
            count.store(n, std::sync::atomic::Ordering::SeqCst);
            n >= expected
        }
    })
    .await;
    if let Err(e) = waited {
        anyhow::bail!("{e}: {} of {expected} readings stored", count.load(std::sync::atomic::Ordering::SeqCst));
    }
    let readings = query.clone().range(req).await?.into_inner().readings;
    anyhow::ensure!(
        readings.len() == expected,
        "{} readings stored, {expected} acknowledged: none may be lost or stored twice",
        readings.len()
    );
    for (i, r) in readings.iter().enumerate() {
        anyhow::ensure!((r.timestamp_ms, r.value) == want(i), "reading {i} is {:?}, not {:?}", (r.timestamp_ms, r.value), want(i));
    }
    Ok(())
}

/// The password of the all-powerful `admin` NATS user of [`Harness::start_authenticated`].
pub const NATS_ADMIN_PASSWORD: &str = "nats-admin-test-password";

/// The NATS passwords of the services, when the server checks them.
#[derive(Clone)]
struct NatsUsers {
    ingest: String,
    portal: String,
    settlement: String,
    monitor: String,
}

/// NATS, the tenancy owner's gRPC port (the portal's, over a registry on the
/// data directory) and the ingest service on temporary directories.
pub struct Harness {
    /// The registry the tenancy port serves (the portal's state).
    pub registry: Arc<fc_registry::Registry>,
    /// Signs the services' tokens.
    pub issuer: fc_rpc::service_auth::Issuer,
    /// The tenancy and admin gRPC port.
    pub tenancy: fc_portal::tenancy::Grpc,
    tenancy_shutdown: Shutdown,
    /// The portal's own NATS connection (tenancy notices, live views).
    pub portal_nats: async_nats::Client,
    users: Option<NatsUsers>,
    /// The private NATS server (unused when the harness runs on a cluster).
    pub nats: NatsServer,
    /// `bus.url` of the service: the private server's, or a cluster's.
    pub bus_url: String,
    /// The data directory (kept across restarts).
    pub data: tempfile::TempDir,
    /// The running service, if started.
    pub svc: Option<Running>,
    shutdown: Shutdown,
    tweak: fn(&mut Config),
    /// The settlement service, started by the first portal (it lives as long
    /// as the harness: its ledger file is opened once).
    settlement: tokio::sync::OnceCell<fc_settlement_service::Running>,
    /// The monitor, started by the first portal (or [`Harness::monitor`]).
    monitor: tokio::sync::OnceCell<fc_monitor_service::Running>,
    /// The SMTP receiver the monitor sends alarm e-mails to.
    smtp: tokio::sync::OnceCell<tokio::sync::Mutex<smtp::Sink>>,
}

impl Harness {
    /// Start NATS and the service with default settings.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Start NATS and the service, adjusting the config first.
    pub async fn start_with(tweak: fn(&mut Config)) -> anyhow::Result<Self> {
        fc_core::telemetry::init_for_tests();
        let nats = NatsServer::start().await?;
        let bus_url = nats.url.clone();
        Self::assemble(nats, bus_url, tweak).await
    }

    /// NATS with a user per service held to its subjects (`fc_bus::auth`), and
    /// the services connecting as theirs; `admin`/[`NATS_ADMIN_PASSWORD`] may do anything.
    pub async fn start_authenticated() -> anyhow::Result<Self> {
        fc_core::telemetry::init_for_tests();
        let pw = |who: &str| format!("{who}-{}", fc_core::time::now_ms());
        let users = NatsUsers { ingest: pw("ingest"), portal: pw("portal"), settlement: pw("settlement"), monitor: pw("monitor") };
        let conf = fc_bus::auth::authorization_config(&[
            ("ingest", &users.ingest),
            ("portal", &users.portal),
            ("settlement", &users.settlement),
            ("monitor", &users.monitor),
            ("admin", NATS_ADMIN_PASSWORD),
        ]);
        let nats = NatsServer::start_with_config(&conf).await?;
        let bus_url = nats.url.clone();
        Self::assemble_with(nats, bus_url, |_| {}, Some(users)).await
    }

    async fn assemble(nats: NatsServer, bus_url: String, tweak: fn(&mut Config)) -> anyhow::Result<Self> {
        Self::assemble_with(nats, bus_url, tweak, None).await
    }

    async fn assemble_with(nats: NatsServer, bus_url: String, tweak: fn(&mut Config), users: Option<NatsUsers>) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let issuer = fc_rpc::service_auth::Issuer::generate()?;
        let portal_cfg = Self::portal_config_for(data.path(), &issuer)?;
        let registry = Arc::new(fc_portal::open_registry(&portal_cfg).await?);
        let tenancy_shutdown = Shutdown::new();
        let mut portal_bus = fc_bus::BusConfig { url: bus_url.clone(), ..Default::default() };
        if let Some(u) = &users {
            (portal_bus.user, portal_bus.password) = ("portal".into(), u.portal.clone());
        }
        let portal_nats = fc_bus::connect_client(&portal_bus, "portal").await?;
        let tenancy = fc_portal::tenancy::serve(&portal_cfg, registry.clone(), portal_nats.clone(), tenancy_shutdown.clone()).await?;
        let mut h = Self {
            portal_nats,
            users,
            registry,
            issuer,
            tenancy,
            tenancy_shutdown,
            bus_url,
            nats,
            data,
            svc: None,
            shutdown: Shutdown::new(),
            tweak,
            settlement: tokio::sync::OnceCell::new(),
            monitor: tokio::sync::OnceCell::new(),
            smtp: tokio::sync::OnceCell::new(),
        };
        h.boot().await?;
        Ok(h)
    }

    fn portal_config_for(data: &std::path::Path, issuer: &fc_rpc::service_auth::Issuer) -> anyhow::Result<fc_portal::Config> {
        let mut c = fc_portal::Config {
            listen_addr: "127.0.0.1:0".into(),
            grpc_addr: "127.0.0.1:0".into(),
            data_dir: data.to_string_lossy().into_owned(),
            ..fc_portal::Config::default()
        };
        c.service_auth.token = issuer.mint("portal", Duration::from_secs(86_400))?;
        c.service_auth.issuer_public_key = issuer.public_key();
        Ok(c)
    }

    /// The settlement service's NATS password ([`Harness::start_authenticated`]).
    pub fn settlement_password(&self) -> &str {
        self.users.as_ref().map_or("", |u| u.settlement.as_str())
    }

    /// The monitor's NATS password ([`Harness::start_authenticated`]).
    pub fn monitor_password(&self) -> &str {
        self.users.as_ref().map_or("", |u| u.monitor.as_str())
    }

    /// The portal's NATS password ([`Harness::start_authenticated`]).
    pub fn portal_password(&self) -> &str {
        self.users.as_ref().map_or("", |u| u.portal.as_str())
    }

    /// A token of `service`, signed by the harness's issuer.
    pub fn service_token(&self, service: &str) -> String {
        self.issuer.mint(service, Duration::from_secs(86_400)).expect("a valid service name")
    }

    /// The tenancy port's URL (`Admin`, `Tenancy`).
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.tenancy.addr)
    }

    /// An `Admin` client with the operator's token.
    pub async fn admin(&self) -> anyhow::Result<fc_proto::v1::admin_client::AdminClient<InterceptedService<Channel, Bearer>>> {
        Ok(fc_proto::v1::admin_client::AdminClient::with_interceptor(self.admin_channel().await?, bearer(&self.tenancy.admin_token)?))
    }

    /// A channel to the tenancy port (for clients with other credentials, or none).
    pub async fn admin_channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(self.admin_url())?.connect().await?)
    }

    /// Start the service on an existing bus (a cluster's URLs), adjusting the config first.
    pub async fn start_on(bus_url: String, tweak: fn(&mut Config)) -> anyhow::Result<Self> {
        fc_core::telemetry::init_for_tests();
        let nats = NatsServer::start().await?;
        Self::assemble(nats, bus_url, tweak).await
    }

    /// The configuration the service gets.
    pub fn config(&self) -> Config {
        let mut c = Config {
            data_dir: self.data.path().to_path_buf(),
            grpc_addr: "127.0.0.1:0".into(),
            http_addr: "127.0.0.1:0".into(),
            ..Config::default()
        };
        c.bus.url = self.bus_url.clone();
        c.shutdown_deadline_ms = 5_000;
        c.tenancy.url = self.admin_url();
        if let Some(u) = &self.users {
            (c.bus.user, c.bus.password) = ("ingest".into(), u.ingest.clone());
        }
        c.service_auth.token = self.service_token("ingest");
        c.service_auth.issuer_public_key = self.issuer.public_key();
        (self.tweak)(&mut c);
        c
    }

    async fn boot(&mut self) -> anyhow::Result<()> {
        self.shutdown = Shutdown::new();
        self.svc = Some(fc_ingest::serve(self.config(), self.shutdown.clone()).await?);
        Ok(())
    }

    /// The running service.
    pub fn svc(&self) -> &Running {
        self.svc.as_ref().expect("service running")
    }

    /// Stop gracefully and start again on the same data and NATS.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(svc) = self.svc.take() {
            svc.stop().await;
        }
        self.boot().await
    }

    /// A tenant and a device of it: `(tenant id, device token)`.
    pub fn tenant_with_device(&self, name: &str) -> anyhow::Result<(String, String)> {
        let reg = &self.registry;
        let t = reg.create_tenant(name, "growth")?;
        let (_, token) = reg.create_device(&t.id, &format!("{name} gateway"))?;
        Ok((t.id, token))
    }

    /// `http://<grpc addr>`.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.svc().grpc_addr)
    }

    /// A gRPC channel to the service.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(self.grpc_url())?.connect().await?)
    }

    /// Ingest client carrying `token`.
    pub async fn ingest(&self, token: &str) -> anyhow::Result<DeviceIngest> {
        Ok(IngestClient::with_interceptor(self.channel().await?, bearer(token)?)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20))
    }

    /// Query client carrying `token`.
    pub async fn query(&self, token: &str) -> anyhow::Result<DeviceQuery> {
        Ok(QueryClient::with_interceptor(self.channel().await?, bearer(token)?).max_decoding_message_size(64 << 20))
    }

    /// Messages the store writer has not yet written and acked.
    pub async fn writer_backlog(&self) -> anyhow::Result<u64> {
        let svc = self.svc();
        Ok(svc.state.bus.consumer_backlog(fc_bus::TELEMETRY_STREAM, &svc.state.config.writer.durable).await?)
    }

    /// Wait until the store writer caught up with everything published.
    pub async fn wait_writer_idle(&self) -> anyhow::Result<()> {
        wait_until(Duration::from_secs(30), "the store writer to catch up", || async {
            self.writer_backlog().await.map(|n| n == 0).unwrap_or(false)
        })
        .await
    }
}

impl Harness {
    /// Start the portal on port 0 over the running service's registry, store and NATS.
    pub async fn portal(&self) -> anyhow::Result<fc_portal::Running> {
        self.portal_with(|_| {}).await
    }

    /// A portal with adjusted settings, on a free port.
    pub async fn portal_with(&self, tweak: fn(&mut fc_portal::Config)) -> anyhow::Result<fc_portal::Running> {
        let mut cfg = Self::portal_config_for(self.data.path(), &self.issuer)?;
        cfg.telemetry_url = self.grpc_url();
        tweak(&mut cfg);
        cfg.settlement_url = format!("http://{}", self.settlement().await?.grpc_addr);
        cfg.monitor_url = format!("http://{}", self.monitor().await?.grpc_addr);
        Ok(fc_portal::serve(cfg, self.registry.clone(), self.portal_nats.clone(), self.shutdown.clone()).await?)
    }

    /// The settlement service's own data directory.
    pub fn settlement_dir(&self) -> std::path::PathBuf {
        self.data.path().join("settlement")
    }

    /// The settlement service (its own directory in the harness's data
    /// directory), asking the harness's tenancy port and reading telemetry
    /// through ingest's `Query` (started on first use; gRPC on a free port, a
    /// checkpoint every 100 ms).
    pub async fn settlement(&self) -> anyhow::Result<&fc_settlement_service::Running> {
        self.settlement
            .get_or_try_init(|| async {
                let mut cfg = fc_settlement_service::Config {
                    grpc_addr: "127.0.0.1:0".into(),
                    checkpoint_interval_ms: 100,
                    telemetry_url: self.grpc_url(),
                    data_dir: self.settlement_dir().to_string_lossy().into_owned(),
                    ..Default::default()
                };
                cfg.service_auth.token = self.service_token("settlement");
                cfg.service_auth.issuer_public_key = self.issuer.public_key();
                cfg.tenancy.url = self.admin_url();
                let mut bus = fc_bus::BusConfig { url: self.bus_url.clone(), ..Default::default() };
                if let Some(u) = &self.users {
                    (bus.user, bus.password) = ("settlement".into(), u.settlement.clone());
                }
                fc_settlement_service::serve(cfg, &bus, Shutdown::new()).await.map_err(anyhow::Error::from)
            })
            .await
    }
}

impl Harness {
    /// The monitor (its own directory in the harness's data directory), reading
    /// telemetry from the harness's NATS and checking metrics with ingest's `Query`
    /// (started on first use; a clock tick every 100 ms, a checkpoint every 200 ms;
    /// alarm e-mails to the harness's SMTP receiver, see [`Harness::mail`]).
    pub async fn monitor(&self) -> anyhow::Result<&fc_monitor_service::Running> {
        self.monitor
            .get_or_try_init(|| async {
                let sink = self.smtp.get_or_try_init(|| async { smtp::Sink::start().await.map(tokio::sync::Mutex::new) }).await?;
                let mut cfg = fc_monitor_service::Config {
                    smtp_url: sink.lock().await.url(),
                    grpc_addr: "127.0.0.1:0".into(),
                    data_dir: self.data.path().join("monitor").to_string_lossy().into_owned(),
                    telemetry_url: self.grpc_url(),
                    tick_interval_ms: 100,
                    checkpoint_interval_ms: 200,
                    ..Default::default()
                };
                cfg.service_auth.token = self.service_token("monitor");
                cfg.service_auth.issuer_public_key = self.issuer.public_key();
                let mut bus = fc_bus::BusConfig { url: self.bus_url.clone(), ..Default::default() };
                if let Some(u) = &self.users {
                    (bus.user, bus.password) = ("monitor".into(), u.monitor.clone());
                }
                fc_monitor_service::serve(cfg, &bus, Shutdown::new()).await.map_err(anyhow::Error::from)
            })
            .await
    }

    /// The next alarm e-mail the monitor sent, if one comes within `within`.
    pub async fn mail(&self, within: std::time::Duration) -> Option<smtp::Mail> {
        self.smtp.get()?.lock().await.next(within).await
    }
}

pub mod smtp;

/// Core NATS helpers for permission tests.
pub mod nats {
    use futures::StreamExt;
    use std::time::Duration;

    /// Waits until `sub` is registered at the server: `admin` publishes probes on
    /// `subject` until one arrives (a client's flush is not a round trip).
    pub async fn registered(sub: &mut async_nats::Subscriber, admin: &async_nats::Client, subject: &str) -> anyhow::Result<()> {
        for _ in 0..100 {
            admin.publish(subject.to_string(), "probe".into()).await?;
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), sub.next()).await {
                return Ok(());
            }
        }
        anyhow::bail!("the subscription to {subject} never received a probe")
    }

    /// Every message but probes that reaches `sub` within `window`.
    pub async fn collect(sub: &mut async_nats::Subscriber, window: Duration) -> Vec<String> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, sub.next()).await {
            let text = String::from_utf8_lossy(&m.payload).into_owned();
            if text != "probe" {
                got.push(text);
            }
        }
        got
    }
}

/// A minimal HTTP/1.1 client for tests: one request per connection.
pub mod http {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A response.
    #[derive(Debug)]
    pub struct Response {
        /// Status code.
        pub status: u16,
        /// Header lines, lowercase names.
        pub headers: Vec<(String, String)>,
        /// Body as text (lossy).
        pub body: String,
        /// Body as sent (de-chunked).
        pub bytes: Vec<u8>,
    }

    impl Response {
        /// First header of that name.
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
        }
        /// The body as JSON.
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
        }
    }

    /// `GET path` of the server at `url` (`http://host:port`, as services print it): status and body.
    pub async fn get(url: &str, path: &str) -> anyhow::Result<(u16, String)> {
        let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse()?;
        let r = request(addr, "GET", path, &[], b"").await?;
        Ok((r.status, r.body))
    }

    /// Send one request.
    pub async fn request(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<Response> {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await?;
        // The server may answer (413) before reading a big body: ignore a failed body write.
        let _ = s.write_all(body).await;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or((raw.len(), raw.len()), |i| (i, i + 4));
        let head = String::from_utf8_lossy(&raw[..split.0]).to_string();
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
        let headers =
            lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect::<Vec<_>>();
        let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let bytes = if chunked { dechunk(&raw[split.1..]) } else { raw[split.1..].to_vec() };
        Ok(Response { status, headers, body: String::from_utf8_lossy(&bytes).into_owned(), bytes })
    }

    fn dechunk(mut s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
            let size = String::from_utf8_lossy(&s[..eol]);
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let rest = &s[eol + 2..];
            if n == 0 || rest.len() < n {
                break;
            }
            out.extend_from_slice(&rest[..n]);
            s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
        }
        out
    }
}

/// A compact batch of `values` for series `m`/`x`, 1 ms apart, starting at `t0 + seq * values.len()`
/// (so consecutive sequence numbers never share a timestamp).
pub fn series_batch(seq: u64, t0: i64, values: Vec<f64>) -> fc_proto::v1::ReadingBatch {
    let n = values.len();
    fc_proto::v1::ReadingBatch {
        device_seq: seq,
        readings: vec![],
        series: vec![fc_proto::v1::SeriesReadings {
            machine: "m".into(),
            metric: "x".into(),
            unit: "".into(),
            base_timestamp_ms: t0 + seq as i64 * n as i64,
            timestamp_deltas_ms: vec![1; n],
            values,
            qualities: vec![],
        }],
    }
}

/// A batch of one reading of `machine`'s `metric`, timestamped now.
pub fn one_reading(seq: u64, machine: &str, metric: &str, unit: &str, value: f64) -> fc_proto::v1::ReadingBatch {
    let reading = fc_proto::v1::Reading {
        machine: machine.into(),
        metric: metric.into(),
        unit: unit.into(),
        timestamp_ms: fc_core::time::now_ms(),
        value,
        quality: 0,
    };
    fc_proto::v1::ReadingBatch { device_seq: seq, readings: vec![reading], series: vec![] }
}

/// A service binary (`bin`) to run as its own process with only the environment given:
/// `PATH`, `FC_DATA_DIR=data`, quiet logs, and `env` (its listeners, peers, identity).
pub fn service_command(bin: &str, data: &std::path::Path, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("FC_DATA_DIR", data).env("FC_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The interceptor for a bearer token.
pub fn bearer(token: &str) -> anyhow::Result<Bearer> {
    Ok(Bearer(format!("Bearer {token}").parse()?))
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.trigger();
        self.tenancy_shutdown.trigger();
    }
}

/// The services a gRPC server at `url` lists over reflection, asked over
/// `grpc.reflection.v1` and `v1alpha` (tools still differ): `(v1, v1alpha)`, sorted.
pub async fn reflected_services(url: &str) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    use tonic_reflection::pb::{v1, v1alpha};
    let channel = Channel::from_shared(url.to_string())?.connect().await?;
    let mut c1 = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let ask = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut answers = c1.server_reflection_info(futures::stream::iter([ask])).await?.into_inner();
    let mut one = Vec::new();
    if let Some(r) = answers.message().await? {
        match r.message_response {
            Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(l)) => {
                one = l.service.into_iter().map(|s| s.name).collect()
            }
            other => anyhow::bail!("v1 reflection answered {other:?}"),
        }
    }
    let mut c2 = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let ask = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut answers = c2.server_reflection_info(futures::stream::iter([ask])).await?.into_inner();
    let mut alpha = Vec::new();
    if let Some(r) = answers.message().await? {
        match r.message_response {
            Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(l)) => {
                alpha = l.service.into_iter().map(|s| s.name).collect()
            }
            other => anyhow::bail!("v1alpha reflection answered {other:?}"),
        }
    }
    one.sort();
    alpha.sort();
    Ok((one, alpha))
}

/// The `grpc.health.v1` status of `service` ("" for the whole server) at `url`.
pub async fn health_status(url: &str, service: &str) -> anyhow::Result<i32> {
    let channel = Channel::from_shared(url.to_string())?.connect().await?;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    Ok(health.check(tonic_health::pb::HealthCheckRequest { service: service.into() }).await?.into_inner().status)
}

/// A real OTLP/gRPC trace receiver (the collector's `TraceService`, served by
/// tonic on a kernel-chosen loopback port) that keeps every span it is sent.
pub struct OtlpReceiver {
    /// `http://127.0.0.1:<port>`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub url: String,
    spans: std::sync::Arc<std::sync::Mutex<Vec<ReceivedSpan>>>,
}

/// A span as the receiver got it; ids in lowercase hex (parent empty for a root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// The span's name.
    pub name: String,
    /// Its trace.
    pub trace_id: String,
    /// Its id.
    pub span_id: String,
    /// Its parent's id, empty for a root span.
    pub parent_span_id: String,
    /// `service.name` of the resource that sent it.
    pub service: String,
}

struct Collector(std::sync::Arc<std::sync::Mutex<Vec<ReceivedSpan>>>);

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse>, tonic::Status> {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut kept = self.0.lock().expect("spans");
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    kept.push(ReceivedSpan {
                        name: s.name,
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent_span_id: hex(&s.parent_span_id),
                        service: service.clone(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(Default::default()))
    }
}

impl OtlpReceiver {
    /// Start it.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let service =
            opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer::new(Collector(spans.clone()));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        Ok(Self { url, spans })
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("spans").clone()
    }

    /// Waits (up to `timeout`) until the spans of `trace_id` include every name in `names`.
    pub async fn wait_for(&self, trace_id: &str, names: &[&str], timeout: Duration) -> anyhow::Result<Vec<ReceivedSpan>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let trace: Vec<ReceivedSpan> = self.spans().into_iter().filter(|s| s.trace_id == trace_id).collect();
            if names.iter().all(|n| trace.iter().any(|s| s.name == *n)) {
                return Ok(trace);
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("trace {trace_id}: wanted spans {names:?}, got {trace:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
