//! The REST + JSON API under `/api/v1`, described by the OpenAPI 3.1 document
//! at `/api/openapi.json` (generated from these handlers). Machine clients use
//! `Authorization: Bearer <API key>`; the browser uses its session plus the
//! `x-csrf-token` header. Errors are RFC 9457 problem+json.

use crate::PortalState;
use crate::auth::ApiAuth;
use crate::problem::Problem;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use fc_registry::Role;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

type St = State<Arc<PortalState>>;
type ApiResult<T> = Result<T, Problem>;

/// API routes (mounted at `/api`).
pub fn routes() -> Router<Arc<PortalState>> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route("/v1/me", get(me))
        .route("/v1/usage", get(usage))
        .route("/v1/devices", get(list_devices).post(create_device))
        .route("/v1/devices/{id}", delete(revoke_device))
        .route("/v1/devices/{id}/rotate", post(rotate_device))
        .route("/v1/users", get(list_users))
        .route("/v1/users/{id}", patch(set_role))
        .route("/v1/invitations", get(list_invitations).post(invite))
        .route("/v1/invitations/{id}", delete(withdraw_invitation))
        .route("/v1/api-keys", get(list_keys).post(create_key))
        .route("/v1/api-keys/{id}", delete(revoke_key))
        .route("/v1/series", get(list_series))
        .route("/v1/latest", get(latest))
        .route("/v1/series/{machine}/{metric}", get(series_range))
        .route("/v1/series/{machine}/{metric}/export.csv", get(export_csv))
        .fallback(|| async { Problem::not_found() })
}

/// `Json<T>` whose rejections (malformed JSON, unknown fields, wrong types,
/// wrong content type, oversized bodies) are problem+json 400s.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(e) => Err(Problem::body_rejected(e.status(), e.body_text())),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "FactoryChain API", version = "1", description = "Tenancy, devices, users, API keys, telemetry reads, and supplier settlement (ledger, designs, orders, payments). Authenticate with `Authorization: Bearer <API key>`."),
    paths(crate::supply::org, crate::supply::set_key, crate::supply::set_bank, crate::supply::org_key, crate::supply::networks, crate::supply::ledger_key, crate::supply::checkpoint, crate::supply::entries, crate::supply::entry, crate::supply::inclusion, crate::supply::consistency, crate::supply::designs, crate::supply::publish_design, crate::supply::download_design, crate::supply::change_access, crate::supply::orders, crate::supply::issue_order, crate::supply::order, crate::supply::accept_order, crate::supply::send_shipment, crate::supply::receive, crate::supply::inspect, crate::supply::accept_delivery, crate::supply::reject_delivery, crate::supply::payments, crate::supply::export_payments, crate::supply::exports, crate::supply::blocked_payments, crate::supply::export_file, crate::supply::reissue_export, crate::supply::confirm_payment, crate::partners::list, crate::partners::request, crate::partners::accept, crate::partners::end, me, usage, list_devices, create_device, revoke_device, rotate_device, list_users, set_role, invite, list_invitations, withdraw_invitation, list_keys, create_key, revoke_key, list_series, latest, series_range, export_csv),
    components(schemas(crate::supply::OrgOut, crate::supply::KeyIn, crate::supply::KeyOut, crate::supply::RecipientsIn, crate::supply::ShipmentIn, crate::supply::QuantityIn, crate::supply::InspectionIn, crate::supply::RejectIn, crate::supply::ConfirmIn, fc_settlement_api::NetworkView, fc_settlement_api::DesignView, fc_settlement_api::OrderInput, fc_settlement_api::OrderView, fc_settlement_api::ShipmentView, fc_settlement_api::PaymentView, fc_settlement_api::ExportView, fc_settlement_api::BlockedView, fc_settlement_api::EntryView, fc_settlement_api::TelemetryInspection, crate::partners::PartnersOut, crate::partners::PartnerOut, crate::partners::NewPartner, Problem, Me, Usage, DeviceOut, NewDevice, CreatedDevice, UserOut, RoleChange, NewInvitation, CreatedInvitation, InvitationOut, KeyOut, NewKey, CreatedKey, SeriesOut, LatestOut, RangeOut, PointOut, BucketOut)),
    modifiers(&BearerAuth, &DescribeResponses),
    security(("bearer" = []))
)]
/// The OpenAPI document.
pub struct ApiDoc;

struct BearerAuth;
impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

/// Completes what every operation shares, so that no route can leave the
/// document invalid or a generated client surprised (the class, not each line):
/// - OpenAPI 3.1 requires a `description` on every response: a handler's
///   annotation gives one where it has more to say, the others say what their
///   status means on this API;
/// - every route needs a key or session, so every operation documents 401;
///   one with parameters or a body documents 400 too (both problem+json);
/// - tags are the API's areas, not Rust module paths.
struct DescribeResponses;
impl utoipa::Modify for DescribeResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let problem = |status: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(status_meaning(status))
                    .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in operations.into_iter().flatten() {
                let responses = &mut op.responses.responses;
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(r) = response
                        && r.description.trim().is_empty()
                    {
                        r.description = status_meaning(status).to_string();
                    }
                }
                if path.starts_with("/api/v1/") {
                    responses.entry("401".into()).or_insert_with(|| problem("401"));
                }
                if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) || op.request_body.is_some() {
                    responses.entry("400".into()).or_insert_with(|| problem("400"));
                }
                if let Some(tags) = &mut op.tags {
                    for tag in tags.iter_mut() {
                        *tag = match tag.as_str() {
                            "crate::supply" => "settlement".into(),
                            "crate::partners" => "partners".into(),
                            other => other.into(),
                        };
                    }
                }
            }
        }
    }
}

/// What a status means on this API, for the OpenAPI document.
pub fn status_meaning(status: &str) -> &'static str {
    match status {
        "200" => "Success.",
        "201" => "Created.",
        "204" => "Done; no content.",
        "400" => "Malformed request or a value out of range; `detail` names the field.",
        "401" => "No valid API key or session.",
        "403" => "The caller's role does not allow this.",
        "404" => "No such object in the caller's tenant.",
        "409" => "Conflicts with the object's current state; `detail` says why.",
        "413" => "The request body is larger than allowed.",
        "415" => "Unsupported content type.",
        "429" => "A plan limit or a throttle was reached; `detail` says which and when to retry.",
        "503" => "A service this request needs is unavailable; retry later.",
        _ => "See `detail` (problem+json).",
    }
}

/// The caller.
#[derive(Serialize, ToSchema)]
pub struct Me {
    tenant_id: String,
    tenant_name: String,
    plan: String,
    role: String,
    user_id: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = Me), (status = 401, body = Problem)))]
async fn me(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Me>> {
    let t = s.registry.get_tenant(&p.tenant_id)?;
    Ok(Json(Me {
        tenant_id: t.id.clone(),
        tenant_name: t.name.clone(),
        plan: t.plan_id.clone(),
        role: p.role.as_str().into(),
        user_id: p.user_id,
    }))
}

/// Plan usage against its quotas.
#[derive(Serialize, ToSchema)]
pub struct Usage {
    /// Plan id.
    pub plan: String,
    /// Plan name.
    pub plan_name: String,
    /// Active devices.
    pub devices: u32,
    /// Most active devices.
    pub max_devices: u32,
    /// Users.
    pub users: u32,
    /// Most users.
    pub max_users: u32,
    /// Ingest rate limit.
    pub max_readings_per_s: u32,
    /// Retention.
    pub retention_days: u32,
    /// Supplier partnerships (pending and active).
    pub partners: u32,
    /// Most partners.
    pub max_partners: u32,
}

/// Usage of a tenant (shared by the page and the API).
pub fn usage_of(s: &PortalState, tenant_id: &str) -> Result<Usage, Problem> {
    let t = s.registry.get_tenant(tenant_id)?;
    let plan = t.plan();
    Ok(Usage {
        plan: plan.id.into(),
        plan_name: plan.name.into(),
        devices: s.registry.list_devices(tenant_id)?.iter().filter(|d| d.revoked_ms.is_none()).count() as u32,
        max_devices: plan.max_devices,
        users: s.registry.list_users(tenant_id)?.len() as u32,
        max_users: plan.max_users,
        max_readings_per_s: plan.max_readings_per_s,
        retention_days: plan.retention_days,
        partners: s.registry.suppliers(tenant_id)?.len() as u32,
        max_partners: plan.max_partners,
    })
}

#[utoipa::path(get, path = "/api/v1/usage", responses((status = 200, body = Usage)))]
async fn usage(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Usage>> {
    Ok(Json(usage_of(&s, &p.tenant_id)?))
}

/// A device (never its token).
#[derive(Serialize, ToSchema)]
pub struct DeviceOut {
    id: String,
    name: String,
    created_ms: i64,
    revoked_ms: Option<i64>,
}

impl From<fc_registry::Device> for DeviceOut {
    fn from(d: fc_registry::Device) -> Self {
        Self { id: d.id, name: d.name, created_ms: d.created_ms, revoked_ms: d.revoked_ms }
    }
}

/// Create a device.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    /// Display name, 1-100 characters.
    name: String,
}

/// A new device and its token (shown once).
#[derive(Serialize, ToSchema)]
pub struct CreatedDevice {
    device: DeviceOut,
    token: String,
}

#[utoipa::path(get, path = "/api/v1/devices", responses((status = 200, body = [DeviceOut])))]
async fn list_devices(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Vec<DeviceOut>>> {
    Ok(Json(s.registry.list_devices(&p.tenant_id)?.into_iter().map(DeviceOut::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/devices", request_body = NewDevice, responses((status = 201, body = CreatedDevice), (status = 400, body = Problem), (status = 403, body = Problem), (status = 429, body = Problem)))]
async fn create_device(State(s): St, ApiAuth(p): ApiAuth, ApiJson(b): ApiJson<NewDevice>) -> ApiResult<Response> {
    p.require(Role::Operator)?;
    let (d, token) = s.registry.create_device(&p.tenant_id, &b.name)?;
    Ok((axum::http::StatusCode::CREATED, Json(CreatedDevice { device: d.into(), token })).into_response())
}

#[utoipa::path(delete, path = "/api/v1/devices/{id}", params(("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
async fn revoke_device(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>) -> ApiResult<axum::http::StatusCode> {
    p.require(Role::Operator)?;
    s.changes.revoke_device(&s.registry, &p.tenant_id, &id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/rotate", params(("id" = String, Path)), responses((status = 200, body = CreatedDevice), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn rotate_device(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>) -> ApiResult<Json<CreatedDevice>> {
    p.require(Role::Operator)?;
    let (d, token) = s.changes.rotate_device_token(&s.registry, &p.tenant_id, &id).await?;
    Ok(Json(CreatedDevice { device: d.into(), token }))
}

/// A user.
#[derive(Serialize, ToSchema)]
pub struct UserOut {
    id: String,
    email: String,
    name: String,
    role: String,
}

#[utoipa::path(get, path = "/api/v1/users", responses((status = 200, body = [UserOut]), (status = 403, body = Problem)))]
async fn list_users(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Vec<UserOut>>> {
    p.require(Role::Owner)?;
    Ok(Json(
        s.registry
            .list_users(&p.tenant_id)?
            .into_iter()
            .map(|u| UserOut { id: u.id, email: u.email, name: u.name, role: u.role.as_str().into() })
            .collect(),
    ))
}

/// A role change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// viewer | operator | owner
    role: String,
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", params(("id" = String, Path)), request_body = RoleChange, responses((status = 200, body = UserOut), (status = 404, body = Problem)))]
async fn set_role(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>, ApiJson(b): ApiJson<RoleChange>) -> ApiResult<Json<UserOut>> {
    p.require(Role::Owner)?;
    let u = s.registry.set_role(&p.tenant_id, &id, Role::parse(&b.role)?)?;
    Ok(Json(UserOut { id: u.id, email: u.email, name: u.name, role: u.role.as_str().into() }))
}

/// Invite a teammate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    email: String,
    /// viewer | operator | owner
    role: String,
}

/// The invitation token (shown once): the invitee opens `/invite/{token}`.
#[derive(Serialize, ToSchema)]
pub struct CreatedInvitation {
    token: String,
    expires_ms: i64,
}

#[utoipa::path(post, path = "/api/v1/invitations", request_body = NewInvitation, responses((status = 201, body = CreatedInvitation), (status = 403, body = Problem)))]
async fn invite(State(s): St, ApiAuth(p): ApiAuth, ApiJson(b): ApiJson<NewInvitation>) -> ApiResult<Response> {
    p.require(Role::Owner)?;
    let (token, inv) = s.registry.invite(&p.tenant_id, &b.email, Role::parse(&b.role)?)?;
    Ok((axum::http::StatusCode::CREATED, Json(CreatedInvitation { token, expires_ms: inv.expires_ms })).into_response())
}

/// A pending invitation (never its token).
#[derive(Serialize, ToSchema)]
pub struct InvitationOut {
    id: String,
    email: String,
    role: String,
    expires_ms: i64,
}

#[utoipa::path(get, path = "/api/v1/invitations", responses((status = 200, body = [InvitationOut]), (status = 403, body = Problem)))]
async fn list_invitations(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Vec<InvitationOut>>> {
    p.require(Role::Owner)?;
    let all = s.registry.list_invitations(&p.tenant_id)?;
    Ok(Json(
        all.into_iter()
            .map(|i| InvitationOut { id: i.id, email: i.email, role: i.role.as_str().into(), expires_ms: i.expires_ms })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/invitations/{id}", params(("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
async fn withdraw_invitation(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>) -> ApiResult<axum::http::StatusCode> {
    p.require(Role::Owner)?;
    s.registry.withdraw_invitation(&p.tenant_id, &id)?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// An API key (never its secret).
#[derive(Serialize, ToSchema)]
pub struct KeyOut {
    id: String,
    name: String,
    role: String,
    created_ms: i64,
    revoked_ms: Option<i64>,
}

/// Create an API key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: String,
    /// viewer | operator
    role: String,
}

/// A new key and its token (shown once).
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    key: KeyOut,
    token: String,
}

fn key_out(k: fc_registry::ApiKey) -> KeyOut {
    KeyOut { id: k.id, name: k.name, role: k.role.as_str().into(), created_ms: k.created_ms, revoked_ms: k.revoked_ms }
}

#[utoipa::path(get, path = "/api/v1/api-keys", responses((status = 200, body = [KeyOut]), (status = 403, body = Problem)))]
async fn list_keys(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Vec<KeyOut>>> {
    p.require(Role::Owner)?;
    Ok(Json(s.registry.list_api_keys(&p.tenant_id)?.into_iter().map(key_out).collect()))
}

#[utoipa::path(post, path = "/api/v1/api-keys", request_body = NewKey, responses((status = 201, body = CreatedKey), (status = 403, body = Problem)))]
async fn create_key(State(s): St, ApiAuth(p): ApiAuth, ApiJson(b): ApiJson<NewKey>) -> ApiResult<Response> {
    p.require(Role::Owner)?;
    let (k, token) = s.registry.create_api_key(&p.tenant_id, &b.name, Role::parse(&b.role)?)?;
    Ok((axum::http::StatusCode::CREATED, Json(CreatedKey { key: key_out(k), token })).into_response())
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", params(("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
async fn revoke_key(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>) -> ApiResult<axum::http::StatusCode> {
    p.require(Role::Owner)?;
    s.changes.revoke_api_key(&s.registry, &p.tenant_id, &id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// A series.
#[derive(Serialize, ToSchema)]
pub struct SeriesOut {
    machine: String,
    metric: String,
    unit: String,
}

#[utoipa::path(get, path = "/api/v1/series", responses((status = 200, body = [SeriesOut])))]
async fn list_series(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Vec<SeriesOut>>> {
    Ok(Json(
        s.telemetry
            .list_series(&p.tenant_id, None)
            .await?
            .into_iter()
            .map(|i| SeriesOut { machine: i.machine, metric: i.metric, unit: i.unit })
            .collect(),
    ))
}

/// The newest reading of a series.
#[derive(Serialize, ToSchema)]
pub struct LatestOut {
    machine: String,
    metric: String,
    unit: String,
    ts_ms: i64,
    value: f64,
    quality: u8,
}

#[utoipa::path(get, path = "/api/v1/latest", responses((status = 200, body = [LatestOut])))]
async fn latest(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Vec<LatestOut>>> {
    Ok(Json(
        s.telemetry
            .latest(&p.tenant_id, &[])
            .await?
            .into_iter()
            .map(|l| LatestOut {
                machine: l.series.machine,
                metric: l.series.metric,
                unit: l.series.unit,
                ts_ms: l.ts_ms,
                value: l.value,
                quality: l.quality,
            })
            .collect(),
    ))
}

/// Range query parameters.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RangeParams {
    /// Inclusive start, Unix ms (default: end - 1 h).
    start_ms: Option<i64>,
    /// Exclusive end, Unix ms (default: now + 1 s).
    end_ms: Option<i64>,
    /// 0 (default) for raw readings, else the bucket width in ms.
    step_ms: Option<i64>,
    /// CSV export of buckets: only this aggregate (min, max, avg, count, last) instead of all five.
    agg: Option<String>,
    /// Most raw readings (default 100,000, at most 1,000,000; raw reads only).
    limit: Option<u32>,
}

/// One raw reading.
#[derive(Serialize, ToSchema)]
pub struct PointOut {
    t: i64,
    v: f64,
    q: u8,
}

/// One bucket.
#[derive(Serialize, ToSchema)]
pub struct BucketOut {
    t: i64,
    min: f64,
    max: f64,
    avg: f64,
    count: u64,
    last: f64,
}

/// Readings or buckets of a series.
#[derive(Serialize, ToSchema)]
pub struct RangeOut {
    machine: String,
    metric: String,
    unit: String,
    readings: Vec<PointOut>,
    buckets: Vec<BucketOut>,
    truncated: bool,
}

async fn fetch(s: &PortalState, tenant: &str, machine: String, metric: String, q: &RangeParams) -> ApiResult<RangeOut> {
    let end = q.end_ms.unwrap_or_else(|| fc_core::time::now_ms() + 1000);
    let start = q.start_ms.unwrap_or(end.saturating_sub(3_600_000));
    // The range rules and the tenant's read budget are applied by ingest, the store's owner;
    // the gRPC field cannot say "limit 0", which REST refuses as before.
    if q.limit == Some(0) {
        return Err(Problem::bad_request(format!("limit: 0 is not in 1..={}", fc_store::range::MAX_RAW_LIMIT)));
    }
    let spec = fc_query_api::RangeSpec { start_ms: start, end_ms: end, step_ms: q.step_ms.unwrap_or(0), limit: q.limit.unwrap_or(0) };
    let r = s.telemetry.range(tenant, &machine, &metric, spec).await?;
    let Some(unit) = r.unit else { return Err(Problem::not_found()) };
    let readings = r.points.iter().map(|p| PointOut { t: p.ts_ms, v: p.value, q: p.quality }).collect();
    let buckets =
        r.buckets.iter().map(|b| BucketOut { t: b.start_ms, min: b.min, max: b.max, avg: b.avg, count: b.count, last: b.last }).collect();
    Ok(RangeOut { machine, metric, unit, readings, buckets, truncated: r.truncated })
}

#[utoipa::path(get, path = "/api/v1/series/{machine}/{metric}", params(("machine" = String, Path), ("metric" = String, Path), RangeParams), responses((status = 200, body = RangeOut), (status = 404, body = Problem), (status = 429, body = Problem)))]
async fn series_range(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((machine, metric)): Path<(String, String)>,
    q: Result<Query<RangeParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<RangeOut>> {
    let Query(q) = q.map_err(|e| Problem::bad_request(e.body_text()))?;
    Ok(Json(fetch(&s, &p.tenant_id, machine, metric, &q).await?))
}

#[utoipa::path(get, path = "/api/v1/series/{machine}/{metric}/export.csv", params(("machine" = String, Path), ("metric" = String, Path), RangeParams), responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = Problem), (status = 429, body = Problem)))]
async fn export_csv(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((machine, metric)): Path<(String, String)>,
    q: Result<Query<RangeParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|e| Problem::bad_request(e.body_text()))?;
    let r = fetch(&s, &p.tenant_id, machine.clone(), metric.clone(), &q).await?;
    let mut out = String::new();
    if q.step_ms.unwrap_or(0) > 0 {
        match q.agg.as_deref() {
            None => {
                out.push_str("bucket_start_ms,bucket_start_utc,min,max,avg,count,last\n");
                for b in &r.buckets {
                    out.push_str(&format!("{},{},{},{},{},{},{}\n", b.t, iso(b.t), b.min, b.max, b.avg, b.count, b.last));
                }
            }
            Some(agg) => {
                let pick = |b: &BucketOut| -> Option<String> {
                    Some(match agg {
                        "min" => b.min.to_string(),
                        "max" => b.max.to_string(),
                        "avg" => b.avg.to_string(),
                        "count" => b.count.to_string(),
                        "last" => b.last.to_string(),
                        _ => return None,
                    })
                };
                out.push_str(&format!("bucket_start_ms,bucket_start_utc,{agg}\n"));
                for b in &r.buckets {
                    let v = pick(b).ok_or_else(|| Problem::bad_request("agg: one of min, max, avg, count, last"))?;
                    out.push_str(&format!("{},{},{}\n", b.t, iso(b.t), v));
                }
            }
        }
    } else {
        out.push_str("timestamp_ms,timestamp_utc,value,quality,unit\n");
        for x in &r.readings {
            out.push_str(&format!("{},{},{},{},{}\n", x.t, iso(x.t), x.v, x.q, csv_field(&r.unit)));
        }
    }
    let name = format!("{}_{}.csv", safe(&machine), safe(&metric));
    Ok(crate::pages::attachment("text/csv; charset=utf-8", &name, out))
}

fn safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// A CSV field, quoted when needed; a leading formula character is neutralised (CSV injection).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

/// RFC 3339 UTC timestamp of Unix ms. Beyond the years ±9999 (never a stored
/// reading: ingest refuses timestamps more than days away) the ms are written as is.
pub fn iso(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_and_csv_fields() {
        assert_eq!(super::iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::iso(1_514_733_300_123), "2017-12-31T15:15:00.123Z");
        assert_eq!(super::csv_field("=cmd|calc"), "'=cmd|calc");
        assert_eq!(super::csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
