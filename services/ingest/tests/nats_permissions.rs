//! NATS credentials per service (`fc_bus::auth`) on a real nats-server: each
//! service may publish and subscribe only to its subjects, a wrong password is
//! refused, and ingest and the tenancy owner work with their own users.

use async_nats::ConnectOptions;
use fc_proto::v1::{AckStatus, RevokeDeviceRequest};
use fc_testkit::nats::{collect, registered};
use fc_testkit::{Harness, NATS_ADMIN_PASSWORD};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_publishes_and_subscribes_only_within_its_subjects() -> anyhow::Result<()> {
    let h = Harness::start_authenticated().await?;
    let url = h.bus_url.clone();
    let admin = ConnectOptions::with_user_and_password("admin".into(), NATS_ADMIN_PASSWORD.into()).connect(&url).await?;
    let ingest = ConnectOptions::with_user_and_password("ingest".into(), h.svc().state.config.bus.password.clone()).connect(&url).await?;
    let portal = h.portal_nats.clone();
    let portal_forger = ConnectOptions::with_user_and_password("portal".into(), h.portal_password().into()).connect(&url).await?;
    let ingest_forger =
        ConnectOptions::with_user_and_password("ingest".into(), h.svc().state.config.bus.password.clone()).connect(&url).await?;
    let settlement = ConnectOptions::with_user_and_password("settlement".into(), h.settlement_password().into()).connect(&url).await?;
    assert!(
        ConnectOptions::with_user_and_password("portal".into(), "wrong".into()).connect(&url).await.is_err(),
        "a wrong password is refused"
    );
    let (publish, _) = fc_bus::auth::permissions("portal").expect("the portal has a user");
    assert!(publish.contains(&fc_tenancy_api::CHANGES_SUBJECT), "the portal may announce tenancy changes");

    // Publishing: an observer with every right sees what each service sends
    // within its subjects, and nothing it sends outside them.
    let mut telemetry = admin.subscribe("fc.t_a.telemetry.m").await?;
    let mut changes = admin.subscribe(fc_tenancy_api::CHANGES_SUBJECT).await?;
    registered(&mut telemetry, &admin, "fc.t_a.telemetry.m").await?;
    registered(&mut changes, &admin, fc_tenancy_api::CHANGES_SUBJECT).await?;
    // Forgeries go over connections of their own: a client the server told off
    // is not the one whose genuine messages are checked.
    portal_forger.publish("fc.t_a.telemetry.m", "forged by the portal".into()).await?;
    ingest_forger.publish(fc_tenancy_api::CHANGES_SUBJECT, "forged by ingest".into()).await?;
    settlement.publish(fc_tenancy_api::CHANGES_SUBJECT, "forged by settlement".into()).await?;
    settlement.publish("fc.t_a.telemetry.m", "forged by settlement".into()).await?;
    ingest.publish("fc.t_a.telemetry.m", "from ingest".into()).await?;
    portal.publish(fc_tenancy_api::CHANGES_SUBJECT, "from the portal".into()).await?;
    for c in [&portal_forger, &ingest_forger, &settlement, &ingest, &portal] {
        c.flush().await?;
    }
    assert_eq!(collect(&mut telemetry, Duration::from_secs(1)).await, ["from ingest"], "the portal cannot write telemetry");
    assert_eq!(collect(&mut changes, Duration::from_secs(1)).await, ["from the portal"], "only the portal announces tenancy changes");

    // Subscribing: ingest and settlement may not read telemetry off the bus; the portal (live views) may.
    let mut ingest_sees = ingest.subscribe("fc.t_b.telemetry.m").await?;
    let settlement_reader =
        ConnectOptions::with_user_and_password("settlement".into(), h.settlement_password().into()).connect(&url).await?;
    let mut settlement_sees = settlement_reader.subscribe("fc.t_b.telemetry.m").await?;
    let mut portal_sees = portal.subscribe("fc.t_b.telemetry.m").await?;
    registered(&mut portal_sees, &admin, "fc.t_b.telemetry.m").await?;
    admin.publish("fc.t_b.telemetry.m", "reading".into()).await?;
    admin.flush().await?;
    assert_eq!(collect(&mut portal_sees, Duration::from_secs(1)).await, ["reading"]);
    assert!(
        collect(&mut ingest_sees, Duration::from_millis(200)).await.is_empty(),
        "ingest's subscription outside its subjects gets nothing"
    );
    assert!(collect(&mut settlement_sees, Duration::from_millis(200)).await.is_empty(), "nor does settlement's");

    // JetStream is ingest's alone.
    let js = async_nats::jetstream::ContextBuilder::new().timeout(Duration::from_millis(500)).build(portal.clone());
    assert!(js.get_stream(fc_bus::TELEMETRY_STREAM).await.is_err(), "the portal cannot reach the JetStream API");
    let js = async_nats::jetstream::ContextBuilder::new().timeout(Duration::from_secs(5)).build(ingest.clone());
    assert!(js.get_stream(fc_bus::TELEMETRY_STREAM).await.is_ok(), "ingest can");
    Ok(())
}

/// With their own users, ingest stores readings and the portal's revocation
/// notices reach it: the whole path works inside the permissions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_work_with_their_own_users() -> anyhow::Result<()> {
    let h = Harness::start_authenticated().await?;
    let (tenant, token) = h.tenant_with_device("Locked Down Co")?;
    let t0 = fc_core::time::now_ms() - 60_000;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(fc_testkit::series_batch(1, t0, vec![1.0; 10])).await?;
    let mut acks = h.ingest(&token).await?.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    assert_eq!(acks.message().await?.expect("an ack").status(), AckStatus::Ok);
    h.wait_writer_idle().await?;
    let device_id = h.registry.list_devices(&tenant)?.remove(0).id;
    h.admin().await?.revoke_device(RevokeDeviceRequest { tenant_id: tenant, device_id }).await?;
    let ended = tokio::time::timeout(Duration::from_secs(5), acks.message()).await.expect("the notice arrives");
    assert_eq!(ended.unwrap_err().code(), tonic::Code::Unauthenticated);
    drop(tx);
    Ok(())
}
