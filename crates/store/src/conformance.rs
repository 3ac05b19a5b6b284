//! The behaviour every [`TelemetryStore`] backend must show, as one suite.
//!
//! Each check takes a store and a `tenant_prefix` unique to the run, so the
//! suite can run against a shared cluster without seeing earlier runs' data.
//! Run it with [`run_all`]; every failure names the check.

use crate::{Point, SeriesInfo, SeriesKey, SeriesPoints, TelemetryStore, TenantBatch, aggregate};

type CheckResult = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn pt(ts_ms: i64, value: f64, quality: u8) -> Point {
    Point { ts_ms, value, quality }
}

fn one(tenant: &str, machine: &str, metric: &str, unit: &str, points: Vec<Point>) -> Vec<TenantBatch> {
    vec![TenantBatch {
        tenant: tenant.into(),
        series: vec![SeriesPoints { key: SeriesKey::new(machine, metric), unit: unit.into(), points }],
    }]
}

const T0: i64 = 1_763_700_000_000; // 2025-11-21, a day boundary falls inside the ranges used below

/// Every check in order; stops at the first failure.
pub async fn run_all(store: &dyn TelemetryStore, tenant_prefix: &str) -> CheckResult {
    round_trip_is_exact(store, &format!("{tenant_prefix}a")).await?;
    rewrites_are_idempotent(store, &format!("{tenant_prefix}b")).await?;
    range_bounds_and_limit(store, &format!("{tenant_prefix}c")).await?;
    tenants_are_isolated(store, &format!("{tenant_prefix}d"), &format!("{tenant_prefix}e")).await?;
    latest_and_list(store, &format!("{tenant_prefix}f")).await?;
    flush_keeps_everything(store, &format!("{tenant_prefix}g")).await?;
    retention_drops_old_data(store, &format!("{tenant_prefix}h")).await?;
    Ok(())
}

/// Values (bit for bit), qualities and order come back as written, across day boundaries.
pub async fn round_trip_is_exact(store: &dyn TelemetryStore, t: &str) -> CheckResult {
    let pts: Vec<Point> = (0..5000)
        .rev() // written out of order on purpose
        .map(|i| pt(T0 + i * 37_003, (i as f64).sin() * 1e3 + 0.1, (i % 3 + 1) as u8))
        .collect();
    store.write(one(t, "press-1", "force", "kN", pts.clone())).await.map_err(|e| e.to_string())?;
    let r = store.range(t, &SeriesKey::new("press-1", "force"), T0, T0 + 5000 * 37_003, 100_000).await.map_err(|e| e.to_string())?;
    ensure!(r.unit.as_deref() == Some("kN"), "round_trip: unit {:?}", r.unit);
    let mut want = pts;
    want.sort_by_key(|p| p.ts_ms);
    ensure!(r.points.len() == want.len(), "round_trip: {} points back, {} written", r.points.len(), want.len());
    for (a, b) in r.points.iter().zip(&want) {
        ensure!(a.ts_ms == b.ts_ms && a.value.to_bits() == b.value.to_bits() && a.quality == b.quality, "round_trip: {a:?} != {b:?}");
    }
    ensure!(!r.truncated, "round_trip: truncated");
    Ok(())
}

/// The same batch twice is stored once; a new value for a timestamp replaces the old.
pub async fn rewrites_are_idempotent(store: &dyn TelemetryStore, t: &str) -> CheckResult {
    let pts: Vec<Point> = (0..100).map(|i| pt(T0 + i * 1000, i as f64, 1)).collect();
    for _ in 0..3 {
        store.write(one(t, "m", "x", "", pts.clone())).await.map_err(|e| e.to_string())?;
    }
    store.flush().await.map_err(|e| e.to_string())?;
    store.write(one(t, "m", "x", "", pts[..10].to_vec())).await.map_err(|e| e.to_string())?;
    store.write(one(t, "m", "x", "", vec![pt(T0 + 5000, -5.0, 3)])).await.map_err(|e| e.to_string())?;
    let r = store.range(t, &SeriesKey::new("m", "x"), T0, T0 + 1_000_000, 1000).await.map_err(|e| e.to_string())?;
    ensure!(r.points.len() == 100, "idempotent: {} points after rewrites", r.points.len());
    ensure!(r.points[5] == pt(T0 + 5000, -5.0, 3), "idempotent: rewrite not applied: {:?}", r.points[5]);
    store.flush().await.map_err(|e| e.to_string())?;
    let r2 = store.range(t, &SeriesKey::new("m", "x"), T0, T0 + 1_000_000, 1000).await.map_err(|e| e.to_string())?;
    ensure!(r2.points == r.points, "idempotent: flush changed the answer");
    Ok(())
}

/// Start inclusive, end exclusive, limit truncates, empty and unknown series answer empty.
pub async fn range_bounds_and_limit(store: &dyn TelemetryStore, t: &str) -> CheckResult {
    let pts: Vec<Point> = (0..50).map(|i| pt(T0 + i * 10, i as f64, 1)).collect();
    store.write(one(t, "m", "y", "", pts)).await.map_err(|e| e.to_string())?;
    let k = SeriesKey::new("m", "y");
    let r = store.range(t, &k, T0 + 100, T0 + 200, 1000).await.map_err(|e| e.to_string())?;
    ensure!(
        r.points.len() == 10 && r.points[0].ts_ms == T0 + 100 && r.points[9].ts_ms == T0 + 190,
        "bounds: {:?}",
        r.points.iter().map(|p| p.ts_ms - T0).collect::<Vec<_>>()
    );
    let r = store.range(t, &k, T0, T0 + 1000, 7).await.map_err(|e| e.to_string())?;
    ensure!(r.points.len() == 7 && r.truncated && r.points[6].ts_ms == T0 + 60, "limit: {} truncated={}", r.points.len(), r.truncated);
    let r = store.range(t, &k, T0 + 10_000, T0 + 20_000, 10).await.map_err(|e| e.to_string())?;
    ensure!(r.points.is_empty() && !r.truncated, "empty range");
    let r = store.range(t, &SeriesKey::new("m", "nope"), T0, T0 + 1000, 10).await.map_err(|e| e.to_string())?;
    ensure!(r.unit.is_none() && r.points.is_empty(), "unknown series");
    ensure!(store.range(t, &k, T0 + 5, T0 + 5, 10).await.is_err(), "empty interval must be refused");
    let all = store.range(t, &k, T0, T0 + 1000, 1000).await.map_err(|e| e.to_string())?;
    let b = aggregate(&all.points, 100);
    ensure!(b.len() == 5 && b.iter().all(|b| b.count == 10), "aggregate over stored points: {b:?}");
    Ok(())
}

/// Nothing of tenant A is visible through tenant B, even with equal names.
pub async fn tenants_are_isolated(store: &dyn TelemetryStore, a: &str, b: &str) -> CheckResult {
    store.write(one(a, "shared-name", "temp", "Cel", vec![pt(T0, 1.0, 1)])).await.map_err(|e| e.to_string())?;
    store.write(one(b, "shared-name", "temp", "Cel", vec![pt(T0 + 1, 2.0, 1)])).await.map_err(|e| e.to_string())?;
    let k = SeriesKey::new("shared-name", "temp");
    let ra = store.range(a, &k, T0 - 10, T0 + 10, 10).await.map_err(|e| e.to_string())?;
    let rb = store.range(b, &k, T0 - 10, T0 + 10, 10).await.map_err(|e| e.to_string())?;
    ensure!(ra.points == vec![pt(T0, 1.0, 1)], "isolation: A sees {:?}", ra.points);
    ensure!(rb.points == vec![pt(T0 + 1, 2.0, 1)], "isolation: B sees {:?}", rb.points);
    let la = store.latest(a, &[]).await.map_err(|e| e.to_string())?;
    ensure!(la.len() == 1 && la[0].1.value == 1.0, "isolation: latest of A {la:?}");
    let sa = store.list_series(a, None).await.map_err(|e| e.to_string())?;
    ensure!(sa.len() == 1, "isolation: A lists {sa:?}");
    Ok(())
}

/// Latest picks the newest timestamp (not the last write); list is sorted and filterable.
pub async fn latest_and_list(store: &dyn TelemetryStore, t: &str) -> CheckResult {
    store.write(one(t, "m2", "b", "V", vec![pt(T0 + 100, 1.0, 1), pt(T0 + 300, 3.0, 2)])).await.map_err(|e| e.to_string())?;
    store.write(one(t, "m2", "b", "V", vec![pt(T0 + 200, 2.0, 1)])).await.map_err(|e| e.to_string())?;
    store.write(one(t, "m1", "a", "A", vec![pt(T0, 9.0, 1)])).await.map_err(|e| e.to_string())?;
    let l = store.latest(t, &[SeriesKey::new("m2", "b"), SeriesKey::new("m9", "zz")]).await.map_err(|e| e.to_string())?;
    ensure!(l.len() == 1 && l[0].1 == pt(T0 + 300, 3.0, 2) && l[0].0.unit == "V", "latest: {l:?}");
    let all = store.list_series(t, None).await.map_err(|e| e.to_string())?;
    let want = vec![
        SeriesInfo { key: SeriesKey::new("m1", "a"), unit: "A".into() },
        SeriesInfo { key: SeriesKey::new("m2", "b"), unit: "V".into() },
    ];
    ensure!(all == want, "list: {all:?}");
    let m1 = store.list_series(t, Some("m1")).await.map_err(|e| e.to_string())?;
    ensure!(m1 == want[..1], "list by machine: {m1:?}");
    Ok(())
}

/// Many series and many flushes lose and duplicate nothing.
pub async fn flush_keeps_everything(store: &dyn TelemetryStore, t: &str) -> CheckResult {
    for round in 0..5i64 {
        let series = (0..20)
            .map(|s| SeriesPoints {
                key: SeriesKey::new(format!("m{}", s % 4), format!("metric{s}")),
                unit: String::new(),
                points: (0..300).map(|i| pt(T0 + (round * 300 + i) * 1000, (s * 1000 + i) as f64 * 0.5, 1)).collect(),
            })
            .collect();
        store.write(vec![TenantBatch { tenant: t.into(), series }]).await.map_err(|e| e.to_string())?;
        if round % 2 == 0 {
            store.flush().await.map_err(|e| e.to_string())?;
        }
    }
    for s in 0..20 {
        let r = store
            .range(t, &SeriesKey::new(format!("m{}", s % 4), format!("metric{s}")), T0, T0 + 10_000_000, 100_000)
            .await
            .map_err(|e| e.to_string())?;
        ensure!(r.points.len() == 1500, "flush: series {s} has {} points", r.points.len());
        ensure!(r.points.windows(2).all(|w| w[0].ts_ms < w[1].ts_ms), "flush: series {s} not sorted/unique");
    }
    Ok(())
}

/// Data older than the cutoff goes; newer data stays.
pub async fn retention_drops_old_data(store: &dyn TelemetryStore, t: &str) -> CheckResult {
    let old = T0 - 400 * 86_400_000;
    store.write(one(t, "m", "r", "", (0..10).map(|i| pt(old + i, 1.0, 1)).collect())).await.map_err(|e| e.to_string())?;
    store.write(one(t, "m", "r", "", vec![pt(T0, 2.0, 1)])).await.map_err(|e| e.to_string())?;
    store.flush().await.map_err(|e| e.to_string())?;
    // Another tenant's old data, purged on its own schedule.
    let other = format!("{t}_other");
    store.write(one(&other, "m", "r", "", (0..10).map(|i| pt(old + i, 3.0, 1)).collect())).await.map_err(|e| e.to_string())?;
    store.flush().await.map_err(|e| e.to_string())?;
    let only_t = crate::Cutoffs { per_tenant: [(t.to_string(), T0 - 100 * 86_400_000)].into(), others: None };
    store.purge_before(&only_t).await.map_err(|e| e.to_string())?;
    let r = store.range(t, &SeriesKey::new("m", "r"), old - 1, T0 + 1, 100).await.map_err(|e| e.to_string())?;
    ensure!(r.points == vec![pt(T0, 2.0, 1)], "retention: {:?}", r.points);
    let kept = store.range(&other, &SeriesKey::new("m", "r"), old - 1, T0 + 1, 100).await.map_err(|e| e.to_string())?;
    ensure!(kept.points.len() == 10, "a tenant's purge took another tenant's data: {} left", kept.points.len());
    store.purge_before(&crate::Cutoffs::all(T0 - 100 * 86_400_000)).await.map_err(|e| e.to_string())?;
    let gone = store.range(&other, &SeriesKey::new("m", "r"), old - 1, T0 + 1, 100).await.map_err(|e| e.to_string())?;
    ensure!(gone.points.is_empty(), "a purge of every tenant kept {:?}", gone.points);
    Ok(())
}
