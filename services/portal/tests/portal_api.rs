//! The portal's REST API and pages against a real service: the isolation
//! matrix (tenant B never sees or touches A's objects, and cannot tell they
//! exist), the role matrix, and bad input (each a clear error, nothing changed).

use fc_registry::Role;
use fc_testkit::Harness;
use fc_testkit::http::{Response, request};
use std::net::SocketAddr;

struct Session {
    cookie: String,
    csrf: String,
}

struct Tenant {
    id: String,
    owner: Session,
    operator_key: String,
    viewer_key: String,
}

fn tenant(h: &Harness, name: &str, plan: &str) -> anyhow::Result<Tenant> {
    let reg = &h.registry;
    let email = format!("owner@{}.example", name.to_lowercase().replace(' ', "-"));
    let (t, owner) = reg.sign_up(name, plan, &email, "Owner", "long enough password")?;
    let (sid, s) = reg.create_session(&owner)?;
    let (_, operator_key) = reg.create_api_key(&t.id, "op", Role::Operator)?;
    let (_, viewer_key) = reg.create_api_key(&t.id, "view", Role::Viewer)?;
    Ok(Tenant { id: t.id, owner: Session { cookie: format!("fc_session={sid}"), csrf: s.csrf }, operator_key, viewer_key })
}

async fn api(addr: SocketAddr, method: &str, path: &str, key: &str, body: Option<&str>) -> anyhow::Result<Response> {
    let auth = format!("Bearer {key}");
    let mut headers = vec![("authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    request(addr, method, path, &headers, body.unwrap_or("").as_bytes()).await
}

async fn as_owner(addr: SocketAddr, s: &Session, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<Response> {
    let mut headers = vec![("cookie", s.cookie.as_str()), ("x-csrf-token", s.csrf.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    request(addr, method, path, &headers, body.unwrap_or("").as_bytes()).await
}

fn is_problem(r: &Response, status: u16) -> bool {
    r.status == status && r.header("content-type") == Some("application/problem+json") && r.json()["status"] == status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_b_never_sees_or_touches_tenant_a() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let portal = h.portal().await?;
    let addr = portal.addr;
    let a = tenant(&h, "Tenant A", "growth")?;
    let b = tenant(&h, "Tenant B", "growth")?;
    let reg = &h.registry;
    let (dev_a, token_a) = reg.create_device(&a.id, "a press")?;
    let (key_a, _) = reg.create_api_key(&a.id, "a erp", Role::Viewer)?;
    let (_, inv_a) = reg.invite(&a.id, "new@tenant-a.example", Role::Viewer)?;
    let user_a = reg.list_users(&a.id)?.remove(0);
    h.ingest(&token_a)
        .await?
        .push(fc_proto::v1::ReadingBatch {
            device_seq: 1,
            readings: vec![fc_proto::v1::Reading {
                machine: "m".into(),
                metric: "x".into(),
                unit: "".into(),
                timestamp_ms: fc_core::time::now_ms(),
                value: 1.0,
                quality: 0,
            }],
            series: vec![],
        })
        .await?;
    h.wait_writer_idle().await?;

    // What A sees of its own objects (the control).
    assert_eq!(api(addr, "GET", "/api/v1/series/m/x", &a.viewer_key, None).await?.status, 200);

    // (who, method, path, body) for B acting on A's objects: 404, like a thing that never existed.
    let never = "d_0000000000000000";
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("DELETE", format!("/api/v1/devices/{}", dev_a.id), None),
        ("POST", format!("/api/v1/devices/{}/rotate", dev_a.id), None),
        ("DELETE", format!("/api/v1/api-keys/{}", key_a.id), None),
        ("PATCH", format!("/api/v1/users/{}", user_a.id), Some(r#"{"role":"viewer"}"#)),
        ("GET", "/api/v1/series/m/x".to_string(), None),
        ("GET", "/api/v1/series/m/x/export.csv".to_string(), None),
        ("DELETE", format!("/api/v1/invitations/{}", inv_a.id), None),
    ];
    for (method, path, body) in &cases {
        // B's operator key, and B's owner session: both 404.
        let by_key = api(addr, method, path, &b.operator_key, *body).await?;
        let by_owner = as_owner(addr, &b.owner, method, path, *body).await?;
        for r in [&by_key, &by_owner] {
            assert!(
                r.status == 404
                    || (r.status == 403 && !path.contains("series") && r.json()["detail"].as_str().unwrap_or("").contains("role")),
                "{method} {path}: {} {}",
                r.status,
                r.body
            );
        }
        assert!(is_problem(&by_owner, 404), "{method} {path} as B's owner: {} {}", by_owner.status, by_owner.body);
    }
    // No hint: A's object answers exactly like one that never existed.
    let theirs = as_owner(addr, &b.owner, "DELETE", &format!("/api/v1/devices/{}", dev_a.id), None).await?;
    let none = as_owner(addr, &b.owner, "DELETE", &format!("/api/v1/devices/{never}"), None).await?;
    assert_eq!((theirs.status, theirs.json()), (none.status, none.json()));
    // Lists never include A's objects.
    for path in ["/api/v1/devices", "/api/v1/series", "/api/v1/latest"] {
        let r = api(addr, "GET", path, &b.operator_key, None).await?;
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.body.contains(&dev_a.id) && r.json().as_array().is_some_and(|v| v.is_empty()), "{path}: {}", r.body);
    }
    let users = as_owner(addr, &b.owner, "GET", "/api/v1/users", None).await?;
    assert!(!users.body.contains(&user_a.id));
    let invitations = as_owner(addr, &b.owner, "GET", "/api/v1/invitations", None).await?;
    assert_eq!((invitations.status, invitations.json()), (200, serde_json::json!([])), "B lists none of A's invitations");
    assert_eq!(reg.list_invitations(&a.id)?.len(), 1, "B's attempts left A's invitation in place");
    // Pages: B's session posting to A's device gets a 404 page, and A's device is untouched.
    let form = format!("csrf={}", b.owner.csrf);
    let r = request(
        addr,
        "POST",
        &format!("/devices/{}/revoke", dev_a.id),
        &[("cookie", &b.owner.cookie), ("content-type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .await?;
    assert_eq!(r.status, 404);
    assert!(reg.get_device(&a.id, &dev_a.id)?.revoked_ms.is_none());
    // Live view: B's session on A's machine name hears only B's own subject (tenant from the session).
    // (The subject is built from B's tenant id; see live.rs.)
    assert!(reg.authenticate_device(&token_a).is_ok(), "nothing B did changed A");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_limit_what_each_caller_may_do() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let portal = h.portal().await?;
    let addr = portal.addr;
    let t = tenant(&h, "Roles Co", "growth")?;
    // viewer: read yes, write no
    assert_eq!(api(addr, "GET", "/api/v1/devices", &t.viewer_key, None).await?.status, 200);
    let r = api(addr, "POST", "/api/v1/devices", &t.viewer_key, Some(r#"{"name":"x"}"#)).await?;
    assert!(is_problem(&r, 403) && r.json()["detail"].as_str().unwrap().contains("operator"), "{}", r.body);
    // operator: devices yes; users, invitations and API keys no
    let r = api(addr, "POST", "/api/v1/devices", &t.operator_key, Some(r#"{"name":"press 2"}"#)).await?;
    assert_eq!(r.status, 201, "{}", r.body);
    let dev_id = r.json()["device"]["id"].as_str().unwrap().to_string();
    assert!(r.json()["token"].as_str().unwrap().starts_with("fcd_"));
    for (m, p, b) in [
        ("GET", "/api/v1/users", None),
        ("POST", "/api/v1/api-keys", Some(r#"{"name":"k","role":"viewer"}"#)),
        ("POST", "/api/v1/invitations", Some(r#"{"email":"a@b.example","role":"viewer"}"#)),
    ] {
        assert!(is_problem(&api(addr, m, p, &t.operator_key, b).await?, 403), "{m} {p}");
    }
    assert!(is_problem(&api(addr, "DELETE", &format!("/api/v1/devices/{dev_id}"), &t.viewer_key, None).await?, 403));
    assert!(is_problem(&api(addr, "POST", &format!("/api/v1/devices/{dev_id}/rotate"), &t.viewer_key, None).await?, 403));
    let r = api(addr, "POST", &format!("/api/v1/devices/{dev_id}/rotate"), &t.operator_key, None).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["token"].as_str().unwrap().starts_with("fcd_"));
    assert_eq!(api(addr, "DELETE", &format!("/api/v1/devices/{dev_id}"), &t.operator_key, None).await?.status, 204);
    // owner (session): users, invitations, keys
    assert_eq!(as_owner(addr, &t.owner, "GET", "/api/v1/users", None).await?.status, 200);
    let r = as_owner(addr, &t.owner, "POST", "/api/v1/invitations", Some(r#"{"email":"new@roles.example","role":"viewer"}"#)).await?;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = as_owner(addr, &t.owner, "POST", "/api/v1/api-keys", Some(r#"{"name":"erp","role":"owner"}"#)).await?;
    assert!(is_problem(&r, 400), "owner keys are not issued: {}", r.body);
    // a viewer's page session cannot see owner pages
    let reg = &h.registry;
    let viewer = reg.create_user(&t.id, "viewer@roles.example", "V", Role::Viewer, "long enough password")?;
    let (sid, _) = reg.create_session(&viewer)?;
    let r = request(addr, "GET", "/users", &[("cookie", &format!("fc_session={sid}"))], b"").await?;
    assert_eq!(r.status, 403);
    // no credential at all
    assert!(is_problem(&request(addr, "GET", "/api/v1/devices", &[], b"").await?, 401));
    assert_eq!(request(addr, "GET", "/devices", &[], b"").await?.header("location"), Some("/login"));
    // the language switch only ever redirects to a local path (no open redirect)
    for (referer, want) in [
        ("http://portal.example/devices", "/devices"),
        ("https://evil.example//evil.example/x", "/"),
        ("http://x/\\evil.example", "/"),
        ("", "/"),
    ] {
        let r = request(addr, "GET", "/lang/ko", &[("referer", referer)], b"").await?;
        assert_eq!(r.header("location"), Some(want), "referer {referer:?}");
    }
    // the OpenAPI document describes the API
    let doc = request(addr, "GET", "/api/openapi.json", &[], b"").await?.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/api/v1/devices"]["post"].is_object());
    // Every response has the description OpenAPI requires, and every route documents 401
    // (the whole document is validated with a real validator in the e2e suite).
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("401"), "{method} {path} documents no 401");
            for (status, r) in responses {
                assert!(r["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {path} {status}: no description");
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    assert!(
                        path.contains(&format!("{{{}}}", p["name"].as_str().unwrap())),
                        "{method} {path}: path parameter {p} not in the path"
                    );
                }
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let portal = h.portal().await?;
    let addr = portal.addr;
    let t = tenant(&h, "Input Co", "starter")?;
    let reg = &h.registry;
    let count = || reg.list_devices(&t.id).map(|d| d.len());
    for (body, why) in [
        ("{\"name\":", "malformed JSON"),
        ("{\"name\":\"x\",\"admin\":true}", "unknown field"),
        ("{\"name\":42}", "wrong type"),
        ("[]", "wrong shape"),
        ("{\"name\":\"\"}", "empty name"),
    ] {
        let r = api(addr, "POST", "/api/v1/devices", &t.operator_key, Some(body)).await?;
        assert!(is_problem(&r, 400), "{why}: {} {}", r.status, r.body);
        assert!(!r.json()["detail"].as_str().unwrap_or("").is_empty(), "{why}: says why");
    }
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(200_000));
    let r = api(addr, "POST", "/api/v1/devices", &t.operator_key, Some(&big)).await?;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(count()?, 0, "nothing was created by bad input");
    // Hostile names are stored as given and shown escaped.
    let hostile = "<script>alert('x')</script>'; DROP TABLE devices; --";
    let r = api(addr, "POST", "/api/v1/devices", &t.operator_key, Some(&serde_json::json!({ "name": hostile }).to_string())).await?;
    assert_eq!(r.status, 201);
    assert_eq!(reg.list_devices(&t.id)?[0].name, hostile);
    let page = request(addr, "GET", "/devices", &[("cookie", &t.owner.cookie)], b"").await?;
    assert!(page.body.contains("&lt;script&gt;alert(") && !page.body.contains("<script>alert("), "escaped on the page");
    // CSRF: a session without the right token changes nothing (JSON API and forms).
    let r = request(
        addr,
        "POST",
        "/api/v1/devices",
        &[("cookie", &t.owner.cookie), ("x-csrf-token", "forged"), ("content-type", "application/json")],
        br#"{"name":"csrf"}"#,
    )
    .await?;
    assert!(is_problem(&r, 403), "{}", r.body);
    let r = request(
        addr,
        "POST",
        "/devices",
        &[("cookie", &t.owner.cookie), ("content-type", "application/x-www-form-urlencoded")],
        b"csrf=forged&name=csrf",
    )
    .await?;
    assert_eq!(r.status, 403);
    assert_eq!(count()?, 1);
    // The 11th device of a 10-device plan is refused with a clear message.
    for i in 1..10 {
        assert_eq!(api(addr, "POST", "/api/v1/devices", &t.operator_key, Some(&format!("{{\"name\":\"d{i}\"}}"))).await?.status, 201);
    }
    let r = api(addr, "POST", "/api/v1/devices", &t.operator_key, Some(r#"{"name":"d11"}"#)).await?;
    assert!(is_problem(&r, 429) && r.json()["detail"].as_str().unwrap().contains("10 devices"), "{}", r.body);
    let form = format!("csrf={}&name=d11", t.owner.csrf);
    let r = request(
        addr,
        "POST",
        "/devices",
        &[("cookie", &t.owner.cookie), ("content-type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .await?;
    assert_eq!(r.status, 429);
    assert!(r.body.contains("10 devices"), "the page says why");
    assert_eq!(count()?, 10);
    // Bad query parameters.
    let r = api(addr, "GET", "/api/v1/series/m/x?start_ms=abc", &t.viewer_key, None).await?;
    assert!(is_problem(&r, 400), "{}", r.body);
    let r = api(addr, "GET", "/api/v1/series/m/x?start_ms=10&end_ms=5", &t.viewer_key, None).await?;
    assert!(is_problem(&r, 400), "{}", r.body);
    // Login throttling: the 6th attempt within a minute is refused.
    let mut last = 0;
    for _ in 0..6 {
        last = request(
            addr,
            "POST",
            "/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"email=owner%40input-co.example&password=wrong+password+here",
        )
        .await?
        .status;
    }
    assert_eq!(last, 429);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_listed_withdrawn_and_die_with_their_token() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let portal = h.portal().await?;
    let addr = portal.addr;
    let t = tenant(&h, "Invite Works", "starter")?;
    let r = as_owner(addr, &t.owner, "POST", "/api/v1/invitations", Some(r#"{"email":"lee@invite.example","role":"operator"}"#)).await?;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.json()["token"].as_str().unwrap().to_string();
    let listed = as_owner(addr, &t.owner, "GET", "/api/v1/invitations", None).await?.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!((listed[0]["email"].as_str(), listed[0]["role"].as_str()), (Some("lee@invite.example"), Some("operator")));
    assert!(!listed.to_string().contains(&token), "the token is shown once, never listed");
    // The users page lists it with a withdraw button.
    let page = request(addr, "GET", "/users", &[("cookie", &t.owner.cookie)], b"").await?;
    assert!(page.body.contains("lee@invite.example") && page.body.contains("/withdraw"), "{}", page.body);
    assert_eq!(request(addr, "GET", &format!("/invite/{token}"), &[], b"").await?.status, 200);
    // Operators cannot withdraw; the owner can, and the link dies at once.
    let id = listed[0]["id"].as_str().unwrap();
    assert_eq!(api(addr, "DELETE", &format!("/api/v1/invitations/{id}"), &t.operator_key, None).await?.status, 403);
    assert_eq!(as_owner(addr, &t.owner, "DELETE", &format!("/api/v1/invitations/{id}"), None).await?.status, 204);
    assert!(is_problem(&as_owner(addr, &t.owner, "DELETE", &format!("/api/v1/invitations/{id}"), None).await?, 404));
    assert_eq!(request(addr, "GET", &format!("/invite/{token}"), &[], b"").await?.status, 404);
    let form = "name=Lee&password=long+enough+password";
    let r = request(addr, "POST", &format!("/invite/{token}"), &[("content-type", "application/x-www-form-urlencoded")], form.as_bytes())
        .await?;
    assert_eq!(r.status, 404, "a withdrawn invitation cannot be accepted");
    assert_eq!(h.registry.list_users(&t.id)?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_invites_the_first_owner_of_a_tenant_it_created() -> anyhow::Result<()> {
    use fc_proto::v1::{CreateTenantRequest, InviteUserRequest, admin_client::AdminClient};
    let h = Harness::start().await?;
    let portal = h.portal().await?;
    let addr = portal.addr;
    let admin_token = h.tenancy.admin_token.clone();
    let mut admin = AdminClient::with_interceptor(h.admin_channel().await?, fc_testkit::bearer(&admin_token)?);
    let t = admin.create_tenant(CreateTenantRequest { name: "Ops Made Ltd".into(), plan: "growth".into() }).await?.into_inner();
    // Bad input and a wrong credential change nothing.
    let bad = admin
        .invite_user(InviteUserRequest { tenant_id: t.id.clone(), email: "not an email".into(), role: String::new() })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let bad = admin
        .invite_user(InviteUserRequest { tenant_id: t.id.clone(), email: "a@b.example".into(), role: "king".into() })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let nope = admin
        .invite_user(InviteUserRequest { tenant_id: "t_0000000000000000".into(), email: "a@b.example".into(), role: String::new() })
        .await
        .unwrap_err();
    assert_eq!(nope.code(), tonic::Code::NotFound);
    let mut wrong = AdminClient::with_interceptor(h.admin_channel().await?, fc_testkit::bearer("fca_wrong")?);
    assert_eq!(
        wrong
            .invite_user(InviteUserRequest { tenant_id: t.id.clone(), email: "a@b.example".into(), role: String::new() })
            .await
            .unwrap_err()
            .code(),
        tonic::Code::Unauthenticated
    );
    assert!(h.registry.list_invitations(&t.id)?.is_empty());
    // The owner's invitation, accepted in the portal, signs them in as owner.
    let inv = admin
        .invite_user(InviteUserRequest { tenant_id: t.id.clone(), email: "boss@opsmade.example".into(), role: String::new() })
        .await?
        .into_inner();
    let form = "name=Boss&password=long+enough+password";
    let r =
        request(addr, "POST", &format!("/invite/{}", inv.token), &[("content-type", "application/x-www-form-urlencoded")], form.as_bytes())
            .await?;
    assert!(r.status == 303 && r.header("set-cookie").is_some_and(|c| c.starts_with("fc_session=")), "{} {:?}", r.status, r.headers);
    let users = h.registry.list_users(&t.id)?;
    assert_eq!((users.len(), users[0].role), (1, Role::Owner));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_are_throttled_per_client_address() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let portal = h.portal_with(|c| c.signups_per_ip_per_hour = 2).await?;
    let addr = portal.addr;
    let reg = &h.registry;
    let signup = |i: u32| format!("company=Co+{i}&plan=starter&name=N&email=n{i}%40throttle.example&password=long+enough+password");
    for i in 0..2 {
        let r = request(addr, "POST", "/signup", &[("content-type", "application/x-www-form-urlencoded")], signup(i).as_bytes()).await?;
        assert_eq!(r.status, 303, "sign-up {i}: {}", r.body);
    }
    let r = request(addr, "POST", "/signup", &[("content-type", "application/x-www-form-urlencoded")], signup(9).as_bytes()).await?;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("Too many sign-ups"), "{}", r.body);
    assert_eq!(reg.list_tenants()?.len(), 2, "the refused sign-up created nothing");
    assert!(reg.login("n9@throttle.example", "long enough password").is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partnerships_need_the_suppliers_consent_and_respect_the_plan() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let portal = h.portal().await?;
    let addr = portal.addr;
    let buyer = tenant(&h, "Hanbit Motors", "starter")?;
    let mut suppliers = Vec::new();
    for i in 0..4 {
        suppliers.push(tenant(&h, &format!("Supplier {i}"), "starter")?);
    }
    let ask = |id: &str| format!(r#"{{"supplier_id":"{id}"}}"#);
    // Only the owner asks; malformed and unknown ids are clear errors.
    assert_eq!(api(addr, "POST", "/api/v1/partners", &buyer.operator_key, Some(&ask(&suppliers[0].id))).await?.status, 403);
    assert!(is_problem(&as_owner(addr, &buyer.owner, "POST", "/api/v1/partners", Some(&ask("<script>"))).await?, 400));
    assert!(is_problem(&as_owner(addr, &buyer.owner, "POST", "/api/v1/partners", Some(&ask("t_0000000000000000"))).await?, 404));
    for s in &suppliers[..3] {
        let r = as_owner(addr, &buyer.owner, "POST", "/api/v1/partners", Some(&ask(&s.id))).await?;
        assert_eq!((r.status, r.json()["status"].as_str()), (201, Some("pending")), "{}", r.body);
    }
    // The 4th partner of a 3-partner plan: refused with a clear message, by API and by page.
    let r = as_owner(addr, &buyer.owner, "POST", "/api/v1/partners", Some(&ask(&suppliers[3].id))).await?;
    assert!(is_problem(&r, 429) && r.json()["detail"].as_str().unwrap_or("").contains("3 partners"), "{}", r.body);
    let form = format!("csrf={}&supplier_id={}", buyer.owner.csrf, suppliers[3].id);
    let page = request(
        addr,
        "POST",
        "/partners",
        &[("cookie", &buyer.owner.cookie), ("content-type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .await?;
    assert!(page.status == 429 && page.body.contains("3 partners"), "{} {}", page.status, page.body);
    let usage = as_owner(addr, &buyer.owner, "GET", "/api/v1/usage", None).await?.json();
    assert_eq!((usage["partners"].as_u64(), usage["max_partners"].as_u64()), (Some(3), Some(3)));
    // The supplier sees the request and accepts it; a stranger cannot accept on its behalf.
    let seen = as_owner(addr, &suppliers[0].owner, "GET", "/api/v1/partners", None).await?.json();
    assert_eq!(seen["buyers"][0]["organisation_id"].as_str(), Some(buyer.id.as_str()));
    assert!(is_problem(&as_owner(addr, &suppliers[3].owner, "POST", &format!("/api/v1/partners/{}/accept", buyer.id), None).await?, 404));
    // Before it accepts, the buyer's network is not the supplier's (the
    // settlement service asks the tenancy owner; it caches only a "yes")...
    let designs = format!("/api/v1/networks/{}/designs", buyer.id);
    assert!(is_problem(&as_owner(addr, &suppliers[0].owner, "GET", &designs, None).await?, 404));
    let r = as_owner(addr, &suppliers[0].owner, "POST", &format!("/api/v1/partners/{}/accept", buyer.id), None).await?;
    assert_eq!(r.json()["status"].as_str(), Some("active"), "{}", r.body);
    // ...and the accepted partnership applies at once.
    assert_eq!(as_owner(addr, &suppliers[0].owner, "GET", &designs, None).await?.status, 200);
    assert!(h.registry.is_network_member(&buyer.id, &suppliers[0].id)?);
    assert!(!h.registry.is_network_member(&buyer.id, &suppliers[1].id)?);
    // Other tenants see none of it.
    let other = as_owner(addr, &suppliers[3].owner, "GET", "/api/v1/partners", None).await?.json();
    assert_eq!((other["suppliers"].as_array().map(Vec::len), other["buyers"].as_array().map(Vec::len)), (Some(0), Some(0)));
    // Ending frees the slot.
    assert_eq!(as_owner(addr, &suppliers[1].owner, "DELETE", &format!("/api/v1/partners/{}", buyer.id), None).await?.status, 204);
    // An ended partnership ends the supplier's access as soon as settlement hears of it
    // over NATS (milliseconds), not when its cached "yes" expires (30 s).
    assert_eq!(as_owner(addr, &suppliers[0].owner, "DELETE", &format!("/api/v1/partners/{}", buyer.id), None).await?.status, 204);
    fc_testkit::wait_until(std::time::Duration::from_secs(5), "the ended partnership to apply", || async {
        as_owner(addr, &suppliers[0].owner, "GET", &designs, None).await.map(|r| r.status == 404).unwrap_or(false)
    })
    .await?;
    assert_eq!(as_owner(addr, &buyer.owner, "POST", "/api/v1/partners", Some(&ask(&suppliers[3].id))).await?.status, 201);
    let page = request(addr, "GET", "/partners", &[("cookie", &buyer.owner.cookie)], b"").await?;
    assert!(page.body.contains(&buyer.id) && page.body.contains("Supplier 2") && !page.body.contains("Supplier 0"), "{}", page.body);
    Ok(())
}
