//! Supplier settlement over REST: organisation profile (design key, bank
//! account), supply networks, the verifiable ledger (checkpoint, entries,
//! proofs), encrypted designs, orders and deliveries, payments and the
//! buyer's bank file. The rules live in `fc_settlement_service`; this module
//! takes the caller's organisation from its credential and maps roles:
//! viewers read; operators (people and API keys) record the workflow, register
//! the design key, export the bank file and record confirmations; only owners
//! (signed in) enter the bank account money is paid into or from.

use crate::PortalState;
use crate::auth::ApiAuth;
use crate::problem::Problem;
use crate::web::ApiJson;
use crate::web::attachment;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use fc_ledger::proof::{ConsistencyProof, InclusionProof};
use fc_registry::{BankAccount, Role};
use fc_settlement_api::UploadError;
use fc_settlement_api::{
    BankFile, BlockedView, DesignView, EntryView, ExportView, NetworkView, OrderInput, OrderView, PaymentView, TelemetryInspection,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

type St = State<Arc<PortalState>>;

/// REST routes. Design uploads stream to disk; the settlement engine limits
/// their size (per file and per plan).
pub fn routes() -> Router<Arc<PortalState>> {
    Router::new()
        .route("/api/v1/org", get(org))
        .route("/api/v1/org/key", put(set_key))
        .route("/api/v1/org/bank", put(set_bank))
        .route("/api/v1/orgs/{id}/key", get(org_key))
        .route("/api/v1/networks", get(networks))
        .route("/api/v1/ledger/key", get(ledger_key))
        .route("/api/v1/ledger/{network}/checkpoint", get(checkpoint))
        .route("/api/v1/ledger/{network}/entries", get(entries))
        .route("/api/v1/ledger/{network}/entries/{index}", get(entry))
        .route("/api/v1/ledger/{network}/proof/inclusion", get(inclusion))
        .route("/api/v1/ledger/{network}/proof/consistency", get(consistency))
        .route("/api/v1/networks/{network}/designs", get(designs))
        // No body limit here: the upload streams to disk under the engine's
        // per-file limit and the plan's quota.
        .route("/api/v1/networks/{network}/designs/{design_id}", post(publish_design).layer(DefaultBodyLimit::disable()))
        .route("/api/v1/networks/{network}/designs/{design_id}/versions/{version}", get(download_design))
        .route("/api/v1/networks/{network}/designs/{design_id}/versions/{version}/recipients", put(change_access))
        .route("/api/v1/networks/{network}/orders", get(orders).post(issue_order))
        .route("/api/v1/networks/{network}/orders/{order_id}", get(order))
        .route("/api/v1/networks/{network}/orders/{order_id}/accept", post(accept_order))
        .route("/api/v1/networks/{network}/orders/{order_id}/shipments", post(send_shipment))
        .route("/api/v1/networks/{network}/orders/{order_id}/shipments/{shipment_id}/receive", post(receive))
        .route("/api/v1/networks/{network}/orders/{order_id}/shipments/{shipment_id}/inspection", post(inspect))
        .route("/api/v1/networks/{network}/orders/{order_id}/shipments/{shipment_id}/accept", post(accept_delivery))
        .route("/api/v1/networks/{network}/orders/{order_id}/shipments/{shipment_id}/reject", post(reject_delivery))
        .route("/api/v1/networks/{network}/payments", get(payments))
        .route("/api/v1/networks/{network}/payments/exports", get(exports).post(export_payments))
        .route("/api/v1/networks/{network}/payments/blocked", get(blocked_payments))
        .route("/api/v1/networks/{network}/payments/exports/{message_id}", get(export_file))
        .route("/api/v1/networks/{network}/payments/exports/{message_id}/reissue", post(reissue_export))
        .route("/api/v1/networks/{network}/payments/{instruction_id}/confirm", post(confirm_payment))
}

/// The caller's organisation and settlement profile.
#[derive(Serialize, ToSchema)]
pub struct OrgOut {
    /// Organisation id (the tenant id).
    organisation_id: String,
    /// Name.
    name: String,
    /// Registered design key (age recipient), if any.
    age_recipient: Option<String>,
    /// Bank account, if entered (shown to the organisation itself only).
    #[schema(value_type = Option<Object>)]
    bank: Option<BankAccount>,
}

/// A design key to register: the public half of `factorychain keys generate`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    /// `age1…` recipient.
    age_recipient: String,
}

/// An organisation's public design key.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct KeyOut {
    /// Organisation id.
    organisation_id: String,
    /// `age1…` recipient.
    age_recipient: String,
}

#[utoipa::path(get, path = "/api/v1/org", responses((status = 200, body = OrgOut)))]
pub(crate) async fn org(State(s): St, ApiAuth(p): ApiAuth) -> Result<Json<OrgOut>, Problem> {
    let t = s.registry.get_tenant(&p.tenant_id)?;
    let profile = s.registry.org_profile(&p.tenant_id)?;
    Ok(Json(OrgOut { organisation_id: t.id, name: t.name, age_recipient: profile.age_recipient, bank: profile.bank }))
}

#[utoipa::path(put, path = "/api/v1/org/key", request_body = KeyIn, responses((status = 200, body = KeyOut), (status = 400, body = Problem)))]
pub(crate) async fn set_key(State(s): St, ApiAuth(p): ApiAuth, ApiJson(b): ApiJson<KeyIn>) -> Result<Json<KeyOut>, Problem> {
    p.require(Role::Operator)?;
    let r = b.age_recipient.trim();
    fc_sealed::parse_recipient(r).map_err(|e| Problem::bad_request(format!("age_recipient: {e}")))?;
    s.registry.set_org_key(&p.tenant_id, r)?;
    Ok(Json(KeyOut { organisation_id: p.tenant_id, age_recipient: r.to_string() }))
}

#[utoipa::path(put, path = "/api/v1/org/bank", request_body(content = Object, description = "holder, account_kind (iban|domestic), account, bank_kind (bic|bank_code), bank"), responses((status = 204), (status = 400, body = Problem)))]
pub(crate) async fn set_bank(State(s): St, ApiAuth(p): ApiAuth, ApiJson(b): ApiJson<BankAccount>) -> Result<StatusCode, Problem> {
    p.require(Role::Owner)?;
    s.set_bank_account(&p.tenant_id, b)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/orgs/{id}/key", params(("id" = String, Path, description = "organisation id of a co-member of a supply network")), responses((status = 200, body = KeyOut), (status = 404, body = Problem)))]
pub(crate) async fn org_key(State(s): St, ApiAuth(p): ApiAuth, Path(id): Path<String>) -> Result<Json<KeyOut>, Problem> {
    if id != p.tenant_id && !s.registry.share_network(&p.tenant_id, &id).unwrap_or(false) {
        return Err(Problem::not_found());
    }
    let key = s.registry.org_profile(&id).map_err(|_| Problem::not_found())?.age_recipient.ok_or_else(|| {
        Problem::new(fc_core::ErrorCode::NotFound, format!("{id} has not registered a design key (factorychain keys generate --register)"))
    })?;
    Ok(Json(KeyOut { organisation_id: id, age_recipient: key }))
}

#[utoipa::path(get, path = "/api/v1/networks", responses((status = 200, body = Vec<NetworkView>)))]
pub(crate) async fn networks(State(s): St, ApiAuth(p): ApiAuth) -> Result<Json<Vec<NetworkView>>, Problem> {
    Ok(Json(s.settlement.networks(&p.tenant_id).await?))
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

#[utoipa::path(get, path = "/api/v1/ledger/key", responses((status = 200, description = "the note verifier key checkpoints are signed with", content_type = "text/plain")))]
pub(crate) async fn ledger_key(State(s): St, ApiAuth(p): ApiAuth) -> Result<Response, Problem> {
    Ok(text(format!("{}\n", s.settlement.log_info(&p.tenant_id, None).await?.vkey)))
}

#[utoipa::path(get, path = "/api/v1/ledger/{network}/checkpoint", params(("network" = String, Path)), responses((status = 200, description = "the latest signed checkpoint (C2SP tlog-checkpoint in a signed note)", content_type = "text/plain"), (status = 404, body = Problem)))]
pub(crate) async fn checkpoint(State(s): St, ApiAuth(p): ApiAuth, Path(network): Path<String>) -> Result<Response, Problem> {
    Ok(text(s.settlement.checkpoint(&network, &p.tenant_id).await?))
}

/// A range of entries.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQ {
    /// First index (inclusive).
    #[serde(default)]
    start: u64,
    /// End index (exclusive); at most start + 1000.
    end: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/ledger/{network}/entries", params(("network" = String, Path), RangeQ), responses((status = 200, body = Vec<EntryView>, description = "the entries of the range the caller may read")))]
pub(crate) async fn entries(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path(network): Path<String>,
    q: Result<Query<RangeQ>, QueryRejection>,
) -> Result<Json<Vec<EntryView>>, Problem> {
    let q = query(q)?;
    let end = q.end.unwrap_or(q.start.saturating_add(MAX_ENTRIES));
    check_range(q.start, end)?;
    Ok(Json(s.settlement.entries(&network, &p.tenant_id, q.start, end).await?))
}

/// Most entries one `entries` call returns.
const MAX_ENTRIES: u64 = 1000;

/// A query string that does not parse (a missing or non-numeric parameter),
/// as a problem naming the parameter (serde's message does).
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(q)| q).map_err(|e| Problem::bad_request(e.body_text()))
}

/// `[start, end)` of the entries route. Each refusal says which parameter is
/// wrong and how, with the values received.
fn check_range(start: u64, end: u64) -> Result<(), Problem> {
    if end < start {
        return Err(Problem::bad_request(format!("end ({end}) is before start ({start}): end must be greater than start")));
    }
    if end - start > MAX_ENTRIES {
        return Err(Problem::bad_request(format!(
            "end ({end}) is {} entries after start ({start}): at most {MAX_ENTRIES} entries per call; page with start",
            end - start
        )));
    }
    Ok(())
}

/// `index` and `size` of the inclusion route.
fn check_inclusion(index: u64, size: u64) -> Result<(), Problem> {
    if index >= size {
        return Err(Problem::bad_request(format!(
            "index ({index}) must be less than size ({size}): the leaf must be in the tree the proof is for"
        )));
    }
    Ok(())
}

/// `from` and `to` of the consistency route.
fn check_consistency(from: u64, to: u64) -> Result<(), Problem> {
    if from == 0 {
        return Err(Problem::bad_request(
            "from must be at least 1: an empty tree is consistent with every tree, there is nothing to prove",
        ));
    }
    if from > to {
        return Err(Problem::bad_request(format!("from ({from}) is greater than to ({to}): from must not be greater than to")));
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/ledger/{network}/entries/{index}", params(("network" = String, Path), ("index" = u64, Path)), responses((status = 200, description = "the entry's canonical bytes (its leaf is SHA-256(0x00 || body))", content_type = "application/json"), (status = 404, body = Problem)))]
pub(crate) async fn entry(State(s): St, ApiAuth(p): ApiAuth, Path((network, index)): Path<(String, u64)>) -> Result<Response, Problem> {
    let bytes = s.settlement.entry(&network, &p.tenant_id, index).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// Which inclusion proof.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionQ {
    /// Leaf index.
    index: u64,
    /// Tree size (of a checkpoint).
    size: u64,
}

#[utoipa::path(get, path = "/api/v1/ledger/{network}/proof/inclusion", params(("network" = String, Path), InclusionQ), responses((status = 200, description = "{leaf_index, tree_size, leaf_hash, root_hash, hashes}"), (status = 400, body = Problem)))]
pub(crate) async fn inclusion(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path(network): Path<String>,
    q: Result<Query<InclusionQ>, QueryRejection>,
) -> Result<Json<InclusionProof>, Problem> {
    let q = query(q)?;
    check_inclusion(q.index, q.size)?;
    Ok(Json(s.settlement.inclusion_proof(&network, &p.tenant_id, q.index, q.size).await?))
}

/// Which consistency proof.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQ {
    /// Older tree size.
    from: u64,
    /// Newer tree size.
    to: u64,
}

#[utoipa::path(get, path = "/api/v1/ledger/{network}/proof/consistency", params(("network" = String, Path), ConsistencyQ), responses((status = 200, description = "{size1, size2, root1, root2, hashes}"), (status = 400, body = Problem)))]
pub(crate) async fn consistency(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path(network): Path<String>,
    q: Result<Query<ConsistencyQ>, QueryRejection>,
) -> Result<Json<ConsistencyProof>, Problem> {
    let q = query(q)?;
    check_consistency(q.from, q.to)?;
    Ok(Json(s.settlement.consistency_proof(&network, &p.tenant_id, q.from, q.to).await?))
}

#[utoipa::path(get, path = "/api/v1/networks/{network}/designs", params(("network" = String, Path)), responses((status = 200, body = Vec<DesignView>)))]
pub(crate) async fn designs(State(s): St, ApiAuth(p): ApiAuth, Path(network): Path<String>) -> Result<Json<Vec<DesignView>>, Problem> {
    Ok(Json(s.settlement.designs(&network, &p.tenant_id).await?))
}

/// Recipients of a design upload.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ToQ {
    /// Comma-separated organisation ids that may decrypt it (the file must be encrypted to exactly their keys).
    to: String,
}

#[utoipa::path(post, path = "/api/v1/networks/{network}/designs/{design_id}", params(("network" = String, Path), ("design_id" = String, Path), ToQ), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "an age file encrypted on the client"), responses((status = 201, body = DesignView), (status = 400, body = Problem), (status = 413, body = Problem)))]
pub(crate) async fn publish_design(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((network, design_id)): Path<(String, String)>,
    q: Result<Query<ToQ>, QueryRejection>,
    headers: header::HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    // Who may publish is decided before a byte of the body is read, and the
    // body goes to a temporary file as it arrives, never whole into memory.
    p.require(Role::Operator)?;
    let q = query(q)?;
    let to: Vec<String> = q.to.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect();
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // Streamed on to the settlement service, which checks everything that
    // does not need the body (actor, recipients, declared size) first.
    let d = s
        .settlement
        .upload_design(&network, &p.tenant_id, &design_id, &to, length, body.into_data_stream())
        .await
        .map_err(upload_problem)?;
    Ok((StatusCode::CREATED, Json(d)).into_response())
}

/// 413 for a file over the per-file limit; the error's own status otherwise.
fn upload_problem(e: UploadError) -> Problem {
    if e.too_large { Problem::body_rejected(StatusCode::PAYLOAD_TOO_LARGE, e.error.message) } else { e.error.into() }
}

#[utoipa::path(get, path = "/api/v1/networks/{network}/designs/{design_id}/versions/{version}", params(("network" = String, Path), ("design_id" = String, Path), ("version" = u32, Path)), responses((status = 200, description = "the age ciphertext (recipients only)", content_type = "application/octet-stream"), (status = 404, body = Problem)))]
pub(crate) async fn download_design(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((network, design_id, version)): Path<(String, String, u32)>,
) -> Result<Response, Problem> {
    let parts = s.settlement.download_design(&network, &p.tenant_id, &design_id, version).await?;
    Ok(attachment("application/octet-stream", &format!("{design_id}-v{version}.age"), crate::web::streamed(parts)))
}

/// The complete new list of recipients.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientsIn {
    /// Organisation ids.
    recipients: Vec<String>,
}

#[utoipa::path(put, path = "/api/v1/networks/{network}/designs/{design_id}/versions/{version}/recipients", params(("network" = String, Path), ("design_id" = String, Path), ("version" = u32, Path)), request_body = RecipientsIn, responses((status = 200, body = DesignView)))]
pub(crate) async fn change_access(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((network, design_id, version)): Path<(String, String, u32)>,
    ApiJson(b): ApiJson<RecipientsIn>,
) -> Result<Json<DesignView>, Problem> {
    p.require(Role::Operator)?;
    Ok(Json(s.settlement.change_design_access(&network, &p.tenant_id, &design_id, version, &b.recipients).await?))
}

#[utoipa::path(get, path = "/api/v1/networks/{network}/orders", params(("network" = String, Path)), responses((status = 200, body = Vec<OrderView>)))]
pub(crate) async fn orders(State(s): St, ApiAuth(p): ApiAuth, Path(network): Path<String>) -> Result<Json<Vec<OrderView>>, Problem> {
    Ok(Json(s.settlement.orders(&network, &p.tenant_id).await?))
}

#[utoipa::path(post, path = "/api/v1/networks/{network}/orders", params(("network" = String, Path)), request_body = OrderInput, responses((status = 201, body = OrderView), (status = 400, body = Problem)))]
pub(crate) async fn issue_order(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path(network): Path<String>,
    ApiJson(b): ApiJson<OrderInput>,
) -> Result<Response, Problem> {
    p.require(Role::Operator)?;
    let o = s.settlement.issue_order(&network, &p.tenant_id, b).await?;
    Ok((StatusCode::CREATED, Json(o)).into_response())
}

#[utoipa::path(get, path = "/api/v1/networks/{network}/orders/{order_id}", params(("network" = String, Path), ("order_id" = String, Path)), responses((status = 200, body = OrderView), (status = 404, body = Problem)))]
pub(crate) async fn order(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((network, order_id)): Path<(String, String)>,
) -> Result<Json<OrderView>, Problem> {
    Ok(Json(s.settlement.order(&network, &p.tenant_id, &order_id).await?))
}

#[utoipa::path(post, path = "/api/v1/networks/{network}/orders/{order_id}/accept", params(("network" = String, Path), ("order_id" = String, Path)), responses((status = 200, body = OrderView)))]
pub(crate) async fn accept_order(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((network, order_id)): Path<(String, String)>,
) -> Result<Json<OrderView>, Problem> {
    p.require(Role::Operator)?;
    Ok(Json(s.settlement.accept_order(&network, &p.tenant_id, &order_id).await?))
}

/// A shipment sent by the supplier.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentIn {
    /// Shipment id, unique within the order.
    shipment_id: String,
    /// Units.
    quantity: u64,
}

#[utoipa::path(post, path = "/api/v1/networks/{network}/orders/{order_id}/shipments", params(("network" = String, Path), ("order_id" = String, Path)), request_body = ShipmentIn, responses((status = 200, body = OrderView)))]
pub(crate) async fn send_shipment(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((network, order_id)): Path<(String, String)>,
    ApiJson(b): ApiJson<ShipmentIn>,
) -> Result<Json<OrderView>, Problem> {
    p.require(Role::Operator)?;
    Ok(Json(s.settlement.send_shipment(&network, &p.tenant_id, &order_id, &b.shipment_id, b.quantity).await?))
}

/// Units received or accepted.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantityIn {
    /// Units.
    quantity: u64,
}

#[utoipa::path(post, path = "/api/v1/networks/{network}/orders/{order_id}/shipments/{shipment_id}/receive", params(("network" = String, Path), ("order_id" = String, Path), ("shipment_id" = String, Path)), request_body = QuantityIn, responses((status = 200, body = OrderView)))]
pub(crate) async fn receive(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((network, order_id, shipment_id)): Path<(String, String, String)>,
    ApiJson(b): ApiJson<QuantityIn>,
) -> Result<Json<OrderView>, Problem> {
    p.require(Role::Operator)?;
    Ok(Json(s.settlement.receive_shipment(&network, &p.tenant_id, &order_id, &shipment_id, b.quantity).await?))
}

/// An inspection: entered counts, or computed from an inspection station's telemetry.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectionIn {
    /// Units sampled (entered).
    sampled: Option<u32>,
    /// Defects found (entered).
    defects: Option<u32>,
    /// Compute instead from telemetry.
    telemetry: Option<TelemetryInspection>,
}

#[utoipa::path(post, path = "/api/v1/networks/{network}/orders/{order_id}/shipments/{shipment_id}/inspection", params(("network" = String, Path), ("order_id" = String, Path), ("shipment_id" = String, Path)), request_body = InspectionIn, responses((status = 200, body = OrderView)))]
pub(crate) async fn inspect(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((network, order_id, shipment_id)): Path<(String, String, String)>,
    ApiJson(b): ApiJson<InspectionIn>,
) -> Result<Json<OrderView>, Problem> {
    p.require(Role::Operator)?;
    let (tenant, st) = (&p.tenant_id, &s.settlement);
    let o = match (b.sampled, b.defects, b.telemetry) {
        (Some(sampled), Some(defects), None) => st.record_inspection(&network, tenant, &order_id, &shipment_id, sampled, defects).await?,
        (None, None, Some(t)) => st.inspect_from_telemetry(&network, tenant, &order_id, &shipment_id, &t).await?,
        _ => return Err(Problem::bad_request("give either sampled and defects, or telemetry")),
    };
    Ok(Json(o))
}

#[utoipa::path(post, path = "/api/v1/networks/{network}/orders/{order_id}/shipments/{shipment_id}/accept", params(("network" = String, Path), ("order_id" = String, Path), ("shipment_id" = String, Path)), request_body = QuantityIn, responses((status = 200, body = OrderView, description = "accepted; the payment instruction is on the ledger")))]
pub(crate) async fn accept_delivery(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((network, order_id, shipment_id)): Path<(String, String, String)>,
    ApiJson(b): ApiJson<QuantityIn>,
) -> Result<Json<OrderView>, Problem> {
    p.require(Role::Operator)?;
    Ok(Json(s.settlement.accept_delivery(&network, &p.tenant_id, &order_id, &shipment_id, b.quantity).await?))
}

/// Why a delivery is rejected.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectIn {
    /// Reason, for people.
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/networks/{network}/orders/{order_id}/shipments/{shipment_id}/reject", params(("network" = String, Path), ("order_id" = String, Path), ("shipment_id" = String, Path)), request_body = RejectIn, responses((status = 200, body = OrderView)))]
pub(crate) async fn reject_delivery(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((network, order_id, shipment_id)): Path<(String, String, String)>,
    ApiJson(b): ApiJson<RejectIn>,
) -> Result<Json<OrderView>, Problem> {
    p.require(Role::Operator)?;
    Ok(Json(s.settlement.reject_delivery(&network, &p.tenant_id, &order_id, &shipment_id, &b.reason).await?))
}

#[utoipa::path(get, path = "/api/v1/networks/{network}/payments", params(("network" = String, Path)), responses((status = 200, body = Vec<PaymentView>)))]
pub(crate) async fn payments(State(s): St, ApiAuth(p): ApiAuth, Path(network): Path<String>) -> Result<Json<Vec<PaymentView>>, Problem> {
    Ok(Json(s.settlement.payments(&network, &p.tenant_id).await?))
}

/// The file as an attachment; with `fc-blocked-payments: <n>` when a new
/// file left out `n` payments of suppliers without a bank account (`GET
/// …/payments/blocked` names them).
fn bank_file(file: BankFile) -> Response {
    let blocked: usize = file.blocked.iter().map(|b| b.instruction_ids.len()).sum();
    let mut r = attachment("application/xml; charset=utf-8", &format!("{}.xml", file.message_id), file.xml);
    if blocked > 0 {
        r.headers_mut().insert("fc-blocked-payments", header::HeaderValue::from(blocked));
    }
    r
}

#[utoipa::path(get, path = "/api/v1/networks/{network}/payments/blocked", params(("network" = String, Path)), responses((status = 200, body = Vec<BlockedView>, description = "payments a new bank file leaves out, by supplier without a bank account"), (status = 403, body = Problem)))]
pub(crate) async fn blocked_payments(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path(network): Path<String>,
) -> Result<Json<Vec<BlockedView>>, Problem> {
    p.require(Role::Operator)?;
    Ok(Json(s.settlement.blocked_payments(&network, &p.tenant_id).await?))
}

#[utoipa::path(post, path = "/api/v1/networks/{network}/payments/exports", params(("network" = String, Path)), responses((status = 201, description = "a new bank file (ISO 20022 pain.001.001.09) of every instructed, unconfirmed payment above 0 KRW that no export holds yet; recorded on the ledger", content_type = "application/xml"), (status = 409, body = Problem)))]
pub(crate) async fn export_payments(State(s): St, ApiAuth(p): ApiAuth, Path(network): Path<String>) -> Result<Response, Problem> {
    p.require(Role::Operator)?;
    let file = s.settlement.export_payments(&network, &p.tenant_id).await?;
    let location = format!("/api/v1/networks/{network}/payments/exports/{}", file.message_id);
    let mut r = bank_file(file);
    *r.status_mut() = StatusCode::CREATED;
    if let Ok(v) = header::HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

#[utoipa::path(get, path = "/api/v1/networks/{network}/payments/exports", params(("network" = String, Path)), responses((status = 200, body = Vec<ExportView>), (status = 403, body = Problem)))]
pub(crate) async fn exports(State(s): St, ApiAuth(p): ApiAuth, Path(network): Path<String>) -> Result<Json<Vec<ExportView>>, Problem> {
    p.require(Role::Operator)?;
    Ok(Json(s.settlement.exports(&network, &p.tenant_id).await?))
}

#[utoipa::path(get, path = "/api/v1/networks/{network}/payments/exports/{message_id}", params(("network" = String, Path), ("message_id" = String, Path)), responses((status = 200, description = "the export's bank file, byte for byte as first exported", content_type = "application/xml"), (status = 404, body = Problem)))]
pub(crate) async fn export_file(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((network, message_id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    p.require(Role::Operator)?;
    Ok(bank_file(s.settlement.export_file(&network, &p.tenant_id, &message_id).await?))
}

#[utoipa::path(post, path = "/api/v1/networks/{network}/payments/exports/{message_id}/reissue", params(("network" = String, Path), ("message_id" = String, Path)), responses((status = 201, description = "a new bank file paying again the unconfirmed payments of that export; recorded on the ledger", content_type = "application/xml"), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn reissue_export(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((network, message_id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    p.require(Role::Operator)?;
    let mut r = bank_file(s.settlement.reissue_export(&network, &p.tenant_id, &message_id).await?);
    *r.status_mut() = StatusCode::CREATED;
    Ok(r)
}

/// The bank's confirmation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmIn {
    /// The bank's reference of the transfer.
    bank_reference: String,
}

#[utoipa::path(post, path = "/api/v1/networks/{network}/payments/{instruction_id}/confirm", params(("network" = String, Path), ("instruction_id" = String, Path)), request_body = ConfirmIn, responses((status = 200, body = PaymentView)))]
pub(crate) async fn confirm_payment(
    State(s): St,
    ApiAuth(p): ApiAuth,
    Path((network, instruction_id)): Path<(String, String)>,
    ApiJson(b): ApiJson<ConfirmIn>,
) -> Result<Json<PaymentView>, Problem> {
    p.require(Role::Operator)?;
    Ok(Json(s.settlement.confirm_payment(&network, &p.tenant_id, &instruction_id, &b.bank_reference).await?))
}
