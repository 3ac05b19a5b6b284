//! The rule engine: one [`RuleRunner`] per rule turns readings (and the passing of
//! time) into alarm transitions. The live service and the backtest run this same code.
//!
//! A runner keeps one instance per series (a rule with one condition) or per machine (a
//! combination, or a machine heartbeat). An instance is a small state machine:
//!
//! ```text
//!   quiet --condition holds for for_ms--> raised --unacked for escalate_after_min--> escalated
//!     ^                                     |
//!     +-- condition false for clear_for_ms -+  (or an operator clears a rule without auto_clear)
//! ```
//!
//! Invariants:
//! - an instance has at most one open alarm; an alarm is named by (rule, machine, metric,
//!   raised_at), so replaying the same readings raises the same alarm, never a second one;
//! - at most `max_alarms_per_hour` raises per instance in any hour; a raise over the limit
//!   is reported once as `Suppressed` until the condition ends;
//! - time is the readings' own (and the `now` given to [`RuleRunner::tick`]), never the
//!   wall clock, so a backtest over last month behaves as the live service did.

use crate::anomaly::{self, Detector, Score};
use crate::rule::{Condition, Direction, Rule, Severity, glob};
use crate::{fmt_num, with_unit};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// Most instances (series or machines) one rule tracks; readings of further series are
/// not judged by it (the tenant's series quota is far below).
pub const MAX_INSTANCES: usize = 200_000;

/// A reading as the engine sees it.
#[derive(Clone, Copy, Debug)]
pub struct Reading<'a> {
    /// Machine name.
    pub machine: &'a str,
    /// Metric name.
    pub metric: &'a str,
    /// Unit (for reasons).
    pub unit: &'a str,
    /// Unix epoch milliseconds.
    pub ts_ms: i64,
    /// Finite value.
    pub value: f64,
}

/// What happened to an alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransitionKind {
    /// The condition held for `for_ms`: a new alarm.
    Raised,
    /// Unacknowledged too long: one severity step up.
    Escalated,
    /// The condition ended (or an operator cleared it).
    Cleared,
    /// A raise that the flapping damper held back.
    Suppressed,
}

impl TransitionKind {
    /// Lowercase name for events and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Raised => "raised",
            TransitionKind::Escalated => "escalated",
            TransitionKind::Cleared => "cleared",
            TransitionKind::Suppressed => "suppressed",
        }
    }
}

/// One alarm transition.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// What happened.
    pub kind: TransitionKind,
    /// The rule.
    pub rule_id: String,
    /// The rule's version that raised the alarm.
    pub rule_version: u32,
    /// Machine.
    pub machine: String,
    /// Metric, for a rule that runs per series.
    pub metric: Option<String>,
    /// When the alarm was raised (with the rest, the alarm's identity).
    pub raised_at_ms: i64,
    /// When this transition happened.
    pub at_ms: i64,
    /// Severity after the transition.
    pub severity: Severity,
    /// Why, in words.
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Leaf {
    Threshold {
        active: bool,
        last: f64,
    },
    Rate {
        window: VecDeque<(i64, f64)>,
        active: bool,
        rate: f64,
        span_ms: i64,
    },
    NoData {
        last_seen: i64,
    },
    State {
        active: bool,
        last: f64,
    },
    Anomaly {
        #[serde(with = "detector_bytes")]
        det: Box<Detector>,
        active: bool,
        #[serde(with = "score_parts")]
        score: Option<Score>,
    },
}

/// A detector in a checkpoint: its compact bytes, base64.
mod detector_bytes {
    use super::Detector;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Detector, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD_NO_PAD.encode(d.to_bytes()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<Detector>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(text).map_err(D::Error::custom)?;
        Detector::from_bytes(&bytes).map(Box::new).ok_or_else(|| D::Error::custom("not a detector state"))
    }
}

/// A score in a checkpoint: `[deviations, level, baseline, scale]`.
mod score_parts {
    use super::Score;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Score>, s: S) -> Result<S::Ok, S::Error> {
        v.map(|x| [x.deviations, x.level, x.baseline, x.scale]).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Score>, D::Error> {
        Ok(Option::<[f64; 4]>::deserialize(d)?.map(|[deviations, level, baseline, scale]| Score { deviations, level, baseline, scale }))
    }
}

impl Leaf {
    fn new(c: &Condition, ts: i64) -> Leaf {
        match c {
            Condition::Threshold { .. } => Leaf::Threshold { active: false, last: 0.0 },
            Condition::RateOfChange { .. } => Leaf::Rate { window: VecDeque::new(), active: false, rate: 0.0, span_ms: 0 },
            Condition::NoData { .. } => Leaf::NoData { last_seen: ts },
            Condition::State { .. } => Leaf::State { active: false, last: 0.0 },
            Condition::Anomaly { .. } => Leaf::Anomaly { det: Box::default(), active: false, score: None },
            Condition::All { .. } | Condition::Any { .. } => unreachable!("combinations are not leaves"),
        }
    }

    fn update(&mut self, c: &Condition, ts: i64, value: f64) {
        match (self, c) {
            (Leaf::Threshold { active, last }, Condition::Threshold { above, below, hysteresis, .. }) => {
                *last = value;
                *active = match (above, below) {
                    (Some(th), _) => value > if *active { th - hysteresis } else { *th },
                    (None, Some(th)) => value < if *active { th + hysteresis } else { *th },
                    (None, None) => false,
                };
            }
            (Leaf::Rate { window, active, rate, span_ms }, Condition::RateOfChange { per_minute, direction, window_ms, .. }) => {
                if window.back().is_some_and(|&(t, _)| ts < t) {
                    return; // out of order: the rate is measured forwards only
                }
                window.push_back((ts, value));
                while window.front().is_some_and(|&(t, _)| t < ts - *window_ms as i64) {
                    window.pop_front();
                }
                let (&(t0, v0), &(t1, v1)) = (window.front().expect("just pushed"), window.back().expect("just pushed"));
                *span_ms = t1 - t0;
                // Under half the window is too short to call a rate.
                *active = if *span_ms * 2 >= *window_ms as i64 {
                    *rate = (v1 - v0) / (*span_ms as f64 / 60_000.0);
                    match direction {
                        Direction::Rising => *rate >= *per_minute,
                        Direction::Falling => *rate <= -per_minute,
                        Direction::Either => rate.abs() >= *per_minute,
                    }
                } else {
                    false
                };
            }
            (Leaf::NoData { last_seen }, Condition::NoData { .. }) => *last_seen = (*last_seen).max(ts),
            (Leaf::State { active, last }, Condition::State { bit, equals, .. }) => {
                *last = value;
                *active = match (bit, equals) {
                    (Some(b), _) => (value.round() as i64 >> b) & 1 == 1,
                    (None, Some(e)) => (value - e).abs() < 1e-9,
                    (None, None) => false,
                };
            }
            (Leaf::Anomaly { det, active, score }, Condition::Anomaly { sensitivity, .. }) => {
                *score = det.observe(ts, value);
                let limit = anomaly::limit(*sensitivity);
                *active = score.is_some_and(|s| s.deviations.abs() >= if *active { limit * anomaly::CLEAR_SHARE } else { limit });
            }
            _ => unreachable!("leaves are built from their conditions"),
        }
    }

    fn holds(&self, c: &Condition, now: i64) -> bool {
        match (self, c) {
            (Leaf::NoData { last_seen }, Condition::NoData { after_ms, .. }) => now - last_seen >= *after_ms as i64,
            (Leaf::Threshold { active, .. } | Leaf::Rate { active, .. } | Leaf::State { active, .. } | Leaf::Anomaly { active, .. }, _) => {
                *active
            }
            _ => false,
        }
    }

    fn explain(&self, c: &Condition, machine: &str, unit: &str, now: i64) -> String {
        match (self, c) {
            (Leaf::Threshold { last, .. }, Condition::Threshold { metric, above, below, .. }) => match (above, below) {
                (Some(th), _) => format!("{metric} {} is above the limit of {}", with_unit(*last, unit), with_unit(*th, unit)),
                (_, th) => format!("{metric} {} is below the limit of {}", with_unit(*last, unit), with_unit(th.unwrap_or(0.0), unit)),
            },
            (Leaf::Rate { rate, span_ms, .. }, Condition::RateOfChange { metric, per_minute, .. }) => {
                let way = if *rate < 0.0 { "fell" } else { "rose" };
                let per = if unit.is_empty() { "/min".to_owned() } else { format!(" {unit}/min") };
                format!(
                    "{metric} {way} {}{per} over the last {} s (limit {}{per})",
                    fmt_num(rate.abs()),
                    span_ms / 1000,
                    fmt_num(*per_minute)
                )
            }
            (Leaf::NoData { last_seen }, Condition::NoData { metric, .. }) => {
                let quiet = minutes((now - last_seen).max(0));
                match metric {
                    Some(m) => format!("no {m} reading from {machine} for {quiet}"),
                    None => format!("no reading from {machine} for {quiet}"),
                }
            }
            (Leaf::State { last, .. }, Condition::State { metric, bit, .. }) => match bit {
                Some(b) => format!("{metric} bit {b} is set (value {})", fmt_num(*last)),
                None => format!("{metric} is in state {}", fmt_num(*last)),
            },
            (Leaf::Anomaly { score: Some(s), .. }, Condition::Anomaly { .. }) => s.explain(unit),
            (Leaf::Anomaly { score: None, .. }, Condition::Anomaly { metric, .. }) => format!("{metric} is anomalous"),
            _ => String::new(),
        }
    }
}

fn minutes(ms: i64) -> String {
    if ms < 120_000 { format!("{} s", ms / 1000) } else { format!("{} min", ms / 60_000) }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Open {
    raised_at: i64,
    severity: Severity,
    acked: bool,
    escalated_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Instance {
    unit: String,
    leaves: Vec<Leaf>,
    since_true: Option<i64>,
    since_false: Option<i64>,
    open: Option<Open>,
    raises: VecDeque<i64>,
    suppressed: bool,
}

/// The running state of one rule over every machine it watches.
#[derive(Clone, Debug)]
pub struct RuleRunner {
    rule: Rule,
    /// The rule's single conditions, depth first (the order of each instance's leaves).
    leaves: Vec<Condition>,
    /// machine -> metric ("" for per-machine instances) -> instance.
    instances: HashMap<String, HashMap<String, Instance>>,
    count: usize,
}

/// An alarm open in a runner: (machine, metric, raised_at, severity, acknowledged).
pub type OpenAlarm = (String, Option<String>, i64, Severity, bool);

/// A runner's state in a checkpoint.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    rule_id: String,
    rule_version: u32,
    instances: HashMap<String, HashMap<String, Instance>>,
}

/// Why a checkpoint was not restored.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RestoreError {
    /// The bytes are not a checkpoint (or a damaged one).
    #[error("not a checkpoint: {0}")]
    Damaged(String),
    /// The checkpoint is of another rule or another version of it: the runner starts
    /// afresh, and the caller closes the alarms the old version left open.
    #[error("the checkpoint is of {0} version {1}")]
    OtherRule(String, u32),
}
impl RuleRunner {
    /// A runner for a validated rule.
    pub fn new(rule: Rule) -> Result<Self, crate::rule::RuleError> {
        rule.validate()?;
        let mut leaves = Vec::new();
        rule.condition.visit(&mut |c| leaves.push(c.clone()));
        Ok(Self { rule, leaves, instances: HashMap::new(), count: 0 })
    }

    /// The rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// Series or machines this runner tracks.
    pub fn instances(&self) -> usize {
        self.count
    }

    /// Judge one reading; transitions are appended to `out`.
    pub fn observe(&mut self, r: &Reading<'_>, out: &mut Vec<Transition>) {
        if !r.value.is_finite() || !self.rule.watches_machine(r.machine) {
            return;
        }
        let per_series = self.rule.per_series();
        let matches = |c: &Condition| match c {
            Condition::NoData { metric: None, .. } => true,
            c => c.leaf_metric().is_some_and(|m| if per_series { glob(m, r.metric) } else { m == r.metric }),
        };
        if !self.leaves.iter().any(matches) {
            return;
        }
        let metric_key = if per_series { r.metric } else { "" };
        let exists = self.instances.get(r.machine).is_some_and(|m| m.contains_key(metric_key));
        if !exists {
            if self.count >= MAX_INSTANCES {
                return;
            }
            let inst = Instance {
                unit: r.unit.to_owned(),
                leaves: self.leaves.iter().map(|c| Leaf::new(c, r.ts_ms)).collect(),
                since_true: None,
                since_false: None,
                open: None,
                raises: VecDeque::new(),
                suppressed: false,
            };
            self.instances.entry(r.machine.to_owned()).or_default().insert(metric_key.to_owned(), inst);
            self.count += 1;
        }
        let inst = self.instances.get_mut(r.machine).and_then(|m| m.get_mut(metric_key)).expect("present");
        if per_series && inst.unit != r.unit {
            inst.unit = r.unit.to_owned();
        }
        for (leaf, c) in inst.leaves.iter_mut().zip(&self.leaves) {
            if matches(c) {
                leaf.update(c, r.ts_ms, r.value);
            }
        }
        let metric = per_series.then_some(r.metric);
        step(&self.rule, r.machine, metric, inst, r.ts_ms, out);
    }

    /// Let time pass to `now`: lost heartbeats, held durations and escalations that no
    /// reading triggers.
    pub fn tick(&mut self, now: i64, out: &mut Vec<Transition>) {
        let per_series = self.rule.per_series();
        for (machine, by_metric) in &mut self.instances {
            for (metric, inst) in by_metric {
                let metric = per_series.then_some(metric.as_str());
                step(&self.rule, machine, metric, inst, now, out);
            }
        }
    }

    fn instance(&mut self, machine: &str, metric: Option<&str>) -> Option<&mut Instance> {
        self.instances.get_mut(machine)?.get_mut(metric.unwrap_or(""))
    }

    /// An operator acknowledged the open alarm: it stops escalating. False if none is open.
    pub fn acknowledge(&mut self, machine: &str, metric: Option<&str>) -> bool {
        match self.instance(machine, metric).and_then(|i| i.open.as_mut()) {
            Some(open) => {
                open.acked = true;
                true
            }
            None => false,
        }
    }

    /// An operator cleared the open alarm (a rule without auto-clear needs this).
    pub fn clear(&mut self, machine: &str, metric: Option<&str>, now: i64, by: &str) -> Option<Transition> {
        let (id, version) = (self.rule.id.clone(), self.rule.version);
        let inst = self.instance(machine, metric)?;
        let open = inst.open.take()?;
        inst.since_true = None;
        Some(Transition {
            kind: TransitionKind::Cleared,
            rule_id: id,
            rule_version: version,
            machine: machine.to_owned(),
            metric: metric.map(str::to_owned),
            raised_at_ms: open.raised_at,
            at_ms: now,
            severity: open.severity,
            reason: format!("cleared by {by}"),
        })
    }

    /// Hold an alarm the caller's store has open but this runner does not (it resumed from
    /// an older checkpoint, or from none): it is not raised again, and it clears when the
    /// condition is found false.
    pub fn adopt_open(&mut self, machine: &str, metric: Option<&str>, raised_at: i64, severity: Severity, acked: bool) {
        let key = if self.rule.per_series() { metric.unwrap_or("") } else { "" };
        if self.instance(machine, Some(key)).is_none() {
            let inst = Instance {
                unit: String::new(),
                leaves: self.leaves.iter().map(|c| Leaf::new(c, raised_at)).collect(),
                since_true: None,
                since_false: None,
                open: None,
                raises: VecDeque::new(),
                suppressed: false,
            };
            self.instances.entry(machine.to_owned()).or_default().insert(key.to_owned(), inst);
            self.count += 1;
        }
        let inst = self.instance(machine, Some(key)).expect("present");
        inst.open = Some(Open { raised_at, severity, acked, escalated_at: raised_at });
        if !inst.raises.contains(&raised_at) {
            inst.raises.push_back(raised_at);
        }
    }

    /// Forget an open alarm the caller's store has closed; false if it was not open here.
    pub fn drop_open(&mut self, machine: &str, metric: Option<&str>, raised_at: i64) -> bool {
        match self.instance(machine, metric) {
            Some(inst) if inst.open.as_ref().is_some_and(|o| o.raised_at == raised_at) => {
                inst.open = None;
                inst.since_true = None;
                true
            }
            _ => false,
        }
    }

    /// The state of every instance, for a checkpoint ([`RuleRunner::restore`]).
    pub fn checkpoint(&self) -> Vec<u8> {
        let c = Checkpoint { rule_id: self.rule.id.clone(), rule_version: self.rule.version, instances: self.instances.clone() };
        serde_json::to_vec(&c).expect("a checkpoint serialises")
    }

    /// A runner for `rule` that resumes from a checkpoint of the same rule and version.
    pub fn restore(rule: Rule, bytes: &[u8]) -> Result<Self, RestoreError> {
        let mut runner = Self::new(rule).map_err(|e| RestoreError::Damaged(e.to_string()))?;
        let c: Checkpoint = serde_json::from_slice(bytes).map_err(|e| RestoreError::Damaged(e.to_string()))?;
        if c.rule_id != runner.rule.id || c.rule_version != runner.rule.version {
            return Err(RestoreError::OtherRule(c.rule_id, c.rule_version));
        }
        // Each instance must have the leaves this rule builds, in order and kind.
        let fresh: Vec<Leaf> = runner.leaves.iter().map(|c| Leaf::new(c, 0)).collect();
        let same_shape = c.instances.values().flat_map(HashMap::values).all(|i| {
            i.leaves.len() == fresh.len()
                && i.leaves.iter().zip(&fresh).all(|(a, b)| std::mem::discriminant(a) == std::mem::discriminant(b))
        });
        if !same_shape {
            return Err(RestoreError::Damaged("its conditions differ from the rule's".into()));
        }
        runner.count = c.instances.values().map(HashMap::len).sum();
        runner.instances = c.instances;
        Ok(runner)
    }

    /// Every open alarm.
    pub fn open_alarms(&self) -> Vec<OpenAlarm> {
        let per_series = self.rule.per_series();
        let mut out = Vec::new();
        for (machine, by_metric) in &self.instances {
            for (metric, inst) in by_metric {
                if let Some(o) = &inst.open {
                    out.push((machine.clone(), per_series.then(|| metric.clone()), o.raised_at, o.severity, o.acked));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }
}

fn holds(c: &Condition, leaves: &[Leaf], next: &mut usize, now: i64) -> bool {
    match c {
        // Every leaf is visited (no short circuit): `next` walks the leaves in order.
        Condition::All { of } => {
            let mut all = true;
            for c in of {
                all &= holds(c, leaves, next, now);
            }
            all
        }
        Condition::Any { of } => {
            let mut any = false;
            for c in of {
                any |= holds(c, leaves, next, now);
            }
            any
        }
        leaf => {
            let i = *next;
            *next += 1;
            leaves[i].holds(leaf, now)
        }
    }
}

fn explain(c: &Condition, leaves: &[Leaf], next: &mut usize, machine: &str, unit: &str, now: i64) -> Vec<String> {
    match c {
        Condition::All { of } | Condition::Any { of } => {
            let any = matches!(c, Condition::Any { .. });
            let mut parts = Vec::new();
            for c in of {
                let before = *next;
                let mut probe = before;
                let part = explain(c, leaves, next, machine, unit, now);
                // In an `any`, name only the conditions that hold.
                if !any || holds(c, leaves, &mut probe, now) {
                    parts.extend(part);
                }
            }
            if any { vec![parts.join("; ")] } else { vec![parts.join(" and ")] }
        }
        leaf => {
            let i = *next;
            *next += 1;
            vec![leaves[i].explain(leaf, machine, unit, now)]
        }
    }
}

fn step(rule: &Rule, machine: &str, metric: Option<&str>, inst: &mut Instance, now: i64, out: &mut Vec<Transition>) {
    let truth = holds(&rule.condition, &inst.leaves, &mut 0, now);
    let transition = |kind, raised_at, severity, reason: String| Transition {
        kind,
        rule_id: rule.id.clone(),
        rule_version: rule.version,
        machine: machine.to_owned(),
        metric: metric.map(str::to_owned),
        raised_at_ms: raised_at,
        at_ms: now,
        severity,
        reason,
    };
    if truth {
        inst.since_false = None;
        if inst.open.is_none() {
            let since = *inst.since_true.get_or_insert(now);
            if now - since >= rule.for_ms as i64 {
                while inst.raises.front().is_some_and(|&t| t <= now - 3_600_000) {
                    inst.raises.pop_front();
                }
                if inst.raises.len() >= rule.max_alarms_per_hour as usize {
                    if !inst.suppressed {
                        inst.suppressed = true;
                        let why = format!("more than {} alarms in an hour: held back while the condition lasts", rule.max_alarms_per_hour);
                        out.push(transition(TransitionKind::Suppressed, now, rule.severity, why));
                    }
                } else {
                    let reason = explain(&rule.condition, &inst.leaves, &mut 0, machine, &inst.unit, now).join(" ");
                    inst.open = Some(Open { raised_at: now, severity: rule.severity, acked: false, escalated_at: now });
                    inst.raises.push_back(now);
                    out.push(transition(TransitionKind::Raised, now, rule.severity, reason));
                }
            }
        }
    } else {
        inst.since_true = None;
        inst.suppressed = false;
        if rule.auto_clear
            && let Some(open) = &inst.open
        {
            let since = *inst.since_false.get_or_insert(now);
            if now - since >= rule.clear_for_ms as i64 {
                let (raised_at, severity) = (open.raised_at, open.severity);
                inst.open = None;
                inst.since_false = None;
                out.push(transition(TransitionKind::Cleared, raised_at, severity, "the condition ended".into()));
            }
        }
    }
    if let Some(open) = &mut inst.open {
        let every = i64::from(rule.escalate_after_min) * 60_000;
        if every > 0 && !open.acked && open.severity < Severity::Critical && now - open.escalated_at >= every {
            open.severity = open.severity.escalated();
            open.escalated_at = now;
            let why = format!("unacknowledged for {} min", (now - open.raised_at) / 60_000);
            out.push(transition(TransitionKind::Escalated, open.raised_at, open.severity, why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;
    const MIN: i64 = 60 * S;

    fn rule(toml_text: &str) -> RuleRunner {
        RuleRunner::new(Rule::from_toml(toml_text).unwrap()).unwrap()
    }

    /// Feed `(seconds, metric, value)` to machine m1 and return "t kind severity" lines,
    /// with ticks at every listed second that has no metric ("").
    fn run(r: &mut RuleRunner, input: &[(i64, &str, f64)]) -> Vec<String> {
        let mut out = Vec::new();
        for &(t, metric, value) in input {
            if metric.is_empty() {
                r.tick(t * S, &mut out);
            } else {
                r.observe(&Reading { machine: "m1", metric, unit: "Cel", ts_ms: t * S, value }, &mut out);
            }
        }
        out.iter().map(|t| format!("{} {} {}", t.at_ms / S, t.kind.as_str(), t.severity)).collect()
    }

    fn check(toml_text: &str, input: &[(i64, &str, f64)], expect: &[&str]) {
        let mut r = rule(toml_text);
        assert_eq!(run(&mut r, input), expect, "{toml_text}");
    }

    const HOT: &str = "id = \"hot\"\n[condition]\ntype = \"threshold\"\nmetric = \"temp\"\nabove = 80\nhysteresis = 5";

    #[test]
    fn threshold_with_hysteresis() {
        let t = |s, v| (s, "temp", v);
        // 79 quiet, 81 raises, 77 still inside the hysteresis band, 74 clears, 81 again.
        check(
            HOT,
            &[t(0, 79.0), t(1, 81.0), t(2, 77.0), t(3, 74.0), t(4, 81.0)],
            &["1 raised warning", "3 cleared warning", "4 raised warning"],
        );
        let below = "id = \"cold\"\n[condition]\ntype = \"threshold\"\nmetric = \"temp\"\nbelow = 10\nhysteresis = 1";
        check(below, &[t(0, 11.0), t(1, 9.0), t(2, 10.5), t(3, 11.5)], &["1 raised warning", "3 cleared warning"]);
        // At the limit is not past it.
        check(HOT, &[t(0, 80.0)], &[]);
    }

    #[test]
    fn minimum_duration_and_clear_delay() {
        let r = format!("for_ms = 60000\nclear_for_ms = 30000\n{HOT}");
        let t = |s, v| (s, "temp", v);
        // A 30 s excursion raises nothing; one that lasts a minute does, at the minute.
        check(
            &r,
            &[t(0, 90.0), t(30, 70.0), t(40, 90.0), t(70, 90.0), t(100, 90.0), t(101, 70.0), t(120, 70.0), t(131, 70.0)],
            &["100 raised warning", "131 cleared warning"],
        );
        // Ticks raise a held condition without a new reading.
        check(&r, &[t(0, 90.0), (59, "", 0.0), (60, "", 0.0)], &["60 raised warning"]);
    }

    #[test]
    fn rate_of_change() {
        let r = "id = \"r\"\n[condition]\ntype = \"rate_of_change\"\nmetric = \"temp\"\nper_minute = 5\ndirection = \"rising\"\nwindow_ms = 60000";
        let t = |s, v| (s, "temp", v);
        // +1 per 20 s = 3/min: quiet. Then +4 per 20 s = 12/min: raised once half the window shows it.
        check(
            r,
            &[t(0, 10.0), t(20, 11.0), t(40, 12.0), t(60, 13.0), t(80, 17.0), t(100, 21.0), t(160, 21.0), t(200, 21.0)],
            &["80 raised warning", "160 cleared warning"],
        );
        // Falling does not count for a rising rule; it does for either.
        check(r, &[t(0, 50.0), t(40, 30.0)], &[]);
        check(&r.replace("rising", "either"), &[t(0, 50.0), t(40, 30.0)], &["40 raised warning"]);
    }

    #[test]
    fn heartbeat_lost_for_a_machine() {
        let r = "id = \"hb\"\n[condition]\ntype = \"no_data\"\nafter_ms = 300000";
        check(
            r,
            &[(0, "temp", 1.0), (200, "", 0.0), (250, "speed", 2.0), (549, "", 0.0), (550, "", 0.0), (600, "temp", 1.0)],
            &["550 raised warning", "600 cleared warning"],
        );
        let mut rr = rule(r);
        let mut out = Vec::new();
        rr.observe(&Reading { machine: "m1", metric: "temp", unit: "", ts_ms: 0, value: 1.0 }, &mut out);
        rr.tick(10 * MIN, &mut out);
        assert_eq!(out[0].reason, "no reading from m1 for 10 min");
    }

    #[test]
    fn state_bits_and_codes() {
        let bit = "id = \"estop\"\nseverity = \"critical\"\n[condition]\ntype = \"state\"\nmetric = \"status\"\nbit = 3";
        let t = |s, v| (s, "status", v);
        check(bit, &[t(0, 0.0), t(1, 8.0), t(2, 9.0), t(3, 1.0)], &["1 raised critical", "3 cleared critical"]);
        let code = "id = \"fault\"\n[condition]\ntype = \"state\"\nmetric = \"state\"\nequals = 4";
        check(code, &[(0, "state", 1.0), (1, "state", 4.0), (2, "state", 2.0)], &["1 raised warning", "2 cleared warning"]);
    }

    #[test]
    fn combinations_and_their_reasons() {
        let all = "id = \"both\"\n[condition]\ntype = \"all\"\n[[condition.of]]\ntype = \"threshold\"\nmetric = \"temp\"\nabove = 80\n[[condition.of]]\ntype = \"threshold\"\nmetric = \"load\"\nabove = 50";
        check(
            all,
            &[(0, "temp", 90.0), (1, "load", 40.0), (2, "load", 60.0), (3, "temp", 70.0)],
            &["2 raised warning", "3 cleared warning"],
        );
        let any = all.replace("type = \"all\"", "type = \"any\"");
        check(
            &any,
            &[(0, "temp", 90.0), (1, "load", 40.0), (2, "temp", 70.0), (3, "load", 60.0), (4, "load", 10.0)],
            &["0 raised warning", "2 cleared warning", "3 raised warning", "4 cleared warning"],
        );
        let mut r = rule(all);
        let mut out = Vec::new();
        r.observe(&Reading { machine: "m1", metric: "temp", unit: "Cel", ts_ms: 0, value: 90.0 }, &mut out);
        r.observe(&Reading { machine: "m1", metric: "load", unit: "Cel", ts_ms: 1, value: 60.0 }, &mut out);
        assert_eq!(out[0].reason, "temp 90 Cel is above the limit of 80 Cel and load 60 Cel is above the limit of 50 Cel");
        assert_eq!(out[0].metric, None, "a combination runs per machine");
        let mut r = rule(&any);
        let mut out = Vec::new();
        r.observe(&Reading { machine: "m1", metric: "load", unit: "Cel", ts_ms: 1, value: 60.0 }, &mut out);
        assert_eq!(out[0].reason, "load 60 Cel is above the limit of 50 Cel", "an any names only what holds");
    }

    #[test]
    fn escalation_until_acknowledged() {
        let r = format!("escalate_after_min = 10\nauto_clear = false\n{HOT}");
        let t = |s, v| (s, "temp", v);
        check(
            &r,
            &[t(0, 90.0), (599, "", 0.0), (600, "", 0.0), (1200, "", 0.0), (1800, "", 0.0), (2400, "", 0.0), (3000, "", 0.0)],
            &["0 raised warning", "600 escalated major", "1200 escalated critical"],
        );
        let mut rr = rule(&r);
        let mut out = Vec::new();
        rr.observe(&Reading { machine: "m1", metric: "temp", unit: "", ts_ms: 0, value: 90.0 }, &mut out);
        assert!(rr.acknowledge("m1", Some("temp")));
        assert!(!rr.acknowledge("m2", Some("temp")));
        rr.tick(3600 * S, &mut out);
        assert_eq!(out.len(), 1, "an acknowledged alarm does not escalate");
        // Without auto-clear, the condition ending leaves the alarm open until an operator clears it.
        rr.observe(&Reading { machine: "m1", metric: "temp", unit: "", ts_ms: 3700 * S, value: 10.0 }, &mut out);
        assert_eq!(rr.open_alarms().len(), 1);
        let c = rr.clear("m1", Some("temp"), 3800 * S, "kim").unwrap();
        assert_eq!((c.kind, c.raised_at_ms, c.reason.as_str()), (TransitionKind::Cleared, 0, "cleared by kim"));
        assert!(rr.open_alarms().is_empty());
    }

    #[test]
    fn flapping_is_damped() {
        let r = format!("max_alarms_per_hour = 2\n{HOT}");
        let mut input = Vec::new();
        for k in 0..5 {
            input.push((k * 60, "temp", 90.0));
            input.push((k * 60 + 30, "temp", 10.0));
        }
        // The hour after the first raise admits two; the third is reported once as held back.
        input.push((3601, "temp", 90.0));
        check(
            &r,
            &input,
            &[
                "0 raised warning",
                "30 cleared warning",
                "60 raised warning",
                "90 cleared warning",
                "120 suppressed warning",
                "180 suppressed warning",
                "240 suppressed warning",
                "3601 raised warning",
            ],
        );
    }

    #[test]
    fn per_series_rules_follow_metric_globs_and_machines() {
        let r = "id = \"hot\"\nmachine = \"press-*\"\n[condition]\ntype = \"threshold\"\nmetric = \"temp.*\"\nabove = 80";
        let mut rr = rule(r);
        let mut out = Vec::new();
        for (m, metric) in [("press-1", "temp.a"), ("press-1", "temp.b"), ("press-2", "temp.a"), ("lathe-1", "temp.a"), ("press-1", "load")]
        {
            rr.observe(&Reading { machine: m, metric, unit: "", ts_ms: 0, value: 90.0 }, &mut out);
        }
        let got: Vec<(String, Option<String>)> = out.iter().map(|t| (t.machine.clone(), t.metric.clone())).collect();
        assert_eq!(
            got,
            [
                ("press-1".to_owned(), Some("temp.a".to_owned())),
                ("press-1".to_owned(), Some("temp.b".to_owned())),
                ("press-2".to_owned(), Some("temp.a".to_owned()))
            ]
        );
        assert_eq!(rr.instances(), 3);
    }

    #[test]
    fn a_restart_from_a_checkpoint_continues_exactly() {
        // Every kind of condition, the anomaly detector with a day of history included.
        let rule = "id = \"mix\"\nescalate_after_min = 30\nmax_alarms_per_hour = 3\n[condition]\ntype = \"any\"\n\
            [[condition.of]]\ntype = \"anomaly\"\nmetric = \"temp\"\n\
            [[condition.of]]\ntype = \"rate_of_change\"\nmetric = \"temp\"\nper_minute = 4\n\
            [[condition.of]]\ntype = \"state\"\nmetric = \"status\"\nbit = 2\n\
            [[condition.of]]\ntype = \"no_data\"\nafter_ms = 900000";
        let input: Vec<(i64, &str, f64)> = (0..3000)
            .flat_map(|m| {
                let temp = if (2000..2100).contains(&m) { 40.0 } else { 80.0 + (m % 17) as f64 * 0.1 };
                let status = if m % 500 < 3 { 4.0 } else { 0.0 };
                let t = m * 60;
                if (2500..2520).contains(&m) { vec![] } else { vec![(t, "temp", temp), (t, "status", status)] }
            })
            .collect();
        let mut whole = rule_runner(rule);
        let expected = run(&mut whole, &input);
        assert!(expected.len() >= 6, "the input exercises the rule: {expected:?}");
        for cut in [1, 1500, 2050, 2510, input.len() - 1] {
            let mut first = rule_runner(rule);
            let mut got = run(&mut first, &input[..cut]);
            let saved = first.checkpoint();
            let mut resumed = RuleRunner::restore(Rule::from_toml(rule).unwrap(), &saved).unwrap();
            got.extend(run(&mut resumed, &input[cut..]));
            assert_eq!(got, expected, "cut at {cut}");
        }
        let saved = whole.checkpoint();
        let v2 = Rule { version: 2, ..Rule::from_toml(rule).unwrap() };
        assert_eq!(RuleRunner::restore(v2, &saved).unwrap_err(), RestoreError::OtherRule("mix".into(), 1));
        assert!(matches!(RuleRunner::restore(Rule::from_toml(rule).unwrap(), b"{}"), Err(RestoreError::Damaged(_))));
        let other_shape = Rule::from_toml(
            &rule.replace("type = \"state\"\nmetric = \"status\"\nbit = 2", "type = \"threshold\"\nmetric = \"status\"\nabove = 2"),
        )
        .unwrap();
        assert!(matches!(RuleRunner::restore(other_shape, &saved), Err(RestoreError::Damaged(_))));
    }

    fn rule_runner(toml_text: &str) -> RuleRunner {
        rule(toml_text)
    }

    #[test]
    fn an_adopted_alarm_is_not_raised_again_and_clears() {
        let mut r = rule(HOT);
        r.adopt_open("m1", Some("temp"), 5 * S, Severity::Major, false);
        assert_eq!(r.open_alarms(), vec![("m1".to_owned(), Some("temp".to_owned()), 5 * S, Severity::Major, false)]);
        assert_eq!(run(&mut r, &[(10, "temp", 90.0), (20, "temp", 10.0)]), vec!["20 cleared major"]);
        r.adopt_open("m1", Some("temp"), 30 * S, Severity::Warning, false);
        assert!(!r.drop_open("m1", Some("temp"), 31 * S));
        assert!(r.drop_open("m1", Some("temp"), 30 * S));
        assert!(r.open_alarms().is_empty());
    }

    #[test]
    fn replaying_the_same_readings_names_the_same_alarm() {
        let input: Vec<(i64, &str, f64)> = (0..100).map(|s| (s * 10, "temp", if (s / 10) % 2 == 0 { 90.0 } else { 10.0 })).collect();
        let (mut a, mut b) = (rule(HOT), rule(HOT));
        assert_eq!(run(&mut a, &input), run(&mut b, &input));
    }
}
