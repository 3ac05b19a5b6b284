//! The monitor's own file (`<data_dir>/monitor.redb`): rules with every saved version,
//! alarms with their notes and history, the rule runners' checkpoints, webhook
//! endpoints and their deliveries (the dead-letter list among them).
//!
//! Invariant: an alarm's id is derived from (tenant, rule, machine, metric, raise time),
//! and a transition already in an alarm's history is not added twice, so applying the
//! same transitions again (a replay after a crash) changes nothing.

use fc_core::ServiceError;
use fc_monitor::{Rule, Severity, Transition, TransitionKind};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// (tenant, rule id) -> the current version, JSON.
const RULES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("rules");
/// (tenant, rule id, version) -> a saved version, JSON.
const RULE_VERSIONS: TableDefinition<(&str, &str, u32), &[u8]> = TableDefinition::new("rule_versions");
/// (tenant, alarm id) -> alarm, JSON.
const ALARMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("alarms");
/// (tenant, rule id) -> the runner's checkpoint.
const CHECKPOINTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("checkpoints");

/// A saved rule version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedRule {
    /// The rule (its `version` set by the monitor).
    pub rule: Rule,
    /// When saved.
    pub saved_at_ms: i64,
    /// Who saved it.
    pub saved_by: String,
}

/// Where an alarm is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    /// Open, nobody acknowledged it.
    Raised,
    /// Open, someone acknowledged it.
    Acknowledged,
    /// Over.
    Cleared,
}

impl AlarmState {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Raised => "raised",
            AlarmState::Acknowledged => "acknowledged",
            AlarmState::Cleared => "cleared",
        }
    }
}

/// A note on an alarm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// Who.
    pub author: String,
    /// When.
    pub at_ms: i64,
    /// What.
    pub text: String,
}

/// One step of an alarm's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// raised, escalated, acknowledged, assigned, commented, cleared.
    pub kind: String,
    /// When.
    pub at_ms: i64,
    /// Severity after it.
    pub severity: Severity,
    /// The operator; empty for the monitor.
    pub by: String,
    /// Details.
    pub text: String,
}

/// An alarm as stored and answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlarmRecord {
    /// Stable id.
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// Rule.
    pub rule_id: String,
    /// The rule version that raised it.
    pub rule_version: u32,
    /// Machine.
    pub machine: String,
    /// Metric (rules that run per series).
    pub metric: Option<String>,
    /// Current severity.
    pub severity: Severity,
    /// Where it is in its life.
    pub state: AlarmState,
    /// Raised at.
    pub raised_at_ms: i64,
    /// Cleared at.
    pub cleared_at_ms: Option<i64>,
    /// Why.
    pub reason: String,
    /// Acknowledged by and when.
    pub acknowledged: Option<(String, i64)>,
    /// Assigned to.
    pub assignee: String,
    /// Notes.
    pub notes: Vec<Note>,
    /// Every transition.
    pub history: Vec<Step>,
}

impl AlarmRecord {
    /// Whether it is still open.
    pub fn is_open(&self) -> bool {
        self.state != AlarmState::Cleared
    }
}

/// The id of the alarm `tenant`'s rule raised on (machine, metric) at `raised_at_ms`.
pub fn alarm_id(tenant: &str, rule: &str, machine: &str, metric: Option<&str>, raised_at_ms: i64) -> String {
    let mut h = sha2::Sha256::new();
    for part in [tenant, rule, machine, metric.unwrap_or("")] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(raised_at_ms.to_be_bytes());
    format!("al_{}", &hex::encode(h.finalize())[..20])
}

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct AlarmFilter {
    /// Only this machine.
    pub machine: Option<String>,
    /// Only this rule.
    pub rule_id: Option<String>,
    /// At least this severity.
    pub min_severity: Option<Severity>,
    /// Only open alarms.
    pub open_only: bool,
    /// Raised at or after.
    pub from_ms: Option<i64>,
    /// Raised before.
    pub to_ms: Option<i64>,
    /// Most alarms.
    pub limit: usize,
}

/// The monitor's file.
pub struct Store {
    db: fc_core::redbfile::RedbFile,
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal(format!("monitor store: {e}"))
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("stored types serialise")
}

impl Store {
    /// Every row of `tenant` in `table`, decoded, in key order.
    fn tenant_rows<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<(&str, &str), &[u8]>,
        tenant: &str,
    ) -> Result<Vec<T>, ServiceError> {
        let read = self.db.db().map_err(internal)?.begin_read().map_err(internal)?;
        let t = read.open_table(table).map_err(internal)?;
        let mut out = Vec::new();
        for row in t.range((tenant, "")..).map_err(internal)? {
            let (k, v) = row.map_err(internal)?;
            if k.value().0 != tenant {
                break;
            }
            out.push(serde_json::from_slice(v.value()).map_err(internal)?);
        }
        Ok(out)
    }

    /// Open (or create) the file.
    pub fn open(path: &std::path::Path) -> Result<Self, ServiceError> {
        let db = fc_core::redbfile::RedbFile::open(path, 64 << 20).map_err(internal)?;
        let txn = db.begin_write().map_err(internal)?;
        {
            txn.open_table(RULES).map_err(internal)?;
            txn.open_table(RULE_VERSIONS).map_err(internal)?;
            txn.open_table(ALARMS).map_err(internal)?;
            txn.open_table(CHECKPOINTS).map_err(internal)?;
            txn.open_table(WEBHOOKS).map_err(internal)?;
            txn.open_table(DELIVERIES).map_err(internal)?;
            txn.open_table(EMAIL_SUBSCRIPTIONS).map_err(internal)?;
            txn.open_table(OEE_SETUPS).map_err(internal)?;
            txn.open_table(DOWNTIME_REASONS).map_err(internal)?;
        }
        txn.commit().map_err(internal)?;
        Ok(Self { db })
    }

    /// Every tenant's current rules.
    pub fn all_rules(&self) -> Result<Vec<(String, SavedRule)>, ServiceError> {
        let read = self.db.db().map_err(internal)?.begin_read().map_err(internal)?;
        let t = read.open_table(RULES).map_err(internal)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(internal)? {
            let (k, v) = row.map_err(internal)?;
            out.push((k.value().0.to_owned(), serde_json::from_slice(v.value()).map_err(internal)?));
        }
        Ok(out)
    }

    /// A tenant's current rules, by id.
    pub fn rules(&self, tenant: &str) -> Result<Vec<SavedRule>, ServiceError> {
        self.tenant_rows(RULES, tenant)
    }

    /// One current rule.
    pub fn rule(&self, tenant: &str, id: &str) -> Result<Option<SavedRule>, ServiceError> {
        let read = self.db.db().map_err(internal)?.begin_read().map_err(internal)?;
        let t = read.open_table(RULES).map_err(internal)?;
        match t.get((tenant, id)).map_err(internal)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(internal)?)),
            None => Ok(None),
        }
    }

    /// Save a rule as its next version.
    pub fn save_rule(&self, tenant: &str, saved: &SavedRule) -> Result<(), ServiceError> {
        let txn = self.db.begin_write().map_err(internal)?;
        {
            let bytes = json(saved);
            txn.open_table(RULES).map_err(internal)?.insert((tenant, saved.rule.id.as_str()), bytes.as_slice()).map_err(internal)?;
            txn.open_table(RULE_VERSIONS)
                .map_err(internal)?
                .insert((tenant, saved.rule.id.as_str(), saved.rule.version), bytes.as_slice())
                .map_err(internal)?;
            txn.open_table(CHECKPOINTS).map_err(internal)?.remove((tenant, saved.rule.id.as_str())).map_err(internal)?;
        }
        txn.commit().map_err(internal)
    }

    /// Delete a rule (its versions stay, for the alarms that name them).
    pub fn delete_rule(&self, tenant: &str, id: &str) -> Result<bool, ServiceError> {
        let txn = self.db.begin_write().map_err(internal)?;
        let existed = {
            let existed = txn.open_table(RULES).map_err(internal)?.remove((tenant, id)).map_err(internal)?.is_some();
            txn.open_table(CHECKPOINTS).map_err(internal)?.remove((tenant, id)).map_err(internal)?;
            existed
        };
        txn.commit().map_err(internal)?;
        Ok(existed)
    }

    /// The newest version number a rule ever had (0: never existed).
    pub fn last_version(&self, tenant: &str, id: &str) -> Result<u32, ServiceError> {
        let read = self.db.db().map_err(internal)?.begin_read().map_err(internal)?;
        let t = read.open_table(RULE_VERSIONS).map_err(internal)?;
        let last = t.range((tenant, id, 0)..=(tenant, id, u32::MAX)).map_err(internal)?.next_back().transpose().map_err(internal)?;
        Ok(last.map_or(0, |(k, _)| k.value().2))
    }

    /// Save runners' checkpoints in one commit.
    pub fn save_checkpoints(&self, items: &[(String, String, Vec<u8>)]) -> Result<(), ServiceError> {
        let txn = self.db.begin_write().map_err(internal)?;
        {
            let mut t = txn.open_table(CHECKPOINTS).map_err(internal)?;
            for (tenant, rule, bytes) in items {
                t.insert((tenant.as_str(), rule.as_str()), bytes.as_slice()).map_err(internal)?;
            }
        }
        txn.commit().map_err(internal)
    }

    /// A runner's checkpoint.
    pub fn checkpoint(&self, tenant: &str, rule: &str) -> Result<Option<Vec<u8>>, ServiceError> {
        let read = self.db.db().map_err(internal)?.begin_read().map_err(internal)?;
        let t = read.open_table(CHECKPOINTS).map_err(internal)?;
        Ok(t.get((tenant, rule)).map_err(internal)?.map(|v| v.value().to_vec()))
    }

    /// Apply the engine's transitions of one tenant in one commit; returns the alarms
    /// that changed (each once, as it ends up), to announce.
    pub fn apply(&self, tenant: &str, transitions: &[Transition]) -> Result<Vec<(String, AlarmRecord)>, ServiceError> {
        let txn = self.db.begin_write().map_err(internal)?;
        let mut changed: Vec<(String, AlarmRecord)> = Vec::new();
        {
            let mut t = txn.open_table(ALARMS).map_err(internal)?;
            for tr in transitions {
                if tr.kind == TransitionKind::Suppressed {
                    continue;
                }
                let id = alarm_id(tenant, &tr.rule_id, &tr.machine, tr.metric.as_deref(), tr.raised_at_ms);
                let existing = match changed.iter().position(|(_, a)| a.id == id) {
                    Some(i) => Some(changed.remove(i).1),
                    None => t
                        .get((tenant, id.as_str()))
                        .map_err(internal)?
                        .map(|v| serde_json::from_slice(v.value()))
                        .transpose()
                        .map_err(internal)?,
                };
                let step = Step {
                    kind: tr.kind.as_str().into(),
                    at_ms: tr.at_ms,
                    severity: tr.severity,
                    by: String::new(),
                    text: tr.reason.clone(),
                };
                let mut alarm = match existing {
                    Some(a) if a.history.contains(&step) => {
                        changed.push((tr.kind.as_str().into(), a));
                        continue; // a replay: already applied
                    }
                    Some(a) => a,
                    None if tr.kind == TransitionKind::Raised => AlarmRecord {
                        id: id.clone(),
                        tenant: tenant.to_owned(),
                        rule_id: tr.rule_id.clone(),
                        rule_version: tr.rule_version,
                        machine: tr.machine.clone(),
                        metric: tr.metric.clone(),
                        severity: tr.severity,
                        state: AlarmState::Raised,
                        raised_at_ms: tr.raised_at_ms,
                        cleared_at_ms: None,
                        reason: tr.reason.clone(),
                        acknowledged: None,
                        assignee: String::new(),
                        notes: Vec::new(),
                        history: Vec::new(),
                    },
                    None => continue, // an escalation or clear of an alarm this store never had
                };
                match tr.kind {
                    TransitionKind::Escalated => alarm.severity = tr.severity,
                    TransitionKind::Cleared => {
                        alarm.state = AlarmState::Cleared;
                        alarm.cleared_at_ms = Some(tr.at_ms);
                    }
                    TransitionKind::Raised | TransitionKind::Suppressed => {}
                }
                alarm.history.push(step);
                t.insert((tenant, id.as_str()), json(&alarm).as_slice()).map_err(internal)?;
                changed.push((tr.kind.as_str().into(), alarm));
            }
        }
        txn.commit().map_err(internal)?;
        Ok(changed)
    }

    /// One alarm.
    pub fn alarm(&self, tenant: &str, id: &str) -> Result<Option<AlarmRecord>, ServiceError> {
        let read = self.db.db().map_err(internal)?.begin_read().map_err(internal)?;
        let t = read.open_table(ALARMS).map_err(internal)?;
        match t.get((tenant, id)).map_err(internal)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(internal)?)),
            None => Ok(None),
        }
    }

    /// Change one alarm with `f` (an operator's action) and store it.
    pub fn update(
        &self,
        tenant: &str,
        id: &str,
        f: impl FnOnce(&mut AlarmRecord) -> Result<(), ServiceError>,
    ) -> Result<AlarmRecord, ServiceError> {
        let txn = self.db.begin_write().map_err(internal)?;
        let alarm = {
            let mut t = txn.open_table(ALARMS).map_err(internal)?;
            let mut alarm: AlarmRecord = match t.get((tenant, id)).map_err(internal)? {
                Some(v) => serde_json::from_slice(v.value()).map_err(internal)?,
                None => return Err(ServiceError::not_found(format!("alarm {id}"))),
            };
            f(&mut alarm)?;
            t.insert((tenant, id), json(&alarm).as_slice()).map_err(internal)?;
            alarm
        };
        txn.commit().map_err(internal)?;
        Ok(alarm)
    }

    /// A tenant's alarms, newest first, filtered.
    pub fn alarms(&self, tenant: &str, f: &AlarmFilter) -> Result<Vec<AlarmRecord>, ServiceError> {
        let mut out = Vec::new();
        for a in self.tenant_rows::<AlarmRecord>(ALARMS, tenant)? {
            let keep = f.machine.as_ref().is_none_or(|m| *m == a.machine)
                && f.rule_id.as_ref().is_none_or(|r| *r == a.rule_id)
                && f.min_severity.is_none_or(|s| a.severity >= s)
                && (!f.open_only || a.is_open())
                && f.from_ms.is_none_or(|t| a.raised_at_ms >= t)
                && f.to_ms.is_none_or(|t| a.raised_at_ms < t);
            if keep {
                out.push(a);
            }
        }
        out.sort_by(|a, b| b.raised_at_ms.cmp(&a.raised_at_ms).then_with(|| a.id.cmp(&b.id)));
        out.truncate(f.limit.max(1));
        Ok(out)
    }

    /// Every open alarm of every tenant (to reconcile the runners at start).
    pub fn open_alarms(&self) -> Result<Vec<AlarmRecord>, ServiceError> {
        let read = self.db.db().map_err(internal)?.begin_read().map_err(internal)?;
        let t = read.open_table(ALARMS).map_err(internal)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(internal)? {
            let (_, v) = row.map_err(internal)?;
            let a: AlarmRecord = serde_json::from_slice(v.value()).map_err(internal)?;
            if a.is_open() {
                out.push(a);
            }
        }
        Ok(out)
    }
}

/// (tenant, endpoint id) -> webhook, JSON.
const WEBHOOKS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("webhooks");
/// (tenant, delivery id) -> delivery, JSON.
const DELIVERIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("deliveries");
/// (tenant, user id) -> e-mail subscription, JSON.
const EMAIL_SUBSCRIPTIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("email_subscriptions");

/// A user's wish to get alarms by e-mail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmailSubscriptionRecord {
    /// The user (the portal's id).
    pub user_id: String,
    /// Which alarms, to which address (`Channel::Email`).
    pub subscription: fc_monitor::notify::Subscription,
    /// When created.
    pub created_at_ms: i64,
}

impl EmailSubscriptionRecord {
    /// The address.
    pub fn address(&self) -> &str {
        match &self.subscription.channel {
            fc_monitor::notify::Channel::Email { address } => address,
            fc_monitor::notify::Channel::Webhook { .. } => "",
        }
    }
}

/// A tenant's webhook endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookRecord {
    /// Endpoint id.
    pub id: String,
    /// Where to.
    pub url: String,
    /// Signing secret.
    pub secret: String,
    /// Which alarms.
    pub subscription: fc_monitor::notify::Subscription,
    /// When created.
    pub created_at_ms: i64,
}

/// Where a delivery is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// To be tried (again) at `next_at_ms`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed: the dead-letter list.
    Dead,
}

impl DeliveryState {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }
}

/// One notification to one endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Stable id (from the alarm's step and the endpoint).
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// Endpoint (webhook deliveries).
    pub webhook_id: String,
    /// Recipient (e-mail deliveries; empty for webhooks).
    #[serde(default)]
    pub email: String,
    /// Alarm.
    pub alarm_id: String,
    /// raised, escalated, cleared.
    pub kind: String,
    /// The JSON body (the alarm event).
    pub body: String,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: String,
    /// Queued at.
    pub created_at_ms: i64,
    /// Next attempt at.
    pub next_at_ms: i64,
    /// Delivered at.
    pub delivered_at_ms: Option<i64>,
}

impl Store {
    /// Save (or replace) an endpoint.
    pub fn put_webhook(&self, tenant: &str, w: &WebhookRecord) -> Result<(), ServiceError> {
        let txn = self.db.begin_write().map_err(internal)?;
        txn.open_table(WEBHOOKS).map_err(internal)?.insert((tenant, w.id.as_str()), json(w).as_slice()).map_err(internal)?;
        txn.commit().map_err(internal)
    }

    /// A tenant's endpoints.
    pub fn webhooks(&self, tenant: &str) -> Result<Vec<WebhookRecord>, ServiceError> {
        self.tenant_rows(WEBHOOKS, tenant)
    }

    /// Remove an endpoint and its pending deliveries; false if there was none.
    pub fn delete_webhook(&self, tenant: &str, id: &str) -> Result<bool, ServiceError> {
        let txn = self.db.begin_write().map_err(internal)?;
        let existed = {
            let existed = txn.open_table(WEBHOOKS).map_err(internal)?.remove((tenant, id)).map_err(internal)?.is_some();
            drop_pending(&mut txn.open_table(DELIVERIES).map_err(internal)?, tenant, |d| d.email.is_empty() && d.webhook_id == id)?;
            existed
        };
        txn.commit().map_err(internal)?;
        Ok(existed)
    }

    /// Save (or replace) a user's e-mail subscription.
    pub fn put_email_subscription(&self, tenant: &str, s: &EmailSubscriptionRecord) -> Result<(), ServiceError> {
        let txn = self.db.begin_write().map_err(internal)?;
        txn.open_table(EMAIL_SUBSCRIPTIONS)
            .map_err(internal)?
            .insert((tenant, s.user_id.as_str()), json(s).as_slice())
            .map_err(internal)?;
        txn.commit().map_err(internal)
    }

    /// A tenant's e-mail subscriptions, by user id.
    pub fn email_subscriptions(&self, tenant: &str) -> Result<Vec<EmailSubscriptionRecord>, ServiceError> {
        self.tenant_rows(EMAIL_SUBSCRIPTIONS, tenant)
    }

    /// Remove a user's subscription and the e-mails still queued for it.
    pub fn delete_email_subscription(&self, tenant: &str, user_id: &str) -> Result<(), ServiceError> {
        let txn = self.db.begin_write().map_err(internal)?;
        {
            let mut subs = txn.open_table(EMAIL_SUBSCRIPTIONS).map_err(internal)?;
            let address = match subs.remove((tenant, user_id)).map_err(internal)? {
                Some(v) => serde_json::from_slice::<EmailSubscriptionRecord>(v.value()).map_err(internal)?.address().to_owned(),
                None => String::new(),
            };
            if !address.is_empty() {
                drop_pending(&mut txn.open_table(DELIVERIES).map_err(internal)?, tenant, |d| d.email == address)?;
            }
        }
        txn.commit().map_err(internal)
    }

    /// Queue deliveries; one already queued (a replay) is left as it is.
    pub fn enqueue(&self, items: &[DeliveryRecord]) -> Result<(), ServiceError> {
        if items.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(internal)?;
        {
            let mut t = txn.open_table(DELIVERIES).map_err(internal)?;
            for d in items {
                if t.get((d.tenant.as_str(), d.id.as_str())).map_err(internal)?.is_none() {
                    t.insert((d.tenant.as_str(), d.id.as_str()), json(d).as_slice()).map_err(internal)?;
                }
            }
        }
        txn.commit().map_err(internal)
    }

    /// Pending deliveries due at `now_ms`, oldest first, at most `limit`.
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<DeliveryRecord>, ServiceError> {
        let read = self.db.db().map_err(internal)?.begin_read().map_err(internal)?;
        let t = read.open_table(DELIVERIES).map_err(internal)?;
        let mut out: Vec<DeliveryRecord> = Vec::new();
        for row in t.iter().map_err(internal)? {
            let (_, v) = row.map_err(internal)?;
            let d: DeliveryRecord = serde_json::from_slice(v.value()).map_err(internal)?;
            if d.state == DeliveryState::Pending && d.next_at_ms <= now_ms {
                out.push(d);
            }
        }
        out.sort_by_key(|d| d.next_at_ms);
        out.truncate(limit);
        Ok(out)
    }

    /// Save a delivery's new state.
    pub fn update_delivery(&self, d: &DeliveryRecord) -> Result<(), ServiceError> {
        let txn = self.db.begin_write().map_err(internal)?;
        txn.open_table(DELIVERIES).map_err(internal)?.insert((d.tenant.as_str(), d.id.as_str()), json(d).as_slice()).map_err(internal)?;
        txn.commit().map_err(internal)
    }

    /// A tenant's deliveries, newest first, in `state` if given.
    pub fn deliveries(&self, tenant: &str, state: Option<DeliveryState>, limit: usize) -> Result<Vec<DeliveryRecord>, ServiceError> {
        let mut out: Vec<DeliveryRecord> = self.tenant_rows::<DeliveryRecord>(DELIVERIES, tenant)?;
        out.retain(|d| state.is_none_or(|s| s == d.state));
        out.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then_with(|| a.id.cmp(&b.id)));
        out.truncate(limit.max(1));
        Ok(out)
    }
}

/// Remove a tenant's pending deliveries that `which` picks.
fn drop_pending(
    t: &mut redb::Table<(&str, &str), &[u8]>,
    tenant: &str,
    which: impl Fn(&DeliveryRecord) -> bool,
) -> Result<(), ServiceError> {
    let mut drop_ids = Vec::new();
    for row in t.range((tenant, "")..).map_err(internal)? {
        let (k, v) = row.map_err(internal)?;
        if k.value().0 != tenant {
            break;
        }
        let rec: DeliveryRecord = serde_json::from_slice(v.value()).map_err(internal)?;
        if rec.state == DeliveryState::Pending && which(&rec) {
            drop_ids.push(rec.id);
        }
    }
    for i in drop_ids {
        t.remove((tenant, i.as_str())).map_err(internal)?;
    }
    Ok(())
}

/// (tenant, "setup") -> the tenant's OEE setup, JSON.
const OEE_SETUPS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("oee_setups");
/// (tenant, "machine/at_ms as 16 hex digits") -> a downtime reason, JSON.
const DOWNTIME_REASONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("downtime_reasons");

/// A reason an operator gave for a down period of a machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReasonRecord {
    /// The machine.
    pub machine: String,
    /// An instant within the down period (it explains the whole period).
    pub at_ms: i64,
    /// The reason code (from the tenant's tree).
    pub reason: String,
    /// Who gave it.
    pub by: String,
    /// When.
    pub saved_at_ms: i64,
}

impl Store {
    /// Save the tenant's OEE setup.
    pub fn put_oee_setup(&self, tenant: &str, setup: &fc_monitor::oee::OeeSetup) -> Result<(), ServiceError> {
        let txn = self.db.begin_write().map_err(internal)?;
        txn.open_table(OEE_SETUPS).map_err(internal)?.insert((tenant, "setup"), json(setup).as_slice()).map_err(internal)?;
        txn.commit().map_err(internal)
    }

    /// The tenant's OEE setup, if it has one.
    pub fn oee_setup(&self, tenant: &str) -> Result<Option<fc_monitor::oee::OeeSetup>, ServiceError> {
        Ok(self.tenant_rows(OEE_SETUPS, tenant)?.into_iter().next())
    }

    /// Record a downtime reason (a later one at the same instant replaces it).
    pub fn put_reason(&self, tenant: &str, r: &ReasonRecord) -> Result<(), ServiceError> {
        let key = format!("{}/{:016x}", r.machine, r.at_ms);
        let txn = self.db.begin_write().map_err(internal)?;
        txn.open_table(DOWNTIME_REASONS).map_err(internal)?.insert((tenant, key.as_str()), json(r).as_slice()).map_err(internal)?;
        txn.commit().map_err(internal)
    }

    /// The reasons given for `machine`'s down periods.
    pub fn reasons(&self, tenant: &str, machine: &str) -> Result<Vec<ReasonRecord>, ServiceError> {
        let read = self.db.db().map_err(internal)?.begin_read().map_err(internal)?;
        let t = read.open_table(DOWNTIME_REASONS).map_err(internal)?;
        let prefix = format!("{machine}/");
        let mut out = Vec::new();
        for row in t.range((tenant, prefix.as_str())..).map_err(internal)? {
            let (k, v) = row.map_err(internal)?;
            let (t, key) = k.value();
            if t != tenant || !key.starts_with(&prefix) {
                break;
            }
            out.push(serde_json::from_slice(v.value()).map_err(internal)?);
        }
        Ok(out)
    }
}
