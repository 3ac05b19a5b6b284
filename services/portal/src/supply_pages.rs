//! Supplier settlement pages. The buyer sees its network's orders, designs,
//! deliveries, statements and ledger status; a supplier sees the orders and
//! designs shared with it in each buyer's network, its statements, and can
//! verify any entry it may read against the signed checkpoint.
//!
//! Encryption stays on the client: design pages link ciphertext and show the
//! `factorychain design` commands; nothing here ever handles a key or plaintext.

use crate::PortalState;
use crate::auth::{PageAuth, Principal, check_csrf};
use crate::i18n::Lang;
use crate::pages::{PageResult, csrf_field, page, with_status};
use crate::problem::Problem;
use crate::web::attachment;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use fc_ledger::merkle::leaf_hash;
use fc_ledger::note::{Verifier, open_checkpoint};
use fc_registry::{AccountKind, BankAccount, BankKind, Role};
use fc_settlement_api::{NetworkView, OrderInput, OrderView};
use maud::{Markup, html};
use serde::Deserialize;
use std::sync::Arc;

type St = State<Arc<PortalState>>;

/// Page routes.
pub fn routes() -> Router<Arc<PortalState>> {
    Router::new()
        .route("/orders", get(orders_page).post(new_order))
        .route("/orders/{network}/{order_id}", get(order_page).post(order_action))
        .route("/deliveries", get(deliveries_page))
        .route("/designs", get(designs_page))
        .route("/designs/{network}/{design_id}/{version}", get(design_download))
        .route("/statements", get(statements_page))
        .route("/statements/{network}/exports", post(export_payments))
        .route("/statements/{network}/exports/{message_id}", get(export_file))
        .route("/statements/{network}/exports/{message_id}/reissue", post(reissue_export))
        .route("/statements/{network}/{instruction_id}/confirm", post(confirm))
        .route("/ledger", get(ledger_page))
        .route("/org", get(org_page).post(org_save))
}

fn day(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| t.to_offset(time::UtcOffset::from_hms(9, 0, 0).expect("a valid offset")).date().to_string())
        .unwrap_or_default()
}

fn krw(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("₩{out}")
}

/// `YYYY-MM-DD` (a date input) as the last millisecond of that day in Korea.
fn end_of_day_kst(date: &str) -> Result<i64, Problem> {
    let bad = || Problem::bad_request("due date: YYYY-MM-DD");
    let mut parts = date.trim().splitn(3, '-');
    let (y, m, d) = (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
    let month = time::Month::try_from(m.parse::<u8>().map_err(|_| bad())?).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(y.parse().map_err(|_| bad())?, month, d.parse().map_err(|_| bad())?).map_err(|_| bad())?;
    let midnight_utc = date.midnight().assume_utc().unix_timestamp() * 1000;
    Ok(midnight_utc + fc_ledger::settle::DAY_MS - 9 * 3_600_000 - 1)
}

fn status_label(lang: Lang, status: &str) -> &'static str {
    match status {
        "issued" => lang.t("st_issued"),
        "accepted" => lang.t("st_accepted"),
        "in_delivery" => lang.t("st_in_delivery"),
        "delivered" => lang.t("st_delivered"),
        "settled" => lang.t("st_settled"),
        "instructed" => lang.t("st_instructed"),
        "confirmed" => lang.t("st_confirmed"),
        _ => lang.t("st_due"),
    }
}

fn role_label(lang: Lang, n: &NetworkView) -> &'static str {
    if n.role == "buyer" { lang.t("as_buyer") } else { lang.t("as_supplier") }
}

// ---- orders -------------------------------------------------------------------

async fn orders_page(State(s): St, PageAuth(p): PageAuth) -> PageResult {
    render_orders(&s, &p, None).await
}

async fn render_orders(s: &PortalState, p: &Principal, error: Option<String>) -> PageResult {
    let lang = p.lang;
    let networks = s.settlement.networks(&p.tenant_id).await?;
    let mut sections = Vec::new();
    for n in &networks {
        sections.push((n.clone(), s.settlement.orders(&n.network, &p.tenant_id).await?));
    }
    let suppliers: Vec<_> = s.registry.suppliers(&p.tenant_id)?.into_iter().filter(|x| x.is_active()).collect();
    let designs = s.settlement.designs(&p.tenant_id, &p.tenant_id).await?;
    let can_write = p.role.allows(Role::Operator);
    Ok(page(
        lang,
        lang.t("orders"),
        Some(p),
        html! {
            h1 { (lang.t("orders")) }
            @if let Some(e) = &error { p.error role="alert" { (e) } }
            @for (n, orders) in &sections {
                h2 { (n.buyer_name) " · " (role_label(lang, n)) }
                @if orders.is_empty() { p.muted { (lang.t("no_orders")) } } @else {
                    table.orders data-network=(n.network) {
                        thead { tr { th { (lang.t("order")) } th { (lang.t("part")) } th { (lang.t(if n.role == "buyer" { "supplier" } else { "buyer" })) } th { (lang.t("quantity")) } th { (lang.t("unit_price")) } th { (lang.t("due")) } th { (lang.t("status")) } } }
                        tbody { @for o in orders { tr {
                            td { a href={ "/orders/" (n.network) "/" (o.order_id) } { (o.order_id) } }
                            td { (o.part) }
                            td { code { (if n.role == "buyer" { &o.supplier_org } else { &o.buyer_org }) } }
                            td { (o.accepted_quantity) " / " (o.quantity) }
                            td { (krw(o.unit_price_krw)) }
                            td { (day(o.due_date_ms)) }
                            td.status { (status_label(lang, &o.status)) }
                        } } }
                    }
                }
            }
            @if can_write {
                h2 { (lang.t("new_order")) }
                @if suppliers.is_empty() || designs.is_empty() {
                    p.muted { (lang.t("new_order_needs")) }
                } @else {
                    form.stack method="post" action="/orders" id="new-order" {
                        (csrf_field(p))
                        label { (lang.t("supplier")) select name="supplier_org" { @for x in &suppliers { option value=(x.supplier_id) { (x.supplier_name) " (" (x.supplier_id) ")" } } } }
                        label { (lang.t("design")) select name="design" { @for d in &designs { option value={ (d.design_id) "@" (d.version) } { (d.design_id) " v" (d.version) } } } }
                        label { (lang.t("part")) input name="part" required maxlength="100"; }
                        label { (lang.t("quantity")) input name="quantity" type="number" min="1" required; }
                        label { (lang.t("unit_price")) " (KRW)" input name="unit_price_krw" type="number" min="1" required; }
                        label { (lang.t("due")) input name="due" type="date" required; }
                        label { (lang.t("sample_size")) input name="sample_size" type="number" min="0" value="5" required; }
                        label { (lang.t("allowed_defects")) input name="allowed_defects" type="number" min="0" value="0" required; }
                        label { (lang.t("payment_term")) input name="payment_term_days" type="number" min="0" max="365" value="30" required; }
                        label { (lang.t("penalty_per_day")) " (KRW)" input name="late_penalty_per_day_krw" type="number" min="0" value="0" required; }
                        label { (lang.t("penalty_cap")) " (KRW)" input name="late_penalty_cap_krw" type="number" min="0" value="0" required; }
                        label { (lang.t("transit_days")) input name="transit_days" type="number" min="0" max="365"; }
                        label { input name="allow_past_due" type="checkbox" value="yes"; " " (lang.t("allow_past_due")) }
                        button type="submit" { (lang.t("issue_order")) }
                    }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
struct NewOrderForm {
    csrf: String,
    supplier_org: String,
    design: String,
    part: String,
    quantity: u64,
    unit_price_krw: u64,
    due: String,
    sample_size: u32,
    allowed_defects: u32,
    payment_term_days: u32,
    late_penalty_per_day_krw: u64,
    late_penalty_cap_krw: u64,
    /// Empty: no transit allowance.
    #[serde(default)]
    transit_days: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    allow_past_due: Option<String>,
}

async fn new_order(State(s): St, PageAuth(p): PageAuth, Form(f): Form<NewOrderForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    let result: Result<OrderView, Problem> = async {
        let (design_id, version) = f.design.rsplit_once('@').ok_or_else(|| Problem::bad_request("design"))?;
        let input = OrderInput {
            order_id: None,
            supplier_org: f.supplier_org.clone(),
            part: f.part.clone(),
            design_id: design_id.to_string(),
            design_version: version.parse().map_err(|_| Problem::bad_request("design version"))?,
            quantity: f.quantity,
            unit_price_krw: f.unit_price_krw,
            due_date_ms: end_of_day_kst(&f.due)?,
            sample_size: f.sample_size,
            allowed_defects: f.allowed_defects,
            payment_term_days: f.payment_term_days,
            late_penalty_per_day_krw: f.late_penalty_per_day_krw,
            late_penalty_cap_krw: f.late_penalty_cap_krw,
            transit_days: match f.transit_days.trim() {
                "" => None,
                d => Some(d.parse().map_err(|_| Problem::bad_request("transit_days: a number of days from 0 to 365, or empty"))?),
            },
            allow_past_due: f.allow_past_due.is_some(),
        };
        Ok(s.settlement.issue_order(&p.tenant_id, &p.tenant_id, input).await?)
    }
    .await;
    match result {
        Ok(o) => Ok(Redirect::to(&format!("/orders/{}/{}", o.network, o.order_id)).into_response()),
        Err(e) => Ok(with_status(render_orders(&s, &p, Some(e.detail.clone())).await?, &e)),
    }
}

async fn order_page(State(s): St, PageAuth(p): PageAuth, Path((network, order_id)): Path<(String, String)>) -> PageResult {
    render_order(&s, &p, &network, &order_id, None).await
}

async fn render_order(s: &PortalState, p: &Principal, network: &str, order_id: &str, error: Option<String>) -> PageResult {
    let lang = p.lang;
    let o = s.settlement.order(network, &p.tenant_id, order_id).await?;
    let buyer = p.tenant_id == o.buyer_org;
    let can = p.role.allows(Role::Operator);
    let action = format!("/orders/{network}/{order_id}");
    Ok(page(
        lang,
        &o.order_id,
        Some(p),
        html! {
            h1 { (lang.t("order")) " " (o.order_id) }
            @if let Some(e) = &error { p.error role="alert" { (e) } }
            p { (lang.t("status")) ": " strong id="order-status" { (status_label(lang, &o.status)) } }
            table {
                tbody {
                    tr { th { (lang.t("buyer")) } td { code { (o.buyer_org) } } }
                    tr { th { (lang.t("supplier")) } td { code { (o.supplier_org) } } }
                    tr { th { (lang.t("part")) } td { (o.part) " · " (lang.t("design")) " " (o.design_id) " v" (o.design_version) } }
                    tr { th { (lang.t("quantity")) } td { (o.quantity) " × " (krw(o.unit_price_krw)) } }
                    tr { th { (lang.t("due")) } td { (day(o.due_date_ms)) } }
                    tr { th { (lang.t("acceptance_rule")) } td { (lang.t("sample_size")) " " (o.sample_size) ", " (lang.t("allowed_defects")) " " (o.allowed_defects) } }
                    tr { th { (lang.t("payment_term")) } td { (o.payment_term_days) } }
                    tr { th { (lang.t("penalty_per_day")) } td { (krw(o.late_penalty_per_day_krw)) " (" (lang.t("penalty_cap")) " " (krw(o.late_penalty_cap_krw)) ")" } }
                    tr { th { (lang.t("transit_days")) } td { @match o.transit_days { Some(d) => { (d) }, None => { "—" } } } }
                    tr { th { (lang.t("accepted_units")) } td { (o.accepted_quantity) " / " (o.quantity) ", " (lang.t("penalty")) " " (krw(o.penalty_charged_krw)) } }
                }
            }
            @if can && !buyer && o.status == "issued" {
                form.row method="post" action=(action) { (csrf_field(p)) input type="hidden" name="action" value="accept_order"; button type="submit" id="accept-order" { (lang.t("accept_order")) } }
            }
            h2 { (lang.t("deliveries")) }
            table id="shipments" {
                thead { tr { th { (lang.t("shipment")) } th { (lang.t("sent")) } th { (lang.t("received")) } th { (lang.t("inspection")) } th { (lang.t("decision")) } th {} } }
                tbody { @for sh in &o.shipments { tr {
                    td { (sh.shipment_id) }
                    td { (sh.sent_quantity) " · " (day(sh.sent_at_ms)) }
                    td { @if let (Some(q), Some(at)) = (sh.received_quantity, sh.received_at_ms) { (q) " · " (day(at)) } }
                    td { @if let (Some(n), Some(d)) = (sh.sampled, sh.defects) { (d) " / " (n) " (" (sh.inspection_source.clone().unwrap_or_default()) ")" } }
                    td { @if let Some(d) = &sh.decision { (lang.t(if d == "accepted" { "dec_accepted" } else { "dec_rejected" })) @if let Some(q) = sh.accepted_quantity { " " (q) } @if let Some(r) = &sh.rejection_reason { ": " (r) } } }
                    td { @if can && buyer && sh.decision.is_none() {
                        @if sh.received_quantity.is_none() {
                            form.inline method="post" action=(action) { (csrf_field(p)) input type="hidden" name="action" value="receive"; input type="hidden" name="shipment_id" value=(sh.shipment_id); input type="number" name="quantity" value=(sh.sent_quantity) min="0" style="width:7rem"; button type="submit" { (lang.t("receive")) } }
                        } @else if sh.sampled.is_none() {
                            form.inline method="post" action=(action) { (csrf_field(p)) input type="hidden" name="action" value="inspect"; input type="hidden" name="shipment_id" value=(sh.shipment_id); input type="number" name="sampled" placeholder=(lang.t("sampled")) min="0" style="width:6rem" required; input type="number" name="defects" placeholder=(lang.t("defects")) min="0" style="width:6rem" required; button type="submit" { (lang.t("record_inspection")) } }
                        } @else {
                            form.inline method="post" action=(action) { (csrf_field(p)) input type="hidden" name="action" value="accept"; input type="hidden" name="shipment_id" value=(sh.shipment_id); input type="number" name="quantity" value=(sh.received_quantity.unwrap_or(0)) min="1" style="width:7rem"; button type="submit" { (lang.t("accept_delivery")) } }
                        }
                        " "
                        @if sh.received_quantity.is_some() {
                            form.inline method="post" action=(action) { (csrf_field(p)) input type="hidden" name="action" value="reject"; input type="hidden" name="shipment_id" value=(sh.shipment_id); input name="reason" placeholder=(lang.t("reason")) required maxlength="500"; button.danger type="submit" { (lang.t("reject")) } }
                        }
                    } }
                } } }
            }
            @if can && !buyer && matches!(o.status.as_str(), "accepted" | "in_delivery") {
                form.row method="post" action=(action) id="ship" {
                    (csrf_field(p)) input type="hidden" name="action" value="ship";
                    label { (lang.t("shipment")) br; input name="shipment_id" required pattern="[A-Za-z0-9._-]{1,35}" placeholder="SH-1"; }
                    label { (lang.t("quantity")) br; input name="quantity" type="number" min="1" required; }
                    button type="submit" { (lang.t("ship")) }
                }
            }
            p { a href="/orders" { "← " (lang.t("orders")) } " · " a href="/statements" { (lang.t("statements")) } }
        },
    ))
}

#[derive(Deserialize)]
struct OrderActionForm {
    csrf: String,
    action: String,
    shipment_id: Option<String>,
    quantity: Option<u64>,
    sampled: Option<u32>,
    defects: Option<u32>,
    reason: Option<String>,
}

async fn order_action(
    State(s): St,
    PageAuth(p): PageAuth,
    Path((network, order_id)): Path<(String, String)>,
    Form(f): Form<OrderActionForm>,
) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    let st = &s.settlement;
    let (n, t, o) = (network.as_str(), p.tenant_id.as_str(), order_id.as_str());
    let sid = f.shipment_id.clone().unwrap_or_default();
    let missing = |what: &str| Problem::bad_request(format!("{what} is required"));
    let done: Result<OrderView, Problem> = async {
        Ok(match f.action.as_str() {
            "accept_order" => st.accept_order(n, t, o).await?,
            "ship" => st.send_shipment(n, t, o, &sid, f.quantity.ok_or_else(|| missing("quantity"))?).await?,
            "receive" => st.receive_shipment(n, t, o, &sid, f.quantity.ok_or_else(|| missing("quantity"))?).await?,
            "inspect" => {
                st.record_inspection(
                    n,
                    t,
                    o,
                    &sid,
                    f.sampled.ok_or_else(|| missing("sampled"))?,
                    f.defects.ok_or_else(|| missing("defects"))?,
                )
                .await?
            }
            "accept" => st.accept_delivery(n, t, o, &sid, f.quantity.ok_or_else(|| missing("quantity"))?).await?,
            "reject" => st.reject_delivery(n, t, o, &sid, f.reason.as_deref().unwrap_or("")).await?,
            _ => return Err(Problem::bad_request("unknown action")),
        })
    }
    .await;
    match done {
        Ok(_) => Ok(Redirect::to(&format!("/orders/{network}/{order_id}")).into_response()),
        Err(e) if e.status == 404 => Err(e.into()),
        Err(e) => Ok(with_status(render_order(&s, &p, &network, &order_id, Some(e.detail.clone())).await?, &e)),
    }
}

// ---- deliveries -----------------------------------------------------------------

/// Every shipment of the caller's orders, newest first, with what it waits for.
async fn deliveries_page(State(s): St, PageAuth(p): PageAuth) -> PageResult {
    let lang = p.lang;
    let networks = s.settlement.networks(&p.tenant_id).await?;
    let mut sections = Vec::new();
    for n in &networks {
        let mut rows: Vec<(OrderView, fc_settlement_api::ShipmentView)> = Vec::new();
        for o in s.settlement.orders(&n.network, &p.tenant_id).await? {
            for sh in o.shipments.clone() {
                rows.push((o.clone(), sh));
            }
        }
        rows.sort_by_key(|(_, sh)| std::cmp::Reverse(sh.sent_at_ms));
        sections.push((n.clone(), rows));
    }
    Ok(page(
        lang,
        lang.t("deliveries"),
        Some(&p),
        html! {
            h1 { (lang.t("deliveries")) }
            @for (n, rows) in &sections {
                h2 { (n.buyer_name) " · " (role_label(lang, n)) }
                @if rows.is_empty() { p.muted { (lang.t("no_deliveries")) } } @else {
                    table.deliveries data-network=(n.network) {
                        thead { tr { th { (lang.t("order")) } th { (lang.t("shipment")) } th { (lang.t("part")) } th { (lang.t("sent")) } th { (lang.t("received")) } th { (lang.t("inspection")) } th { (lang.t("decision")) } } }
                        tbody { @for (o, sh) in rows { tr {
                            td { a href={ "/orders/" (n.network) "/" (o.order_id) } { (o.order_id) } }
                            td { (sh.shipment_id) } td { (o.part) }
                            td { (sh.sent_quantity) " · " (day(sh.sent_at_ms)) }
                            td { @match (sh.received_quantity, sh.received_at_ms) { (Some(q), Some(at)) => { (q) " · " (day(at)) @if at > o.due_date_ms { " " span.error { (lang.t("late")) } } } _ => { span.muted { (lang.t("awaiting_receipt")) } } } }
                            td { @if let (Some(k), Some(d)) = (sh.sampled, sh.defects) { (d) " / " (k) } }
                            td { @match &sh.decision { Some(d) => { (lang.t(if d == "accepted" { "dec_accepted" } else { "dec_rejected" })) @if let Some(q) = sh.accepted_quantity { " " (q) } } None => { span.muted { "—" } } } }
                        } } }
                    }
                }
            }
        },
    ))
}

// ---- designs ------------------------------------------------------------------

async fn designs_page(State(s): St, PageAuth(p): PageAuth) -> PageResult {
    let lang = p.lang;
    let networks = s.settlement.networks(&p.tenant_id).await?;
    let mut sections = Vec::new();
    for n in &networks {
        sections.push((n.clone(), s.settlement.designs(&n.network, &p.tenant_id).await?));
    }
    let key = s.registry.org_profile(&p.tenant_id)?.age_recipient;
    Ok(page(
        lang,
        lang.t("designs"),
        Some(&p),
        html! {
            h1 { (lang.t("designs")) }
            p.muted { (lang.t("designs_help")) }
            @if key.is_none() { p.error { (lang.t("no_key_yet")) " " a href="/org" { (lang.t("org_profile")) } } }
            @for (n, designs) in &sections {
                h2 { (n.buyer_name) " · " (role_label(lang, n)) }
                @if designs.is_empty() { p.muted { (lang.t("no_designs")) } } @else {
                    table.designs {
                        thead { tr { th { (lang.t("design")) } th { (lang.t("version")) } th { (lang.t("recipients")) } th { "SHA-256" } th { (lang.t("published")) } th {} } }
                        tbody { @for d in designs { tr {
                            td { (d.design_id) } td { "v" (d.version) }
                            td { @for r in &d.recipients { code { (r) } " " } }
                            td { code title=(d.ciphertext_sha256) { (d.ciphertext_sha256[..16]) "…" } }
                            td { (day(d.published_ms)) " · #" (d.seq) }
                            td { @if d.downloadable { a href={ "/designs/" (n.network) "/" (d.design_id) "/" (d.version) } { (lang.t("download_encrypted")) } } }
                        } } }
                    }
                }
            }
            h2 { (lang.t("cli")) }
            pre { "factorychain keys generate --out org.key --register\n"
                  "factorychain design push drawing.step --design BRACKET-7 --to t_0123456789abcdef\n"
                  "factorychain design pull --network NETWORK --design BRACKET-7 --version 1 --identity org.key -o drawing.step" }
        },
    ))
}

async fn design_download(
    State(s): St,
    PageAuth(p): PageAuth,
    Path((network, design_id, version)): Path<(String, String, u32)>,
) -> PageResult {
    let parts = s.settlement.download_design(&network, &p.tenant_id, &design_id, version).await?;
    Ok(attachment("application/octet-stream", &format!("{design_id}-v{version}.age"), crate::web::streamed(parts)))
}

// ---- statements -----------------------------------------------------------------

async fn statements_page(State(s): St, PageAuth(p): PageAuth) -> PageResult {
    render_statements(&s, &p, None).await
}

async fn render_statements(s: &PortalState, p: &Principal, error: Option<String>) -> PageResult {
    let lang = p.lang;
    let networks = s.settlement.networks(&p.tenant_id).await?;
    let owner = p.role.allows(Role::Operator);
    let mut sections = Vec::new();
    for n in &networks {
        let (exports, blocked) = if owner && n.role == "buyer" {
            (s.settlement.exports(&n.network, &p.tenant_id).await?, s.settlement.blocked_payments(&n.network, &p.tenant_id).await?)
        } else {
            (Vec::new(), Vec::new())
        };
        sections.push((n.clone(), s.settlement.payments(&n.network, &p.tenant_id).await?, exports, blocked));
    }
    Ok(page(
        lang,
        lang.t("statements"),
        Some(p),
        html! {
            h1 { (lang.t("statements")) }
            @if let Some(e) = &error { p.error role="alert" { (e) } }
            @for (n, payments, exports, blocked) in &sections {
                h2 { (n.buyer_name) " · " (role_label(lang, n)) }
                @if payments.is_empty() { p.muted { (lang.t("no_payments")) } } @else {
                    @let total: u64 = payments.iter().map(|x| x.amount_krw).sum();
                    table.payments {
                        thead { tr { th { (lang.t("order")) } th { (lang.t("shipment")) } th { (lang.t("supplier")) } th { (lang.t("amount")) } th { (lang.t("penalty")) } th { (lang.t("due")) } th { (lang.t("status")) } th {} } }
                        tbody { @for x in payments { tr {
                            td { a href={ "/orders/" (n.network) "/" (x.order_id) } { (x.order_id) } } td { (x.shipment_id) } td { code { (x.supplier_org) } }
                            td.amount { (krw(x.amount_krw)) } td { (krw(x.penalty_krw)) } td { (day(x.due_date_ms)) }
                            td { (status_label(lang, &x.status)) @if let Some(r) = &x.bank_reference { " · " (r) } }
                            td { @if owner && n.role == "buyer" && x.status == "instructed" {
                                form.inline method="post" action={ "/statements/" (n.network) "/" (x.instruction_id) "/confirm" } { (csrf_field(p)) input name="bank_reference" placeholder=(lang.t("bank_reference")) required maxlength="35"; button type="submit" { (lang.t("confirm_payment")) } }
                            } }
                        } } }
                        tfoot { tr { th colspan="3" { (lang.t("total")) } th { (krw(total)) } th colspan="4" {} } }
                    }
                    @if owner && n.role == "buyer" {
                        @if !blocked.is_empty() {
                            div.warning id="no-bank-account" role="status" {
                                p { (lang.t("no_bank_account")) }
                                ul { @for b in blocked { li { strong { (b.supplier_name) } " · " (b.instruction_ids.len()) " · " (krw(b.amount_krw)) } } }
                            }
                        }
                        form.inline method="post" action={ "/statements/" (n.network) "/exports" } { (csrf_field(p)) button type="submit" { (lang.t("export_bank_file")) } " (ISO 20022 pain.001.001.09)" }
                        @if !exports.is_empty() {
                            h3 { (lang.t("bank_files")) }
                            table.exports { tbody { @for e in exports { tr {
                                td { a href={ "/statements/" (n.network) "/exports/" (e.message_id) } download { (e.message_id) ".xml" } }
                                td { (day(e.exported_ms)) } td.amount { (krw(e.amount_krw)) } td { (e.instruction_ids.len()) }
                                td { @if e.unconfirmed > 0 {
                                    form.inline method="post" action={ "/statements/" (n.network) "/exports/" (e.message_id) "/reissue" } { (csrf_field(p)) button type="submit" { (lang.t("reissue")) } }
                                } }
                            } } } }
                        }
                    }
                }
            }
        },
    ))
}

fn bank_file(file: fc_settlement_api::BankFile) -> axum::response::Response {
    attachment("application/xml; charset=utf-8", &format!("{}.xml", file.message_id), file.xml)
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn export_payments(State(s): St, PageAuth(p): PageAuth, Path(network): Path<String>, Form(f): Form<CsrfForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    match s.settlement.export_payments(&network, &p.tenant_id).await {
        Ok(file) => Ok(bank_file(file)),
        Err(e) => statements_refused(&s, &p, e.into()).await,
    }
}

async fn export_file(State(s): St, PageAuth(p): PageAuth, Path((network, message_id)): Path<(String, String)>) -> PageResult {
    p.require(Role::Operator)?;
    match s.settlement.export_file(&network, &p.tenant_id, &message_id).await {
        Ok(file) => Ok(bank_file(file)),
        Err(e) => statements_refused(&s, &p, e.into()).await,
    }
}

async fn reissue_export(
    State(s): St,
    PageAuth(p): PageAuth,
    Path((network, message_id)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    match s.settlement.reissue_export(&network, &p.tenant_id, &message_id).await {
        Ok(file) => Ok(bank_file(file)),
        Err(e) => statements_refused(&s, &p, e.into()).await,
    }
}

async fn statements_refused(s: &PortalState, p: &Principal, e: Problem) -> PageResult {
    Ok(with_status(render_statements(s, p, Some(e.detail.clone())).await?, &e))
}

#[derive(Deserialize)]
struct ConfirmForm {
    csrf: String,
    bank_reference: String,
}

async fn confirm(
    State(s): St,
    PageAuth(p): PageAuth,
    Path((network, instruction_id)): Path<(String, String)>,
    Form(f): Form<ConfirmForm>,
) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Operator)?;
    match s.settlement.confirm_payment(&network, &p.tenant_id, &instruction_id, &f.bank_reference).await {
        Ok(_) => Ok(Redirect::to("/statements").into_response()),
        Err(e) => statements_refused(&s, &p, e.into()).await,
    }
}

// ---- ledger status and verification ----------------------------------------------

#[derive(Deserialize)]
struct VerifyQ {
    network: Option<String>,
    index: Option<u64>,
}

/// What the page shows for one verified entry.
struct Verified {
    entry: String,
    proof: String,
    outcome: Result<(), String>,
}

/// Checks entry `index` the way `factorychain verify` does: the checkpoint's
/// signature with the ledger key, then the entry's inclusion under its root.
async fn verify_entry(s: &PortalState, network: &str, org: &str, index: u64) -> Result<Verified, Problem> {
    let note = s.settlement.checkpoint(network, org).await?;
    let entry = s.settlement.entry(network, org, index).await?;
    let info = s.settlement.log_info(org, Some(network)).await?;
    let verifier = Verifier::from_vkey(&info.vkey).map_err(|e| Problem::new(fc_core::ErrorCode::Internal, e.to_string()))?;
    // The origin too: the key signs every network's log, so the signature
    // alone does not say the checkpoint is of this network.
    let checked = open_checkpoint(&note, std::slice::from_ref(&verifier), &info.origin).map_err(|e| format!("checkpoint: {e}"));
    let (proof, outcome) = match checked {
        Ok((cp, _)) if index < cp.size => {
            let proof = s.settlement.inclusion_proof(network, org, index, cp.size).await?;
            let outcome = if proof.leaf_hash != leaf_hash(&entry) {
                Err("the entry's hash differs from the proof's leaf".to_string())
            } else {
                proof.verify_entry(&entry, &cp.root).map_err(|e| e.to_string())
            };
            (serde_json::to_string_pretty(&proof).unwrap_or_default(), outcome)
        }
        Ok((cp, _)) => {
            (String::new(), Err(format!("entry {index} is not yet under the latest checkpoint (size {}); try again in a second", cp.size)))
        }
        Err(e) => (String::new(), Err(e)),
    };
    Ok(Verified { entry: String::from_utf8_lossy(&entry).into_owned(), proof, outcome })
}

async fn ledger_page(State(s): St, PageAuth(p): PageAuth, Query(q): Query<VerifyQ>) -> PageResult {
    let lang = p.lang;
    let networks = s.settlement.networks(&p.tenant_id).await?;
    let mut rows: Vec<(NetworkView, Option<String>)> = Vec::new();
    for n in networks {
        let note = if n.size > 0 { Some(s.settlement.checkpoint(&n.network, &p.tenant_id).await?) } else { None };
        rows.push((n, note));
    }
    let verified = match (&q.network, q.index) {
        (Some(n), Some(i)) => Some((n.clone(), i, verify_entry(&s, n, &p.tenant_id, i).await)),
        _ => None,
    };
    let vkey = s.settlement.log_info(&p.tenant_id, None).await?.vkey;
    Ok(page(
        lang,
        lang.t("ledger"),
        Some(&p),
        html! {
            h1 { (lang.t("ledger")) }
            p.muted { (lang.t("ledger_help")) }
            p { (lang.t("verifier_key")) ": " code id="vkey" { (vkey) } }
            @for (n, note) in &rows {
                h2 { (n.buyer_name) " · " (role_label(lang, n)) }
                p { (lang.t("entries")) ": " strong.size { (n.size) } }
                @if let Some(note) = note {
                    pre.checkpoint { (note) }
                    form.row method="get" action="/ledger" data-network=(n.network) {
                        input type="hidden" name="network" value=(n.network);
                        label { (lang.t("entry_index")) br; input type="number" name="index" min="0" max=(n.size - 1) required; }
                        button type="submit" { (lang.t("verify")) }
                    }
                }
            }
            @if let Some((network, index, v)) = &verified {
                h2 id="verify" { (lang.t("verify")) " #" (index) }
                @match v {
                    Err(e) => { p.error role="alert" { (e.detail) } }
                    Ok(v) => {
                        @match &v.outcome {
                            Ok(()) => { p.ok id="verify-result" { "✓ " (lang.t("verified")) } }
                            Err(e) => { p.error id="verify-result" role="alert" { "✗ " (e) } }
                        }
                        h3 { (lang.t("entry")) } pre { (v.entry) }
                        h3 { (lang.t("inclusion_proof")) } pre { (v.proof) }
                        (cli_help(network, *index))
                    }
                }
            }
        },
    ))
}

fn cli_help(network: &str, index: u64) -> Markup {
    html! {
        h3 { "factorychain verify" }
        pre { "curl -H \"Authorization: Bearer $FC_API_KEY\" $PORTAL/api/v1/ledger/" (network) "/checkpoint > checkpoint.txt\n"
              "factorychain verify checkpoint checkpoint.txt --network " (network) " --key \"$(curl -s -H \"Authorization: Bearer $FC_API_KEY\" $PORTAL/api/v1/ledger/key)\"\n"
              "curl -H \"Authorization: Bearer $FC_API_KEY\" \"$PORTAL/api/v1/ledger/" (network) "/proof/inclusion?index=" (index) "&size=SIZE\" > proof.json\n"
              "factorychain verify inclusion proof.json\n"
              "factorychain verify follow $PORTAL/api/v1/ledger/" (network) " --key VKEY --state witness.txt" }
    }
}

// ---- organisation profile -----------------------------------------------------------

async fn org_page(State(s): St, PageAuth(p): PageAuth) -> PageResult {
    render_org(&s, &p, None)
}

fn render_org(s: &PortalState, p: &Principal, error: Option<String>) -> PageResult {
    let lang = p.lang;
    let profile = s.registry.org_profile(&p.tenant_id)?;
    let (operator, owner) = (p.role.allows(Role::Operator), p.role.allows(Role::Owner));
    let bank = profile.bank.clone();
    Ok(page(
        lang,
        lang.t("org_profile"),
        Some(p),
        html! {
            h1 { (lang.t("org_profile")) }
            @if let Some(e) = &error { p.error role="alert" { (e) } }
            p { (lang.t("your_org_id")) ": " code { (p.tenant_id) } }
            h2 { (lang.t("design_key")) }
            @match &profile.age_recipient { Some(k) => { p { code id="design-key" { (k) } } } None => { p.muted { (lang.t("no_key_yet")) } } }
            p.muted { (lang.t("key_help")) }
            pre { "factorychain keys generate --out org.key --register" }
            @if operator {
                form.row method="post" action="/org" { (csrf_field(p)) input type="hidden" name="what" value="key";
                    label { "age1…" br; input name="age_recipient" required size="64"; } button type="submit" { (lang.t("register_key")) } }
            }
            @if owner {
                h2 { (lang.t("bank_account")) }
                form.stack method="post" action="/org" id="bank-form" { (csrf_field(p)) input type="hidden" name="what" value="bank";
                    label { (lang.t("account_holder")) input name="holder" required maxlength="140" value=(bank.as_ref().map(|b| b.holder.as_str()).unwrap_or("")); }
                    label { (lang.t("account_number")) input name="account" required maxlength="34" value=(bank.as_ref().map(|b| b.account.as_str()).unwrap_or("")); }
                    label { (lang.t("bank_code")) input name="bank" required maxlength="35" placeholder="004" value=(bank.as_ref().map(|b| b.bank.as_str()).unwrap_or("")); }
                    button type="submit" { (lang.t("save")) }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
struct OrgForm {
    csrf: String,
    what: String,
    age_recipient: Option<String>,
    holder: Option<String>,
    account: Option<String>,
    bank: Option<String>,
}

async fn org_save(State(s): St, PageAuth(p): PageAuth, Form(f): Form<OrgForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(if f.what == "bank" { Role::Owner } else { Role::Operator })?;
    let done: Result<(), Problem> = match f.what.as_str() {
        "key" => {
            let r = f.age_recipient.as_deref().unwrap_or("").trim().to_string();
            fc_sealed::parse_recipient(&r)
                .map_err(|e| Problem::bad_request(format!("age_recipient: {e}")))
                .and_then(|_| s.registry.set_org_key(&p.tenant_id, &r).map(|_| ()).map_err(Problem::from))
        }
        "bank" => {
            let account = f.account.clone().unwrap_or_default().trim().to_string();
            let bank = f.bank.clone().unwrap_or_default().trim().to_string();
            // An IBAN starts with a country code and check digits; a BIC has letters in its first four places.
            let (a, k) = (account.as_bytes(), bank.as_bytes());
            let iban = a.len() > 4 && a[..2].iter().all(u8::is_ascii_uppercase) && a[2..4].iter().all(u8::is_ascii_digit);
            let bic = (k.len() == 8 || k.len() == 11) && k[..4].iter().all(u8::is_ascii_uppercase);
            let b = BankAccount {
                holder: f.holder.clone().unwrap_or_default().trim().to_string(),
                account_kind: if iban { AccountKind::Iban } else { AccountKind::Domestic },
                account,
                bank_kind: if bic { BankKind::Bic } else { BankKind::BankCode },
                bank,
            };
            s.set_bank_account(&p.tenant_id, b)
        }
        _ => Err(Problem::bad_request("unknown form")),
    };
    match done {
        Ok(()) => Ok(Redirect::to("/org").into_response()),
        Err(e) => Ok(with_status(render_org(&s, &p, Some(e.detail.clone()))?, &e)),
    }
}
