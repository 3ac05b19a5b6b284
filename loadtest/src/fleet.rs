//! The simulated fleet: one gRPC stream per device, re-sending unacknowledged
//! batches after a reconnect, pacing to an offered rate.

use anyhow::{Context, Result};
use clap::Args;
use fc_proto::v1::{
    AckStatus, CreateDeviceRequest, CreateTenantRequest, ReadingBatch, admin_client::AdminClient, ingest_client::IngestClient,
};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Options of `ingest`.
#[derive(Args, Clone)]
pub struct IngestArgs {
    /// gRPC address of the service.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// gRPC address of the Admin service (the portal's gRPC port), for provisioning.
    #[arg(long, env = "FC_ADMIN_SERVER", default_value = "http://127.0.0.1:50053")]
    admin_server: String,
    /// Admin token: provision a fresh tenant with one device per simulated device.
    #[arg(long, env = "FC_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A device token shared by every simulated device (each then numbers its batches in its own range).
    #[arg(long, env = "FC_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Device tokens, one per line, shared out over the streams (instead of --token).
    #[arg(long)]
    tokens_file: Option<std::path::PathBuf>,
    /// Concurrent device streams.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Metrics per device.
    #[arg(long, default_value_t = 10)]
    metrics: usize,
    /// Readings per batch (split evenly over the metrics).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Offered readings per second, whole fleet; 0 = as fast as acks allow.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long to send.
    #[arg(long, default_value = "30s")]
    duration: String,
    /// Batches one device may have unacknowledged.
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    /// HTTP/2 connections shared by the devices.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// NATS URL: sample the store writer's backlog and wait for it to drain.
    #[arg(long)]
    nats_url: Option<String>,
    /// Ingest's `/metrics` (its `http_addr`, e.g. `http://127.0.0.1:9464`): report the
    /// server's own ack latency and the store writer's commit time over the run, beside
    /// the devices' view.
    #[arg(long)]
    metrics_url: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Default)]
struct Counters {
    sent_batches: AtomicU64,
    acked_readings: AtomicU64,
    duplicates: AtomicU64,
    resent_batches: AtomicU64,
    refused: AtomicU64,
    stream_errors: AtomicU64,
}

async fn provision(args: &IngestArgs) -> Result<Vec<String>> {
    if let Some(admin) = &args.admin_token {
        let channel = Channel::from_shared(args.admin_server.clone())?
            .connect()
            .await
            .with_context(|| format!("connecting to the Admin service at {}", args.admin_server))?;
        let header: tonic::metadata::MetadataValue<_> = format!("Bearer {admin}").parse()?;
        let mut client = AdminClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", header.clone());
            Ok(r)
        });
        let tenant = client
            .create_tenant(CreateTenantRequest { name: format!("loadtest {}", fc_core::time::now_ms()), plan: "enterprise".into() })
            .await?
            .into_inner();
        let mut tokens = Vec::with_capacity(args.devices);
        for i in 0..args.devices {
            let d =
                client.create_device(CreateDeviceRequest { tenant_id: tenant.id.clone(), name: format!("sim-{i}") }).await?.into_inner();
            tokens.push(d.token);
        }
        return Ok(tokens);
    }
    if let Some(path) = &args.tokens_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let list: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
        anyhow::ensure!(!list.is_empty(), "{} holds no token", path.display());
        return Ok((0..args.devices).map(|i| list[i % list.len()].clone()).collect());
    }
    let t = args.token.clone().context("give --admin-token (provision devices), --tokens-file or --token (one device identity)")?;
    Ok(vec![t; args.devices])
}

/// Run the fleet and report.
pub async fn run(args: IngestArgs) -> Result<()> {
    let duration = crate::parse_duration(&args.duration)?;
    let connect =
        || async { Channel::from_shared(args.server.clone())?.connect().await.with_context(|| format!("connecting to {}", args.server)) };
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(connect().await?);
    }
    let tokens = provision(&args).await?;
    let shared_token = args.admin_token.is_none(); // streams share identities: each numbers its batches in its own range
    let counters = Arc::new(Counters::default());
    let per_series = (args.batch / args.metrics.max(1)).max(1);
    let readings_per_batch = per_series * args.metrics.max(1);
    let interval = (args.rate > 0).then(|| Duration::from_secs_f64(readings_per_batch as f64 * args.devices as f64 / args.rate as f64));
    let backlog_max = Arc::new(AtomicU64::new(0));
    let bus = match &args.nats_url {
        Some(url) => Some(fc_bus::Bus::connect(&fc_bus::BusConfig { url: url.clone(), ..Default::default() }).await?),
        None => None,
    };

    let scrape_before = match &args.metrics_url {
        Some(url) => Some(server_histograms(url).await?),
        None => None,
    };
    let started = Instant::now();
    let send_until = started + duration;
    let mut handles = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let dev = Device {
            phase: i as f64 / args.devices.max(1) as f64,
            channel: channels[i % channels.len()].clone(),
            token,
            machine: format!("sim{i:05}"),
            seq_base: if shared_token { (i as u64 + 1) << 32 } else { 0 },
            metrics: args.metrics.max(1),
            per_series,
            inflight: args.inflight.max(1),
            interval,
            send_until,
            counters: counters.clone(),
            first_ts: fc_core::time::now_ms() - 86_400_000,
        };
        handles.push(tokio::spawn(dev.run()));
    }

    // Progress and backlog sampling.
    let bar = if args.json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(duration.as_secs()) };
    bar.set_style(indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}").expect("template"));
    let mut last = (Instant::now(), 0u64);
    while Instant::now() < send_until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let acked = counters.acked_readings.load(Ordering::Relaxed);
        let rate = (acked - last.1) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), acked);
        let mut msg = format!(
            "{rate:.0} readings/s acked, {} refused, {} stream errors",
            counters.refused.load(Ordering::Relaxed),
            counters.stream_errors.load(Ordering::Relaxed)
        );
        if let Some(bus) = &bus
            && let Ok(b) = bus.consumer_backlog(fc_bus::TELEMETRY_STREAM, "store-writer").await
        {
            backlog_max.fetch_max(b, Ordering::Relaxed);
            msg.push_str(&format!(", writer backlog {b} msgs"));
        }
        bar.set_position(started.elapsed().as_secs());
        bar.set_message(msg);
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for h in handles {
        hist.add(h.await?)?;
    }
    let sent_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    // The whole path is done when the store writer has written everything.
    let mut drain_secs = 0.0;
    if let Some(bus) = &bus {
        let t = Instant::now();
        while bus.consumer_backlog(fc_bus::TELEMETRY_STREAM, "store-writer").await.unwrap_or(u64::MAX) > 0
            && t.elapsed() < Duration::from_secs(300)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drain_secs = t.elapsed().as_secs_f64();
    }
    let acked = counters.acked_readings.load(Ordering::Relaxed);
    let ms = |us: u64| us as f64 / 1000.0;
    // The server's view of the same run: its histograms' growth over the run.
    let server = match (&args.metrics_url, scrape_before) {
        (Some(url), Some(before)) => {
            let after = server_histograms(url).await?;
            let q = |name: &str, quantile: f64| {
                let grew = histogram_delta(&before, &after, name);
                bucket_quantile(&grew, quantile).map(|s| (s * 1000.0 * 100.0).round() / 100.0)
            };
            serde_json::json!({
                "server_ack_p50_ms": q("ingest_ack_seconds", 0.5),
                "server_ack_p99_ms": q("ingest_ack_seconds", 0.99),
                "writer_commit_p50_ms": q("store_writer_commit_seconds", 0.5),
                "writer_commit_p99_ms": q("store_writer_commit_seconds", 0.99),
            })
        }
        _ => serde_json::json!({}),
    };
    let report = serde_json::json!({
        "mode": "ingest",
        "devices": args.devices,
        "readings_per_batch": readings_per_batch,
        "offered_readings_per_s": args.rate,
        "send_s": sent_secs,
        "acked_readings": acked,
        "acked_readings_per_s": acked as f64 / sent_secs,
        "writer_drain_s": drain_secs,
        "e2e_readings_per_s": acked as f64 / (sent_secs + drain_secs),
        "writer_backlog_max_msgs": backlog_max.load(Ordering::Relaxed),
        "ack_p50_ms": ms(hist.value_at_quantile(0.5)),
        "ack_p99_ms": ms(hist.value_at_quantile(0.99)),
        "ack_max_ms": ms(hist.max()),
        "duplicates": counters.duplicates.load(Ordering::Relaxed),
        "resent_batches": counters.resent_batches.load(Ordering::Relaxed),
        "refused_batches": counters.refused.load(Ordering::Relaxed),
        "stream_errors": counters.stream_errors.load(Ordering::Relaxed),
        "sent_batches": counters.sent_batches.load(Ordering::Relaxed),
    });
    let mut report = report;
    if let (Some(r), Some(extra)) = (report.as_object_mut(), server.as_object()) {
        r.extend(extra.clone());
    }
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// Cumulative histogram buckets by metric name: `(upper bound in seconds, count)`,
/// from a Prometheus text page.
type Buckets = std::collections::HashMap<String, Vec<(f64, f64)>>;

async fn server_histograms(url: &str) -> Result<Buckets> {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let (status, _, body) = crate::portal::http(addr, "GET", "/metrics", &[], "").await?;
    anyhow::ensure!(status == 200, "GET {url}/metrics answered {status}");
    Ok(parse_buckets(&body))
}

/// Every `<name>_bucket{le="<bound>"} <count>` line (histograms without other labels).
fn parse_buckets(text: &str) -> Buckets {
    let mut out = Buckets::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once("_bucket{le=\"") else { continue };
        let Some((le, count)) = rest.split_once("\"} ") else { continue };
        let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
        if let Ok(count) = count.trim().parse::<f64>()
            && !bound.is_nan()
        {
            out.entry(name.to_string()).or_default().push((bound, count));
        }
    }
    out
}

/// What a histogram gained between two scrapes.
fn histogram_delta(before: &Buckets, after: &Buckets, name: &str) -> Vec<(f64, f64)> {
    let old = before.get(name).cloned().unwrap_or_default();
    after
        .get(name)
        .map(|b| b.iter().map(|&(le, n)| (le, n - old.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, o)| *o))).collect())
        .unwrap_or_default()
}

/// The `q` quantile of cumulative buckets, interpolated linearly within the
/// bucket it falls in (as Prometheus' `histogram_quantile` does); `None` when empty.
fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.iter().map(|(_, n)| *n).fold(0.0, f64::max);
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, n) in buckets {
        if n >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let width = n - prev.1;
            let into = if width > 0.0 { (rank - prev.1) / width } else { 1.0 };
            return Some(prev.0 + (le - prev.0) * into);
        }
        prev = (le, n);
    }
    Some(prev.0)
}

struct Device {
    /// Where in the sending period this device's clock ticks (0..1): real devices
    /// are not phase-locked, and a fleet that ticks in unison is a thundering herd.
    phase: f64,
    channel: Channel,
    token: String,
    machine: String,
    seq_base: u64,
    metrics: usize,
    per_series: usize,
    inflight: usize,
    interval: Option<Duration>,
    send_until: Instant,
    counters: Arc<Counters>,
    first_ts: i64,
}

impl Device {
    fn batch(&self, n: u64) -> ReadingBatch {
        let first_ts = self.first_ts + (n as i64 - 1) * self.per_series as i64;
        ReadingBatch {
            device_seq: self.seq_base + n,
            readings: vec![],
            series: crate::make_series(&self.machine, self.metrics, self.per_series, first_ts, n),
        }
    }

    /// Stream until `send_until`, then until every batch is acked (or 30 s pass).
    async fn run(self) -> Histogram<u64> {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
        let mut next: u64 = 1;
        let mut unacked: BTreeMap<u64, (ReadingBatch, Instant)> = BTreeMap::new();
        let header: tonic::metadata::MetadataValue<_> = format!("Bearer {}", self.token).parse().expect("token is a header value");
        let give_up = self.send_until + Duration::from_secs(30);
        let mut pace = self.interval.map(|i| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + i.mul_f64(self.phase), i);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        while Instant::now() < give_up && (Instant::now() < self.send_until || !unacked.is_empty()) {
            let h = header.clone();
            let mut client = IngestClient::with_interceptor(self.channel.clone(), move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", h.clone());
                Ok(r)
            });
            let (tx, rx) = tokio::sync::mpsc::channel::<ReadingBatch>(self.inflight * 2 + 1);
            // Real re-send: everything not acknowledged goes again, same device_seq.
            for (b, _) in unacked.values() {
                let _ = tx.try_send(b.clone());
                self.counters.resent_batches.fetch_add(1, Ordering::Relaxed);
            }
            let mut acks = match client.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await {
                Ok(r) => r.into_inner(),
                Err(_) => {
                    self.counters.stream_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            loop {
                let may_send = Instant::now() < self.send_until && unacked.len() < self.inflight;
                tokio::select! {
                    biased;
                    ack = acks.message() => match ack {
                        Ok(Some(a)) => {
                            let Some((b, sent)) = unacked.remove(&a.device_seq) else { continue };
                            match AckStatus::try_from(a.status).unwrap_or(AckStatus::Unspecified) {
                                AckStatus::Ok | AckStatus::Duplicate => {
                                    if a.status == AckStatus::Duplicate as i32 {
                                        self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                                    }
                                    self.counters.acked_readings.fetch_add(u64::from(a.accepted), Ordering::Relaxed);
                                    let _ = hist.record(sent.elapsed().as_micros() as u64);
                                }
                                AckStatus::InvalidArgument => {
                                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                                }
                                _ => {
                                    // Quota or bus trouble: keep it and send it again.
                                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                                    if tx.send(b.clone()).await.is_ok() {
                                        unacked.insert(a.device_seq, (b, sent));
                                    }
                                }
                            }
                            if Instant::now() >= self.send_until && unacked.is_empty() {
                                return hist;
                            }
                        }
                        Ok(None) | Err(_) => {
                            self.counters.stream_errors.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    },
                    _ = async {
                        if let Some(p) = pace.as_mut() { p.tick().await; }
                    }, if may_send => {
                        let b = self.batch(next);
                        next += 1;
                        if tx.send(b.clone()).await.is_err() {
                            break;
                        }
                        self.counters.sent_batches.fetch_add(1, Ordering::Relaxed);
                        unacked.insert(b.device_seq, (b, Instant::now()));
                    }
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(give_up)) => return hist,
                }
            }
        }
        hist
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_histograms_are_read_and_their_quantiles_interpolated() {
        let before = parse_buckets(
            "ingest_ack_seconds_bucket{le=\"0.005\"} 10\ningest_ack_seconds_bucket{le=\"0.01\"} 10\ningest_ack_seconds_bucket{le=\"0.02\"} 10\ningest_ack_seconds_bucket{le=\"+Inf\"} 10\n",
        );
        let text = "# TYPE ingest_ack_seconds histogram\n\
            ingest_ack_seconds_bucket{le=\"0.005\"} 60\n\
            ingest_ack_seconds_bucket{le=\"0.01\"} 100\n\
            ingest_ack_seconds_bucket{le=\"0.02\"} 110\n\
            ingest_ack_seconds_bucket{le=\"+Inf\"} 110\n\
            ingest_ack_seconds_sum 0.5\n";
        let after = parse_buckets(text);
        let grew = histogram_delta(&before, &after, "ingest_ack_seconds");
        assert_eq!(grew, vec![(0.005, 50.0), (0.01, 90.0), (0.02, 100.0), (f64::INFINITY, 100.0)]);
        assert_eq!(bucket_quantile(&grew, 0.5), Some(0.005));
        let p99 = bucket_quantile(&grew, 0.99).unwrap();
        assert!((p99 - 0.019).abs() < 1e-9, "{p99}");
        assert_eq!(bucket_quantile(&[], 0.5), None);
        assert_eq!(bucket_quantile(&histogram_delta(&after, &after, "ingest_ack_seconds"), 0.5), None);
    }
}
