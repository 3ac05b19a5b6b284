//! A streaming anomaly detector that learns each series from the series itself.
//!
//! The baseline is robust: the median and the median absolute deviation (MAD) of the
//! last 24 hours, kept as 288 five-minute bins (the mean of each bin's readings), so a
//! series at 1 Hz and one at 5 minutes cost the same 1.2 KB. The value judged is the
//! series' current level, the median of the last 30 minutes of bins (the open bin
//! included), so one noisy reading does not alarm but a drop that lasts does. The
//! score is the level's distance from the baseline median in robust deviations
//! (1.4826 x MAD, at least 1 % of the median, so a flat series is not infinitely
//! sensitive). Nothing is judged before six hours of history.
//!
//! The default limit (8 robust deviations at sensitivity 1) was chosen on the
//! machine-temperature dataset: it flags the catastrophic failure on the morning it
//! begins, and raises under one alarm per week in normal operation (see
//! `docs/monitor.md` for the evaluation and how to repeat it).
//!
//! Invariant: the state is bounded (288 bins and one open bin) and round-trips through
//! [`Detector::to_bytes`] / [`Detector::from_bytes`] exactly, so a checkpoint resumes
//! where the detector stopped instead of learning again.

/// Width of a baseline bin.
pub const BIN_MS: i64 = 300_000;
/// Bins in the baseline window (24 h).
pub const WINDOW_BINS: usize = 288;
/// Bins in the current level (30 min, the open one included).
pub const LEVEL_BINS: usize = 6;
/// Closed bins needed before the detector judges (6 h).
pub const MIN_BINS: usize = 72;
/// Robust deviations that count as anomalous at sensitivity 1.
pub const BASE_DEVIATIONS: f64 = 8.0;
/// An anomaly ends when the score falls below this share of the limit.
pub const CLEAR_SHARE: f64 = 0.5;

/// One judgement of the detector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// Signed distance of the level from the baseline, in robust deviations.
    pub deviations: f64,
    /// The series' current level (median of the last 30 minutes).
    pub level: f64,
    /// The baseline median (last 24 h).
    pub baseline: f64,
    /// One robust deviation.
    pub scale: f64,
}

impl Score {
    /// "73.2 °C is 6.1 robust deviations below the last 24 h baseline of 88.4 °C".
    pub fn explain(&self, unit: &str) -> String {
        let side = if self.deviations < 0.0 { "below" } else { "above" };
        format!(
            "{} is {:.1} robust deviations {side} the last 24 h baseline of {}",
            crate::with_unit(self.level, unit),
            self.deviations.abs(),
            crate::with_unit(self.baseline, unit)
        )
    }
}

/// The limit in robust deviations for a sensitivity (higher sensitivity, lower limit).
pub fn limit(sensitivity: f64) -> f64 {
    BASE_DEVIATIONS / sensitivity.clamp(0.1, 10.0)
}

/// The detector of one series.
#[derive(Clone, Debug)]
pub struct Detector {
    /// Bin means by `bin % WINDOW_BINS`; NaN where a bin had no reading.
    ring: Vec<f32>,
    /// Index (`ts / BIN_MS`) of the last closed bin, if any.
    last_closed: Option<i64>,
    /// The open bin: index, sum, count.
    open: Option<(i64, f64, u32)>,
    /// Baseline (median, scale) of the closed bins, refreshed when a bin closes.
    baseline: Option<(f64, f64)>,
}

impl PartialEq for Detector {
    fn eq(&self, other: &Self) -> bool {
        // Bitwise on the ring: empty slots are NaN.
        self.ring.iter().map(|v| v.to_bits()).eq(other.ring.iter().map(|v| v.to_bits()))
            && self.last_closed == other.last_closed
            && self.open == other.open
            && self.baseline == other.baseline
    }
}

impl Default for Detector {
    fn default() -> Self {
        Self { ring: vec![f32::NAN; WINDOW_BINS], last_closed: None, open: None, baseline: None }
    }
}

fn median(v: &mut [f64]) -> f64 {
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    *m
}

impl Detector {
    /// A detector that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Closed bins currently in the baseline.
    pub fn history_bins(&self) -> usize {
        self.ring.iter().filter(|v| !v.is_nan()).count()
    }

    /// Close the open bin (if any) and open `new_open`: bins in between had no
    /// readings, so their slots (which still hold bins over 24 h older) are emptied.
    fn advance(&mut self, new_open: i64) {
        if let Some((idx, sum, n)) = self.open.take() {
            self.ring[idx.rem_euclid(WINDOW_BINS as i64) as usize] = (sum / f64::from(n)) as f32;
            self.last_closed = Some(idx);
        }
        if let Some(last) = self.last_closed {
            let gap = (new_open - last - 1).clamp(0, WINDOW_BINS as i64);
            for k in 1..=gap {
                self.ring[(last + k).rem_euclid(WINDOW_BINS as i64) as usize] = f32::NAN;
            }
        }
        self.refresh();
    }

    /// Recompute the baseline from the closed bins.
    fn refresh(&mut self) {
        let mut vals: Vec<f64> = self.ring.iter().filter(|v| !v.is_nan()).map(|&v| f64::from(v)).collect();
        self.baseline = (vals.len() >= MIN_BINS).then(|| {
            let m = median(&mut vals);
            let mut dev: Vec<f64> = vals.iter().map(|v| (v - m).abs()).collect();
            let mad = median(&mut dev);
            (m, (1.4826 * mad).max(0.01 * m.abs()).max(1e-6))
        });
    }

    /// Learn from a reading and judge the series' level; `None` while it has under six
    /// hours of history. Readings older than the open bin count towards the open bin
    /// (a device clock that steps back a little does not rewrite history).
    pub fn observe(&mut self, ts_ms: i64, value: f64) -> Option<Score> {
        if !value.is_finite() {
            return None;
        }
        let idx = ts_ms.div_euclid(BIN_MS);
        match self.open {
            Some((open_idx, sum, n)) if idx <= open_idx => self.open = Some((open_idx, sum + value, n.saturating_add(1))),
            _ => {
                self.advance(idx);
                self.open = Some((idx, value, 1));
            }
        }
        let (open_idx, sum, n) = self.open?;
        let (baseline, scale) = self.baseline?;
        let mut level = Vec::with_capacity(LEVEL_BINS);
        level.push(sum / f64::from(n));
        for k in 1..LEVEL_BINS as i64 {
            // Slots between the last closed bin and the open one were emptied by `advance`.
            let v = self.ring[(open_idx - k).rem_euclid(WINDOW_BINS as i64) as usize];
            if !v.is_nan() {
                level.push(f64::from(v));
            }
        }
        let level = median(&mut level);
        Some(Score { deviations: (level - baseline) / scale, level, baseline, scale })
    }

    const VERSION: u8 = 1;

    /// The state as bytes, for a checkpoint.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 8 + 21 + 4 * WINDOW_BINS);
        out.push(Self::VERSION);
        let mut flags = 0u8;
        if self.last_closed.is_some() {
            flags |= 1;
        }
        if self.open.is_some() {
            flags |= 2;
        }
        out.push(flags);
        out.extend_from_slice(&self.last_closed.unwrap_or(0).to_le_bytes());
        let (i, s, n) = self.open.unwrap_or((0, 0.0, 0));
        out.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        for v in &self.ring {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Restore a state written by [`Detector::to_bytes`]; `None` if the bytes are not one.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != 2 + 8 + 8 + 8 + 4 + 4 * WINDOW_BINS || b[0] != Self::VERSION {
            return None;
        }
        let flags = b[1];
        let i64_at = |o: usize| i64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let last_closed = (flags & 1 != 0).then(|| i64_at(2));
        let open = (flags & 2 != 0).then(|| {
            (
                i64_at(10),
                f64::from_le_bytes(b[18..26].try_into().expect("8 bytes")),
                u32::from_le_bytes(b[26..30].try_into().expect("4 bytes")),
            )
        });
        if open.is_some_and(|(_, s, n)| n == 0 || !s.is_finite()) {
            return None;
        }
        let ring: Vec<f32> = b[30..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        if ring.iter().any(|v| v.is_infinite()) {
            return None;
        }
        let mut d = Detector { ring, last_closed, open, baseline: None };
        // The baseline is derived state: recompute it rather than trust the bytes.
        d.refresh();
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    /// A calm series around 50 with a little daily swing, one reading a minute.
    fn calm(minutes: i64) -> impl Iterator<Item = (i64, f64)> {
        (0..minutes).map(|m| (m * MIN, 50.0 + ((m as f64) / 1440.0 * std::f64::consts::TAU).sin() + ((m * 7919) % 13) as f64 * 0.05))
    }

    #[test]
    fn quiet_until_six_hours_of_history() {
        let mut d = Detector::new();
        let scores: Vec<Option<Score>> = calm(7 * 60).map(|(t, v)| d.observe(t, v)).collect();
        assert!(scores[..6 * 60].iter().all(Option::is_none));
        assert!(scores[6 * 60 + 5..].iter().all(Option::is_some));
    }

    #[test]
    fn a_lasting_drop_is_anomalous_and_a_single_spike_is_not() {
        let mut d = Detector::new();
        let mut last = None;
        for (t, v) in calm(2 * 1440) {
            last = d.observe(t, v);
        }
        assert!(last.unwrap().deviations.abs() < 3.0, "{last:?}");
        let t0 = 2 * 1440 * MIN;
        let spike = d.observe(t0, 10.0).unwrap();
        assert!(spike.deviations.abs() < limit(1.0), "one reading moves the 30-minute level little: {spike:?}");
        let mut worst: f64 = 0.0;
        for k in 1..40 {
            worst = worst.min(d.observe(t0 + k * MIN, 30.0).unwrap().deviations);
        }
        assert!(worst < -limit(1.0), "a 20-degree drop for 40 minutes: {worst}");
    }

    #[test]
    fn the_reason_reads_as_a_sentence() {
        let s = Score { deviations: -6.12, level: 73.21, baseline: 88.4, scale: 2.5 };
        assert_eq!(s.explain("°C"), "73.2 °C is 6.1 robust deviations below the last 24 h baseline of 88.4 °C");
    }

    #[test]
    fn gaps_empty_old_bins_and_a_long_silence_starts_learning_again() {
        let mut d = Detector::new();
        for (t, v) in calm(1440) {
            d.observe(t, v);
        }
        assert_eq!(d.history_bins(), 287);
        d.observe(3 * 1440 * MIN, 50.0);
        assert_eq!(d.history_bins(), 0, "two silent days empty the baseline");
        assert!(d.observe(3 * 1440 * MIN + 1, 50.0).is_none(), "under six hours again");
    }

    #[test]
    fn a_flat_series_is_not_infinitely_sensitive() {
        let mut d = Detector::new();
        for m in 0..1440 {
            d.observe(m * MIN, 100.0);
        }
        let s = d.observe(1440 * MIN, 100.5).unwrap();
        assert!(s.deviations.abs() < 1.0, "{s:?}");
    }

    #[test]
    fn checkpoints_resume_exactly() {
        let mut a = Detector::new();
        let pts: Vec<(i64, f64)> = calm(1500).collect();
        for &(t, v) in &pts[..1000] {
            a.observe(t, v);
        }
        let mut b = Detector::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(a, b);
        for &(t, v) in &pts[1000..] {
            assert_eq!(a.observe(t, v), b.observe(t, v));
        }
        assert!(Detector::from_bytes(&[1, 2, 3]).is_none());
        let mut bad = a.to_bytes();
        bad[0] = 9;
        assert!(Detector::from_bytes(&bad).is_none());
    }

    proptest! {
        #[test]
        fn any_series_round_trips_and_never_panics(pts in proptest::collection::vec((-1_000_000i64..1_000_000_000, -1e9f64..1e9), 0..400)) {
            let mut d = Detector::new();
            for (t, v) in pts {
                let _ = d.observe(t * 1000, v);
                let back = Detector::from_bytes(&d.to_bytes());
                prop_assert_eq!(back.as_ref(), Some(&d));
            }
        }
    }
}
