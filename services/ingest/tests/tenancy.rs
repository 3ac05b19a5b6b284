//! Ingest as a client of the tenancy owner (the portal's gRPC port, started by
//! the harness over a real registry): service credentials on every internal
//! call, a tenant named in metadata only from an authenticated service, and
//! revocations pushed over a real NATS server ending open streams.

use fc_proto::v1::tenancy_client::TenancyClient;
use fc_proto::v1::{
    AckStatus, AuthenticateDeviceRequest, GetTenantRequest, RangeRequest, RevokeDeviceRequest, SeriesKey, SetTenantPlanRequest,
};
use fc_rpc::service_auth::{Credential, Issuer, TENANT_HEADER, TOKEN_HEADER};
use fc_testkit::Harness;
use std::time::Duration;
use tonic::transport::Channel;

async fn tenancy(h: &Harness) -> anyhow::Result<TenancyClient<Channel>> {
    Ok(TenancyClient::new(Channel::from_shared(h.admin_url())?.connect().await?))
}

fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    Credential::new(token).expect("a token").attach(r.metadata_mut());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenancy_api_answers_only_services_with_a_valid_credential() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (tenant, device_token) = h.tenant_with_device("Tenancy Co")?;
    let mut c = tenancy(&h).await?;
    let ask = || AuthenticateDeviceRequest { token: device_token.clone() };

    let none = c.authenticate_device(ask()).await.unwrap_err();
    assert_eq!(none.code(), tonic::Code::Unauthenticated, "no credential: {none:?}");

    // A device token is not a service credential, wherever it is put.
    let mut r = tonic::Request::new(ask());
    r.metadata_mut().insert("authorization", format!("Bearer {device_token}").parse()?);
    assert_eq!(c.authenticate_device(r).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    let mut r = tonic::Request::new(ask());
    r.metadata_mut().insert(TOKEN_HEADER, device_token.parse()?);
    assert_eq!(c.authenticate_device(r).await.unwrap_err().code(), tonic::Code::Unauthenticated);

    // Signed by another issuer (a forged "ingest"), or expired.
    let forged = Issuer::generate()?.mint("ingest", Duration::from_secs(60))?;
    assert_eq!(c.authenticate_device(with_token(ask(), &forged)).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    let expired = h.issuer.mint_at("ingest", fc_core::time::now_ms() - 120_000, Duration::from_secs(60))?;
    assert_eq!(c.authenticate_device(with_token(ask(), &expired)).await.unwrap_err().code(), tonic::Code::Unauthenticated);

    // Genuine, but a service that may not ask tenancy questions.
    let portal = h.service_token("portal");
    assert_eq!(c.authenticate_device(with_token(ask(), &portal)).await.unwrap_err().code(), tonic::Code::PermissionDenied);

    // Ingest may; a wrong device token is then UNAUTHENTICATED, an unknown tenant NOT_FOUND.
    let ingest = h.service_token("ingest");
    let who = c.authenticate_device(with_token(ask(), &ingest)).await?.into_inner();
    assert_eq!((who.tenant_id.as_str(), who.plan.as_str()), (tenant.as_str(), "growth"));
    let wrong = AuthenticateDeviceRequest { token: format!("{device_token}x") };
    assert_eq!(c.authenticate_device(with_token(wrong, &ingest)).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    let nobody = GetTenantRequest { tenant_id: "t_0000000000000000".into() };
    assert_eq!(c.get_tenant(with_token(nobody, &ingest)).await.unwrap_err().code(), tonic::Code::NotFound);
    Ok(())
}

/// `Query` reads the tenant a service names only when the service proves who it
/// is; a device (or anyone) naming a tenant in metadata is refused, not served
/// its own tenant's data or the named one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_in_metadata_is_taken_only_from_an_authenticated_service() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (tenant_a, token_a) = h.tenant_with_device("Reader A")?;
    let (tenant_b, token_b) = h.tenant_with_device("Victim B")?;
    let t0 = fc_core::time::now_ms() - 60_000;
    h.ingest(&token_b).await?.push(fc_testkit::series_batch(1, t0, vec![7.0; 10])).await?;
    h.wait_writer_idle().await?;
    let series = Some(SeriesKey { machine: "m".into(), metric: "x".into() });
    let range = || RangeRequest { series: series.clone(), start_ms: t0 - 1, end_ms: t0 + 60_000, ..Default::default() };
    let channel = h.channel().await?;
    let mut q = fc_proto::v1::query_client::QueryClient::new(channel);

    // A's device names B: refused.
    let mut r = tonic::Request::new(range());
    r.metadata_mut().insert("authorization", format!("Bearer {token_a}").parse()?);
    r.metadata_mut().insert(TENANT_HEADER, tenant_b.parse()?);
    assert_eq!(q.range(r).await.unwrap_err().code(), tonic::Code::Unauthenticated, "a device cannot name a tenant");
    // A forged service token naming B: refused.
    let forged = Issuer::generate()?.mint("portal", Duration::from_secs(60))?;
    let mut r = with_token(range(), &forged);
    r.metadata_mut().insert(TENANT_HEADER, tenant_b.parse()?);
    assert_eq!(q.range(r).await.unwrap_err().code(), tonic::Code::Unauthenticated, "forged service token");
    // A genuine service that may not read telemetry.
    let mut r = with_token(range(), &h.service_token("ingest"));
    r.metadata_mut().insert(TENANT_HEADER, tenant_b.parse()?);
    assert_eq!(q.range(r).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    // A genuine portal without a tenant: refused; naming an unknown tenant: not found.
    let r = with_token(range(), &h.service_token("portal"));
    assert_eq!(q.range(r).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let mut r = with_token(range(), &h.service_token("portal"));
    r.metadata_mut().insert(TENANT_HEADER, "t_0000000000000000".parse()?);
    assert_eq!(q.range(r).await.unwrap_err().code(), tonic::Code::NotFound);

    // The portal, for B: B's readings; for A: none of B's.
    let mut r = with_token(range(), &h.service_token("portal"));
    r.metadata_mut().insert(TENANT_HEADER, tenant_b.parse()?);
    assert_eq!(q.range(r).await?.into_inner().readings.len(), 10, "the service reads the tenant it names");
    let mut r = with_token(range(), &h.service_token("portal"));
    r.metadata_mut().insert(TENANT_HEADER, tenant_a.parse()?);
    assert!(q.range(r).await?.into_inner().readings.is_empty(), "and only that tenant");
    Ok(())
}

/// Revoking a device at the tenancy owner ends its open stream in ingest at
/// once (a notice over NATS), though the device sends nothing more; its token
/// is then refused for new calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_device_ends_its_open_stream_at_once() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (tenant, token) = h.tenant_with_device("Revoked Co")?;
    let (_, other) = h.tenant_with_device("Bystander Co")?;
    let device_id = h.registry.list_devices(&tenant)?.remove(0).id;
    let t0 = fc_core::time::now_ms() - 60_000;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(fc_testkit::series_batch(1, t0, vec![1.0; 10])).await?;
    let mut acks = h.ingest(&token).await?.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    let (tx2, rx2) = tokio::sync::mpsc::channel(8);
    tx2.send(fc_testkit::series_batch(1, t0, vec![1.0; 10])).await?;
    let mut bystander = h.ingest(&other).await?.stream(tokio_stream::wrappers::ReceiverStream::new(rx2)).await?.into_inner();
    assert_eq!(acks.message().await?.expect("an ack").status(), AckStatus::Ok);
    assert_eq!(bystander.message().await?.expect("an ack").status(), AckStatus::Ok);

    h.admin().await?.revoke_device(RevokeDeviceRequest { tenant_id: tenant.clone(), device_id }).await?;
    let ended = tokio::time::timeout(Duration::from_secs(5), acks.message()).await.expect("the stream ends within 5 s");
    assert_eq!(ended.unwrap_err().code(), tonic::Code::Unauthenticated, "ended as revoked");
    let refused = h.ingest(&token).await?.push(fc_testkit::series_batch(2, t0, vec![1.0; 10])).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // Another tenant's open stream goes on.
    tx2.send(fc_testkit::series_batch(2, t0, vec![2.0; 10])).await?;
    assert_eq!(bystander.message().await?.expect("an ack").status(), AckStatus::Ok);
    drop(tx);
    Ok(())
}

/// A plan change at the owner applies at ingest at once, not when the cached
/// plan expires (30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_change_applies_at_ingest_at_once() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (tenant, token) = h.tenant_with_device("Plan Co")?;
    let mut ingest = h.ingest(&token).await?;
    let t0 = fc_core::time::now_ms() - 60_000;
    ingest.push(fc_testkit::series_batch(1, t0, vec![1.0; 10])).await?;
    let growth = fc_tenancy_api::plans::plan("growth").expect("growth").max_readings_per_s;
    let enterprise = fc_tenancy_api::plans::plan("enterprise").expect("enterprise").max_readings_per_s;
    assert!(enterprise > growth);
    assert_eq!(h.svc().state.tenancy.plan(&tenant).await?.id, "growth", "cached at ingest (for 30 s)");
    h.admin().await?.set_tenant_plan(SetTenantPlanRequest { tenant_id: tenant.clone(), plan: "enterprise".into() }).await?;
    // The owner said so over NATS before answering; the next ask sees the new plan.
    let mut c = tenancy(&h).await?;
    let t = c.get_tenant(with_token(GetTenantRequest { tenant_id: tenant.clone() }, &h.service_token("ingest"))).await?.into_inner();
    assert_eq!(t.plan, "enterprise");
    fc_testkit::wait_until(Duration::from_secs(5), "ingest to see the new plan", || async {
        h.svc().state.tenancy.plan(&tenant).await.map(|p| p.id == "enterprise").unwrap_or(false)
    })
    .await?;
    Ok(())
}
