//! `ledger`: durable appends per second and inclusion-proof latency of the
//! settlement ledger engine (`fc-settlement`), in process, on a real redb file.
//!
//! As the service sees it: `concurrency` request handlers each append one
//! canonical settlement event and wait for it to be durable before taking the
//! next, while the checkpointer signs every `checkpoint_interval`. Then calls
//! of 16 entries to another log, and random inclusion proofs at the full size.

use anyhow::{Context, Result, ensure};
use clap::Args;
use fc_ledger::entry::{
    AcceptancePlan, DeliveryAccepted, Entry, Event, InspectionRecorded, InspectionSource, OrderAccepted, OrderIssued, PaymentInstruction,
    ShipmentMoved,
};
use fc_ledger::note::{Checkpoint, Verifier, open_note};
use fc_settlement::Ledger;
use hdrhistogram::Histogram;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Options of `ledger`.
#[derive(Args)]
pub struct LedgerArgs {
    /// Entries to append, one per call.
    #[arg(long, default_value_t = 10_000_000)]
    entries: u64,
    /// Concurrent appenders (each waits for its append, as a request handler does).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Directory to create the (temporary) ledger file in; the system's temporary directory by default.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Entries then appended in calls of 16, to another log (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    batch16_entries: u64,
    /// Random inclusion proofs timed at the full size.
    #[arg(long, default_value_t = 10_000)]
    proofs: u64,
    /// How often the checkpointer signs.
    #[arg(long, default_value = "1s")]
    checkpoint_interval: String,
}

const LOG: &str = "t_bench0000000001";
const BATCH_LOG: &str = "t_bench0000000002";
const ORIGIN_PREFIX: &str = "factorychain.local/ledger";

/// Distinct, realistic settlement events (canonical JSON, ~200 bytes), made
/// before the clock starts and cycled through.
fn event_pool() -> Vec<Vec<u8>> {
    let base_ms = 1_767_225_600_000i64;
    (0..4096u64)
        .map(|i| {
            let order_id = format!("PO-2026-{:06}", i / 8);
            let shipment_id = format!("SH-{:06}-{:02}", i / 8, i % 8);
            let supplier = format!("org_supplier_{:04}", i % 97);
            let at_ms = base_ms + i as i64 * 61_000;
            let event = match i % 8 {
                0 => Event::OrderIssued(OrderIssued {
                    order_id,
                    buyer_org: "org_buyer_0001".into(),
                    supplier_org: supplier.clone(),
                    part: format!("BRKT-{:04}", i % 500),
                    design_id: format!("DSN-{:04}", i % 300),
                    design_version: 1 + (i % 4) as u32,
                    quantity: 100 + i % 900,
                    unit_price_krw: 1_000 + (i * 37) % 50_000,
                    due_date_ms: at_ms + 14 * 86_400_000,
                    acceptance: AcceptancePlan { sample_size: 32, allowed_defects: 1 },
                    payment_term_days: 30,
                    late_penalty_per_day_krw: 10_000,
                    late_penalty_cap_krw: 500_000,
                    transit_days: None,
                }),
                1 => Event::OrderAccepted(OrderAccepted { order_id }),
                2 => Event::ShipmentSent(ShipmentMoved { order_id, shipment_id, quantity: 100 + i % 400, at_ms }),
                3 => Event::ShipmentReceived(ShipmentMoved { order_id, shipment_id, quantity: 100 + i % 400, at_ms }),
                4 => Event::InspectionRecorded(InspectionRecorded {
                    order_id,
                    shipment_id,
                    sampled: 32,
                    defects: (i % 3) as u32,
                    source: InspectionSource::Telemetry,
                }),
                5 | 6 => Event::DeliveryAccepted(DeliveryAccepted { order_id, shipment_id, accepted_quantity: 100 + i % 400 }),
                _ => Event::PaymentInstructed(PaymentInstruction {
                    instruction_id: format!("PI-{order_id}-{shipment_id}"),
                    order_id,
                    shipment_id,
                    amount_krw: 1_000_000 + i * 1_234,
                    penalty_krw: 0,
                    due_date_ms: at_ms + 30 * 86_400_000,
                }),
            };
            let actor = if matches!(i % 8, 1 | 2) { supplier } else { "org_buyer_0001".to_owned() };
            Entry::new(1_000_000 + i, at_ms, actor, event).to_bytes()
        })
        .collect()
}

/// Appends `entries` entries to `log` from `concurrency` tasks, `per_call` per
/// call; returns the append latency histogram (µs) and the elapsed time.
async fn append_all(
    ledger: &Arc<Ledger>,
    log: &'static str,
    entries: u64,
    per_call: u64,
    concurrency: usize,
    pool: &Arc<Vec<Vec<u8>>>,
) -> Result<(Histogram<u64>, Duration)> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let progress = {
        let next = next.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let done = next.load(Ordering::Relaxed).min(entries);
                eprintln!("ledger: {log} {done}/{entries} appended, {:.0}/s", done as f64 / started.elapsed().as_secs_f64());
            }
        })
    };
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (ledger, next, pool) = (ledger.clone(), next.clone(), pool.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            loop {
                let first = next.fetch_add(per_call, Ordering::Relaxed);
                if first >= entries {
                    return Ok::<_, anyhow::Error>(hist);
                }
                let batch: Vec<Vec<u8>> =
                    (first..(first + per_call).min(entries)).map(|i| pool[(i % pool.len() as u64) as usize].clone()).collect();
                let call = Instant::now();
                ledger.append(log, batch).await?;
                hist.saturating_record(call.elapsed().as_micros() as u64);
            }
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for task in tasks {
        hist.add(task.await??)?;
    }
    let elapsed = started.elapsed();
    progress.abort();
    Ok((hist, elapsed))
}

/// splitmix64: uniform enough for picking leaves, no dependency.
fn random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Runs the benchmark and prints one JSON line.
pub async fn run(args: LedgerArgs) -> Result<()> {
    ensure!(args.entries > 0 && args.concurrency > 0, "--entries and --concurrency must be positive");
    let interval = crate::parse_duration(&args.checkpoint_interval)?;
    let tmp = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
            tempfile::tempdir_in(dir)?
        }
        None => tempfile::tempdir()?,
    };
    let path = tmp.path().join("ledger.redb");
    let signer = Ledger::load_or_create_signer(&tmp.path().join("ledger.key"), ORIGIN_PREFIX)?;
    let ledger = Ledger::open(&path, signer, ORIGIN_PREFIX)?;
    let pool = Arc::new(event_pool());
    let entry_bytes_avg = pool.iter().map(Vec::len).sum::<usize>() as f64 / pool.len() as f64;

    let shutdown = fc_core::Shutdown::new();
    let checkpointer = tokio::spawn(ledger.clone().run_checkpointer(interval, shutdown.clone()));

    eprintln!(
        "ledger: {} entries of ~{entry_bytes_avg:.0} bytes, one per call, {} appenders, checkpoint every {interval:?}",
        args.entries, args.concurrency
    );
    let (single, single_elapsed) = append_all(&ledger, LOG, args.entries, 1, args.concurrency, &pool).await?;
    let appends_per_s = args.entries as f64 / single_elapsed.as_secs_f64();
    eprintln!("ledger: {appends_per_s:.0} appends/s, append p99 {:.2} ms", ms(single.value_at_quantile(0.99)));

    let batch16 = if args.batch16_entries > 0 {
        eprintln!("ledger: {} entries in calls of 16, {} appenders", args.batch16_entries, args.concurrency);
        let (hist, elapsed) = append_all(&ledger, BATCH_LOG, args.batch16_entries, 16, args.concurrency, &pool).await?;
        Some((args.batch16_entries as f64 / elapsed.as_secs_f64(), hist))
    } else {
        None
    };

    shutdown.trigger();
    checkpointer.await?;
    let checkpoints_signed = ledger.checkpoints_signed();
    let size = ledger.size(LOG)?;
    ensure!(size == args.entries, "log holds {size} entries, {} appended", args.entries);
    let note = ledger.checkpoint(LOG)?.context("no checkpoint was signed")?;
    let verifier = Verifier::from_vkey(&ledger.verifier_key())?;
    let (text, _) = open_note(&note, &[verifier])?;
    let checkpoint = Checkpoint::parse(&text)?;
    ensure!(checkpoint.size == size, "the last checkpoint is of size {}, the log of {size}", checkpoint.size);

    eprintln!("ledger: {} random inclusion proofs at size {size}", args.proofs);
    let proofs = {
        let ledger = ledger.clone();
        let count = args.proofs;
        tokio::task::spawn_blocking(move || -> Result<Histogram<u64>> {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut state = 0x5eed_u64;
            for _ in 0..count {
                let index = random(&mut state) % size;
                let started = Instant::now();
                let proof = ledger.inclusion_proof(LOG, index, size)?;
                hist.saturating_record(started.elapsed().as_micros().max(1) as u64);
                ensure!(proof.root_hash == checkpoint.root, "proof root differs from the signed root");
                proof.verify().map_err(|e| anyhow::anyhow!("proof of leaf {index}: {e}"))?;
            }
            Ok(hist)
        })
        .await??
    };
    let db_bytes = std::fs::metadata(&path)?.len();
    drop(ledger);

    let mut report = serde_json::json!({
        "bench": "ledger",
        "appends_per_s": appends_per_s.round(),
        "inclusion_proof_p99_ms": ms(proofs.value_at_quantile(0.99)),
        "entries": args.entries,
        "checkpoints_signed": checkpoints_signed,
        "db_bytes": db_bytes,
        "concurrency": args.concurrency,
        "entry_bytes_avg": entry_bytes_avg.round(),
        "append_p50_ms": ms(single.value_at_quantile(0.50)),
        "append_p99_ms": ms(single.value_at_quantile(0.99)),
        "inclusion_proof_p50_ms": ms(proofs.value_at_quantile(0.50)),
        "checkpoint_interval_ms": interval.as_millis() as u64,
        "append_seconds": (single_elapsed.as_secs_f64() * 10.0).round() / 10.0,
    });
    if let Some((rate, hist)) = batch16 {
        report["batch16_entries"] = args.batch16_entries.into();
        report["batch16_entries_per_s"] = rate.round().into();
        report["batch16_append_p99_ms"] = ms(hist.value_at_quantile(0.99)).into();
    }
    println!("{report}");
    Ok(())
}
