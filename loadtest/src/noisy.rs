//! The noisy neighbour: tenant B streams at its plan's rate, first alone, then
//! while tenant A offers ten times its own plan's rate and runs the largest
//! queries the range rules allow. B's ack latency must barely move and B must
//! lose nothing.
//!
//! Tenant A's devices and query clients run as their own process
//! (`noisy-attacker`), at `--attacker-nice` (default 19): in production A's
//! load comes from A's machines; on one 2-core box, at equal priority, the
//! figure would mostly measure the generator's own CPU, not the service's
//! isolation. `--attacker-nice 0` measures that too.

use anyhow::{Context, Result};
use clap::Args;
use fc_proto::v1::{
    CreateDeviceRequest, CreateTenantRequest, RangeRequest, ReadingBatch, SeriesKey, SeriesReadings, admin_client::AdminClient,
    ingest_client::IngestClient, query_client::QueryClient,
};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Options of `noisy`.
#[derive(Args, Clone)]
pub struct NoisyArgs {
    /// gRPC address of the service.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// gRPC address of the Admin service (the portal's gRPC port).
    #[arg(long, env = "FC_ADMIN_SERVER", default_value = "http://127.0.0.1:50053")]
    admin_server: String,
    /// Admin token (the tenants and devices are provisioned with it).
    #[arg(long, env = "FC_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// Length of each phase (B alone, then B with A's noise).
    #[arg(long, default_value = "20s")]
    duration: String,
    /// Concurrent huge queries tenant A keeps running.
    #[arg(long, default_value_t = 2)]
    queries: usize,
    /// CPU niceness of tenant A's generator process (0-19).
    #[arg(long, default_value_t = 19)]
    attacker_nice: u8,
}

/// Options of the hidden `noisy-attacker` (started by `noisy`).
#[derive(Args, Clone)]
pub struct AttackerArgs {
    /// gRPC address of the service.
    #[arg(long)]
    server: String,
    /// Device tokens of tenant A, comma-separated (read from FC_NOISY_TOKENS).
    #[arg(long, env = "FC_NOISY_TOKENS", hide_env_values = true)]
    tokens: String,
    /// How long to make noise.
    #[arg(long)]
    duration: String,
    /// Concurrent huge queries.
    #[arg(long)]
    queries: usize,
}

type Admin = AdminClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

#[derive(Clone)]
struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        r.metadata_mut().insert("authorization", self.0.clone());
        Ok(r)
    }
}

fn bearer(token: &str) -> Result<Bearer> {
    Ok(Bearer(format!("Bearer {token}").parse()?))
}

/// A tenant on `plan` with `devices` devices: `(tenant id, tokens, plan's readings/s per tenant, per device)`.
async fn tenant(admin: &mut Admin, name: &str, plan: &str, devices: usize) -> Result<(String, Vec<String>)> {
    let t = admin.create_tenant(CreateTenantRequest { name: name.into(), plan: plan.into() }).await?.into_inner();
    let mut tokens = Vec::new();
    for i in 0..devices {
        tokens.push(
            admin.create_device(CreateDeviceRequest { tenant_id: t.id.clone(), name: format!("{name} {i}") }).await?.into_inner().token,
        );
    }
    Ok((t.id, tokens))
}

fn batch(seq: u64, machine: &str, t: i64, n: usize) -> ReadingBatch {
    ReadingBatch {
        device_seq: seq,
        readings: vec![],
        series: vec![SeriesReadings {
            machine: machine.into(),
            metric: "load".into(),
            unit: "kW".into(),
            base_timestamp_ms: t,
            timestamp_deltas_ms: vec![1; n],
            values: (0..n).map(|i| (seq as f64) + i as f64 / 1000.0).collect(),
            qualities: vec![],
        }],
    }
}

#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

/// One device pushing `n`-reading batches every `every` until `stop`, recording ack latency.
#[allow(clippy::too_many_arguments)]
async fn device(
    channel: Channel,
    token: String,
    machine: String,
    n: usize,
    every: Duration,
    seq0: u64,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Result<Histogram<u64>> {
    let mut client = IngestClient::with_interceptor(channel, bearer(&token)?);
    let mut hist = Histogram::<u64>::new(3)?;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seq = seq0;
    // Timestamps advance 1 ms per reading from a start an hour back, never colliding.
    let t0 = fc_core::time::now_ms() - 3_600_000;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        seq += 1;
        let started = Instant::now();
        match client.push(batch(seq, &machine, t0 + (seq - seq0) as i64 * n as i64, n)).await {
            Ok(r) => {
                hist.record(started.elapsed().as_micros() as u64)?;
                tally.acked.fetch_add(u64::from(r.into_inner().accepted), Ordering::Relaxed);
            }
            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(hist)
}

/// Tenant B at its plan's rate: returns the ack latency histogram.
async fn victim(channel: &Channel, tokens: &[String], phase: &str, duration: Duration, tally: Arc<Tally>) -> Result<Histogram<u64>> {
    let stop = Arc::new(AtomicBool::new(false));
    // Starter: 2,000 readings/s per tenant, 1,000 per device; two devices at 20 readings every
    // 20 ms: 100 acks a second, so a phase's p99 rests on hundreds of samples beyond it.
    let mut handles = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let seq0 = if phase == "alone" { 0 } else { 1 << 40 };
        handles.push(tokio::spawn(device(
            channel.clone(),
            t.clone(),
            format!("victim-{phase}-{i}"),
            20,
            Duration::from_millis(20),
            seq0,
            stop.clone(),
            tally.clone(),
        )));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Histogram::<u64>::new(3)?;
    for h in handles {
        all.add(h.await??)?;
    }
    Ok(all)
}

/// Run both phases and print one JSON line.
pub async fn run(args: NoisyArgs) -> Result<()> {
    let duration = crate::parse_duration(&args.duration)?;
    let channel = Channel::from_shared(args.server.clone())?.connect().await.with_context(|| format!("connecting to {}", args.server))?;
    let admin_channel = Channel::from_shared(args.admin_server.clone())?
        .connect()
        .await
        .with_context(|| format!("connecting to the Admin service at {}", args.admin_server))?;
    let mut admin = AdminClient::with_interceptor(admin_channel, bearer(&args.admin_token)?);
    let stamp = fc_core::time::now_ms();
    let (_, victim_tokens) = tenant(&mut admin, &format!("victim {stamp}"), "starter", 2).await?;
    let (_, noisy_tokens) = tenant(&mut admin, &format!("noisy {stamp}"), "growth", 4).await?;
    let victim_tally = Arc::new(Tally::default());

    eprintln!("noisy neighbour 1/2: tenant B at its plan rate (2,000 readings/s), alone, {duration:?}");
    let alone = victim(&channel, &victim_tokens, "alone", duration, victim_tally.clone()).await?;

    eprintln!(
        "noisy neighbour 2/2: the same while tenant A offers 10x its plan (500,000 readings/s) and runs {} huge queries",
        args.queries
    );
    let exe = std::env::current_exe()?;
    let mut attacker = tokio::process::Command::new("nice")
        .arg("-n")
        .arg(args.attacker_nice.min(19).to_string())
        .arg(exe)
        .args(["noisy-attacker", "--server", &args.server, "--duration", &args.duration, "--queries", &args.queries.to_string()])
        .env("FC_NOISY_TOKENS", noisy_tokens.join(","))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the noisy-attacker process (nice, from coreutils)")?;
    // Let A's noise start before B's second phase.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_noise = victim(&channel, &victim_tokens, "noise", duration, victim_tally.clone()).await?;
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(attacker.stdout.as_mut().context("attacker stdout")?, &mut out).await?;
    let status = attacker.wait().await?;
    anyhow::ensure!(status.success(), "the noisy-attacker process failed: {status}");
    let noise: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or_default()).context("the attacker's tally")?;

    // Everything B was acked must be stored: wait for the writer, then count.
    let mut query = QueryClient::with_interceptor(channel.clone(), bearer(&victim_tokens[0])?).max_decoding_message_size(256 << 20);
    let acked = victim_tally.acked.load(Ordering::Relaxed);
    let mut stored = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        stored = 0;
        for phase in ["alone", "noise"] {
            for i in 0..victim_tokens.len() {
                let series = Some(SeriesKey { machine: format!("victim-{phase}-{i}"), metric: "load".into() });
                let r = query
                    .range(RangeRequest {
                        series,
                        start_ms: 0,
                        end_ms: fc_core::time::now_ms() + 600_000,
                        limit: 1_000_000,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                stored += r.readings.len() as u64;
            }
        }
        if stored >= acked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1000.0;
    let (alone_p99, noise_p99) = (p99(&alone), p99(&with_noise));
    println!(
        "{}",
        serde_json::json!({
            "bench": "noisy_neighbour",
            "victim_ack_p99_ms_alone": alone_p99,
            "victim_ack_p99_ms_with_noise": noise_p99,
            "victim_p99_rise_pct": if alone_p99 > 0.0 { (noise_p99 / alone_p99 - 1.0) * 100.0 } else { 0.0 },
            "victim_ack_p50_ms_alone": alone.value_at_quantile(0.5) as f64 / 1000.0,
            "victim_ack_p50_ms_with_noise": with_noise.value_at_quantile(0.5) as f64 / 1000.0,
            "victim_acked_readings": acked,
            "victim_stored_readings": stored,
            "victim_lost": acked.saturating_sub(stored),
            "victim_refused_batches": victim_tally.refused.load(Ordering::Relaxed),
            "victim_failed_batches": victim_tally.failed.load(Ordering::Relaxed),
            "noisy_acked_readings": noise["acked"],
            "noisy_refused_batches": noise["refused"],
            "noisy_queries": noise["queries"],
            "noisy_queries_refused": noise["queries_refused"],
            "attacker_nice": args.attacker_nice.min(19),
            "target_p99_rise_pct": 20,
        })
    );
    Ok(())
}

/// Tenant A: 4 devices offering ten times the growth plan's rate and
/// `queries` loops of the largest reads allowed, for `duration`; prints its tally.
pub async fn attack(args: AttackerArgs) -> Result<()> {
    let duration = crate::parse_duration(&args.duration)?;
    let channel = Channel::from_shared(args.server.clone())?.connect().await.with_context(|| format!("connecting to {}", args.server))?;
    let tokens: Vec<String> = args.tokens.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect();
    anyhow::ensure!(!tokens.is_empty(), "no device tokens for tenant A");
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut noise = Vec::new();
    // Growth: 50,000 readings/s per tenant, 5,000 per device; 4 devices x 125,000/s = 500,000/s offered.
    for (i, t) in tokens.iter().enumerate() {
        noise.push(tokio::spawn(device(
            channel.clone(),
            t.clone(),
            format!("noisy-{i}"),
            5_000,
            Duration::from_millis(40),
            0,
            stop.clone(),
            tally.clone(),
        )));
    }
    let (done, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut query_tasks = Vec::new();
    for q in 0..args.queries {
        let (channel, token, stop, done, refused) = (channel.clone(), tokens[0].clone(), stop.clone(), done.clone(), refused.clone());
        let machines = tokens.len();
        query_tasks.push(tokio::spawn(async move {
            let mut client = QueryClient::with_interceptor(channel, bearer(&token)?).max_decoding_message_size(256 << 20);
            let now = fc_core::time::now_ms();
            while !stop.load(Ordering::Relaxed) {
                let series = Some(SeriesKey { machine: format!("noisy-{}", q % machines), metric: "load".into() });
                // All of history, the most raw readings allowed; then the most buckets allowed.
                let raw =
                    RangeRequest { series: series.clone(), start_ms: 0, end_ms: now + 600_000, limit: 1_000_000, ..Default::default() };
                let agg = RangeRequest { series, start_ms: now - 100_000_000, end_ms: now, step_ms: 1_000, ..Default::default() };
                for request in [raw, agg] {
                    match client.range(request).await {
                        Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(duration + Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for h in noise {
        let _ = h.await?;
    }
    for h in query_tasks {
        let _ = h.await?;
    }
    println!(
        "{}",
        serde_json::json!({
            "acked": tally.acked.load(Ordering::Relaxed),
            "refused": tally.refused.load(Ordering::Relaxed),
            "queries": done.load(Ordering::Relaxed),
            "queries_refused": refused.load(Ordering::Relaxed),
        })
    );
    Ok(())
}
