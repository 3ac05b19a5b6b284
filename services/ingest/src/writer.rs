//! The store writer: a durable pull consumer of the TELEMETRY stream that
//! writes batches to the store and acks NATS only after the store committed.
//! A message that cannot be decoded, or whose subject and payload disagree on
//! the tenant, is terminated (never retried) and counted.

use crate::AppState;
use async_nats::jetstream::AckKind;
use fc_store::{Point, SeriesKey, SeriesPoints, TenantBatch};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Store writer settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WriterConfig {
    /// Run the store writer in this process (off: another process consumes the stream).
    pub enabled: bool,
    /// Durable consumer name.
    pub durable: String,
    /// Most messages written to the store in one commit.
    pub max_messages_per_write: usize,
    /// Messages the consumer may have delivered but not acked.
    pub max_ack_pending: i64,
    /// How long JetStream waits for an ack before redelivering (after a crash, this is
    /// how long readings pulled but not written wait). Applied when the consumer is created.
    pub ack_wait_ms: u64,
    /// Least time between two commits: messages that arrive sooner join the next commit
    /// (up to `max_messages_per_write`). Devices are acked by JetStream, not by this
    /// commit, so this delays when readings become queryable, never a device's ack;
    /// fewer, larger commits cost the store less per reading.
    pub commit_interval_ms: u64,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            durable: "store-writer".into(),
            max_messages_per_write: 2000,
            max_ack_pending: 50_000,
            ack_wait_ms: 30_000,
            commit_interval_ms: 20,
        }
    }
}

/// Decode a bus message into a store batch, checking it against its subject
/// (the pure part is `fc_telemetry::bus::decode`).
pub fn decode(subject: &str, payload: &[u8]) -> Result<TenantBatch, String> {
    let msg = fc_telemetry::bus::decode(subject, payload)?;
    let series = msg
        .series
        .into_iter()
        .map(|s| SeriesPoints {
            key: SeriesKey { machine: s.machine, metric: s.metric },
            unit: s.unit,
            points: s.points.into_iter().map(|p| Point { ts_ms: p.ts_ms, value: p.value, quality: p.quality }).collect(),
        })
        .collect();
    Ok(TenantBatch { tenant: msg.tenant, series })
}

/// Run until shutdown: pull, write, ack.
pub async fn run(state: Arc<AppState>) {
    let cfg = &state.config.writer;
    let mut backoff = Duration::from_millis(100);
    'outer: while !state.shutdown.is_triggered() {
        let consumer = match state
            .bus
            .durable_consumer(fc_bus::TELEMETRY_STREAM, &cfg.durable, None, cfg.max_ack_pending, Duration::from_millis(cfg.ack_wait_ms))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "store writer cannot reach its consumer; retrying");
                tokio::select! { _ = state.shutdown.wait() => break, _ = tokio::time::sleep(backoff) => {} }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let messages = match consumer
            .stream()
            .max_messages_per_batch(cfg.max_messages_per_write.max(1))
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "store writer cannot pull; retrying");
                tokio::select! { _ = state.shutdown.wait() => break, _ = tokio::time::sleep(backoff) => {} }
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let max = cfg.max_messages_per_write.max(1);
        let mut chunks = messages.ready_chunks(max);
        let mut draining = false;
        let mut last_commit = tokio::time::Instant::now();
        loop {
            // At shutdown, write and ack what the client already pulled (so a restart does
            // not wait out ack_wait for it), until the stream stays quiet for a moment.
            let chunk = if draining {
                match tokio::time::timeout(Duration::from_millis(300), chunks.next()).await {
                    Ok(Some(c)) => c,
                    _ => break 'outer,
                }
            } else {
                tokio::select! {
                    _ = state.shutdown.wait() => {
                        draining = true;
                        continue;
                    }
                    c = chunks.next() => match c {
                        Some(c) => c,
                        None => continue 'outer,
                    },
                }
            };
            // Gather until the commit interval has passed since the last commit (or the
            // write is full): under load, fewer and larger commits.
            let mut chunk = chunk;
            let due = last_commit + Duration::from_millis(cfg.commit_interval_ms);
            while !draining && chunk.len() < max {
                match tokio::time::timeout_at(due, chunks.next()).await {
                    Ok(Some(more)) => chunk.extend(more),
                    Ok(None) | Err(_) => break,
                }
            }
            let mut batches = Vec::with_capacity(chunk.len());
            let mut good = Vec::with_capacity(chunk.len());
            for m in chunk {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "store writer pull error");
                        continue;
                    }
                };
                match decode(m.subject.as_str(), &m.payload) {
                    Ok(b) => {
                        batches.push(b);
                        good.push(m);
                    }
                    Err(why) => {
                        tracing::error!(subject = %m.subject, reason = %why, "terminating malformed telemetry message");
                        metrics::counter!("store_writer_rejected_total").increment(1);
                        // Done with it: its bytes no longer count against its tenant.
                        if let Some(tenant) = m.subject.as_str().split('.').nth(1) {
                            state.admission.stored(tenant, m.payload.len() as u64);
                        }
                        let _ = m.ack_with(AckKind::Term).await;
                    }
                }
            }
            if good.is_empty() {
                continue;
            }
            // With traces on: one span per message, child of the batch that published it,
            // open until its readings are committed and acked.
            let spans: Vec<tracing::Span> = if fc_rpc::trace::enabled() {
                good.iter()
                    .map(|m| {
                        let span = tracing::info_span!("store_write", otel.kind = "consumer", subject = %m.subject);
                        let headers = m.headers.as_ref();
                        fc_rpc::trace::set_parent(&span, |k| headers.and_then(|h| h.get(k)).map(|v| v.as_str().to_owned()));
                        span
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let readings: usize = batches.iter().map(TenantBatch::len).sum();
            let sizes: Vec<(String, u64)> = batches.iter().zip(&good).map(|(b, m)| (b.tenant.clone(), m.payload.len() as u64)).collect();
            let started = std::time::Instant::now();
            // Retry the commit in place: the messages stay unacked (and so safe) until it
            // succeeds. A failed write consumed its batches; decode them again from the messages.
            let mut attempt = 0u32;
            let mut batches = Some(batches);
            loop {
                let b = match batches.take() {
                    Some(b) => b,
                    None => good.iter().filter_map(|m| decode(m.subject.as_str(), &m.payload).ok()).collect(),
                };
                match state.store.write(b).await {
                    Ok(()) => break,
                    Err(e) => {
                        attempt += 1;
                        tracing::warn!(error = %e, attempt, "store write failed; retrying");
                        let pause = Duration::from_millis(100 * u64::from(attempt.min(50)));
                        if draining {
                            break 'outer; // unacked: redelivered after restart
                        }
                        tokio::select! { _ = state.shutdown.wait() => break 'outer, _ = tokio::time::sleep(pause) => {} }
                    }
                }
            }
            last_commit = tokio::time::Instant::now();
            metrics::histogram!("store_writer_commit_seconds").record(started.elapsed().as_secs_f64());
            metrics::counter!("store_writer_readings_total").increment(readings as u64);
            for (tenant, bytes) in &sizes {
                state.admission.stored(tenant, *bytes);
            }
            let acks = good.iter().map(|m| m.ack());
            for r in futures::future::join_all(acks).await {
                if let Err(e) = r {
                    // Not fatal: the message is redelivered and the idempotent write absorbs it.
                    tracing::debug!(error = %e, "ack failed");
                }
            }
            drop(spans);
        }
    }
    tracing::info!("store writer stopped");
}
