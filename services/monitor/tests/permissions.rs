//! The monitor with its own NATS user (`fc_bus::auth`): it consumes telemetry and
//! announces alarms within its permissions; it cannot write telemetry, and no other
//! service can announce an alarm.

use async_nats::ConnectOptions;
use fc_core::Shutdown;
use fc_proto::v1::PutRuleRequest;
use fc_proto::v1::monitor_client::MonitorClient;
use fc_rpc::service_auth::{TENANT_HEADER, TOKEN_HEADER};
use fc_testkit::nats::{collect, registered};
use fc_testkit::{Harness, NATS_ADMIN_PASSWORD};
use std::time::Duration;

fn batch(seq: u64, value: f64) -> fc_proto::v1::ReadingBatch {
    fc_testkit::one_reading(seq, "press-1", "temp", "Cel", value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_works_within_its_subjects_and_only_it_announces_alarms() -> anyhow::Result<()> {
    let h = Harness::start_authenticated().await?;
    let (tenant, token) = h.tenant_with_device("acme")?;
    let mut ingest = h.ingest(&token).await?;
    ingest.push(batch(1, 20.0)).await?;
    h.wait_writer_idle().await?;

    let mut cfg = fc_monitor_service::Config {
        grpc_addr: "127.0.0.1:0".into(),
        data_dir: h.data.path().join("monitor").to_string_lossy().into_owned(),
        telemetry_url: h.grpc_url(),
        ..Default::default()
    };
    cfg.service_auth.token = h.service_token("monitor");
    cfg.service_auth.issuer_public_key = h.issuer.public_key();
    let bus =
        fc_bus::BusConfig { url: h.bus_url.clone(), user: "monitor".into(), password: h.monitor_password().into(), ..Default::default() };
    let stop = Shutdown::new();
    let m = fc_monitor_service::serve(cfg, &bus, stop.clone()).await?;

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", m.grpc_addr))?.connect().await?;
    let mut req = tonic::Request::new(PutRuleRequest {
        rule_json: r#"{"id":"hot","condition":{"type":"threshold","metric":"temp","above":80}}"#.into(),
        user: "kim".into(),
    });
    req.metadata_mut().insert(TOKEN_HEADER, h.service_token("portal").parse()?);
    req.metadata_mut().insert(TENANT_HEADER, tenant.parse()?);
    MonitorClient::new(channel).put_rule(req).await?;

    let url = h.bus_url.clone();
    let admin = ConnectOptions::with_user_and_password("admin".into(), NATS_ADMIN_PASSWORD.into()).connect(&url).await?;
    let events_subject = format!("fc.{tenant}.events.alarm");
    let mut events = admin.subscribe(events_subject.clone()).await?;
    let mut telemetry = admin.subscribe("fc.t_x.telemetry.m").await?;
    registered(&mut events, &admin, &events_subject).await?;
    registered(&mut telemetry, &admin, "fc.t_x.telemetry.m").await?;

    let monitor_user = ConnectOptions::with_user_and_password("monitor".into(), h.monitor_password().into()).connect(&url).await?;
    monitor_user.publish("fc.t_x.telemetry.m", "forged by the monitor".into()).await?;
    monitor_user.flush().await?;
    h.portal_nats.publish(events_subject.clone(), "forged by the portal".into()).await?;
    h.portal_nats.flush().await?;

    ingest.push(batch(2, 90.0)).await?;
    let got = collect(&mut events, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("\"kind\":\"raised\""), "the monitor's genuine event: {got:?}");
    assert!(collect(&mut telemetry, Duration::from_millis(300)).await.is_empty(), "the monitor cannot write telemetry");
    stop.trigger();
    m.wait().await;
    Ok(())
}
