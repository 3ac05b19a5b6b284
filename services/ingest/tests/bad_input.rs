//! Every invalid batch gets a clear status naming the problem and stores nothing.

use fc_proto::v1::{AckStatus, ListSeriesRequest, Reading, ReadingBatch, SeriesReadings};
use fc_testkit::Harness;

fn reading(machine: &str, metric: &str, ts: i64, value: f64) -> Reading {
    Reading { machine: machine.into(), metric: metric.into(), unit: "".into(), timestamp_ms: ts, value, quality: 0 }
}

fn one(r: Reading) -> ReadingBatch {
    ReadingBatch { device_seq: 1, readings: vec![r], series: vec![] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_batches_are_refused_and_store_nothing() -> anyhow::Result<()> {
    let h = Harness::start_with(|c| c.limits.max_message_bytes = 256 * 1024).await?;
    let (_, token) = h.tenant_with_device("Bad Input Co")?;
    let mut ingest = h.ingest(&token).await?;
    let now = fc_core::time::now_ms();
    let huge = ReadingBatch {
        device_seq: 1,
        readings: vec![],
        series: vec![SeriesReadings {
            machine: "m".into(),
            metric: "x".into(),
            unit: "".into(),
            base_timestamp_ms: now - 100_000,
            timestamp_deltas_ms: vec![1; 30_000],
            values: vec![1.5; 30_000],
            qualities: vec![],
        }],
    };
    // (case, batch, expected code, text the message must contain)
    let cases: Vec<(&str, ReadingBatch, tonic::Code, &str)> = vec![
        ("NaN", one(reading("m", "x", now, f64::NAN)), tonic::Code::InvalidArgument, "readings[0]"),
        ("+inf", one(reading("m", "x", now, f64::INFINITY)), tonic::Code::InvalidArgument, "finite"),
        ("-inf", one(reading("m", "x", now, f64::NEG_INFINITY)), tonic::Code::InvalidArgument, "finite"),
        ("empty metric", one(reading("m", "", now, 1.0)), tonic::Code::InvalidArgument, "readings[0].metric"),
        ("empty machine", one(reading("", "x", now, 1.0)), tonic::Code::InvalidArgument, "readings[0].machine"),
        ("8 days old", one(reading("m", "x", now - 8 * 86_400_000, 1.0)), tonic::Code::InvalidArgument, "outside the accepted window"),
        ("11 min ahead", one(reading("m", "x", now + 11 * 60_000, 1.0)), tonic::Code::InvalidArgument, "outside the accepted window"),
        (
            "too many readings",
            ReadingBatch { device_seq: 1, readings: (0..10_001).map(|i| reading("m", "x", now - i, 1.0)).collect(), series: vec![] },
            tonic::Code::InvalidArgument,
            "limit is 10000",
        ),
        ("over the byte limit", huge, tonic::Code::InvalidArgument, "exceeds the limit"),
        ("seq 0", ReadingBatch { device_seq: 0, ..one(reading("m", "x", now, 1.0)) }, tonic::Code::InvalidArgument, "device_seq"),
        ("no readings", ReadingBatch { device_seq: 1, readings: vec![], series: vec![] }, tonic::Code::InvalidArgument, "no reading"),
    ];
    for (name, batch, code, text) in &cases {
        let err = ingest.push(batch.clone()).await.expect_err(name);
        assert_eq!(err.code(), *code, "{name}: {err:?}");
        assert!(err.message().contains(text), "{name}: message {:?} should contain {text:?}", err.message());
    }
    // On a stream each bad batch gets an INVALID_ARGUMENT ack and the stream goes on.
    let mut stream_batches: Vec<ReadingBatch> = cases.iter().filter(|c| c.0 != "over the byte limit").map(|c| c.1.clone()).collect();
    for (i, b) in stream_batches.iter_mut().enumerate() {
        if b.device_seq != 0 {
            b.device_seq = 100 + i as u64;
        }
    }
    let n = stream_batches.len();
    let mut s = ingest.stream(tokio_stream::iter(stream_batches)).await?.into_inner();
    let mut acks = Vec::new();
    while let Some(a) = s.message().await? {
        acks.push(a);
    }
    assert_eq!(acks.len(), n);
    assert!(acks.iter().all(|a| a.status == AckStatus::InvalidArgument as i32 && a.accepted == 0 && !a.message.is_empty()), "{acks:?}");

    // A message far over the gRPC limit is refused by the transport with a clear status.
    let giant = ReadingBatch {
        device_seq: 5,
        readings: vec![],
        series: vec![SeriesReadings {
            machine: "m".into(),
            metric: "x".into(),
            unit: "".into(),
            base_timestamp_ms: now,
            timestamp_deltas_ms: vec![0; 100_000],
            values: vec![1.0; 100_000],
            qualities: vec![],
        }],
    };
    let err = ingest.push(giant).await.expect_err("giant batch");
    assert!(matches!(err.code(), tonic::Code::InvalidArgument | tonic::Code::OutOfRange | tonic::Code::ResourceExhausted), "{err:?}");

    // Nothing of it reached the bus or the store.
    assert_eq!(h.writer_backlog().await?, 0);
    let mut q = h.query(&token).await?;
    assert!(q.list_series(ListSeriesRequest::default()).await?.into_inner().series.is_empty());
    // A good batch after all that still works.
    assert_eq!(ingest.push(one(reading("m", "x", now, 1.0))).await?.into_inner().accepted, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_unauthenticated_everywhere() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (tenant, token) = h.tenant_with_device("Auth Co")?;
    let now = fc_core::time::now_ms();
    // The same token with its last secret digit changed (to a different digit, always).
    let last = if token.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &token[..token.len() - 1]);
    assert_ne!(forged, token);
    for bad in ["", "nonsense", "fcd_d_0000000000000000_00", forged.as_str()] {
        let mut ingest = h.ingest(if bad.is_empty() { "x" } else { bad }).await?;
        let err = ingest.push(one(reading("m", "x", now, 1.0))).await.expect_err(bad);
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad}");
        let err = ingest.stream(tokio_stream::iter(vec![one(reading("m", "x", now, 1.0))])).await.expect_err(bad);
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad}");
        let mut q = h.query(if bad.is_empty() { "x" } else { bad }).await?;
        assert_eq!(q.list_series(ListSeriesRequest::default()).await.expect_err(bad).code(), tonic::Code::Unauthenticated);
    }
    // A revoked token stops working at once (the owner's notice over NATS), on an open stream too.
    let mut ingest = h.ingest(&token).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut acks = ingest.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    tx.send(ReadingBatch { device_seq: 10, ..one(reading("m", "x", now, 1.0)) }).await?;
    assert_eq!(acks.message().await?.expect("ack").status, AckStatus::Ok as i32);
    let dev = h.registry.list_devices(&tenant)?.remove(0);
    h.admin().await?.revoke_device(fc_proto::v1::RevokeDeviceRequest { tenant_id: tenant.clone(), device_id: dev.id }).await?;
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), acks.message()).await?.expect_err("the open stream is cut");
    assert_eq!(end.code(), tonic::Code::Unauthenticated);
    drop(tx);
    assert_eq!(ingest.push(one(reading("m", "x", now, 1.0))).await.expect_err("revoked").code(), tonic::Code::Unauthenticated);
    Ok(())
}
