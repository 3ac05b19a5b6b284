//! Admission at the door: no tenant may fill the shared TELEMETRY stream.
//!
//! The stream holds what the store writer has not stored yet, up to
//! `bus.telemetry_max_bytes`, and refuses new messages when full (it never
//! drops acknowledged ones). Without a share per tenant, one tenant's burst
//! could fill it and every other tenant would be refused too. So each tenant
//! may hold at most `admission.max_tenant_share` of it: ingest counts the bytes
//! each tenant published and the writer has not stored, and refuses a batch
//! that would take a tenant past its share with `RESOURCE_EXHAUSTED` (the
//! device retries later). The counts live in this process; after a restart
//! they start from zero, and what was already in the stream drains unaccounted.
//!
//! A background task reads the stream's size every `backlog_poll_ms`: it
//! feeds the metrics `ingest_bus_backlog_bytes` and `store_writer_backlog_messages`,
//! refuses every batch once the stream is nearly full (`UNAVAILABLE`, clearer
//! than the bus's own refusal), and marks the service not ready past
//! `not_ready_fill`, so a load balancer sends devices elsewhere.

use fc_core::{ErrorCode, ServiceError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Admission settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Largest part of the telemetry stream one tenant's unstored readings may take (0-1].
    pub max_tenant_share: f64,
    /// Past this fill of the stream (0-1], `/readyz` answers 503.
    pub not_ready_fill: f64,
    /// How often the stream's size is read.
    pub backlog_poll_ms: u64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self { max_tenant_share: 0.25, not_ready_fill: 0.8, backlog_poll_ms: 500 }
    }
}

impl AdmissionConfig {
    /// Problems with the settings, every one.
    pub fn problems(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if !(self.max_tenant_share > 0.0 && self.max_tenant_share <= 1.0) {
            errs.push("admission.max_tenant_share: must be in (0, 1]".into());
        }
        if !(self.not_ready_fill > 0.0 && self.not_ready_fill <= 1.0) {
            errs.push("admission.not_ready_fill: must be in (0, 1]".into());
        }
        if self.backlog_poll_ms == 0 {
            errs.push("admission.backlog_poll_ms: must be positive".into());
        }
        errs
    }
}

/// A stream this full refuses every batch at the door.
const FULL: f64 = 0.98;

/// One tenant's bytes: published and not yet stored, and stored in all (since start).
#[derive(Clone, Copy, Default)]
struct Counts {
    outstanding: u64,
    stored: u64,
}

/// Per-tenant accounting of published but not yet stored bytes.
///
/// It also gives reads their writes: [`Admission::settled`] waits until what a
/// tenant had published when a query came in is stored, so a device (or a page)
/// that reads right after an acknowledged push sees it.
pub struct Admission {
    capacity: u64,
    tenant_cap: u64,
    not_ready_at: u64,
    /// Per tenant that published since start (a few words each; never pruned, so
    /// a waiter's target stays comparable).
    counts: Mutex<HashMap<String, Counts>>,
    /// Woken on every store.
    stored_signal: tokio::sync::Notify,
    /// The stream's size at the last poll.
    stream_bytes: AtomicU64,
}

impl Admission {
    /// Accounting for a stream of `capacity` bytes.
    pub fn new(cfg: &AdmissionConfig, capacity: u64) -> Self {
        Self {
            capacity,
            tenant_cap: (capacity as f64 * cfg.max_tenant_share) as u64,
            not_ready_at: (capacity as f64 * cfg.not_ready_fill) as u64,
            counts: Mutex::new(HashMap::new()),
            stored_signal: tokio::sync::Notify::new(),
            stream_bytes: AtomicU64::new(0),
        }
    }

    /// May `tenant` publish `bytes` more?
    pub fn check(&self, tenant: &str, bytes: u64) -> Result<(), ServiceError> {
        let fill = self.stream_bytes.load(Ordering::Relaxed).saturating_add(bytes);
        if fill as f64 > self.capacity as f64 * FULL {
            metrics::counter!("ingest_admission_refusals_total", "scope" => "bus").increment(1);
            return Err(ServiceError::new(ErrorCode::Unavailable, "the telemetry bus is full while the store catches up; retry later"));
        }
        let mine = self.outstanding(tenant);
        if mine.saturating_add(bytes) > self.tenant_cap {
            metrics::counter!("ingest_admission_refusals_total", "scope" => "tenant").increment(1);
            return Err(ServiceError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "this tenant has {} KiB of readings waiting to be stored, its share of the bus is {} KiB; retry later",
                    mine / 1024,
                    self.tenant_cap / 1024
                ),
            ));
        }
        Ok(())
    }

    /// `tenant` published `bytes` (JetStream stored them).
    pub fn published(&self, tenant: &str, bytes: u64) {
        let mut map = self.counts.lock().expect("admission lock");
        match map.get_mut(tenant) {
            Some(c) => c.outstanding = c.outstanding.saturating_add(bytes),
            None => {
                map.insert(tenant.to_string(), Counts { outstanding: bytes, stored: 0 });
            }
        }
    }

    /// The writer is done with `bytes` of `tenant`'s messages (stored, or refused as
    /// malformed).
    pub fn stored(&self, tenant: &str, bytes: u64) {
        let mut map = self.counts.lock().expect("admission lock");
        if let Some(c) = map.get_mut(tenant) {
            // Only what was counted in (after a restart, earlier messages drain unaccounted).
            let done = bytes.min(c.outstanding);
            c.outstanding -= done;
            c.stored = c.stored.saturating_add(done);
        }
        drop(map);
        self.stored_signal.notify_waiters();
    }

    /// Wait (at most `max`) until what `tenant` had published when called is stored.
    /// Returns whether it is; after `max` the caller reads what is there.
    pub async fn settled(&self, tenant: &str, max: std::time::Duration) -> bool {
        let target = {
            let map = self.counts.lock().expect("admission lock");
            match map.get(tenant) {
                Some(c) if c.outstanding > 0 => c.stored + c.outstanding,
                _ => return true,
            }
        };
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let signal = self.stored_signal.notified();
            tokio::pin!(signal);
            signal.as_mut().enable();
            if self.counts.lock().expect("admission lock").get(tenant).is_none_or(|c| c.stored >= target || c.outstanding == 0) {
                return true;
            }
            if tokio::time::timeout_at(deadline, signal).await.is_err() {
                metrics::counter!("query_unsettled_reads_total").increment(1);
                return false;
            }
        }
    }

    /// Record the stream's size; returns whether the service should stay ready.
    pub fn observe_stream(&self, bytes: u64) -> bool {
        self.stream_bytes.store(bytes, Ordering::Relaxed);
        bytes < self.not_ready_at
    }

    /// Bytes of `tenant` published and not yet stored.
    pub fn outstanding(&self, tenant: &str) -> u64 {
        self.counts.lock().expect("admission lock").get(tenant).map_or(0, |c| c.outstanding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_is_refused_past_its_share_and_others_are_not() {
        let a = Admission::new(&AdmissionConfig::default(), 1000);
        a.check("t1", 200).unwrap();
        a.published("t1", 200);
        a.check("t1", 50).unwrap();
        a.published("t1", 50);
        let e = a.check("t1", 1).unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceExhausted);
        a.check("t2", 250).expect("another tenant keeps its own share");
        a.stored("t1", 100);
        a.check("t1", 100).expect("room again once the writer stored some");
        a.stored("t1", 10_000);
        assert_eq!(a.outstanding("t1"), 0, "never below zero (redeliveries after a restart)");
    }

    #[test]
    fn a_nearly_full_stream_refuses_everyone_and_is_not_ready() {
        let a = Admission::new(&AdmissionConfig::default(), 1000);
        assert!(a.observe_stream(700));
        assert!(!a.observe_stream(850), "past 80%: not ready");
        a.check("t1", 100).unwrap();
        assert!(!a.observe_stream(950));
        assert_eq!(a.check("t1", 100).unwrap_err().code, ErrorCode::Unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_waits_for_what_was_published_before_it_and_no_longer() {
        let a = std::sync::Arc::new(Admission::new(&AdmissionConfig::default(), 1000));
        let wait = std::time::Duration::from_secs(1);
        assert!(a.settled("t1", wait).await, "nothing published: no wait");
        a.published("t1", 100);
        a.published("t1", 50);
        let reader = tokio::spawn({
            let a = a.clone();
            async move { a.settled("t1", wait).await }
        });
        tokio::task::yield_now().await;
        a.published("t1", 70); // after the read came in: not waited for
        a.stored("t2", 500); // another tenant's store wakes it, and it waits on
        a.stored("t1", 100);
        tokio::task::yield_now().await;
        assert!(!reader.is_finished(), "50 bytes of before are not stored yet");
        a.stored("t1", 50);
        assert!(reader.await.unwrap(), "settled once what came before is stored");
        assert!(!a.settled("t1", wait).await, "the 70 bytes are never stored: gives up after the wait");
        a.stored("t1", 70);
        assert!(a.settled("t1", wait).await);
    }

    #[test]
    fn settings_are_checked() {
        let c = AdmissionConfig { max_tenant_share: 0.0, not_ready_fill: 1.5, backlog_poll_ms: 0 };
        assert_eq!(c.problems().len(), 3);
        assert!(AdmissionConfig::default().problems().is_empty());
    }
}
