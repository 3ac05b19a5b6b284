//! Baseline: the same batches the fleet sends, published straight to
//! JetStream with message ids and consumed by a durable pull consumer that
//! acks them. No gRPC, no validation, no store: the ceiling of the bus here.

use anyhow::Result;
use async_nats::jetstream::{self, consumer, stream};
use clap::Args;
use fc_proto::v1::TelemetryMessage;
use futures::StreamExt;
use prost::Message;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Options of `raw-jetstream`.
#[derive(Args)]
pub struct RawArgs {
    /// NATS URL.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Concurrent publishers.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Metrics per device.
    #[arg(long, default_value_t = 10)]
    metrics: usize,
    /// Readings per batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// How long to publish.
    #[arg(long, default_value = "30s")]
    duration: String,
    /// PubAcks one publisher may wait for at once.
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Run the baseline and report.
pub async fn run(args: RawArgs) -> Result<()> {
    let duration = crate::parse_duration(&args.duration)?;
    let client = async_nats::connect(&args.nats_url).await?;
    // Room for every publisher's in-flight PubAcks, or publishers waiting for a
    // permit while holding un-awaited acks deadlock the client.
    let js = jetstream::ContextBuilder::new().max_ack_inflight(args.devices * args.inflight.max(1) + 1024).build(client.clone());
    let _ = js.delete_stream("BENCH_RAW").await;
    let s = js
        .create_stream(stream::Config {
            name: "BENCH_RAW".into(),
            subjects: vec!["bench.raw.>".into()],
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(600),
            ..Default::default()
        })
        .await?;
    let c: consumer::PullConsumer = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("bench-raw".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: 50_000,
            ..Default::default()
        })
        .await?;
    let per_series = (args.batch / args.metrics.max(1)).max(1);
    let readings_per_batch = (per_series * args.metrics.max(1)) as u64;
    let consumed = Arc::new(AtomicU64::new(0));
    let published = Arc::new(AtomicU64::new(0));
    let consumer_task = {
        let consumed = consumed.clone();
        tokio::spawn(async move {
            let mut msgs = c.stream().max_messages_per_batch(2000).messages().await?.ready_chunks(2000);
            while let Some(chunk) = msgs.next().await {
                let mut n = 0;
                let ok: Vec<_> = chunk.into_iter().filter_map(Result::ok).collect();
                for m in &ok {
                    // Decode as the store writer would, so the comparison is fair on that count.
                    n += TelemetryMessage::decode(m.payload.as_ref())
                        .map(|t| t.series.iter().map(|s| s.values.len() as u64).sum::<u64>())
                        .unwrap_or(0);
                }
                futures::future::join_all(ok.iter().map(|m| m.ack())).await;
                consumed.fetch_add(n, Ordering::Relaxed);
            }
            anyhow::Ok(())
        })
    };
    let started = Instant::now();
    let until = started + duration;
    let mut pubs = Vec::new();
    for d in 0..args.devices {
        let (js, published) = (js.clone(), published.clone());
        let (metrics, inflight) = (args.metrics.max(1), args.inflight.max(1));
        pubs.push(tokio::spawn(async move {
            let machine = format!("sim{d:05}");
            let first = fc_core::time::now_ms() - 86_400_000;
            let mut pending = futures::stream::FuturesOrdered::new();
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                let msg = TelemetryMessage {
                    tenant_id: "t_bench".into(),
                    device_id: format!("d_{d}"),
                    device_seq: n,
                    received_ms: fc_core::time::now_ms(),
                    series: crate::make_series(&machine, metrics, per_series, first + n as i64 * per_series as i64, n),
                };
                let publish = jetstream::message::PublishMessage::build()
                    .message_id(format!("t_bench/d_{d}/{n}/{machine}"))
                    .payload(msg.encode_to_vec().into());
                match js.send_publish(format!("bench.raw.{machine}"), publish).await {
                    Ok(f) => pending.push_back(std::future::IntoFuture::into_future(f)),
                    Err(_) => continue,
                }
                while pending.len() >= inflight {
                    if let Some(Ok(_)) = pending.next().await {
                        published.fetch_add(readings_per_batch, Ordering::Relaxed);
                    }
                }
            }
            while let Some(r) = pending.next().await {
                if r.is_ok() {
                    published.fetch_add(readings_per_batch, Ordering::Relaxed);
                }
            }
        }));
    }
    for p in pubs {
        p.await?;
    }
    let send_s = started.elapsed().as_secs_f64();
    let total = published.load(Ordering::Relaxed);
    let t = Instant::now();
    while consumed.load(Ordering::Relaxed) < total && t.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain_s = t.elapsed().as_secs_f64();
    consumer_task.abort();
    let _ = js.delete_stream("BENCH_RAW").await;
    let report = serde_json::json!({
        "mode": "raw_jetstream",
        "devices": args.devices,
        "readings_per_batch": readings_per_batch,
        "published_readings": total,
        "consumed_readings": consumed.load(Ordering::Relaxed),
        "send_s": send_s,
        "drain_s": drain_s,
        "e2e_readings_per_s": consumed.load(Ordering::Relaxed) as f64 / (send_s + drain_s),
    });
    if args.json {
        println!("{report}")
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?)
    }
    Ok(())
}
