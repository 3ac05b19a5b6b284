//! Alarms and alarm rules over REST. The monitor service owns them (rules,
//! versions, the alarm lifecycle); this module takes the caller's tenant from its
//! credential and maps roles: viewers read; operators (people and API keys)
//! acknowledge, clear, comment, assign and edit rules.

use crate::PortalState;
use crate::auth::{ApiAuth, Principal};
use crate::problem::Problem;
use crate::web::ApiJson;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use fc_monitor_api::{AlarmQuery, AlarmView, BacktestView, DeliveryView, EmailSubscriptionView, RuleView, WebhookInput, WebhookView};
use fc_registry::Role;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::ToSchema;

type St = State<Arc<PortalState>>;

/// REST routes.
pub fn routes() -> Router<Arc<PortalState>> {
    Router::new()
        .route("/api/v1/alarms", get(list_alarms))
        .route("/api/v1/alarms/{id}", get(get_alarm))
        .route("/api/v1/alarms/{id}/acknowledge", post(acknowledge_alarm))
        .route("/api/v1/alarms/{id}/clear", post(clear_alarm))
        .route("/api/v1/alarms/{id}/comments", post(comment_alarm))
        .route("/api/v1/alarms/{id}/assignee", put(assign_alarm))
        .route("/api/v1/alarm-rules", get(list_alarm_rules))
        .route("/api/v1/alarm-rules/{id}", put(put_alarm_rule).delete(delete_alarm_rule))
        .route("/api/v1/alarm-rule-backtests", post(backtest_alarm_rule))
        .route("/api/v1/webhooks", get(list_webhooks))
        .route("/api/v1/webhooks/{id}", put(put_webhook).delete(delete_webhook))
        .route("/api/v1/webhook-deliveries", get(list_webhook_deliveries))
        .route("/api/v1/me/alarm-subscription", get(get_my_subscription).put(put_my_subscription).delete(delete_my_subscription))
        .route("/api/v1/alarm-subscriptions", get(list_alarm_subscriptions))
}

/// Who acts, as alarms record it: the signed-in user's e-mail, or "api key".
pub(crate) fn actor(s: &PortalState, p: &Principal) -> String {
    match &p.user_id {
        Some(id) => s.registry.get_user(&p.tenant_id, id).map(|u| u.email).unwrap_or_else(|_| id.clone()),
        None => "api key".into(),
    }
}

/// An operator's words on an acknowledgement or a clear (the body is optional).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ActionIn {
    /// A note kept with the alarm.
    #[serde(default)]
    comment: String,
}

fn action(body: &[u8]) -> Result<ActionIn, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ActionIn::default());
    }
    serde_json::from_slice(body).map_err(|e| Problem::bad_request(format!("body: {e}")))
}

/// A note.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentIn {
    /// What to note (at most 2,000 characters).
    text: String,
}

/// Whom to assign the alarm to.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssigneeIn {
    /// A name or e-mail; empty: nobody.
    assignee: String,
}

#[utoipa::path(get, path = "/api/v1/alarms", params(AlarmQuery), responses((status = 200, description = "alarms, newest first", body = Vec<AlarmView>), (status = 400, description = "a bad filter", body = Problem)))]
pub(crate) async fn list_alarms(
    State(s): St,
    ApiAuth(p): ApiAuth,
    q: Result<Query<AlarmQuery>, QueryRejection>,
) -> Result<Json<Vec<AlarmView>>, Problem> {
    let Query(q) = q.map_err(|e| Problem::bad_request(e.body_text()))?;
    Ok(Json(s.monitor.alarms(&p.tenant_id, &q).await?))
}

#[utoipa::path(get, path = "/api/v1/alarms/{id}", params(("id" = String, Path, description = "alarm id")), responses((status = 200, description = "the alarm with its notes and history", body = AlarmView), (status = 404, description = "no such alarm of this tenant", body = Problem)))]
pub(crate) async fn get_alarm(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>) -> Result<Json<AlarmView>, Problem> {
    Ok(Json(s.monitor.alarm(&p.tenant_id, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/alarms/{id}/acknowledge", params(("id" = String, Path, description = "alarm id")), request_body = ActionIn, responses((status = 200, description = "acknowledged: it stops escalating", body = AlarmView), (status = 404, description = "no such alarm", body = Problem)))]
pub(crate) async fn acknowledge_alarm(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<AlarmView>, Problem> {
    p.require(Role::Operator)?;
    let comment = action(&body)?.comment;
    Ok(Json(s.monitor.acknowledge(&p.tenant_id, &id, &actor(&s, &p), &comment).await?))
}

#[utoipa::path(post, path = "/api/v1/alarms/{id}/clear", params(("id" = String, Path, description = "alarm id")), request_body = ActionIn, responses((status = 200, description = "cleared", body = AlarmView), (status = 404, description = "no such alarm", body = Problem), (status = 409, description = "already cleared", body = Problem)))]
pub(crate) async fn clear_alarm(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<AlarmView>, Problem> {
    p.require(Role::Operator)?;
    let comment = action(&body)?.comment;
    Ok(Json(s.monitor.clear(&p.tenant_id, &id, &actor(&s, &p), &comment).await?))
}

#[utoipa::path(post, path = "/api/v1/alarms/{id}/comments", params(("id" = String, Path, description = "alarm id")), request_body = CommentIn, responses((status = 200, description = "the alarm with the note", body = AlarmView), (status = 400, description = "an empty or too long note", body = Problem), (status = 404, description = "no such alarm", body = Problem)))]
pub(crate) async fn comment_alarm(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<CommentIn>,
) -> Result<Json<AlarmView>, Problem> {
    p.require(Role::Operator)?;
    Ok(Json(s.monitor.comment(&p.tenant_id, &id, &actor(&s, &p), &b.text).await?))
}

#[utoipa::path(put, path = "/api/v1/alarms/{id}/assignee", params(("id" = String, Path, description = "alarm id")), request_body = AssigneeIn, responses((status = 200, description = "assigned", body = AlarmView), (status = 404, description = "no such alarm", body = Problem)))]
pub(crate) async fn assign_alarm(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AssigneeIn>,
) -> Result<Json<AlarmView>, Problem> {
    p.require(Role::Operator)?;
    Ok(Json(s.monitor.assign(&p.tenant_id, &id, &actor(&s, &p), &b.assignee).await?))
}

#[utoipa::path(get, path = "/api/v1/alarm-rules", responses((status = 200, description = "the tenant's alarm rules", body = Vec<RuleView>)))]
pub(crate) async fn list_alarm_rules(State(s): St, ApiAuth(p): ApiAuth) -> Result<Json<Vec<RuleView>>, Problem> {
    Ok(Json(s.monitor.rules(&p.tenant_id).await?))
}

#[utoipa::path(put, path = "/api/v1/alarm-rules/{id}", params(("id" = String, Path, description = "rule id (a-z 0-9 - _ .)")), request_body(content = Object, description = "the rule: name, machine, severity, condition, for_ms, auto_clear, clear_for_ms, escalate_after_min, max_alarms_per_hour (docs/monitor.md)"), responses((status = 200, description = "saved as its next version", body = RuleView), (status = 400, description = "an invalid rule, or one naming a metric the tenant does not have", body = Problem)))]
pub(crate) async fn put_alarm_rule(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path(id): Path<String>,
    ApiJson(mut body): ApiJson<serde_json::Value>,
) -> Result<Json<RuleView>, Problem> {
    p.require(Role::Operator)?;
    let obj = body.as_object_mut().ok_or_else(|| Problem::bad_request("a rule is a JSON object"))?;
    match obj.get("id") {
        Some(v) if v.as_str() != Some(id.as_str()) => return Err(Problem::bad_request("the rule's id differs from the one in the path")),
        _ => {}
    }
    obj.insert("id".into(), serde_json::Value::String(id));
    obj.remove("version");
    let rule: fc_monitor::Rule = serde_json::from_value(body).map_err(|e| Problem::bad_request(format!("rule: {e}")))?;
    Ok(Json(s.monitor.put_rule(&p.tenant_id, &rule, &actor(&s, &p)).await?))
}

#[utoipa::path(delete, path = "/api/v1/alarm-rules/{id}", params(("id" = String, Path, description = "rule id")), responses((status = 204, description = "deleted; its open alarms were cleared"), (status = 404, description = "no such rule", body = Problem)))]
pub(crate) async fn delete_alarm_rule(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>) -> Result<StatusCode, Problem> {
    p.require(Role::Operator)?;
    s.monitor.delete_rule(&p.tenant_id, &id, &actor(&s, &p)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/webhooks", responses((status = 200, description = "the tenant's webhook endpoints (secrets are not shown)", body = Vec<WebhookView>)))]
pub(crate) async fn list_webhooks(State(s): St, ApiAuth(p): ApiAuth) -> Result<Json<Vec<WebhookView>>, Problem> {
    Ok(Json(s.monitor.webhooks(&p.tenant_id).await?))
}

#[utoipa::path(put, path = "/api/v1/webhooks/{id}", params(("id" = String, Path, description = "endpoint id (a-z 0-9 - _ .)")), request_body = WebhookInput, responses((status = 200, description = "saved; a secret the monitor made is in this answer only", body = WebhookView), (status = 400, description = "a bad or unsafe URL, a short secret", body = Problem)))]
pub(crate) async fn put_webhook(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<WebhookInput>,
) -> Result<Json<WebhookView>, Problem> {
    p.require(Role::Owner)?;
    Ok(Json(s.monitor.put_webhook(&p.tenant_id, &id, &b).await?))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", params(("id" = String, Path, description = "endpoint id")), responses((status = 204, description = "removed; its pending deliveries dropped"), (status = 404, description = "no such endpoint", body = Problem)))]
pub(crate) async fn delete_webhook(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>) -> Result<StatusCode, Problem> {
    p.require(Role::Owner)?;
    s.monitor.delete_webhook(&p.tenant_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which deliveries to list.
#[derive(Deserialize, utoipa::IntoParams, Default)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryQuery {
    /// pending, delivered or dead (the dead-letter list); empty: all.
    state: String,
    /// Most deliveries (default 100, at most 1000).
    limit: u32,
}

#[utoipa::path(get, path = "/api/v1/webhook-deliveries", params(DeliveryQuery), responses((status = 200, description = "deliveries, newest first", body = Vec<DeliveryView>)))]
pub(crate) async fn list_webhook_deliveries(
    State(s): St,
    ApiAuth(p): ApiAuth,
    q: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Json<Vec<DeliveryView>>, Problem> {
    let Query(q) = q.map_err(|e| Problem::bad_request(e.body_text()))?;
    Ok(Json(without_addresses(&p, s.monitor.deliveries(&p.tenant_id, &q.state, q.limit).await?)))
}

/// Which alarms the signed-in user wants by e-mail (sent to the account's address).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionIn {
    /// The lowest severity sent (info, warning, major, critical; empty: warning).
    #[serde(default)]
    pub min_severity: String,
    /// Machine globs (empty: every machine).
    #[serde(default)]
    pub machines: Vec<String>,
}

/// The signed-in user (a subscription is a person's; an API key has none) and their address.
pub(crate) fn me(s: &PortalState, p: &Principal) -> Result<(String, String), Problem> {
    let id =
        p.user_id.clone().ok_or_else(|| Problem::forbidden("an e-mail subscription belongs to a user: sign in (API keys have none)"))?;
    let email = s.registry.get_user(&p.tenant_id, &id).map_err(Problem::from)?.email;
    Ok((id, email))
}

#[utoipa::path(get, path = "/api/v1/me/alarm-subscription", responses((status = 200, description = "the signed-in user's e-mail subscription", body = EmailSubscriptionView), (status = 404, description = "none", body = Problem)))]
pub(crate) async fn get_my_subscription(State(s): St, ApiAuth(p): ApiAuth) -> Result<Json<EmailSubscriptionView>, Problem> {
    let (id, _) = me(&s, &p)?;
    let mine = s.monitor.email_subscriptions(&p.tenant_id, &id).await?;
    mine.into_iter().next().map(Json).ok_or_else(|| Problem::new(fc_core::ErrorCode::NotFound, "you have no e-mail subscription"))
}

#[utoipa::path(put, path = "/api/v1/me/alarm-subscription", request_body = SubscriptionIn, responses((status = 200, description = "saved: alarms at or above the severity on those machines are e-mailed to the account's address", body = EmailSubscriptionView), (status = 400, description = "a bad severity or machine glob", body = Problem), (status = 409, description = "the platform sends no e-mail", body = Problem)))]
pub(crate) async fn put_my_subscription(
    State(s): St,
    ApiAuth(p): ApiAuth,
    ApiJson(b): ApiJson<SubscriptionIn>,
) -> Result<Json<EmailSubscriptionView>, Problem> {
    let (id, email) = me(&s, &p)?;
    Ok(Json(s.monitor.put_email_subscription(&p.tenant_id, &id, &email, &b.min_severity, &b.machines).await?))
}

#[utoipa::path(delete, path = "/api/v1/me/alarm-subscription", responses((status = 204, description = "no more alarm e-mails (also when there was no subscription)")))]
pub(crate) async fn delete_my_subscription(State(s): St, ApiAuth(p): ApiAuth) -> Result<StatusCode, Problem> {
    let (id, _) = me(&s, &p)?;
    s.monitor.delete_email_subscription(&p.tenant_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/alarm-subscriptions", responses((status = 200, description = "every user's e-mail subscription (owners)", body = Vec<EmailSubscriptionView>)))]
pub(crate) async fn list_alarm_subscriptions(State(s): St, ApiAuth(p): ApiAuth) -> Result<Json<Vec<EmailSubscriptionView>>, Problem> {
    p.require(Role::Owner)?;
    Ok(Json(s.monitor.email_subscriptions(&p.tenant_id, "").await?))
}

/// A rule to try on stored history before it is saved.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestIn {
    /// The rule, as `PUT /api/v1/alarm-rules/{id}` takes it (with its `id`).
    #[schema(value_type = Object)]
    pub rule: serde_json::Value,
    /// Window start, Unix ms (default: `end_ms` less 30 days).
    #[serde(default)]
    pub start_ms: Option<i64>,
    /// Window end, Unix ms (default: now; at most 92 days after the start).
    #[serde(default)]
    pub end_ms: Option<i64>,
}

/// The default backtest window: the last 30 days.
pub(crate) const BACKTEST_DAYS: i64 = 30;

#[utoipa::path(post, path = "/api/v1/alarm-rule-backtests", request_body = BacktestIn, responses((status = 200, description = "the alarms the rule would have raised over the window's stored readings; nothing is saved", body = BacktestView), (status = 400, description = "a bad rule or window", body = Problem)))]
pub(crate) async fn backtest_alarm_rule(
    State(s): St,
    ApiAuth(p): ApiAuth,
    ApiJson(b): ApiJson<BacktestIn>,
) -> Result<Json<BacktestView>, Problem> {
    p.require(Role::Operator)?;
    let rule: fc_monitor::Rule = serde_json::from_value(b.rule).map_err(|e| Problem::bad_request(format!("rule: {e}")))?;
    let end = b.end_ms.unwrap_or_else(fc_core::time::now_ms);
    let start = b.start_ms.unwrap_or(end - BACKTEST_DAYS * 86_400_000);
    Ok(Json(s.monitor.backtest(&p.tenant_id, &rule, start, end).await?))
}

/// Users' e-mail addresses in deliveries are for owners (who see the team anyway).
pub(crate) fn without_addresses(p: &Principal, mut list: Vec<DeliveryView>) -> Vec<DeliveryView> {
    if !p.role.allows(Role::Owner) {
        for d in &mut list {
            if !d.email.is_empty() {
                d.email = "(a user's e-mail)".into();
            }
        }
    }
    list
}
