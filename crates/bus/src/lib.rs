//! NATS JetStream plumbing: stream definitions, durable publishing with
//! `Nats-Msg-Id`, and durable pull consumers.
//!
//! Invariants:
//! - every subject carries the tenant: `fc.<tenant>.<kind>.<...>`;
//! - a publish counts only once JetStream's PubAck arrived; a duplicate
//!   (same message id inside the duplicate window) is reported, not stored twice;
//! - consumers are durable, named after their service, with explicit acks.

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Name of the stream holding every tenant's readings.
pub const TELEMETRY_STREAM: &str = "TELEMETRY";
/// Name of the stream holding domain events (alarms, deliveries, ...).
pub const EVENTS_STREAM: &str = "EVENTS";

/// Connection and stream settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// NATS server URL.
    pub url: String,
    /// Repeats of a message id inside this window are dropped by JetStream.
    pub duplicate_window_ms: u64,
    /// Telemetry older than this leaves the stream (the store keeps it).
    pub telemetry_max_age_ms: u64,
    /// Upper bound of the telemetry stream's size on the NATS server.
    pub telemetry_max_bytes: i64,
    /// Stream replicas (1 for a single server, 3 in production clusters).
    pub replicas: usize,
    /// Publishes in flight per connection before publishers wait.
    pub max_ack_inflight: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            duplicate_window_ms: 10 * 60_000,
            telemetry_max_age_ms: 24 * 3_600_000,
            telemetry_max_bytes: 8 * 1024 * 1024 * 1024,
            replicas: 1,
            max_ack_inflight: 20_000,
        }
    }
}

/// Bus failures.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Could not reach the server.
    #[error("nats connect {url}: {source}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// JetStream refused or failed an operation.
    #[error("jetstream: {0}")]
    JetStream(String),
}

impl From<BusError> for fc_core::ServiceError {
    fn from(e: BusError) -> Self {
        fc_core::ServiceError::unavailable(e)
    }
}

fn js<E: std::fmt::Display>(e: E) -> BusError {
    BusError::JetStream(e.to_string())
}

/// A connected JetStream context.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    cfg: BusConfig,
}

/// Where the `nats-server` binary is: `FC_NATS_SERVER`, then `PATH`, then
/// Debian's `/usr/sbin` (not on a normal user's `PATH`) and `/usr/local/bin`.
pub fn nats_server_binary() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Ok(p) = std::env::var("FC_NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

/// The subject of a machine's telemetry.
pub fn telemetry_subject(tenant: &str, machine: &str) -> String {
    format!("fc.{tenant}.telemetry.{machine}")
}

/// The subject filter of one tenant's telemetry.
pub fn tenant_telemetry_filter(tenant: &str) -> String {
    format!("fc.{tenant}.telemetry.>")
}

impl Bus {
    /// Connect and make sure the streams exist.
    pub async fn connect(cfg: &BusConfig) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name("factorychain")
            .connection_timeout(Duration::from_secs(5))
            .connect(&cfg.url)
            .await
            .map_err(|source| BusError::Connect { url: cfg.url.clone(), source })?;
        let js = jetstream::ContextBuilder::new()
            .max_ack_inflight(cfg.max_ack_inflight)
            .backpressure_on_inflight(true)
            .timeout(Duration::from_secs(10))
            .build(client.clone());
        let bus = Self { client, js, cfg: cfg.clone() };
        bus.ensure_streams().await?;
        Ok(bus)
    }

    /// The raw client, for core-NATS subscriptions (live views).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    async fn ensure_streams(&self) -> Result<(), BusError> {
        let telemetry = stream::Config {
            name: TELEMETRY_STREAM.into(),
            subjects: vec!["fc.*.telemetry.>".into()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: Duration::from_millis(self.cfg.duplicate_window_ms),
            max_age: Duration::from_millis(self.cfg.telemetry_max_age_ms),
            max_bytes: self.cfg.telemetry_max_bytes,
            num_replicas: self.cfg.replicas,
            ..Default::default()
        };
        let events = stream::Config {
            name: EVENTS_STREAM.into(),
            subjects: vec!["fc.*.events.>".into()],
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_millis(self.cfg.duplicate_window_ms),
            max_age: Duration::from_secs(30 * 86_400),
            num_replicas: self.cfg.replicas,
            ..Default::default()
        };
        for cfg in [telemetry, events] {
            self.js.get_or_create_stream(cfg).await.map_err(js)?;
        }
        Ok(())
    }

    /// Publish with a message id; resolves to `Ok(duplicate)` once JetStream stored it.
    /// Returns the PubAck future so callers can pipeline many publishes.
    pub async fn publish(&self, subject: String, msg_id: &str, payload: Bytes) -> Result<PendingAck, BusError> {
        let msg = jetstream::message::PublishMessage::build().message_id(msg_id).payload(payload);
        let fut = self.js.send_publish(subject, msg).await.map_err(js)?;
        Ok(PendingAck(fut))
    }

    /// A durable pull consumer on `stream` named `durable` (created when missing).
    pub async fn durable_consumer(
        &self,
        stream: &str,
        durable: &str,
        filter: Option<String>,
        max_ack_pending: i64,
        ack_wait: Duration,
    ) -> Result<consumer::PullConsumer, BusError> {
        let s = self.js.get_stream(stream).await.map_err(js)?;
        let cfg = consumer::pull::Config {
            durable_name: Some(durable.into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait,
            max_ack_pending,
            filter_subject: filter.unwrap_or_default(),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        };
        s.get_or_create_consumer(durable, cfg).await.map_err(js)
    }

    /// Messages of `durable` not yet delivered plus those delivered but not acked.
    pub async fn consumer_backlog(&self, stream: &str, durable: &str) -> Result<u64, BusError> {
        let s = self.js.get_stream(stream).await.map_err(js)?;
        let mut c: consumer::PullConsumer = s.get_consumer(durable).await.map_err(js)?;
        let info = c.info().await.map_err(js)?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }
}

/// A publish waiting for its PubAck.
pub struct PendingAck(jetstream::context::PublishAckFuture);

impl PendingAck {
    /// Wait for the PubAck: `Ok(true)` when JetStream had the message id already.
    pub async fn wait(self) -> Result<bool, BusError> {
        let ack = self.0.await.map_err(js)?;
        Ok(ack.duplicate)
    }
}
