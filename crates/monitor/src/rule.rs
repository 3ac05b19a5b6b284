//! Alarm rules as a tenant writes them (TOML or JSON), and their validation.
//!
//! A rule watches the machines whose name matches `machine` (a glob; empty is every
//! machine). A rule with one condition runs once per matching series (machine and
//! metric, the metric may be a glob); a rule that combines conditions (`all`, `any`)
//! runs once per machine, and its conditions name metrics exactly.
//!
//! Invariant: a rule that passed [`Rule::validate`] has only finite numbers, at least
//! one condition in every combination, and limits the engine relies on (depth, size,
//! durations); the engine never re-checks them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How urgent an alarm is; an unacknowledged alarm escalates one step at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Look at it this shift.
    #[default]
    Warning,
    /// Act soon.
    Major,
    /// Act now.
    Critical,
}

impl Severity {
    /// Every severity, least urgent first.
    pub const ALL: [Severity; 4] = [Severity::Info, Severity::Warning, Severity::Major, Severity::Critical];

    /// One step more urgent (critical stays critical).
    pub fn escalated(self) -> Self {
        match self {
            Severity::Info => Severity::Warning,
            Severity::Warning => Severity::Major,
            Severity::Major | Severity::Critical => Severity::Critical,
        }
    }

    /// The lowercase name used on the wire and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }

    /// Parse the lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way a rate of change must go to count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Rising at least `per_minute`.
    Rising,
    /// Falling at least `per_minute`.
    Falling,
    /// Either way.
    #[default]
    Either,
}

fn default_window_ms() -> u64 {
    60_000
}

fn default_sensitivity() -> f64 {
    1.0
}

/// What a rule watches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The value is above (or below) a limit; once true it stays true until the value
    /// is back past the limit by `hysteresis`.
    Threshold {
        /// Metric name (a glob when the rule has only this condition).
        metric: String,
        /// True above this value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        above: Option<f64>,
        /// True below this value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        below: Option<f64>,
        /// How far back past the limit the value must go to end the condition.
        #[serde(default)]
        hysteresis: f64,
    },
    /// The value changes faster than `per_minute` (units per minute), measured over
    /// the readings of the last `window_ms`.
    RateOfChange {
        /// Metric name (a glob when the rule has only this condition).
        metric: String,
        /// Units per minute.
        per_minute: f64,
        /// Which way counts.
        #[serde(default)]
        direction: Direction,
        /// The span the rate is measured over.
        #[serde(default = "default_window_ms")]
        window_ms: u64,
    },
    /// No reading for `after_ms`: of this metric, or (without a metric) of any metric of
    /// the machine: the heartbeat of a device or a machine.
    NoData {
        /// Metric name; none: any metric of the machine.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metric: Option<String>,
        /// Silence that counts as lost.
        after_ms: u64,
    },
    /// A state: a bit of a status word is set, or the value equals a state code.
    State {
        /// Metric name (a glob when the rule has only this condition).
        metric: String,
        /// Bit number (0 = least significant) of the integer value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bit: Option<u8>,
        /// The state code that counts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        equals: Option<f64>,
    },
    /// The value leaves what the series itself has been doing (see `anomaly`): no
    /// hand-set limit, one sensitivity knob (higher: more alarms).
    Anomaly {
        /// Metric name (a glob when the rule has only this condition).
        metric: String,
        /// 1.0 is the default; 2.0 alarms at half the deviation, 0.5 at twice.
        #[serde(default = "default_sensitivity")]
        sensitivity: f64,
    },
    /// Every condition holds.
    All {
        /// The conditions.
        of: Vec<Condition>,
    },
    /// At least one condition holds.
    Any {
        /// The conditions.
        of: Vec<Condition>,
    },
}

fn default_version() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

fn default_per_hour() -> u32 {
    6
}

/// An alarm rule of a tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable id: lowercase letters, digits, `-`, `_`, `.`; at most 64.
    pub id: String,
    /// Raised by every saved change; an alarm names the version that raised it.
    #[serde(default = "default_version")]
    pub version: u32,
    /// What operators read; the id when empty.
    #[serde(default)]
    pub name: String,
    /// Glob over machine names (`press-*`); empty or `*`: every machine.
    #[serde(default)]
    pub machine: String,
    /// Severity when raised.
    #[serde(default)]
    pub severity: Severity,
    /// What must hold.
    pub condition: Condition,
    /// How long the condition must hold before the alarm is raised.
    #[serde(default)]
    pub for_ms: u64,
    /// Clear the alarm when the condition ends (else an operator clears it).
    #[serde(default = "default_true")]
    pub auto_clear: bool,
    /// How long the condition must stay false before an auto-clear.
    #[serde(default)]
    pub clear_for_ms: u64,
    /// Escalate one severity step for every this many minutes unacknowledged (0: never).
    #[serde(default)]
    pub escalate_after_min: u32,
    /// Flapping damper: at most this many alarms per hour per series (or machine).
    #[serde(default = "default_per_hour")]
    pub max_alarms_per_hour: u32,
}

/// Why a rule was refused: every problem at once.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RuleError {
    /// The text is not a rule.
    #[error("not a rule: {0}")]
    Syntax(String),
    /// The rule is a rule but breaks limits.
    #[error("invalid rule: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// Most conditions in one rule.
pub const MAX_CONDITIONS: usize = 16;
/// Deepest nesting of `all`/`any`.
pub const MAX_DEPTH: usize = 4;
const DAY_MS: u64 = 86_400_000;

impl Rule {
    /// Parse a rule from TOML and validate it.
    pub fn from_toml(text: &str) -> Result<Self, RuleError> {
        let rule: Rule = toml::from_str(text).map_err(|e| RuleError::Syntax(e.message().to_owned()))?;
        rule.validate()?;
        Ok(rule)
    }

    /// The name operators read.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() { &self.id } else { &self.name }
    }

    /// Whether the rule runs once per series (one condition) or once per machine.
    pub fn per_series(&self) -> bool {
        self.condition.leaf_metric().is_some()
    }

    /// Metric names (or globs) the rule reads, in condition order.
    pub fn metrics(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.condition.visit(&mut |c| {
            if let Some(m) = c.leaf_metric() {
                out.push(m);
            }
        });
        out
    }

    /// Whether the rule watches `machine`.
    pub fn watches_machine(&self, machine: &str) -> bool {
        self.machine.is_empty() || glob(&self.machine, machine)
    }

    /// Check every limit; report every problem at once.
    pub fn validate(&self) -> Result<(), RuleError> {
        let mut errs = Vec::new();
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
        if !id_ok {
            errs.push(format!("id {:?} must be 1 to 64 of a-z 0-9 - _ .", self.id));
        }
        if self.version == 0 {
            errs.push("version starts at 1".into());
        }
        if self.name.chars().count() > 200 {
            errs.push("name is longer than 200 characters".into());
        }
        if self.machine.len() > 128 {
            errs.push("machine pattern is longer than 128 bytes".into());
        }
        if self.for_ms > DAY_MS {
            errs.push("for_ms is more than a day".into());
        }
        if self.clear_for_ms > DAY_MS {
            errs.push("clear_for_ms is more than a day".into());
        }
        if self.escalate_after_min > 7 * 24 * 60 {
            errs.push("escalate_after_min is more than a week".into());
        }
        if !(1..=60).contains(&self.max_alarms_per_hour) {
            errs.push("max_alarms_per_hour must be 1 to 60".into());
        }
        let combined = !self.per_series();
        let mut count = 0;
        check_condition(&self.condition, 1, combined, &mut count, &mut errs);
        if count > MAX_CONDITIONS {
            errs.push(format!("{count} conditions; at most {MAX_CONDITIONS}"));
        }
        if errs.is_empty() { Ok(()) } else { Err(RuleError::Invalid(errs)) }
    }
}

fn finite(errs: &mut Vec<String>, what: &str, v: f64) {
    if !v.is_finite() {
        errs.push(format!("{what} must be a finite number, not {v}"));
    }
}

fn metric_ok(errs: &mut Vec<String>, metric: &str, combined: bool) {
    if metric.is_empty() || metric.len() > 128 {
        errs.push(format!("metric {metric:?} must be 1 to 128 bytes"));
    } else if combined && (metric.contains('*') || metric.contains('?')) {
        errs.push(format!("metric {metric:?}: conditions of a combination name metrics exactly, without * or ?"));
    }
}

fn check_condition(c: &Condition, depth: usize, combined: bool, count: &mut usize, errs: &mut Vec<String>) {
    if depth > MAX_DEPTH {
        errs.push(format!("conditions nest deeper than {MAX_DEPTH}"));
        return;
    }
    match c {
        Condition::All { of } | Condition::Any { of } => {
            if of.is_empty() {
                errs.push("a combination needs at least one condition".into());
            }
            for c in of {
                check_condition(c, depth + 1, combined, count, errs);
            }
            return;
        }
        Condition::Threshold { metric, above, below, hysteresis } => {
            metric_ok(errs, metric, combined);
            match (above, below) {
                (Some(v), None) | (None, Some(v)) => finite(errs, "threshold", *v),
                _ => errs.push(format!("threshold on {metric:?} needs exactly one of above or below")),
            }
            finite(errs, "hysteresis", *hysteresis);
            if *hysteresis < 0.0 {
                errs.push("hysteresis must not be negative".into());
            }
        }
        Condition::RateOfChange { metric, per_minute, window_ms, .. } => {
            metric_ok(errs, metric, combined);
            finite(errs, "per_minute", *per_minute);
            if *per_minute <= 0.0 {
                errs.push("per_minute must be above 0".into());
            }
            if !(1_000..=DAY_MS).contains(window_ms) {
                errs.push("window_ms must be 1 s to 1 day".into());
            }
        }
        Condition::NoData { metric, after_ms } => {
            if let Some(m) = metric {
                metric_ok(errs, m, combined);
            }
            if !(1_000..=7 * DAY_MS).contains(after_ms) {
                errs.push("after_ms must be 1 s to 7 days".into());
            }
        }
        Condition::State { metric, bit, equals } => {
            metric_ok(errs, metric, combined);
            match (bit, equals) {
                (Some(b), None) if *b > 52 => errs.push("bit must be 0 to 52".into()),
                (Some(_), None) => {}
                (None, Some(v)) => finite(errs, "equals", *v),
                _ => errs.push(format!("state on {metric:?} needs exactly one of bit or equals")),
            }
        }
        Condition::Anomaly { metric, sensitivity } => {
            metric_ok(errs, metric, combined);
            finite(errs, "sensitivity", *sensitivity);
            if !(0.1..=10.0).contains(sensitivity) {
                errs.push("sensitivity must be 0.1 to 10".into());
            }
        }
    }
    *count += 1;
}

impl Condition {
    /// The metric of a single condition (`None` for a combination or a machine heartbeat).
    pub fn leaf_metric(&self) -> Option<&str> {
        match self {
            Condition::Threshold { metric, .. }
            | Condition::RateOfChange { metric, .. }
            | Condition::State { metric, .. }
            | Condition::Anomaly { metric, .. } => Some(metric),
            Condition::NoData { metric, .. } => metric.as_deref(),
            Condition::All { .. } | Condition::Any { .. } => None,
        }
    }

    /// Every single condition, depth first.
    pub fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Condition)) {
        match self {
            Condition::All { of } | Condition::Any { of } => of.iter().for_each(|c| c.visit(f)),
            leaf => f(leaf),
        }
    }
}

/// `*` matches any run of characters, `?` one character; everything else itself.
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str, expect: Result<(), &str>) {
        match (Rule::from_toml(toml_text), expect) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{e} should mention {part:?}"),
            (got, want) => panic!("{toml_text}\n got {got:?}\nwant {want:?}"),
        }
    }

    #[test]
    fn rules_parse_and_refuse_clearly() {
        check("id = \"hot\"\n[condition]\ntype = \"threshold\"\nmetric = \"temp\"\nabove = 80\nhysteresis = 2", Ok(()));
        check("id = \"hot\"\n[condition]\ntype = \"threshold\"\nmetric = \"temp\"\nabove = nan", Err("finite number"));
        check("id = \"hot\"\n[condition]\ntype = \"threshold\"\nmetric = \"temp\"\nabove = inf", Err("finite number"));
        check("id = \"hot\"\n[condition]\ntype = \"threshold\"\nmetric = \"temp\"", Err("exactly one of above or below"));
        check("id = \"hot\"\n[condition]\ntype = \"threshold\"\nmetric = \"temp\"\nabove = 1\nbelow = 0", Err("exactly one"));
        check("id = \"Hot!\"\n[condition]\ntype = \"anomaly\"\nmetric = \"temp\"", Err("id \"Hot!\""));
        check("id = \"a\"\n[condition]\ntype = \"anomaly\"\nmetric = \"temp\"\nsensitivity = 0", Err("sensitivity"));
        check("id = \"a\"\n[condition]\ntype = \"wobble\"\nmetric = \"temp\"", Err("not a rule"));
        check("id = \"a\"\ncolour = \"red\"\n[condition]\ntype = \"anomaly\"\nmetric = \"t\"", Err("not a rule"));
        check("id = \"a\"\n[condition]\ntype = \"anomaly\"\nmetric = \"t\"\nlimit = 3", Err("not a rule"));
        check("id = \"a\"\n[condition]\ntype = \"all\"\nof = []", Err("at least one condition"));
        check(
            "id = \"a\"\n[condition]\ntype = \"all\"\n[[condition.of]]\ntype = \"anomaly\"\nmetric = \"t*\"\n[[condition.of]]\ntype = \"no_data\"\nafter_ms = 60000",
            Err("exactly, without * or ?"),
        );
        check("id = \"a\"\n[condition]\ntype = \"no_data\"\nafter_ms = 10", Err("after_ms"));
        check("id = \"a\"\n[condition]\ntype = \"state\"\nmetric = \"status\"\nbit = 3", Ok(()));
        check("id = \"a\"\n[condition]\ntype = \"state\"\nmetric = \"status\"\nbit = 64", Err("bit must be"));
        check("id = \"a\"\nmax_alarms_per_hour = 0\n[condition]\ntype = \"state\"\nmetric = \"s\"\nequals = 2", Err("max_alarms_per_hour"));
        check("id = \"a\"\n[condition]\ntype = \"rate_of_change\"\nmetric = \"p\"\nper_minute = -1", Err("per_minute must be above 0"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e =
            Rule::from_toml("id = \"\"\nfor_ms = 99999999999\n[condition]\ntype = \"threshold\"\nmetric = \"\"\nabove = 1").unwrap_err();
        let RuleError::Invalid(list) = e else { panic!("{e:?}") };
        assert_eq!(list.len(), 3, "{list:?}");
    }

    #[test]
    fn deep_or_huge_rules_are_refused() {
        let mut c = Condition::Anomaly { metric: "t".into(), sensitivity: 1.0 };
        for _ in 0..5 {
            c = Condition::All { of: vec![c] };
        }
        let rule = Rule { condition: c, ..sample() };
        assert!(rule.validate().unwrap_err().to_string().contains("nest deeper"));
        let many = (0..17).map(|i| Condition::State { metric: format!("m{i}"), bit: Some(1), equals: None }).collect();
        let rule = Rule { condition: Condition::Any { of: many }, ..sample() };
        assert!(rule.validate().unwrap_err().to_string().contains("at most 16"));
    }

    fn sample() -> Rule {
        Rule::from_toml("id = \"s\"\n[condition]\ntype = \"anomaly\"\nmetric = \"t\"").unwrap()
    }

    #[test]
    fn globs_match_as_shells_do() {
        for (p, s, m) in [
            ("*", "", true),
            ("press-*", "press-1", true),
            ("press-*", "lathe-1", false),
            ("*temp*", "spindle_temp_c", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*.*.x", "a.b.x", true),
            ("*b", "aaab", true),
            ("*b", "aaac", false),
            ("온도*", "온도1", true),
        ] {
            assert_eq!(glob(p, s), m, "{p} {s}");
        }
    }

    #[test]
    fn severities_escalate_to_critical_and_stop() {
        assert_eq!(Severity::Info.escalated(), Severity::Warning);
        assert_eq!(Severity::Critical.escalated(), Severity::Critical);
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
    }
}
