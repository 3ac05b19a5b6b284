//! The `fc-monitor` binary as its own OS process: it starts with only its configuration,
//! keeps its file in its own directory, serves health and metrics, and says which peer
//! is missing.

use fc_proto::v1::PutRuleRequest;
use fc_proto::v1::monitor_client::MonitorClient;
use fc_rpc::service_auth::{Issuer, TENANT_HEADER, TOKEN_HEADER};
use fc_testkit::http::get;
use fc_testkit::{KillOnDrop, NatsServer};
use std::process::{Command, Stdio};
use std::time::Duration;

fn command(data: &std::path::Path, env: &[(&str, String)]) -> Command {
    let listeners = [("FC_MONITOR__GRPC_ADDR", "127.0.0.1:0".to_string()), ("FC_MONITOR__OPS_ADDR", "127.0.0.1:0".to_string())];
    fc_testkit::service_command(env!("CARGO_BIN_EXE_fc-monitor"), data, &[&listeners[..], env].concat())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alone_it_starts_in_its_own_directory_and_names_the_missing_query_service() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let data = tempfile::tempdir()?;
    let issuer = Issuer::generate()?;
    let query = fc_testkit::unused_url("http")?;
    let mut cmd = command(
        data.path(),
        &[
            ("FC_BUS__URL", nats.url.clone()),
            ("FC_MONITOR__TELEMETRY_URL", query.clone()),
            ("FC_MONITOR__SERVICE_AUTH__TOKEN", issuer.mint("monitor", Duration::from_secs(600))?),
            ("FC_MONITOR__SERVICE_AUTH__ISSUER_PUBLIC_KEY", issuer.public_key()),
        ],
    );
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let _proc = KillOnDrop(child);
    let [grpc, ops] = fc_testkit::printed_addresses(stdout, ["gRPC (Monitor):", "monitor HTTP (health, metrics):"])?;
    assert!(data.path().join("monitor").join("monitor.redb").exists(), "its own directory in the platform's");
    fc_testkit::wait_until(Duration::from_secs(10), "the monitor to be ready", || async {
        get(&ops, "/readyz").await.map(|(c, _)| c == 200).unwrap_or(false)
    })
    .await?;
    assert_eq!(get(&ops, "/healthz").await?.0, 200);
    // Saving a rule asks ingest's Query which metrics exist: unreachable, and named.
    let mut r = tonic::Request::new(PutRuleRequest {
        rule_json: r#"{"id":"hot","condition":{"type":"threshold","metric":"temp","above":80}}"#.into(),
        user: "kim".into(),
    });
    r.metadata_mut().insert(TOKEN_HEADER, issuer.mint("portal", Duration::from_secs(600))?.parse()?);
    r.metadata_mut().insert(TENANT_HEADER, "t_0123456789abcdef".parse()?);
    let channel = tonic::transport::Channel::from_shared(grpc)?.connect().await?;
    let e = MonitorClient::new(channel).put_rule(r).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains(&query), "names the peer: {e:?}");
    let (_, metrics) = get(&ops, "/metrics").await?;
    assert!(metrics.contains(r#"grpc_server_requests_total{method="/factorychain.v1.Monitor/PutRule"} 1"#), "{metrics}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nats_or_a_credential_it_exits_saying_why() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let nats = fc_testkit::unused_url("nats")?;
    let issuer = Issuer::generate()?;
    let env = [
        ("FC_BUS__URL", nats.clone()),
        ("FC_MONITOR__SERVICE_AUTH__TOKEN", issuer.mint("monitor", Duration::from_secs(600))?),
        ("FC_MONITOR__SERVICE_AUTH__ISSUER_PUBLIC_KEY", issuer.public_key()),
    ];
    let out = command(data.path(), &env).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it does not run without its bus");
    assert!(stderr.contains(&format!("no NATS server answers at {nats}")), "{stderr}");
    let out = command(data.path(), &[]).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("monitor.service_auth"), "{stderr}");
    Ok(())
}
