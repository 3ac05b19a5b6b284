//! The embedded store against a model (a map per series): random writes,
//! rewrites, out-of-order data, flushes and reopens must read back exactly
//! what the model holds.

use fc_store::embedded::{EmbeddedConfig, EmbeddedStore};
use fc_store::{Point, SeriesKey, SeriesPoints, TelemetryStore, TenantBatch};
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Op {
    Write { series: u8, points: Vec<(i64, i32)> },
    Flush,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..3, proptest::collection::vec((0i64..5_000, -1000i32..1000), 1..40)).prop_map(|(series, points)| Op::Write { series, points }),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        let mut store = EmbeddedStore::open(&path, EmbeddedConfig::default()).unwrap();
        let mut model: BTreeMap<u8, BTreeMap<i64, f64>> = BTreeMap::new();
        // Timestamps are spread 10 days apart in places so block spans get cut too.
        let ts = |t: i64| t * if t % 7 == 0 { 86_400_000 } else { 1000 };
        for op in ops {
            match op {
                Op::Write { series, points } => {
                    let pts: Vec<Point> = points.iter().map(|&(t, v)| Point { ts_ms: ts(t), value: f64::from(v), quality: 1 }).collect();
                    for p in &pts {
                        model.entry(series).or_default().insert(p.ts_ms, p.value);
                    }
                    let batch = TenantBatch {
                        tenant: "t".into(),
                        series: vec![SeriesPoints { key: SeriesKey::new("m", format!("s{series}")), unit: String::new(), points: pts }],
                    };
                    store.write(vec![batch]).await.unwrap();
                }
                Op::Flush => store.flush().await.unwrap(),
                Op::Reopen => {
                    drop(store);
                    store = EmbeddedStore::open(&path, EmbeddedConfig::default()).unwrap();
                }
            }
        }
        for (series, want) in &model {
            let r = store.range("t", &SeriesKey::new("m", format!("s{series}")), i64::MIN / 4, i64::MAX / 4, 1_000_000).await.unwrap();
            let got: Vec<(i64, f64)> = r.points.iter().map(|p| (p.ts_ms, p.value)).collect();
            let want: Vec<(i64, f64)> = want.iter().map(|(t, v)| (*t, *v)).collect();
            prop_assert_eq!(got, want, "series {}", series);
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_series_flushed_often_keeps_few_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("s.redb"), EmbeddedConfig::default()).unwrap();
    for i in 0..300i64 {
        let batch = TenantBatch {
            tenant: "t".into(),
            series: vec![SeriesPoints {
                key: SeriesKey::new("m", "slow"),
                unit: String::new(),
                points: vec![Point { ts_ms: i * 900_000, value: i as f64, quality: 1 }],
            }],
        };
        store.write(vec![batch]).await.unwrap();
        store.flush().await.unwrap();
    }
    let r = store.range("t", &SeriesKey::new("m", "slow"), 0, i64::MAX / 4, 1000).await.unwrap();
    assert_eq!(r.points.len(), 300);
    // Tiered merging leaves about log2(300) blocks, not 300.
    let blocks = store.block_count().unwrap();
    assert!(blocks <= 12, "{blocks} blocks for 300 one-reading flushes");
}
