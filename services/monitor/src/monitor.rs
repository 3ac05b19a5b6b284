//! The monitor's core: every tenant's rule runners, fed by the telemetry consumer and
//! the clock, their transitions stored and announced, and the operators' actions.
//!
//! Invariant: a transition is stored (`store.rs`) before it is announced on
//! `fc.<tenant>.events.alarm`, and a telemetry message is acked only after both, so a
//! crash replays messages rather than losing alarms; a replay's transitions carry the
//! same alarm ids and are recognised by the store and by JetStream's duplicate window.

use crate::store::{
    AlarmFilter, AlarmRecord, AlarmState, DeliveryRecord, DeliveryState, EmailSubscriptionRecord, Note, SavedRule, Step, Store,
    WebhookRecord,
};
use bytes::Bytes;
use fc_core::{ErrorCode, ServiceError};
use fc_monitor::{Reading, Rule, RuleRunner, Severity, Transition, TransitionKind};
use serde::Serialize;
use sha2::Digest;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

/// Rules one tenant may have.
pub const MAX_RULES_PER_TENANT: usize = 500;
/// Longest note.
pub const MAX_NOTE_CHARS: usize = 2000;

/// An alarm event as published on `fc.<tenant>.events.alarm` (JSON).
#[derive(Serialize)]
pub struct AlarmEvent<'a> {
    /// raised, escalated, acknowledged, assigned, commented, cleared.
    pub kind: &'a str,
    /// The alarm after the change.
    pub alarm: &'a AlarmRecord,
}

/// The subject of a tenant's alarm events.
pub use fc_bus::alarm_subject as events_subject;

type Runners = BTreeMap<String, RuleRunner>;

/// Webhook endpoints one tenant may have.
pub const MAX_WEBHOOKS_PER_TENANT: usize = 20;

/// The monitor.
pub struct Monitor {
    store: Store,
    /// Each tenant's runners behind a lock of its own: one tenant's checkpoint, tick or
    /// rule change never waits on another's.
    tenants: RwLock<HashMap<String, Arc<Mutex<Runners>>>>,
    bus: Arc<fc_bus::Bus>,
    series: Option<fc_query_api::QueryClient>,
    allow_private_webhooks: bool,
    /// Whether e-mail can be sent (`smtp_url` is set).
    email: bool,
}

/// Series one backtest reads at most.
pub const BACKTEST_SERIES: usize = 200;
/// Readings one backtest reads at most.
pub const BACKTEST_READINGS: usize = 2_000_000;

/// What a backtest over stored history found.
pub struct Backtest {
    /// Readings and alarms.
    pub report: fc_monitor::backtest::Report,
    /// Series read.
    pub series: usize,
    /// Not everything in the window was read.
    pub truncated: bool,
}

/// E-mail subscriptions one tenant may have (one per user).
pub const MAX_EMAIL_SUBSCRIPTIONS_PER_TENANT: usize = 500;

impl Monitor {
    /// Open the store, rebuild every rule's runner from its checkpoint and reconcile it
    /// with the alarms the store has open.
    pub fn open(
        store: Store,
        bus: Arc<fc_bus::Bus>,
        series: Option<fc_query_api::QueryClient>,
        allow_private_webhooks: bool,
        email: bool,
    ) -> Result<Self, ServiceError> {
        let mut tenants: HashMap<String, Runners> = HashMap::new();
        for (tenant, saved) in store.all_rules()? {
            let id = saved.rule.id.clone();
            let runner = match store.checkpoint(&tenant, &id)? {
                Some(bytes) => RuleRunner::restore(saved.rule.clone(), &bytes).unwrap_or_else(|e| {
                    tracing::warn!(tenant = %tenant, rule = %id, error = %e, "checkpoint not used; the rule starts afresh");
                    RuleRunner::new(saved.rule.clone()).expect("stored rules are valid")
                }),
                None => RuleRunner::new(saved.rule.clone()).map_err(|e| ServiceError::internal(format!("stored rule {id}: {e}")))?,
            };
            tenants.entry(tenant).or_default().insert(id, runner);
        }
        let open = store.open_alarms()?;
        for (tenant, runners) in &mut tenants {
            for (id, runner) in runners.iter_mut() {
                let stored: Vec<&AlarmRecord> = open.iter().filter(|a| a.tenant == *tenant && a.rule_id == *id).collect();
                for a in &stored {
                    if a.rule_version == runner.rule().version {
                        runner.adopt_open(&a.machine, a.metric.as_deref(), a.raised_at_ms, a.severity, a.state == AlarmState::Acknowledged);
                    }
                }
                for (machine, metric, raised_at, ..) in runner.open_alarms() {
                    if !stored.iter().any(|a| a.machine == machine && a.metric == metric && a.raised_at_ms == raised_at) {
                        runner.drop_open(&machine, metric.as_deref(), raised_at);
                    }
                }
            }
        }
        let tenants = tenants.into_iter().map(|(t, r)| (t, Arc::new(Mutex::new(r)))).collect();
        Ok(Self { store, tenants: RwLock::new(tenants), bus, series, allow_private_webhooks, email })
    }

    /// Whether `tenant` has any rule (messages of other tenants are not decoded).
    pub fn watches(&self, tenant: &str) -> bool {
        self.runners(tenant).is_some_and(|r| !r.lock().expect("runners lock").is_empty())
    }

    /// `tenant`'s runners, if it has any.
    fn runners(&self, tenant: &str) -> Option<Arc<Mutex<Runners>>> {
        self.tenants.read().expect("tenants lock").get(tenant).cloned()
    }

    /// Every tenant's runners (the map's lock is not held while they are used).
    fn all_runners(&self) -> Vec<(String, Arc<Mutex<Runners>>)> {
        self.tenants.read().expect("tenants lock").iter().map(|(t, r)| (t.clone(), r.clone())).collect()
    }

    /// Judge one tenant's readings; returns the transitions.
    pub fn observe(&self, tenant: &str, msg: &fc_telemetry::bus::DecodedMessage) -> Vec<Transition> {
        let mut out = Vec::new();
        let Some(runners) = self.runners(tenant) else { return out };
        let mut runners = runners.lock().expect("runners lock");
        let mut readings = 0u64;
        for s in &msg.series {
            for p in &s.points {
                if p.quality == 3 {
                    continue; // bad quality: not judged
                }
                readings += 1;
                let r = Reading { machine: &s.machine, metric: &s.metric, unit: &s.unit, ts_ms: p.ts_ms, value: p.value };
                for runner in runners.values_mut() {
                    runner.observe(&r, &mut out);
                }
            }
        }
        metrics::counter!("monitor_readings_total").increment(readings);
        out
    }

    /// Let time pass for every rule; returns the transitions by tenant.
    pub fn tick(&self, now_ms: i64) -> Vec<(String, Vec<Transition>)> {
        let mut all = Vec::new();
        for (tenant, runners) in self.all_runners() {
            let mut out = Vec::new();
            for runner in runners.lock().expect("runners lock").values_mut() {
                runner.tick(now_ms, &mut out);
            }
            if !out.is_empty() {
                all.push((tenant, out));
            }
        }
        all
    }

    /// Store transitions, then announce them; returns when JetStream has the events.
    pub async fn record(&self, tenant: &str, transitions: &[Transition]) -> Result<(), ServiceError> {
        if transitions.is_empty() {
            return Ok(());
        }
        for t in transitions {
            metrics::counter!("monitor_alarm_transitions_total", "kind" => t.kind.as_str()).increment(1);
        }
        let changed = self.store.apply(tenant, transitions)?;
        self.announce(tenant, &changed).await
    }

    async fn announce(&self, tenant: &str, changed: &[(String, AlarmRecord)]) -> Result<(), ServiceError> {
        let mut acks = Vec::with_capacity(changed.len());
        for (kind, alarm) in changed {
            let payload = serde_json::to_vec(&AlarmEvent { kind, alarm }).map_err(ServiceError::internal)?;
            let msg_id = format!("{}/{}", alarm.id, alarm.history.len());
            let ack = self
                .bus
                .publish(events_subject(tenant), &msg_id, Bytes::from(payload))
                .await
                .map_err(|e| ServiceError::unavailable(e.to_string()))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.wait().await.map_err(|e| ServiceError::unavailable(e.to_string()))?;
        }
        self.queue_notifications(tenant, changed)
    }

    /// Queue a delivery of each raise, escalation and clear for every webhook and e-mail
    /// subscription that wants it (idempotent: a delivery's id comes from the alarm's
    /// step and the recipient).
    fn queue_notifications(&self, tenant: &str, changed: &[(String, AlarmRecord)]) -> Result<(), ServiceError> {
        let notable: Vec<&(String, AlarmRecord)> =
            changed.iter().filter(|(k, _)| matches!(k.as_str(), "raised" | "escalated" | "cleared")).collect();
        if notable.is_empty() {
            return Ok(());
        }
        // (webhook id, e-mail address) per recipient.
        let mut recipients: Vec<(&fc_monitor::notify::Subscription, String, String)> = Vec::new();
        let hooks = self.store.webhooks(tenant)?;
        recipients.extend(hooks.iter().map(|w| (&w.subscription, w.id.clone(), String::new())));
        let mails = if self.email { self.store.email_subscriptions(tenant)? } else { Vec::new() };
        recipients.extend(mails.iter().map(|m| (&m.subscription, String::new(), m.address().to_owned())));
        let now = fc_core::time::now_ms();
        let mut queue = Vec::new();
        for (kind, alarm) in notable {
            for (_, webhook_id, email) in recipients.iter().filter(|(s, ..)| s.wants(alarm.severity, &alarm.machine)) {
                let mut h = sha2::Sha256::new();
                let recipient = if email.is_empty() { webhook_id.clone() } else { format!("mailto:{email}") };
                h.update(format!("{}\0{}\0{}", alarm.id, alarm.history.len(), recipient).as_bytes());
                let body = serde_json::to_string(&AlarmEvent { kind, alarm }).map_err(ServiceError::internal)?;
                queue.push(DeliveryRecord {
                    id: format!("dl_{}", &hex::encode(h.finalize())[..20]),
                    tenant: tenant.to_owned(),
                    webhook_id: webhook_id.clone(),
                    email: email.clone(),
                    alarm_id: alarm.id.clone(),
                    kind: kind.clone(),
                    body,
                    state: DeliveryState::Pending,
                    attempts: 0,
                    last_error: String::new(),
                    created_at_ms: now,
                    next_at_ms: now,
                    delivered_at_ms: None,
                });
            }
        }
        self.store.enqueue(&queue)
    }

    /// Ingest's `Query`, if configured.
    pub(crate) fn query(&self) -> Option<&fc_query_api::QueryClient> {
        self.series.as_ref()
    }

    /// The store (the delivery worker's queue).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Save a webhook endpoint; returns it (with the secret the monitor made, if any).
    pub fn put_webhook(
        &self,
        tenant: &str,
        id: &str,
        url: &str,
        secret: &str,
        min_severity: &str,
        machines: Vec<String>,
    ) -> Result<WebhookRecord, ServiceError> {
        let id_ok = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
        if !id_ok {
            return Err(ServiceError::invalid("id", "1 to 64 of a-z 0-9 - _ ."));
        }
        fc_monitor::notify::check_url(url, self.allow_private_webhooks).map_err(|e| ServiceError::invalid("url", e))?;
        let secret = match secret.chars().count() {
            0 => {
                let mut buf = [0u8; 24];
                getrandom::fill(&mut buf).map_err(ServiceError::internal)?;
                format!("whsec_{}", hex::encode(buf))
            }
            16..=256 => secret.to_owned(),
            _ => return Err(ServiceError::invalid("secret", "16 to 256 characters (or empty: the monitor makes one)")),
        };
        check_machines(&machines)?;
        let min_severity = parse_min_severity(min_severity)?.unwrap_or(Severity::Info);
        let existing = self.store.webhooks(tenant)?;
        if !existing.iter().any(|w| w.id == id) && existing.len() >= MAX_WEBHOOKS_PER_TENANT {
            return Err(ServiceError::new(
                ErrorCode::ResourceExhausted,
                format!("a tenant has at most {MAX_WEBHOOKS_PER_TENANT} webhooks"),
            ));
        }
        let w = WebhookRecord {
            id: id.to_owned(),
            url: url.to_owned(),
            secret,
            subscription: fc_monitor::notify::Subscription {
                channel: fc_monitor::notify::Channel::Webhook { endpoint: id.to_owned() },
                min_severity,
                machines,
            },
            created_at_ms: fc_core::time::now_ms(),
        };
        self.store.put_webhook(tenant, &w)?;
        Ok(w)
    }

    /// A tenant's webhook endpoints.
    pub fn webhooks(&self, tenant: &str) -> Result<Vec<WebhookRecord>, ServiceError> {
        self.store.webhooks(tenant)
    }

    /// Remove an endpoint.
    pub fn delete_webhook(&self, tenant: &str, id: &str) -> Result<(), ServiceError> {
        if self.store.delete_webhook(tenant, id)? { Ok(()) } else { Err(ServiceError::not_found(format!("webhook {id}"))) }
    }

    /// Save a user's e-mail subscription.
    pub fn put_email_subscription(
        &self,
        tenant: &str,
        user_id: &str,
        address: &str,
        min_severity: &str,
        machines: Vec<String>,
    ) -> Result<EmailSubscriptionRecord, ServiceError> {
        if !self.email {
            return Err(ServiceError::new(
                ErrorCode::FailedPrecondition,
                "this platform sends no e-mail (the operator has not set monitor.smtp_url)",
            ));
        }
        if user_id.is_empty() || user_id.len() > 128 {
            return Err(ServiceError::invalid("user_id", "1 to 128 bytes"));
        }
        let address = address.trim();
        address
            .parse::<lettre::Address>()
            .map_err(|e| ServiceError::invalid("address", format!("{address:?} is not an e-mail address: {e}")))?;
        if address.len() > 254 {
            return Err(ServiceError::invalid("address", "at most 254 bytes"));
        }
        check_machines(&machines)?;
        let min_severity = parse_min_severity(min_severity)?.unwrap_or(Severity::Warning);
        let existing = self.store.email_subscriptions(tenant)?;
        if !existing.iter().any(|s| s.user_id == user_id) && existing.len() >= MAX_EMAIL_SUBSCRIPTIONS_PER_TENANT {
            return Err(ServiceError::new(
                ErrorCode::ResourceExhausted,
                format!("a tenant has at most {MAX_EMAIL_SUBSCRIPTIONS_PER_TENANT} e-mail subscriptions"),
            ));
        }
        let s = EmailSubscriptionRecord {
            user_id: user_id.to_owned(),
            subscription: fc_monitor::notify::Subscription {
                channel: fc_monitor::notify::Channel::Email { address: address.to_owned() },
                min_severity,
                machines,
            },
            created_at_ms: fc_core::time::now_ms(),
        };
        self.store.put_email_subscription(tenant, &s)?;
        Ok(s)
    }

    /// A tenant's e-mail subscriptions (one user's if `user_id` is not empty).
    pub fn email_subscriptions(&self, tenant: &str, user_id: &str) -> Result<Vec<EmailSubscriptionRecord>, ServiceError> {
        let mut all = self.store.email_subscriptions(tenant)?;
        all.retain(|s| user_id.is_empty() || s.user_id == user_id);
        Ok(all)
    }

    /// Remove a user's e-mail subscription (and its queued e-mails).
    pub fn delete_email_subscription(&self, tenant: &str, user_id: &str) -> Result<(), ServiceError> {
        self.store.delete_email_subscription(tenant, user_id)
    }

    /// Whether the operator lets webhooks reach private networks.
    pub fn allow_private_webhooks(&self) -> bool {
        self.allow_private_webhooks
    }

    /// Every runner's checkpoint, saved in one commit.
    pub fn checkpoint(&self) -> Result<(), ServiceError> {
        let mut items: Vec<(String, String, Vec<u8>)> = Vec::new();
        for (t, runners) in self.all_runners() {
            let runners = runners.lock().expect("runners lock");
            items.extend(runners.iter().map(|(id, r)| (t.clone(), id.clone(), r.checkpoint())));
        }
        self.store.save_checkpoints(&items)
    }

    /// A tenant's rules.
    pub fn rules(&self, tenant: &str) -> Result<Vec<SavedRule>, ServiceError> {
        self.store.rules(tenant)
    }

    /// Save a rule as its next version; its runner starts afresh, and alarms the old
    /// version left open are cleared (they name the version that raised them).
    pub async fn put_rule(&self, tenant: &str, mut rule: Rule, user: &str) -> Result<SavedRule, ServiceError> {
        rule.validate().map_err(|e| ServiceError::invalid("rule", e))?;
        self.check_metrics(tenant, &rule).await?;
        let exists = self.store.rule(tenant, &rule.id)?.is_some();
        if !exists && self.store.rules(tenant)?.len() >= MAX_RULES_PER_TENANT {
            return Err(ServiceError::new(ErrorCode::ResourceExhausted, format!("a tenant has at most {MAX_RULES_PER_TENANT} rules")));
        }
        rule.version = self.store.last_version(tenant, &rule.id)? + 1;
        let saved = SavedRule { rule: rule.clone(), saved_at_ms: fc_core::time::now_ms(), saved_by: user.to_owned() };
        self.store.save_rule(tenant, &saved)?;
        let runner = RuleRunner::new(rule.clone()).map_err(|e| ServiceError::invalid("rule", e))?;
        let runners = self.tenants.write().expect("tenants lock").entry(tenant.to_owned()).or_default().clone();
        let old = runners.lock().expect("runners lock").insert(rule.id.clone(), runner);
        self.close_left_open(tenant, old, &format!("the rule changed (version {})", rule.version)).await?;
        Ok(saved)
    }

    /// Run `rule` over `tenant`'s stored readings in `[from, to)` (at most 92 days; at
    /// most [`BACKTEST_SERIES`] series and [`BACKTEST_READINGS`] readings, else
    /// `truncated`), as the live service would have.
    pub async fn backtest(&self, tenant: &str, rule: &Rule, from: i64, to: i64) -> Result<Backtest, ServiceError> {
        rule.validate().map_err(|e| ServiceError::invalid("rule", e))?;
        if to <= from || to - from > 92 * 86_400_000 {
            return Err(ServiceError::invalid("end_ms", "after start_ms, at most 92 days later"));
        }
        let query = self.series.as_ref().ok_or_else(|| {
            ServiceError::new(ErrorCode::FailedPrecondition, "this monitor reads no stored history (monitor.telemetry_url is not set)")
        })?;
        let metrics = rule.metrics();
        let mut any_metric = false;
        rule.condition.visit(&mut |c| any_metric |= matches!(c, fc_monitor::Condition::NoData { metric: None, .. }));
        let mut series: Vec<_> = query
            .list_series(tenant, None)
            .await?
            .into_iter()
            .filter(|s| rule.watches_machine(&s.machine))
            .filter(|s| any_metric || metrics.iter().any(|m| fc_monitor::rule::glob(m, &s.metric)))
            .collect();
        let mut truncated = series.len() > BACKTEST_SERIES;
        series.truncate(BACKTEST_SERIES);
        let mut points: Vec<(i64, usize, f64)> = Vec::new();
        for (i, s) in series.iter().enumerate() {
            let left = BACKTEST_READINGS.saturating_sub(points.len());
            if left == 0 {
                truncated = true;
                break;
            }
            let spec = fc_query_api::RangeSpec { start_ms: from, end_ms: to, step_ms: 0, limit: left.min(1_000_000) as u32 };
            let r = query.range(tenant, &s.machine, &s.metric, spec).await?;
            truncated |= r.truncated;
            // As live: bad-quality readings are not judged.
            points.extend(r.points.iter().filter(|p| p.value.is_finite() && p.quality != 3).map(|p| (p.ts_ms, i, p.value)));
        }
        points.sort_by_key(|&(ts, i, _)| (ts, i));
        let readings = points.iter().map(|&(ts, i, value)| fc_monitor::Reading {
            machine: &series[i].machine,
            metric: &series[i].metric,
            unit: &series[i].unit,
            ts_ms: ts,
            value,
        });
        let report = fc_monitor::backtest::run_history(rule, readings).map_err(|e| ServiceError::invalid("rule", e.to_string()))?;
        Ok(Backtest { report, series: series.len(), truncated })
    }

    /// Delete a rule; returns how many open alarms it cleared.
    pub async fn delete_rule(&self, tenant: &str, id: &str) -> Result<usize, ServiceError> {
        if !self.store.delete_rule(tenant, id)? {
            return Err(ServiceError::not_found(format!("rule {id}")));
        }
        let old = self.runners(tenant).and_then(|r| r.lock().expect("runners lock").remove(id));
        self.close_left_open(tenant, old, "the rule was deleted").await
    }

    async fn close_left_open(&self, tenant: &str, old: Option<RuleRunner>, why: &str) -> Result<usize, ServiceError> {
        let Some(old) = old else { return Ok(0) };
        let now = fc_core::time::now_ms();
        let transitions: Vec<Transition> = old
            .open_alarms()
            .into_iter()
            .map(|(machine, metric, raised_at, severity, _)| Transition {
                kind: TransitionKind::Cleared,
                rule_id: old.rule().id.clone(),
                rule_version: old.rule().version,
                machine,
                metric,
                raised_at_ms: raised_at,
                at_ms: now,
                severity,
                reason: why.to_owned(),
            })
            .collect();
        self.record(tenant, &transitions).await?;
        Ok(transitions.len())
    }

    /// A rule must read metrics the tenant has: a typo would otherwise watch nothing.
    async fn check_metrics(&self, tenant: &str, rule: &Rule) -> Result<(), ServiceError> {
        let Some(q) = &self.series else { return Ok(()) };
        let series = q.list_series(tenant, None).await?;
        for m in rule.metrics() {
            let known = series.iter().any(|s| rule.watches_machine(&s.machine) && fc_monitor::rule::glob(m, &s.metric));
            if !known {
                let mut names: Vec<&str> = series.iter().map(|s| s.metric.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                names.truncate(20);
                let listed = if names.is_empty() { "none yet".to_owned() } else { names.join(", ") };
                return Err(ServiceError::invalid(
                    "rule",
                    format!(
                        "no series of {} is named {m:?} (metrics this tenant has: {listed})",
                        if rule.machine.is_empty() { "any machine".to_owned() } else { format!("machines {:?}", rule.machine) }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A tenant's alarms.
    pub fn alarms(&self, tenant: &str, filter: &AlarmFilter) -> Result<Vec<AlarmRecord>, ServiceError> {
        self.store.alarms(tenant, filter)
    }

    /// One alarm of the tenant.
    pub fn alarm(&self, tenant: &str, id: &str) -> Result<AlarmRecord, ServiceError> {
        self.store.alarm(tenant, id)?.ok_or_else(|| ServiceError::not_found(format!("alarm {id}")))
    }

    fn with_runner<T>(&self, tenant: &str, rule: &str, f: impl FnOnce(&mut RuleRunner) -> T) -> Option<T> {
        self.runners(tenant).and_then(|r| r.lock().expect("runners lock").get_mut(rule).map(f))
    }

    /// An operator acknowledges an alarm (it stops escalating).
    pub async fn acknowledge(&self, tenant: &str, id: &str, user: &str, comment: &str) -> Result<AlarmRecord, ServiceError> {
        check_user(user)?;
        check_note(comment, false)?;
        let now = fc_core::time::now_ms();
        let alarm = self.store.update(tenant, id, |a| {
            if a.acknowledged.is_none() {
                a.acknowledged = Some((user.to_owned(), now));
                if a.state == AlarmState::Raised {
                    a.state = AlarmState::Acknowledged;
                }
                operator_step(a, "acknowledged", user, comment, now);
            }
            Ok(())
        })?;
        self.with_runner(tenant, &alarm.rule_id, |r| r.acknowledge(&alarm.machine, alarm.metric.as_deref()));
        self.announce(tenant, &[("acknowledged".into(), alarm.clone())]).await?;
        Ok(alarm)
    }

    /// An operator clears an open alarm.
    pub async fn clear(&self, tenant: &str, id: &str, user: &str, comment: &str) -> Result<AlarmRecord, ServiceError> {
        check_user(user)?;
        check_note(comment, false)?;
        let alarm = self.alarm(tenant, id)?;
        if !alarm.is_open() {
            return Err(ServiceError::new(ErrorCode::FailedPrecondition, format!("alarm {id} is already cleared")));
        }
        let now = fc_core::time::now_ms();
        self.with_runner(tenant, &alarm.rule_id, |r| r.drop_open(&alarm.machine, alarm.metric.as_deref(), alarm.raised_at_ms));
        let alarm = self.store.update(tenant, id, |a| {
            a.state = AlarmState::Cleared;
            a.cleared_at_ms = Some(now);
            operator_step(a, "cleared", user, comment, now);
            Ok(())
        })?;
        self.announce(tenant, &[("cleared".into(), alarm.clone())]).await?;
        Ok(alarm)
    }

    /// An operator adds a note.
    pub async fn comment(&self, tenant: &str, id: &str, user: &str, text: &str) -> Result<AlarmRecord, ServiceError> {
        check_user(user)?;
        check_note(text, true)?;
        let now = fc_core::time::now_ms();
        let alarm = self.store.update(tenant, id, |a| {
            operator_step(a, "commented", user, text, now);
            Ok(())
        })?;
        self.announce(tenant, &[("commented".into(), alarm.clone())]).await?;
        Ok(alarm)
    }

    /// An operator assigns the alarm (empty: to nobody).
    pub async fn assign(&self, tenant: &str, id: &str, user: &str, assignee: &str) -> Result<AlarmRecord, ServiceError> {
        check_user(user)?;
        if assignee.chars().count() > 128 || assignee.chars().any(char::is_control) {
            return Err(ServiceError::invalid("assignee", "at most 128 printable characters"));
        }
        let now = fc_core::time::now_ms();
        let alarm = self.store.update(tenant, id, |a| {
            a.assignee = assignee.to_owned();
            a.history.push(Step {
                kind: "assigned".into(),
                at_ms: now,
                severity: a.severity,
                by: user.to_owned(),
                text: assignee.to_owned(),
            });
            Ok(())
        })?;
        self.announce(tenant, &[("assigned".into(), alarm.clone())]).await?;
        Ok(alarm)
    }
}

/// An operator's step in an alarm's history, and their words (if any) as a note.
fn operator_step(a: &mut AlarmRecord, kind: &str, user: &str, text: &str, now: i64) {
    a.history.push(Step { kind: kind.into(), at_ms: now, severity: a.severity, by: user.to_owned(), text: text.to_owned() });
    if !text.is_empty() {
        a.notes.push(Note { author: user.to_owned(), at_ms: now, text: text.to_owned() });
    }
}

fn check_user(user: &str) -> Result<(), ServiceError> {
    if user.is_empty() || user.chars().count() > 128 || user.chars().any(char::is_control) {
        return Err(ServiceError::invalid("user", "1 to 128 printable characters naming the operator"));
    }
    Ok(())
}

fn check_note(text: &str, required: bool) -> Result<(), ServiceError> {
    if required && text.trim().is_empty() {
        return Err(ServiceError::invalid("comment", "a note needs some text"));
    }
    if text.chars().count() > MAX_NOTE_CHARS {
        return Err(ServiceError::invalid("comment", format!("at most {MAX_NOTE_CHARS} characters")));
    }
    Ok(())
}

/// Parse a severity filter ("" is none).
pub fn parse_min_severity(s: &str) -> Result<Option<Severity>, ServiceError> {
    if s.is_empty() {
        return Ok(None);
    }
    Severity::parse(s).map(Some).ok_or_else(|| ServiceError::invalid("min_severity", "one of info, warning, major, critical"))
}

/// A subscription's machine globs: at most 50 of 1 to 128 bytes.
fn check_machines(machines: &[String]) -> Result<(), ServiceError> {
    if machines.len() > 50 || machines.iter().any(|m| m.is_empty() || m.len() > 128) {
        return Err(ServiceError::invalid("machines", "at most 50 globs of 1 to 128 bytes"));
    }
    Ok(())
}
