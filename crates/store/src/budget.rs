//! Per-tenant read budgets: what one tenant's reads may cost, so that its
//! queries cannot take the cores the others need.
//!
//! Two bounds, both per tenant:
//! - **points per second**: a token bucket in stored readings decoded (a raw
//!   read's points, an aggregated read's inputs) with one second of burst.
//!   The cost of a read is known only once it ran, so it is charged after the
//!   read and the bucket may go into debt by one read: a tenant in debt is
//!   refused (`RESOURCE_EXHAUSTED`, with when to retry) until the refill pays
//!   it back. A plan's rate is the tenant's share, not a promise of capacity.
//! - **concurrent reads**: at most [`READS_PER_TENANT`] at a time; a read
//!   waits up to [`SLOT_WAIT`] for a slot, then is refused.
//!
//! Both `Query.Range` (gRPC) and the REST series API go through [`ReadBudgets`].

use fc_core::{ErrorCode, ServiceError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most reads of one tenant running at once.
pub const READS_PER_TENANT: usize = 2;
/// Longest a read waits for one of its tenant's slots.
pub const SLOT_WAIT: Duration = Duration::from_secs(5);
/// Tenants tracked before idle ones are dropped (a full bucket is what a new one starts with).
const PRUNE_ABOVE: usize = 4096;

struct Bucket {
    /// Points that may still be read; negative while in debt.
    tokens: f64,
    at: Instant,
    rate: f64,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
    }
}

struct TenantBudget {
    bucket: Mutex<Bucket>,
    slots: Arc<Semaphore>,
}

/// The read budgets of every tenant seen.
#[derive(Default)]
pub struct ReadBudgets {
    tenants: Mutex<HashMap<String, Arc<TenantBudget>>>,
}

/// A read admitted: holds one of the tenant's slots until charged (or dropped).
pub struct ReadTicket {
    budget: Arc<TenantBudget>,
    _slot: OwnedSemaphorePermit,
}

impl ReadTicket {
    /// Charge the points the read decoded and release its slot.
    pub fn charge(self, points: u64) {
        let mut bucket = self.budget.bucket.lock().expect("read budget lock");
        bucket.refill(Instant::now());
        bucket.tokens -= points as f64;
        metrics::counter!("store_read_points_total").increment(points);
    }
}

fn refused(message: String) -> ServiceError {
    metrics::counter!("store_read_refusals_total").increment(1);
    ServiceError::new(ErrorCode::ResourceExhausted, message)
}

impl ReadBudgets {
    /// Admit a read of `tenant`, whose plan allows `points_per_s`: refused while the
    /// tenant is in debt, or when none of its slots frees up within [`SLOT_WAIT`].
    pub async fn admit(&self, tenant: &str, points_per_s: u64) -> Result<ReadTicket, ServiceError> {
        let rate = points_per_s.max(1) as f64;
        let budget = {
            let mut map = self.tenants.lock().expect("read budget lock");
            if map.len() > PRUNE_ABOVE {
                let now = Instant::now();
                map.retain(|_, b| {
                    Arc::strong_count(b) > 1 || {
                        let mut bucket = b.bucket.lock().expect("read budget lock");
                        bucket.refill(now);
                        bucket.tokens < bucket.rate
                    }
                });
            }
            map.entry(tenant.to_owned())
                .or_insert_with(|| {
                    Arc::new(TenantBudget {
                        bucket: Mutex::new(Bucket { tokens: rate, at: Instant::now(), rate }),
                        slots: Arc::new(Semaphore::new(READS_PER_TENANT)),
                    })
                })
                .clone()
        };
        {
            let mut bucket = budget.bucket.lock().expect("read budget lock");
            bucket.refill(Instant::now());
            if bucket.rate != rate {
                // The plan changed: the new rate applies from now, debt kept.
                bucket.rate = rate;
                bucket.tokens = bucket.tokens.min(rate);
            }
            if bucket.tokens <= 0.0 {
                let wait_ms = ((-bucket.tokens + 1.0) / rate * 1000.0).ceil() as u64;
                return Err(refused(format!(
                    "read quota of {points_per_s} readings/s exceeded; retry in {wait_ms} ms (read less per call, or aggregate)"
                )));
            }
        }
        let slot = match tokio::time::timeout(SLOT_WAIT, budget.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) | Err(_) => {
                return Err(refused(format!(
                    "too many reads at once: at most {READS_PER_TENANT} per tenant run together, and none finished within {} s",
                    SLOT_WAIT.as_secs()
                )));
            }
        };
        Ok(ReadTicket { budget, _slot: slot })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tenant_in_debt_is_refused_until_the_refill_pays_it_back() {
        let budgets = ReadBudgets::default();
        let ticket = budgets.admit("t_a", 1_000).await.unwrap();
        ticket.charge(3_000); // one read may cost more than a second of budget
        let e = budgets.admit("t_a", 1_000).await.err().expect("in debt");
        assert_eq!(e.code, ErrorCode::ResourceExhausted);
        assert!(e.message.contains("read quota of 1000 readings/s") && e.message.contains("retry in 200"), "{}", e.message);
        // Another tenant is not touched by A's debt.
        budgets.admit("t_b", 1_000).await.unwrap().charge(10);
    }

    #[test]
    fn the_debt_is_paid_back_at_the_plan_rate() {
        let t0 = Instant::now();
        let mut b = Bucket { tokens: -2_000.0, at: t0, rate: 1_000.0 };
        b.refill(t0 + Duration::from_millis(1_500));
        assert!((b.tokens - -500.0).abs() < 1e-6, "{}", b.tokens);
        b.refill(t0 + Duration::from_millis(10_000));
        assert_eq!(b.tokens, 1_000.0, "burst is one second");
    }

    #[tokio::test(start_paused = true)]
    async fn a_tenant_runs_at_most_two_reads_at_once() {
        let budgets = ReadBudgets::default();
        let a = budgets.admit("t_a", 1_000_000).await.unwrap();
        let b = budgets.admit("t_a", 1_000_000).await.unwrap();
        // The third waits, and is refused once SLOT_WAIT passed without a free slot.
        let e = budgets.admit("t_a", 1_000_000).await.err().expect("no slot");
        assert!(e.message.contains("at most 2 per tenant"), "{}", e.message);
        // Other tenants have their own slots.
        let other = budgets.admit("t_b", 1_000_000).await.unwrap();
        drop(a);
        budgets.admit("t_a", 1_000_000).await.expect("a slot freed up").charge(1);
        drop((b, other));
    }
}
