//! The monitor end to end: readings through the real ingest path raise an alarm that is
//! stored and announced on `fc.<tenant>.events.alarm`; operators acknowledge and clear it
//! through the API; a restart neither loses it nor raises it twice; another tenant sees
//! and changes nothing; bad rules get clear errors; only the portal may call.

use fc_core::Shutdown;
use fc_monitor_service::{Config, Running};
use fc_proto::v1::monitor_client::MonitorClient;
use fc_proto::v1::{AlarmActionRequest, AlarmRef, ListAlarmsRequest, PutRuleRequest, Reading, ReadingBatch};
use fc_rpc::service_auth::{TENANT_HEADER, TOKEN_HEADER};
use fc_testkit::Harness;
use futures::StreamExt;
use std::time::Duration;
use tonic::Code;

fn config(h: &Harness) -> Config {
    let mut c = Config {
        grpc_addr: "127.0.0.1:0".into(),
        data_dir: h.data.path().join("monitor").to_string_lossy().into_owned(),
        telemetry_url: h.grpc_url(),
        tick_interval_ms: 100,
        checkpoint_interval_ms: 200,
        ack_wait_ms: 2000,
        ..Config::default()
    };
    c.service_auth.token = h.service_token("monitor");
    c.service_auth.issuer_public_key = h.issuer.public_key();
    c
}

async fn start(h: &Harness) -> anyhow::Result<(Running, Shutdown)> {
    let shutdown = Shutdown::new();
    let bus = fc_bus::BusConfig { url: h.bus_url.clone(), ..Default::default() };
    Ok((fc_monitor_service::serve(config(h), &bus, shutdown.clone()).await?, shutdown))
}

struct Api {
    client: MonitorClient<tonic::transport::Channel>,
    token: String,
}

impl Api {
    async fn new(h: &Harness, m: &Running, service: &str) -> anyhow::Result<Self> {
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", m.grpc_addr))?.connect().await?;
        Ok(Self { client: MonitorClient::new(channel), token: h.service_token(service) })
    }

    fn req<T>(&self, tenant: &str, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert(TOKEN_HEADER, self.token.parse().unwrap());
        r.metadata_mut().insert(TENANT_HEADER, tenant.parse().unwrap());
        r
    }
}

fn reading(machine: &str, metric: &str, value: f64) -> ReadingBatch {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ReadingBatch {
        device_seq: seq,
        readings: vec![Reading {
            machine: machine.into(),
            metric: metric.into(),
            unit: "Cel".into(),
            timestamp_ms: fc_core::time::now_ms() + seq as i64,
            value,
            quality: 0,
        }],
        series: vec![],
    }
}

const HOT: &str = r#"{"id":"hot","severity":"major","condition":{"type":"threshold","metric":"temp","above":80,"hysteresis":2}}"#;

/// Next alarm event of the subscription: (kind, alarm id, state).
async fn next_event(sub: &mut async_nats::Subscriber) -> anyhow::Result<(String, String, String)> {
    let msg = tokio::time::timeout(Duration::from_secs(10), sub.next()).await?.ok_or_else(|| anyhow::anyhow!("subscription ended"))?;
    let v: serde_json::Value = serde_json::from_slice(&msg.payload)?;
    Ok((
        v["kind"].as_str().unwrap_or("").into(),
        v["alarm"]["id"].as_str().unwrap_or("").into(),
        v["alarm"]["state"].as_str().unwrap_or("").into(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_raise_an_alarm_that_operators_acknowledge_and_that_clears_once() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (a, token_a) = h.tenant_with_device("acme")?;
    let (b, token_b) = h.tenant_with_device("beta")?;
    let mut ingest = h.ingest(&token_a).await?;
    let mut ingest_b = h.ingest(&token_b).await?;
    ingest.push(reading("press-1", "temp", 20.0)).await?;
    ingest_b.push(reading("press-1", "temp", 99.0)).await?;
    h.wait_writer_idle().await?;

    let (m, stop) = start(&h).await?;
    let mut api = Api::new(&h, &m, "portal").await?;
    let info = api.client.put_rule(api.req(&a, PutRuleRequest { rule_json: HOT.into(), user: "kim".into() })).await?.into_inner();
    assert_eq!(info.version, 1);
    let nats = async_nats::connect(&h.bus_url).await?;
    let mut events = nats.subscribe(format!("fc.{a}.events.alarm")).await?;
    let mut events_b = nats.subscribe(format!("fc.{b}.events.alarm")).await?;
    nats.flush().await?;

    ingest.push(reading("press-1", "temp", 90.0)).await?;
    let (kind, id, state) = next_event(&mut events).await?;
    assert_eq!((kind.as_str(), state.as_str()), ("raised", "raised"));
    let alarm = api.client.get_alarm(api.req(&a, AlarmRef { alarm_id: id.clone() })).await?.into_inner();
    assert_eq!((alarm.rule_id.as_str(), alarm.rule_version, alarm.machine.as_str(), alarm.metric.as_str()), ("hot", 1, "press-1", "temp"));
    assert_eq!(alarm.severity, "major");
    assert_eq!(alarm.reason, "temp 90 Cel is above the limit of 80 Cel");

    // Tenant B has no rule: its hot reading raised nothing, and it cannot see or touch A's alarm.
    assert!(tokio::time::timeout(Duration::from_millis(300), events_b.next()).await.is_err(), "B has no rules");
    let listed_b = api.client.list_alarms(api.req(&b, ListAlarmsRequest::default())).await?.into_inner();
    assert!(listed_b.alarms.is_empty());
    let e = api.client.get_alarm(api.req(&b, AlarmRef { alarm_id: id.clone() })).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = api
        .client
        .acknowledge_alarm(api.req(&b, AlarmActionRequest { alarm_id: id.clone(), user: "eve".into(), comment: String::new() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(api.client.list_rules(api.req(&b, Default::default())).await?.into_inner().rules.is_empty());

    let acked = api
        .client
        .acknowledge_alarm(api.req(&a, AlarmActionRequest { alarm_id: id.clone(), user: "kim".into(), comment: "looking".into() }))
        .await?
        .into_inner();
    assert_eq!((acked.state.as_str(), acked.acknowledged_by.as_str()), ("acknowledged", "kim"));
    assert_eq!(acked.notes[0].text, "looking");
    assert_eq!(next_event(&mut events).await?, ("acknowledged".into(), id.clone(), "acknowledged".into()));

    // A restart while the alarm is open: the still-hot machine raises nothing new.
    stop.trigger();
    m.wait().await;
    let (m, stop) = start(&h).await?;
    api = Api::new(&h, &m, "portal").await?;
    ingest.push(reading("press-1", "temp", 91.0)).await?;
    ingest.push(reading("press-1", "temp", 10.0)).await?;
    let (kind, cleared_id, state) = next_event(&mut events).await?;
    assert_eq!((kind.as_str(), cleared_id.as_str(), state.as_str()), ("cleared", id.as_str(), "cleared"));
    let all = api.client.list_alarms(api.req(&a, ListAlarmsRequest::default())).await?.into_inner().alarms;
    assert_eq!(all.len(), 1, "one alarm, never raised twice: {all:?}");
    let kinds: Vec<&str> = all[0].history.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["raised", "acknowledged", "cleared"]);
    assert!(tokio::time::timeout(Duration::from_millis(300), events.next()).await.is_err(), "no further event");
    stop.trigger();
    m.wait().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_and_callers_are_refused_clearly() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (a, token) = h.tenant_with_device("acme")?;
    h.ingest(&token).await?.push(reading("press-1", "temp", 20.0)).await?;
    h.wait_writer_idle().await?;
    let (m, stop) = start(&h).await?;
    let mut api = Api::new(&h, &m, "portal").await?;
    for (rule, says) in [
        (
            r#"{"id":"x","condition":{"type":"threshold","metric":"tmep","above":80}}"#,
            "no series of any machine is named \"tmep\" (metrics this tenant has: temp)",
        ),
        (r#"{"id":"x","condition":{"type":"threshold","metric":"temp","above":NaN}}"#, "rule_json"),
        (r#"{"id":"x","condition":{"type":"threshold","metric":"temp","above":1e999}}"#, "rule_json"),
        (r#"{"id":"x","condition":{"type":"threshold","metric":"temp"}}"#, "exactly one of above or below"),
        (r#"{"id":"x","condition":{"type":"anomaly","metric":"temp","sensitivity":0}}"#, "sensitivity must be 0.1 to 10"),
    ] {
        let e = api.client.put_rule(api.req(&a, PutRuleRequest { rule_json: rule.into(), user: "kim".into() })).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{rule}: {e:?}");
        assert!(e.message().contains(says), "{rule}: {} should say {says:?}", e.message());
    }
    assert!(api.client.list_rules(api.req(&a, Default::default())).await?.into_inner().rules.is_empty(), "nothing was saved");

    let e = api
        .client
        .comment_alarm(api.req(&a, AlarmActionRequest { alarm_id: "al_none".into(), user: "kim".into(), comment: "hi".into() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Only the portal may call, and only with a service credential.
    let ingest_api = Api::new(&h, &m, "ingest").await?;
    let mut c = ingest_api.client.clone();
    let e = c.list_rules(ingest_api.req(&a, Default::default())).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let mut bare = tonic::Request::new(fc_proto::v1::ListRulesRequest {});
    bare.metadata_mut().insert(TENANT_HEADER, a.parse()?);
    assert_eq!(c.list_rules(bare).await.unwrap_err().code(), Code::Unauthenticated);
    stop.trigger();
    m.wait().await;
    Ok(())
}

/// Under interest retention every consumer holds the stream's messages: the monitor's
/// consumer expires when the monitor is gone, so telemetry does not pile up for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_gone_for_good_stops_holding_telemetry() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let mut cfg = config(&h);
    cfg.consumer_inactive_threshold_ms = 1500;
    let stop = Shutdown::new();
    let bus = fc_bus::BusConfig { url: h.bus_url.clone(), ..Default::default() };
    let m = fc_monitor_service::serve(cfg, &bus, stop.clone()).await?;
    let js = async_nats::jetstream::new(async_nats::connect(&h.bus_url).await?);
    let stream = js.get_stream(fc_bus::TELEMETRY_STREAM).await?;
    fc_testkit::wait_until(Duration::from_secs(10), "the monitor's consumer", || async {
        stream.get_consumer::<async_nats::jetstream::consumer::pull::Config>("monitor").await.is_ok()
    })
    .await?;
    stop.trigger();
    m.wait().await;
    fc_testkit::wait_until(Duration::from_secs(15), "the abandoned consumer to expire", || async {
        stream.get_consumer::<async_nats::jetstream::consumer::pull::Config>("monitor").await.is_err()
    })
    .await?;
    assert!(
        stream.get_consumer::<async_nats::jetstream::consumer::pull::Config>("store-writer").await.is_ok(),
        "the store writer's never expires"
    );
    Ok(())
}
