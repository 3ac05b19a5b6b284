//! The column block: the on-disk form of a run of one series' readings.
//!
//! Layout (little-endian):
//! ```text
//! u8 version (1) | u32 count | i64 min_ts | i64 max_ts
//! u32 len | pco(i64 timestamps, delta-of-delta)
//! u32 len | pco(f64 values)
//! u8 quality form: 0 = all equal, then u8; 1 = run-length, u32 runs then (u8, u32) each
//! ```
//! Timestamps are strictly increasing inside a block. pco chooses the value
//! encoding (float multiples such as 0.01 steps are found and stored as integers).

use crate::{Point, StoreError};

const VERSION: u8 = 1;
/// Bytes before the first column: enough to filter blocks without decoding them.
pub const HEADER_LEN: usize = 1 + 4 + 8 + 8;

/// The header of an encoded block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// Number of readings.
    pub count: u32,
    /// First timestamp.
    pub min_ts: i64,
    /// Last timestamp.
    pub max_ts: i64,
}

/// Encode sorted, de-duplicated points (at least one).
pub fn encode(points: &[Point]) -> Result<Vec<u8>, StoreError> {
    debug_assert!(!points.is_empty());
    debug_assert!(points.windows(2).all(|w| w[0].ts_ms < w[1].ts_ms), "points must be sorted and unique");
    let ts: Vec<i64> = points.iter().map(|p| p.ts_ms).collect();
    let vals: Vec<f64> = points.iter().map(|p| p.value).collect();
    let ts_cfg = pco::ChunkConfig::default().with_delta_spec(pco::DeltaSpec::TryConsecutive(2));
    let ts_bytes = pco::standalone::simple_compress(&ts, &ts_cfg).map_err(|e| StoreError::Backend(format!("pco: {e}")))?;
    let val_bytes =
        pco::standalone::simple_compress(&vals, &pco::ChunkConfig::default()).map_err(|e| StoreError::Backend(format!("pco: {e}")))?;
    let mut out = Vec::with_capacity(HEADER_LEN + 10 + ts_bytes.len() + val_bytes.len());
    out.push(VERSION);
    out.extend_from_slice(&(points.len() as u32).to_le_bytes());
    out.extend_from_slice(&ts[0].to_le_bytes());
    out.extend_from_slice(&ts[ts.len() - 1].to_le_bytes());
    out.extend_from_slice(&(ts_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&ts_bytes);
    out.extend_from_slice(&(val_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&val_bytes);
    let q0 = points[0].quality;
    if points.iter().all(|p| p.quality == q0) {
        out.push(0);
        out.push(q0);
    } else {
        let mut runs: Vec<(u8, u32)> = Vec::new();
        for p in points {
            match runs.last_mut() {
                Some((q, n)) if *q == p.quality => *n += 1,
                _ => runs.push((p.quality, 1)),
            }
        }
        out.push(1);
        out.extend_from_slice(&(runs.len() as u32).to_le_bytes());
        for (q, n) in runs {
            out.push(q);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
    Ok(out)
}

/// Read the header without decoding columns.
pub fn header(bytes: &[u8]) -> Result<BlockHeader, StoreError> {
    let mut r = Reader { b: bytes, pos: 0 };
    let v = r.u8()?;
    if v != VERSION {
        return Err(StoreError::Corrupt(format!("block version {v}")));
    }
    Ok(BlockHeader { count: r.u32()?, min_ts: r.i64()?, max_ts: r.i64()? })
}

/// Decode a block.
pub fn decode(bytes: &[u8]) -> Result<Vec<Point>, StoreError> {
    let h = header(bytes)?;
    let mut r = Reader { b: bytes, pos: HEADER_LEN };
    let n = r.u32()? as usize;
    let ts: Vec<i64> = pco::standalone::simple_decompress(r.take(n)?).map_err(|e| StoreError::Corrupt(format!("timestamps: {e}")))?;
    let n = r.u32()? as usize;
    let vals: Vec<f64> = pco::standalone::simple_decompress(r.take(n)?).map_err(|e| StoreError::Corrupt(format!("values: {e}")))?;
    if ts.len() != h.count as usize || vals.len() != ts.len() {
        return Err(StoreError::Corrupt(format!("column lengths {} / {} for count {}", ts.len(), vals.len(), h.count)));
    }
    let mut qualities = Vec::with_capacity(ts.len());
    match r.u8()? {
        0 => qualities.resize(ts.len(), r.u8()?),
        1 => {
            let runs = r.u32()?;
            for _ in 0..runs {
                let q = r.u8()?;
                let n = r.u32()? as usize;
                if qualities.len() + n > ts.len() {
                    return Err(StoreError::Corrupt("quality runs overflow".into()));
                }
                qualities.resize(qualities.len() + n, q);
            }
        }
        f => return Err(StoreError::Corrupt(format!("quality form {f}"))),
    }
    if qualities.len() != ts.len() {
        return Err(StoreError::Corrupt("quality runs short".into()));
    }
    Ok(ts.into_iter().zip(vals).zip(qualities).map(|((ts_ms, value), quality)| Point { ts_ms, value, quality }).collect())
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| StoreError::Corrupt("block truncated".into()))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn f64(&mut self) -> Result<f64, StoreError> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn str(&mut self) -> Result<&'a str, StoreError> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| StoreError::Corrupt("utf-8".into()))
    }
    fn done(&self) -> bool {
        self.pos == self.b.len()
    }
}

/// Write-ahead-log record: `(series id, points)` pairs, uncompressed so the hot
/// path costs a copy, not an encode.
pub fn encode_wal(entries: &[(u64, &[Point])]) -> Vec<u8> {
    let n: usize = entries.iter().map(|(_, p)| 12 + p.len() * 17).sum();
    let mut out = Vec::with_capacity(4 + n);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (sid, points) in entries {
        out.extend_from_slice(&sid.to_le_bytes());
        out.extend_from_slice(&(points.len() as u32).to_le_bytes());
        for p in *points {
            out.extend_from_slice(&p.ts_ms.to_le_bytes());
            out.extend_from_slice(&p.value.to_le_bytes());
            out.push(p.quality);
        }
    }
    out
}

/// Decode a write-ahead-log record.
pub fn decode_wal(bytes: &[u8]) -> Result<Vec<(u64, Vec<Point>)>, StoreError> {
    let mut r = Reader { b: bytes, pos: 0 };
    let n = r.u32()?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let sid = r.u64()?;
        let count = r.u32()? as usize;
        if count > bytes.len() / 17 {
            return Err(StoreError::Corrupt("wal count".into()));
        }
        let mut pts = Vec::with_capacity(count);
        for _ in 0..count {
            pts.push(Point { ts_ms: r.i64()?, value: r.f64()?, quality: r.u8()? });
        }
        out.push((sid, pts));
    }
    if !r.done() {
        return Err(StoreError::Corrupt("wal trailing bytes".into()));
    }
    Ok(out)
}

/// A series' identity as stored: tenant, machine, metric, unit.
pub fn encode_series(tenant: &str, machine: &str, metric: &str, unit: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for s in [tenant, machine, metric, unit] {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out
}

/// Decode [`encode_series`].
pub fn decode_series(bytes: &[u8]) -> Result<[String; 4], StoreError> {
    let mut r = Reader { b: bytes, pos: 0 };
    Ok([r.str()?.to_string(), r.str()?.to_string(), r.str()?.to_string(), r.str()?.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pts(ts: &[i64], vals: &[f64], q: &[u8]) -> Vec<Point> {
        ts.iter().zip(vals).zip(q).map(|((&t, &v), &q)| Point { ts_ms: t, value: v, quality: q }).collect()
    }

    #[test]
    fn regular_series_compress_far_below_raw() {
        let points: Vec<Point> = (0..10_000)
            .map(|i| Point { ts_ms: 1_700_000_000_000 + i * 1000, value: ((i % 500) as f64 * 0.01 + 20.0), quality: 1 })
            .collect();
        let enc = encode(&points).unwrap();
        assert!(enc.len() < points.len() * 2, "{} bytes for {} points", enc.len(), points.len());
        assert_eq!(decode(&enc).unwrap(), points);
        assert_eq!(header(&enc).unwrap(), BlockHeader { count: 10_000, min_ts: points[0].ts_ms, max_ts: points[9_999].ts_ms });
    }

    #[test]
    fn corrupt_blocks_are_errors_not_panics() {
        let enc = encode(&pts(&[1, 2, 3], &[1.0, 2.0, 3.0], &[1, 3, 3])).unwrap();
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = enc.clone();
        bad[0] = 9;
        assert!(decode(&bad).is_err());
        assert!(decode_wal(&[1, 0, 0, 0, 1]).is_err());
    }

    proptest! {
        #[test]
        fn block_round_trips(
            start in -1_000_000_000_000i64..2_000_000_000_000i64,
            gaps in proptest::collection::vec(1i64..100_000, 1..300),
            vals in proptest::collection::vec(proptest::num::f64::NORMAL | proptest::num::f64::ZERO | proptest::num::f64::SUBNORMAL, 300),
            quals in proptest::collection::vec(1u8..4, 300),
        ) {
            let mut ts = Vec::new();
            let mut t = start;
            for g in &gaps { t += g; ts.push(t); }
            let points = pts(&ts, &vals[..ts.len()], &quals[..ts.len()]);
            let enc = encode(&points).unwrap();
            let dec = decode(&enc).unwrap();
            prop_assert_eq!(dec.len(), points.len());
            for (a, b) in dec.iter().zip(&points) {
                prop_assert_eq!(a.ts_ms, b.ts_ms);
                prop_assert_eq!(a.value.to_bits(), b.value.to_bits());
                prop_assert_eq!(a.quality, b.quality);
            }
        }

        #[test]
        fn wal_round_trips(entries in proptest::collection::vec((any::<u64>(), proptest::collection::vec((any::<i64>(), -1e9f64..1e9, 0u8..4), 0..20)), 0..10)) {
            let owned: Vec<(u64, Vec<Point>)> = entries.iter().map(|(s, v)| (*s, v.iter().map(|&(t, x, q)| Point { ts_ms: t, value: x, quality: q }).collect())).collect();
            let refs: Vec<(u64, &[Point])> = owned.iter().map(|(s, v)| (*s, v.as_slice())).collect();
            prop_assert_eq!(decode_wal(&encode_wal(&refs)).unwrap(), owned);
        }
    }
}
