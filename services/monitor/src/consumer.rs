//! The monitor's loops: a durable pull consumer (`monitor`) of the TELEMETRY stream,
//! the clock that lets time pass for rules (lost heartbeats, durations, escalation),
//! and the checkpointer.

use crate::Config;
use crate::monitor::Monitor;
use async_nats::jetstream::AckKind;
use fc_core::Shutdown;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Consume telemetry until shutdown: judge, store and announce, then ack.
pub async fn consume(monitor: Arc<Monitor>, bus: Arc<fc_bus::Bus>, cfg: Config, shutdown: Shutdown) {
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_triggered() {
        let consumer = match bus
            .expiring_consumer(
                fc_bus::TELEMETRY_STREAM,
                &cfg.durable,
                cfg.max_ack_pending,
                Duration::from_millis(cfg.ack_wait_ms),
                Duration::from_millis(cfg.consumer_inactive_threshold_ms),
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "monitor cannot reach its consumer; retrying");
                tokio::select! { _ = shutdown.wait() => break, _ = tokio::time::sleep(backoff) => {} }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let messages = match consumer
            .stream()
            .max_messages_per_batch(500)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "monitor cannot pull; retrying");
                tokio::select! { _ = shutdown.wait() => break, _ = tokio::time::sleep(backoff) => {} }
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let mut chunks = messages.ready_chunks(500);
        loop {
            let chunk = tokio::select! {
                _ = shutdown.wait() => return,
                c = chunks.next() => match c { Some(c) => c, None => break },
            };
            let mut by_tenant: HashMap<String, Vec<fc_monitor::Transition>> = HashMap::new();
            let mut done = Vec::with_capacity(chunk.len());
            for m in chunk {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "monitor pull error");
                        continue;
                    }
                };
                let Some((tenant, _)) = fc_telemetry::bus::parse_subject(m.subject.as_str()) else {
                    let _ = m.ack_with(AckKind::Term).await;
                    continue;
                };
                if monitor.watches(tenant) {
                    match fc_telemetry::bus::decode(m.subject.as_str(), &m.payload) {
                        Ok(msg) => by_tenant.entry(msg.tenant.clone()).or_default().extend(monitor.observe(&msg.tenant, &msg)),
                        Err(why) => {
                            // The store writer terminates and counts it; here it is only skipped.
                            tracing::debug!(subject = %m.subject, reason = %why, "monitor skips a malformed telemetry message");
                        }
                    }
                }
                done.push(m);
            }
            // Stored and announced before the readings are acked: a crash replays them. A
            // failure is retried in place (the runners have moved on, so the transitions
            // would not come again); storing and announcing twice changes nothing.
            for (tenant, transitions) in &by_tenant {
                let mut attempt = 0u64;
                while let Err(e) = monitor.record(tenant, transitions).await {
                    attempt += 1;
                    tracing::warn!(error = %e, tenant = %tenant, attempt, "alarm transitions not recorded yet; retrying");
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(Duration::from_millis((100 * attempt).min(5000))) => {}
                    }
                }
            }
            for r in futures::future::join_all(done.iter().map(|m| m.ack())).await {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "ack failed");
                }
            }
        }
    }
}

/// Let time pass for every rule, every `tick_interval_ms`.
pub async fn clock(monitor: Arc<Monitor>, cfg: Config, shutdown: Shutdown) {
    let mut every = tokio::time::interval(Duration::from_millis(cfg.tick_interval_ms.max(10)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The runners have moved on, so a transition that could not be recorded would not
    // come again: keep it and try again at the next tick (recording twice changes nothing).
    let mut unrecorded: Vec<(String, Vec<fc_monitor::Transition>)> = Vec::new();
    loop {
        tokio::select! { _ = shutdown.wait() => return, _ = every.tick() => {} }
        let mut due = std::mem::take(&mut unrecorded);
        due.extend(monitor.tick(fc_core::time::now_ms()));
        for (tenant, transitions) in due {
            if let Err(e) = monitor.record(&tenant, &transitions).await {
                tracing::warn!(error = %e, tenant = %tenant, "alarm transitions of the clock not recorded yet; retrying at the next tick");
                unrecorded.push((tenant, transitions));
            }
        }
        if unrecorded.len() > MAX_UNRECORDED {
            let dropped = unrecorded.len() - MAX_UNRECORDED;
            unrecorded.drain(..dropped);
            tracing::error!(dropped, "alarm transitions of the clock dropped after failing for too long");
        }
    }
}

/// Tenants' transition lists the clock keeps while recording fails (the oldest go first).
const MAX_UNRECORDED: usize = 10_000;

/// Save every runner's state every `checkpoint_interval_ms`, and once more at shutdown.
pub async fn checkpointer(monitor: Arc<Monitor>, cfg: Config, shutdown: Shutdown) {
    let mut every = tokio::time::interval(Duration::from_millis(cfg.checkpoint_interval_ms.max(100)));
    every.tick().await;
    loop {
        let stopping = tokio::select! { _ = shutdown.wait() => true, _ = every.tick() => false };
        let m = monitor.clone();
        match tokio::task::spawn_blocking(move || m.checkpoint()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "monitor checkpoint failed"),
            Err(e) => tracing::warn!(error = %e, "monitor checkpoint panicked"),
        }
        if stopping {
            return;
        }
    }
}
