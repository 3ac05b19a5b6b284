//! Bearer credentials from gRPC metadata.

use crate::AppState;
use fc_core::ServiceError;
use fc_registry::DeviceIdentity;
use subtle::ConstantTimeEq;

/// The bearer token of a request, if any.
pub fn bearer(meta: &tonic::metadata::MetadataMap) -> Option<&str> {
    let v = meta.get("authorization")?.to_str().ok()?;
    v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(str::trim)
}

/// The device (and so tenant) a request speaks for.
pub fn device(state: &AppState, meta: &tonic::metadata::MetadataMap) -> Result<DeviceIdentity, ServiceError> {
    let token = bearer(meta).ok_or_else(ServiceError::unauthenticated)?;
    state.registry.authenticate_device(token).map_err(ServiceError::from)
}

/// Whether the request carries the admin token.
pub fn admin(state: &AppState, meta: &tonic::metadata::MetadataMap) -> Result<(), ServiceError> {
    let token = bearer(meta).ok_or_else(ServiceError::unauthenticated)?;
    if bool::from(token.as_bytes().ct_eq(state.admin_token.as_bytes())) { Ok(()) } else { Err(ServiceError::unauthenticated()) }
}
