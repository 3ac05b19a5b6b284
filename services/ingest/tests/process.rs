//! The `fc-ingest` binary as its own OS process: it starts with only its
//! configuration, says which peer is missing, and a device revoked at the
//! tenancy owner (another process: the test's) loses its open stream at once.

use fc_proto::v1::{AckStatus, RevokeDeviceRequest};
use fc_rpc::service_auth::Issuer;
use fc_testkit::{Harness, KillOnDrop, NatsServer};
use std::process::{Command, Stdio};
use std::time::Duration;

/// `fc-ingest` with only environment configuration; returns it and its gRPC URL.
fn fc_ingest(data: &std::path::Path, env: &[(&str, String)]) -> anyhow::Result<(KillOnDrop, String)> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fc-ingest"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FC_DATA_DIR", data)
        .env("FC_GRPC_ADDR", "127.0.0.1:0")
        .env("FC_HTTP_ADDR", "127.0.0.1:0")
        .env("FC_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let proc = KillOnDrop(child);
    let [grpc] = fc_testkit::printed_addresses(stdout, ["ingest gRPC (Ingest, Query):"])?;
    Ok((proc, grpc))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alone_it_starts_and_names_the_missing_tenancy_owner() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let data = tempfile::tempdir()?;
    let issuer = Issuer::generate()?;
    let tenancy = fc_testkit::unused_url("http")?;
    let (_proc, grpc) = fc_ingest(
        data.path(),
        &[
            ("FC_BUS__URL", nats.url.clone()),
            ("FC_TENANCY__URL", tenancy.clone()),
            ("FC_SERVICE_AUTH__TOKEN", issuer.mint("ingest", Duration::from_secs(600))?),
        ],
    )?;
    let channel = tonic::transport::Channel::from_shared(grpc)?.connect().await?;
    let mut ingest = fc_proto::v1::ingest_client::IngestClient::with_interceptor(channel, fc_testkit::bearer("fcd_d_0000000000000000_00")?);
    let err = ingest.push(fc_testkit::series_batch(1, fc_core::time::now_ms(), vec![1.0])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains(&format!("tenancy service at {tenancy} is unreachable")), "names the peer: {err:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nats_it_exits_naming_the_bus_url() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let nats = fc_testkit::unused_url("nats")?;
    let out = Command::new(env!("CARGO_BIN_EXE_fc-ingest"))
        .env_clear()
        .env("FC_DATA_DIR", data.path())
        .env("FC_GRPC_ADDR", "127.0.0.1:0")
        .env("FC_HTTP_ADDR", "127.0.0.1:0")
        .env("FC_BUS__URL", &nats)
        .env("FC_SERVICE_AUTH__TOKEN", Issuer::generate()?.mint("ingest", Duration::from_secs(600))?)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it does not run without its bus");
    assert!(stderr.contains(&format!("no NATS server answers at {nats}")), "{stderr}");
    // And without a credential it does not start at all.
    let out = Command::new(env!("CARGO_BIN_EXE_fc-ingest")).env_clear().env("FC_DATA_DIR", data.path()).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("service_auth"), "{stderr}");
    Ok(())
}

/// Revoking a device at the tenancy owner (this test process) ends its open
/// stream in an `fc-ingest` process at once, over a real NATS server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_device_ends_its_open_stream_in_the_other_process() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (tenant, token) = h.tenant_with_device("Remote Co")?;
    let device_id = h.registry.list_devices(&tenant)?.remove(0).id;
    let data = tempfile::tempdir()?;
    let (_proc, grpc) = fc_ingest(
        data.path(),
        &[
            ("FC_BUS__URL", h.bus_url.clone()),
            ("FC_TENANCY__URL", h.admin_url()),
            ("FC_SERVICE_AUTH__TOKEN", h.service_token("ingest")),
            // Its own store writer: the harness's in-process ingest has one on this stream too.
            ("FC_WRITER__DURABLE", "store-writer-process".into()),
        ],
    )?;
    let channel = tonic::transport::Channel::from_shared(grpc)?.connect().await?;
    let mut ingest = fc_proto::v1::ingest_client::IngestClient::with_interceptor(channel, fc_testkit::bearer(&token)?);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(fc_testkit::series_batch(1, fc_core::time::now_ms() - 60_000, vec![1.0; 10])).await?;
    let mut acks = ingest.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    assert_eq!(acks.message().await?.expect("an ack").status(), AckStatus::Ok);

    h.admin().await?.revoke_device(RevokeDeviceRequest { tenant_id: tenant, device_id }).await?;
    let ended = tokio::time::timeout(Duration::from_secs(5), acks.message()).await.expect("the stream ends within 5 s");
    assert_eq!(ended.unwrap_err().code(), tonic::Code::Unauthenticated);
    let again = ingest.push(fc_testkit::series_batch(2, fc_core::time::now_ms() - 60_000, vec![1.0; 10])).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::Unauthenticated);
    drop(tx);
    Ok(())
}
