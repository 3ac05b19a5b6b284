//! Machine states, shift calendars and OEE after ISO 22400-2.
//!
//! Per machine and shift:
//! - planned busy time (PBT) = the shift, less its breaks, planned stops and time the
//!   machine reports as a planned stop;
//! - actual production time (APT) = time in the `running` state within PBT;
//! - availability = APT / PBT;
//! - effectiveness = planned run time per item x produced quantity / APT;
//! - quality ratio = good quantity / produced quantity;
//! - OEE = availability x effectiveness x quality ratio.
//!
//! A line or a day is the sum of its machines' or shifts' times and quantities, never an
//! average of ratios. Down time within PBT is "unexplained" until an operator gives a
//! reason; a reason given at any instant of a down period explains the whole period.
//!
//! Invariant: every function here is pure; times are Unix ms; a shift's local times use the
//! tenant's fixed UTC offset.

use serde::{Deserialize, Serialize};

/// A machine's state at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    /// Producing.
    Running,
    /// Ready but not producing.
    Idle,
    /// Not able to produce (also: no data).
    Down,
    /// Being set up or changed over.
    Setup,
    /// Stopped on purpose (maintenance, no order): not planned busy time.
    PlannedStop,
}

impl MachineState {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineState::Running => "running",
            MachineState::Idle => "idle",
            MachineState::Down => "down",
            MachineState::Setup => "setup",
            MachineState::PlannedStop => "planned_stop",
        }
    }
}

/// A status tag value and the state it means.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateCode {
    /// The tag's value.
    pub value: f64,
    /// The state.
    pub state: MachineState,
}

fn default_no_data_ms() -> u64 {
    300_000
}

/// How a machine's state is read from one of its signals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateRule {
    /// The signal (e.g. spindle load, or a status tag).
    pub metric: String,
    /// Running when the signal is above this value, idle otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_above: Option<f64>,
    /// Status codes; a value not listed is idle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<StateCode>,
    /// No reading for this long means down.
    #[serde(default = "default_no_data_ms")]
    pub no_data_ms: u64,
}

impl StateRule {
    /// Every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errs = Vec::new();
        if self.metric.is_empty() || self.metric.len() > 128 {
            errs.push("metric must be 1 to 128 bytes".to_owned());
        }
        match (self.running_above, self.codes.is_empty()) {
            (Some(v), true) if !v.is_finite() => errs.push("running_above must be a finite number".into()),
            (Some(_), true) | (None, false) => {}
            _ => errs.push("a state rule needs exactly one of running_above or codes".into()),
        }
        if self.codes.iter().any(|c| !c.value.is_finite()) {
            errs.push("state codes must be finite numbers".into());
        }
        if !(1_000..=86_400_000).contains(&self.no_data_ms) {
            errs.push("no_data_ms must be 1 s to 1 day".into());
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// The state a value means.
    pub fn state_of(&self, value: f64) -> MachineState {
        if let Some(th) = self.running_above {
            return if value > th { MachineState::Running } else { MachineState::Idle };
        }
        self.codes.iter().find(|c| (c.value - value).abs() < 1e-9).map_or(MachineState::Idle, |c| c.state)
    }
}

/// A period in one state, `[start_ms, end_ms)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Span {
    /// Start, inclusive.
    pub start_ms: i64,
    /// End, exclusive.
    pub end_ms: i64,
    /// The state.
    pub state: MachineState,
}

/// The state timeline over `[from, to)` from the signal's readings (in time order; pass
/// the readings from `from - no_data_ms` on, so the state at `from` is known). A reading
/// holds its state until the next reading or for `no_data_ms`, whichever comes first;
/// time without data is down.
pub fn timeline(rule: &StateRule, points: &[(i64, f64)], from: i64, to: i64) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let mut push = |start: i64, end: i64, state: MachineState| {
        let (s, e) = (start.max(from), end.min(to));
        if s >= e {
            return;
        }
        match spans.last_mut() {
            Some(last) if last.state == state && last.end_ms == s => last.end_ms = e,
            _ => spans.push(Span { start_ms: s, end_ms: e, state }),
        }
    };
    let mut cursor = from;
    for (i, &(ts, v)) in points.iter().enumerate() {
        if ts >= to {
            break;
        }
        if ts > cursor {
            push(cursor, ts, MachineState::Down);
        }
        let next = points.get(i + 1).map_or(i64::MAX, |p| p.0);
        let held = next.min(ts.saturating_add(rule.no_data_ms as i64));
        push(ts.max(cursor), held, rule.state_of(v));
        cursor = cursor.max(held);
    }
    push(cursor, to, MachineState::Down);
    spans
}

/// A shift of the calendar, in the tenant's local time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftDef {
    /// Name ("early", "night").
    pub name: String,
    /// Local start "HH:MM".
    pub start: String,
    /// Local end "HH:MM"; at or before the start: the next day.
    pub end: String,
    /// Breaks, local "HH:MM" pairs within the shift.
    #[serde(default)]
    pub breaks: Vec<(String, String)>,
    /// Weekdays the shift runs (1 = Monday ... 7 = Sunday); empty: every day.
    #[serde(default)]
    pub days: Vec<u8>,
}

/// A planned stop: not planned busy time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedStop {
    /// Start, Unix ms.
    pub from_ms: i64,
    /// End, Unix ms.
    pub to_ms: i64,
    /// Why.
    pub reason: String,
    /// The machine; none: every machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
}

/// A tenant's shift calendar.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    /// The plant's offset from UTC in minutes (Korea: 540).
    pub utc_offset_min: i32,
    /// The shifts.
    pub shifts: Vec<ShiftDef>,
    /// Local dates ("YYYY-MM-DD") without shifts.
    #[serde(default)]
    pub holidays: Vec<String>,
    /// Planned stops.
    #[serde(default)]
    pub planned_stops: Vec<PlannedStop>,
}

/// One occurrence of a shift.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShiftInstance {
    /// The shift's name.
    pub name: String,
    /// The local date it starts on.
    pub date: String,
    /// Start, Unix ms.
    pub start_ms: i64,
    /// End, Unix ms.
    pub end_ms: i64,
    /// Breaks, Unix ms.
    pub breaks: Vec<(i64, i64)>,
}

fn hhmm(s: &str) -> Option<i64> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some((h * 60 + m) * 60_000)
}

const DAY_MS: i64 = 86_400_000;

fn local_date(days: i64) -> Option<String> {
    let d = time::Date::from_julian_day(i32::try_from(days + 2_440_588).ok()?).ok()?;
    Some(format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()))
}

impl Calendar {
    /// Every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errs = Vec::new();
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_min) {
            errs.push("utc_offset_min must be -840 to 840".to_owned());
        }
        if self.shifts.is_empty() || self.shifts.len() > 12 {
            errs.push("a calendar needs 1 to 12 shifts".into());
        }
        for s in &self.shifts {
            let (Some(a), Some(b)) = (hhmm(&s.start), hhmm(&s.end)) else {
                errs.push(format!("shift {:?}: start and end must be HH:MM", s.name));
                continue;
            };
            let len = if b > a { b - a } else { b + DAY_MS - a };
            for (bs, be) in &s.breaks {
                match (hhmm(bs), hhmm(be)) {
                    (Some(x), Some(y)) => {
                        let (x, y) = ((x - a).rem_euclid(DAY_MS), (y - a).rem_euclid(DAY_MS));
                        if y <= x || y > len {
                            errs.push(format!("shift {:?}: break {bs}-{be} is not within the shift", s.name));
                        }
                    }
                    _ => errs.push(format!("shift {:?}: breaks must be HH:MM", s.name)),
                }
            }
            if s.days.iter().any(|d| !(1..=7).contains(d)) {
                errs.push(format!("shift {:?}: days are 1 (Monday) to 7 (Sunday)", s.name));
            }
        }
        for h in &self.holidays {
            if crate::backtest::parse_timestamp(h).is_none() || h.len() != 10 {
                errs.push(format!("holiday {h:?} must be YYYY-MM-DD"));
            }
        }
        for p in &self.planned_stops {
            if p.to_ms <= p.from_ms {
                errs.push(format!("planned stop {:?} ends before it starts", p.reason));
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// The shifts that start within `[from, to)`, in time order.
    pub fn shifts_between(&self, from: i64, to: i64) -> Vec<ShiftInstance> {
        let off = i64::from(self.utc_offset_min) * 60_000;
        let mut out = Vec::new();
        let (first, last) = ((from + off).div_euclid(DAY_MS) - 1, (to + off).div_euclid(DAY_MS));
        for day in first..=last {
            let Some(date) = local_date(day) else { continue };
            if self.holidays.contains(&date) {
                continue;
            }
            let weekday = (day + 3).rem_euclid(7) + 1; // 1970-01-01 was a Thursday (4)
            for s in &self.shifts {
                let (Some(a), Some(b)) = (hhmm(&s.start), hhmm(&s.end)) else { continue };
                if !s.days.is_empty() && !s.days.contains(&(weekday as u8)) {
                    continue;
                }
                let start = day * DAY_MS + a - off;
                let end = start + if b > a { b - a } else { b + DAY_MS - a };
                if start < from || start >= to {
                    continue;
                }
                let breaks = s
                    .breaks
                    .iter()
                    .filter_map(|(x, y)| {
                        let (x, y) = (hhmm(x)?, hhmm(y)?);
                        Some((start + (x - a).rem_euclid(DAY_MS), start + (y - a).rem_euclid(DAY_MS)))
                    })
                    .collect();
                out.push(ShiftInstance { name: s.name.clone(), date: date.clone(), start_ms: start, end_ms: end, breaks });
            }
        }
        out.sort_by_key(|s| s.start_ms);
        out
    }

    /// Planned stops that apply to `machine`.
    pub fn stops_of(&self, machine: &str) -> Vec<(i64, i64)> {
        self.planned_stops.iter().filter(|p| p.machine.as_deref().is_none_or(|m| m == machine)).map(|p| (p.from_ms, p.to_ms)).collect()
    }
}

/// `[start, end)` less every interval of `cut`.
fn subtract(intervals: Vec<(i64, i64)>, cut: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = intervals;
    for &(cs, ce) in cut {
        out = out
            .into_iter()
            .flat_map(|(s, e)| {
                if ce <= s || cs >= e {
                    vec![(s, e)]
                } else {
                    [(s, cs.max(s)), (ce.min(e), e)].into_iter().filter(|(a, b)| a < b).collect()
                }
            })
            .collect();
    }
    out
}

fn overlap(a: (i64, i64), set: &[(i64, i64)]) -> i64 {
    set.iter().map(|&(s, e)| (e.min(a.1) - s.max(a.0)).max(0)).sum()
}

/// A down period within planned busy time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Downtime {
    /// Start, Unix ms.
    pub start_ms: i64,
    /// End, Unix ms.
    pub end_ms: i64,
    /// Down or setup.
    pub state: MachineState,
    /// The reason code an operator gave; `None`: unexplained.
    pub reason: Option<String>,
}

/// The OEE of one machine in one period (or the sum of several).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Oee {
    /// Planned busy time, ms.
    pub planned_busy_ms: i64,
    /// Actual production time, ms.
    pub actual_production_ms: i64,
    /// Produced quantity.
    pub produced: f64,
    /// Good quantity.
    pub good: f64,
    /// Planned run time per item x produced quantity, ms.
    pub planned_run_ms: f64,
    /// Actual production time of machines that count what they make (the denominator of
    /// effectiveness: a machine without counters has no effectiveness, and does not
    /// dilute its line's).
    pub counting_production_ms: i64,
    /// Down periods within planned busy time.
    pub downtime: Vec<Downtime>,
}

impl Oee {
    /// APT / PBT.
    pub fn availability(&self) -> Option<f64> {
        (self.planned_busy_ms > 0).then(|| self.actual_production_ms as f64 / self.planned_busy_ms as f64)
    }

    /// Planned run time x produced / APT.
    pub fn effectiveness(&self) -> Option<f64> {
        (self.counting_production_ms > 0).then(|| self.planned_run_ms / self.counting_production_ms as f64)
    }

    /// Good / produced.
    pub fn quality(&self) -> Option<f64> {
        (self.produced > 0.0).then(|| self.good / self.produced)
    }

    /// The product of the three; `None` when a factor is undefined.
    /// (Running without producing anything is 0, though quality is undefined then.)
    pub fn oee(&self) -> Option<f64> {
        let (a, e) = (self.availability()?, self.effectiveness()?);
        if e == 0.0 {
            return Some(0.0);
        }
        Some(a * e * self.quality()?)
    }

    /// The sum over machines or periods (a line, a day).
    pub fn sum<'a>(items: impl IntoIterator<Item = &'a Oee>) -> Oee {
        let mut t = Oee::default();
        for o in items {
            t.planned_busy_ms += o.planned_busy_ms;
            t.actual_production_ms += o.actual_production_ms;
            t.produced += o.produced;
            t.good += o.good;
            t.planned_run_ms += o.planned_run_ms;
            t.counting_production_ms += o.counting_production_ms;
            t.downtime.extend(o.downtime.iter().cloned());
        }
        t
    }
}

/// What one machine did in one shift.
#[derive(Clone, Debug)]
pub struct ShiftRecord<'a> {
    /// The shift.
    pub shift: &'a ShiftInstance,
    /// The machine's state timeline covering the shift.
    pub states: &'a [Span],
    /// Planned stops of the machine.
    pub planned_stops: &'a [(i64, i64)],
    /// Produced quantity in the shift.
    pub produced: f64,
    /// Good quantity in the shift.
    pub good: f64,
    /// Planned run time per item, ms.
    pub planned_ms_per_item: f64,
    /// Reasons operators gave: (an instant within the down period, reason code).
    pub reasons: &'a [(i64, String)],
}

/// OEE of one machine in one shift.
pub fn shift_oee(r: &ShiftRecord<'_>) -> Oee {
    let mut cut: Vec<(i64, i64)> = r.shift.breaks.clone();
    cut.extend_from_slice(r.planned_stops);
    cut.extend(r.states.iter().filter(|s| s.state == MachineState::PlannedStop).map(|s| (s.start_ms, s.end_ms)));
    let busy = subtract(vec![(r.shift.start_ms, r.shift.end_ms)], &cut);
    let planned_busy_ms = busy.iter().map(|(s, e)| e - s).sum();
    let mut actual = 0;
    let mut downtime = Vec::new();
    for span in r.states {
        match span.state {
            MachineState::Running => actual += overlap((span.start_ms, span.end_ms), &busy),
            MachineState::Down | MachineState::Setup => {
                for (s, e) in subtract(vec![(span.start_ms, span.end_ms)], &cut) {
                    let (s, e) = (s.max(r.shift.start_ms), e.min(r.shift.end_ms));
                    if s < e {
                        let reason = r.reasons.iter().find(|(t, _)| (span.start_ms..span.end_ms).contains(t)).map(|(_, why)| why.clone());
                        downtime.push(Downtime { start_ms: s, end_ms: e, state: span.state, reason });
                    }
                }
            }
            MachineState::Idle | MachineState::PlannedStop => {}
        }
    }
    Oee {
        planned_busy_ms,
        actual_production_ms: actual,
        produced: r.produced,
        good: r.good,
        planned_run_ms: r.planned_ms_per_item * r.produced,
        counting_production_ms: actual,
        downtime,
    }
}

/// Increase of a counter over `[from, to)`: readings in time order, the last one before
/// `from` included as the start value. A counter that goes down was reset: its new value
/// is what it counted since.
pub fn counter_delta(points: &[(i64, f64)], from: i64, to: i64) -> f64 {
    let start = points.partition_point(|p| p.0 < from);
    let mut prev = start.checked_sub(1).map(|i| points[i].1);
    let mut total = 0.0;
    for &(ts, v) in &points[start..] {
        if ts >= to {
            break;
        }
        total += match prev {
            Some(p) if v >= p => v - p,
            Some(_) => v,
            None => 0.0,
        };
        prev = Some(v);
    }
    total
}

/// Down time by reason, longest first; "unexplained" for periods without one.
pub fn pareto(downtime: &[Downtime]) -> Vec<(String, i64, usize)> {
    let mut by: Vec<(String, i64, usize)> = Vec::new();
    for d in downtime {
        let key = d.reason.clone().unwrap_or_else(|| "unexplained".to_owned());
        match by.iter_mut().find(|(k, _, _)| *k == key) {
            Some(e) => {
                e.1 += d.end_ms - d.start_ms;
                e.2 += 1;
            }
            None => by.push((key, d.end_ms - d.start_ms, 1)),
        }
    }
    by.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    by
}

/// The kind of a downtime reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonKind {
    /// Planned (maintenance, no orders).
    Planned,
    /// Unplanned (breakdown, material missing).
    Unplanned,
    /// Changeover and setup.
    Changeover,
}

/// A downtime reason in a tenant's tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Stable code.
    pub code: String,
    /// What operators read (Korean or English).
    pub label: String,
    /// Parent code; none: a top-level reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Planned, unplanned or changeover.
    pub kind: ReasonKind,
}

/// Check a reason tree: unique codes, existing parents, no cycles, at most 4 levels and
/// 500 reasons.
pub fn validate_reasons(reasons: &[Reason]) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    if reasons.len() > 500 {
        errs.push("at most 500 reasons".to_owned());
    }
    let find = |code: &str| reasons.iter().find(|r| r.code == code);
    for (i, r) in reasons.iter().enumerate() {
        if r.code.is_empty() || r.code.len() > 64 {
            errs.push(format!("reason code {:?} must be 1 to 64 bytes", r.code));
        }
        if r.label.trim().is_empty() || r.label.chars().count() > 200 {
            errs.push(format!("reason {:?} needs a label of 1 to 200 characters", r.code));
        }
        if reasons[..i].iter().any(|o| o.code == r.code) {
            errs.push(format!("reason code {:?} is used twice", r.code));
        }
        let mut depth = 1;
        let mut at = r;
        while let Some(p) = &at.parent {
            match find(p) {
                Some(parent) if depth < 4 => {
                    depth += 1;
                    at = parent;
                }
                Some(_) => {
                    errs.push(format!("reason {:?} is deeper than 4 levels (or in a cycle)", r.code));
                    break;
                }
                None => {
                    errs.push(format!("reason {:?} has an unknown parent {p:?}", r.code));
                    break;
                }
            }
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// How one machine's OEE is measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSetup {
    /// The machine.
    pub machine: String,
    /// Its line (machines of one line are summed); empty: none.
    #[serde(default)]
    pub line: String,
    /// How its state is read.
    pub state: StateRule,
    /// Counter metric of produced items; none: nothing counted (no effectiveness or quality).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produced_metric: Option<String>,
    /// Counter metric of good items; none: every produced item is good (or see `scrap_metric`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub good_metric: Option<String>,
    /// Counter metric of scrapped items (good = produced - scrap), instead of `good_metric`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrap_metric: Option<String>,
    /// Planned run time per item, ms (of products not listed in `products`).
    #[serde(default)]
    pub planned_ms_per_item: f64,
    /// The metric carrying the code (a number) of the product being made; with `products`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_metric: Option<String>,
    /// Planned run time per item of each product.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<Product>,
}

/// A product a machine makes, and how long one item is planned to take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Its code, as the product metric reports it.
    pub code: f64,
    /// What operators read.
    #[serde(default)]
    pub name: String,
    /// Planned run time per item, ms.
    pub planned_ms_per_item: f64,
}

/// Planned run time of what a counter counted over `[from, to)` (readings in time order,
/// the last one before `from` included as the start value, as [`counter_delta`]): each
/// increase at the planned time of the product the product signal named then (its
/// last reading at or before), or `default_ms` for a code not listed or before any.
pub fn planned_run_ms(counter: &[(i64, f64)], product: &[(i64, f64)], products: &[Product], default_ms: f64, from: i64, to: i64) -> f64 {
    let start = counter.partition_point(|p| p.0 < from);
    let mut prev = start.checked_sub(1).map(|i| counter[i].1);
    let mut total = 0.0;
    for &(ts, v) in &counter[start..] {
        if ts >= to {
            break;
        }
        let made = match prev {
            Some(p) if v >= p => v - p,
            Some(_) => v,
            None => 0.0,
        };
        prev = Some(v);
        if made == 0.0 {
            continue;
        }
        let at = product.partition_point(|p| p.0 <= ts);
        let per_item = at
            .checked_sub(1)
            .and_then(|i| products.iter().find(|x| (x.code - product[i].1).abs() < 1e-9))
            .map_or(default_ms, |x| x.planned_ms_per_item);
        total += made * per_item;
    }
    total
}

/// A tenant's OEE setup: its calendar, downtime reasons and machines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OeeSetup {
    /// Shifts, breaks, holidays, planned stops.
    pub calendar: Calendar,
    /// The downtime reason tree operators pick from.
    #[serde(default)]
    pub reasons: Vec<Reason>,
    /// The machines measured.
    #[serde(default)]
    pub machines: Vec<MachineSetup>,
}

impl OeeSetup {
    /// Every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errs = Vec::new();
        if let Err(e) = self.calendar.validate() {
            errs.extend(e.into_iter().map(|e| format!("calendar: {e}")));
        }
        if let Err(e) = validate_reasons(&self.reasons) {
            errs.extend(e.into_iter().map(|e| format!("reasons: {e}")));
        }
        if self.calendar.planned_stops.len() > 1000 {
            errs.push("calendar: at most 1000 planned stops".into());
        }
        if self.calendar.holidays.len() > 1000 {
            errs.push("calendar: at most 1000 holidays".into());
        }
        if self.machines.len() > 500 {
            errs.push("at most 500 machines".into());
        }
        let name_ok = |s: &str| !s.is_empty() && s.len() <= 128;
        for (i, m) in self.machines.iter().enumerate() {
            let at = format!("machines[{i}] ({:?})", m.machine);
            if !name_ok(&m.machine) {
                errs.push(format!("{at}: machine must be 1 to 128 bytes"));
            }
            if self.machines[..i].iter().any(|o| o.machine == m.machine) {
                errs.push(format!("{at}: listed twice"));
            }
            if m.line.len() > 128 {
                errs.push(format!("{at}: line must be at most 128 bytes"));
            }
            if let Err(e) = m.state.validate() {
                errs.extend(e.into_iter().map(|e| format!("{at}: state: {e}")));
            }
            for (what, metric) in
                [("produced_metric", &m.produced_metric), ("good_metric", &m.good_metric), ("scrap_metric", &m.scrap_metric)]
            {
                if metric.as_deref().is_some_and(|x| !name_ok(x)) {
                    errs.push(format!("{at}: {what} must be 1 to 128 bytes"));
                }
            }
            if m.good_metric.is_some() && m.scrap_metric.is_some() {
                errs.push(format!("{at}: give good_metric or scrap_metric, not both"));
            }
            if !(m.planned_ms_per_item.is_finite() && (0.0..=86_400_000.0).contains(&m.planned_ms_per_item)) {
                errs.push(format!("{at}: planned_ms_per_item must be 0 to 86400000"));
            }
            if m.produced_metric.is_some() && m.planned_ms_per_item <= 0.0 && m.products.is_empty() {
                errs.push(format!("{at}: a machine that counts items needs planned_ms_per_item or products"));
            }
            if m.product_metric.is_some() == m.products.is_empty() {
                errs.push(format!("{at}: product_metric and products go together"));
            }
            if m.product_metric.as_deref().is_some_and(|x| !name_ok(x)) {
                errs.push(format!("{at}: product_metric must be 1 to 128 bytes"));
            }
            if m.products.len() > 200 {
                errs.push(format!("{at}: at most 200 products"));
            }
            for (k, p) in m.products.iter().enumerate() {
                if !p.code.is_finite() || m.products[..k].iter().any(|o| o.code == p.code) {
                    errs.push(format!("{at}: product codes must be distinct finite numbers"));
                }
                if !(p.planned_ms_per_item.is_finite() && p.planned_ms_per_item > 0.0 && p.planned_ms_per_item <= 86_400_000.0) {
                    errs.push(format!("{at}: product {}: planned_ms_per_item must be above 0, at most 86400000", p.code));
                }
                if p.name.chars().count() > 200 {
                    errs.push(format!("{at}: product {}: a name of at most 200 characters", p.code));
                }
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// The metrics one machine's OEE reads: state, then the counters it has.
    pub fn metrics_of(m: &MachineSetup) -> Vec<&str> {
        let mut out = vec![m.state.metric.as_str()];
        out.extend([&m.produced_metric, &m.good_metric, &m.scrap_metric, &m.product_metric].into_iter().filter_map(|x| x.as_deref()));
        out
    }
}

/// What one machine reported in a window (readings in time order, from a little before it).
#[derive(Clone, Debug, Default)]
pub struct MachineData {
    /// The state signal.
    pub state: Vec<(i64, f64)>,
    /// The produced counter.
    pub produced: Vec<(i64, f64)>,
    /// The good counter.
    pub good: Vec<(i64, f64)>,
    /// The scrap counter.
    pub scrap: Vec<(i64, f64)>,
    /// The product code signal.
    pub product: Vec<(i64, f64)>,
    /// Reasons operators gave: (an instant within a down period, reason code).
    pub reasons: Vec<(i64, String)>,
}

/// Times, quantities and the four ratios of one row of a report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Planned busy time, ms.
    pub planned_busy_ms: i64,
    /// Actual production time, ms.
    pub actual_production_ms: i64,
    /// Produced quantity.
    pub produced: f64,
    /// Good quantity.
    pub good: f64,
    /// Planned run time of what was produced, ms.
    pub planned_run_ms: f64,
    /// APT / PBT.
    pub availability: Option<f64>,
    /// Planned run time / APT.
    pub effectiveness: Option<f64>,
    /// Good / produced.
    pub quality: Option<f64>,
    /// The product of the three.
    pub oee: Option<f64>,
}

impl From<&Oee> for Figures {
    fn from(o: &Oee) -> Self {
        Self {
            planned_busy_ms: o.planned_busy_ms,
            actual_production_ms: o.actual_production_ms,
            produced: o.produced,
            good: o.good,
            planned_run_ms: o.planned_run_ms,
            availability: o.availability(),
            effectiveness: o.effectiveness(),
            quality: o.quality(),
            oee: o.oee(),
        }
    }
}

/// One machine in one shift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShiftRow {
    /// The machine.
    pub machine: String,
    /// Its line.
    pub line: String,
    /// The shift's name.
    pub shift: String,
    /// The local date the shift starts on.
    pub date: String,
    /// Shift start, Unix ms.
    pub start_ms: i64,
    /// Shift end, Unix ms.
    pub end_ms: i64,
    /// The figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// A total (a machine, a line, everything) over the report's shifts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Total {
    /// The machine or line; empty: everything.
    pub name: String,
    /// The figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// A period in one state of one machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateSpan {
    /// The machine.
    pub machine: String,
    /// Start, Unix ms.
    pub start_ms: i64,
    /// End, Unix ms.
    pub end_ms: i64,
    /// running, idle, down, setup, planned_stop.
    pub state: String,
}

/// A down (or setup) period within planned busy time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DowntimeRow {
    /// The machine.
    pub machine: String,
    /// Start, Unix ms.
    pub start_ms: i64,
    /// End, Unix ms.
    pub end_ms: i64,
    /// down or setup.
    pub state: String,
    /// The reason code; none: unexplained.
    pub reason: Option<String>,
}

/// Down time of one reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParetoRow {
    /// The reason code, or "unexplained".
    pub reason: String,
    /// Down time, ms.
    pub ms: i64,
    /// Periods.
    pub count: usize,
}

/// OEE of machines over the shifts that start in a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Window start, Unix ms.
    pub start_ms: i64,
    /// Window end, Unix ms.
    pub end_ms: i64,
    /// Per machine and shift.
    pub rows: Vec<ShiftRow>,
    /// Per machine.
    pub machines: Vec<Total>,
    /// Per line.
    pub lines: Vec<Total>,
    /// Everything.
    pub total: Option<Total>,
    /// State timelines over the shifts' span.
    pub timeline: Vec<StateSpan>,
    /// Down periods within planned busy time.
    pub downtime: Vec<DowntimeRow>,
    /// Down time by reason, longest first.
    pub pareto: Vec<ParetoRow>,
    /// Not everything was read (too many machines or readings): the figures are of what was.
    #[serde(default)]
    pub truncated: bool,
}

/// The OEE report of `machines` (with their data, in the same order) over the shifts of
/// `calendar` that start in `[from, to)`; shifts still running count up to `now`.
pub fn report(calendar: &Calendar, machines: &[(&MachineSetup, &MachineData)], from: i64, to: i64, now: i64) -> Report {
    let shifts: Vec<ShiftInstance> = calendar
        .shifts_between(from, to)
        .into_iter()
        .filter(|s| s.start_ms < now)
        .map(|mut s| {
            s.end_ms = s.end_ms.min(now);
            s.breaks.retain(|b| b.0 < now);
            s
        })
        .collect();
    let mut out = Report { start_ms: from, end_ms: to, ..Default::default() };
    let (Some(span_from), Some(span_to)) = (shifts.iter().map(|s| s.start_ms).min(), shifts.iter().map(|s| s.end_ms).max()) else {
        return out;
    };
    let mut all = Vec::new();
    let mut by_line: Vec<(String, Vec<Oee>)> = Vec::new();
    for (setup, data) in machines {
        // From the first reading before the window on, so a stop that began earlier keeps
        // its whole extent (a reason given for it on an earlier day still explains it).
        let states = timeline(&setup.state, &data.state, data.state.first().map_or(span_from, |p| p.0.min(span_from)), span_to);
        out.timeline.extend(states.iter().filter(|s| s.end_ms > span_from).map(|s| StateSpan {
            machine: setup.machine.clone(),
            start_ms: s.start_ms.max(span_from),
            end_ms: s.end_ms,
            state: s.state.as_str().into(),
        }));
        let stops = calendar.stops_of(&setup.machine);
        let mut mine = Vec::new();
        for shift in &shifts {
            let produced = counter_delta(&data.produced, shift.start_ms, shift.end_ms);
            let good = match (&setup.good_metric, &setup.scrap_metric) {
                (Some(_), _) => counter_delta(&data.good, shift.start_ms, shift.end_ms).min(produced),
                (None, Some(_)) => (produced - counter_delta(&data.scrap, shift.start_ms, shift.end_ms)).max(0.0),
                (None, None) => produced,
            };
            // The mean planned time per item of what was made (per product when known).
            let per_item = if produced > 0.0 && !setup.products.is_empty() {
                planned_run_ms(&data.produced, &data.product, &setup.products, setup.planned_ms_per_item, shift.start_ms, shift.end_ms)
                    / produced
            } else {
                setup.planned_ms_per_item
            };
            let mut o = shift_oee(&ShiftRecord {
                shift,
                states: &states,
                planned_stops: &stops,
                produced,
                good,
                planned_ms_per_item: per_item,
                reasons: &data.reasons,
            });
            if setup.produced_metric.is_none() {
                o.counting_production_ms = 0;
            }
            out.downtime.extend(o.downtime.iter().map(|d| DowntimeRow {
                machine: setup.machine.clone(),
                start_ms: d.start_ms,
                end_ms: d.end_ms,
                state: d.state.as_str().into(),
                reason: d.reason.clone(),
            }));
            out.rows.push(ShiftRow {
                machine: setup.machine.clone(),
                line: setup.line.clone(),
                shift: shift.name.clone(),
                date: shift.date.clone(),
                start_ms: shift.start_ms,
                end_ms: shift.end_ms,
                figures: (&o).into(),
            });
            mine.push(o);
        }
        let machine_total = Oee::sum(&mine);
        out.machines.push(Total { name: setup.machine.clone(), figures: (&machine_total).into() });
        if !setup.line.is_empty() {
            match by_line.iter_mut().find(|(l, _)| *l == setup.line) {
                Some((_, v)) => v.push(machine_total.clone()),
                None => by_line.push((setup.line.clone(), vec![machine_total.clone()])),
            }
        }
        all.push(machine_total);
    }
    out.lines = by_line.iter().map(|(l, v)| Total { name: l.clone(), figures: (&Oee::sum(v)).into() }).collect();
    let everything = Oee::sum(&all);
    out.pareto = pareto(&everything.downtime).into_iter().map(|(reason, ms, count)| ParetoRow { reason, ms, count }).collect();
    out.total = Some(Total { name: String::new(), figures: (&everything).into() });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const M: i64 = 60_000;
    /// 2026-12-01T00:00 in Korea (UTC+9), a Tuesday.
    const DAY0: i64 = 1_796_050_800_000;

    fn cal() -> Calendar {
        toml::from_str(
            r#"
            utc_offset_min = 540
            holidays = ["2026-12-03"]
            [[shifts]]
            name = "day"
            start = "08:00"
            end = "16:00"
            breaks = [["12:00", "12:30"]]
            [[shifts]]
            name = "night"
            start = "22:00"
            end = "06:00"
            breaks = [["02:00", "02:30"]]
            "#,
        )
        .unwrap()
    }

    fn spans(list: &[(i64, i64, MachineState)]) -> Vec<Span> {
        list.iter().map(|&(s, e, state)| Span { start_ms: s, end_ms: e, state }).collect()
    }

    #[test]
    fn shifts_follow_the_local_clock_across_midnight_and_skip_holidays() {
        let c = cal();
        c.validate().unwrap();
        let s = c.shifts_between(DAY0, DAY0 + 3 * 24 * H);
        let got: Vec<(String, String, i64, i64)> =
            s.iter().map(|s| (s.name.clone(), s.date.clone(), (s.start_ms - DAY0) / H, (s.end_ms - DAY0) / H)).collect();
        assert_eq!(
            got,
            vec![
                ("day".into(), "2026-12-01".into(), 8, 16),
                ("night".into(), "2026-12-01".into(), 22, 30),
                ("day".into(), "2026-12-02".into(), 32, 40),
                ("night".into(), "2026-12-02".into(), 46, 54),
            ]
        );
        assert_eq!(s[1].breaks, vec![(DAY0 + 26 * H, DAY0 + 26 * H + 30 * M)], "the night break is after midnight");
        let weekdays: Calendar =
            toml::from_str("utc_offset_min = 540\n[[shifts]]\nname = \"d\"\nstart = \"08:00\"\nend = \"16:00\"\ndays = [1,2,3,4,5]")
                .unwrap();
        // 2026-12-05 and 06 are Saturday and Sunday.
        assert_eq!(weekdays.shifts_between(DAY0, DAY0 + 7 * 24 * H).len(), 5);
    }

    #[test]
    fn calendars_refuse_nonsense() {
        let mut c = cal();
        c.shifts[0].breaks.push(("17:00".into(), "18:00".into()));
        c.shifts[1].start = "25:00".into();
        c.holidays.push("Christmas".into());
        c.utc_offset_min = 2000;
        assert_eq!(c.validate().unwrap_err().len(), 4);
    }

    #[test]
    fn a_day_shift_by_hand() {
        // 08:00-16:00 with a 30 min break: PBT 7.5 h. Running 08:00-10:00, down 10:00-11:00
        // (unexplained), running 11:00-16:00: APT = 2 + 1 + 3.5 (break excluded) = 6.5 h.
        // 700 produced at 30 s each = 5.83 h of planned run time; 680 good.
        let c = cal();
        let shift = &c.shifts_between(DAY0, DAY0 + 24 * H)[0];
        let st = spans(&[
            (DAY0 + 8 * H, DAY0 + 10 * H, MachineState::Running),
            (DAY0 + 10 * H, DAY0 + 11 * H, MachineState::Down),
            (DAY0 + 11 * H, DAY0 + 16 * H, MachineState::Running),
        ]);
        let rec = ShiftRecord {
            shift,
            states: &st,
            planned_stops: &[],
            produced: 700.0,
            good: 680.0,
            planned_ms_per_item: 30_000.0,
            reasons: &[],
        };
        let o = shift_oee(&rec);
        assert_eq!(o.planned_busy_ms, 7 * H + 30 * M);
        assert_eq!(o.actual_production_ms, 6 * H + 30 * M);
        close(o.availability().unwrap(), 6.5 / 7.5);
        close(o.effectiveness().unwrap(), 700.0 * 30.0 / (6.5 * 3600.0));
        close(o.quality().unwrap(), 680.0 / 700.0);
        close(o.oee().unwrap(), (6.5 / 7.5) * (700.0 * 30.0 / (6.5 * 3600.0)) * (680.0 / 700.0));
        assert_eq!(o.downtime, vec![Downtime { start_ms: DAY0 + 10 * H, end_ms: DAY0 + 11 * H, state: MachineState::Down, reason: None }]);
        assert_eq!(pareto(&o.downtime), vec![("unexplained".to_owned(), H, 1)]);
        // Later an operator picks a reason at any instant of the stop: the whole hour is explained.
        let reasons = [(DAY0 + 10 * H + 20 * M, "tool_break".to_owned())];
        let o = shift_oee(&ShiftRecord { reasons: &reasons, ..rec });
        assert_eq!(o.downtime[0].reason.as_deref(), Some("tool_break"));
        assert_eq!(pareto(&o.downtime), vec![("tool_break".to_owned(), H, 1)]);
    }

    #[test]
    fn a_night_shift_across_midnight_with_a_planned_stop() {
        // 22:00-06:00 with a 02:00-02:30 break and a planned stop 04:00-05:00: PBT 6.5 h.
        // Running the whole night except down 23:00-23:45 and setup 05:30-06:00:
        // APT = 8 h - 0.5 break - 1 planned - 0.75 down - 0.5 setup = 5.25 h.
        let c = cal();
        let shift = &c.shifts_between(DAY0, DAY0 + 24 * H)[1];
        let n = DAY0 + 22 * H;
        let st = spans(&[
            (n, n + H, MachineState::Running),
            (n + H, n + H + 45 * M, MachineState::Down),
            (n + H + 45 * M, n + 7 * H + 30 * M, MachineState::Running),
            (n + 7 * H + 30 * M, n + 8 * H, MachineState::Setup),
        ]);
        let stops = [(n + 6 * H, n + 7 * H)];
        let o = shift_oee(&ShiftRecord {
            shift,
            states: &st,
            planned_stops: &stops,
            produced: 600.0,
            good: 600.0,
            planned_ms_per_item: 30_000.0,
            reasons: &[],
        });
        assert_eq!(o.planned_busy_ms, 6 * H + 30 * M);
        assert_eq!(o.actual_production_ms, 5 * H + 15 * M);
        close(o.availability().unwrap(), 5.25 / 6.5);
        close(o.effectiveness().unwrap(), 600.0 * 30.0 / (5.25 * 3600.0));
        close(o.quality().unwrap(), 1.0);
        assert_eq!(o.downtime.len(), 2);
        assert_eq!(o.downtime[1].state, MachineState::Setup);
        // The line of two such machines is the sum, not the mean of ratios.
        let idle = shift_oee(&ShiftRecord {
            shift,
            states: &[],
            planned_stops: &stops,
            produced: 0.0,
            good: 0.0,
            planned_ms_per_item: 30_000.0,
            reasons: &[],
        });
        let line = Oee::sum([&o, &idle]);
        close(line.availability().unwrap(), 5.25 / 13.0);
        assert_eq!(idle.oee(), None, "no production time: effectiveness is undefined");
    }

    #[test]
    fn states_come_from_signals_and_silence_is_down() {
        let load = StateRule { metric: "spindle_load".into(), running_above: Some(20.0), codes: vec![], no_data_ms: 5 * M as u64 };
        load.validate().unwrap();
        let pts = [(0, 50.0), (M, 50.0), (2 * M, 5.0), (3 * M, 60.0), (20 * M, 60.0)];
        let t = timeline(&load, &pts, 0, 30 * M);
        assert_eq!(
            t,
            spans(&[
                (0, 2 * M, MachineState::Running),
                (2 * M, 3 * M, MachineState::Idle),
                (3 * M, 8 * M, MachineState::Running),
                (8 * M, 20 * M, MachineState::Down),
                (20 * M, 25 * M, MachineState::Running),
                (25 * M, 30 * M, MachineState::Down),
            ])
        );
        let tag: StateRule = toml::from_str(
            "metric = \"status\"\ncodes = [{ value = 1, state = \"running\" }, { value = 3, state = \"setup\" }, { value = 9, state = \"planned_stop\" }]",
        )
        .unwrap();
        tag.validate().unwrap();
        assert_eq!(
            [1.0, 3.0, 9.0, 2.0].map(|v| tag.state_of(v)),
            [MachineState::Running, MachineState::Setup, MachineState::PlannedStop, MachineState::Idle]
        );
        assert!(StateRule { running_above: Some(f64::NAN), ..load.clone() }.validate().is_err());
        assert!(StateRule { codes: tag.codes.clone(), ..load }.validate().is_err());
    }

    #[test]
    fn counters_survive_resets() {
        let pts = [(0, 100.0), (10, 150.0), (20, 170.0), (30, 5.0), (40, 25.0), (50, 30.0)];
        assert_eq!(counter_delta(&pts, 5, 45), 50.0 + 20.0 + 5.0 + 20.0);
        assert_eq!(counter_delta(&pts, 0, 100), 150.0 - 100.0 + 20.0 + 5.0 + 20.0 + 5.0);
        assert_eq!(counter_delta(&[], 0, 100), 0.0);
    }

    #[test]
    fn reason_trees_are_checked() {
        let r = |code: &str, parent: Option<&str>| Reason {
            code: code.into(),
            label: code.into(),
            parent: parent.map(Into::into),
            kind: ReasonKind::Unplanned,
        };
        assert!(validate_reasons(&[r("unplanned", None), r("tool", Some("unplanned"))]).is_ok());
        let errs = validate_reasons(&[r("a", Some("b")), r("b", Some("a")), r("c", Some("zzz")), r("c", None)]).unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:?}");
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn a_report_over_two_machines_of_a_line_sums_times_and_explains_stops() {
        let c = cal();
        let press = MachineSetup {
            machine: "press-1".into(),
            line: "A".into(),
            state: StateRule { metric: "load".into(), running_above: Some(10.0), codes: vec![], no_data_ms: 10 * M as u64 },
            produced_metric: Some("count".into()),
            good_metric: None,
            scrap_metric: Some("scrap".into()),
            planned_ms_per_item: 30_000.0,
            product_metric: None,
            products: vec![],
        };
        let silent = MachineSetup {
            machine: "press-2".into(),
            produced_metric: None,
            scrap_metric: None,
            planned_ms_per_item: 0.0,
            ..press.clone()
        };
        let setup = OeeSetup { calendar: c.clone(), reasons: vec![], machines: vec![press.clone(), silent.clone()] };
        setup.validate().unwrap();
        // press-1 runs the day shift from 08:00 to 10:00, is silent (down) 10:00-11:00 and runs to 16:00;
        // it counts 700 items, 20 scrapped.
        let day = DAY0 + 8 * H;
        let mut data = MachineData::default();
        for t in (day..DAY0 + 16 * H).step_by(M as usize) {
            if !(DAY0 + 10 * H..DAY0 + 11 * H).contains(&t) {
                data.state.push((t, 50.0));
            }
        }
        data.produced = vec![(day - M, 1000.0), (DAY0 + 12 * H, 1400.0), (DAY0 + 16 * H - M, 1700.0)];
        data.scrap = vec![(day - M, 5.0), (DAY0 + 16 * H - M, 25.0)];
        data.reasons = vec![(DAY0 + 10 * H + 30 * M, "tool_break".into())];
        let r = report(&c, &[(&press, &data), (&silent, &MachineData::default())], DAY0, DAY0 + 17 * H, DAY0 + 17 * H);
        assert_eq!(r.rows.len(), 2, "one day shift each (the night shift starts after the window)");
        let p = &r.rows[0].figures;
        assert_eq!(p.planned_busy_ms, 7 * H + 30 * M);
        // Down 10:00 to 11:00 less the no-data hold of 10 min after the last reading at 09:59.
        assert_eq!(p.actual_production_ms, 6 * H + 30 * M + 9 * M);
        assert_eq!((p.produced, p.good), (700.0, 680.0));
        assert_eq!(r.downtime.iter().filter(|d| d.machine == "press-1").count(), 1);
        assert_eq!(r.downtime[0].reason.as_deref(), Some("tool_break"));
        let silent_row = &r.rows[1].figures;
        assert_eq!((silent_row.actual_production_ms, silent_row.availability), (0, Some(0.0)), "no data all shift: down");
        let line = &r.lines[0];
        assert_eq!(line.name, "A");
        assert_eq!(line.figures.planned_busy_ms, 2 * (7 * H + 30 * M), "the line sums its machines' times");
        assert_eq!(r.pareto[0].reason, "unexplained", "press-2's 7.5 h lead press-1's hour");
        assert_eq!(r.pareto[1], ParetoRow { reason: "tool_break".into(), ms: 51 * M, count: 1 });
        assert_eq!(silent_row.effectiveness, None, "a machine without counters has no effectiveness");
        assert_eq!(r.lines[0].figures.effectiveness, p.effectiveness, "and does not dilute its line's");
        // Running all shift without making anything is an OEE of 0, not "undefined".
        let idle_press = MachineData { produced: vec![(day - M, 1000.0), (DAY0 + 16 * H - M, 1000.0)], ..data.clone() };
        let r = report(&c, &[(&press, &idle_press)], DAY0, DAY0 + 17 * H, DAY0 + 17 * H);
        assert_eq!((r.rows[0].figures.quality, r.rows[0].figures.oee), (None, Some(0.0)));
    }

    #[test]
    fn planned_run_time_follows_the_product_being_made() {
        let products = [
            Product { code: 1.0, name: "bracket".into(), planned_ms_per_item: 20_000.0 },
            Product { code: 2.0, name: "housing".into(), planned_ms_per_item: 60_000.0 },
        ];
        // 100 items counted before the shift; 30 brackets, then a changeover to housings and 10 of them,
        // then a code nobody listed (the default, 30 s) for 5 items.
        let counter = [(-10, 100.0), (10, 115.0), (20, 130.0), (30, 135.0), (40, 140.0), (50, 145.0)];
        let product = [(-100, 1.0), (25, 2.0), (45, 9.0)];
        let ms = planned_run_ms(&counter, &product, &products, 30_000.0, 0, 100);
        assert_eq!(ms, 30.0 * 20_000.0 + 10.0 * 60_000.0 + 5.0 * 30_000.0);
        assert_eq!(counter_delta(&counter, 0, 100), 45.0);
        // In a report: effectiveness uses the products' times.
        let c: Calendar = toml::from_str("utc_offset_min = 0\n[[shifts]]\nname = \"all\"\nstart = \"00:00\"\nend = \"00:00\"").unwrap();
        let m = MachineSetup {
            machine: "press".into(),
            line: String::new(),
            state: StateRule { metric: "load".into(), running_above: Some(1.0), codes: vec![], no_data_ms: H as u64 },
            produced_metric: Some("count".into()),
            good_metric: None,
            scrap_metric: None,
            planned_ms_per_item: 0.0,
            product_metric: Some("product".into()),
            products: products.to_vec(),
        };
        OeeSetup { calendar: c.clone(), reasons: vec![], machines: vec![m.clone()] }.validate().unwrap();
        let day = DAY0 + 9 * H; // a UTC midnight
        let data = MachineData {
            state: (0..24).map(|h| (day + h * H, 5.0)).collect(),
            produced: vec![(day, 0.0), (day + 12 * H, 600.0), (day + 23 * H, 900.0)],
            product: vec![(day, 1.0), (day + 13 * H, 2.0)],
            ..Default::default()
        };
        let r = report(&c, &[(&m, &data)], day, day + 1, day + 24 * H);
        let f = &r.rows[0].figures;
        assert!((f.planned_run_ms - (600.0 * 20_000.0 + 300.0 * 60_000.0)).abs() < 1e-3, "{}", f.planned_run_ms);
        close(f.effectiveness.unwrap(), (600.0 * 20.0 + 300.0 * 60.0) / (24.0 * 3600.0));
    }

    #[test]
    fn setups_refuse_nonsense() {
        let bad: OeeSetup = serde_json::from_value(serde_json::json!({
            "calendar": {"utc_offset_min": 540, "shifts": [{"name": "d", "start": "8", "end": "16:00"}]},
            "machines": [
                {"machine": "m", "state": {"metric": "x"}, "produced_metric": "c"},
                {"machine": "m", "state": {"metric": "x", "running_above": 1}, "good_metric": "g", "scrap_metric": "s", "planned_ms_per_item": -1}
            ]
        }))
        .unwrap();
        let errs = bad.validate().unwrap_err();
        for want in [
            "calendar:",
            "exactly one of running_above or codes",
            "needs planned_ms_per_item or products",
            "listed twice",
            "not both",
            "0 to 86400000",
        ] {
            assert!(errs.iter().any(|e| e.contains(want)), "{want}: {errs:?}");
        }
    }
}
