//! Server-rendered pages. Every form posts its CSRF token; every page scopes
//! its queries to the session's tenant. Text is escaped by maud.

use crate::auth::{self, PageAuth, Principal, check_csrf};
use crate::i18n::Lang;
use crate::problem::Problem;
use crate::{PortalState, live};
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use fc_registry::Role;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use std::sync::Arc;

type St = State<Arc<PortalState>>;

/// Page routes.
pub fn routes() -> Router<Arc<PortalState>> {
    Router::new()
        .route("/", get(dashboard))
        .route("/signup", get(signup_form).post(signup))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/lang/{code}", get(set_lang))
        .route("/machines/{machine}", get(machine))
        .route("/machines/{machine}/live", get(live::sse))
        .route("/alarms/live", get(live::alarms_sse))
        .route("/explore", get(explore))
        .route("/devices", get(devices).post(create_device))
        .route("/devices/{id}/revoke", post(revoke_device))
        .route("/devices/{id}/rotate", post(rotate_device))
        .route("/users", get(users))
        .route("/users/invite", post(invite))
        .route("/users/invitations/{id}/withdraw", post(withdraw_invite))
        .route("/users/{id}/role", post(change_role))
        .route("/invite/{token}", get(invite_form).post(accept_invite))
        .route("/api-keys", get(api_keys).post(create_api_key))
        .route("/api-keys/{id}/revoke", post(revoke_api_key))
        .route("/usage", get(usage))
}

/// An error shown as a page.
pub struct PageError(Problem);

impl From<Problem> for PageError {
    fn from(p: Problem) -> Self {
        Self(p)
    }
}
impl From<fc_registry::RegistryError> for PageError {
    fn from(e: fc_registry::RegistryError) -> Self {
        Self(e.into())
    }
}
impl From<fc_core::ServiceError> for PageError {
    fn from(e: fc_core::ServiceError) -> Self {
        Self(e.into())
    }
}
impl From<fc_store::StoreError> for PageError {
    fn from(e: fc_store::StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = html! {
            (DOCTYPE)
            html { head { meta charset="utf-8"; title { "FactoryChain" } link rel="stylesheet" href="/static/uPlot.min.css"; style { (CSS) } }
              body { main { h1 { (self.0.title) } p.error { (self.0.detail) } p { a href="/" { "←" } } } } }
        };
        (status, body).into_response()
    }
}

pub(crate) type PageResult = Result<Response, PageError>;

const CSS: &str = r#"
*{box-sizing:border-box}body{margin:0;font:16px/1.45 system-ui,-apple-system,"Noto Sans KR",sans-serif;color:#1d2433;background:#f5f6f8}
header{display:flex;flex-wrap:wrap;gap:.25rem 1rem;align-items:center;padding:.6rem 1rem;background:#1d2433;color:#fff}
header a{color:#dfe6f5;text-decoration:none;padding:.45rem .3rem;font-size:1.02rem}header a:hover{color:#fff}header .brand{font-weight:700;margin-right:auto}
header form{margin:0}header button{background:none;border:1px solid #6b7a99;color:#dfe6f5;border-radius:6px;padding:.35rem .7rem}
main{max-width:1100px;margin:0 auto;padding:1rem}h1{font-size:1.4rem}
table{width:100%;border-collapse:collapse;background:#fff;border-radius:8px;overflow:hidden}th,td{text-align:left;padding:.6rem .7rem;border-bottom:1px solid #e5e8ee}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:1rem}.card{background:#fff;border-radius:10px;padding:1rem;box-shadow:0 1px 2px #0001}
.card a{color:inherit;text-decoration:none}.dot{display:inline-block;width:.8rem;height:.8rem;border-radius:50%;margin-right:.4rem;vertical-align:middle}
.running{background:#1f9d55}.idle{background:#e3a008}.offline{background:#c81e1e}
form.inline{display:inline}input,select,button{font:inherit;padding:.55rem .7rem;border:1px solid #c5ccd8;border-radius:6px;min-height:44px}
button{background:#2456d3;color:#fff;border:none;cursor:pointer}button.danger{background:#c81e1e}
.stack{display:flex;flex-direction:column;gap:.6rem;max-width:420px}.row{display:flex;flex-wrap:wrap;gap:.6rem;align-items:end;margin:.8rem 0}
.token{font-family:ui-monospace,monospace;background:#fff7d6;border:1px solid #e3a008;padding:.8rem;border-radius:8px;word-break:break-all}
.error{color:#c81e1e}.muted{color:#67718a}.chart{background:#fff;border-radius:8px;margin:.5rem 0;min-height:220px}
.big{font-size:1.6rem;font-weight:600}
.timeline-row,.pareto-row{display:flex;align-items:center;gap:.6rem;margin:.3rem 0}.timeline-name{width:8rem}.pareto-name{width:12rem}
.timeline{position:relative;flex:1;height:1.6rem;background:#e5e8ee;border-radius:4px;overflow:hidden}.seg{position:absolute;top:0;bottom:0}
.seg.legend{position:static;display:inline-block;width:1rem;height:1rem;vertical-align:middle}.down{background:#c81e1e}.setup{background:#7e3af2}.planned_stop{background:#9ca3af}
.pareto-bar{display:inline-block;height:1.2rem;background:#2456d3;border-radius:3px;max-width:50%}form.stop select,form.stop button{min-height:56px;font-size:1.1rem}
pre{white-space:pre-wrap;word-break:break-all;background:#fff;border-radius:8px;padding:.7rem;font-size:.9rem}
"#;

fn layout(lang: Lang, title: &str, who: Option<&Principal>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t("app")) }
                link rel="stylesheet" href="/static/uPlot.min.css";
                style { (maud::PreEscaped(CSS)) }
                script src="/static/htmx.min.js" defer {}
                script src="/static/uPlot.iife.min.js" defer {}
                script src="/static/portal.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { (lang.t("app")) }
                    @if let Some(p) = who {
                        a href="/" { (lang.t("dashboard")) }
                        a href="/alarms" { (lang.t("alarms")) }
                        a href="/oee" { "OEE" }
                        a href="/explore" { (lang.t("explore")) }
                        a href="/devices" { (lang.t("devices")) }
                        @if p.role.allows(Role::Owner) {
                            a href="/users" { (lang.t("users")) }
                            a href="/api-keys" { (lang.t("api_keys")) }
                        }
                        a href="/partners" { (lang.t("partners")) }
                        a href="/orders" { (lang.t("orders")) }
                        a href="/deliveries" { (lang.t("deliveries")) }
                        a href="/designs" { (lang.t("designs")) }
                        a href="/statements" { (lang.t("statements")) }
                        a href="/ledger" { (lang.t("ledger")) }
                        a href="/org" { (lang.t("org_profile")) }
                        a href="/usage" { (lang.t("usage")) }
                    }
                    a href={ "/lang/" (if lang == Lang::Ko { "en" } else { "ko" }) } { (lang.t("language")) }
                    @if let Some(p) = who {
                        form method="post" action="/logout" { input type="hidden" name="csrf" value=(p.csrf.clone().unwrap_or_default()); button type="submit" { (lang.t("logout")) } }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub(crate) fn page(lang: Lang, title: &str, who: Option<&Principal>, body: Markup) -> Response {
    layout(lang, title, who, body).into_response()
}

/// A page shown again after a refused form, with the refusal's status.
pub(crate) fn with_status(mut page: Response, e: &Problem) -> Response {
    *page.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    page
}

pub(crate) fn csrf_field(p: &Principal) -> Markup {
    html! { input type="hidden" name="csrf" value=(p.csrf.clone().unwrap_or_default()); }
}

// ---- sign-up, login, logout, language ----

#[derive(Deserialize)]
struct SignupForm {
    company: String,
    plan: String,
    name: String,
    email: String,
    password: String,
}

fn signup_page(lang: Lang, error: Option<&str>) -> Response {
    page(
        lang,
        lang.t("signup"),
        None,
        html! {
            h1 { (lang.t("signup")) }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.stack method="post" action="/signup" {
                label { (lang.t("company")) input name="company" required maxlength="100"; }
                label { (lang.t("plan"))
                    select name="plan" { @for p in fc_registry::plans::self_service_plans() { option value=(p.id) { (p.name) " — " (p.max_devices) " devices, ₩" (p.price_krw_month) "/month" } } } }
                label { (lang.t("name")) input name="name" required maxlength="100"; }
                label { (lang.t("email")) input name="email" type="email" required; }
                label { (lang.t("password")) input name="password" type="password" required minlength="10"; }
                button type="submit" { (lang.t("signup")) }
            }
            p { a href="/login" { (lang.t("login")) } }
        },
    )
}

/// Run a registry call that hashes or verifies a password within the process's
/// argon2 budget ([`auth::PasswordHashing`]): argon2 is deliberately slow, must not
/// hold an async worker, and must not crowd the store out of the blocking pool.
async fn hashing<T: Send + 'static>(
    s: &PortalState,
    call: impl FnOnce(&fc_registry::Registry) -> Result<T, fc_registry::RegistryError> + Send + 'static,
) -> Result<Result<T, fc_registry::RegistryError>, auth::HashingBusy> {
    let registry = s.registry.clone();
    s.hashing.run(move || call(&registry)).await
}

/// A page refused for now, with its status and how long to wait (`Retry-After`, seconds).
fn try_later(mut page: Response, status: StatusCode, retry_after_s: u32) -> Response {
    *page.status_mut() = status;
    page.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after_s));
    page
}

/// Start a session for `user` and go to the dashboard.
fn signed_in(s: &PortalState, user: &fc_registry::User) -> PageResult {
    let (sid, _) = s.registry.create_session(user)?;
    Ok(([(header::SET_COOKIE, auth::session_cookie(&sid, s.config.secure_cookies))], Redirect::to("/")).into_response())
}

async fn signup_form(headers: HeaderMap) -> Response {
    signup_page(auth::lang(&headers), None)
}

async fn signup(State(s): St, headers: HeaderMap, client: auth::ClientAddr, Form(f): Form<SignupForm>) -> Response {
    let lang = auth::lang(&headers);
    // Each sign-up costs an argon2 hash and creates a tenant: throttled per client address.
    if !s.signup_limiter.allow(&client.throttle_key()) {
        metrics::counter!("portal_signups_total", "result" => "throttled").increment(1);
        return try_later(signup_page(lang, Some(lang.t("too_many_signups"))), StatusCode::TOO_MANY_REQUESTS, 3600);
    }
    let Ok(signed) = hashing(&s, move |r| r.sign_up(&f.company, &f.plan, &f.email, &f.name, &f.password)).await else {
        metrics::counter!("portal_signups_total", "result" => "busy").increment(1);
        return try_later(signup_page(lang, Some(lang.t("busy"))), StatusCode::SERVICE_UNAVAILABLE, 1);
    };
    match signed {
        Ok((_, user)) => {
            metrics::counter!("portal_signups_total", "result" => "created").increment(1);
            signed_in(&s, &user).into_response()
        }
        Err(e) => {
            metrics::counter!("portal_signups_total", "result" => "refused").increment(1);
            let p: Problem = e.into();
            with_status(signup_page(lang, Some(&p.detail)), &p)
        }
    }
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

fn login_page(lang: Lang, error: Option<&str>) -> Response {
    page(
        lang,
        lang.t("login"),
        None,
        html! {
            h1 { (lang.t("login")) }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.stack method="post" action="/login" {
                label { (lang.t("email")) input name="email" type="email" required; }
                label { (lang.t("password")) input name="password" type="password" required; }
                button type="submit" { (lang.t("login")) }
            }
            p { a href="/signup" { (lang.t("signup")) } }
        },
    )
}

async fn login_form(headers: HeaderMap) -> Response {
    login_page(auth::lang(&headers), None)
}

async fn login(State(s): St, headers: HeaderMap, client: auth::ClientAddr, Form(f): Form<LoginForm>) -> Response {
    let lang = auth::lang(&headers);
    // Before any argon2 work: a refused attempt costs a few map lookups, nothing more.
    if !s.login_limiter.allow(client, &f.email) {
        metrics::counter!("portal_logins_total", "result" => "throttled").increment(1);
        return try_later(login_page(lang, Some(lang.t("too_many"))), StatusCode::TOO_MANY_REQUESTS, 60);
    }
    let (email, password) = (f.email.clone(), f.password.clone());
    match hashing(&s, move |r| r.login(&email, &password)).await {
        Err(auth::HashingBusy) => {
            metrics::counter!("portal_logins_total", "result" => "busy").increment(1);
            try_later(login_page(lang, Some(lang.t("busy"))), StatusCode::SERVICE_UNAVAILABLE, 1)
        }
        Ok(Ok(user)) => {
            metrics::counter!("portal_logins_total", "result" => "ok").increment(1);
            signed_in(&s, &user).into_response()
        }
        Ok(Err(_)) => {
            metrics::counter!("portal_logins_total", "result" => "refused").increment(1);
            let mut r = login_page(lang, Some(lang.t("invalid_login")));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(s): St, PageAuth(p): PageAuth, headers: HeaderMap, Form(f): Form<CsrfForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    if let Some(sid) = auth::cookie(&headers, auth::SESSION_COOKIE) {
        s.registry.delete_session(sid)?;
    }
    Ok(([(header::SET_COOKIE, auth::clear_session_cookie(s.config.secure_cookies))], Redirect::to("/login")).into_response())
}

async fn set_lang(Path(code): Path<String>, headers: HeaderMap) -> Response {
    let code = if code == "ko" { "ko" } else { "en" };
    // Back to the page the switch was clicked on: only a local path, never `//host` (open redirect).
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("://").map(|i| &r[i + 3..]))
        .and_then(|r| r.find('/').map(|i| r[i..].to_string()))
        .filter(|p| p.starts_with('/') && !p.starts_with("//") && !p.contains('\\'))
        .unwrap_or_else(|| "/".into());
    ([(header::SET_COOKIE, format!("lang={code}; Path=/; SameSite=Lax; Max-Age=31536000"))], Redirect::to(&back)).into_response()
}

// ---- dashboard and machine pages ----

/// Status of a machine from the age of its newest reading.
pub fn machine_status(age_ms: i64) -> &'static str {
    if age_ms < 60_000 {
        "running"
    } else if age_ms < 15 * 60_000 {
        "idle"
    } else {
        "offline"
    }
}

async fn dashboard(State(s): St, PageAuth(p): PageAuth) -> PageResult {
    let lang = p.lang;
    let latest = s.telemetry.latest(&p.tenant_id, &[]).await?;
    let now = fc_core::time::now_ms();
    // machine -> (newest ts, readings)
    // machine -> (newest timestamp, [(metric, unit, value)])
    type MachineRow = (i64, Vec<(String, String, f64)>);
    let mut machines: std::collections::BTreeMap<String, MachineRow> = Default::default();
    // Open alarms per machine; the machines still show while the monitor is unreachable.
    let open = fc_monitor_api::AlarmQuery { open_only: Some(true), limit: Some(1000), ..Default::default() };
    let alarms = s.monitor.alarms(&p.tenant_id, &open).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "dashboard without alarms");
        Vec::new()
    });
    let oee_today = crate::oee::today_by_machine(&s, &p.tenant_id).await;
    let mut open_by_machine: std::collections::HashMap<&str, usize> = Default::default();
    for a in &alarms {
        *open_by_machine.entry(a.machine.as_str()).or_default() += 1;
    }
    for l in latest {
        let e = machines.entry(l.series.machine.clone()).or_insert((i64::MIN, Vec::new()));
        e.0 = e.0.max(l.ts_ms);
        e.1.push((l.series.metric, l.series.unit, l.value));
    }
    Ok(page(
        lang,
        lang.t("dashboard"),
        Some(&p),
        html! {
            h1 { (lang.t("dashboard")) }
            @if machines.is_empty() { p.muted { (lang.t("no_machines")) } }
            div.cards {
                @for (m, (ts, readings)) in &machines {
                    @let status = machine_status(now - ts);
                    div.card data-machine=(m) {
                        a href={ "/machines/" (encode(m)) } {
                            h2 { span class={ "dot " (status) } title=(lang.t(status)) {} (m) }
                            p.muted { (lang.t(status)) }
                            @if let Some(n) = open_by_machine.get(m.as_str()) {
                                p.error.alarm-count { strong { (n) } " " (lang.t("active_alarms")) }
                            }
                            @if let Some(v) = oee_today.get(m.as_str()) {
                                p.oee-today { (lang.t("oee_today")) ": " strong { (crate::oee::pct(*v)) } }
                            }
                            table { @for (metric, unit, v) in readings.iter().take(6) { tr { td { (metric) } td { (fmt_value(*v)) " " (unit) } } } }
                        }
                    }
                }
            }
        },
    ))
}

/// Percent-encode a path segment (metric names may contain `/` and `:`).
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{}", (v * 1000.0).round() / 1000.0) }
}

async fn machine(State(s): St, PageAuth(p): PageAuth, Path(machine): Path<String>) -> PageResult {
    let lang = p.lang;
    let series = s.telemetry.list_series(&p.tenant_id, Some(&machine)).await?;
    let keys: Vec<_> = series.iter().map(|i| (i.machine.clone(), i.metric.clone())).collect();
    let latest = if keys.is_empty() { Vec::new() } else { s.telemetry.latest(&p.tenant_id, &keys).await? };
    Ok(page(
        lang,
        &machine,
        Some(&p),
        html! {
            h1 { (lang.t("machine")) ": " (machine) }
            p.muted { span.dot.running {} (lang.t("live")) }
            table id="live-table" data-live={ "/machines/" (machine) "/live" } data-machine=(machine) {
                thead { tr { th { (lang.t("metric")) } th { (lang.t("value")) } th { (lang.t("unit")) } th { (lang.t("updated")) } } }
                tbody {
                    @for l in &latest {
                        tr data-metric=(l.series.metric) {
                            td { (l.series.metric) }
                            td.big data-role="value" { (fmt_value(l.value)) }
                            td { (l.series.unit) }
                            td data-role="ts" data-ts=(l.ts_ms) { (l.ts_ms) }
                        }
                    }
                }
            }
            @for info in &series {
                h3 { (info.metric) " " span.muted { (info.unit) } }
                div.chart data-chart="1" data-machine=(machine) data-metric=(info.metric) {}
            }
        },
    ))
}

// ---- series explorer ----

#[derive(Deserialize)]
struct ExploreQuery {
    series: Option<String>,
    range: Option<String>,
    step: Option<String>,
    agg: Option<String>,
}

/// Range and step choices of the explorer, in ms.
pub const RANGES: [(&str, i64); 5] = [("15m", 900_000), ("1h", 3_600_000), ("6h", 21_600_000), ("24h", 86_400_000), ("7d", 604_800_000)];
/// Step choices (0 = raw).
pub const STEPS: [(&str, i64); 5] = [("raw", 0), ("1m", 60_000), ("5m", 300_000), ("15m", 900_000), ("1h", 3_600_000)];

async fn explore(State(s): St, PageAuth(p): PageAuth, Query(q): Query<ExploreQuery>) -> PageResult {
    let lang = p.lang;
    let all = s.telemetry.list_series(&p.tenant_id, None).await?;
    let range = RANGES.iter().find(|r| Some(r.0) == q.range.as_deref()).unwrap_or(&RANGES[1]);
    let step = STEPS.iter().find(|r| Some(r.0) == q.step.as_deref()).unwrap_or(&STEPS[0]);
    let agg = q.agg.as_deref().unwrap_or("avg");
    let selected = q.series.as_deref().and_then(|s| s.split_once('/')).map(|(m, x)| (m.to_string(), x.to_string()));
    let end = fc_core::time::now_ms() + 1000;
    let start = end - range.1;
    Ok(page(
        lang,
        lang.t("explore"),
        Some(&p),
        html! {
            h1 { (lang.t("explore")) }
            form.row method="get" action="/explore" {
                label { (lang.t("metric")) br;
                    select name="series" { @for i in &all {
                        @let v = format!("{}/{}", i.machine, i.metric);
                        option value=(v) selected[selected.as_ref().is_some_and(|(m, x)| *m == i.machine && *x == i.metric)] { (v) }
                    } } }
                label { (lang.t("range")) br; select name="range" { @for r in &RANGES { option value=(r.0) selected[r.0 == range.0] { (r.0) } } } }
                label { (lang.t("step")) br; select name="step" { @for r in &STEPS { option value=(r.0) selected[r.0 == step.0] { (r.0) } } } }
                label { (lang.t("aggregation")) br; select name="agg" { @for a in ["avg", "min", "max", "count", "last"] { option value=(a) selected[a == agg] { (a) } } } }
                button type="submit" { (lang.t("show")) }
            }
            @if let Some((m, x)) = &selected {
                @let qs = format!("start_ms={start}&end_ms={end}&step_ms={}&agg={agg}", step.1);
                p { a id="export-csv" href={ "/api/v1/series/" (encode(m)) "/" (encode(x)) "/export.csv?" (qs) } download { (lang.t("export_csv")) } }
                div.chart data-chart="1" data-machine=(m) data-metric=(x) data-start=(start) data-end=(end) data-step=(step.1) data-agg=(agg) {}
            }
        },
    ))
}

// ---- devices ----

#[derive(Deserialize)]
struct NameForm {
    csrf: String,
    name: String,
}

async fn devices_page(s: &PortalState, p: &Principal, created: Option<(String, String)>, error: Option<String>) -> PageResult {
    let lang = p.lang;
    let mut devices = s.registry.list_devices(&p.tenant_id)?;
    devices.sort_by_key(|d| std::cmp::Reverse(d.created_ms));
    let can_edit = p.role.allows(Role::Operator);
    Ok(page(
        lang,
        lang.t("devices"),
        Some(p),
        html! {
            h1 { (lang.t("devices")) }
            @if let Some(e) = &error { p.error role="alert" { (e) } }
            @if let Some((name, token)) = &created {
                div.card {
                    p { strong { (name) } }
                    p { (lang.t("token_once")) }
                    p.token id="device-token" { (token) }
                }
            }
            @if can_edit {
                form.row method="post" action="/devices" {
                    (csrf_field(p))
                    label { (lang.t("name")) br; input name="name" required maxlength="100"; }
                    button type="submit" { (lang.t("create_device")) }
                }
            }
            table {
                thead { tr { th { (lang.t("name")) } th { "ID" } th { (lang.t("status")) } th {} } }
                tbody { @for d in &devices {
                    tr data-device=(d.id) {
                        td { (d.name) } td { code { (d.id) } }
                        td { @if d.revoked_ms.is_some() { (lang.t("revoked")) } @else { (lang.t("active")) } }
                        td { @if can_edit && d.revoked_ms.is_none() {
                            form.inline method="post" action={ "/devices/" (d.id) "/rotate" } { (csrf_field(p)) button type="submit" { (lang.t("rotate")) } }
                            " "
                            form.inline method="post" action={ "/devices/" (d.id) "/revoke" } { (csrf_field(p)) button.danger type="submit" { (lang.t("revoke")) } }
                        } }
                    }
                } }
            }
        },
    ))
}

async fn devices(State(s): St, PageAuth(p): PageAuth) -> PageResult {
    devices_page(&s, &p, None, None).await
}

async fn create_device(State(s): St, PageAuth(p): PageAuth, Form(f): Form<NameForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    match s.registry.create_device(&p.tenant_id, &f.name) {
        Ok((d, token)) => devices_page(&s, &p, Some((d.name, token)), None).await,
        Err(e @ (fc_registry::RegistryError::QuotaExceeded(_) | fc_registry::RegistryError::Invalid(_))) => {
            let mut r = devices_page(&s, &p, None, Some(e.to_string())).await?;
            *r.status_mut() = if matches!(e, fc_registry::RegistryError::QuotaExceeded(_)) {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::BAD_REQUEST
            };
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

async fn rotate_device(State(s): St, PageAuth(p): PageAuth, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    let (d, token) = s.changes.rotate_device_token(&s.registry, &p.tenant_id, &id).await?;
    devices_page(&s, &p, Some((d.name, token)), None).await
}

async fn revoke_device(State(s): St, PageAuth(p): PageAuth, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    s.changes.revoke_device(&s.registry, &p.tenant_id, &id).await?;
    Ok(Redirect::to("/devices").into_response())
}

// ---- users and invitations ----

async fn users_page(s: &PortalState, p: &Principal, invite_link: Option<String>) -> PageResult {
    p.require(Role::Owner)?;
    let lang = p.lang;
    let users = s.registry.list_users(&p.tenant_id)?;
    let pending = s.registry.list_invitations(&p.tenant_id)?;
    Ok(page(
        lang,
        lang.t("users"),
        Some(p),
        html! {
            h1 { (lang.t("users")) }
            @if let Some(link) = &invite_link { div.card { p { (lang.t("token_once")) } p.token id="invite-link" { (link) } } }
            form.row method="post" action="/users/invite" {
                (csrf_field(p))
                label { (lang.t("email")) br; input name="email" type="email" required; }
                label { (lang.t("role")) br; select name="role" { option value="viewer" { "viewer" } option value="operator" { "operator" } option value="owner" { "owner" } } }
                button type="submit" { (lang.t("invite")) }
            }
            table {
                thead { tr { th { (lang.t("name")) } th { (lang.t("email")) } th { (lang.t("role")) } } }
                tbody { @for u in &users { tr {
                    td { (u.name) } td { (u.email) }
                    td { form.inline method="post" action={ "/users/" (u.id) "/role" } {
                        (csrf_field(p))
                        select name="role" { @for r in ["viewer", "operator", "owner"] { option value=(r) selected[r == u.role.as_str()] { (r) } } }
                        " " button type="submit" { (lang.t("change_role")) }
                    } }
                } } }
            }
            @if !pending.is_empty() {
                h2 { (lang.t("pending_invitations")) }
                table id="invitations" {
                    thead { tr { th { (lang.t("email")) } th { (lang.t("role")) } th { (lang.t("expires")) } th {} } }
                    tbody { @for i in &pending { tr {
                        td { (i.email) } td { (i.role.as_str()) } td data-role="ts" data-ts=(i.expires_ms) { (i.expires_ms) }
                        // With htmx the row goes away in place; without script the form posts and the page reloads.
                        td { form.inline method="post" action={ "/users/invitations/" (i.id) "/withdraw" } hx-post={ "/users/invitations/" (i.id) "/withdraw" } hx-target="closest tr" hx-swap="outerHTML" {
                            (csrf_field(p))
                            button type="submit" { (lang.t("withdraw")) }
                        } }
                    } } }
                }
            }
        },
    ))
}

async fn users(State(s): St, PageAuth(p): PageAuth) -> PageResult {
    users_page(&s, &p, None).await
}

#[derive(Deserialize)]
struct InviteForm {
    csrf: String,
    email: String,
    role: String,
}

async fn invite(State(s): St, PageAuth(p): PageAuth, headers: HeaderMap, Form(f): Form<InviteForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Owner)?;
    let (token, _) = s.registry.invite(&p.tenant_id, &f.email, Role::parse(&f.role)?)?;
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    users_page(&s, &p, Some(format!("http://{host}/invite/{token}"))).await
}

async fn withdraw_invite(
    State(s): St,
    PageAuth(p): PageAuth,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Owner)?;
    s.registry.withdraw_invitation(&p.tenant_id, &id)?;
    if headers.contains_key("hx-request") {
        // htmx swaps the row for this (empty) answer.
        return Ok(axum::response::Html("").into_response());
    }
    Ok(Redirect::to("/users").into_response())
}

#[derive(Deserialize)]
struct RoleForm {
    csrf: String,
    role: String,
}

async fn change_role(State(s): St, PageAuth(p): PageAuth, Path(id): Path<String>, Form(f): Form<RoleForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Owner)?;
    s.registry.set_role(&p.tenant_id, &id, Role::parse(&f.role)?)?;
    Ok(Redirect::to("/users").into_response())
}

async fn invite_form(State(s): St, headers: HeaderMap, Path(token): Path<String>) -> PageResult {
    let lang = auth::lang(&headers);
    let inv = s.registry.invitation(&token)?;
    Ok(page(
        lang,
        lang.t("accept_invite"),
        None,
        html! {
            h1 { (lang.t("accept_invite")) }
            p { (inv.email) " · " (inv.role.as_str()) }
            form.stack method="post" action={ "/invite/" (token) } {
                label { (lang.t("name")) input name="name" required maxlength="100"; }
                label { (lang.t("password")) input name="password" type="password" required minlength="10"; }
                button type="submit" { (lang.t("accept_invite")) }
            }
        },
    ))
}

#[derive(Deserialize)]
struct AcceptForm {
    name: String,
    password: String,
}

async fn accept_invite(State(s): St, Path(token): Path<String>, Form(f): Form<AcceptForm>) -> PageResult {
    // A cheap check first: an unknown or withdrawn token never takes a hashing slot.
    s.registry.invitation(&token)?;
    let user = hashing(&s, move |r| r.accept_invitation(&token, &f.name, &f.password))
        .await
        .map_err(|busy| Problem::new(fc_core::ErrorCode::Unavailable, busy.to_string()))??;
    signed_in(&s, &user)
}

// ---- API keys ----

async fn keys_page(s: &PortalState, p: &Principal, created: Option<String>) -> PageResult {
    p.require(Role::Owner)?;
    let lang = p.lang;
    let keys = s.registry.list_api_keys(&p.tenant_id)?;
    Ok(page(
        lang,
        lang.t("api_keys"),
        Some(p),
        html! {
            h1 { (lang.t("api_keys")) }
            @if let Some(t) = &created { div.card { p { (lang.t("token_once")) } p.token id="api-key" { (t) } } }
            form.row method="post" action="/api-keys" {
                (csrf_field(p))
                label { (lang.t("name")) br; input name="name" required maxlength="100"; }
                label { (lang.t("role")) br; select name="role" { option value="viewer" { "viewer" } option value="operator" { "operator" } } }
                button type="submit" { (lang.t("create_key")) }
            }
            table {
                thead { tr { th { (lang.t("name")) } th { "ID" } th { (lang.t("role")) } th { (lang.t("status")) } th {} } }
                tbody { @for k in &keys { tr {
                    td { (k.name) } td { code { (k.id) } } td { (k.role.as_str()) }
                    td { @if k.revoked_ms.is_some() { (lang.t("revoked")) } @else { (lang.t("active")) } }
                    td { @if k.revoked_ms.is_none() { form.inline method="post" action={ "/api-keys/" (k.id) "/revoke" } { (csrf_field(p)) button.danger type="submit" { (lang.t("revoke")) } } } }
                } } }
            }
        },
    ))
}

async fn api_keys(State(s): St, PageAuth(p): PageAuth) -> PageResult {
    keys_page(&s, &p, None).await
}

#[derive(Deserialize)]
struct KeyForm {
    csrf: String,
    name: String,
    role: String,
}

async fn create_api_key(State(s): St, PageAuth(p): PageAuth, Form(f): Form<KeyForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Owner)?;
    let (_, token) = s.registry.create_api_key(&p.tenant_id, &f.name, Role::parse(&f.role)?)?;
    keys_page(&s, &p, Some(token)).await
}

async fn revoke_api_key(State(s): St, PageAuth(p): PageAuth, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Owner)?;
    s.changes.revoke_api_key(&s.registry, &p.tenant_id, &id).await?;
    Ok(Redirect::to("/api-keys").into_response())
}

// ---- plan usage ----

async fn usage(State(s): St, PageAuth(p): PageAuth) -> PageResult {
    let lang = p.lang;
    let u = crate::usage::usage_of(&s, &p.tenant_id)?;
    Ok(page(
        lang,
        lang.t("usage"),
        Some(&p),
        html! {
            h1 { (lang.t("usage")) ": " (u.plan_name) }
            table {
                thead { tr { th {} th { (lang.t("used")) } th { (lang.t("limit")) } } }
                tbody {
                    tr { td { (lang.t("devices")) } td id="usage-devices" { (u.devices) } td { (u.max_devices) } }
                    tr { td { (lang.t("users")) } td { (u.users) } td { (u.max_users) } }
                    tr { td { (lang.t("readings_per_s")) } td { "—" } td { (u.max_readings_per_s) } }
                    tr { td { (lang.t("retention")) } td { "—" } td { (u.retention_days) } }
                    tr { td { (lang.t("partners")) } td { (u.partners) } td { (u.max_partners) } }
                }
            }
        },
    ))
}
