//! OEE over REST and as a page. The monitor service owns the setup (calendar, reasons,
//! machines) and computes the reports from stored readings; this module takes the
//! caller's tenant from its credential and maps roles: viewers read, operators give
//! downtime reasons (from a tablet on the shop floor: big buttons), owners edit the setup.

use crate::PortalState;
use crate::alarms::actor;
use crate::auth::{ApiAuth, PageAuth, Principal, check_csrf};
use crate::pages::{PageResult, csrf_field, page, with_status};
use crate::problem::Problem;
use crate::web::ApiJson;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use fc_monitor_api::{OeeFigures, OeeReportView};
use fc_registry::Role;
use maud::{Markup, html};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::ToSchema;

type St = State<Arc<PortalState>>;

const DAY_MS: i64 = 86_400_000;

/// REST and page routes.
pub fn routes() -> Router<Arc<PortalState>> {
    Router::new()
        .route("/api/v1/oee", get(get_oee))
        .route("/api/v1/oee/setup", get(get_oee_setup).put(put_oee_setup))
        .route("/api/v1/oee/downtime-reasons", post(post_downtime_reason))
        .route("/oee", get(oee_page))
        .route("/oee/reason", post(reason_form))
        .route("/oee/setup", post(setup_form))
}

/// Which OEE to report.
#[derive(Deserialize, utoipa::IntoParams, Default)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub struct OeeQuery {
    /// Shifts starting at or after, Unix ms (default: `end_ms` less 1 day).
    start_ms: Option<i64>,
    /// Shifts starting before, Unix ms (default: now; at most 8 days after the start).
    end_ms: Option<i64>,
    /// Only this machine.
    machine: String,
    /// Only this line.
    line: String,
}

#[utoipa::path(get, path = "/api/v1/oee", params(OeeQuery), responses((status = 200, description = "OEE per machine and shift, per machine, per line and in all; state timeline, down periods and the Pareto of reasons", body = OeeReportView), (status = 404, description = "no such machine or line in the setup", body = Problem), (status = 409, description = "the tenant has no OEE setup", body = Problem)))]
pub(crate) async fn get_oee(
    State(s): St,
    ApiAuth(p): ApiAuth,
    q: Result<Query<OeeQuery>, QueryRejection>,
) -> Result<Json<OeeReportView>, Problem> {
    let Query(q) = q.map_err(|e| Problem::bad_request(e.body_text()))?;
    let end = q.end_ms.unwrap_or_else(fc_core::time::now_ms);
    let start = q.start_ms.unwrap_or(end - DAY_MS);
    Ok(Json(s.monitor.oee(&p.tenant_id, start, end, &q.machine, &q.line).await?))
}

#[utoipa::path(get, path = "/api/v1/oee/setup", responses((status = 200, description = "the tenant's OEE setup: calendar (shifts, breaks, holidays, planned stops), downtime reasons, machines (state rule, counters, planned run time per item); docs/monitor.md#oee", body = Object), (status = 404, description = "none yet", body = Problem)))]
pub(crate) async fn get_oee_setup(State(s): St, ApiAuth(p): ApiAuth) -> Result<Json<serde_json::Value>, Problem> {
    s.monitor.oee_setup(&p.tenant_id).await?.map(Json).ok_or_else(|| Problem::new(fc_core::ErrorCode::NotFound, "no OEE setup yet"))
}

#[utoipa::path(put, path = "/api/v1/oee/setup", request_body = Object, responses((status = 200, description = "saved", body = Object), (status = 400, description = "every problem of the setup, or a metric the tenant does not have", body = Problem)))]
pub(crate) async fn put_oee_setup(
    State(s): St,
    ApiAuth(p): ApiAuth,
    ApiJson(b): ApiJson<serde_json::Value>,
) -> Result<Json<serde_json::Value>, Problem> {
    p.require(Role::Owner)?;
    Ok(Json(s.monitor.put_oee_setup(&p.tenant_id, &b).await?))
}

/// Why a machine was down.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonIn {
    /// The machine.
    pub machine: String,
    /// An instant within the down period, Unix ms (it explains the whole period).
    pub at_ms: i64,
    /// A reason code of the tenant's tree.
    pub reason: String,
}

#[utoipa::path(post, path = "/api/v1/oee/downtime-reasons", request_body = ReasonIn, responses((status = 204, description = "recorded"), (status = 400, description = "a code not in the tree, an instant in the future", body = Problem)))]
pub(crate) async fn post_downtime_reason(State(s): St, ApiAuth(p): ApiAuth, ApiJson(b): ApiJson<ReasonIn>) -> Result<StatusCode, Problem> {
    p.require(Role::Operator)?;
    s.monitor.set_downtime_reason(&p.tenant_id, &b.machine, b.at_ms, &b.reason, &actor(&s, &p)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The local day of a calendar offset: (start ms, "YYYY-MM-DD").
fn local_day(date: Option<&str>, offset_min: i64, now: i64) -> (i64, String) {
    let off = offset_min * 60_000;
    let day = date
        .and_then(|d| fc_monitor::backtest::parse_timestamp(d).filter(|_| d.len() == 10))
        .map(|utc_midnight| utc_midnight.div_euclid(DAY_MS))
        .unwrap_or_else(|| (now + off).div_euclid(DAY_MS));
    let start = day * DAY_MS - off;
    (start, fc_monitor::backtest::rfc3339(day * DAY_MS)[..10].to_owned())
}

/// Today's OEE of every machine (the dashboard's cards); empty without a setup.
pub(crate) async fn today_by_machine(s: &PortalState, tenant: &str) -> std::collections::HashMap<String, Option<f64>> {
    let Ok(Some(setup)) = s.monitor.oee_setup(tenant).await else { return Default::default() };
    let offset = setup["calendar"]["utc_offset_min"].as_i64().unwrap_or(0);
    let now = fc_core::time::now_ms();
    let (start, _) = local_day(None, offset, now);
    match s.monitor.oee(tenant, start, start + DAY_MS, "", "").await {
        Ok(r) => r.machines.into_iter().map(|m| (m.name, m.figures.oee)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard without OEE");
            Default::default()
        }
    }
}

/// A machine state's label.
fn state_label(lang: crate::i18n::Lang, state: &str) -> &'static str {
    match state {
        "running" => lang.t("running"),
        "idle" => lang.t("idle"),
        "down" => lang.t("state_down"),
        "setup" => lang.t("state_setup"),
        "planned_stop" => lang.t("state_planned_stop"),
        _ => "?",
    }
}

/// "87.5 %" or "—".
pub(crate) fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{:.1} %", v * 100.0))
}

fn hours(ms: f64) -> String {
    format!("{:.1} h", ms / 3_600_000.0)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PageQ {
    date: Option<String>,
    machine: String,
    line: String,
}

fn figures_cells(f: &OeeFigures) -> Markup {
    html! {
        td { (hours(f.planned_busy_ms as f64)) } td { (hours(f.actual_production_ms as f64)) }
        td { (f.produced) " / " (f.good) }
        td data-factor="availability" { (pct(f.availability)) } td data-factor="effectiveness" { (pct(f.effectiveness)) }
        td data-factor="quality" { (pct(f.quality)) } td.big data-factor="oee" { strong { (pct(f.oee)) } }
    }
}

async fn oee_page(State(s): St, PageAuth(p): PageAuth, Query(q): Query<PageQ>) -> PageResult {
    render(&s, &p, &q, None).await
}

async fn render(s: &PortalState, p: &Principal, q: &PageQ, error: Option<&str>) -> PageResult {
    let lang = p.lang;
    let setup = s.monitor.oee_setup(&p.tenant_id).await?;
    let offset = setup.as_ref().and_then(|x| x["calendar"]["utc_offset_min"].as_i64()).unwrap_or(0);
    let now = fc_core::time::now_ms();
    let (start, date) = local_day(q.date.as_deref(), offset, now);
    let report = match &setup {
        Some(_) => Some(s.monitor.oee(&p.tenant_id, start, start + DAY_MS, &q.machine, &q.line).await?),
        None => None,
    };
    let reasons: Vec<(String, String)> = setup
        .as_ref()
        .and_then(|x| x["reasons"].as_array())
        .map(|a| a.iter().map(|r| (r["code"].as_str().unwrap_or("").to_owned(), r["label"].as_str().unwrap_or("").to_owned())).collect())
        .unwrap_or_default();
    let label = |code: &str| reasons.iter().find(|(c, _)| c == code).map_or(code.to_owned(), |(_, l)| l.clone());
    let day_link = |d: i64| {
        let (_, date) = local_day(None, offset, start + d * DAY_MS);
        format!("/oee?date={date}&machine={}&line={}", crate::pages::encode(&q.machine), crate::pages::encode(&q.line))
    };
    let local = |ms: i64| fc_monitor::backtest::rfc3339(ms + offset * 60_000)[11..16].to_owned();
    Ok(page(
        lang,
        lang.t("oee"),
        Some(p),
        html! {
            h1 { (lang.t("oee")) " · " (date) }
            p { a href=(day_link(-1)) { "← " (lang.t("previous_day")) } " · " a href=(day_link(1)) { (lang.t("next_day")) " →" } }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            @match &report {
                None => { p.muted id="no-oee-setup" { (lang.t("no_oee_setup")) } }
                Some(r) => {
                    @if r.truncated { p.error { (lang.t("oee_truncated")) } }
                    @if let Some(t) = &r.total {
                        div.cards id="oee-total" {
                            @for (name, v) in [("availability", t.figures.availability), ("effectiveness", t.figures.effectiveness), ("quality", t.figures.quality), ("oee", t.figures.oee)] {
                                div.card data-total=(name) { p.muted { (lang.t(name)) } p.big { strong { (pct(v)) } } }
                            }
                        }
                    }
                    h2 { (lang.t("by_shift")) }
                    table id="oee-rows" {
                        thead { tr { th { (lang.t("machine")) } th { (lang.t("line")) } th { (lang.t("shift")) } th { (lang.t("planned_busy")) } th { (lang.t("actual_production")) }
                            th { (lang.t("produced_good")) } th { (lang.t("availability")) } th { (lang.t("effectiveness")) } th { (lang.t("quality")) } th { "OEE" } } }
                        tbody { @for row in &r.rows {
                            tr data-machine=(row.machine) data-shift=(row.shift) {
                                td { a href={ "/oee?date=" (date) "&machine=" (crate::pages::encode(&row.machine)) } { (row.machine) } }
                                td { @if !row.line.is_empty() { a href={ "/oee?date=" (date) "&line=" (crate::pages::encode(&row.line)) } { (row.line) } } }
                                td { (row.shift) " " span.muted { (local(row.start_ms)) "–" (local(row.end_ms)) } }
                                (figures_cells(&row.figures))
                            }
                        } }
                    }
                    @if !r.lines.is_empty() {
                        h2 { (lang.t("by_line")) }
                        table id="oee-lines" {
                            thead { tr { th { (lang.t("line")) } th { (lang.t("planned_busy")) } th { (lang.t("actual_production")) }
                                th { (lang.t("produced_good")) } th { (lang.t("availability")) } th { (lang.t("effectiveness")) } th { (lang.t("quality")) } th { "OEE" } } }
                            tbody { @for l in &r.lines { tr data-line=(l.name) { td { (l.name) } (figures_cells(&l.figures)) } } }
                        }
                    }
                    h2 { (lang.t("timeline")) }
                    @let (t0, t1) = (r.timeline.iter().map(|x| x.start_ms).min().unwrap_or(start), r.timeline.iter().map(|x| x.end_ms).max().unwrap_or(start + 1));
                    div id="oee-timeline" {
                        @for m in &r.machines {
                            div.timeline-row {
                                span.timeline-name { (m.name) }
                                div.timeline {
                                    @for sp in r.timeline.iter().filter(|x| x.machine == m.name) {
                                        span class={ "seg " (sp.state) } title={ (state_label(lang, &sp.state)) " " (local(sp.start_ms)) "–" (local(sp.end_ms)) }
                                            style={ "left:" (format!("{:.3}", (sp.start_ms - t0) as f64 * 100.0 / (t1 - t0).max(1) as f64)) "%;width:" (format!("{:.3}", (sp.end_ms - sp.start_ms) as f64 * 100.0 / (t1 - t0).max(1) as f64)) "%" } {}
                                    }
                                }
                            }
                        }
                        p.muted { @for st in ["running", "idle", "down", "setup", "planned_stop"] { span class={ "seg legend " (st) } {} " " (state_label(lang, st)) " " } }
                    }
                    h2 { (lang.t("downtime_pareto")) }
                    @let longest = r.pareto.first().map_or(1, |x| x.ms.max(1));
                    div id="oee-pareto" {
                        @for x in &r.pareto {
                            div.pareto-row data-reason=(x.reason) {
                                span.pareto-name { (if x.reason == "unexplained" { lang.t("unexplained").to_owned() } else { label(&x.reason) }) }
                                span.pareto-bar style={ "width:" (format!("{:.1}", x.ms as f64 * 100.0 / longest as f64)) "%" } {}
                                span.muted { (hours(x.ms as f64)) " · " (x.count) "×" }
                            }
                        }
                    }
                    h2 { (lang.t("stops")) }
                    @let open: Vec<_> = r.downtime.iter().filter(|d| d.reason.is_none()).collect();
                    @if open.is_empty() { p.muted { (lang.t("no_unexplained")) } }
                    @for d in open.iter().take(50) {
                        form.row.stop method="post" action="/oee/reason" data-stop-machine=(d.machine) {
                            (csrf_field(p))
                            input type="hidden" name="machine" value=(d.machine);
                            input type="hidden" name="at_ms" value=(d.start_ms);
                            input type="hidden" name="date" value=(date);
                            strong { (d.machine) } " " (local(d.start_ms)) "–" (local(d.end_ms)) " (" (state_label(lang, &d.state)) ")"
                            @if p.role.allows(Role::Operator) {
                                select name="reason" required { option value="" { "…" } @for (code, l) in &reasons { option value=(code) { (l) } } }
                                button type="submit" { (lang.t("give_reason")) }
                            }
                        }
                    }
                    @let explained: Vec<_> = r.downtime.iter().filter(|d| d.reason.is_some()).collect();
                    @if !explained.is_empty() {
                        table id="oee-explained" { tbody { @for d in &explained {
                            tr { td { (d.machine) } td { (local(d.start_ms)) "–" (local(d.end_ms)) } td { (label(d.reason.as_deref().unwrap_or(""))) } }
                        } } }
                    }
                }
            }
            @if p.role.allows(Role::Owner) {
                details open[setup.is_none()] {
                    summary { (lang.t("oee_setup")) }
                    form.stack method="post" action="/oee/setup" style="max-width:none" {
                        (csrf_field(p))
                        textarea name="setup" rows="16" style="width:100%;font-family:ui-monospace,monospace" {
                            (setup.as_ref().map(|x| serde_json::to_string_pretty(x).unwrap_or_default()).unwrap_or_else(|| EXAMPLE_SETUP.to_owned()))
                        }
                        p.muted { "docs/monitor.md#oee" }
                        div { button type="submit" { (lang.t("save")) } }
                    }
                }
            }
        },
    ))
}

const EXAMPLE_SETUP: &str = r#"{
  "calendar": {
    "utc_offset_min": 540,
    "shifts": [
      { "name": "day", "start": "08:00", "end": "16:00", "breaks": [["12:00", "12:30"]], "days": [1, 2, 3, 4, 5] },
      { "name": "night", "start": "22:00", "end": "06:00", "breaks": [["02:00", "02:30"]] }
    ],
    "holidays": ["2026-12-25"],
    "planned_stops": []
  },
  "reasons": [
    { "code": "unplanned", "label": "Unplanned", "kind": "unplanned" },
    { "code": "breakdown", "label": "Breakdown", "parent": "unplanned", "kind": "unplanned" },
    { "code": "material", "label": "Material missing", "parent": "unplanned", "kind": "unplanned" },
    { "code": "changeover", "label": "Changeover", "kind": "changeover" },
    { "code": "maintenance", "label": "Planned maintenance", "kind": "planned" }
  ],
  "machines": [
    { "machine": "press-1", "line": "A", "state": { "metric": "spindle_load", "running_above": 20 },
      "produced_metric": "parts", "scrap_metric": "scrap", "planned_ms_per_item": 30000 }
  ]
}"#;

#[derive(Deserialize)]
struct ReasonForm {
    csrf: String,
    machine: String,
    at_ms: i64,
    reason: String,
    #[serde(default)]
    date: String,
}

async fn reason_form(State(s): St, PageAuth(p): PageAuth, Form(f): Form<ReasonForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    let q = PageQ { date: Some(f.date.clone()).filter(|d| !d.is_empty()), ..Default::default() };
    match s.monitor.set_downtime_reason(&p.tenant_id, &f.machine, f.at_ms, &f.reason, &actor(&s, &p)).await.map_err(Problem::from) {
        Ok(()) => {
            Ok(Redirect::to(&format!("/oee?date={}", f.date.chars().filter(|c| c.is_ascii_digit() || *c == '-').collect::<String>()))
                .into_response())
        }
        Err(e) if e.status == 400 || e.status == 404 => Ok(with_status(render(&s, &p, &q, Some(&e.detail)).await?, &e)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct SetupForm {
    csrf: String,
    setup: String,
}

async fn setup_form(State(s): St, PageAuth(p): PageAuth, Form(f): Form<SetupForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Owner)?;
    let saved = match serde_json::from_str::<serde_json::Value>(&f.setup) {
        Ok(v) => s.monitor.put_oee_setup(&p.tenant_id, &v).await.map_err(Problem::from),
        Err(e) => Err(Problem::bad_request(format!("setup: {e}"))),
    };
    match saved {
        Ok(_) => Ok(Redirect::to("/oee").into_response()),
        Err(e) if e.status == 400 => Ok(with_status(render(&s, &p, &PageQ::default(), Some(&e.detail)).await?, &e)),
        Err(e) => Err(e.into()),
    }
}
