//! A tenant's plan usage against its quotas, shared by the usage page and
//! `GET /api/v1/usage`.

use crate::PortalState;
use crate::problem::Problem;
use serde::Serialize;
use utoipa::ToSchema;

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
