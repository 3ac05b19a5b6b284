//! The alarms pages: open and past alarms with acknowledge and clear, and the
//! tenant's alarm rules with a JSON editor. The monitor service owns both; every
//! form posts its CSRF token.

use crate::PortalState;
use crate::alarms::actor;
use crate::auth::{PageAuth, check_csrf};
use crate::pages::{PageResult, csrf_field, page, with_status};
use crate::problem::Problem;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use fc_monitor_api::AlarmQuery;
use fc_registry::Role;
use maud::html;
use serde::Deserialize;
use std::sync::Arc;

type St = State<Arc<PortalState>>;

/// Page routes.
pub fn routes() -> Router<Arc<PortalState>> {
    Router::new()
        .route("/alarms", get(alarms))
        .route("/alarms/{id}/acknowledge", post(acknowledge))
        .route("/alarms/{id}/clear", post(clear))
        .route("/alarms/{id}/comment", post(comment))
        .route("/alarms/{id}/assign", post(assign))
        .route("/alarm-rules", get(rules).post(save_rule))
        .route("/alarm-rules/quick", post(save_quick_rule))
        .route("/notifications", get(notifications).post(save_webhook))
        .route("/notifications/{id}/delete", post(delete_webhook))
        .route("/notifications/email", post(save_email))
        .route("/notifications/email/delete", post(delete_email))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AlarmsQ {
    all: bool,
    machine: String,
    rule: String,
    min_severity: String,
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// "2026-12-02 08:41 UTC".
pub(crate) fn when(ms: i64) -> String {
    let t = fc_monitor::backtest::rfc3339(ms - ms.rem_euclid(60_000));
    format!("{} UTC", t.replace('T', " ").trim_end_matches(":00Z"))
}

async fn alarms(State(s): St, PageAuth(p): PageAuth, Query(q): Query<AlarmsQ>) -> PageResult {
    let lang = p.lang;
    let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let filter = AlarmQuery {
        open_only: Some(!q.all),
        machine: some(&q.machine),
        rule_id: some(&q.rule),
        min_severity: some(&q.min_severity),
        limit: Some(200),
        ..Default::default()
    };
    let list = s.monitor.alarms(&p.tenant_id, &filter).await?;
    let rules = s.monitor.rules(&p.tenant_id).await.unwrap_or_default();
    let can_act = p.role.allows(Role::Operator);
    Ok(page(
        lang,
        lang.t("alarms"),
        Some(&p),
        html! {
            h1 { (lang.t("alarms")) }
            p {
                a href="/alarms" { (lang.t("open_alarms")) } " · " a href="/alarms?all=true" { (lang.t("all_alarms")) }
                " · " a href="/alarm-rules" { (lang.t("alarm_rules")) }
                " · " a href="/notifications" { (lang.t("notifications")) }
            }
            form.row method="get" action="/alarms" id="alarm-filter" {
                label { (lang.t("machine")) br; input name="machine" maxlength="128" value=(q.machine); }
                label { (lang.t("rule")) br; select name="rule" {
                    option value="" { "—" }
                    @for r in &rules { @let id = r.rule["id"].as_str().unwrap_or(""); option value=(id) selected[q.rule == id] { (id) } }
                } }
                label { (lang.t("severity")) br; select name="min_severity" {
                    option value="" { "—" }
                    @for v in ["info", "warning", "major", "critical"] { option value=(v) selected[q.min_severity == v] { "≥ " (v) } }
                } }
                label { input type="checkbox" name="all" value="true" checked[q.all]; " " (lang.t("all_alarms")) }
                button type="submit" { (lang.t("filter")) }
            }
            div id="alarms-section" data-live="/alarms/live" {
            @if list.is_empty() { p.muted id="no-alarms" { (lang.t("no_alarms")) } }
            @else {
                table id="alarms" {
                    thead { tr { th { (lang.t("severity")) } th { (lang.t("machine")) } th { (lang.t("reason")) } th { (lang.t("raised_at")) } th { (lang.t("state")) } th {} } }
                    tbody { @for a in &list {
                        tr id=(a.id) data-alarm=(a.id) data-state=(a.state) {
                            td { strong { (a.severity) } }
                            td { (a.machine) @if !a.metric.is_empty() { br; span.muted { (a.metric) } } }
                            td { (a.reason) br; span.muted { (lang.t("rule")) " " (a.rule_id) " v" (a.rule_version) } }
                            td { (when(a.raised_at_ms)) }
                            td {
                                (lang.t(state_key(&a.state)))
                                @if let Some(by) = &a.acknowledged_by { br; span.muted { (lang.t("acknowledged_by")) " " (by) } }
                                @if !a.assignee.is_empty() { br; span.muted data-assignee=(a.assignee) { (lang.t("assignee")) ": " (a.assignee) } }
                                @for n in a.notes.iter().rev().take(3) { br; span.muted.note { "“" (n.text) "” — " (n.author) } }
                            }
                            td { @if can_act && a.state != "cleared" {
                                @if a.acknowledged_by.is_none() {
                                    form.inline method="post" action={ "/alarms/" (a.id) "/acknowledge" } { (csrf_field(&p)) button type="submit" { (lang.t("acknowledge")) } }
                                    " "
                                }
                                form.inline method="post" action={ "/alarms/" (a.id) "/clear" } { (csrf_field(&p)) button.danger type="submit" { (lang.t("clear_alarm")) } }
                                form.row method="post" action={ "/alarms/" (a.id) "/comment" } {
                                    (csrf_field(&p)) input name="text" required maxlength="2000" placeholder=(lang.t("comment")); button type="submit" { (lang.t("comment")) }
                                }
                                form.row method="post" action={ "/alarms/" (a.id) "/assign" } {
                                    (csrf_field(&p)) input name="assignee" maxlength="254" placeholder=(lang.t("assignee")) value=(a.assignee); button type="submit" { (lang.t("assign")) }
                                }
                            } }
                        }
                    } }
                }
            }
            }
        },
    ))
}

fn state_key(state: &str) -> &'static str {
    match state {
        "acknowledged" => "acknowledged",
        "cleared" => "cleared",
        _ => "raised",
    }
}

async fn acknowledge(State(s): St, PageAuth(p): PageAuth, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    s.monitor.acknowledge(&p.tenant_id, &id, &actor(&s, &p), "").await?;
    Ok(Redirect::to("/alarms").into_response())
}

#[derive(Deserialize)]
struct CommentForm {
    csrf: String,
    text: String,
}

async fn comment(State(s): St, PageAuth(p): PageAuth, Path(id): Path<String>, Form(f): Form<CommentForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    s.monitor.comment(&p.tenant_id, &id, &actor(&s, &p), f.text.trim()).await?;
    Ok(Redirect::to("/alarms").into_response())
}

#[derive(Deserialize)]
struct AssignForm {
    csrf: String,
    assignee: String,
}

async fn assign(State(s): St, PageAuth(p): PageAuth, Path(id): Path<String>, Form(f): Form<AssignForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    s.monitor.assign(&p.tenant_id, &id, &actor(&s, &p), f.assignee.trim()).await?;
    Ok(Redirect::to("/alarms").into_response())
}

async fn clear(State(s): St, PageAuth(p): PageAuth, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    s.monitor.clear(&p.tenant_id, &id, &actor(&s, &p), "").await?;
    Ok(Redirect::to("/alarms").into_response())
}

#[derive(Deserialize)]
pub(crate) struct RuleForm {
    csrf: String,
    rule: String,
    /// "backtest": try the rule on the last 30 days instead of saving it.
    #[serde(default)]
    action: String,
}

const EXAMPLE_RULE: &str = r#"{
  "id": "spindle-hot",
  "name": "Spindle too hot",
  "machine": "*",
  "severity": "major",
  "condition": { "type": "threshold", "metric": "temperature", "above": 80, "hysteresis": 2 },
  "for_ms": 60000,
  "escalate_after_min": 30
}"#;

async fn rules_page(
    s: &PortalState,
    p: &crate::auth::Principal,
    draft: Option<&str>,
    error: Option<&str>,
    backtest: Option<&fc_monitor_api::BacktestView>,
) -> PageResult {
    let lang = p.lang;
    let rules = s.monitor.rules(&p.tenant_id).await?;
    Ok(page(
        lang,
        lang.t("alarm_rules"),
        Some(p),
        html! {
            h1 { (lang.t("alarm_rules")) }
            p { a href="/alarms" { "← " (lang.t("alarms")) } }
            @if rules.is_empty() { p.muted { (lang.t("no_rules")) } }
            @else {
                table id="rules" {
                    thead { tr { th { (lang.t("rule")) } th { (lang.t("version")) } th { (lang.t("severity")) } th { "" } } }
                    tbody { @for r in &rules {
                        tr data-rule=(r.rule["id"].as_str().unwrap_or("")) {
                            td { strong { (r.rule["id"].as_str().unwrap_or("")) } br; span.muted { (r.rule["name"].as_str().unwrap_or("")) } }
                            td { (r.version) br; span.muted { (r.saved_by) } }
                            td { (r.rule["severity"].as_str().unwrap_or("")) }
                            td { pre { (serde_json::to_string(&r.rule["condition"]).unwrap_or_default()) } }
                        }
                    } }
                }
            }
            @if p.role.allows(Role::Operator) {
                @if let Some(e) = error { p.error role="alert" { (e) } }
                @if let Some(b) = backtest {
                    div.card id="backtest" data-alarms=(b.alarms.len()) {
                        h2 { (lang.t("backtest")) }
                        p { strong { (b.alarms.len()) } " " (lang.t("backtest_alarms")) " · " (b.readings) " " (lang.t("readings")) ", " (b.series) " " (lang.t("series"))
                            " · " (when(b.start_ms)) " – " (when(b.end_ms)) }
                        @if b.truncated { p.error { (lang.t("backtest_truncated")) } }
                        @if !b.alarms.is_empty() {
                            table {
                                thead { tr { th { (lang.t("machine")) } th { (lang.t("raised_at")) } th { (lang.t("cleared")) } th { (lang.t("severity")) } th { (lang.t("reason")) } } }
                                tbody { @for a in b.alarms.iter().take(200) {
                                    tr { td { (a.machine) } td { (when(a.raised_at_ms)) } td { @if let Some(c) = a.cleared_at_ms { (when(c)) } @else { "—" } } td { (a.severity) } td { (a.reason) } }
                                } }
                            }
                        }
                    }
                }
                h2 { (lang.t("simple_rule")) }
                form.row method="post" action="/alarm-rules/quick" id="quick-rule" {
                    (csrf_field(p))
                    label { "ID" br; input name="id" required maxlength="64" pattern="[a-z0-9._-]+" placeholder="spindle-hot"; }
                    label { (lang.t("name")) br; input name="name" maxlength="200"; }
                    label { (lang.t("machine")) br; input name="machine" maxlength="128" placeholder="press-*"; }
                    label { (lang.t("metric")) br; input name="metric" maxlength="128" placeholder="temperature"; }
                    label { (lang.t("when")) br; select name="kind" {
                        option value="above" { (lang.t("kind_above")) } option value="below" { (lang.t("kind_below")) }
                        option value="anomaly" { (lang.t("kind_anomaly")) } option value="no_data" { (lang.t("kind_no_data")) }
                    } }
                    label { (lang.t("rule_limit")) br; input name="limit" inputmode="decimal" size="8"; }
                    label { (lang.t("for_minutes")) br; input name="minutes" inputmode="decimal" size="6" placeholder="0"; }
                    label { (lang.t("sensitivity")) br; input name="sensitivity" inputmode="decimal" size="5" placeholder="1"; }
                    label { (lang.t("severity")) br; select name="severity" { @for v in ["info", "warning", "major", "critical"] { option value=(v) selected[v == "warning"] { (v) } } } }
                    button type="submit" name="action" value="save" { (lang.t("save_rule")) }
                    button type="submit" name="action" value="backtest" { (lang.t("backtest_30d")) }
                }
                h2 { (lang.t("rule_json")) }
                form.stack method="post" action="/alarm-rules" style="max-width:none" {
                    (csrf_field(p))
                    label { (lang.t("rule_json")) br; textarea name="rule" rows="12" style="width:100%;font-family:ui-monospace,monospace" { (draft.unwrap_or(EXAMPLE_RULE)) } }
                    p.muted { "docs/monitor.md" }
                    div { button type="submit" name="action" value="save" { (lang.t("save_rule")) } " "
                          button type="submit" name="action" value="backtest" { (lang.t("backtest_30d")) } }
                }
            }
        },
    ))
}

async fn rules(State(s): St, PageAuth(p): PageAuth) -> PageResult {
    rules_page(&s, &p, None, None, None).await
}

async fn save_rule(State(s): St, PageAuth(p): PageAuth, Form(f): Form<RuleForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    rule_action(&s, &p, f).await
}

/// The simple rule form: the common kinds of rule without writing JSON.
#[derive(Deserialize)]
struct QuickForm {
    csrf: String,
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    machine: String,
    metric: String,
    /// above, below, anomaly or no_data.
    kind: String,
    #[serde(default)]
    limit: String,
    #[serde(default)]
    minutes: String,
    #[serde(default)]
    sensitivity: String,
    severity: String,
    #[serde(default)]
    action: String,
}

/// The rule JSON a simple form describes (the monitor validates the rest).
fn quick_rule(f: &QuickForm) -> Result<serde_json::Value, String> {
    let number = |what: &str, v: &str| v.trim().parse::<f64>().map_err(|_| format!("{what}: {v:?} is not a number"));
    let minutes = if f.minutes.trim().is_empty() { 0.0 } else { number("minutes", &f.minutes)? };
    if !(0.0..=7.0 * 24.0 * 60.0).contains(&minutes) {
        return Err("minutes: 0 to 10080".into());
    }
    let ms = (minutes * 60_000.0).round() as u64;
    let metric = f.metric.trim();
    let (condition, for_ms) = match f.kind.as_str() {
        "above" => (serde_json::json!({"type": "threshold", "metric": metric, "above": number("limit", &f.limit)?}), ms),
        "below" => (serde_json::json!({"type": "threshold", "metric": metric, "below": number("limit", &f.limit)?}), ms),
        "anomaly" => {
            let sensitivity = if f.sensitivity.trim().is_empty() { 1.0 } else { number("sensitivity", &f.sensitivity)? };
            (serde_json::json!({"type": "anomaly", "metric": metric, "sensitivity": sensitivity}), 0)
        }
        "no_data" => {
            let after = if ms == 0 { 300_000 } else { ms };
            let mut c = serde_json::json!({"type": "no_data", "after_ms": after});
            if !metric.is_empty() {
                c["metric"] = metric.into();
            }
            (c, 0)
        }
        other => return Err(format!("kind: {other:?} is not above, below, anomaly or no_data")),
    };
    Ok(serde_json::json!({
        "id": f.id.trim(),
        "name": f.name.trim(),
        "machine": f.machine.trim(),
        "severity": f.severity,
        "condition": condition,
        "for_ms": for_ms,
    }))
}

async fn save_quick_rule(State(s): St, PageAuth(p): PageAuth, Form(f): Form<QuickForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    match quick_rule(&f) {
        Ok(v) => {
            let rule = serde_json::to_string_pretty(&v).unwrap_or_default();
            rule_action(&s, &p, RuleForm { csrf: f.csrf, rule, action: f.action }).await
        }
        Err(detail) => {
            let e = Problem::bad_request(detail);
            Ok(with_status(rules_page(&s, &p, None, Some(&e.detail), None).await?, &e))
        }
    }
}

/// Preview (`action` backtest) or save a rule given as JSON; a refused one comes back in
/// the editor with the reason.
async fn rule_action(s: &PortalState, p: &crate::auth::Principal, f: RuleForm) -> PageResult {
    let rule = match serde_json::from_str::<fc_monitor::Rule>(&f.rule) {
        Ok(rule) => rule,
        Err(e) => {
            let e = Problem::bad_request(format!("rule: {e}"));
            return Ok(with_status(rules_page(s, p, Some(&f.rule), Some(&e.detail), None).await?, &e));
        }
    };
    if f.action == "backtest" {
        let end = fc_core::time::now_ms();
        let start = end - crate::alarms::BACKTEST_DAYS * 86_400_000;
        return match s.monitor.backtest(&p.tenant_id, &rule, start, end).await.map_err(Problem::from) {
            Ok(b) => rules_page(s, p, Some(&f.rule), None, Some(&b)).await,
            Err(e) if e.status == 400 => Ok(with_status(rules_page(s, p, Some(&f.rule), Some(&e.detail), None).await?, &e)),
            Err(e) => Err(e.into()),
        };
    }
    match s.monitor.put_rule(&p.tenant_id, &rule, &actor(s, p)).await.map_err(Problem::from) {
        Ok(_) => Ok(Redirect::to("/alarm-rules").into_response()),
        Err(e) if e.status == 400 => Ok(with_status(rules_page(s, p, Some(&f.rule), Some(&e.detail), None).await?, &e)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct WebhookForm {
    csrf: String,
    id: String,
    url: String,
    min_severity: String,
}

async fn notifications_page(s: &PortalState, p: &crate::auth::Principal, secret: Option<&str>, error: Option<&str>) -> PageResult {
    let lang = p.lang;
    let hooks = s.monitor.webhooks(&p.tenant_id).await?;
    let dead = crate::alarms::without_addresses(p, s.monitor.deliveries(&p.tenant_id, "dead", 100).await?);
    let can_edit = p.role.allows(Role::Owner);
    let mine = match &p.user_id {
        Some(id) => s.monitor.email_subscriptions(&p.tenant_id, id).await?.into_iter().next(),
        None => None,
    };
    Ok(page(
        lang,
        lang.t("notifications"),
        Some(p),
        html! {
            h1 { (lang.t("notifications")) }
            p { a href="/alarms" { "← " (lang.t("alarms")) } }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            @if let Some(secret) = secret {
                div.card { p { (lang.t("webhook_secret_once")) } p.token id="webhook-secret" { (secret) } }
            }
            h2 { (lang.t("email_alarms")) }
            div.card id="email-subscription" {
                @if let Some(m) = &mine {
                    p { (lang.t("email_to")) " " strong { (m.address) } " · " (lang.t("severity")) " ≥ " (m.min_severity)
                        @if !m.machines.is_empty() { " · " (m.machines.join(", ")) } }
                    form.inline method="post" action="/notifications/email/delete" { (csrf_field(p)) button.danger type="submit" { (lang.t("unsubscribe")) } }
                } @else {
                    p.muted { (lang.t("no_email")) }
                }
                form.row method="post" action="/notifications/email" {
                    (csrf_field(p))
                    label { (lang.t("severity")) br; select name="min_severity" {
                        @for v in ["info", "warning", "major", "critical"] {
                            option value=(v) selected[mine.as_ref().map_or(v == "warning", |m| m.min_severity == v)] { (v) }
                        }
                    } }
                    label { (lang.t("machine_globs")) br; input name="machines" maxlength="2000" placeholder="press-*, lathe-2" value=(mine.as_ref().map(|m| m.machines.join(", ")).unwrap_or_default()); }
                    button type="submit" { (lang.t("subscribe")) }
                }
            }
            h2 { (lang.t("webhooks")) }
            table id="webhooks" {
                thead { tr { th { "ID" } th { "URL" } th { (lang.t("severity")) } th {} } }
                tbody { @for w in &hooks {
                    tr data-webhook=(w.id) {
                        td { (w.id) } td { code { (w.url) } } td { "≥ " (w.min_severity) }
                        td { @if can_edit {
                            form.inline method="post" action={ "/notifications/" (w.id) "/delete" } { (csrf_field(p)) button.danger type="submit" { (lang.t("delete")) } }
                        } }
                    }
                } }
            }
            @if can_edit {
                form.row method="post" action="/notifications" {
                    (csrf_field(p))
                    label { "ID" br; input name="id" required maxlength="64" pattern="[a-z0-9._-]+"; }
                    label { "URL" br; input name="url" type="url" required maxlength="2048" placeholder="https://"; }
                    label { (lang.t("severity")) br; select name="min_severity" { @for v in ["info", "warning", "major", "critical"] { option value=(v) { (v) } } } }
                    button type="submit" { (lang.t("add_webhook")) }
                }
            }
            h2 { (lang.t("dead_letters")) }
            @if dead.is_empty() { p.muted { (lang.t("no_dead_letters")) } }
            @else {
                table id="dead-letters" {
                    thead { tr { th { (lang.t("recipient")) } th { (lang.t("alarms")) } th { (lang.t("attempts")) } th { (lang.t("reason")) } th { (lang.t("raised_at")) } } }
                    tbody { @for d in &dead {
                        tr data-delivery=(d.id) { td { @if d.email.is_empty() { (d.webhook_id) } @else { (d.email) } } td { (d.alarm_id) " (" (d.kind) ")" } td { (d.attempts) } td { (d.last_error) } td { (when(d.created_at_ms)) } }
                    } }
                }
            }
        },
    ))
}

async fn notifications(State(s): St, PageAuth(p): PageAuth) -> PageResult {
    notifications_page(&s, &p, None, None).await
}

async fn save_webhook(State(s): St, PageAuth(p): PageAuth, Form(f): Form<WebhookForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Owner)?;
    let input = fc_monitor_api::WebhookInput { url: f.url.trim().to_owned(), min_severity: f.min_severity, ..Default::default() };
    match s.monitor.put_webhook(&p.tenant_id, f.id.trim(), &input).await.map_err(Problem::from) {
        Ok(w) => notifications_page(&s, &p, w.secret.as_deref(), None).await,
        Err(e) if e.status == 400 => Ok(with_status(notifications_page(&s, &p, None, Some(&e.detail)).await?, &e)),
        Err(e) => Err(e.into()),
    }
}

async fn delete_webhook(State(s): St, PageAuth(p): PageAuth, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Owner)?;
    s.monitor.delete_webhook(&p.tenant_id, &id).await?;
    Ok(Redirect::to("/notifications").into_response())
}

#[derive(Deserialize)]
struct EmailForm {
    csrf: String,
    min_severity: String,
    #[serde(default)]
    machines: String,
}

async fn save_email(State(s): St, PageAuth(p): PageAuth, Form(f): Form<EmailForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    let (user, email) = crate::alarms::me(&s, &p)?;
    let machines: Vec<String> = f.machines.split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned).collect();
    match s.monitor.put_email_subscription(&p.tenant_id, &user, &email, &f.min_severity, &machines).await.map_err(Problem::from) {
        Ok(_) => Ok(Redirect::to("/notifications").into_response()),
        Err(e) if e.status == 400 || e.status == 409 => Ok(with_status(notifications_page(&s, &p, None, Some(&e.detail)).await?, &e)),
        Err(e) => Err(e.into()),
    }
}

async fn delete_email(State(s): St, PageAuth(p): PageAuth, Form(f): Form<CsrfForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    if let Some(user) = &p.user_id {
        s.monitor.delete_email_subscription(&p.tenant_id, user).await?;
    }
    Ok(Redirect::to("/notifications").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(kind: &str, limit: &str, minutes: &str) -> QuickForm {
        QuickForm {
            csrf: String::new(),
            id: " hot ".into(),
            name: "Too hot".into(),
            machine: "press-*".into(),
            metric: "temperature".into(),
            kind: kind.into(),
            limit: limit.into(),
            minutes: minutes.into(),
            sensitivity: String::new(),
            severity: "major".into(),
            action: String::new(),
        }
    }

    #[test]
    fn the_simple_form_makes_the_rules_it_says() {
        let r: fc_monitor::Rule = serde_json::from_value(quick_rule(&form("above", "80.5", "2")).unwrap()).unwrap();
        r.validate().unwrap();
        assert_eq!((r.id.as_str(), r.machine.as_str(), r.for_ms), ("hot", "press-*", 120_000));
        assert!(matches!(r.condition, fc_monitor::Condition::Threshold { above: Some(a), below: None, .. } if a == 80.5));
        let r: fc_monitor::Rule = serde_json::from_value(quick_rule(&form("no_data", "", "")).unwrap()).unwrap();
        assert!(matches!(r.condition, fc_monitor::Condition::NoData { after_ms: 300_000, .. }));
        let r: fc_monitor::Rule = serde_json::from_value(quick_rule(&form("anomaly", "", "")).unwrap()).unwrap();
        r.validate().unwrap();
        assert!(quick_rule(&form("above", "hot", "")).unwrap_err().contains("limit"));
        assert!(quick_rule(&form("above", "80", "-1")).unwrap_err().contains("minutes"));
        assert!(quick_rule(&form("sideways", "80", "")).unwrap_err().contains("kind"));
    }
}
