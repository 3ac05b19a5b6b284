//! Alarms and alarm rules through the portal's REST API and pages, with the monitor
//! behind it: a rule saved over REST raises an alarm from readings through the real
//! ingest path; an operator acknowledges and clears it; a viewer cannot; tenant B
//! neither sees nor touches A's rules and alarms; bad rules get clear 400s.

use fc_proto::v1::{Reading, ReadingBatch};
use fc_registry::Role;
use fc_testkit::http::{Response, request};
use fc_testkit::{Harness, wait_until};
use std::net::SocketAddr;
use std::time::Duration;

async fn api(addr: SocketAddr, method: &str, path: &str, key: &str, body: Option<&str>) -> anyhow::Result<Response> {
    let auth = format!("Bearer {key}");
    let mut headers = vec![("authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    request(addr, method, path, &headers, body.unwrap_or("").as_bytes()).await
}

fn batch(seq: u64, value: f64) -> ReadingBatch {
    fc_testkit::one_reading(seq, "press-1", "temperature", "Cel", value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_saved_over_rest_raises_an_alarm_that_operators_handle() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let addr = h.portal().await?.addr;
    let reg = &h.registry;
    let a = reg.create_tenant("Tenant A", "growth")?.id;
    let b = reg.create_tenant("Tenant B", "growth")?.id;
    let (_, op_a) = reg.create_api_key(&a, "op", Role::Operator)?;
    let (_, viewer_a) = reg.create_api_key(&a, "view", Role::Viewer)?;
    let (_, op_b) = reg.create_api_key(&b, "op", Role::Operator)?;
    let (_, device) = reg.create_device(&a, "gateway")?;
    let mut ingest = h.ingest(&device).await?;
    ingest.push(batch(1, 20.0)).await?;
    h.wait_writer_idle().await?;

    // Bad rules: each a 400 naming the problem, nothing saved.
    for (body, says) in [
        (r#"{"condition":{"type":"threshold","metric":"temprature","above":80}}"#, "no series of any machine is named \"temprature\""),
        (r#"{"condition":{"type":"threshold","metric":"temperature"}}"#, "exactly one of above or below"),
        (r#"{"id":"other","condition":{"type":"threshold","metric":"temperature","above":80}}"#, "differs from the one in the path"),
        (r#"{"condition":{"type":"wobble"}}"#, "rule:"),
        (r#"[1,2]"#, "a JSON object"),
    ] {
        let r = api(addr, "PUT", "/api/v1/alarm-rules/hot", &op_a, Some(body)).await?;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.json()["detail"].as_str().unwrap_or("").contains(says), "{body}: {}", r.body);
    }
    let rule =
        r#"{"name":"Press too hot","severity":"major","condition":{"type":"threshold","metric":"temperature","above":80,"hysteresis":2}}"#;
    assert_eq!(api(addr, "PUT", "/api/v1/alarm-rules/hot", &viewer_a, Some(rule)).await?.status, 403, "viewers do not edit rules");
    let saved = api(addr, "PUT", "/api/v1/alarm-rules/hot", &op_a, Some(rule)).await?;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert_eq!(saved.json()["version"], 1);
    assert_eq!(saved.json()["rule"]["id"], "hot");
    assert_eq!(saved.json()["saved_by"], "api key");

    ingest.push(batch(2, 95.0)).await?;
    wait_until(Duration::from_secs(10), "the alarm to be listed", || {
        let key = op_a.clone();
        async move {
            api(addr, "GET", "/api/v1/alarms?open_only=true", &key, None)
                .await
                .is_ok_and(|r| r.json().as_array().is_some_and(|v| !v.is_empty()))
        }
    })
    .await?;
    let alarms = api(addr, "GET", "/api/v1/alarms?open_only=true", &op_a, None).await?.json();
    let alarm = &alarms[0];
    let id = alarm["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (alarm["machine"].as_str(), alarm["severity"].as_str(), alarm["state"].as_str()),
        (Some("press-1"), Some("major"), Some("raised"))
    );
    assert_eq!(alarm["reason"], "temperature 95 Cel is above the limit of 80 Cel");

    // A backtest over stored history: the rule (saved or not) on the tenant's readings.
    let try_rule = r#"{"rule":{"id":"try","condition":{"type":"threshold","metric":"temperature","above":50}}}"#;
    let r = api(addr, "POST", "/api/v1/alarm-rule-backtests", &op_a, Some(try_rule)).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = r.json();
    assert_eq!((b["readings"].as_u64(), b["series"].as_u64(), b["truncated"].as_bool()), (Some(2), Some(1), Some(false)), "{b}");
    assert_eq!(b["alarms"].as_array().map(Vec::len), Some(1), "{b}");
    assert_eq!((b["alarms"][0]["machine"].as_str(), b["alarms"][0]["cleared_at_ms"].as_i64()), (Some("press-1"), None));
    assert!(b["alarms"][0]["reason"].as_str().unwrap_or("").contains("95"), "{b}");
    assert_eq!(api(addr, "POST", "/api/v1/alarm-rule-backtests", &viewer_a, Some(try_rule)).await?.status, 403);
    let r = api(addr, "POST", "/api/v1/alarm-rule-backtests", &op_b, Some(try_rule)).await?;
    assert_eq!((r.status, r.json()["readings"].as_u64()), (200, Some(0)), "B's backtest reads none of A's readings: {}", r.body);
    let r = api(
        addr,
        "POST",
        "/api/v1/alarm-rule-backtests",
        &op_a,
        Some(r#"{"rule":{"id":"try","condition":{"type":"threshold","metric":"temperature","above":50}},"start_ms":0,"end_ms":1}"#),
    )
    .await?;
    assert_eq!(r.status, 200, "a window of nothing: {}", r.body);
    let r = api(
        addr,
        "POST",
        "/api/v1/alarm-rule-backtests",
        &op_a,
        Some(r#"{"rule":{"id":"try","condition":{"type":"threshold","metric":"temperature","above":50}},"start_ms":0}"#),
    )
    .await?;
    assert_eq!(r.status, 400, "more than 92 days: {}", r.body);
    let r = api(
        addr,
        "POST",
        "/api/v1/alarm-rule-backtests",
        &op_a,
        Some(r#"{"rule":{"id":"try","condition":{"type":"threshold","metric":"temperature","above":"NaN"}}}"#),
    )
    .await?;
    assert_eq!(r.status, 400, "{}", r.body);

    // The pages: the dashboard's card counts the open alarm, the alarms page lists it.
    let owner = reg.create_user(&a, "owner@a.example", "Owner", Role::Owner, "long enough password")?;
    let (sid, session) = reg.create_session(&owner)?;
    let cookie = format!("fc_session={sid}");
    let as_owner = |method: &'static str, path: String, body: &'static str| {
        let (cookie, csrf) = (cookie.clone(), session.csrf.clone());
        async move {
            let headers = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str()), ("content-type", "application/json")];
            request(addr, method, &path, &headers, body.as_bytes()).await
        }
    };
    let dash = request(addr, "GET", "/", &[("cookie", cookie.as_str())], b"").await?;
    assert!(dash.body.contains("<strong>1</strong> active alarms"), "{}", dash.body);
    // The alarms page is live: it hears of every change of the tenant's alarms.
    let live = {
        let cookie = cookie.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            let req = format!("GET /alarms/live HTTP/1.1\r\nhost: {addr}\r\ncookie: {cookie}\r\naccept: text/event-stream\r\n\r\n");
            s.write_all(req.as_bytes()).await?;
            let mut seen = String::new();
            let mut buf = [0u8; 4096];
            while !(seen.contains("event: alarm") && seen.contains("acknowledged")) {
                let n = s.read(&mut buf).await?;
                anyhow::ensure!(n > 0, "the stream ended: {seen}");
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            Ok::<_, anyhow::Error>(seen)
        })
    };
    // Filters.
    let page = request(addr, "GET", "/alarms?machine=press-1&min_severity=major&rule=hot", &[("cookie", cookie.as_str())], b"").await?;
    assert!(page.body.contains(&format!("data-alarm=\"{id}\"")), "{}", page.body);
    let page = request(addr, "GET", "/alarms?machine=lathe-9", &[("cookie", cookie.as_str())], b"").await?;
    assert!(page.body.contains("id=\"no-alarms\""), "another machine's alarms only: {}", page.body);
    let page = request(addr, "GET", "/alarms?min_severity=critical", &[("cookie", cookie.as_str())], b"").await?;
    assert!(page.body.contains("id=\"no-alarms\""), "a major alarm is below critical: {}", page.body);
    // Comment and assign from the page.
    let form_headers = [("cookie", cookie.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let r = request(
        addr,
        "POST",
        &format!("/alarms/{id}/comment"),
        &form_headers,
        format!("csrf={}&text=checking+the+coolant", session.csrf).as_bytes(),
    )
    .await?;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = request(
        addr,
        "POST",
        &format!("/alarms/{id}/assign"),
        &form_headers,
        format!("csrf={}&assignee=lee%40a.example", session.csrf).as_bytes(),
    )
    .await?;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = request(addr, "GET", "/alarms", &[("cookie", cookie.as_str())], b"").await?;
    assert!(page.body.contains("checking the coolant") && page.body.contains("data-assignee=\"lee@a.example\""), "{}", page.body);
    // The rule editor's preview runs the same backtest and saves nothing.
    let form = format!(
        "csrf={}&action=backtest&rule={}",
        session.csrf,
        "%7B%22id%22%3A%22try%22%2C%22condition%22%3A%7B%22type%22%3A%22threshold%22%2C%22metric%22%3A%22temperature%22%2C%22above%22%3A50%7D%7D"
    );
    let headers = [("cookie", cookie.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let page = request(addr, "POST", "/alarm-rules", &headers, form.as_bytes()).await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"backtest\" data-alarms=\"1\""), "{}", page.body);
    assert!(!page.body.contains("data-rule=\"try\""), "a preview saves nothing");
    let page = request(addr, "GET", "/alarms", &[("cookie", cookie.as_str()), ("accept-language", "ko")], b"").await?;
    assert!(page.body.contains(&format!("data-alarm=\"{id}\"")) && page.body.contains("확인"), "{}", page.body);

    // Tenant B: nothing to see, nothing to touch.
    let r = api(addr, "GET", "/api/v1/alarms", &op_b, None).await?;
    assert_eq!(r.json(), serde_json::json!([]));
    assert_eq!(api(addr, "GET", &format!("/api/v1/alarms/{id}"), &op_b, None).await?.status, 404);
    assert_eq!(api(addr, "POST", &format!("/api/v1/alarms/{id}/acknowledge"), &op_b, None).await?.status, 404);
    assert_eq!(api(addr, "DELETE", "/api/v1/alarm-rules/hot", &op_b, None).await?.status, 404);
    assert_eq!(api(addr, "GET", "/api/v1/alarm-rules", &op_b, None).await?.json(), serde_json::json!([]));

    // A viewer reads but does not act; an operator acknowledges, notes, assigns and clears.
    assert_eq!(api(addr, "GET", &format!("/api/v1/alarms/{id}"), &viewer_a, None).await?.status, 200);
    assert_eq!(api(addr, "POST", &format!("/api/v1/alarms/{id}/acknowledge"), &viewer_a, None).await?.status, 403);
    let r = api(addr, "POST", &format!("/api/v1/alarms/{id}/acknowledge"), &op_a, Some(r#"{"comment":"on my way"}"#)).await?;
    assert_eq!((r.status, r.json()["state"].as_str()), (200, Some("acknowledged")), "{}", r.body);
    let seen = tokio::time::timeout(Duration::from_secs(10), live).await???;
    assert!(seen.contains(&format!("\"id\":\"{id}\"")), "the live alarms page heard the acknowledgement: {seen}");
    let r = api(addr, "POST", &format!("/api/v1/alarms/{id}/comments"), &op_a, Some(r#"{"text":""}"#)).await?;
    assert_eq!(r.status, 400, "an empty note: {}", r.body);
    let r = api(addr, "PUT", &format!("/api/v1/alarms/{id}/assignee"), &op_a, Some(r#"{"assignee":"kim@a.example"}"#)).await?;
    assert_eq!(r.json()["assignee"], "kim@a.example");
    let r = api(addr, "POST", &format!("/api/v1/alarms/{id}/clear"), &op_a, None).await?;
    assert_eq!((r.status, r.json()["state"].as_str()), (200, Some("cleared")), "{}", r.body);
    let body = r.json();
    let kinds: Vec<&str> = body["history"].as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap_or("")).collect();
    assert_eq!(kinds, ["raised", "commented", "assigned", "acknowledged", "assigned", "cleared"]);
    assert_eq!(api(addr, "POST", &format!("/api/v1/alarms/{id}/clear"), &op_a, None).await?.status, 409, "already cleared");
    assert_eq!(api(addr, "GET", "/api/v1/alarms?min_severity=loud", &op_a, None).await?.status, 400);
    assert_eq!(api(addr, "DELETE", "/api/v1/alarm-rules/hot", &op_a, None).await?.status, 204);

    // Webhooks: signed-in owners only; an unsafe address is a clear 400; B sees none of A's.
    let r = api(addr, "PUT", "/api/v1/webhooks/ops", &op_a, Some(r#"{"url":"https://hooks.example.com/x"}"#)).await?;
    assert_eq!(r.status, 403, "operators do not add webhooks");
    let r = as_owner("PUT", "/api/v1/webhooks/ops".into(), r#"{"url":"http://169.254.169.254/latest"}"#).await?;
    assert_eq!(r.status, 400);
    assert!(r.json()["detail"].as_str().unwrap_or("").contains("link-local"), "{}", r.body);
    let r = as_owner("PUT", "/api/v1/webhooks/ops".into(), r#"{"url":"https://hooks.example.com/x","min_severity":"major"}"#).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["secret"].as_str().unwrap_or("").starts_with("whsec_"), "{}", r.body);
    let listed = api(addr, "GET", "/api/v1/webhooks", &viewer_a, None).await?.json();
    assert_eq!(listed[0]["id"], "ops");
    assert!(listed[0].get("secret").is_none(), "secrets are not listed: {listed}");
    assert_eq!(api(addr, "GET", "/api/v1/webhooks", &op_b, None).await?.json(), serde_json::json!([]));
    assert_eq!(api(addr, "DELETE", "/api/v1/webhooks/ops", &op_b, None).await?.status, 403);
    assert_eq!(api(addr, "GET", "/api/v1/webhook-deliveries?state=dead", &op_a, None).await?.json(), serde_json::json!([]));
    assert_eq!(api(addr, "GET", "/api/v1/webhook-deliveries?state=lost", &op_a, None).await?.status, 400);
    let page = request(addr, "GET", "/notifications", &[("cookie", cookie.as_str())], b"").await?;
    assert!(page.body.contains("data-webhook=\"ops\""), "{}", page.body);
    assert_eq!(as_owner("DELETE", "/api/v1/webhooks/ops".into(), "").await?.status, 204);

    // E-mail: a subscription is a signed-in user's, to the account's address.
    let r = api(addr, "PUT", "/api/v1/me/alarm-subscription", &op_a, Some(r#"{"min_severity":"major"}"#)).await?;
    assert_eq!(r.status, 403, "an API key is nobody's inbox: {}", r.body);
    let r = as_owner("PUT", "/api/v1/me/alarm-subscription".into(), r#"{"min_severity":"loud"}"#).await?;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(as_owner("GET", "/api/v1/me/alarm-subscription".into(), "").await?.status, 404);
    let r = as_owner("PUT", "/api/v1/me/alarm-subscription".into(), r#"{"min_severity":"major","machines":["press-*"]}"#).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((r.json()["address"].as_str(), r.json()["min_severity"].as_str()), (Some("owner@a.example"), Some("major")));
    assert_eq!(as_owner("GET", "/api/v1/me/alarm-subscription".into(), "").await?.json()["machines"], serde_json::json!(["press-*"]));
    assert_eq!(api(addr, "GET", "/api/v1/alarm-subscriptions", &op_a, None).await?.status, 403, "operators do not list everyone's");
    assert_eq!(as_owner("GET", "/api/v1/alarm-subscriptions".into(), "").await?.json()[0]["address"], "owner@a.example");
    let page = request(addr, "GET", "/notifications", &[("cookie", cookie.as_str())], b"").await?;
    assert!(page.body.contains("<strong>owner@a.example</strong>"), "{}", page.body);

    // A major alarm on a press reaches the owner's inbox.
    let hot = r#"{"severity":"major","condition":{"type":"threshold","metric":"temperature","above":80}}"#;
    assert_eq!(api(addr, "PUT", "/api/v1/alarm-rules/hot2", &op_a, Some(hot)).await?.status, 200);
    ingest.push(batch(5, 20.0)).await?;
    ingest.push(batch(6, 97.0)).await?;
    let mail = h.mail(Duration::from_secs(10)).await.expect("an alarm e-mail");
    assert_eq!(mail.to, ["owner@a.example"]);
    assert!(mail.header("subject").unwrap_or_default().contains("MAJOR raised: hot2 on press-1"), "{:?}", mail.header("subject"));
    assert_eq!(as_owner("DELETE", "/api/v1/me/alarm-subscription".into(), "").await?.status, 204);
    assert_eq!(as_owner("GET", "/api/v1/me/alarm-subscription".into(), "").await?.status, 404);
    Ok(())
}

/// `up --demo` saves its alarm rules once the replay stored the metrics they name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_rules_are_saved_once_their_metrics_exist() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let monitor_url = format!("http://{}", h.monitor().await?.grpc_addr);
    let (tenant, device) = h.tenant_with_device("Demo Steel Works")?;
    let credential = fc_rpc::service_auth::Credential::new(&h.service_token("portal"))?;
    let client = fc_monitor_api::MonitorClient::new(&monitor_url, credential, Duration::from_secs(10))?;
    let stop = fc_core::Shutdown::new();
    let task = tokio::spawn(fc_portal::demo::install_rules(client.clone(), tenant.clone(), stop.clone()));
    let oee = tokio::spawn(fc_portal::demo::install_oee(client.clone(), tenant.clone(), 120.0, stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(client.rules(&tenant).await?.is_empty(), "no rule before the metrics exist");
    assert!(client.oee_setup(&tenant).await?.is_none(), "no OEE setup before the metrics exist");
    let now = fc_core::time::now_ms();
    let reading = |machine: &str, metric: &str, value: f64| Reading {
        machine: machine.into(),
        metric: metric.into(),
        unit: String::new(),
        timestamp_ms: now,
        value,
        quality: 0,
    };
    let readings = vec![
        reading("steel-plant", "energy.usage", 50.0),
        reading("machine-temp-1", "temperature", 85.0),
        reading("machine-temp-1", "parts_simulated", 10.0),
        reading("machine-temp-1", "scrap_simulated", 0.0),
    ];
    h.ingest(&device).await?.push(ReadingBatch { device_seq: 1, readings, series: vec![] }).await?;
    h.wait_writer_idle().await?;
    tokio::time::timeout(Duration::from_secs(10), task).await??;
    let mut ids: Vec<String> = client.rules(&tenant).await?.iter().map(|r| r.rule["id"].as_str().unwrap_or("").to_owned()).collect();
    ids.sort();
    assert_eq!(ids, ["machine-temp-anomaly", "machine-temp-low", "steel-demand"]);
    tokio::time::timeout(Duration::from_secs(10), oee).await??;
    let setup = client.oee_setup(&tenant).await?.expect("the demo OEE setup");
    assert_eq!(setup["machines"].as_array().map(Vec::len), Some(2));
    Ok(())
}
