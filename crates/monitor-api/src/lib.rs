//! [`MonitorClient`]: the monitor service's internal gRPC API (`factorychain.v1.Monitor`)
//! for the services that act for a tenant (the portal), and the views they answer with.
//! Every call names the tenant (`x-fc-tenant`) and carries this service's credential;
//! the rules (validation, versions, the alarm lifecycle) are the monitor's.

use fc_core::ServiceError;
use fc_monitor::Rule;
use fc_proto::v1 as pb;
use fc_proto::v1::monitor_client::MonitorClient as Raw;
use fc_proto::v1::monitor_notifications_client::MonitorNotificationsClient as RawNotify;
use fc_proto::v1::monitor_oee_client::MonitorOeeClient as RawOee;
use fc_rpc::service_auth::{Credential, TENANT_HEADER};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use utoipa::{IntoParams, ToSchema};

type Res<T> = Result<T, ServiceError>;

/// A saved alarm rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuleView {
    /// The rule (id, name, machine, severity, condition, durations; see docs/monitor.md).
    #[schema(value_type = Object)]
    pub rule: serde_json::Value,
    /// Its version (every save makes a new one).
    pub version: u32,
    /// When this version was saved (Unix ms).
    pub saved_at_ms: i64,
    /// Who saved it.
    pub saved_by: String,
}

/// A note on an alarm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NoteView {
    /// Who wrote it.
    pub author: String,
    /// When (Unix ms).
    pub at_ms: i64,
    /// What.
    pub text: String,
}

/// One step of an alarm's life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StepView {
    /// raised, escalated, acknowledged, assigned, commented, cleared.
    pub kind: String,
    /// When (Unix ms).
    pub at_ms: i64,
    /// Severity after it.
    pub severity: String,
    /// The operator (empty: the monitor).
    pub by: String,
    /// Details.
    pub text: String,
}

/// An alarm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlarmView {
    /// Stable id.
    pub id: String,
    /// The rule that raised it.
    pub rule_id: String,
    /// The rule's version.
    pub rule_version: u32,
    /// Machine.
    pub machine: String,
    /// Metric (empty for rules over a whole machine).
    pub metric: String,
    /// info, warning, major or critical.
    pub severity: String,
    /// raised, acknowledged or cleared.
    pub state: String,
    /// When raised (Unix ms).
    pub raised_at_ms: i64,
    /// When cleared (Unix ms), if it is.
    pub cleared_at_ms: Option<i64>,
    /// Why, in words.
    pub reason: String,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When.
    pub acknowledged_at_ms: Option<i64>,
    /// Who it is assigned to (empty: nobody).
    pub assignee: String,
    /// Notes, oldest first.
    pub notes: Vec<NoteView>,
    /// Its life, oldest first.
    pub history: Vec<StepView>,
}

impl From<pb::Alarm> for AlarmView {
    fn from(a: pb::Alarm) -> Self {
        Self {
            id: a.id,
            rule_id: a.rule_id,
            rule_version: a.rule_version,
            machine: a.machine,
            metric: a.metric,
            severity: a.severity,
            state: a.state,
            raised_at_ms: a.raised_at_ms,
            cleared_at_ms: (a.cleared_at_ms != 0).then_some(a.cleared_at_ms),
            reason: a.reason,
            acknowledged_by: (!a.acknowledged_by.is_empty()).then_some(a.acknowledged_by),
            acknowledged_at_ms: (a.acknowledged_at_ms != 0).then_some(a.acknowledged_at_ms),
            assignee: a.assignee,
            notes: a.notes.into_iter().map(|n| NoteView { author: n.author, at_ms: n.at_ms, text: n.text }).collect(),
            history: a
                .history
                .into_iter()
                .map(|s| StepView { kind: s.kind, at_ms: s.at_ms, severity: s.severity, by: s.by, text: s.text })
                .collect(),
        }
    }
}

/// Which alarms to list.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub struct AlarmQuery {
    /// Only this machine.
    pub machine: Option<String>,
    /// Only this rule.
    pub rule_id: Option<String>,
    /// At least this severity (info, warning, major, critical).
    pub min_severity: Option<String>,
    /// Only alarms not cleared.
    pub open_only: Option<bool>,
    /// Raised at or after (Unix ms).
    pub from_ms: Option<i64>,
    /// Raised before (Unix ms).
    pub to_ms: Option<i64>,
    /// Most alarms (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// A webhook endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    /// Endpoint id.
    pub id: String,
    /// Where alarms are POSTed.
    pub url: String,
    /// The lowest severity sent.
    pub min_severity: String,
    /// Machine globs (empty: every machine).
    pub machines: Vec<String>,
    /// When created (Unix ms).
    pub created_at_ms: i64,
    /// The signing secret, only in the answer that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<pb::Webhook> for WebhookView {
    fn from(w: pb::Webhook) -> Self {
        Self {
            id: w.id,
            url: w.url,
            min_severity: w.min_severity,
            machines: w.machines,
            created_at_ms: w.created_at_ms,
            secret: (!w.secret.is_empty()).then_some(w.secret),
        }
    }
}

/// One notification to one endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    /// Delivery id.
    pub id: String,
    /// webhook or email.
    pub channel: String,
    /// The endpoint (webhook deliveries).
    pub webhook_id: String,
    /// The recipient (e-mail deliveries).
    pub email: String,
    /// The alarm.
    pub alarm_id: String,
    /// raised, escalated or cleared.
    pub kind: String,
    /// pending, delivered or dead.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: String,
    /// When queued (Unix ms).
    pub created_at_ms: i64,
}

impl From<pb::Delivery> for DeliveryView {
    fn from(d: pb::Delivery) -> Self {
        Self {
            id: d.id,
            channel: d.channel,
            webhook_id: d.webhook_id,
            email: d.email,
            alarm_id: d.alarm_id,
            kind: d.kind,
            state: d.state,
            attempts: d.attempts,
            last_error: d.last_error,
            created_at_ms: d.created_at_ms,
        }
    }
}

/// Times, quantities and ratios of one OEE row (ISO 22400-2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OeeFigures {
    /// Planned busy time, ms.
    pub planned_busy_ms: i64,
    /// Actual production time (running within planned busy time), ms.
    pub actual_production_ms: i64,
    /// Produced quantity.
    pub produced: f64,
    /// Good quantity.
    pub good: f64,
    /// Planned run time per item x produced quantity, ms.
    pub planned_run_ms: f64,
    /// Actual production time / planned busy time.
    pub availability: Option<f64>,
    /// Planned run time / actual production time.
    pub effectiveness: Option<f64>,
    /// Good / produced.
    pub quality: Option<f64>,
    /// The product of the three.
    pub oee: Option<f64>,
}

/// One machine in one shift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OeeRow {
    /// The machine.
    pub machine: String,
    /// Its line.
    pub line: String,
    /// The shift.
    pub shift: String,
    /// The local date it starts on.
    pub date: String,
    /// Start, Unix ms.
    pub start_ms: i64,
    /// End (or now, for a running shift), Unix ms.
    pub end_ms: i64,
    /// The figures.
    #[serde(flatten)]
    pub figures: OeeFigures,
}

/// A total over the report's shifts: a machine, a line, or everything (empty name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OeeTotal {
    /// The machine or line.
    pub name: String,
    /// The figures.
    #[serde(flatten)]
    pub figures: OeeFigures,
}

/// A period in one state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StateSpanView {
    /// The machine.
    pub machine: String,
    /// Start, Unix ms.
    pub start_ms: i64,
    /// End, Unix ms.
    pub end_ms: i64,
    /// running, idle, down, setup or planned_stop.
    pub state: String,
}

/// A down or setup period within planned busy time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DowntimeView {
    /// The machine.
    pub machine: String,
    /// Start, Unix ms.
    pub start_ms: i64,
    /// End, Unix ms.
    pub end_ms: i64,
    /// down or setup.
    pub state: String,
    /// The reason code; none: unexplained.
    pub reason: Option<String>,
}

/// Down time of one reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ParetoView {
    /// The reason code, or "unexplained".
    pub reason: String,
    /// Down time, ms.
    pub ms: i64,
    /// Periods.
    pub count: usize,
}

/// OEE over the shifts that start in a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OeeReportView {
    /// Window start, Unix ms.
    pub start_ms: i64,
    /// Window end, Unix ms.
    pub end_ms: i64,
    /// Per machine and shift.
    pub rows: Vec<OeeRow>,
    /// Per machine.
    pub machines: Vec<OeeTotal>,
    /// Per line.
    pub lines: Vec<OeeTotal>,
    /// Everything.
    pub total: Option<OeeTotal>,
    /// State timelines.
    pub timeline: Vec<StateSpanView>,
    /// Down periods.
    pub downtime: Vec<DowntimeView>,
    /// Down time by reason, longest first.
    pub pareto: Vec<ParetoView>,
    /// Not everything was read (more than 100 machines, or a series of more than a
    /// million readings): the figures are of what was.
    #[serde(default)]
    pub truncated: bool,
}

/// One alarm a backtest found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BacktestAlarmView {
    /// The machine.
    pub machine: String,
    /// The metric (rules that run per series).
    pub metric: Option<String>,
    /// Raised at, Unix ms.
    pub raised_at_ms: i64,
    /// Cleared at, Unix ms; none: still open at the end of the window.
    pub cleared_at_ms: Option<i64>,
    /// The highest severity it reached.
    pub severity: String,
    /// Why, in words.
    pub reason: String,
}

/// What a rule would have raised over stored history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BacktestView {
    /// Window start, Unix ms.
    pub start_ms: i64,
    /// Window end, Unix ms.
    pub end_ms: i64,
    /// Readings judged.
    pub readings: u64,
    /// Series read.
    pub series: u32,
    /// Not every reading of the window was read (too many series or readings).
    pub truncated: bool,
    /// In the order raised.
    pub alarms: Vec<BacktestAlarmView>,
}

/// A user's e-mail subscription to alarms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmailSubscriptionView {
    /// The user.
    pub user_id: String,
    /// Where alarms are sent.
    pub address: String,
    /// The lowest severity sent.
    pub min_severity: String,
    /// Machine globs (empty: every machine).
    pub machines: Vec<String>,
    /// When saved (Unix ms).
    pub created_at_ms: i64,
}

impl From<pb::EmailSubscription> for EmailSubscriptionView {
    fn from(s: pb::EmailSubscription) -> Self {
        Self { user_id: s.user_id, address: s.address, min_severity: s.min_severity, machines: s.machines, created_at_ms: s.created_at_ms }
    }
}

/// A webhook endpoint to save.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// http(s) URL; loopback, link-local and private addresses are refused unless the operator allows them.
    pub url: String,
    /// The signing secret, 16 to 256 characters; empty: one is made and shown once.
    #[serde(default)]
    pub secret: String,
    /// The lowest severity sent (info, warning, major, critical; empty: all).
    #[serde(default)]
    pub min_severity: String,
    /// Machine globs (empty: every machine).
    #[serde(default)]
    pub machines: Vec<String>,
}

/// A client of the monitor service, with this service's credential.
#[derive(Clone)]
pub struct MonitorClient {
    raw: Raw<InterceptedService<Channel, Credential>>,
    notify: RawNotify<InterceptedService<Channel, Credential>>,
    oee: RawOee<InterceptedService<Channel, Credential>>,
    url: String,
}

impl MonitorClient {
    /// A client of the monitor at `url` (connected on first use; while the monitor is
    /// down, calls answer "unavailable" naming `url`). `timeout` bounds each call.
    pub fn new(url: &str, credential: Credential, timeout: Duration) -> Res<Self> {
        let channel = Channel::from_shared(url.to_string())
            .map_err(|e| ServiceError::invalid("monitor url", e))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .connect_lazy();
        Ok(Self {
            raw: Raw::with_interceptor(channel.clone(), credential.clone()).max_decoding_message_size(16 << 20),
            notify: RawNotify::with_interceptor(channel.clone(), credential.clone()).max_decoding_message_size(16 << 20),
            oee: RawOee::with_interceptor(channel, credential).max_decoding_message_size(64 << 20),
            url: url.to_string(),
        })
    }

    /// The service's address.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn request<T>(&self, tenant: &str, msg: T) -> Res<tonic::Request<T>> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert(TENANT_HEADER, tenant.parse().map_err(|_| ServiceError::invalid("tenant", "not a valid id"))?);
        Ok(r)
    }

    fn error(&self, s: tonic::Status) -> ServiceError {
        ServiceError::from_status(&s, &format!("monitor service at {}", self.url))
    }

    fn rule_view(&self, r: pb::RuleInfo) -> Res<RuleView> {
        let rule =
            serde_json::from_str(&r.rule_json).map_err(|e| ServiceError::internal(format!("monitor service at {}: {e}", self.url)))?;
        Ok(RuleView { rule, version: r.version, saved_at_ms: r.saved_at_ms, saved_by: r.saved_by })
    }

    /// Save a rule as its next version.
    pub async fn put_rule(&self, tenant: &str, rule: &Rule, user: &str) -> Res<RuleView> {
        let rule_json = serde_json::to_string(rule).map_err(|e| ServiceError::invalid("rule", e))?;
        let r = self
            .raw
            .clone()
            .put_rule(self.request(tenant, pb::PutRuleRequest { rule_json, user: user.into() })?)
            .await
            .map_err(|s| self.error(s))?;
        self.rule_view(r.into_inner())
    }

    /// Run `rule` over the tenant's stored readings in `[start_ms, end_ms)` without saving it.
    pub async fn backtest(&self, tenant: &str, rule: &Rule, start_ms: i64, end_ms: i64) -> Res<BacktestView> {
        let rule_json = serde_json::to_string(rule).map_err(|e| ServiceError::invalid("rule", e))?;
        let req = pb::BacktestRuleRequest { rule_json, start_ms, end_ms };
        let r = self.raw.clone().backtest_rule(self.request(tenant, req)?).await.map_err(|s| self.error(s))?.into_inner();
        Ok(BacktestView {
            readings: r.readings,
            series: r.series,
            truncated: r.truncated,
            start_ms,
            end_ms,
            alarms: r
                .alarms
                .into_iter()
                .map(|a| BacktestAlarmView {
                    machine: a.machine,
                    metric: (!a.metric.is_empty()).then_some(a.metric),
                    raised_at_ms: a.raised_at_ms,
                    cleared_at_ms: (a.cleared_at_ms != 0).then_some(a.cleared_at_ms),
                    severity: a.severity,
                    reason: a.reason,
                })
                .collect(),
        })
    }

    /// The tenant's rules.
    pub async fn rules(&self, tenant: &str) -> Res<Vec<RuleView>> {
        let r = self.raw.clone().list_rules(self.request(tenant, pb::ListRulesRequest {})?).await.map_err(|s| self.error(s))?;
        r.into_inner().rules.into_iter().map(|r| self.rule_view(r)).collect()
    }

    /// Delete a rule; returns how many open alarms it cleared.
    pub async fn delete_rule(&self, tenant: &str, rule_id: &str, user: &str) -> Res<u32> {
        let req = pb::DeleteRuleRequest { rule_id: rule_id.into(), user: user.into() };
        let r = self.raw.clone().delete_rule(self.request(tenant, req)?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().cleared_alarms)
    }

    /// Alarms, newest first.
    pub async fn alarms(&self, tenant: &str, q: &AlarmQuery) -> Res<Vec<AlarmView>> {
        let req = pb::ListAlarmsRequest {
            machine: q.machine.clone().unwrap_or_default(),
            rule_id: q.rule_id.clone().unwrap_or_default(),
            min_severity: q.min_severity.clone().unwrap_or_default(),
            open_only: q.open_only.unwrap_or(false),
            from_ms: q.from_ms.unwrap_or(0),
            to_ms: q.to_ms.unwrap_or(0),
            limit: q.limit.unwrap_or(0),
        };
        let r = self.raw.clone().list_alarms(self.request(tenant, req)?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().alarms.into_iter().map(Into::into).collect())
    }

    /// One alarm.
    pub async fn alarm(&self, tenant: &str, id: &str) -> Res<AlarmView> {
        let r = self.raw.clone().get_alarm(self.request(tenant, pb::AlarmRef { alarm_id: id.into() })?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().into())
    }

    fn action(id: &str, user: &str, comment: &str) -> pb::AlarmActionRequest {
        pb::AlarmActionRequest { alarm_id: id.into(), user: user.into(), comment: comment.into() }
    }

    /// Acknowledge an alarm (it stops escalating).
    pub async fn acknowledge(&self, tenant: &str, id: &str, user: &str, comment: &str) -> Res<AlarmView> {
        let r =
            self.raw.clone().acknowledge_alarm(self.request(tenant, Self::action(id, user, comment))?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().into())
    }

    /// Clear an open alarm.
    pub async fn clear(&self, tenant: &str, id: &str, user: &str, comment: &str) -> Res<AlarmView> {
        let r = self.raw.clone().clear_alarm(self.request(tenant, Self::action(id, user, comment))?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().into())
    }

    /// Add a note.
    pub async fn comment(&self, tenant: &str, id: &str, user: &str, text: &str) -> Res<AlarmView> {
        let r = self.raw.clone().comment_alarm(self.request(tenant, Self::action(id, user, text))?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().into())
    }

    /// Assign the alarm (empty: to nobody).
    pub async fn assign(&self, tenant: &str, id: &str, user: &str, assignee: &str) -> Res<AlarmView> {
        let req = pb::AssignAlarmRequest { alarm_id: id.into(), user: user.into(), assignee: assignee.into() };
        let r = self.raw.clone().assign_alarm(self.request(tenant, req)?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().into())
    }

    /// Save a webhook endpoint.
    pub async fn put_webhook(&self, tenant: &str, id: &str, w: &WebhookInput) -> Res<WebhookView> {
        let req = pb::PutWebhookRequest {
            id: id.into(),
            url: w.url.clone(),
            secret: w.secret.clone(),
            min_severity: w.min_severity.clone(),
            machines: w.machines.clone(),
        };
        let r = self.notify.clone().put_webhook(self.request(tenant, req)?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().into())
    }

    /// The tenant's webhook endpoints.
    pub async fn webhooks(&self, tenant: &str) -> Res<Vec<WebhookView>> {
        let r = self.notify.clone().list_webhooks(self.request(tenant, pb::ListWebhooksRequest {})?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().webhooks.into_iter().map(Into::into).collect())
    }

    /// Remove a webhook endpoint.
    pub async fn delete_webhook(&self, tenant: &str, id: &str) -> Res<()> {
        self.notify
            .clone()
            .delete_webhook(self.request(tenant, pb::DeleteWebhookRequest { id: id.into() })?)
            .await
            .map_err(|s| self.error(s))?;
        Ok(())
    }

    /// Deliveries, newest first, in `state` (pending, delivered, dead; empty: all).
    pub async fn deliveries(&self, tenant: &str, state: &str, limit: u32) -> Res<Vec<DeliveryView>> {
        let req = pb::ListDeliveriesRequest { state: state.into(), limit };
        let r = self.notify.clone().list_deliveries(self.request(tenant, req)?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().deliveries.into_iter().map(Into::into).collect())
    }

    /// Save `user`'s e-mail subscription (FailedPrecondition: the platform sends no e-mail).
    pub async fn put_email_subscription(
        &self,
        tenant: &str,
        user_id: &str,
        address: &str,
        min_severity: &str,
        machines: &[String],
    ) -> Res<EmailSubscriptionView> {
        let req = pb::EmailSubscription {
            user_id: user_id.into(),
            address: address.into(),
            min_severity: min_severity.into(),
            machines: machines.to_vec(),
            created_at_ms: 0,
        };
        let r = self.notify.clone().put_email_subscription(self.request(tenant, req)?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().into())
    }

    /// The tenant's e-mail subscriptions (one user's if `user_id` is not empty).
    pub async fn email_subscriptions(&self, tenant: &str, user_id: &str) -> Res<Vec<EmailSubscriptionView>> {
        let req = pb::ListEmailSubscriptionsRequest { user_id: user_id.into() };
        let r = self.notify.clone().list_email_subscriptions(self.request(tenant, req)?).await.map_err(|s| self.error(s))?;
        Ok(r.into_inner().subscriptions.into_iter().map(Into::into).collect())
    }

    /// Remove a user's e-mail subscription (no error if there is none).
    pub async fn delete_email_subscription(&self, tenant: &str, user_id: &str) -> Res<()> {
        let req = pb::DeleteEmailSubscriptionRequest { user_id: user_id.into() };
        self.notify.clone().delete_email_subscription(self.request(tenant, req)?).await.map_err(|s| self.error(s))?;
        Ok(())
    }

    /// Save the tenant's OEE setup (JSON, `fc_monitor::oee::OeeSetup`); returns it as saved.
    pub async fn put_oee_setup(&self, tenant: &str, setup: &serde_json::Value) -> Res<serde_json::Value> {
        let req = pb::OeeSetupRequest { setup_json: setup.to_string() };
        let r = self.oee.clone().put_oee_setup(self.request(tenant, req)?).await.map_err(|s| self.error(s))?.into_inner();
        serde_json::from_str(&r.setup_json).map_err(ServiceError::internal)
    }

    /// The tenant's OEE setup, if any.
    pub async fn oee_setup(&self, tenant: &str) -> Res<Option<serde_json::Value>> {
        let r =
            self.oee.clone().get_oee_setup(self.request(tenant, pb::GetOeeSetupRequest {})?).await.map_err(|s| self.error(s))?.into_inner();
        if r.setup_json.is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&r.setup_json).map(Some).map_err(ServiceError::internal)
    }

    /// OEE of the shifts starting in `[start_ms, end_ms)`, of one machine, one line or all.
    pub async fn oee(&self, tenant: &str, start_ms: i64, end_ms: i64, machine: &str, line: &str) -> Res<OeeReportView> {
        let req = pb::GetOeeRequest { start_ms, end_ms, machine: machine.into(), line: line.into() };
        let r = self.oee.clone().get_oee(self.request(tenant, req)?).await.map_err(|s| self.error(s))?.into_inner();
        serde_json::from_str(&r.report_json).map_err(ServiceError::internal)
    }

    /// Record why `machine` was down around `at_ms`.
    pub async fn set_downtime_reason(&self, tenant: &str, machine: &str, at_ms: i64, reason: &str, user: &str) -> Res<()> {
        let req = pb::SetDowntimeReasonRequest { machine: machine.into(), at_ms, reason: reason.into(), user: user.into() };
        self.oee.clone().set_downtime_reason(self.request(tenant, req)?).await.map_err(|s| self.error(s))?;
        Ok(())
    }
}
