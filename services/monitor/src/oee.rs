//! OEE: a tenant's setup (calendar, downtime reasons, machines), the reasons operators
//! give for down periods, and reports computed on request from the stored readings
//! (`fc_monitor::oee`, pure, does the arithmetic).
//!
//! Boundary: readings come through ingest's `Query` for the caller's tenant only.

use crate::monitor::Monitor;
use crate::store::ReasonRecord;
use fc_core::{ErrorCode, ServiceError};
use fc_monitor::oee::{MachineData, OeeSetup, Report};

/// The longest report window (raw readings are read).
pub const MAX_WINDOW_MS: i64 = 8 * 86_400_000;
/// Machines one report covers at most.
pub const MAX_MACHINES: usize = 100;

fn invalid(errs: Vec<String>) -> ServiceError {
    ServiceError::invalid("setup", errs.join("; "))
}

impl Monitor {
    /// Save the tenant's OEE setup: validated, and every metric it names must exist.
    pub async fn put_oee_setup(&self, tenant: &str, setup: OeeSetup) -> Result<OeeSetup, ServiceError> {
        setup.validate().map_err(invalid)?;
        if let Some(q) = self.query() {
            let series = q.list_series(tenant, None).await?;
            let mut missing = Vec::new();
            for m in &setup.machines {
                for metric in OeeSetup::metrics_of(m) {
                    if !series.iter().any(|s| s.machine == m.machine && s.metric == metric) {
                        missing.push(format!("{}/{metric}", m.machine));
                    }
                }
            }
            if !missing.is_empty() {
                missing.truncate(20);
                return Err(ServiceError::invalid("setup", format!("no such series: {}", missing.join(", "))));
            }
        }
        self.store().put_oee_setup(tenant, &setup)?;
        Ok(setup)
    }

    /// The tenant's OEE setup.
    pub fn oee_setup(&self, tenant: &str) -> Result<Option<OeeSetup>, ServiceError> {
        self.store().oee_setup(tenant)
    }

    /// Record why `machine` was down at `at_ms` (it explains the whole down period).
    pub fn set_downtime_reason(
        &self,
        tenant: &str,
        machine: &str,
        at_ms: i64,
        reason: &str,
        user: &str,
    ) -> Result<ReasonRecord, ServiceError> {
        let setup = self.oee_setup(tenant)?.ok_or_else(no_setup)?;
        if !setup.machines.iter().any(|m| m.machine == machine) {
            return Err(ServiceError::not_found(format!("machine {machine} in the OEE setup")));
        }
        if !setup.reasons.iter().any(|r| r.code == reason) {
            let codes: Vec<&str> = setup.reasons.iter().map(|r| r.code.as_str()).take(30).collect();
            return Err(ServiceError::invalid("reason", format!("{reason:?} is not in the reason tree ({})", codes.join(", "))));
        }
        let now = fc_core::time::now_ms();
        if at_ms <= 0 || at_ms > now + 60_000 {
            return Err(ServiceError::invalid("at_ms", "an instant in the past"));
        }
        let r = ReasonRecord { machine: machine.to_owned(), at_ms, reason: reason.to_owned(), by: user.to_owned(), saved_at_ms: now };
        self.store().put_reason(tenant, &r)?;
        Ok(r)
    }

    /// OEE over the shifts that start in `[from, to)` (at most 8 days), of one machine, one
    /// line, or (both empty) every machine of the setup.
    pub async fn oee_report(&self, tenant: &str, from: i64, to: i64, machine: &str, line: &str) -> Result<Report, ServiceError> {
        if to <= from || to - from > MAX_WINDOW_MS {
            return Err(ServiceError::invalid("end_ms", "after start_ms, at most 8 days later"));
        }
        let setup = self.oee_setup(tenant)?.ok_or_else(no_setup)?;
        let q = self.query().ok_or_else(|| {
            ServiceError::new(ErrorCode::FailedPrecondition, "this monitor reads no stored history (monitor.telemetry_url is not set)")
        })?;
        let mut chosen: Vec<_> =
            setup.machines.iter().filter(|m| (machine.is_empty() || m.machine == machine) && (line.is_empty() || m.line == line)).collect();
        let mut truncated = chosen.len() > MAX_MACHINES;
        chosen.truncate(MAX_MACHINES);
        if chosen.is_empty() && (!machine.is_empty() || !line.is_empty()) {
            return Err(ServiceError::not_found("no such machine or line in the OEE setup"));
        }
        let now = fc_core::time::now_ms();
        // Shifts that start in the window may end up to a day after it.
        let read_to = (to + 86_400_000).min(now + 1);
        let mut data = Vec::with_capacity(chosen.len());
        let cut = std::sync::atomic::AtomicBool::new(false);
        for m in &chosen {
            let read = |metric: Option<String>, lead: i64| {
                let (machine, cut) = (m.machine.clone(), &cut);
                async move {
                    let Some(metric) = metric else { return Ok(Vec::new()) };
                    let spec = fc_query_api::RangeSpec { start_ms: from - lead, end_ms: read_to, step_ms: 0, limit: 1_000_000 };
                    let r = q.range(tenant, &machine, &metric, spec).await?;
                    if r.truncated {
                        cut.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    // As live rules: bad-quality readings are not judged.
                    Ok::<_, ServiceError>(
                        r.points.iter().filter(|p| p.value.is_finite() && p.quality != 3).map(|p| (p.ts_ms, p.value)).collect::<Vec<_>>(),
                    )
                }
            };
            // States from 12 h before: a stop that began earlier keeps its whole extent.
            let lead = (m.state.no_data_ms as i64).max(12 * 3_600_000);
            let reasons = self.store().reasons(tenant, &m.machine)?.into_iter().map(|r| (r.at_ms, r.reason)).collect();
            data.push(MachineData {
                state: read(Some(m.state.metric.clone()), lead).await?,
                produced: read(m.produced_metric.clone(), 3_600_000).await?,
                good: read(m.good_metric.clone(), 3_600_000).await?,
                scrap: read(m.scrap_metric.clone(), 3_600_000).await?,
                // The product made when a shift began may have been set long before.
                product: read(m.product_metric.clone(), lead).await?,
                reasons,
            });
        }
        let pairs: Vec<_> = chosen.iter().copied().zip(data.iter()).collect();
        let mut report = fc_monitor::oee::report(&setup.calendar, &pairs, from, to, now);
        truncated |= cut.load(std::sync::atomic::Ordering::Relaxed);
        report.truncated = truncated;
        Ok(report)
    }
}

fn no_setup() -> ServiceError {
    ServiceError::new(ErrorCode::FailedPrecondition, "this tenant has no OEE setup yet (calendar, reasons, machines)")
}
