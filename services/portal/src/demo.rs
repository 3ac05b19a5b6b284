//! The demo tenant of `factorychain up --demo` (both shapes): a growth tenant
//! with an owner login and one device, created once and kept in a file so a
//! restart shows the same login. The file holds the password and token in
//! clear on purpose (mode 0600): it is a throw-away tenant on a local machine.

use fc_registry::Registry;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The demo's identities.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Demo {
    /// Tenant id.
    pub tenant_id: String,
    /// Device id.
    pub device_id: String,
    /// The device's token.
    pub token: String,
    /// The owner's e-mail.
    pub email: String,
    /// The owner's password.
    pub password: String,
}

/// The demo of `path`, or a new one written there when the file is missing or its device no longer authenticates.
pub fn ensure(registry: &Registry, path: &Path) -> Result<Demo, String> {
    if let Ok(text) = std::fs::read_to_string(path)
        && let Ok(d) = serde_json::from_str::<Demo>(&text)
        && registry.authenticate_device(&d.token).is_ok()
    {
        return Ok(d);
    }
    let password = fc_registry::random_hex(8);
    let email = format!("demo-{}@factorychain.local", fc_registry::random_hex(3));
    let (t, _) = registry.sign_up("Demo Steel Works", "growth", &email, "Demo Owner", &password).map_err(|e| e.to_string())?;
    let (dev, token) = registry.create_device(&t.id, "demo gateway").map_err(|e| e.to_string())?;
    let d = Demo { tenant_id: t.id, device_id: dev.id, token, email, password };
    let text = serde_json::to_string_pretty(&d).map_err(|e| e.to_string())?;
    fc_core::fsutil::replace_private(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(d)
}

/// The demo's alarm rules on the replayed datasets: the steel plant's demand (a
/// quarter hour above 100 kWh, i.e. 400 kW, which the replay reaches within minutes),
/// the machine's temperature falling below 75 °C (at the default 120x the replay gets
/// there in about 7 minutes, the demand in about 17), and the anomaly detector on that
/// temperature (it judges once it has six hours of history).
pub fn rules() -> Vec<fc_monitor::Rule> {
    [
        r#"id = "steel-demand"
name = "Steel plant demand above 400 kW"
machine = "steel-plant"
severity = "warning"
escalate_after_min = 15
[condition]
type = "threshold"
metric = "energy.usage"
above = 100
hysteresis = 10"#,
        r#"id = "machine-temp-low"
name = "Machine temperature below 75 °C"
machine = "machine-temp-1"
severity = "major"
[condition]
type = "threshold"
metric = "temperature"
below = 75
hysteresis = 3"#,
        r#"id = "machine-temp-anomaly"
name = "Machine temperature leaves its normal range"
machine = "machine-temp-1"
severity = "major"
[condition]
type = "anomaly"
metric = "temperature"
sensitivity = 1.0"#,
    ]
    .iter()
    .map(|t| fc_monitor::Rule::from_toml(t).expect("the demo rules are valid"))
    .collect()
}

/// Saves the demo rules the tenant does not have yet (an edited one is kept), once the
/// replay has stored the metrics they name (the monitor refuses rules on unknown
/// metrics); tries every two seconds for three minutes or until `stop`.
pub async fn install_rules(monitor: fc_monitor_api::MonitorClient, tenant: String, stop: fc_core::Shutdown) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(180);
    let mut last_error = String::new();
    while tokio::time::Instant::now() < deadline {
        let have: Vec<String> = match monitor.rules(&tenant).await {
            Ok(r) => r.iter().filter_map(|v| v.rule["id"].as_str().map(str::to_owned)).collect(),
            Err(e) => {
                last_error = e.to_string();
                Vec::new()
            }
        };
        let mut missing = 0;
        for rule in rules().into_iter().filter(|r| !have.contains(&r.id)) {
            if let Err(e) = monitor.put_rule(&tenant, &rule, "demo").await {
                last_error = e.to_string();
                missing += 1;
            }
        }
        if missing == 0 {
            tracing::info!(tenant = %tenant, "demo alarm rules in place");
            return;
        }
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
    }
    tracing::warn!(tenant = %tenant, error = %last_error, "demo alarm rules not saved");
}

/// The demo's OEE setup: three shifts a day on Korean time, a small reason tree, the
/// machine-temperature machine (running from 75 °C; the replay's simulated counters of
/// parts and scrap, 10 parts per 5-minute row, so a part takes 30 s of plant time and
/// is planned at 25.5 s) and the steel plant (running above 10 kWh a quarter hour, no
/// counts). Replayed `speed` times faster, plant times shrink by as much. The days
/// before `started_ms` (the first demo start) are a planned stop: the plant did not
/// exist then, so that time is not down time.
pub fn oee_setup(speed: f64, machines: &[&str], started_ms: i64) -> serde_json::Value {
    // Silence counts as down after two of the slower dataset's rows (15 min of plant time).
    let no_data_ms = (2.0 * 900_000.0 / speed.max(0.001)).clamp(60_000.0, 86_400_000.0) as u64;
    let all = [
        serde_json::json!({"machine": "machine-temp-1", "line": "A", "state": {"metric": "temperature", "running_above": 75.0, "no_data_ms": no_data_ms},
                           "produced_metric": "parts_simulated", "scrap_metric": "scrap_simulated",
                           "planned_ms_per_item": (25_500.0 / speed.max(0.001)).clamp(1.0, 86_400_000.0)}),
        serde_json::json!({"machine": "steel-plant", "line": "B", "state": {"metric": "energy.usage", "running_above": 10.0, "no_data_ms": no_data_ms}}),
    ];
    serde_json::json!({
        "calendar": {"utc_offset_min": 540, "shifts": [
            {"name": "early", "start": "06:00", "end": "14:00", "breaks": [["10:00", "10:30"]]},
            {"name": "late", "start": "14:00", "end": "22:00", "breaks": [["18:00", "18:30"]]},
            {"name": "night", "start": "22:00", "end": "06:00", "breaks": [["02:00", "02:30"]]}
        ],
        "planned_stops": [{"from_ms": started_ms - 10 * 86_400_000, "to_ms": started_ms, "reason": "before the demo started"}]},
        "reasons": [
            {"code": "unplanned", "label": "Unplanned / 비계획", "kind": "unplanned"},
            {"code": "breakdown", "label": "Breakdown / 고장", "parent": "unplanned", "kind": "unplanned"},
            {"code": "material", "label": "Material missing / 자재 부족", "parent": "unplanned", "kind": "unplanned"},
            {"code": "changeover", "label": "Changeover / 품종 교체", "kind": "changeover"},
            {"code": "maintenance", "label": "Planned maintenance / 계획 정비", "kind": "planned"}
        ],
        "machines": all.into_iter().filter(|m| machines.contains(&m["machine"].as_str().unwrap_or(""))).collect::<Vec<_>>()
    })
}

/// Saves the demo's OEE setup unless the tenant has one, once the replay stored its
/// metrics; after 90 s without a machine's metrics (the simulator replays only the steel
/// plant), without that machine. Tries every two seconds for three minutes.
pub async fn install_oee(monitor: fc_monitor_api::MonitorClient, tenant: String, speed: f64, stop: fc_core::Shutdown) {
    let started = tokio::time::Instant::now();
    let started_ms = fc_core::time::now_ms();
    let mut machines = vec!["machine-temp-1", "steel-plant"];
    let mut last_error = String::new();
    while started.elapsed() < std::time::Duration::from_secs(180) && !machines.is_empty() {
        if let Ok(Some(_)) = monitor.oee_setup(&tenant).await {
            return;
        }
        match monitor.put_oee_setup(&tenant, &oee_setup(speed, &machines, started_ms)).await {
            Ok(_) => {
                tracing::info!(tenant = %tenant, "demo OEE setup in place");
                return;
            }
            Err(e) => {
                last_error = e.to_string();
                if started.elapsed() > std::time::Duration::from_secs(90) {
                    machines.retain(|m| !last_error.contains(&format!("{m}/")));
                }
            }
        }
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
    }
    tracing::warn!(tenant = %tenant, error = %last_error, "demo OEE setup not saved");
}

#[cfg(test)]
mod oee_tests {
    #[test]
    fn the_demo_oee_setup_is_valid_at_any_speed() {
        for speed in [1.0, 120.0, 100_000.0] {
            let v = super::oee_setup(speed, &["machine-temp-1", "steel-plant"], 1_800_000_000_000);
            let setup: fc_monitor::oee::OeeSetup = serde_json::from_value(v).unwrap();
            setup.validate().unwrap();
            assert_eq!(setup.machines.len(), 2);
        }
        assert_eq!(super::oee_setup(120.0, &["steel-plant"], 1_800_000_000_000)["machines"].as_array().map(Vec::len), Some(1));
    }
}
