//! Self-service sign-up offers only the plans a self-service tenant may take;
//! the operator grants the others (`Admin.SetTenantPlan`).

use fc_proto::v1::{SetTenantPlanRequest, admin_client::AdminClient};
use fc_testkit::Harness;
use fc_testkit::http::request;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_offers_only_self_service_plans_and_the_operator_grants_the_rest() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let portal = h.portal().await?;
    let reg = &h.registry;
    let page = request(portal.addr, "GET", "/signup", &[], b"").await?;
    assert!(page.body.contains(r#"value="growth""#) && !page.body.contains(r#"value="enterprise""#), "{}", page.body);

    let form = "company=Big+Co&plan=enterprise&name=N&email=n%40big.example&password=long+enough+password";
    let r = request(portal.addr, "POST", "/signup", &[("content-type", "application/x-www-form-urlencoded")], form.as_bytes()).await?;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("granted by the operator"), "{}", r.body);
    assert!(reg.list_tenants()?.is_empty(), "the refused sign-up created nothing");

    let form = "company=Big+Co&plan=growth&name=N&email=n%40big.example&password=long+enough+password";
    let r = request(portal.addr, "POST", "/signup", &[("content-type", "application/x-www-form-urlencoded")], form.as_bytes()).await?;
    assert_eq!(r.status, 303, "{}", r.body);
    let t = reg.list_tenants()?.remove(0);

    // Only the operator moves it up.
    let mut admin = AdminClient::new(h.admin_channel().await?);
    let err = admin.set_tenant_plan(SetTenantPlanRequest { tenant_id: t.id.clone(), plan: "enterprise".into() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let token = h.tenancy.admin_token.clone();
    let mut admin = AdminClient::with_interceptor(h.admin_channel().await?, fc_testkit::bearer(&token)?);
    let err = admin.set_tenant_plan(SetTenantPlanRequest { tenant_id: t.id.clone(), plan: "platinum".into() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let done = admin.set_tenant_plan(SetTenantPlanRequest { tenant_id: t.id.clone(), plan: "enterprise".into() }).await?.into_inner();
    assert_eq!(done.plan, "enterprise");
    assert_eq!(reg.get_tenant(&t.id)?.plan_id, "enterprise");
    Ok(())
}
