//! Plan quotas at ingest: a token bucket per tenant and one per device, in
//! readings per second with one second of burst. A batch that does not fit is
//! refused whole with `RESOURCE_EXHAUSTED` (nothing of it is published).

use fc_core::{ErrorCode, ServiceError};
use fc_registry::{DeviceIdentity, Registry};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a tenant's plan is cached before it is read again.
const PLAN_TTL: Duration = Duration::from_secs(10);

struct TenantLimits {
    read_at: Instant,
    tenant: Arc<DefaultDirectRateLimiter>,
    tenant_rate: u32,
    device_rate: u32,
}

/// The limiters of every tenant and device seen.
#[derive(Default)]
pub struct Quotas {
    tenants: Mutex<HashMap<Arc<str>, TenantLimits>>,
    devices: Mutex<HashMap<Arc<str>, (u32, Arc<DefaultDirectRateLimiter>)>>,
}

fn limiter(per_s: u32) -> Arc<DefaultDirectRateLimiter> {
    let n = NonZeroU32::new(per_s.max(1)).expect("positive");
    Arc::new(RateLimiter::direct(Quota::per_second(n).allow_burst(n)))
}

impl Quotas {
    /// Take `readings` from the device's and the tenant's buckets, or refuse.
    pub fn admit(&self, registry: &Registry, who: &DeviceIdentity, readings: u32) -> Result<(), ServiceError> {
        let (tenant, tenant_rate, device_rate) = {
            let mut map = self.tenants.lock().expect("quota lock");
            let stale = map.get(&who.tenant_id).is_none_or(|l| l.read_at.elapsed() > PLAN_TTL);
            if stale {
                let plan = registry.get_tenant(&who.tenant_id).map_err(ServiceError::from)?.plan();
                let keep = map.get(&who.tenant_id).filter(|l| l.tenant_rate == plan.max_readings_per_s).map(|l| l.tenant.clone());
                map.insert(
                    who.tenant_id.clone(),
                    TenantLimits { read_at: Instant::now(), tenant: keep.unwrap_or_else(|| limiter(plan.max_readings_per_s)), tenant_rate: plan.max_readings_per_s, device_rate: plan.max_device_readings_per_s },
                );
            }
            let l = &map[&who.tenant_id];
            (l.tenant.clone(), l.tenant_rate, l.device_rate)
        };
        let device = {
            let mut map = self.devices.lock().expect("quota lock");
            let entry = map.entry(who.device_id.clone()).or_insert_with(|| (device_rate, limiter(device_rate)));
            if entry.0 != device_rate {
                *entry = (device_rate, limiter(device_rate));
            }
            entry.1.clone()
        };
        let n = NonZeroU32::new(readings.max(1)).expect("positive");
        let refuse = |what: &str, rate: u32| {
            metrics::counter!("ingest_quota_refusals_total", "scope" => if what == "device" { "device" } else { "tenant" }).increment(1);
            ServiceError::new(ErrorCode::ResourceExhausted, format!("{what} quota of {rate} readings/s exceeded; retry later"))
        };
        match device.check_n(n) {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(refuse("device", device_rate)),
            Err(_) => return Err(ServiceError::invalid("readings", format!("a batch of {readings} readings exceeds the device quota of {device_rate} readings/s"))),
        }
        match tenant.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(refuse("tenant", tenant_rate)),
            Err(_) => Err(ServiceError::invalid("readings", format!("a batch of {readings} readings exceeds the tenant quota of {tenant_rate} readings/s"))),
        }
    }
}
