//! The `fc-portal` binary as its own OS process: it starts with only its
//! configuration, reports on `/readyz` which peer is missing, and serves the
//! operator's `Admin` API and its pages on its own.

use fc_rpc::service_auth::Issuer;
use fc_testkit::http::get;
use fc_testkit::{KillOnDrop, NatsServer};
use std::process::{Command, Stdio};
use std::time::Duration;

const ADMIN: &str = "process-test-admin-token-0123456789abcdef";

/// `fc-portal` on `nats` with only environment configuration: the process and
/// its `[portal, admin gRPC, ops]` URLs.
fn fc_portal(data: &std::path::Path, nats: &str) -> anyhow::Result<(KillOnDrop, [String; 3])> {
    let issuer = Issuer::generate()?;
    let telemetry = fc_testkit::unused_url("http")?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_fc-portal"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FC_DATA_DIR", data)
        .env("FC_BUS__URL", nats)
        .env("FC_PORTAL__LISTEN_ADDR", "127.0.0.1:0")
        .env("FC_PORTAL__GRPC_ADDR", "127.0.0.1:0")
        .env("FC_PORTAL__OPS_ADDR", "127.0.0.1:0")
        .env("FC_SETTLEMENT__GRPC_ADDR", "127.0.0.1:0")
        .env("FC_MONITOR__GRPC_ADDR", "127.0.0.1:0")
        .env("FC_PORTAL__TELEMETRY_URL", telemetry)
        .env("FC_PORTAL__SERVICE_AUTH__TOKEN", issuer.mint("portal", Duration::from_secs(600))?)
        .env("FC_PORTAL__SERVICE_AUTH__ISSUER_PUBLIC_KEY", issuer.public_key())
        .env("FC_SETTLEMENT__SERVICE_AUTH__TOKEN", issuer.mint("settlement", Duration::from_secs(600))?)
        .env("FC_ADMIN_TOKEN", ADMIN)
        .env("FC_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let proc = KillOnDrop(child);
    let urls = fc_testkit::printed_addresses(stdout, ["portal:", "gRPC (Admin, Tenancy):", "portal HTTP (health, metrics):"])?;
    Ok((proc, urls))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alone_it_starts_and_names_the_missing_bus_on_readyz() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let dead = fc_testkit::unused_url("nats")?;
    let (_proc, [portal, _, ops]) = fc_portal(data.path(), &dead)?;
    assert_eq!(get(&ops, "/healthz").await?.0, 200, "alive");
    let (code, body) = get(&ops, "/readyz").await?;
    assert_eq!((code, body.trim()), (503, "not ready: NATS is unreachable"));
    assert_eq!(get(&portal, "/login").await?.0, 200, "the login page needs no peer");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_bus_it_is_ready_and_serves_the_operator() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let data = tempfile::tempdir()?;
    let (_proc, [portal, admin, ops]) = fc_portal(data.path(), &nats.url)?;
    fc_testkit::wait_until(Duration::from_secs(10), "the portal to be ready", || async {
        get(&ops, "/readyz").await.map(|(c, _)| c == 200).unwrap_or(false)
    })
    .await?;
    assert_eq!(get(&portal, "/login").await?.0, 200);
    let (_, metrics) = get(&ops, "/metrics").await?;
    assert!(metrics.contains("portal_http_requests_total"), "the process's metrics: {metrics}");
    let channel = tonic::transport::Channel::from_shared(admin)?.connect().await?;
    let mut c = fc_proto::v1::admin_client::AdminClient::with_interceptor(channel, fc_testkit::bearer(ADMIN)?);
    let t = c.create_tenant(fc_proto::v1::CreateTenantRequest { name: "Own Process Co".into(), plan: String::new() }).await?.into_inner();
    assert_eq!(t.plan, "starter");
    assert!(data.path().join("registry.redb").exists(), "its own files, in its data dir");
    assert!(!data.path().join("settlement.redb").exists() && !data.path().join("settlement").exists(), "settlement is another process");
    Ok(())
}
