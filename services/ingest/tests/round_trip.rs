//! Readings pushed over gRPC come back from Query exactly (real nats-server, real store).

use fc_proto::v1::{
    AckStatus, Aggregation, LatestRequest, ListSeriesRequest, Quality, RangeRequest, Reading, ReadingBatch, SeriesKey, SeriesReadings,
};
use fc_testkit::Harness;

fn now() -> i64 {
    fc_core::time::now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_readings_come_back_exactly() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (_, token) = h.tenant_with_device("Acme Metal")?;
    let mut ingest = h.ingest(&token).await?;
    let t0 = now() - 60_000;

    // Unary push, one-by-one form, with a quality flag and an awkward value.
    let r = ingest
        .push(ReadingBatch {
            device_seq: 1,
            readings: vec![
                Reading { machine: "press-1".into(), metric: "temp".into(), unit: "Cel".into(), timestamp_ms: t0, value: 21.5, quality: 0 },
                Reading {
                    machine: "press-1".into(),
                    metric: "temp".into(),
                    unit: "Cel".into(),
                    timestamp_ms: t0 + 1000,
                    value: -0.1 + 0.3,
                    quality: Quality::Bad as i32,
                },
            ],
            series: vec![],
        })
        .await?
        .into_inner();
    assert_eq!((r.accepted, r.duplicate), (2, false));

    // Streamed, compact form, two machines in one batch.
    let values: Vec<f64> = (0..500).map(|i| (i as f64 * 0.37).sin() * 100.0).collect();
    let batch = ReadingBatch {
        device_seq: 2,
        readings: vec![],
        series: vec![
            SeriesReadings {
                machine: "press-1".into(),
                metric: "force".into(),
                unit: "kN".into(),
                base_timestamp_ms: t0,
                timestamp_deltas_ms: vec![100; 500],
                values: values.clone(),
                qualities: vec![],
            },
            SeriesReadings {
                machine: "lathe-2".into(),
                metric: "rpm".into(),
                unit: "1/min".into(),
                base_timestamp_ms: t0,
                timestamp_deltas_ms: vec![0, 5],
                values: vec![1200.0, 1250.0],
                qualities: vec![],
            },
        ],
    };
    let acks: Vec<_> = {
        let resp = ingest.stream(tokio_stream::iter(vec![batch])).await?;
        let mut s = resp.into_inner();
        let mut out = Vec::new();
        while let Some(a) = s.message().await? {
            out.push(a);
        }
        out
    };
    assert_eq!(acks.len(), 1);
    assert_eq!((acks[0].device_seq, acks[0].accepted, acks[0].status), (2, 502, AckStatus::Ok as i32));

    h.wait_writer_idle().await?;
    let mut query = h.query(&token).await?;
    let key = |m: &str, x: &str| Some(SeriesKey { machine: m.into(), metric: x.into() });
    let force = query
        .range(RangeRequest { series: key("press-1", "force"), start_ms: t0, end_ms: t0 + 100_000, ..Default::default() })
        .await?
        .into_inner();
    assert_eq!(force.unit, "kN");
    assert_eq!(force.readings.len(), 500);
    for (i, r) in force.readings.iter().enumerate() {
        assert_eq!(r.timestamp_ms, t0 + 100 * (i as i64 + 1));
        assert_eq!(r.value.to_bits(), values[i].to_bits(), "value {i} not bit-exact");
        assert_eq!(r.quality, Quality::Good as i32);
    }
    let temp = query
        .range(RangeRequest { series: key("press-1", "temp"), start_ms: t0, end_ms: t0 + 2000, ..Default::default() })
        .await?
        .into_inner();
    assert_eq!(
        temp.readings.iter().map(|r| (r.timestamp_ms, r.value, r.quality)).collect::<Vec<_>>(),
        vec![(t0, 21.5, 1), (t0 + 1000, -0.1 + 0.3, 3)]
    );

    // Aggregated: 10 s steps over 50 s of 100 ms readings.
    let agg = query
        .range(RangeRequest {
            series: key("press-1", "force"),
            start_ms: t0,
            end_ms: t0 + 100_000,
            step_ms: 10_000,
            aggregations: vec![Aggregation::Avg as i32, Aggregation::Count as i32],
            limit: 0,
        })
        .await?
        .into_inner();
    assert_eq!(agg.points.iter().map(|p| p.count).sum::<u64>(), 500);
    let first = &agg.points[0];
    let in_first: Vec<f64> = force.readings.iter().filter(|r| r.timestamp_ms < first.bucket_start_ms + 10_000).map(|r| r.value).collect();
    assert_eq!(first.count as usize, in_first.len());
    assert_eq!(first.max, in_first.iter().cloned().fold(f64::MIN, f64::max));

    let latest = query.latest(LatestRequest { series: vec![] }).await?.into_inner();
    let mut names: Vec<_> = latest.readings.iter().map(|r| format!("{}/{}={}", r.machine, r.metric, r.value)).collect();
    names.sort();
    assert_eq!(
        names,
        vec!["lathe-2/rpm=1250".to_string(), format!("press-1/force={}", values[499]), format!("press-1/temp={}", -0.1 + 0.3)]
    );
    let series = query.list_series(ListSeriesRequest { machine: "press-1".into() }).await?.into_inner();
    assert_eq!(series.series.iter().map(|s| s.metric.as_str()).collect::<Vec<_>>(), ["force", "temp"]);

    // The same readings are there after a graceful restart.
    drop((ingest, query));
    let mut h = h;
    h.restart().await?;
    let mut query = h.query(&token).await?;
    let again = query
        .range(RangeRequest { series: key("press-1", "force"), start_ms: t0, end_ms: t0 + 100_000, ..Default::default() })
        .await?
        .into_inner();
    assert_eq!(again.readings, force.readings);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_device_seq_is_acked_and_stored_once() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (_, token) = h.tenant_with_device("Dup Works")?;
    let mut ingest = h.ingest(&token).await?;
    let t0 = now() - 10_000;
    let batch = |v: f64| ReadingBatch {
        device_seq: 42,
        readings: vec![Reading { machine: "m".into(), metric: "x".into(), unit: "".into(), timestamp_ms: t0, value: v, quality: 0 }],
        series: vec![],
    };
    let first = ingest.push(batch(1.0)).await?.into_inner();
    let second = ingest.push(batch(1.0)).await?.into_inner();
    assert!(!first.duplicate);
    assert!(second.duplicate, "a re-sent batch must be reported as a duplicate");
    // On a stream, the duplicate gets its own ack status.
    let mut s = ingest.stream(tokio_stream::iter(vec![batch(1.0)])).await?.into_inner();
    let ack = s.message().await?.expect("an ack");
    assert_eq!((ack.status, ack.accepted), (AckStatus::Duplicate as i32, 1));
    h.wait_writer_idle().await?;
    let mut q = h.query(&token).await?;
    let r = q
        .range(RangeRequest {
            series: Some(SeriesKey { machine: "m".into(), metric: "x".into() }),
            start_ms: t0 - 1,
            end_ms: t0 + 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(r.readings.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_right_after_an_ack_sees_the_acknowledged_readings() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (_, token) = h.tenant_with_device("Read Your Writes")?;
    let mut ingest = h.ingest(&token).await?;
    let mut query = h.query(&token).await?;
    let t0 = now() - 60_000;
    // The writer commits at most every 20 ms: without the settle wait, most of these
    // reads would come before the reading they look for is stored.
    for i in 0..20i64 {
        let reading = Reading {
            machine: "press-1".into(),
            metric: "temp".into(),
            unit: "Cel".into(),
            timestamp_ms: t0 + i,
            value: i as f64,
            quality: 0,
        };
        let ack = ingest.push(ReadingBatch { device_seq: i as u64 + 1, readings: vec![reading], series: vec![] }).await?.into_inner();
        assert_eq!(ack.accepted, 1);
        let latest = query.latest(LatestRequest { series: vec![] }).await?.into_inner();
        assert_eq!(
            latest.readings.iter().map(|r| r.value).collect::<Vec<_>>(),
            [i as f64],
            "read {i} missed the write acknowledged before it"
        );
    }
    Ok(())
}
