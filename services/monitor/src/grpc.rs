//! The monitor's gRPC port: `factorychain.v1.Monitor` (rules, alarms) and
//! `factorychain.v1.MonitorNotifications` (webhooks, deliveries), for services holding a service
//! credential of one of [`CALLERS`], acting for the tenant in `x-fc-tenant`.

use crate::monitor::{Monitor, parse_min_severity};
use crate::store::{AlarmFilter, AlarmRecord, DeliveryState, EmailSubscriptionRecord, SavedRule, WebhookRecord};
use fc_core::ServiceError;
use fc_proto::v1 as pb;
use fc_proto::v1::monitor_notifications_server::{MonitorNotifications as NotificationsApi, MonitorNotificationsServer};
use fc_proto::v1::monitor_server::{Monitor as MonitorApi, MonitorServer};
use fc_rpc::service_auth::Verifier;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Services that may call the `Monitor` API.
pub const CALLERS: [&str; 1] = ["portal"];

pub(crate) fn server(m: Arc<Monitor>, verifier: Verifier) -> MonitorServer<Svc> {
    MonitorServer::new(Svc { m, verifier })
}

pub(crate) struct Svc {
    m: Arc<Monitor>,
    verifier: Verifier,
}

impl Svc {
    fn tenant(&self, meta: &tonic::metadata::MetadataMap) -> Result<String, Status> {
        self.verifier.check(meta, &CALLERS)?;
        fc_rpc::service_auth::tenant(meta)
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn rule_info(s: SavedRule) -> Result<pb::RuleInfo, ServiceError> {
    Ok(pb::RuleInfo {
        rule_json: serde_json::to_string(&s.rule).map_err(ServiceError::internal)?,
        version: s.rule.version,
        saved_at_ms: s.saved_at_ms,
        saved_by: s.saved_by,
    })
}

/// An alarm on the wire.
pub fn alarm_pb(a: AlarmRecord) -> pb::Alarm {
    let (acknowledged_by, acknowledged_at_ms) = a.acknowledged.unwrap_or_default();
    pb::Alarm {
        id: a.id,
        rule_id: a.rule_id,
        rule_version: a.rule_version,
        machine: a.machine,
        metric: a.metric.unwrap_or_default(),
        severity: a.severity.as_str().into(),
        state: a.state.as_str().into(),
        raised_at_ms: a.raised_at_ms,
        cleared_at_ms: a.cleared_at_ms.unwrap_or(0),
        reason: a.reason,
        acknowledged_by,
        acknowledged_at_ms,
        assignee: a.assignee,
        notes: a.notes.into_iter().map(|n| pb::AlarmNote { author: n.author, at_ms: n.at_ms, text: n.text }).collect(),
        history: a
            .history
            .into_iter()
            .map(|s| pb::AlarmTransition { kind: s.kind, at_ms: s.at_ms, severity: s.severity.as_str().into(), by: s.by, text: s.text })
            .collect(),
    }
}

#[tonic::async_trait]
impl MonitorApi for Svc {
    async fn put_rule(&self, req: Request<pb::PutRuleRequest>) -> Answer<pb::RuleInfo> {
        let tenant = self.tenant(req.metadata())?;
        let r = req.into_inner();
        if r.rule_json.len() > 64 << 10 {
            return Err(ServiceError::invalid("rule_json", "a rule is at most 64 KiB").into());
        }
        let rule: fc_monitor::Rule = serde_json::from_str(&r.rule_json).map_err(|e| ServiceError::invalid("rule_json", e))?;
        let user = if r.user.is_empty() { "api".to_owned() } else { r.user };
        let saved = self.m.put_rule(&tenant, rule, &user).await?;
        Ok(Response::new(rule_info(saved)?))
    }

    async fn backtest_rule(&self, req: Request<pb::BacktestRuleRequest>) -> Answer<pb::BacktestRuleResponse> {
        let tenant = self.tenant(req.metadata())?;
        let r = req.into_inner();
        if r.rule_json.len() > 64 << 10 {
            return Err(ServiceError::invalid("rule_json", "a rule is at most 64 KiB").into());
        }
        let rule: fc_monitor::Rule = serde_json::from_str(&r.rule_json).map_err(|e| ServiceError::invalid("rule_json", e))?;
        let b = self.m.backtest(&tenant, &rule, r.start_ms, r.end_ms).await?;
        let ms = |s: &str| fc_monitor::backtest::parse_timestamp(s).unwrap_or(0);
        let alarms = b
            .report
            .alarms
            .into_iter()
            .map(|a| pb::BacktestAlarm {
                machine: a.machine.unwrap_or_default(),
                metric: a.metric.unwrap_or_default(),
                raised_at_ms: ms(&a.raised_at),
                cleared_at_ms: a.cleared_at.as_deref().map_or(0, ms),
                severity: a.severity,
                reason: a.reason,
            })
            .collect();
        Ok(Response::new(pb::BacktestRuleResponse {
            readings: b.report.readings as u64,
            series: b.series as u32,
            truncated: b.truncated,
            alarms,
        }))
    }

    async fn list_rules(&self, req: Request<pb::ListRulesRequest>) -> Answer<pb::ListRulesResponse> {
        let tenant = self.tenant(req.metadata())?;
        let rules = self.m.rules(&tenant)?.into_iter().map(rule_info).collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListRulesResponse { rules }))
    }

    async fn delete_rule(&self, req: Request<pb::DeleteRuleRequest>) -> Answer<pb::DeleteRuleResponse> {
        let tenant = self.tenant(req.metadata())?;
        let cleared = self.m.delete_rule(&tenant, &req.get_ref().rule_id).await?;
        Ok(Response::new(pb::DeleteRuleResponse { cleared_alarms: cleared as u32 }))
    }

    async fn list_alarms(&self, req: Request<pb::ListAlarmsRequest>) -> Answer<pb::ListAlarmsResponse> {
        let tenant = self.tenant(req.metadata())?;
        let r = req.into_inner();
        let some = |s: String| (!s.is_empty()).then_some(s);
        let filter = AlarmFilter {
            machine: some(r.machine),
            rule_id: some(r.rule_id),
            min_severity: parse_min_severity(&r.min_severity)?,
            open_only: r.open_only,
            from_ms: (r.from_ms != 0).then_some(r.from_ms),
            to_ms: (r.to_ms != 0).then_some(r.to_ms),
            limit: if r.limit == 0 { 100 } else { r.limit.min(1000) as usize },
        };
        let alarms = self.m.alarms(&tenant, &filter)?.into_iter().map(alarm_pb).collect();
        Ok(Response::new(pb::ListAlarmsResponse { alarms }))
    }

    async fn get_alarm(&self, req: Request<pb::AlarmRef>) -> Answer<pb::Alarm> {
        let tenant = self.tenant(req.metadata())?;
        Ok(Response::new(alarm_pb(self.m.alarm(&tenant, &req.get_ref().alarm_id)?)))
    }

    async fn acknowledge_alarm(&self, req: Request<pb::AlarmActionRequest>) -> Answer<pb::Alarm> {
        let tenant = self.tenant(req.metadata())?;
        let r = req.into_inner();
        Ok(Response::new(alarm_pb(self.m.acknowledge(&tenant, &r.alarm_id, &r.user, &r.comment).await?)))
    }

    async fn clear_alarm(&self, req: Request<pb::AlarmActionRequest>) -> Answer<pb::Alarm> {
        let tenant = self.tenant(req.metadata())?;
        let r = req.into_inner();
        Ok(Response::new(alarm_pb(self.m.clear(&tenant, &r.alarm_id, &r.user, &r.comment).await?)))
    }

    async fn comment_alarm(&self, req: Request<pb::AlarmActionRequest>) -> Answer<pb::Alarm> {
        let tenant = self.tenant(req.metadata())?;
        let r = req.into_inner();
        Ok(Response::new(alarm_pb(self.m.comment(&tenant, &r.alarm_id, &r.user, &r.comment).await?)))
    }

    async fn assign_alarm(&self, req: Request<pb::AssignAlarmRequest>) -> Answer<pb::Alarm> {
        let tenant = self.tenant(req.metadata())?;
        let r = req.into_inner();
        Ok(Response::new(alarm_pb(self.m.assign(&tenant, &r.alarm_id, &r.user, &r.assignee).await?)))
    }
}

pub(crate) fn notifications(m: Arc<Monitor>, verifier: Verifier) -> MonitorNotificationsServer<Notify> {
    MonitorNotificationsServer::new(Notify { m, verifier })
}

pub(crate) struct Notify {
    m: Arc<Monitor>,
    verifier: Verifier,
}

impl Notify {
    fn tenant(&self, meta: &tonic::metadata::MetadataMap) -> Result<String, Status> {
        self.verifier.check(meta, &CALLERS)?;
        fc_rpc::service_auth::tenant(meta)
    }
}

fn webhook_pb(w: WebhookRecord, show_secret: bool) -> pb::Webhook {
    pb::Webhook {
        id: w.id,
        url: w.url,
        min_severity: w.subscription.min_severity.as_str().into(),
        machines: w.subscription.machines,
        created_at_ms: w.created_at_ms,
        secret: if show_secret { w.secret } else { String::new() },
    }
}

#[tonic::async_trait]
impl NotificationsApi for Notify {
    async fn put_webhook(&self, req: Request<pb::PutWebhookRequest>) -> Answer<pb::Webhook> {
        let tenant = self.tenant(req.metadata())?;
        let r = req.into_inner();
        let made_secret = r.secret.is_empty();
        let w = self.m.put_webhook(&tenant, &r.id, &r.url, &r.secret, &r.min_severity, r.machines)?;
        Ok(Response::new(webhook_pb(w, made_secret)))
    }

    async fn list_webhooks(&self, req: Request<pb::ListWebhooksRequest>) -> Answer<pb::ListWebhooksResponse> {
        let tenant = self.tenant(req.metadata())?;
        let webhooks = self.m.webhooks(&tenant)?.into_iter().map(|w| webhook_pb(w, false)).collect();
        Ok(Response::new(pb::ListWebhooksResponse { webhooks }))
    }

    async fn delete_webhook(&self, req: Request<pb::DeleteWebhookRequest>) -> Answer<pb::DeleteWebhookResponse> {
        let tenant = self.tenant(req.metadata())?;
        self.m.delete_webhook(&tenant, &req.get_ref().id)?;
        Ok(Response::new(pb::DeleteWebhookResponse {}))
    }

    async fn list_deliveries(&self, req: Request<pb::ListDeliveriesRequest>) -> Answer<pb::ListDeliveriesResponse> {
        let tenant = self.tenant(req.metadata())?;
        let r = req.into_inner();
        let state = match r.state.as_str() {
            "" => None,
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "dead" => Some(DeliveryState::Dead),
            _ => return Err(ServiceError::invalid("state", "pending, delivered or dead").into()),
        };
        let limit = if r.limit == 0 { 100 } else { r.limit.min(1000) as usize };
        let deliveries = self
            .m
            .store()
            .deliveries(&tenant, state, limit)?
            .into_iter()
            .map(|d| pb::Delivery {
                channel: crate::deliver::channel(&d).into(),
                id: d.id,
                webhook_id: d.webhook_id,
                alarm_id: d.alarm_id,
                kind: d.kind,
                state: d.state.as_str().into(),
                attempts: d.attempts,
                last_error: d.last_error,
                created_at_ms: d.created_at_ms,
                next_attempt_at_ms: if d.state == DeliveryState::Pending { d.next_at_ms } else { 0 },
                delivered_at_ms: d.delivered_at_ms.unwrap_or(0),
                email: d.email,
            })
            .collect();
        Ok(Response::new(pb::ListDeliveriesResponse { deliveries }))
    }

    async fn put_email_subscription(&self, req: Request<pb::EmailSubscription>) -> Answer<pb::EmailSubscription> {
        let tenant = self.tenant(req.metadata())?;
        let r = req.into_inner();
        let s = self.m.put_email_subscription(&tenant, &r.user_id, &r.address, &r.min_severity, r.machines)?;
        Ok(Response::new(email_pb(s)))
    }

    async fn list_email_subscriptions(
        &self,
        req: Request<pb::ListEmailSubscriptionsRequest>,
    ) -> Answer<pb::ListEmailSubscriptionsResponse> {
        let tenant = self.tenant(req.metadata())?;
        let subscriptions = self.m.email_subscriptions(&tenant, &req.get_ref().user_id)?.into_iter().map(email_pb).collect();
        Ok(Response::new(pb::ListEmailSubscriptionsResponse { subscriptions }))
    }

    async fn delete_email_subscription(
        &self,
        req: Request<pb::DeleteEmailSubscriptionRequest>,
    ) -> Answer<pb::DeleteEmailSubscriptionResponse> {
        let tenant = self.tenant(req.metadata())?;
        self.m.delete_email_subscription(&tenant, &req.get_ref().user_id)?;
        Ok(Response::new(pb::DeleteEmailSubscriptionResponse {}))
    }
}

fn email_pb(s: EmailSubscriptionRecord) -> pb::EmailSubscription {
    pb::EmailSubscription {
        address: s.address().to_owned(),
        user_id: s.user_id,
        min_severity: s.subscription.min_severity.as_str().into(),
        machines: s.subscription.machines,
        created_at_ms: s.created_at_ms,
    }
}

pub(crate) fn oee(m: Arc<Monitor>, verifier: Verifier) -> pb::monitor_oee_server::MonitorOeeServer<Oee> {
    pb::monitor_oee_server::MonitorOeeServer::new(Oee { m, verifier })
}

pub(crate) struct Oee {
    m: Arc<Monitor>,
    verifier: Verifier,
}

#[tonic::async_trait]
impl pb::monitor_oee_server::MonitorOee for Oee {
    async fn put_oee_setup(&self, req: Request<pb::OeeSetupRequest>) -> Answer<pb::OeeSetupResponse> {
        self.verifier.check(req.metadata(), &CALLERS)?;
        let tenant = fc_rpc::service_auth::tenant(req.metadata())?;
        let json = &req.get_ref().setup_json;
        if json.len() > 1 << 20 {
            return Err(ServiceError::invalid("setup_json", "an OEE setup is at most 1 MiB").into());
        }
        let setup: fc_monitor::oee::OeeSetup = serde_json::from_str(json).map_err(|e| ServiceError::invalid("setup", e))?;
        let saved = self.m.put_oee_setup(&tenant, setup).await?;
        Ok(Response::new(pb::OeeSetupResponse { setup_json: serde_json::to_string(&saved).map_err(ServiceError::internal)? }))
    }

    async fn get_oee_setup(&self, req: Request<pb::GetOeeSetupRequest>) -> Answer<pb::OeeSetupResponse> {
        self.verifier.check(req.metadata(), &CALLERS)?;
        let tenant = fc_rpc::service_auth::tenant(req.metadata())?;
        let setup_json = match self.m.oee_setup(&tenant)? {
            Some(s) => serde_json::to_string(&s).map_err(ServiceError::internal)?,
            None => String::new(),
        };
        Ok(Response::new(pb::OeeSetupResponse { setup_json }))
    }

    async fn get_oee(&self, req: Request<pb::GetOeeRequest>) -> Answer<pb::OeeReportResponse> {
        self.verifier.check(req.metadata(), &CALLERS)?;
        let tenant = fc_rpc::service_auth::tenant(req.metadata())?;
        let r = req.into_inner();
        let report = self.m.oee_report(&tenant, r.start_ms, r.end_ms, &r.machine, &r.line).await?;
        Ok(Response::new(pb::OeeReportResponse { report_json: serde_json::to_string(&report).map_err(ServiceError::internal)? }))
    }

    async fn set_downtime_reason(&self, req: Request<pb::SetDowntimeReasonRequest>) -> Answer<pb::SetDowntimeReasonResponse> {
        self.verifier.check(req.metadata(), &CALLERS)?;
        let tenant = fc_rpc::service_auth::tenant(req.metadata())?;
        let r = req.into_inner();
        let user = if r.user.is_empty() { "api".to_owned() } else { r.user };
        self.m.set_downtime_reason(&tenant, &r.machine, r.at_ms, &r.reason, &user)?;
        Ok(Response::new(pb::SetDowntimeReasonResponse {}))
    }
}
