//! Plan quotas at ingest: a token bucket per tenant and one per device, in
//! readings per second with one second of burst. A batch that does not fit is
//! refused whole with `RESOURCE_EXHAUSTED` (nothing of it is published).

use fc_core::{ErrorCode, ServiceError};
use fc_tenancy_api::{Device as DeviceIdentity, Plan};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct TenantLimits {
    used: Instant,
    tenant: Arc<DefaultDirectRateLimiter>,
    plan: &'static Plan,
}

/// The limiters of every tenant and device seen.
#[derive(Default)]
pub struct Quotas {
    tenants: Mutex<HashMap<Arc<str>, TenantLimits>>,
    devices: Mutex<HashMap<Arc<str>, DeviceLimit>>,
}

struct DeviceLimit {
    rate: u32,
    limiter: Arc<DefaultDirectRateLimiter>,
    used: Instant,
}

/// Limiters unused this long are dropped (a full bucket is what a new one starts with anyway).
pub const IDLE_LIMITER: Duration = Duration::from_secs(600);

fn limiter(per_s: u32) -> Arc<DefaultDirectRateLimiter> {
    let n = NonZeroU32::new(per_s.max(1)).expect("positive");
    Arc::new(RateLimiter::direct(Quota::per_second(n).allow_burst(n)))
}

impl Quotas {
    /// Take `readings` from the device's and the tenant's buckets, or refuse.
    /// Returns the tenant's plan (as the tenancy owner said with the device's identity).
    pub fn admit(&self, who: &DeviceIdentity, readings: u32) -> Result<&'static Plan, ServiceError> {
        let plan = who.plan;
        let tenant = self.tenant(&who.tenant_id, plan);
        let (tenant_rate, device_rate) = (plan.max_readings_per_s, plan.max_device_readings_per_s);
        let device = {
            let mut map = self.devices.lock().expect("quota lock");
            let entry = map.entry(who.device_id.clone()).or_insert_with(|| DeviceLimit {
                rate: device_rate,
                limiter: limiter(device_rate),
                used: Instant::now(),
            });
            if entry.rate != device_rate {
                *entry = DeviceLimit { rate: device_rate, limiter: limiter(device_rate), used: Instant::now() };
            }
            entry.used = Instant::now();
            entry.limiter.clone()
        };
        let n = NonZeroU32::new(readings.max(1)).expect("positive");
        let refuse = |what: &str, rate: u32| {
            metrics::counter!("ingest_quota_refusals_total", "scope" => if what == "device" { "device" } else { "tenant" }).increment(1);
            ServiceError::new(ErrorCode::ResourceExhausted, format!("{what} quota of {rate} readings/s exceeded; retry later"))
        };
        // The device's bucket is charged first, and stays charged when the tenant's
        // refuses (governor cannot refund): a device that pushes its tenant over
        // the limit slows itself down, and a noisy device can never spend the
        // tenant's budget that its siblings need.
        match device.check_n(n) {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(refuse("device", device_rate)),
            Err(_) => {
                return Err(ServiceError::invalid(
                    "readings",
                    format!("a batch of {readings} readings exceeds the device quota of {device_rate} readings/s"),
                ));
            }
        }
        match tenant.check_n(n) {
            Ok(Ok(())) => Ok(plan),
            Ok(Err(_)) => Err(refuse("tenant", tenant_rate)),
            Err(_) => Err(ServiceError::invalid(
                "readings",
                format!("a batch of {readings} readings exceeds the tenant quota of {tenant_rate} readings/s"),
            )),
        }
    }

    /// The tenant's rate limiter, rebuilt when its plan's rate changed.
    fn tenant(&self, tenant_id: &Arc<str>, plan: &'static Plan) -> Arc<DefaultDirectRateLimiter> {
        let mut map = self.tenants.lock().expect("quota lock");
        let l = map.entry(tenant_id.clone()).or_insert_with(|| TenantLimits {
            used: Instant::now(),
            tenant: limiter(plan.max_readings_per_s),
            plan,
        });
        if l.plan.max_readings_per_s != plan.max_readings_per_s {
            l.tenant = limiter(plan.max_readings_per_s);
        }
        l.plan = plan;
        l.used = Instant::now();
        l.tenant.clone()
    }

    /// Drop the limiters of tenants and devices not seen for `idle`; returns how many went.
    pub fn prune(&self, idle: Duration) -> usize {
        let mut gone = 0;
        let mut tenants = self.tenants.lock().expect("quota lock");
        let before = tenants.len();
        tenants.retain(|_, l| l.used.elapsed() < idle);
        gone += before - tenants.len();
        drop(tenants);
        let mut devices = self.devices.lock().expect("quota lock");
        let before = devices.len();
        devices.retain(|_, d| d.used.elapsed() < idle);
        gone + before - devices.len()
    }

    /// Tenants and devices with a live limiter.
    pub fn tracked(&self) -> (usize, usize) {
        (self.tenants.lock().expect("quota lock").len(), self.devices.lock().expect("quota lock").len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_limiters_are_pruned_and_live_ones_kept() {
        let who = DeviceIdentity { tenant_id: "t_a".into(), device_id: "d_a".into(), plan: &fc_tenancy_api::plans::PLANS[0] };
        let q = Quotas::default();
        q.admit(&who, 10).unwrap();
        assert_eq!(q.tracked(), (1, 1));
        assert_eq!(q.prune(Duration::from_secs(60)), 0, "recently used limiters stay");
        assert_eq!(q.prune(Duration::ZERO), 2);
        assert_eq!(q.tracked(), (0, 0));
        q.admit(&who, 10).unwrap();
        assert_eq!(q.tracked(), (1, 1), "a pruned limiter comes back on the next batch");
    }
}
