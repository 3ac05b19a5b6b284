//! NATS JetStream plumbing: stream definitions, durable publishing with
//! `Nats-Msg-Id`, and durable pull consumers.
//!
//! Invariants:
//! - every subject carries the tenant: `fc.<tenant>.<kind>.<...>`;
//! - a publish counts only once JetStream's PubAck arrived; a duplicate
//!   (same message id inside the duplicate window) is reported, not stored twice;
//! - consumers are durable, named after their service, with explicit acks;
//! - an acknowledged message is never discarded before its consumers acked it:
//!   TELEMETRY keeps a message while a consumer still needs it (interest
//!   retention) and, when full, refuses new messages (discard new) rather than
//!   dropping old ones, so publishers see the refusal and devices retry.

pub mod auth;

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
    /// Messages no consumer has acked are dropped after this long; 0 (default)
    /// never drops them (a full stream refuses new messages instead).
    pub telemetry_max_age_ms: u64,
    /// Most bytes of not yet consumed telemetry the NATS server holds; past it,
    /// publishes are refused (discard new) and ingest answers UNAVAILABLE.
    pub telemetry_max_bytes: i64,
    /// Stream replicas: 1 for a single server, 3 on a JetStream cluster (a
    /// publish is acked once a majority stored it).
    pub replicas: usize,
    /// When the nats-server that `factorychain up` starts writes to disk:
    /// `always` (fsync every message before its PubAck: an acked reading
    /// survives power loss) or an interval such as `2m` or `500ms` (nats-server's
    /// own default is `2m`: a power cut loses what arrived since the last sync).
    /// A server you run yourself takes `sync_interval` from its own config.
    pub sync: String,
    /// Publishes in flight per connection before publishers wait.
    pub max_ack_inflight: usize,
    /// This service's NATS user (empty: connect without credentials). The
    /// nats-server `factorychain up` starts gives each service its own user,
    /// allowed only its subjects ([`auth`]).
    pub user: String,
    /// That user's password.
    pub password: String,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            duplicate_window_ms: 10 * 60_000,
            telemetry_max_age_ms: 0,
            telemetry_max_bytes: 8 * 1024 * 1024 * 1024,
            replicas: 1,
            sync: "always".into(),
            max_ack_inflight: 20_000,
            user: String::new(),
            password: String::new(),
        }
    }
}

impl BusConfig {
    /// Problems with the settings, every one (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if sync_interval(&self.sync).is_none() {
            errs.push(format!("bus.sync: {:?} is neither \"always\" nor an interval like \"1s\", \"500ms\" or \"2m\"", self.sync));
        }
        if !(1..=5).contains(&self.replicas) {
            errs.push(format!("bus.replicas: {} is not in 1..=5", self.replicas));
        }
        if self.telemetry_max_bytes < 1 << 20 {
            errs.push("bus.telemetry_max_bytes: must be at least 1 MiB".into());
        }
        errs
    }

    /// The URLs of every server in `url` (comma-separated for a cluster).
    pub fn urls(&self) -> Vec<String> {
        self.url.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_string).collect()
    }
}

/// `sync` as nats-server's `sync_interval` value: `always`, or a whole number
/// followed by `ms`, `s`, `m` or `h`.
pub fn sync_interval(sync: &str) -> Option<&str> {
    if sync == "always" {
        return Some(sync);
    }
    let digits = sync.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &sync[digits.len()..];
    let n: u64 = digits.parse().ok()?;
    (n > 0 && ["ms", "s", "m", "h"].contains(&unit)).then_some(sync)
}

/// The nats-server configuration `factorychain up` writes for its own server:
/// JetStream on, its store in `store_dir`, and the fsync policy `sync` when the
/// server can take one (`None`: nats-server 2.9, which has no such setting and
/// syncs every 2 minutes).
pub fn single_server_config(host: &str, port: u16, store_dir: &std::path::Path, sync: Option<&str>) -> Option<String> {
    // JSON strings are valid in nats-server's config syntax and escape the path safely.
    let dir = serde_json::to_string(&store_dir.display().to_string()).ok()?;
    let host = serde_json::to_string(host).ok()?;
    let sync = match sync {
        Some(s) => format!("  sync_interval: \"{}\"\n", sync_interval(s)?),
        None => String::new(),
    };
    Some(format!("host: {host}\nport: {port}\njetstream {{\n  store_dir: {dir}\n{sync}}}\n"))
}

/// The version a nats-server binary reports (`nats-server: v2.9.10`).
pub fn nats_server_version(bin: &std::path::Path) -> Option<(u32, u32, u32)> {
    let out = std::process::Command::new(bin).arg("--version").output().ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.split_whitespace().find_map(|w| w.strip_prefix('v'))?;
    let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>());
    Some((parts.next()?.ok()?, parts.next()?.ok()?, parts.next().and_then(Result::ok).unwrap_or(0)))
}

/// Whether that nats-server version takes `jetstream.sync_interval` (2.10 and later).
pub fn supports_sync_interval(version: (u32, u32, u32)) -> bool {
    version >= (2, 10, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_settings_and_versions() {
        for (s, ok) in
            [("always", true), ("1s", true), ("500ms", true), ("2m", true), ("0s", false), ("s", false), ("1d", false), ("", false)]
        {
            assert_eq!(sync_interval(s).is_some(), ok, "{s}");
        }
        assert_eq!(parse_version("nats-server: v2.9.10\n"), Some((2, 9, 10)));
        assert_eq!(parse_version("nats-server: v2.15.1-RC.1"), Some((2, 15, 1)));
        assert!(!supports_sync_interval((2, 9, 10)) && supports_sync_interval((2, 10, 0)));
        let with = single_server_config("127.0.0.1", 4222, std::path::Path::new("/d/n\"x"), Some("always")).unwrap();
        assert!(with.contains("sync_interval: \"always\"") && with.contains(r#"store_dir: "/d/n\"x""#), "{with}");
        let without = single_server_config("127.0.0.1", 4222, std::path::Path::new("/d"), None).unwrap();
        assert!(!without.contains("sync_interval"), "{without}");
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

/// The subject of a tenant's alarm events (the monitor announces, live pages listen).
pub fn alarm_subject(tenant: &str) -> String {
    format!("fc.{tenant}.events.alarm")
}

/// Whether `subject` is a tenant's alarm events.
pub fn is_alarm_subject(subject: &str) -> bool {
    subject.starts_with("fc.") && subject.ends_with(".events.alarm")
}

/// The subject filter of one tenant's telemetry.
pub fn tenant_telemetry_filter(tenant: &str) -> String {
    format!("fc.{tenant}.telemetry.>")
}

/// A core NATS connection to the configured servers, named `name`, that
/// reconnects for ever (every server of a cluster is a seed).
pub async fn connect_client(cfg: &BusConfig, name: &str) -> Result<async_nats::Client, BusError> {
    let addrs: Vec<async_nats::ServerAddr> = cfg
        .urls()
        .iter()
        .map(|u| u.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| BusError::JetStream(format!("bus.url {:?}: {e}", cfg.url)))?;
    let options = if cfg.user.is_empty() {
        async_nats::ConnectOptions::new()
    } else {
        async_nats::ConnectOptions::with_user_and_password(cfg.user.clone(), cfg.password.clone())
    };
    options
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(addrs)
        .await
        .map_err(|source| BusError::Connect { url: cfg.url.clone(), source })
}

impl Bus {
    /// Connect and make sure the streams exist.
    pub async fn connect(cfg: &BusConfig) -> Result<Self, BusError> {
        let client = connect_client(cfg, "factorychain").await?;
        let js = jetstream::ContextBuilder::new()
            .max_ack_inflight(cfg.max_ack_inflight)
            .backpressure_on_inflight(true)
            .timeout(Duration::from_secs(10))
            .build(client.clone());
        let bus = Self { client, js, cfg: cfg.clone() };
        if let Err(e) = bus.ensure_streams().await {
            // Say which peer is missing rather than how the first request failed.
            if bus.client.connection_state() != async_nats::connection::State::Connected {
                return Err(BusError::JetStream(format!(
                    "no NATS server answers at {} (bus.url); start one with JetStream enabled ({e})",
                    cfg.url
                )));
            }
            return Err(e);
        }
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
            // Kept until every consumer acked it; when full, new messages are refused.
            retention: stream::RetentionPolicy::Interest,
            discard: stream::DiscardPolicy::New,
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
        self.ensure_stream(telemetry).await?;
        self.js.get_or_create_stream(events).await.map_err(js)?;
        Ok(())
    }

    /// Create the stream, or bring an existing one to `want`. JetStream cannot change
    /// a stream's retention in place: a stream made by an older version (limits
    /// retention, discard old) is replaced, but only while no consumer has anything
    /// left to read, so nothing acknowledged is lost by the change.
    async fn ensure_stream(&self, want: stream::Config) -> Result<(), BusError> {
        let mut existing = match self.js.get_stream(&want.name).await {
            Ok(s) => s,
            Err(_) => {
                self.js.create_stream(want).await.map_err(js)?;
                return Ok(());
            }
        };
        let have = existing.info().await.map_err(js)?.config.clone();
        if have.retention == want.retention {
            if have.discard != want.discard
                || have.max_age != want.max_age
                || have.max_bytes != want.max_bytes
                || have.num_replicas != want.num_replicas
            {
                tracing::info!(stream = %want.name, "updating stream limits");
                self.js.update_stream(&want).await.map_err(js)?;
            }
            return Ok(());
        }
        let mut consumers = existing.consumers();
        while let Some(info) = futures::StreamExt::next(&mut consumers).await {
            let info = info.map_err(js)?;
            if info.num_pending + info.num_ack_pending as u64 > 0 {
                return Err(BusError::JetStream(format!(
                    "stream {} must move to {:?} retention, but consumer {} still has {} messages to read; start the previous version until it caught up, then retry",
                    want.name,
                    want.retention,
                    info.name,
                    info.num_pending + info.num_ack_pending as u64
                )));
            }
        }
        tracing::warn!(stream = %want.name, from = ?have.retention, to = ?want.retention, "replacing a fully consumed stream to change its retention");
        self.js.delete_stream(&want.name).await.map_err(js)?;
        self.js.create_stream(want).await.map_err(js)?;
        Ok(())
    }

    /// Publish with a message id; resolves to `Ok(duplicate)` once JetStream stored it.
    /// Returns the PubAck future so callers can pipeline many publishes.
    /// With traces on, the current span's W3C context rides in the message's headers.
    pub async fn publish(&self, subject: String, msg_id: &str, payload: Bytes) -> Result<PendingAck, BusError> {
        let mut headers = Vec::new();
        fc_rpc::trace::inject(&tracing::Span::current(), |k, v| headers.push((k, v)));
        let msg = headers
            .into_iter()
            .fold(jetstream::message::PublishMessage::build().message_id(msg_id).payload(payload), |m, (k, v)| m.header(k, v));
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
        self.pull_consumer(stream, durable, filter, max_ack_pending, ack_wait, Duration::ZERO).await
    }

    /// A durable pull consumer that the server deletes after `inactive` without a pull:
    /// under interest retention, a reader that went away for good stops holding the
    /// stream's messages (the store writer's, which must never lose one, does not expire).
    pub async fn expiring_consumer(
        &self,
        stream: &str,
        durable: &str,
        max_ack_pending: i64,
        ack_wait: Duration,
        inactive: Duration,
    ) -> Result<consumer::PullConsumer, BusError> {
        self.pull_consumer(stream, durable, None, max_ack_pending, ack_wait, inactive).await
    }

    async fn pull_consumer(
        &self,
        stream: &str,
        durable: &str,
        filter: Option<String>,
        max_ack_pending: i64,
        ack_wait: Duration,
        inactive_threshold: Duration,
    ) -> Result<consumer::PullConsumer, BusError> {
        let s = self.js.get_stream(stream).await.map_err(js)?;
        let cfg = consumer::pull::Config {
            durable_name: Some(durable.into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait,
            max_ack_pending,
            filter_subject: filter.unwrap_or_default(),
            deliver_policy: consumer::DeliverPolicy::All,
            inactive_threshold,
            ..Default::default()
        };
        s.get_or_create_consumer(durable, cfg).await.map_err(js)
    }

    /// Bytes and messages the stream holds: under interest retention, what some
    /// consumer has not acked yet.
    pub async fn stream_backlog(&self, stream: &str) -> Result<(u64, u64), BusError> {
        let mut s = self.js.get_stream(stream).await.map_err(js)?;
        let info = s.info().await.map_err(js)?;
        Ok((info.state.bytes, info.state.messages))
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
