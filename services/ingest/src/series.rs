//! The plan's `max_series` at the door: a batch that would give its tenant more
//! distinct series (machine, metric) than the plan allows is refused whole,
//! before anything is published, with `RESOURCE_EXHAUSTED` naming the limit.
//!
//! Each tenant's known series are loaded from the store on its first batch and
//! kept in memory; admitted new series are added at once, so concurrent batches
//! cannot both slip past the limit. A tenant idle for [`crate::quota::IDLE_LIMITER`]
//! is forgotten and reloaded later.

use fc_core::{ErrorCode, ServiceError};
use fc_store::DynStore;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Known = Arc<Mutex<HashSet<(String, String)>>>;

/// Every tenant's known series.
#[derive(Default)]
pub struct SeriesCatalog {
    tenants: Mutex<HashMap<String, (Known, Instant)>>,
}

impl SeriesCatalog {
    /// Admit the series of a batch (`(machine, metric)` pairs) for `tenant`, whose plan
    /// allows `max` series in all (`plan` names it in the refusal).
    pub async fn admit<'a>(
        &self,
        store: &DynStore,
        tenant: &str,
        plan: &str,
        max: u32,
        keys: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), ServiceError> {
        let known = self.known(store, tenant).await?;
        let mut set = known.lock().expect("series lock");
        let mut new: Vec<(String, String)> = Vec::new();
        for (machine, metric) in keys {
            let k = (machine.to_string(), metric.to_string());
            if !set.contains(&k) && !new.contains(&k) {
                new.push(k);
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        if set.len() + new.len() > max as usize {
            metrics::counter!("ingest_quota_refusals_total", "scope" => "series").increment(1);
            return Err(ServiceError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "the {plan} plan allows {max} series; this tenant has {} and the batch would add {} new ones (first: {}/{})",
                    set.len(),
                    new.len(),
                    new[0].0,
                    new[0].1
                ),
            ));
        }
        set.extend(new);
        Ok(())
    }

    async fn known(&self, store: &DynStore, tenant: &str) -> Result<Known, ServiceError> {
        if let Some((k, used)) = self.tenants.lock().expect("series lock").get_mut(tenant) {
            *used = Instant::now();
            return Ok(k.clone());
        }
        let listed = store.list_series(tenant, None).await.map_err(ServiceError::from)?;
        let set: HashSet<(String, String)> = listed.into_iter().map(|s| (s.key.machine, s.key.metric)).collect();
        let mut map = self.tenants.lock().expect("series lock");
        // Another batch may have loaded it meanwhile: keep the first, it may hold admissions.
        let entry = map.entry(tenant.to_string()).or_insert_with(|| (Arc::new(Mutex::new(set)), Instant::now()));
        Ok(entry.0.clone())
    }

    /// Forget tenants not seen for `idle`; returns how many went.
    pub fn prune(&self, idle: Duration) -> usize {
        let mut map = self.tenants.lock().expect("series lock");
        let before = map.len();
        map.retain(|_, (_, used)| used.elapsed() < idle);
        before - map.len()
    }
}
