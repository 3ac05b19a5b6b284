//! The REST + JSON API under `/api/v1`, described by the OpenAPI 3.1 document
//! at `/api/openapi.json` (generated from these handlers). Machine clients use
//! `Authorization: Bearer <API key>`; the browser uses its session plus the
//! `x-csrf-token` header. Errors are RFC 9457 problem+json.

use crate::PortalState;
use crate::auth::ApiAuth;
use crate::problem::Problem;
use crate::usage::{Usage, usage_of};
use crate::web::ApiJson;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use fc_registry::Role;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

type St = State<Arc<PortalState>>;
type ApiResult<T> = Result<T, Problem>;

/// API routes (mounted at `/api`).
pub fn routes() -> Router<Arc<PortalState>> {
    Router::new()
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
pub(crate) async fn me(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Me>> {
    let t = s.registry.get_tenant(&p.tenant_id)?;
    Ok(Json(Me {
        tenant_id: t.id.clone(),
        tenant_name: t.name.clone(),
        plan: t.plan_id.clone(),
        role: p.role.as_str().into(),
        user_id: p.user_id,
    }))
}

#[utoipa::path(get, path = "/api/v1/usage", responses((status = 200, body = Usage)))]
pub(crate) async fn usage(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Usage>> {
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
pub(crate) async fn list_devices(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Vec<DeviceOut>>> {
    Ok(Json(s.registry.list_devices(&p.tenant_id)?.into_iter().map(DeviceOut::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/devices", request_body = NewDevice, responses((status = 201, body = CreatedDevice), (status = 400, body = Problem), (status = 403, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn create_device(State(s): St, ApiAuth(p): ApiAuth, ApiJson(b): ApiJson<NewDevice>) -> ApiResult<Response> {
    p.require(Role::Operator)?;
    let (d, token) = s.registry.create_device(&p.tenant_id, &b.name)?;
    Ok((axum::http::StatusCode::CREATED, Json(CreatedDevice { device: d.into(), token })).into_response())
}

#[utoipa::path(delete, path = "/api/v1/devices/{id}", params(("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub(crate) async fn revoke_device(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>) -> ApiResult<axum::http::StatusCode> {
    p.require(Role::Operator)?;
    s.changes.revoke_device(&s.registry, &p.tenant_id, &id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/rotate", params(("id" = String, Path)), responses((status = 200, body = CreatedDevice), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn rotate_device(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>) -> ApiResult<Json<CreatedDevice>> {
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
pub(crate) async fn list_users(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Vec<UserOut>>> {
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
pub(crate) async fn set_role(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RoleChange>,
) -> ApiResult<Json<UserOut>> {
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
pub(crate) async fn invite(State(s): St, ApiAuth(p): ApiAuth, ApiJson(b): ApiJson<NewInvitation>) -> ApiResult<Response> {
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
pub(crate) async fn list_invitations(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Vec<InvitationOut>>> {
    p.require(Role::Owner)?;
    let all = s.registry.list_invitations(&p.tenant_id)?;
    Ok(Json(
        all.into_iter()
            .map(|i| InvitationOut { id: i.id, email: i.email, role: i.role.as_str().into(), expires_ms: i.expires_ms })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/invitations/{id}", params(("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub(crate) async fn withdraw_invitation(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>) -> ApiResult<axum::http::StatusCode> {
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
pub(crate) async fn list_keys(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Vec<KeyOut>>> {
    p.require(Role::Owner)?;
    Ok(Json(s.registry.list_api_keys(&p.tenant_id)?.into_iter().map(key_out).collect()))
}

#[utoipa::path(post, path = "/api/v1/api-keys", request_body = NewKey, responses((status = 201, body = CreatedKey), (status = 403, body = Problem)))]
pub(crate) async fn create_key(State(s): St, ApiAuth(p): ApiAuth, ApiJson(b): ApiJson<NewKey>) -> ApiResult<Response> {
    p.require(Role::Owner)?;
    let (k, token) = s.registry.create_api_key(&p.tenant_id, &b.name, Role::parse(&b.role)?)?;
    Ok((axum::http::StatusCode::CREATED, Json(CreatedKey { key: key_out(k), token })).into_response())
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", params(("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub(crate) async fn revoke_key(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>) -> ApiResult<axum::http::StatusCode> {
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
pub(crate) async fn list_series(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Vec<SeriesOut>>> {
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
pub(crate) async fn latest(State(s): St, ApiAuth(p): ApiAuth) -> ApiResult<Json<Vec<LatestOut>>> {
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
pub(crate) async fn series_range(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((machine, metric)): Path<(String, String)>,
    q: Result<Query<RangeParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<RangeOut>> {
    let Query(q) = q.map_err(|e| Problem::bad_request(e.body_text()))?;
    Ok(Json(fetch(&s, &p.tenant_id, machine, metric, &q).await?))
}

#[utoipa::path(get, path = "/api/v1/series/{machine}/{metric}/export.csv", params(("machine" = String, Path), ("metric" = String, Path), RangeParams), responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn export_csv(
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
    Ok(crate::web::attachment("text/csv; charset=utf-8", &name, out))
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
