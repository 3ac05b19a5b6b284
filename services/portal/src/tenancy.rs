//! The portal owns tenancy (tenants, plans, users, sessions, devices, API keys,
//! organisations, partnerships: its registry) and serves it on its own gRPC
//! port (`grpc_addr`):
//! - `factorychain.v1.Tenancy`, internal: answers services holding a service
//!   credential ([`fc_rpc::service_auth`]) of one of [`CALLERS`];
//! - `factorychain.v1.Admin`: the platform operator, with the admin token.
//!
//! Why the portal and not a service of its own: users, sessions and API keys
//! are what the portal works with on every request; a separate owner would turn
//! its ~25 registry calls into remote calls and add a process that every
//! request depends on. The other services need a handful of questions
//! answered, cached on their side ([`fc_tenancy_api::TenancyClient`]).
//!
//! Invariant: every revocation or plan change made here (portal pages, REST,
//! Admin) is published on [`fc_tenancy_api::CHANGES_SUBJECT`] before the
//! caller gets its answer ([`Changes`]).

use fc_core::{ServiceError, Shutdown};
use fc_proto::v1::{
    ApiKeyIdentity, AuthenticateApiKeyRequest, AuthenticateDeviceRequest, Buyer, CreateDeviceRequest, CreateDeviceResponse,
    CreateTenantRequest, DeviceIdentity, GetMembershipRequest, GetOrganisationRequest, GetTenantRequest, InviteUserRequest,
    InviteUserResponse, ListBuyersRequest, ListBuyersResponse, ListTenantsRequest, ListTenantsResponse, Membership, Organisation,
    RevokeDeviceRequest, RevokeDeviceResponse, SetTenantPlanRequest, Tenant as PbTenant,
};
use fc_registry::{Registry, RegistryError};
use fc_rpc::service_auth::Verifier;
use fc_tenancy_api::{Change, ChangeKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tonic::{Request, Response, Status};

/// What the tenancy port serves (health and reflection come with them).
pub const GRPC_SERVICES: [&str; 2] = ["factorychain.v1.Admin", "factorychain.v1.Tenancy"];

/// Services that may call `Tenancy`.
pub const CALLERS: [&str; 2] = ["ingest", "settlement"];

/// Shortest admin token accepted from the configuration (a generated one has 68 characters).
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;

/// Publishes tenancy changes on NATS.
#[derive(Clone)]
pub struct Changes {
    nats: async_nats::Client,
}

impl Changes {
    /// Over `nats`.
    pub fn new(nats: async_nats::Client) -> Self {
        Self { nats }
    }

    /// Publishes `change`; a failure is logged (the callers' cache TTL bounds how long they miss it).
    pub async fn publish(&self, kind: ChangeKind, tenant_id: &str, device_id: &str, key_id: &str) {
        let change = Change {
            kind: kind as i32,
            tenant_id: tenant_id.into(),
            device_id: device_id.into(),
            key_id: key_id.into(),
            ..Default::default()
        };
        self.send(&change).await;
    }

    /// Publishes `change`; a failure is logged (the callers' cache TTL bounds how long they miss it).
    async fn send(&self, change: &Change) {
        if let Err(e) = fc_tenancy_api::publish(&self.nats, change).await {
            tracing::error!(error = %e, kind = ?change.kind(), tenant_id = %change.tenant_id, org_id = %change.org_id,
                "tenancy change not published; other services apply it when their cache expires");
        }
    }

    /// Revokes a device and says so.
    pub async fn revoke_device(&self, registry: &Registry, tenant_id: &str, device_id: &str) -> Result<(), RegistryError> {
        registry.revoke_device(tenant_id, device_id)?;
        self.publish(ChangeKind::DeviceRevoked, tenant_id, device_id, "").await;
        Ok(())
    }

    /// Replaces a device's token (the old one stops working) and says so.
    pub async fn rotate_device_token(
        &self,
        registry: &Registry,
        tenant_id: &str,
        device_id: &str,
    ) -> Result<(fc_registry::Device, String), RegistryError> {
        let rotated = registry.rotate_device_token(tenant_id, device_id)?;
        self.publish(ChangeKind::DeviceRevoked, tenant_id, device_id, "").await;
        Ok(rotated)
    }

    /// Revokes an API key and says so.
    pub async fn revoke_api_key(&self, registry: &Registry, tenant_id: &str, key_id: &str) -> Result<(), RegistryError> {
        registry.revoke_api_key(tenant_id, key_id)?;
        self.publish(ChangeKind::ApiKeyRevoked, tenant_id, "", key_id).await;
        Ok(())
    }

    /// The supplier accepts a buyer's request (the buyer's network grows) and says so.
    pub async fn accept_partner(
        &self,
        registry: &Registry,
        supplier_id: &str,
        buyer_id: &str,
    ) -> Result<fc_registry::partners::Partnership, RegistryError> {
        let p = registry.accept_partner(supplier_id, buyer_id)?;
        self.partnership_changed(buyer_id, supplier_id).await;
        Ok(p)
    }

    /// Ends a partnership from either side and says so.
    pub async fn end_partnership(&self, registry: &Registry, tenant_id: &str, other_id: &str) -> Result<(), RegistryError> {
        registry.end_partnership(tenant_id, other_id)?;
        self.partnership_changed(tenant_id, other_id).await;
        Ok(())
    }

    async fn partnership_changed(&self, a: &str, b: &str) {
        let change = Change { kind: ChangeKind::PartnershipChanged as i32, tenant_id: a.into(), org_id: b.into(), ..Default::default() };
        self.send(&change).await;
    }

    /// Moves a tenant to another plan and says so.
    pub async fn set_plan(&self, registry: &Registry, tenant_id: &str, plan: &str) -> Result<fc_registry::Tenant, RegistryError> {
        let t = registry.set_plan(tenant_id, plan)?;
        self.publish(ChangeKind::PlanChanged, tenant_id, "", "").await;
        Ok(t)
    }
}

fn pb(t: fc_registry::Tenant) -> PbTenant {
    PbTenant { id: t.id, name: t.name, created_ms: t.created_ms, plan: t.plan_id }
}

/// `factorychain.v1.Tenancy`.
pub struct TenancyService {
    registry: Arc<Registry>,
    verifier: Verifier,
}

fn internal(e: RegistryError) -> Status {
    Status::from(ServiceError::from(e))
}

#[tonic::async_trait]
impl fc_proto::v1::tenancy_server::Tenancy for TenancyService {
    async fn authenticate_device(&self, request: Request<AuthenticateDeviceRequest>) -> Result<Response<DeviceIdentity>, Status> {
        self.verifier.check(request.metadata(), &CALLERS)?;
        let token = request.into_inner().token;
        let who = self.registry.authenticate_device(&token).map_err(internal)?;
        let plan = self.registry.get_tenant(&who.tenant_id).map_err(internal)?.plan_id;
        Ok(Response::new(DeviceIdentity { tenant_id: who.tenant_id.to_string(), device_id: who.device_id.to_string(), plan }))
    }

    async fn authenticate_api_key(&self, request: Request<AuthenticateApiKeyRequest>) -> Result<Response<ApiKeyIdentity>, Status> {
        self.verifier.check(request.metadata(), &CALLERS)?;
        let key = self.registry.authenticate_api_key(&request.into_inner().key).map_err(internal)?;
        Ok(Response::new(ApiKeyIdentity { tenant_id: key.tenant_id, key_id: key.id, role: key.role.as_str().into() }))
    }

    async fn get_tenant(&self, request: Request<GetTenantRequest>) -> Result<Response<PbTenant>, Status> {
        self.verifier.check(request.metadata(), &CALLERS)?;
        Ok(Response::new(pb(self.registry.get_tenant(&request.into_inner().tenant_id).map_err(internal)?)))
    }

    async fn list_tenants(&self, request: Request<ListTenantsRequest>) -> Result<Response<ListTenantsResponse>, Status> {
        self.verifier.check(request.metadata(), &CALLERS)?;
        let tenants = self.registry.list_tenants().map_err(internal)?;
        Ok(Response::new(ListTenantsResponse { tenants: tenants.into_iter().map(pb).collect() }))
    }

    async fn get_organisation(&self, request: Request<GetOrganisationRequest>) -> Result<Response<Organisation>, Status> {
        self.verifier.check(request.metadata(), &CALLERS)?;
        let id = request.into_inner().org_id;
        let t = self.registry.get_tenant(&id).map_err(internal)?;
        let profile = self.registry.org_profile(&id).map_err(internal)?;
        Ok(Response::new(Organisation {
            id: t.id,
            name: t.name,
            plan: t.plan_id,
            age_recipient: profile.age_recipient.unwrap_or_default(),
            bank: profile.bank.as_ref().map(fc_tenancy_api::BankAccount::to_pb),
        }))
    }

    async fn get_membership(&self, request: Request<GetMembershipRequest>) -> Result<Response<Membership>, Status> {
        self.verifier.check(request.metadata(), &CALLERS)?;
        let r = request.into_inner();
        Ok(Response::new(Membership { member: self.registry.is_network_member(&r.network, &r.org_id).map_err(internal)? }))
    }

    async fn list_buyers(&self, request: Request<ListBuyersRequest>) -> Result<Response<ListBuyersResponse>, Status> {
        self.verifier.check(request.metadata(), &CALLERS)?;
        let buyers = self.registry.buyers(&request.into_inner().org_id).map_err(internal)?;
        Ok(Response::new(ListBuyersResponse {
            buyers: buyers
                .into_iter()
                .filter(|p| p.is_active())
                .map(|p| Buyer { buyer_id: p.buyer_id, buyer_name: p.buyer_name })
                .collect(),
        }))
    }
}

/// `factorychain.v1.Admin`: tenants and devices, for the platform operator.
pub struct AdminService {
    registry: Arc<Registry>,
    changes: Changes,
    admin_token: String,
}

impl AdminService {
    fn check(&self, meta: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        let token = fc_rpc::bearer(meta).ok_or_else(ServiceError::unauthenticated)?;
        if bool::from(token.as_bytes().ct_eq(self.admin_token.as_bytes())) { Ok(()) } else { Err(ServiceError::unauthenticated().into()) }
    }
}

#[tonic::async_trait]
impl fc_proto::v1::admin_server::Admin for AdminService {
    async fn create_tenant(&self, request: Request<CreateTenantRequest>) -> Result<Response<PbTenant>, Status> {
        self.check(request.metadata())?;
        let req = request.into_inner();
        let plan = if req.plan.is_empty() { "starter" } else { req.plan.as_str() };
        let t = self.registry.create_tenant(&req.name, plan).map_err(internal)?;
        tracing::info!(tenant_id = %t.id, "tenant created");
        Ok(Response::new(pb(t)))
    }

    async fn list_tenants(&self, request: Request<ListTenantsRequest>) -> Result<Response<ListTenantsResponse>, Status> {
        self.check(request.metadata())?;
        let tenants = self.registry.list_tenants().map_err(internal)?;
        Ok(Response::new(ListTenantsResponse { tenants: tenants.into_iter().map(pb).collect() }))
    }

    async fn create_device(&self, request: Request<CreateDeviceRequest>) -> Result<Response<CreateDeviceResponse>, Status> {
        self.check(request.metadata())?;
        let req = request.into_inner();
        let (d, token) = self.registry.create_device(&req.tenant_id, &req.name).map_err(internal)?;
        tracing::info!(tenant_id = %d.tenant_id, device_id = %d.id, "device created");
        Ok(Response::new(CreateDeviceResponse { device_id: d.id, tenant_id: d.tenant_id, name: d.name, token }))
    }

    async fn revoke_device(&self, request: Request<RevokeDeviceRequest>) -> Result<Response<RevokeDeviceResponse>, Status> {
        self.check(request.metadata())?;
        let req = request.into_inner();
        self.changes.revoke_device(&self.registry, &req.tenant_id, &req.device_id).await.map_err(internal)?;
        tracing::info!(tenant_id = %req.tenant_id, device_id = %req.device_id, "device revoked");
        Ok(Response::new(RevokeDeviceResponse {}))
    }

    async fn invite_user(&self, request: Request<InviteUserRequest>) -> Result<Response<InviteUserResponse>, Status> {
        self.check(request.metadata())?;
        let req = request.into_inner();
        let role = if req.role.is_empty() { fc_registry::Role::Owner } else { fc_registry::Role::parse(&req.role).map_err(internal)? };
        let (token, inv) = self.registry.invite(&req.tenant_id, &req.email, role).map_err(internal)?;
        tracing::info!(tenant_id = %inv.tenant_id, invitation_id = %inv.id, role = role.as_str(), "invitation created by the operator");
        Ok(Response::new(InviteUserResponse { invitation_id: inv.id, token, expires_ms: inv.expires_ms }))
    }

    async fn set_tenant_plan(&self, request: Request<SetTenantPlanRequest>) -> Result<Response<PbTenant>, Status> {
        self.check(request.metadata())?;
        let req = request.into_inner();
        let t = self.changes.set_plan(&self.registry, &req.tenant_id, &req.plan).await.map_err(internal)?;
        tracing::info!(tenant_id = %t.id, plan = %t.plan_id, "tenant plan set by the operator");
        Ok(Response::new(pb(t)))
    }
}

/// The admin token: the configured one, or the one in `<data_dir>/admin.token`
/// (generated there, mode 0600, the first time).
pub fn load_or_create_admin_token(configured: &str, data_dir: &std::path::Path) -> Result<String, String> {
    if !configured.is_empty() {
        if configured.len() < MIN_ADMIN_TOKEN_LEN {
            return Err(format!(
                "portal.admin_token: must be at least {MIN_ADMIN_TOKEN_LEN} characters (leave it empty to have one generated into <data_dir>/admin.token)"
            ));
        }
        return Ok(configured.to_string());
    }
    let path = data_dir.join("admin.token");
    let token = format!("fca_{}", fc_registry::random_hex(32));
    let text = match fc_core::fsutil::create_private_once(&path, &format!("{token}\n")) {
        Ok(fc_core::fsutil::Created::New) => return Ok(token),
        Ok(fc_core::fsutil::Created::Existing(text)) => text,
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if fc_core::fsutil::is_shared(&path) {
        tracing::warn!(path = %path.display(), "the admin token file is readable by others; chmod 600 it");
    }
    let t = text.trim();
    if t.len() < MIN_ADMIN_TOKEN_LEN {
        return Err(format!("{}: holds no valid admin token (delete it to have one generated)", path.display()));
    }
    Ok(t.to_string())
}

/// The running tenancy port.
pub struct Grpc {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The admin token it accepts.
    pub admin_token: String,
    task: tokio::task::JoinHandle<()>,
}

impl Grpc {
    /// Wait until it stopped (after shutdown fired).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Serves `Tenancy` and `Admin` on `config.grpc_addr` over `registry`;
/// returns once it listens.
pub async fn serve(
    config: &crate::Config,
    registry: Arc<Registry>,
    nats: async_nats::Client,
    shutdown: Shutdown,
) -> Result<Grpc, crate::StartError> {
    let verifier = config.service_auth.verifier().map_err(|e| crate::StartError::Config(format!("portal.service_auth: {e}")))?;
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir).map_err(|e| crate::StartError::Config(format!("{}: {e}", data_dir.display())))?;
    let admin_token = load_or_create_admin_token(&config.admin_token, &data_dir).map_err(crate::StartError::Config)?;
    let listener = tokio::net::TcpListener::bind(&config.grpc_addr)
        .await
        .map_err(|source| crate::StartError::Bind { addr: config.grpc_addr.clone(), source })?;
    let addr = listener.local_addr().map_err(|source| crate::StartError::Bind { addr: config.grpc_addr.clone(), source })?;
    let tenancy = fc_proto::v1::tenancy_server::TenancyServer::new(TenancyService { registry: registry.clone(), verifier });
    let admin = fc_proto::v1::admin_server::AdminServer::new(AdminService {
        registry: registry.clone(),
        changes: Changes::new(nats),
        admin_token: admin_token.clone(),
    });
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .layer(fc_rpc::trace::GrpcServerLayer)
        .add_service(tenancy)
        .add_service(admin);
    let router = fc_rpc::add_introspection(router, &[fc_proto::FILE_DESCRIPTOR_SET], &GRPC_SERVICES, shutdown.clone())
        .await
        .map_err(|e| crate::StartError::Config(format!("tenancy gRPC: {e}")))?;
    // Sessions and invitations past their expiry go once an hour.
    let pruning = registry.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = stop.wait() => return,
                _ = tick.tick() => {}
            }
            let r = pruning.clone();
            match tokio::task::spawn_blocking(move || r.prune_expired()).await {
                Ok(Ok(n)) => tracing::debug!(rows = n, "expired sessions and invitations pruned"),
                Ok(Err(e)) => tracing::warn!(error = %e, "pruning expired sessions failed"),
                Err(e) => tracing::warn!(error = %e, "pruning task failed"),
            }
        }
    });
    let task = tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, async move { shutdown.wait().await }).await {
            tracing::error!(error = %e, "tenancy gRPC server failed");
        }
    });
    tracing::info!(%addr, "tenancy and admin gRPC ready");
    Ok(Grpc { addr, admin_token, task })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_generated_admin_token_is_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = super::load_or_create_admin_token("", dir.path()).unwrap();
        assert!(first.len() >= super::MIN_ADMIN_TOKEN_LEN);
        assert_eq!(super::load_or_create_admin_token("", dir.path()).unwrap(), first, "read back, not replaced");
        assert!(!fc_core::fsutil::is_shared(&dir.path().join("admin.token")));
        std::fs::write(dir.path().join("admin.token"), "x\n").unwrap();
        assert!(super::load_or_create_admin_token("", dir.path()).is_err(), "a truncated token file is an error, not a weak token");
    }
}
