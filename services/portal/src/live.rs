//! Live machine views: one NATS subscription per watched machine, fanned out
//! to every open page over SSE (no polling). A subscription ends when its last
//! viewer leaves.

use crate::PortalState;
use crate::auth::PageAuth;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use fc_proto::v1::TelemetryMessage;
use futures::StreamExt;
use prost::Message;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// Fan-out of live readings per NATS subject.
pub struct Hub {
    nats: async_nats::Client,
    topics: Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>,
}

impl Hub {
    /// A hub on this connection.
    pub fn new(nats: async_nats::Client) -> Self {
        Self { nats, topics: Mutex::new(HashMap::new()) }
    }

    /// Live readings of `subject`, as JSON arrays of `{metric, unit, t, v}`.
    pub fn subscribe(self: &Arc<Self>, subject: String) -> broadcast::Receiver<Arc<str>> {
        let mut topics = self.topics.lock().expect("hub lock");
        if let Some(tx) = topics.get(&subject) {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(256);
        topics.insert(subject.clone(), tx.clone());
        let hub = self.clone();
        tokio::spawn(async move {
            let mut sub = match hub.nats.subscribe(subject.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "live view subscription failed");
                    hub.topics.lock().expect("hub lock").remove(&subject);
                    return;
                }
            };
            let mut idle = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    msg = sub.next() => {
                        let Some(msg) = msg else { break };
                        if let Ok(t) = TelemetryMessage::decode(msg.payload.as_ref()) {
                            let _ = tx.send(summarise(&t).into());
                        }
                    }
                    _ = idle.tick() => {
                        // Decide and unregister under the lock subscribers take, so nobody
                        // can join a topic whose feeding task is about to end.
                        let mut topics = hub.topics.lock().expect("hub lock");
                        if tx.receiver_count() == 0 {
                            topics.remove(&subject);
                            return;
                        }
                    }
                }
            }
            hub.topics.lock().expect("hub lock").remove(&subject);
        });
        rx
    }

    /// Machines watched right now.
    pub fn topics(&self) -> usize {
        self.topics.lock().expect("hub lock").len()
    }
}

/// The newest reading of each series of a message, as JSON.
fn summarise(t: &TelemetryMessage) -> String {
    let items: Vec<serde_json::Value> = t
        .series
        .iter()
        .filter_map(|s| {
            let mut ts = s.base_timestamp_ms;
            let mut last = None;
            for (d, v) in s.timestamp_deltas_ms.iter().zip(&s.values) {
                ts += d;
                if last.is_none_or(|(lt, _)| ts >= lt) {
                    last = Some((ts, *v));
                }
            }
            last.map(|(ts, v)| serde_json::json!({"metric": s.metric, "unit": s.unit, "t": ts, "v": v}))
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// `GET /machines/{machine}/live`: server-sent events of the machine's readings.
pub async fn sse(
    State(s): State<Arc<PortalState>>,
    PageAuth(p): PageAuth,
    Path(machine): Path<String>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, crate::problem::Problem> {
    if machine.is_empty() || machine.len() > 64 || !machine.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(crate::problem::Problem::bad_request("machine: not a machine identifier"));
    }
    // The subject carries the session's tenant: another tenant's machine is simply silent.
    let rx = s.hub.subscribe(fc_bus::telemetry_subject(&p.tenant_id, &machine));
    let shutdown = s.shutdown.clone();
    let client = LiveClient::open();
    // Ends at shutdown, or open live views would keep the server from stopping.
    let stream = tokio_stream::wrappers::BroadcastStream::new(rx).take_until(async move { shutdown.wait().await }).filter_map(move |m| {
        let _counted = &client;
        async move { m.ok().map(|data| Ok(Event::default().event("readings").data(&*data))) }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Counts an open live view in `portal_live_clients` for as long as it lives.
struct LiveClient;

impl LiveClient {
    fn open() -> Self {
        metrics::gauge!("portal_live_clients").increment(1.0);
        Self
    }
}

impl Drop for LiveClient {
    fn drop(&mut self) {
        metrics::gauge!("portal_live_clients").decrement(1.0);
    }
}
