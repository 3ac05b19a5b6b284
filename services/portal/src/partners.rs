//! Supplier partnerships, pages and REST: a buyer asks a supplier (by its
//! organisation id) to join its supply network, the supplier's owner accepts,
//! either side can end it. The plan's `max_partners` bounds a buyer's
//! partnerships (see `fc_registry::partners`).

use crate::PortalState;
use crate::auth::{ApiAuth, PageAuth, Principal, check_csrf};
use crate::pages::{PageResult, csrf_field, page, with_status};
use crate::problem::Problem;
use crate::web::ApiJson;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Form, Json, Router};
use fc_registry::{Partnership, Role};
use maud::html;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

type St = State<Arc<PortalState>>;

/// Page and API routes.
pub fn routes() -> Router<Arc<PortalState>> {
    Router::new()
        .route("/partners", get(partners_page).post(request_form))
        .route("/partners/{id}/accept", post(accept_form))
        .route("/partners/{id}/end", post(end_form))
        .route("/api/v1/partners", get(list).post(request))
        .route("/api/v1/partners/{id}/accept", post(accept))
        .route("/api/v1/partners/{id}", delete(end))
}

/// One partnership, seen from the caller's side.
#[derive(Serialize, ToSchema)]
pub struct PartnerOut {
    /// The other organisation's id.
    organisation_id: String,
    /// Its name.
    name: String,
    /// `pending` (the supplier has not accepted) or `active`.
    status: String,
    /// When the buyer asked, Unix ms.
    requested_ms: i64,
}

/// The caller's organisation id and its partnerships on both sides.
#[derive(Serialize, ToSchema)]
pub struct PartnersOut {
    /// Give this id to a buyer so it can ask you to become its supplier.
    organisation_id: String,
    /// Suppliers of the caller's supply network.
    suppliers: Vec<PartnerOut>,
    /// Buyers whose network the caller belongs to (or is asked to join).
    buyers: Vec<PartnerOut>,
}

/// Ask a supplier to join.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPartner {
    /// The supplier's organisation id (`t_` + 16 hex digits).
    supplier_id: String,
}

impl PartnerOut {
    /// The partnership as the buyer sees it (the supplier) or as the supplier sees it (the buyer).
    fn seen_by_buyer(p: Partnership, by_buyer: bool) -> Self {
        let status = if p.is_active() { "active" } else { "pending" }.to_string();
        let (organisation_id, name) = if by_buyer { (p.supplier_id, p.supplier_name) } else { (p.buyer_id, p.buyer_name) };
        Self { organisation_id, name, status, requested_ms: p.requested_ms }
    }
}

fn partners_of(s: &PortalState, tenant_id: &str) -> Result<PartnersOut, Problem> {
    let suppliers = s.registry.suppliers(tenant_id)?.into_iter().map(|p| PartnerOut::seen_by_buyer(p, true)).collect();
    let buyers = s.registry.buyers(tenant_id)?.into_iter().map(|p| PartnerOut::seen_by_buyer(p, false)).collect();
    Ok(PartnersOut { organisation_id: tenant_id.into(), suppliers, buyers })
}

/// A malformed id is refused before any lookup.
fn org_id(field: &str, id: &str) -> Result<String, Problem> {
    let id = id.trim();
    if id.len() == 18 && id.starts_with("t_") && id[2..].bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_string())
    } else {
        Err(Problem::bad_request(format!("{field}: an organisation id is t_ followed by 16 hex digits")))
    }
}

#[utoipa::path(get, path = "/api/v1/partners", responses((status = 200, body = PartnersOut)))]
pub(crate) async fn list(State(s): St, ApiAuth(p): ApiAuth) -> Result<Json<PartnersOut>, Problem> {
    Ok(Json(partners_of(&s, &p.tenant_id)?))
}

#[utoipa::path(post, path = "/api/v1/partners", request_body = NewPartner, responses((status = 201, body = PartnerOut), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn request(State(s): St, ApiAuth(p): ApiAuth, ApiJson(b): ApiJson<NewPartner>) -> Result<Response, Problem> {
    p.require(Role::Owner)?;
    let got = s.registry.request_partner(&p.tenant_id, &org_id("supplier_id", &b.supplier_id)?)?;
    Ok((StatusCode::CREATED, Json(PartnerOut::seen_by_buyer(got, true))).into_response())
}

#[utoipa::path(post, path = "/api/v1/partners/{id}/accept", params(("id" = String, Path, description = "the buyer's organisation id")), responses((status = 200, body = PartnerOut), (status = 404, body = Problem)))]
pub(crate) async fn accept(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>) -> Result<Json<PartnerOut>, Problem> {
    p.require(Role::Owner)?;
    let got = s.changes.accept_partner(&s.registry, &p.tenant_id, &org_id("id", &id)?).await?;
    Ok(Json(PartnerOut::seen_by_buyer(got, false)))
}

#[utoipa::path(delete, path = "/api/v1/partners/{id}", params(("id" = String, Path, description = "the other organisation's id")), responses((status = 204), (status = 404, body = Problem)))]
pub(crate) async fn end(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>) -> Result<StatusCode, Problem> {
    p.require(Role::Owner)?;
    s.changes.end_partnership(&s.registry, &p.tenant_id, &org_id("id", &id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn render(s: &PortalState, p: &Principal, error: Option<String>) -> PageResult {
    let lang = p.lang;
    let all = partners_of(s, &p.tenant_id)?;
    let owner = p.role.allows(Role::Owner);
    Ok(page(
        lang,
        lang.t("partners"),
        Some(p),
        html! {
            h1 { (lang.t("partners")) }
            p { (lang.t("your_org_id")) ": " code id="org-id" { (all.organisation_id) } }
            @if let Some(e) = &error { p.error role="alert" { (e) } }
            h2 { (lang.t("suppliers")) }
            @if owner {
                form.row method="post" action="/partners" {
                    (csrf_field(p))
                    label { (lang.t("supplier_org_id")) br; input name="supplier_id" required pattern="t_[0-9a-f]{16}" placeholder="t_0123456789abcdef"; }
                    button type="submit" { (lang.t("add_partner")) }
                }
            }
            table id="suppliers" {
                thead { tr { th { (lang.t("name")) } th { (lang.t("organisation")) } th { (lang.t("status")) } th {} } }
                tbody { @for x in &all.suppliers { tr {
                    td { (x.name) } td { code { (x.organisation_id) } } td { (lang.t(if x.status == "active" { "active" } else { "pending" })) }
                    td { @if owner { form.inline method="post" action={ "/partners/" (x.organisation_id) "/end" } { (csrf_field(p)) button type="submit" { (lang.t("end_partnership")) } } } }
                } } }
            }
            h2 { (lang.t("buyers")) }
            table id="buyers" {
                thead { tr { th { (lang.t("name")) } th { (lang.t("organisation")) } th { (lang.t("status")) } th {} } }
                tbody { @for x in &all.buyers { tr {
                    td { (x.name) } td { code { (x.organisation_id) } } td { (lang.t(if x.status == "active" { "active" } else { "pending" })) }
                    td { @if owner {
                        @if x.status == "pending" { form.inline method="post" action={ "/partners/" (x.organisation_id) "/accept" } { (csrf_field(p)) button type="submit" { (lang.t("accept")) } } " " }
                        form.inline method="post" action={ "/partners/" (x.organisation_id) "/end" } { (csrf_field(p)) button type="submit" { (lang.t("end_partnership")) } }
                    } }
                } } }
            }
        },
    ))
}

async fn partners_page(State(s): St, PageAuth(p): PageAuth) -> PageResult {
    render(&s, &p, None)
}

#[derive(Deserialize)]
struct RequestForm {
    csrf: String,
    supplier_id: String,
}

async fn request_form(State(s): St, PageAuth(p): PageAuth, Form(f): Form<RequestForm>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Owner)?;
    let done = org_id("supplier_id", &f.supplier_id).and_then(|id| s.registry.request_partner(&p.tenant_id, &id).map_err(Problem::from));
    match done {
        Ok(_) => Ok(Redirect::to("/partners").into_response()),
        Err(e) => {
            // Refusals (quota, unknown id) are shown on the page, with the status they deserve.
            Ok(with_status(render(&s, &p, Some(e.detail.clone()))?, &e))
        }
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn accept_form(State(s): St, PageAuth(p): PageAuth, Path(id): Path<String>, Form(f): Form<CsrfOnly>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Owner)?;
    s.changes.accept_partner(&s.registry, &p.tenant_id, &org_id("id", &id)?).await?;
    Ok(Redirect::to("/partners").into_response())
}

async fn end_form(State(s): St, PageAuth(p): PageAuth, Path(id): Path<String>, Form(f): Form<CsrfOnly>) -> PageResult {
    check_csrf(&p, &f.csrf)?;
    p.require(Role::Owner)?;
    s.changes.end_partnership(&s.registry, &p.tenant_id, &org_id("id", &id)?).await?;
    Ok(Redirect::to("/partners").into_response())
}
