//! Live views: one NATS subscription per watched machine (its readings) or per
//! tenant (its alarm events), fanned out to every open page over SSE (no polling). A
//! subscription ends when its last viewer leaves.
//!
//! Invariants:
//! - a live view lives no longer than its session: it re-checks the session every
//!   `live_session_check_ms` and ends on logout, expiry, removal of the user or a
//!   lower role (the browser reconnects with what the session allows now);
//! - open views are capped per session and per tenant, so neither one page nor one
//!   tenant can hold unbounded streams and NATS subscriptions.

use crate::PortalState;
use crate::auth::PageAuth;
use crate::problem::Problem;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use fc_core::ErrorCode;
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

    /// Live readings of `subject`, as JSON arrays of `{metric, unit, t, v}`; of an
    /// alarm subject, each event as `{kind, id, machine, severity, state}`.
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
                        if fc_bus::is_alarm_subject(&subject) {
                            if let Some(e) = summarise_alarm(&msg.payload) {
                                let _ = tx.send(e.into());
                            }
                        } else if let Ok(t) = TelemetryMessage::decode(msg.payload.as_ref()) {
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

/// What an alarms page needs to know of an alarm event (the page reloads the list).
fn summarise_alarm(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let a = &v["alarm"];
    Some(
        serde_json::json!({"kind": v["kind"], "id": a["id"], "machine": a["machine"], "severity": a["severity"], "state": a["state"]})
            .to_string(),
    )
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
    headers: HeaderMap,
    Path(machine): Path<String>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, Problem> {
    if machine.is_empty() || machine.len() > 64 || !machine.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(Problem::bad_request("machine: not a machine identifier"));
    }
    let (sid, view) = admit(&s, &p, &headers, "sign in to watch a machine")?;
    // The subject carries the session's tenant: another tenant's machine is simply silent.
    let rx = s.hub.subscribe(fc_bus::telemetry_subject(&p.tenant_id, &machine));
    // Then the newest stored readings, so what arrived between the page and this stream
    // is not missing until the machine's next reading (the page skips older values).
    let snapshot = snapshot(&s, &p.tenant_id, &machine).await;
    Ok(respond(s, p, sid, view, "readings", snapshot, rx))
}

/// A place under the caps for a live view of the signed-in session (its id and the view).
fn admit(s: &PortalState, p: &crate::auth::Principal, headers: &HeaderMap, unsigned: &str) -> Result<(String, LiveView), Problem> {
    // PageAuth admitted a session cookie, so both are there.
    let (Some(sid), Some(csrf)) = (crate::auth::cookie(headers, crate::auth::SESSION_COOKIE), p.csrf.as_deref()) else {
        return Err(Problem::new(ErrorCode::Unauthenticated, unsigned));
    };
    // The CSRF token names the session in the counts, so the cookie is kept only by the stream.
    let view = s.live_views.open(csrf, &p.tenant_id, s.config.live_views_per_session, s.config.live_views_per_tenant)?;
    Ok((sid.to_string(), view))
}

/// The SSE answer of an admitted view: `snapshot` first, then `rx` as `event` events,
/// until the session no longer allows it.
fn respond(
    s: Arc<PortalState>,
    p: crate::auth::Principal,
    session_id: String,
    view: LiveView,
    event: &'static str,
    snapshot: Option<String>,
    rx: broadcast::Receiver<Arc<str>>,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let period = Duration::from_millis(s.config.live_session_check_ms.max(1));
    let mut check = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live = Live {
        event,
        snapshot,
        readings: tokio_stream::wrappers::BroadcastStream::new(rx),
        check,
        state: s,
        session_id,
        tenant_id: p.tenant_id,
        role: p.role,
        _view: view,
    };
    let stream = futures::stream::unfold(live, |mut live| async move {
        let event = live.next().await?;
        Some((Ok(event), live))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// The newest stored reading of each of the machine's series, as one `readings`
/// event (none if the store has none or cannot answer now).
async fn snapshot(s: &PortalState, tenant: &str, machine: &str) -> Option<String> {
    let series = s.telemetry.list_series(tenant, Some(machine)).await.ok()?;
    let keys: Vec<_> = series.iter().map(|i| (i.machine.clone(), i.metric.clone())).take(1000).collect();
    if keys.is_empty() {
        return None;
    }
    let latest = s.telemetry.latest(tenant, &keys).await.ok()?;
    let items: Vec<serde_json::Value> =
        latest.iter().map(|l| serde_json::json!({"metric": l.series.metric, "unit": l.series.unit, "t": l.ts_ms, "v": l.value})).collect();
    Some(serde_json::Value::Array(items).to_string())
}

/// `GET /alarms/live`: server-sent events (`alarm`) of the tenant's alarm changes.
pub async fn alarms_sse(
    State(s): State<Arc<PortalState>>,
    PageAuth(p): PageAuth,
    headers: HeaderMap,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, Problem> {
    let (sid, view) = admit(&s, &p, &headers, "sign in to watch alarms")?;
    let rx = s.hub.subscribe(fc_bus::alarm_subject(&p.tenant_id));
    Ok(respond(s, p, sid, view, "alarm", None, rx))
}

/// One open live view.
struct Live {
    /// The SSE event name of what the feed carries.
    event: &'static str,
    /// Sent first.
    snapshot: Option<String>,
    readings: tokio_stream::wrappers::BroadcastStream<Arc<str>>,
    check: tokio::time::Interval,
    state: Arc<PortalState>,
    session_id: String,
    tenant_id: String,
    role: fc_registry::Role,
    _view: LiveView,
}

impl Live {
    /// The next event, or `None` when the view ends: at shutdown (or open views
    /// would keep the server from stopping), when the session no longer allows
    /// it, or when the feed ends.
    async fn next(&mut self) -> Option<Event> {
        if let Some(data) = self.snapshot.take() {
            return Some(Event::default().event(self.event).data(data));
        }
        loop {
            tokio::select! {
                _ = self.state.shutdown.wait() => return None,
                m = self.readings.next() => match m? {
                    Ok(data) => return Some(Event::default().event(self.event).data(&*data)),
                    Err(_lagged) => continue, // skipped readings; the next ones follow
                },
                _ = self.check.tick() => {
                    if !self.session_still_allows() {
                        return None;
                    }
                    // A comment line: a write is how a client that went away is noticed,
                    // which frees its place under the caps.
                    return Some(Event::default().comment(""));
                }
            }
        }
    }

    fn session_still_allows(&self) -> bool {
        match self.state.registry.session(&self.session_id) {
            Ok(s) => s.tenant_id == self.tenant_id && s.role >= self.role,
            Err(_) => false, // logged out, expired, or the user is gone
        }
    }
}

/// Open live views, counted per session and per tenant.
#[derive(Default)]
pub struct LiveViews {
    open: Mutex<OpenViews>,
}

#[derive(Default)]
struct OpenViews {
    per_session: HashMap<String, u32>,
    per_tenant: HashMap<String, u32>,
}

impl LiveViews {
    /// Count one more view of `session` in `tenant`, or refuse it (429) when either cap is reached.
    pub fn open(self: &Arc<Self>, session: &str, tenant: &str, per_session: u32, per_tenant: u32) -> Result<LiveView, Problem> {
        let mut open = self.open.lock().expect("live views lock");
        if open.per_session.get(session).copied().unwrap_or(0) >= per_session {
            return Err(Problem::new(
                ErrorCode::ResourceExhausted,
                format!("this session already has {per_session} live views open; close a machine page and try again"),
            ));
        }
        if open.per_tenant.get(tenant).copied().unwrap_or(0) >= per_tenant {
            return Err(Problem::new(
                ErrorCode::ResourceExhausted,
                format!("your organisation already has {per_tenant} live views open; close some machine pages and try again"),
            ));
        }
        *open.per_session.entry(session.to_string()).or_default() += 1;
        *open.per_tenant.entry(tenant.to_string()).or_default() += 1;
        metrics::gauge!("portal_live_clients").increment(1.0);
        Ok(LiveView { views: self.clone(), session: session.to_string(), tenant: tenant.to_string() })
    }

    /// Views open now.
    pub fn len(&self) -> usize {
        self.open.lock().expect("live views lock").per_tenant.values().map(|n| *n as usize).sum()
    }

    /// Whether no view is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One counted live view (and one in `portal_live_clients`), for as long as it lives.
pub struct LiveView {
    views: Arc<LiveViews>,
    session: String,
    tenant: String,
}

impl Drop for LiveView {
    fn drop(&mut self) {
        metrics::gauge!("portal_live_clients").decrement(1.0);
        let mut guard = self.views.open.lock().expect("live views lock");
        let open = &mut *guard;
        for (map, key) in [(&mut open.per_session, &self.session), (&mut open.per_tenant, &self.tenant)] {
            if let Some(n) = map.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(key); // the maps hold only sessions and tenants with open views
                }
            }
        }
    }
}
