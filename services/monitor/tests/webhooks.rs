//! Notifications against real receivers started by the test. Webhooks: an alarm is
//! POSTed with a signature the receiver verifies; an endpoint that keeps failing ends
//! in the dead-letter list; an unsafe address is refused unless the operator allows it.
//! E-mail: alarms reach the users subscribed to them through a real SMTP receiver,
//! a refused message is sent again, and a platform without SMTP refuses subscriptions.

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use fc_core::Shutdown;
use fc_proto::v1::monitor_client::MonitorClient;
use fc_proto::v1::monitor_notifications_client::MonitorNotificationsClient;
use fc_proto::v1::{
    DeleteEmailSubscriptionRequest, EmailSubscription, ListDeliveriesRequest, ListEmailSubscriptionsRequest, PutRuleRequest,
    PutWebhookRequest,
};
use fc_rpc::service_auth::{TENANT_HEADER, TOKEN_HEADER};
use fc_testkit::{Harness, wait_until};
use std::time::Duration;
use tokio::sync::mpsc;

fn batch(seq: u64, value: f64) -> fc_proto::v1::ReadingBatch {
    fc_testkit::one_reading(seq, "press-1", "temp", "Cel", value)
}

/// A receiver: `/hook` records (signature, body) and answers 204; `/broken` answers 500.
async fn receiver() -> anyhow::Result<(String, mpsc::UnboundedReceiver<(String, String)>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route(
            "/hook",
            post(move |headers: HeaderMap, body: String| {
                let tx = tx.clone();
                async move {
                    let sig = headers.get("factorychain-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    let _ = tx.send((sig, body));
                    StatusCode::NO_CONTENT
                }
            }),
        )
        .route("/broken", post(|| async { StatusCode::INTERNAL_SERVER_ERROR }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{addr}"), rx))
}

fn req<T>(h: &Harness, tenant: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(TOKEN_HEADER, h.service_token("portal").parse().unwrap());
    r.metadata_mut().insert(TENANT_HEADER, tenant.parse().unwrap());
    r
}

async fn monitor(h: &Harness, durable: &str, allow_private: bool) -> anyhow::Result<(fc_monitor_service::Running, Shutdown)> {
    monitor_with(h, durable, allow_private, "").await
}

async fn monitor_with(
    h: &Harness,
    durable: &str,
    allow_private: bool,
    smtp_url: &str,
) -> anyhow::Result<(fc_monitor_service::Running, Shutdown)> {
    let mut cfg = fc_monitor_service::Config {
        smtp_url: smtp_url.into(),
        portal_url: "https://portal.example".into(),
        grpc_addr: "127.0.0.1:0".into(),
        data_dir: h.data.path().join(durable).to_string_lossy().into_owned(),
        durable: durable.into(),
        telemetry_url: h.grpc_url(),
        allow_private_webhooks: allow_private,
        webhook_attempts: 2,
        ..Default::default()
    };
    cfg.service_auth.token = h.service_token("monitor");
    cfg.service_auth.issuer_public_key = h.issuer.public_key();
    let stop = Shutdown::new();
    let bus = fc_bus::BusConfig { url: h.bus_url.clone(), ..Default::default() };
    Ok((fc_monitor_service::serve(cfg, &bus, stop.clone()).await?, stop))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_reach_webhooks_signed_and_failures_end_in_the_dead_letter_list() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (tenant, token) = h.tenant_with_device("acme")?;
    let mut ingest = h.ingest(&token).await?;
    ingest.push(batch(1, 20.0)).await?;
    h.wait_writer_idle().await?;
    let (url, mut received) = receiver().await?;

    // A monitor as a shared cloud runs it refuses a loopback endpoint.
    let (strict, strict_stop) = monitor(&h, "monitor-strict", false).await?;
    let ch = tonic::transport::Channel::from_shared(format!("http://{}", strict.grpc_addr))?.connect().await?;
    let hook = PutWebhookRequest { id: "ops".into(), url: format!("{url}/hook"), ..Default::default() };
    let e = MonitorNotificationsClient::new(ch).put_webhook(req(&h, &tenant, hook)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("loopback"), "{e:?}");
    strict_stop.trigger();
    strict.wait().await;

    let (m, stop) = monitor(&h, "monitor", true).await?;
    let ch = tonic::transport::Channel::from_shared(format!("http://{}", m.grpc_addr))?.connect().await?;
    let mut rules = MonitorClient::new(ch.clone());
    let mut hooks = MonitorNotificationsClient::new(ch);
    rules
        .put_rule(req(
            &h,
            &tenant,
            PutRuleRequest {
                rule_json: r#"{"id":"hot","condition":{"type":"threshold","metric":"temp","above":80}}"#.into(),
                user: "kim".into(),
            },
        ))
        .await?;
    let made = hooks
        .put_webhook(req(&h, &tenant, PutWebhookRequest { id: "ops".into(), url: format!("{url}/hook"), ..Default::default() }))
        .await?
        .into_inner();
    assert!(made.secret.starts_with("whsec_"), "a secret is made and shown once: {made:?}");
    let short = PutWebhookRequest { id: "x".into(), url: format!("{url}/hook"), secret: "short".into(), ..Default::default() };
    assert_eq!(hooks.put_webhook(req(&h, &tenant, short)).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let broken = PutWebhookRequest {
        id: "broken".into(),
        url: format!("{url}/broken"),
        secret: "0123456789abcdef0123".into(),
        ..Default::default()
    };
    hooks.put_webhook(req(&h, &tenant, broken)).await?;
    let listed = hooks.list_webhooks(req(&h, &tenant, Default::default())).await?.into_inner().webhooks;
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|w| w.secret.is_empty()), "secrets are not listed");

    ingest.push(batch(2, 95.0)).await?;
    let (signature, body) = tokio::time::timeout(Duration::from_secs(10), received.recv()).await?.expect("a delivery");
    let now_s = fc_core::time::now_ms() / 1000;
    fc_monitor::notify::verify(made.secret.as_bytes(), &signature, body.as_bytes(), now_s, 300).expect("the signature verifies");
    assert!(fc_monitor::notify::verify(b"another secret!!", &signature, body.as_bytes(), now_s, 300).is_err());
    let event: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!((event["kind"].as_str(), event["alarm"]["machine"].as_str()), (Some("raised"), Some("press-1")));

    wait_until(Duration::from_secs(10), "the broken endpoint's delivery to be dead", || async {
        let r = hooks.clone().list_deliveries(req(&h, &tenant, ListDeliveriesRequest { state: "dead".into(), limit: 0 })).await;
        r.is_ok_and(|r| r.into_inner().deliveries.iter().any(|d| d.webhook_id == "broken" && d.attempts == 2))
    })
    .await?;
    let dead =
        hooks.list_deliveries(req(&h, &tenant, ListDeliveriesRequest { state: "dead".into(), limit: 0 })).await?.into_inner().deliveries;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].last_error, "the endpoint answered 500");
    let delivered = hooks
        .list_deliveries(req(&h, &tenant, ListDeliveriesRequest { state: "delivered".into(), limit: 0 }))
        .await?
        .into_inner()
        .deliveries;
    assert_eq!(delivered.iter().map(|d| d.webhook_id.as_str()).collect::<Vec<_>>(), ["ops"]);
    stop.trigger();
    m.wait().await;
    Ok(())
}

fn subscription(user: &str, address: &str, min_severity: &str, machines: &[&str]) -> EmailSubscription {
    EmailSubscription {
        user_id: user.into(),
        address: address.into(),
        min_severity: min_severity.into(),
        machines: machines.iter().map(|m| m.to_string()).collect(),
        created_at_ms: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_reach_subscribed_users_by_email_through_a_real_smtp_server() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (tenant, token) = h.tenant_with_device("acme")?;
    let (other, _) = h.tenant_with_device("other")?;
    let mut ingest = h.ingest(&token).await?;
    ingest.push(batch(1, 20.0)).await?;
    h.wait_writer_idle().await?;

    // Without an SMTP server, a subscription is refused in words.
    let (plain, plain_stop) = monitor(&h, "monitor-no-smtp", false).await?;
    let ch = tonic::transport::Channel::from_shared(format!("http://{}", plain.grpc_addr))?.connect().await?;
    let e = MonitorNotificationsClient::new(ch)
        .put_email_subscription(req(&h, &tenant, subscription("u1", "kim@acme.example", "", &[])))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("smtp_url"), "{e:?}");
    plain_stop.trigger();
    plain.wait().await;

    let mut sink = fc_testkit::smtp::Sink::start().await?;
    let (m, stop) = monitor_with(&h, "monitor", false, &sink.url()).await?;
    let ch = tonic::transport::Channel::from_shared(format!("http://{}", m.grpc_addr))?.connect().await?;
    let mut rules = MonitorClient::new(ch.clone());
    let mut notes = MonitorNotificationsClient::new(ch);
    let hot = r#"{"id":"hot","severity":"critical","condition":{"type":"threshold","metric":"temp","above":80}}"#;
    rules.put_rule(req(&h, &tenant, PutRuleRequest { rule_json: hot.into(), user: "kim".into() })).await?;

    // Bad subscriptions: clear errors, nothing saved.
    for (bad, field) in [
        (subscription("u9", "not an address", "", &[]), "address"),
        (subscription("u9", "a@b.example", "loud", &[]), "min_severity"),
        (subscription("", "a@b.example", "", &[]), "user_id"),
        (subscription("u9", "a@b.example", "", &[""]), "machines"),
    ] {
        let e = notes.put_email_subscription(req(&h, &tenant, bad)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(field), "{field}: {e:?}");
    }
    // Kim hears of critical alarms anywhere; Lee only of the lathes; another tenant's
    // user of everything in theirs.
    notes.put_email_subscription(req(&h, &tenant, subscription("u1", "kim@acme.example", "critical", &[]))).await?;
    notes.put_email_subscription(req(&h, &tenant, subscription("u2", "lee@acme.example", "info", &["lathe-*"]))).await?;
    notes.put_email_subscription(req(&h, &other, subscription("u3", "park@other.example", "info", &[]))).await?;
    let mine = notes.list_email_subscriptions(req(&h, &tenant, ListEmailSubscriptionsRequest::default())).await?.into_inner();
    assert_eq!(mine.subscriptions.iter().map(|s| s.address.as_str()).collect::<Vec<_>>(), ["kim@acme.example", "lee@acme.example"]);

    ingest.push(batch(2, 95.0)).await?;
    let mail = sink.next(Duration::from_secs(10)).await.expect("an e-mail for the raised alarm");
    assert_eq!(mail.to, ["kim@acme.example"]);
    assert_eq!(mail.from, "alarms@factorychain.invalid");
    let subject = mail.header("subject").unwrap_or_default();
    assert!(subject.contains("CRITICAL raised: hot on press-1"), "{subject}");
    assert!(mail.body().contains("press-1") && mail.body().contains("95"), "{}", mail.body());
    assert!(mail.body().contains("https://portal.example/alarms?all=true#al"), "{}", mail.body());

    // The SMTP server refuses the next message for now: it is sent again.
    sink.refuse_next(1);
    ingest.push(batch(3, 20.0)).await?;
    let cleared = sink.next(Duration::from_secs(15)).await.expect("the clear, after one refusal");
    assert_eq!(cleared.to, ["kim@acme.example"]);
    assert!(cleared.header("subject").unwrap_or_default().contains("cleared"));
    assert!(sink.collect(Duration::from_secs(2)).await.is_empty(), "Lee's lathes and the other tenant hear nothing");
    let sent = notes.list_deliveries(req(&h, &tenant, ListDeliveriesRequest { state: "delivered".into(), limit: 0 })).await?.into_inner();
    let mut mails: Vec<_> = sent.deliveries.iter().filter(|d| d.channel == "email").map(|d| (d.kind.as_str(), d.attempts)).collect();
    mails.sort();
    assert_eq!(mails, [("cleared", 2), ("raised", 1)]);
    assert!(sent.deliveries.iter().all(|d| d.email == "kim@acme.example"));

    // A user who unsubscribes hears nothing more.
    notes.delete_email_subscription(req(&h, &tenant, DeleteEmailSubscriptionRequest { user_id: "u1".into() })).await?;
    ingest.push(batch(4, 99.0)).await?;
    assert!(sink.collect(Duration::from_secs(3)).await.is_empty(), "no e-mail after unsubscribing");
    let theirs = notes.list_email_subscriptions(req(&h, &other, ListEmailSubscriptionsRequest::default())).await?.into_inner();
    assert_eq!(theirs.subscriptions.len(), 1, "another tenant's subscriptions are their own");
    stop.trigger();
    m.wait().await;
    Ok(())
}
