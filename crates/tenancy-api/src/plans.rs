//! The plan catalogue: what each subscription allows.

use serde::{Deserialize, Serialize};

/// Quotas of a plan. Enforced where they bite: ingest (rates), device and user creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Stable id ("starter", "growth", "enterprise").
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Monthly price in KRW (display only).
    pub price_krw_month: u64,
    /// Most registered, unrevoked devices.
    pub max_devices: u32,
    /// Readings per second the whole tenant may ingest (token bucket, one second of burst).
    pub max_readings_per_s: u32,
    /// Readings per second one device may ingest.
    pub max_device_readings_per_s: u32,
    /// Days readings are kept.
    pub retention_days: u32,
    /// Most supplier partners.
    pub max_partners: u32,
    /// Most portal users.
    pub max_users: u32,
    /// Most distinct series (machine, metric) the tenant may hold; a reading of a
    /// new series beyond it is refused.
    pub max_series: u32,
    /// Stored readings per second the tenant's reads may decode (raw points and
    /// aggregation inputs; a token bucket with one second of burst).
    pub max_read_points_per_s: u64,
    /// Most ciphertext bytes of designs the tenant may store, all versions together.
    pub max_design_bytes: u64,
    /// Whether the public sign-up page offers this plan; the others are granted by
    /// the operator (`factorychain admin tenant set-plan`).
    pub self_service: bool,
}

/// Every plan, cheapest first.
pub const PLANS: [Plan; 3] = [
    Plan {
        id: "starter",
        name: "Starter",
        price_krw_month: 290_000,
        max_devices: 10,
        max_readings_per_s: 2_000,
        max_device_readings_per_s: 1_000,
        retention_days: 30,
        max_partners: 3,
        max_users: 5,
        max_series: 1_000,
        max_read_points_per_s: 250_000,
        max_design_bytes: 1 << 30,
        self_service: true,
    },
    Plan {
        id: "growth",
        name: "Growth",
        price_krw_month: 1_490_000,
        max_devices: 100,
        max_readings_per_s: 50_000,
        max_device_readings_per_s: 5_000,
        retention_days: 365,
        max_partners: 30,
        max_users: 50,
        max_series: 20_000,
        max_read_points_per_s: 1_000_000,
        max_design_bytes: 20 << 30,
        self_service: true,
    },
    Plan {
        id: "enterprise",
        name: "Enterprise",
        price_krw_month: 9_900_000,
        max_devices: 10_000,
        max_readings_per_s: 5_000_000,
        max_device_readings_per_s: 100_000,
        retention_days: 1_825,
        max_partners: 500,
        max_users: 1_000,
        max_series: 1_000_000,
        max_read_points_per_s: 10_000_000,
        max_design_bytes: 500 << 30,
        self_service: false,
    },
];

/// The plans a tenant may choose on the public sign-up page.
pub fn self_service_plans() -> impl Iterator<Item = &'static Plan> {
    PLANS.iter().filter(|p| p.self_service)
}

/// The plan with `id`, or the first (starter) when there is none.
pub fn plan_or_default(id: &str) -> &'static Plan {
    plan(id).unwrap_or(&PLANS[0])
}

/// The plan with `id`.
pub fn plan(id: &str) -> Option<&'static Plan> {
    PLANS.iter().find(|p| p.id == id)
}
