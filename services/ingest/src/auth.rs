//! Bearer credentials from gRPC metadata.

use crate::AppState;
use fc_core::ServiceError;
use fc_tenancy_api::Device;

pub use fc_rpc::bearer;

/// The device (and so tenant and plan) a request speaks for, as the tenancy owner says.
pub async fn device(state: &AppState, meta: &tonic::metadata::MetadataMap) -> Result<Device, ServiceError> {
    let token = bearer(meta).ok_or_else(ServiceError::unauthenticated)?;
    state.tenancy.device(token).await
}

/// Services that may read a tenant's telemetry through `Query`.
pub const QUERY_CALLERS: [&str; 4] = ["portal", "settlement", "monitor", "energy"];

/// Reads see the writes acknowledged before them (see [`crate::admission::Admission::settled`]).
async fn settle(state: &AppState, tenant: &str) {
    let max = std::time::Duration::from_millis(state.config.query_settle_ms);
    if !max.is_zero() {
        state.admission.settled(tenant, max).await;
    }
}

/// Whose telemetry a `Query` call reads: the device's tenant, or the tenant an
/// authenticated service names ([`fc_rpc::service_auth::TENANT_HEADER`]); a
/// tenant header without a valid service credential is refused.
pub async fn reader(
    state: &AppState,
    meta: &tonic::metadata::MetadataMap,
) -> Result<(std::sync::Arc<str>, &'static fc_tenancy_api::Plan), tonic::Status> {
    use fc_rpc::service_auth::{TENANT_HEADER, TOKEN_HEADER};
    if meta.contains_key(TOKEN_HEADER) || meta.contains_key(TENANT_HEADER) {
        let verifier = state.verifier.as_ref().ok_or_else(|| {
            tonic::Status::unauthenticated("internal API: this ingest takes no service callers (service_auth.issuer_public_key is not set)")
        })?;
        verifier.check(meta, &QUERY_CALLERS)?;
        let tenant = fc_rpc::service_auth::tenant(meta)?;
        let plan = state.tenancy.plan(&tenant).await?;
        settle(state, &tenant).await;
        return Ok((tenant.into(), plan));
    }
    let who = device(state, meta).await?;
    settle(state, &who.tenant_id).await;
    Ok((who.tenant_id, who.plan))
}
