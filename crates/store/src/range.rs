//! The one owner of the rules for reading a series' range: what a caller may
//! ask for and how much work it may cost. gRPC `Query.Range`, the REST series
//! API and the portal's pages all go through [`RangeSpec::plan`] and [`read`],
//! which also holds every read to its tenant's budget ([`crate::budget`]).
//!
//! Invariants:
//! - every bound is computed with checked arithmetic: no request can overflow
//!   (`start=i64::MIN, end=i64::MAX` is refused or served, never wrapped);
//! - a raw read returns at most [`MAX_RAW_LIMIT`] readings, and the store stops
//!   decoding once it has them;
//! - an aggregated read folds at most [`MAX_AGGREGATE_INPUT`] readings into at
//!   most [`MAX_BUCKETS`] buckets, and says `truncated` when the input was cut.

use crate::budget::ReadBudgets;
use crate::{Bucket, DynStore, Point, SeriesKey};

/// Raw readings one call answers when the caller sets no limit.
pub const DEFAULT_RAW_LIMIT: u64 = 100_000;
/// Most raw readings one call may ask for.
pub const MAX_RAW_LIMIT: u64 = 1_000_000;
/// Most buckets one aggregated call may produce.
pub const MAX_BUCKETS: i64 = 100_000;
/// Most readings one aggregated call folds (about 48 MB of points in memory).
pub const MAX_AGGREGATE_INPUT: usize = 2_000_000;

/// What a caller asked for, as it came (already parsed from its wire form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeSpec {
    /// Inclusive start, Unix ms.
    pub start_ms: i64,
    /// Exclusive end, Unix ms.
    pub end_ms: i64,
    /// 0 for raw readings, else the bucket width in ms.
    pub step_ms: i64,
    /// Most raw readings; `None` for the default.
    pub limit: Option<u64>,
}

/// A request that passed the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangePlan {
    /// Raw readings, at most `limit`.
    Raw {
        /// Inclusive start, Unix ms.
        start_ms: i64,
        /// Exclusive end, Unix ms.
        end_ms: i64,
        /// Most readings.
        limit: usize,
    },
    /// Buckets of `step_ms`.
    Buckets {
        /// Inclusive start, Unix ms.
        start_ms: i64,
        /// Exclusive end, Unix ms.
        end_ms: i64,
        /// Bucket width, ms.
        step_ms: i64,
    },
}

/// Why a range request was refused: the field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RangeError {
    /// The request field at fault.
    pub field: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl From<RangeError> for fc_core::ServiceError {
    fn from(e: RangeError) -> Self {
        fc_core::ServiceError::invalid(e.field, e.message)
    }
}

fn refuse(field: &'static str, message: impl Into<String>) -> RangeError {
    RangeError { field, message: message.into() }
}

impl RangeSpec {
    /// Check the request against the rules.
    pub fn plan(&self) -> Result<RangePlan, RangeError> {
        let span = self.end_ms.checked_sub(self.start_ms).ok_or_else(|| refuse("end_ms", "the range does not fit in 64 bits"))?;
        if span <= 0 {
            return Err(refuse("end_ms", "must be greater than start_ms"));
        }
        if self.step_ms < 0 {
            return Err(refuse("step_ms", "must not be negative"));
        }
        if self.step_ms == 0 {
            let limit = match self.limit {
                None => DEFAULT_RAW_LIMIT,
                Some(n) if (1..=MAX_RAW_LIMIT).contains(&n) => n,
                Some(n) => return Err(refuse("limit", format!("{n} is not in 1..={MAX_RAW_LIMIT}"))),
            };
            return Ok(RangePlan::Raw { start_ms: self.start_ms, end_ms: self.end_ms, limit: limit as usize });
        }
        if self.limit.is_some() {
            return Err(refuse("limit", "applies to raw readings only (step_ms = 0)"));
        }
        let buckets = span / self.step_ms + i64::from(span % self.step_ms != 0);
        if buckets > MAX_BUCKETS {
            return Err(refuse("step_ms", format!("the range would give {buckets} buckets; at most {MAX_BUCKETS}")));
        }
        Ok(RangePlan::Buckets { start_ms: self.start_ms, end_ms: self.end_ms, step_ms: self.step_ms })
    }
}

/// The answer of a planned read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RangeAnswer {
    /// Unit of the series; `None` when the series does not exist.
    pub unit: Option<String>,
    /// Raw readings (a raw plan).
    pub points: Vec<Point>,
    /// Buckets (an aggregated plan).
    pub buckets: Vec<Bucket>,
    /// True when the limit (raw) or the input cap (aggregated) cut the answer short.
    pub truncated: bool,
}

/// Read what `plan` allows of `key` in `tenant`, within the tenant's read
/// budget (`points_per_s`, its plan's rate; see [`crate::budget`]): the read
/// is charged the readings it decoded. Aggregation runs off the async workers.
pub async fn read(
    store: &DynStore,
    budgets: &ReadBudgets,
    tenant: &str,
    points_per_s: u64,
    key: &SeriesKey,
    plan: RangePlan,
) -> Result<RangeAnswer, fc_core::ServiceError> {
    let ticket = budgets.admit(tenant, points_per_s).await?;
    let (answer, decoded) = match plan {
        RangePlan::Raw { start_ms, end_ms, limit } => {
            let r = store.range(tenant, key, start_ms, end_ms, limit).await?;
            let decoded = r.points.len() as u64;
            (RangeAnswer { unit: r.unit, points: r.points, buckets: Vec::new(), truncated: r.truncated }, decoded)
        }
        RangePlan::Buckets { start_ms, end_ms, step_ms } => {
            let r = store.range(tenant, key, start_ms, end_ms, MAX_AGGREGATE_INPUT).await?;
            let decoded = r.points.len() as u64;
            let (unit, truncated) = (r.unit, r.truncated);
            let buckets = tokio::task::spawn_blocking(move || crate::aggregate(&r.points, step_ms))
                .await
                .map_err(|e| fc_core::ServiceError::internal(format!("aggregation: {e}")))?;
            (RangeAnswer { unit, points: Vec::new(), buckets, truncated }, decoded)
        }
    };
    ticket.charge(decoded);
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: (i64, i64, i64, Option<u64>), expect: Result<RangePlan, (&str, &str)>) {
        let (start_ms, end_ms, step_ms, limit) = spec;
        let got = RangeSpec { start_ms, end_ms, step_ms, limit }.plan();
        match expect {
            Ok(plan) => assert_eq!(got, Ok(plan), "{spec:?}"),
            Err((field, part)) => {
                let e = got.expect_err(&format!("{spec:?} should be refused"));
                assert_eq!(e.field, field, "{spec:?}: {e}");
                assert!(e.message.contains(part), "{spec:?}: {e}");
            }
        }
    }

    #[test]
    fn range_rules() {
        let raw = |s, e, l| Ok(RangePlan::Raw { start_ms: s, end_ms: e, limit: l });
        check((0, 10, 0, None), raw(0, 10, 100_000));
        check((0, 10, 0, Some(1)), raw(0, 10, 1));
        check((i64::MIN, i64::MAX, 0, Some(1)), Err(("end_ms", "64 bits")));
        check((i64::MIN + 1, 0, 0, Some(1)), raw(i64::MIN + 1, 0, 1));
        check((-1, i64::MAX - 1, 0, Some(1)), raw(-1, i64::MAX - 1, 1));
        check((10, 10, 0, None), Err(("end_ms", "greater than start_ms")));
        check((10, 3, 0, None), Err(("end_ms", "greater than start_ms")));
        check((0, 10, -1, None), Err(("step_ms", "negative")));
        check((0, 10, 0, Some(0)), Err(("limit", "1..=1000000")));
        check((0, 10, 0, Some(1_000_001)), Err(("limit", "1..=1000000")));
        check((0, 10, 0, Some(u64::MAX)), Err(("limit", "1..=1000000")));
        check((0, 100_000, 1, None), Ok(RangePlan::Buckets { start_ms: 0, end_ms: 100_000, step_ms: 1 }));
        check((0, 100_001, 1, None), Err(("step_ms", "100001 buckets")));
        check((0, 10, 3, None), Ok(RangePlan::Buckets { start_ms: 0, end_ms: 10, step_ms: 3 }));
        check((i64::MIN / 2, i64::MAX / 2, 1, None), Err(("step_ms", "at most 100000")));
        check((0, 10, 1, Some(5)), Err(("limit", "raw readings only")));
    }

    proptest::proptest! {
        /// No request panics or overflows, and what passes is within the caps.
        #[test]
        fn plans_never_overflow(start in proptest::num::i64::ANY, end in proptest::num::i64::ANY, step in proptest::num::i64::ANY, limit in proptest::option::of(proptest::num::u64::ANY)) {
            match (RangeSpec { start_ms: start, end_ms: end, step_ms: step, limit }).plan() {
                Ok(RangePlan::Raw { limit, .. }) => assert!(limit as u64 <= MAX_RAW_LIMIT && limit > 0),
                Ok(RangePlan::Buckets { start_ms, end_ms, step_ms }) => assert!((end_ms - start_ms) / step_ms <= MAX_BUCKETS),
                Err(_) => {}
            }
        }
    }
}
