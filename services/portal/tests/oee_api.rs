//! OEE through the portal's REST API and page, with the monitor and ingest behind it:
//! a machine's readings (through the real ingest path) become states, a shift's three
//! factors and an unexplained stop; an operator gives the stop a reason; tenant B
//! neither sees nor explains A's; a bad setup gets every problem at once.

use fc_proto::v1::{ReadingBatch, SeriesReadings};
use fc_registry::Role;
use fc_testkit::Harness;
use fc_testkit::http::{Response, request};
use std::net::SocketAddr;

/// A call with an API key, or (`cookie|csrf`) a signed-in user's session.
async fn api(addr: SocketAddr, method: &str, path: &str, key: &str, body: Option<&str>) -> anyhow::Result<Response> {
    let auth = format!("Bearer {key}");
    let mut headers = match key.split_once('|') {
        Some((cookie, csrf)) => vec![("cookie", cookie), ("x-csrf-token", csrf)],
        None => vec![("authorization", auth.as_str())],
    };
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    request(addr, method, path, &headers, body.unwrap_or("").as_bytes()).await
}

const M: i64 = 60_000;

fn series(metric: &str, unit: &str, points: &[(i64, f64)]) -> SeriesReadings {
    let base = points[0].0;
    let mut deltas = vec![0];
    deltas.extend(points.windows(2).map(|w| w[1].0 - w[0].0));
    SeriesReadings {
        machine: "press-1".into(),
        metric: metric.into(),
        unit: unit.into(),
        base_timestamp_ms: base,
        timestamp_deltas_ms: deltas,
        values: points.iter().map(|p| p.1).collect(),
        qualities: vec![],
    }
}

fn hhmm(ms: i64) -> String {
    let m = ms.rem_euclid(86_400_000) / M;
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shift_of_readings_becomes_oee_and_an_operator_explains_its_stop() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let addr = h.portal().await?.addr;
    let reg = &h.registry;
    let a = reg.create_tenant("Tenant A", "growth")?.id;
    let b = reg.create_tenant("Tenant B", "growth")?.id;
    let owner_a = reg.create_user(&a, "owner@a.example", "Owner", Role::Owner, "long enough password")?;
    let (sid, session) = reg.create_session(&owner_a)?;
    let cookie = format!("fc_session={sid}");
    let owner_key = format!("{cookie}|{}", session.csrf);
    let (_, op_a) = reg.create_api_key(&a, "op", Role::Operator)?;
    let (_, viewer_a) = reg.create_api_key(&a, "view", Role::Viewer)?;
    let owner_b = reg.create_user(&b, "owner@b.example", "Owner", Role::Owner, "long enough password")?;
    let (sid_b, session_b) = reg.create_session(&owner_b)?;
    let owner_b = format!("fc_session={sid_b}|{}", session_b.csrf);
    let (_, device) = reg.create_device(&a, "gateway")?;

    // press-1 runs (load 50) one reading a minute from t0 to t0+59 min, is silent until
    // t0+90 min, then runs again to now; it makes 2 parts a minute, one in ten is scrap.
    let now = fc_core::time::now_ms() / M * M;
    let t0 = now - 150 * M;
    let times: Vec<i64> = (0..60).chain(90..=150).map(|i| t0 + i * M).collect();
    let load: Vec<(i64, f64)> = times.iter().map(|&t| (t, 50.0)).collect();
    let parts: Vec<(i64, f64)> = times.iter().enumerate().map(|(i, &t)| (t, 2.0 * i as f64)).collect();
    let scrap: Vec<(i64, f64)> = times.iter().enumerate().map(|(i, &t)| (t, (2 * i / 10) as f64)).collect();
    let batch = ReadingBatch {
        device_seq: 1,
        readings: vec![],
        series: vec![series("spindle_load", "%", &load), series("parts", "1", &parts), series("scrap", "1", &scrap)],
    };
    h.ingest(&device).await?.push(batch).await?;

    // The shift starts ten minutes before the first reading (so it starts with a stop).
    let shift_start = t0 - 10 * M;
    let setup = serde_json::json!({
        "calendar": {"utc_offset_min": 0, "shifts": [{"name": "early", "start": hhmm(shift_start), "end": hhmm(shift_start + 8 * 60 * M)}]},
        "reasons": [
            {"code": "unplanned", "label": "Unplanned", "kind": "unplanned"},
            {"code": "breakdown", "label": "Breakdown", "parent": "unplanned", "kind": "unplanned"}
        ],
        "machines": [{"machine": "press-1", "line": "A", "state": {"metric": "spindle_load", "running_above": 20, "no_data_ms": 120000},
                      "produced_metric": "parts", "scrap_metric": "scrap", "planned_ms_per_item": 25000}]
    });

    // Bad setups: every problem at once, nothing saved.
    let bad = r#"{"calendar":{"utc_offset_min":9999,"shifts":[]},"machines":[{"machine":"press-1","state":{"metric":"spindle_load"}}]}"#;
    let r = api(addr, "PUT", "/api/v1/oee/setup", &owner_key, Some(bad)).await?;
    assert_eq!(r.status, 400, "{}", r.body);
    let detail = r.json()["detail"].as_str().unwrap_or("").to_owned();
    for want in ["utc_offset_min", "1 to 12 shifts", "exactly one of running_above or codes"] {
        assert!(detail.contains(want), "{want}: {detail}");
    }
    let unknown = setup.to_string().replace("spindle_load", "spindel_load");
    let r = api(addr, "PUT", "/api/v1/oee/setup", &owner_key, Some(&unknown)).await?;
    assert!(r.status == 400 && r.body.contains("press-1/spindel_load"), "an unknown metric: {}", r.body);
    assert_eq!(api(addr, "PUT", "/api/v1/oee/setup", &op_a, Some(&setup.to_string())).await?.status, 403, "owners edit the setup");
    assert_eq!(api(addr, "GET", "/api/v1/oee", &op_a, None).await?.status, 409, "no setup yet");
    let r = api(addr, "PUT", "/api/v1/oee/setup", &owner_key, Some(&setup.to_string())).await?;
    assert_eq!(r.status, 200, "{}", r.body);

    let window = format!("/api/v1/oee?start_ms={}&end_ms={}", t0 - 30 * M, now + M);
    let r = api(addr, "GET", &window, &viewer_a, None).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    let rep = r.json();
    assert_eq!(rep["rows"].as_array().map(Vec::len), Some(1), "{rep}");
    let row = &rep["rows"][0];
    assert_eq!((row["machine"].as_str(), row["line"].as_str(), row["shift"].as_str()), (Some("press-1"), Some("A"), Some("early")));
    // Planned busy time: the shift so far (it is still running). Running: t0 .. t0+61 min
    // (the last reading holds for no_data_ms) and t0+90 min .. now.
    let pbt = row["planned_busy_ms"].as_i64().unwrap();
    let apt = row["actual_production_ms"].as_i64().unwrap();
    let so_far = fc_core::time::now_ms() - shift_start;
    assert!((so_far - 2 * M..=so_far).contains(&pbt), "pbt {pbt} vs {so_far}");
    assert!((120 * M..=124 * M).contains(&apt), "apt {apt}");
    let produced = row["produced"].as_f64().unwrap();
    assert_eq!(produced, 2.0 * (times.len() - 1) as f64);
    assert_eq!(row["good"].as_f64().unwrap(), produced - (2 * (times.len() - 1) / 10) as f64);
    let (av, ef, q, oee) = (
        row["availability"].as_f64().unwrap(),
        row["effectiveness"].as_f64().unwrap(),
        row["quality"].as_f64().unwrap(),
        row["oee"].as_f64().unwrap(),
    );
    assert!((av - apt as f64 / pbt as f64).abs() < 1e-9);
    assert!((ef - 25_000.0 * produced / apt as f64).abs() < 1e-9);
    assert!((oee - av * ef * q).abs() < 1e-9);
    assert_eq!(rep["lines"][0]["name"], "A");
    // Two stops, both unexplained: before the first reading, and the half hour of silence.
    let stops = rep["downtime"].as_array().unwrap().clone();
    assert_eq!(stops.len(), 2, "{stops:?}");
    assert_eq!((stops[1]["start_ms"].as_i64(), stops[1]["end_ms"].as_i64()), (Some(t0 + 61 * M), Some(t0 + 90 * M)));
    assert_eq!(rep["pareto"][0]["reason"], "unexplained");
    assert!(rep["timeline"].as_array().unwrap().iter().any(|s| s["state"] == "down"));

    // Later, from the tablet: the operator picks a reason for the long stop.
    let reason = format!(r#"{{"machine":"press-1","at_ms":{},"reason":"breakdown"}}"#, t0 + 75 * M);
    assert_eq!(api(addr, "POST", "/api/v1/oee/downtime-reasons", &viewer_a, Some(&reason)).await?.status, 403);
    let wrong = reason.replace("breakdown", "coffee");
    let r = api(addr, "POST", "/api/v1/oee/downtime-reasons", &op_a, Some(&wrong)).await?;
    assert!(r.status == 400 && r.body.contains("not in the reason tree"), "{}", r.body);
    let r = api(addr, "POST", "/api/v1/oee/downtime-reasons", &owner_b, Some(&reason)).await?;
    assert_eq!(r.status, 409, "B has no setup, and never A's: {}", r.body);
    assert_eq!(api(addr, "POST", "/api/v1/oee/downtime-reasons", &op_a, Some(&reason)).await?.status, 204);
    let rep = api(addr, "GET", &window, &viewer_a, None).await?.json();
    assert_eq!(rep["downtime"][1]["reason"], "breakdown");
    assert_eq!(rep["pareto"][0], serde_json::json!({"reason": "breakdown", "ms": 29 * M, "count": 1}));

    // Tenant B sees nothing of A's.
    assert_eq!(api(addr, "GET", "/api/v1/oee", &owner_b, None).await?.status, 409);
    assert_eq!(api(addr, "GET", "/api/v1/oee/setup", &owner_b, None).await?.status, 404);

    // The page: the factors, the timeline, the Pareto; the dashboard card shows today's OEE.
    let date = &fc_monitor::backtest::rfc3339(shift_start)[..10];
    let page = request(addr, "GET", &format!("/oee?date={date}"), &[("cookie", cookie.as_str())], b"").await?;
    assert_eq!(page.status, 200);
    for want in ["data-machine=\"press-1\" data-shift=\"early\"", "id=\"oee-timeline\"", "data-reason=\"breakdown\"", "data-factor=\"oee\""]
    {
        assert!(page.body.contains(want), "{want}: {}", page.body);
    }
    let page = request(addr, "GET", "/oee", &[("cookie", cookie.as_str()), ("accept-language", "ko")], b"").await?;
    assert!(page.body.contains("가용률"), "Korean labels");
    let dash = request(addr, "GET", "/", &[("cookie", cookie.as_str())], b"").await?;
    assert!(dash.body.contains("class=\"oee-today\""), "the machine card shows today's OEE: {}", dash.body);
    Ok(())
}
