//! Tenant B's credentials can neither write into nor read tenant A's series.

use fc_proto::v1::{LatestRequest, ListSeriesRequest, RangeRequest, Reading, ReadingBatch, SeriesKey};
use fc_testkit::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_see_or_touch_each_other() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (_, token_a) = h.tenant_with_device("Tenant A")?;
    let (_, token_b) = h.tenant_with_device("Tenant B")?;
    let now = fc_core::time::now_ms();
    let batch = |seq: u64, v: f64| ReadingBatch {
        device_seq: seq,
        readings: vec![Reading {
            machine: "press-1".into(),
            metric: "temp".into(),
            unit: "Cel".into(),
            timestamp_ms: now,
            value: v,
            quality: 0,
        }],
        series: vec![],
    };
    h.ingest(&token_a).await?.push(batch(1, 10.0)).await?;
    // B writes the very same machine/metric name (and the same device_seq): it lands in B only.
    let r = h.ingest(&token_b).await?.push(batch(1, 99.0)).await?.into_inner();
    assert!(!r.duplicate, "B's batch must not be deduplicated against A's");
    h.wait_writer_idle().await?;

    let key = Some(SeriesKey { machine: "press-1".into(), metric: "temp".into() });
    let range = |key| RangeRequest { series: key, start_ms: now - 1000, end_ms: now + 1000, ..Default::default() };
    let a = h.query(&token_a).await?.range(range(key.clone())).await?.into_inner();
    let b = h.query(&token_b).await?.range(range(key.clone())).await?.into_inner();
    assert_eq!(a.readings.iter().map(|r| r.value).collect::<Vec<_>>(), vec![10.0]);
    assert_eq!(b.readings.iter().map(|r| r.value).collect::<Vec<_>>(), vec![99.0]);

    // A third tenant with no data sees nothing at all, and no hint of others' series.
    let (_, token_c) = h.tenant_with_device("Tenant C")?;
    let mut qc = h.query(&token_c).await?;
    let c = qc.range(range(key.clone())).await?.into_inner();
    assert!(c.readings.is_empty() && c.unit.is_empty(), "{c:?}");
    assert!(qc.latest(LatestRequest { series: vec![] }).await?.into_inner().readings.is_empty());
    assert!(qc.latest(LatestRequest { series: vec![key.clone().unwrap()] }).await?.into_inner().readings.is_empty());
    assert!(qc.list_series(ListSeriesRequest::default()).await?.into_inner().series.is_empty());
    // The answer for another tenant's series is the same as for a series that never existed.
    let never = qc.range(range(Some(SeriesKey { machine: "nobody".into(), metric: "nothing".into() }))).await?.into_inner();
    assert_eq!(c.readings, never.readings);
    assert_eq!(c.unit, never.unit);
    Ok(())
}
