//! The monitor's pure logic: alarm rules ([`rule`]), the engine that turns readings into
//! alarm transitions ([`engine`]), the anomaly detector ([`anomaly`]), backtests over
//! recorded readings ([`backtest`]), notifications without their I/O ([`notify`]), and
//! machine states and OEE ([`oee`]).
//!
//! Boundary: no I/O, no clock, no async. The monitor service feeds this crate readings
//! from its NATS consumer and persists what it returns; the CLI's `monitor backtest`
//! feeds it a CSV. Both run the same code, so a backtest shows what the service does.

pub mod anomaly;
pub mod backtest;
pub mod engine;
pub mod notify;
pub mod oee;
pub mod rule;

pub use engine::{Reading, RuleRunner, Transition, TransitionKind};
pub use rule::{Condition, Rule, RuleError, Severity};

/// A number as operators read it: whole numbers bare, one decimal from 10 up, two from 1
/// up, three significant digits below.
pub fn fmt_num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let a = v.abs();
    let s = if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        let decimals = (2 - a.log10().floor() as i32).clamp(3, 12) as usize;
        format!("{v:.decimals$}")
    };
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

/// `fmt_num` with a unit after a space (none when the unit is empty).
pub fn with_unit(v: f64, unit: &str) -> String {
    if unit.is_empty() { fmt_num(v) } else { format!("{} {unit}", fmt_num(v)) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_read_naturally() {
        for (v, s) in [(90.0, "90"), (73.21, "73.2"), (-6.12, "-6.12"), (1.5, "1.5"), (0.012345, "0.0123"), (0.5, "0.5"), (99.96, "100")] {
            assert_eq!(super::fmt_num(v), s, "{v}");
        }
        assert_eq!(super::with_unit(81.26, "°C"), "81.3 °C");
    }
}
