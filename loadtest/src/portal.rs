//! `portal`: the portal under load. Signs up a tenant through the real pages,
//! fills a machine with readings over gRPC, then measures with `wrk` (Debian
//! package) the dashboard page and a series API call at 200 connections, and
//! how many live-chart (SSE) clients one portal serves while ingest runs.

use anyhow::{Context, Result, bail};
use clap::Args;
use fc_proto::v1::{ReadingBatch, ingest_client::IngestClient};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Options of `portal`.
#[derive(Args)]
pub struct PortalArgs {
    /// Portal address (host:port).
    #[arg(long)]
    portal: String,
    /// gRPC address of the ingest service.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// Concurrent HTTP connections for the page and API figures.
    #[arg(long, default_value_t = 200)]
    connections: usize,
    /// How long each wrk run lasts.
    #[arg(long, default_value = "15s")]
    duration: String,
    /// Live-chart clients to open.
    #[arg(long, default_value_t = 1000)]
    sse_clients: usize,
    /// gRPC address of the Admin service (the portal's gRPC port).
    #[arg(long, env = "FC_ADMIN_SERVER", default_value = "http://127.0.0.1:50053")]
    admin_server: String,
    /// Admin token: the signed-up tenant is moved to the enterprise plan (sign-up
    /// offers only starter and growth, whose quotas the load exceeds).
    #[arg(long, env = "FC_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

/// One HTTP/1.1 request on a fresh connection: (status, headers, body).
pub(crate) async fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Result<(u16, String, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).await?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, head.to_string(), body.to_string()))
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    Some(&s[i..i + s[i..].find(end)?])
}

/// Parse wrk's `--latency` output: (p99 ms, requests/s, non-2xx responses).
fn parse_wrk(out: &str) -> Result<(f64, f64, u64)> {
    let p99 = out
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no 99% line in wrk output")?;
    let ms = if let Some(v) = p99.strip_suffix("ms") {
        v.parse::<f64>()?
    } else if let Some(v) = p99.strip_suffix("us") {
        v.parse::<f64>()? / 1000.0
    } else if let Some(v) = p99.strip_suffix('s') {
        v.parse::<f64>()? * 1000.0
    } else {
        bail!("unknown unit in {p99}")
    };
    let rps = out
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let bad = out
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses:"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((ms, rps, bad))
}

fn wrk(url: &str, header: &str, connections: usize, duration: &str) -> Result<(f64, f64, u64)> {
    let out = std::process::Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{duration}"), "--latency", "-H", header, url])
        .output()
        .context("running wrk (Debian package wrk; `make bench` installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&text)
}

/// Run the portal benchmark and print its JSON line.
pub async fn run(a: PortalArgs) -> Result<()> {
    let addr = a.portal.as_str();
    let (cookie, csrf) = sign_up(addr, &a.admin_server, a.admin_token.as_deref()).await?;
    let auth = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str()), ("content-type", "application/json")];
    let (_, _, dev) = http(addr, "POST", "/api/v1/devices", &auth, r#"{"name":"bench gateway"}"#).await?;
    let token = serde_json::from_str::<serde_json::Value>(&dev)?["token"].as_str().context("no device token")?.to_string();
    let (_, _, key) = http(addr, "POST", "/api/v1/api-keys", &auth, r#"{"name":"bench","role":"viewer"}"#).await?;
    let api_key = serde_json::from_str::<serde_json::Value>(&key)?["token"].as_str().context("no API key")?.to_string();

    // An hour of 1 Hz readings for 10 metrics of one machine.
    let channel = tonic::transport::Channel::from_shared(a.server.clone())?.connect().await?;
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
    let mut ingest = IngestClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
        r.metadata_mut().insert("authorization", bearer.clone());
        Ok(r)
    });
    let now = fc_core::time::now_ms();
    for chunk in 0..36 {
        let first = now - 3_600_000 + chunk * 100_000;
        let mut series = crate::make_series("line-1", 10, 100, first, chunk as u64);
        for s in &mut series {
            s.timestamp_deltas_ms = vec![1000; 100];
        }
        ingest.push(ReadingBatch { device_seq: chunk as u64 + 1, readings: vec![], series }).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // the store writer catches up

    let (page_p99, page_rps, page_bad) = wrk(&format!("http://{addr}/"), &format!("Cookie: {cookie}"), a.connections, &a.duration)?;
    // A settlement page: the portal asks the settlement service (networks, orders, designs),
    // which asks the tenancy owner (its name, its buyers, membership): two services per view.
    let (orders_p99, orders_rps, orders_bad) =
        wrk(&format!("http://{addr}/orders"), &format!("Cookie: {cookie}"), a.connections, &a.duration)?;
    // A chart's call: the last hour in one-minute buckets (60 points from 3,600 readings).
    let api_url = format!("http://{addr}/api/v1/series/line-1/metric00?start_ms={}&end_ms={}&step_ms=60000", now - 3_600_000, now + 1000);
    let (api_p99, api_rps, api_bad) = wrk(&api_url, &format!("Authorization: Bearer {api_key}"), a.connections, &a.duration)?;
    // The heavy call: the raw hour (3,600 readings, about 100 KB of JSON per answer).
    let raw_url = format!("http://{addr}/api/v1/series/line-1/metric00?start_ms={}&end_ms={}", now - 3_600_000, now + 1000);
    let (raw_p99, raw_rps, raw_bad) = wrk(&raw_url, &format!("Authorization: Bearer {api_key}"), a.connections, &a.duration)?;

    // Live-chart clients: each opens the machine's SSE stream; ingest pushes twice a second.
    let received = Arc::new(AtomicUsize::new(0));
    let connected = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..a.sse_clients {
        let (addr, cookie, received, connected) = (addr.to_string(), cookie.clone(), received.clone(), connected.clone());
        clients.push(tokio::spawn(async move {
            let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else { return };
            let req =
                format!("GET /machines/line-1/live HTTP/1.1\r\nhost: {addr}\r\ncookie: {cookie}\r\naccept: text/event-stream\r\n\r\n");
            if s.write_all(req.as_bytes()).await.is_err() {
                return;
            }
            let mut buf = vec![0u8; 8192];
            let mut seen = String::new();
            let mut counted = false;
            while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
                if n == 0 {
                    return;
                }
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                if !counted && seen.contains(" 200 ") {
                    connected.fetch_add(1, Ordering::Relaxed);
                    counted = true;
                }
                if seen.contains("event: readings") {
                    received.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                if seen.len() > 65_536 {
                    seen.clear();
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seq = 1000u64;
    while received.load(Ordering::Relaxed) < a.sse_clients && Instant::now() < deadline {
        seq += 1;
        let series = crate::make_series("line-1", 10, 1, fc_core::time::now_ms(), seq);
        let _ = ingest.push(ReadingBatch { device_seq: seq, readings: vec![], series }).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for c in clients {
        c.abort();
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "portal",
            "connections": a.connections,
            "page_p99_ms": page_p99,
            "page_requests_per_s": page_rps,
            "page_errors": page_bad,
            "orders_page_p99_ms": orders_p99,
            "orders_page_requests_per_s": orders_rps,
            "orders_page_errors": orders_bad,
            "orders_page": "GET /orders: 3 calls to settlement, which asks tenancy",
            "api_p99_ms": api_p99,
            "api_requests_per_s": api_rps,
            "api_errors": api_bad,
            "api_call": "GET /api/v1/series/{machine}/{metric}, last hour in 1-minute buckets",
            "api_raw_hour_p99_ms": raw_p99,
            "api_raw_hour_requests_per_s": raw_rps,
            "api_raw_hour_errors": raw_bad,
            "sse_fanout_clients": received.load(Ordering::Relaxed),
            "sse_clients_opened": a.sse_clients,
            "sse_clients_connected": connected.load(Ordering::Relaxed),
        })
    );
    Ok(())
}

/// Sign up a tenant through the form, as a person would, and (with the admin token) move
/// it to the enterprise plan; returns the owner's session cookie and CSRF token.
pub(crate) async fn sign_up(addr: &str, admin_server: &str, admin_token: Option<&str>) -> Result<(String, String)> {
    let email = format!("bench-{}@bench.example", fc_core::time::now_ms());
    let form = format!("company=Bench+Works&plan=growth&name=Bench&email={}&password=long+enough+password", email.replace('@', "%40"));
    let (status, head, _) = http(addr, "POST", "/signup", &[("content-type", "application/x-www-form-urlencoded")], &form).await?;
    if status != 303 {
        bail!("sign-up answered {status}");
    }
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .context("no session cookie")?
        .to_string();
    if let Some(admin_token) = admin_token {
        let (_, _, me) = http(addr, "GET", "/api/v1/me", &[("cookie", &cookie)], "").await?;
        let tenant_id =
            serde_json::from_str::<serde_json::Value>(&me)?["tenant_id"].as_str().context("no tenant id in /api/v1/me")?.to_string();
        let channel = tonic::transport::Channel::from_shared(admin_server.to_string())?
            .connect()
            .await
            .with_context(|| format!("connecting to the Admin service at {admin_server}"))?;
        let header: tonic::metadata::MetadataValue<_> = format!("Bearer {admin_token}").parse()?;
        let mut admin = fc_proto::v1::admin_client::AdminClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", header.clone());
            Ok(r)
        });
        admin.set_tenant_plan(fc_proto::v1::SetTenantPlanRequest { tenant_id, plan: "enterprise".into() }).await?;
    }
    let (_, _, page) = http(addr, "GET", "/devices", &[("cookie", &cookie)], "").await?;
    let csrf = between(&page, "name=\"csrf\" value=\"", "\"").context("no csrf token on the page")?.to_string();
    Ok((cookie, csrf))
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrk_output_parses() {
        let out = "  Latency Distribution\n     50%    1.20ms\n     75%    2.00ms\n     90%    3.00ms\n     99%   12.34ms\n  1000 requests in 1.00s\nRequests/sec:   1234.56\n";
        assert_eq!(super::parse_wrk(out).unwrap(), (12.34, 1234.56, 0));
        assert_eq!(super::parse_wrk("     99%  850.00us\nRequests/sec: 1\n").unwrap().0, 0.85);
        assert_eq!(super::parse_wrk("     99%    1.50s\nNon-2xx or 3xx responses: 7\n").unwrap(), (1500.0, 0.0, 7));
    }
}
