//! `fc-loadtest monitor`: the monitor under the ingest benchmark's fleet. A tenant is
//! signed up with 10 alarm rules that watch every machine (8 thresholds, an anomaly
//! detector on every series, and one threshold on a probe machine); the fleet
//! (`fc-loadtest ingest`, its own process) streams at `--rate` while a probe pushes a
//! reading that raises or clears an alarm every `--probe-ms` and times the alarm event
//! on NATS from the reading's ack. Reports the readings/s the monitor judged (its
//! `monitor_readings_total`), whether it kept up (its consumer's backlog) and the alarm
//! latency p50/p99.

use crate::portal::{http, sign_up};
use anyhow::{Context, Result, bail};
use clap::Args;
use fc_proto::v1::{ReadingBatch, ingest_client::IngestClient};
use futures::StreamExt;
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct MonitorArgs {
    /// Portal address (host:port): sign-up, device, rules.
    #[arg(long)]
    portal: String,
    /// gRPC address of the ingest service.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// gRPC address of the Admin service (the portal's gRPC port).
    #[arg(long, env = "FC_ADMIN_SERVER", default_value = "http://127.0.0.1:50053")]
    admin_server: String,
    /// Admin token (the tenant is moved to the enterprise plan).
    #[arg(long, env = "FC_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// NATS URL (alarm events, the monitor's backlog).
    #[arg(long)]
    nats_url: String,
    /// The `/metrics` that carries `monitor_readings_total` (under `up`: ingest's `http_addr`).
    #[arg(long)]
    metrics_url: String,
    /// Machines (device streams) of the fleet.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Metrics per machine.
    #[arg(long, default_value_t = 10)]
    metrics: usize,
    /// Offered readings per second, whole fleet.
    #[arg(long, default_value_t = 200_000)]
    rate: u64,
    /// How long the fleet streams.
    #[arg(long, default_value = "30s")]
    duration: String,
    /// A probe reading every this many ms.
    #[arg(long, default_value_t = 250)]
    probe_ms: u64,
}

/// `monitor_readings_total` now.
async fn judged(metrics_url: &str) -> Result<f64> {
    let addr = metrics_url.trim_start_matches("http://").trim_end_matches('/');
    let (_, _, body) = http(addr, "GET", "/metrics", &[], "").await?;
    Ok(body.lines().find_map(|l| l.strip_prefix("monitor_readings_total ").and_then(|v| v.trim().parse().ok())).unwrap_or(0.0))
}

fn rule(id: &str, body: serde_json::Value) -> (String, String) {
    let mut v = body;
    v["id"] = id.into();
    (id.to_owned(), v.to_string())
}

pub async fn run(a: MonitorArgs) -> Result<()> {
    let addr = a.portal.as_str();
    let (cookie, csrf) = sign_up(addr, &a.admin_server, a.admin_token.as_deref()).await?;
    let auth = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str()), ("content-type", "application/json")];
    let (_, _, me) = http(addr, "GET", "/api/v1/me", &[("cookie", &cookie)], "").await?;
    let tenant = serde_json::from_str::<serde_json::Value>(&me)?["tenant_id"].as_str().context("no tenant id")?.to_string();
    // Devices are limited to 100,000 readings/s each (enterprise): one per 20,000 offered.
    let mut tokens = Vec::new();
    for i in 0..(a.rate / 20_000).max(1) {
        let (_, _, dev) = http(addr, "POST", "/api/v1/devices", &auth, &format!(r#"{{"name":"bench gateway {i}"}}"#)).await?;
        tokens.push(serde_json::from_str::<serde_json::Value>(&dev)?["token"].as_str().context("no device token")?.to_string());
    }
    let token = tokens[0].clone();
    let tokens_file = std::env::temp_dir().join(format!("fc-monitor-bench-{}.tokens", std::process::id()));
    std::fs::write(&tokens_file, tokens.join("\n"))?;

    let channel = tonic::transport::Channel::from_shared(a.server.clone())?.connect().await?;
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
    let mut ingest = IngestClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
        r.metadata_mut().insert("authorization", bearer.clone());
        Ok(r)
    });
    // The metrics must exist before rules name them: one batch of every metric, and the probe.
    let mut seq = 1u64 << 62;
    let now = fc_core::time::now_ms();
    let mut series = crate::make_series("sim00000", a.metrics.max(1), 1, now, 0);
    series.extend(crate::make_series("probe-0", 1, 1, now, 0).into_iter().map(|mut s| {
        s.metric = "probe".into();
        s.values = vec![0.0];
        s
    }));
    ingest.push(ReadingBatch { device_seq: seq, readings: vec![], series }).await?;
    let mut rules = Vec::new();
    for j in 0..8.min(a.metrics.max(1)) {
        rules.push(rule(
            &format!("hot-{j}"),
            serde_json::json!({"severity": "major", "condition": {"type": "threshold", "metric": format!("metric{j:02}"), "above": 500, "hysteresis": 5}}),
        ));
    }
    rules.push(rule("unusual", serde_json::json!({"severity": "warning", "condition": {"type": "anomaly", "metric": "metric*"}})));
    rules.push(rule(
        "probe",
        // A rule raises at most 60 alarms an hour per series: each probe is a machine of its own.
        serde_json::json!({"machine": "probe-*", "severity": "critical", "condition": {"type": "threshold", "metric": "probe", "above": 50}}),
    ));
    for (id, body) in &rules {
        let (status, _, answer) = http(addr, "PUT", &format!("/api/v1/alarm-rules/{id}"), &auth, body).await?;
        if status != 200 {
            bail!("rule {id}: {status} {answer}");
        }
    }

    let nats = async_nats::connect(&a.nats_url).await.context("connecting to NATS")?;
    let mut events = nats.subscribe(fc_bus::alarm_subject(&tenant)).await?;
    nats.flush().await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    tokio::spawn(async move {
        while let Some(m) = events.next().await {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.payload)
                && v["alarm"]["rule_id"] == "probe"
            {
                let _ = tx.send((v["kind"].as_str().unwrap_or("").to_owned(), Instant::now()));
            }
        }
    });

    // The fleet, its own process, with the tenant's device token.
    let exe = std::env::current_exe()?;
    let fleet = tokio::process::Command::new(exe)
        .args(["ingest", "--server", &a.server, "--devices", &a.devices.to_string()])
        .arg("--tokens-file")
        .arg(&tokens_file)
        .arg("--metrics")
        .arg(a.metrics.to_string())
        .args(["--batch", "100", "--rate", &a.rate.to_string(), "--duration", &a.duration, "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the fleet")?;
    let duration = crate::parse_duration(&a.duration)?;
    let before = judged(&a.metrics_url).await?;
    let started = Instant::now();
    let bus = fc_bus::Bus::connect(&fc_bus::BusConfig { url: a.nats_url.clone(), ..Default::default() }).await?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let (mut probes, mut missed, mut backlog_max) = (0u64, 0u64, 0u64);
    let mut hot = false;
    while started.elapsed() < duration {
        hot = !hot;
        seq += 1;
        let reading = fc_proto::v1::Reading {
            machine: format!("probe-{}", probes / 2 + 1),
            metric: "probe".into(),
            unit: String::new(),
            timestamp_ms: fc_core::time::now_ms(),
            value: if hot { 100.0 } else { 0.0 },
            quality: 0,
        };
        ingest.push(ReadingBatch { device_seq: seq, readings: vec![reading], series: vec![] }).await?;
        let acked = Instant::now();
        let want = if hot { "raised" } else { "cleared" };
        probes += 1;
        let deadline = acked + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                Ok(Some((kind, at))) if kind == want => {
                    hist.record(at.saturating_duration_since(acked).as_micros().max(1) as u64)?;
                    break;
                }
                Ok(Some(_)) => continue,
                _ => {
                    missed += 1;
                    break;
                }
            }
        }
        if let Ok(b) = bus.consumer_backlog(fc_bus::TELEMETRY_STREAM, "monitor").await {
            backlog_max = backlog_max.max(b);
        }
        tokio::time::sleep(Duration::from_millis(a.probe_ms)).await;
    }
    let out = fleet.wait_with_output().await?;
    let _ = std::fs::remove_file(&tokens_file);
    let sent_secs = started.elapsed().as_secs_f64();
    // Kept up: the monitor's backlog drains soon after the fleet stops.
    let t = Instant::now();
    while bus.consumer_backlog(fc_bus::TELEMETRY_STREAM, "monitor").await.unwrap_or(u64::MAX) > 0 && t.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain_s = t.elapsed().as_secs_f64();
    let after = judged(&a.metrics_url).await?;
    let fleet: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let ms = |q: f64| (hist.value_at_quantile(q) as f64 / 10.0).round() / 100.0;
    let line = serde_json::json!({
        "bench": "monitor",
        "readings_per_s": ((after - before) / (sent_secs + drain_s)).round(),
        "offered_readings_per_s": a.rate,
        "acked_readings_per_s": fleet["acked_readings_per_s"],
        "rules": rules.len(),
        "machines": a.devices,
        "series": a.devices * a.metrics,
        "monitor_backlog_max_msgs": backlog_max,
        "monitor_drain_s": (drain_s * 100.0).round() / 100.0,
        "alarm_latency_p50_ms": ms(0.5),
        "alarm_latency_p99_ms": ms(0.99),
        "probes": probes,
        "probes_without_event": missed,
    });
    println!("{line}");
    Ok(())
}
