//! `factorychain.v1.Admin`: tenants and devices, for the platform operator.

use crate::{AppState, auth};
use fc_core::ServiceError;
use fc_proto::v1::{
    CreateDeviceRequest, CreateDeviceResponse, CreateTenantRequest, InviteUserRequest, InviteUserResponse, ListTenantsRequest,
    ListTenantsResponse, RevokeDeviceRequest, RevokeDeviceResponse, SetTenantPlanRequest, Tenant as PbTenant,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Admin service.
pub struct AdminService {
    state: Arc<AppState>,
}

impl AdminService {
    /// A service over `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

fn pb(t: fc_registry::Tenant) -> PbTenant {
    PbTenant { id: t.id, name: t.name, created_ms: t.created_ms, plan: t.plan_id }
}

#[tonic::async_trait]
impl fc_proto::v1::admin_server::Admin for AdminService {
    async fn create_tenant(&self, request: Request<CreateTenantRequest>) -> Result<Response<PbTenant>, Status> {
        auth::admin(&self.state, request.metadata())?;
        let req = request.into_inner();
        let plan = if req.plan.is_empty() { "starter" } else { req.plan.as_str() };
        let t = self.state.registry.create_tenant(&req.name, plan).map_err(ServiceError::from)?;
        tracing::info!(tenant_id = %t.id, "tenant created");
        Ok(Response::new(pb(t)))
    }

    async fn list_tenants(&self, request: Request<ListTenantsRequest>) -> Result<Response<ListTenantsResponse>, Status> {
        auth::admin(&self.state, request.metadata())?;
        let tenants = self.state.registry.list_tenants().map_err(ServiceError::from)?;
        Ok(Response::new(ListTenantsResponse { tenants: tenants.into_iter().map(pb).collect() }))
    }

    async fn create_device(&self, request: Request<CreateDeviceRequest>) -> Result<Response<CreateDeviceResponse>, Status> {
        auth::admin(&self.state, request.metadata())?;
        let req = request.into_inner();
        let (d, token) = self.state.registry.create_device(&req.tenant_id, &req.name).map_err(ServiceError::from)?;
        tracing::info!(tenant_id = %d.tenant_id, device_id = %d.id, "device created");
        Ok(Response::new(CreateDeviceResponse { device_id: d.id, tenant_id: d.tenant_id, name: d.name, token }))
    }

    async fn revoke_device(&self, request: Request<RevokeDeviceRequest>) -> Result<Response<RevokeDeviceResponse>, Status> {
        auth::admin(&self.state, request.metadata())?;
        let req = request.into_inner();
        self.state.registry.revoke_device(&req.tenant_id, &req.device_id).map_err(ServiceError::from)?;
        tracing::info!(tenant_id = %req.tenant_id, device_id = %req.device_id, "device revoked");
        Ok(Response::new(RevokeDeviceResponse {}))
    }

    async fn invite_user(&self, request: Request<InviteUserRequest>) -> Result<Response<InviteUserResponse>, Status> {
        auth::admin(&self.state, request.metadata())?;
        let req = request.into_inner();
        let role =
            if req.role.is_empty() { fc_registry::Role::Owner } else { fc_registry::Role::parse(&req.role).map_err(ServiceError::from)? };
        let (token, inv) = self.state.registry.invite(&req.tenant_id, &req.email, role).map_err(ServiceError::from)?;
        tracing::info!(tenant_id = %inv.tenant_id, invitation_id = %inv.id, role = role.as_str(), "invitation created by the operator");
        Ok(Response::new(InviteUserResponse { invitation_id: inv.id, token, expires_ms: inv.expires_ms }))
    }

    async fn set_tenant_plan(&self, request: Request<SetTenantPlanRequest>) -> Result<Response<PbTenant>, Status> {
        auth::admin(&self.state, request.metadata())?;
        let req = request.into_inner();
        let t = self.state.registry.set_plan(&req.tenant_id, &req.plan).map_err(ServiceError::from)?;
        tracing::info!(tenant_id = %t.id, plan = %t.plan_id, "tenant plan set by the operator");
        Ok(Response::new(pb(t)))
    }
}
