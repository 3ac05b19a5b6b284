//! Bounded work and no noisy neighbour at ingest: the plan's series limit,
//! range requests that cannot overflow, and each tenant's share of the
//! telemetry bus (nothing acknowledged is ever discarded to make room).

use fc_proto::v1::{RangeRequest, ReadingBatch, SeriesKey, SeriesReadings};
use fc_testkit::Harness;

fn wide_batch(seq: u64, t0: i64, machines: usize, metrics: usize, first_metric: usize) -> ReadingBatch {
    let mut series = Vec::new();
    for m in 0..machines {
        for k in 0..metrics {
            series.push(SeriesReadings {
                machine: format!("m{m}"),
                metric: format!("x{}", first_metric + k),
                unit: String::new(),
                base_timestamp_ms: t0,
                timestamp_deltas_ms: vec![0],
                values: vec![1.0],
                qualities: vec![],
            });
        }
    }
    ReadingBatch { device_seq: seq, readings: vec![], series }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_past_the_plans_series_limit_is_refused_naming_it() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let reg = &h.registry;
    let t = reg.create_tenant("Small Shop", "starter")?; // 1,000 series
    let (_, dev1) = reg.create_device(&t.id, "a")?;
    let (_, dev2) = reg.create_device(&t.id, "b")?;
    let t0 = fc_core::time::now_ms() - 60_000;
    let mut a = h.ingest(&dev1).await?;
    assert_eq!(a.push(wide_batch(1, t0, 10, 100, 0)).await?.into_inner().accepted, 1000);
    let mut b = h.ingest(&dev2).await?;
    let err = b.push(wide_batch(1, t0, 1, 1, 100)).await.expect_err("the 1,001st series");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("allows 1000 series"), "{}", err.message());
    // Existing series still flow, and nothing of the refused batch was published.
    assert_eq!(b.push(wide_batch(2, t0 + 1, 1, 1, 0)).await?.into_inner().accepted, 1);
    h.wait_writer_idle().await?;
    let mut q = h.query(&dev1).await?;
    let listed = q.list_series(fc_proto::v1::ListSeriesRequest::default()).await?.into_inner().series;
    assert_eq!(listed.len(), 1000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_requests_cannot_overflow_or_ask_for_unbounded_work() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (_, token) = h.tenant_with_device("Reader")?;
    let mut q = h.query(&token).await?;
    let series = Some(SeriesKey { machine: "m".into(), metric: "x".into() });
    let ask =
        |start_ms, end_ms, step_ms, limit| RangeRequest { series: series.clone(), start_ms, end_ms, step_ms, limit, ..Default::default() };
    for (req, field) in [
        (ask(i64::MIN, i64::MAX, 0, 1), "end_ms"),
        (ask(i64::MIN, i64::MAX, 1, 0), "end_ms"),
        (ask(0, i64::MAX, 1, 0), "step_ms"),
        (ask(5, 3, 0, 0), "end_ms"),
        (ask(0, 10, 0, 1_000_001), "limit"),
        (ask(0, 10, 1, 5), "limit"),
    ] {
        let err = q.range(req.clone()).await.expect_err("refused");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{req:?}: {err:?}");
        assert!(err.message().starts_with(field), "{req:?}: {}", err.message());
    }
    // All of history with a small limit is served.
    let r = q.range(ask(i64::MIN + 1, 0, 0, 1)).await?.into_inner();
    assert!(r.readings.is_empty() && !r.truncated);
    Ok(())
}

/// Tenant A bursts while the store writer is away: A is refused at its share of
/// the bus, B keeps streaming, and every acknowledged message is still in the
/// stream (the bus refuses new messages rather than discarding acked ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_refused_at_its_share_of_the_bus_and_nothing_acked_is_discarded() -> anyhow::Result<()> {
    let h = Harness::start_with(|c| {
        c.writer.enabled = false;
        c.bus.telemetry_max_bytes = 2 << 20;
        c.admission.backlog_poll_ms = 50;
    })
    .await?;
    let reg = &h.registry;
    let a = reg.create_tenant("Burst", "enterprise")?;
    let (_, a_token) = reg.create_device(&a.id, "gw")?;
    let b = reg.create_tenant("Steady", "enterprise")?;
    let (_, b_token) = reg.create_device(&b.id, "gw")?;
    let t0 = fc_core::time::now_ms() - 600_000;
    let mut ingest_a = h.ingest(&a_token).await?;
    let (mut acked, mut refused_a) = (0u64, 0u64);
    for seq in 1..=400u64 {
        match ingest_a.push(fc_testkit::series_batch(seq, t0, (0..1000).map(f64::from).collect())).await {
            Ok(_) => acked += 1,
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
                assert!(e.message().contains("share of the bus"), "{}", e.message());
                refused_a += 1;
                if refused_a >= 3 {
                    break;
                }
            }
        }
    }
    assert!(refused_a >= 3 && acked > 10, "A was stopped at its share: {acked} acked");
    let mut ingest_b = h.ingest(&b_token).await?;
    for seq in 1..=20u64 {
        let r = ingest_b.push(fc_testkit::series_batch(seq, t0, vec![2.0; 1000])).await?;
        assert_eq!(r.into_inner().accepted, 1000, "B is not slowed by A's burst");
        acked += 1;
    }
    let (_, messages) = h.svc().state.bus.stream_backlog(fc_bus::TELEMETRY_STREAM).await?;
    assert_eq!(messages, acked, "every acknowledged message is still in the stream");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_full_bus_makes_the_service_not_ready() -> anyhow::Result<()> {
    let h = Harness::start_with(|c| {
        c.writer.enabled = false;
        c.bus.telemetry_max_bytes = 1 << 20;
        c.admission.max_tenant_share = 1.0;
        c.admission.not_ready_fill = 0.3;
        c.admission.backlog_poll_ms = 20;
    })
    .await?;
    let reg = &h.registry;
    let t = reg.create_tenant("Burst", "enterprise")?;
    let (_, token) = reg.create_device(&t.id, "gw")?;
    let ready = |h: &Harness| h.svc().state.bus_ready.load(std::sync::atomic::Ordering::SeqCst);
    assert!(ready(&h));
    let mut ingest = h.ingest(&token).await?;
    let t0 = fc_core::time::now_ms() - 600_000;
    let mut seq = 0;
    while h.svc().state.bus.stream_backlog(fc_bus::TELEMETRY_STREAM).await?.0 < 400 << 10 {
        seq += 1;
        ingest.push(fc_testkit::series_batch(seq, t0, (0..1000).map(f64::from).collect())).await?;
    }
    fc_testkit::wait_until(std::time::Duration::from_secs(10), "readiness to drop", || async { !ready(&h) }).await?;
    let (status, body) = http_get(h.svc().http_addr, "/readyz").await?;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("bus"), "{body}");
    Ok(())
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let r = fc_testkit::http::request(addr, "GET", path, &[], b"").await?;
    Ok((r.status, r.body))
}
