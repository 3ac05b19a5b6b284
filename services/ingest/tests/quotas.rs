//! Plan quotas at ingest: a device over its plan's rate is refused with
//! RESOURCE_EXHAUSTED while another tenant's ingest is unaffected. Latencies
//! are measured and printed; the assertions are on counts, never on timing.

use fc_proto::v1::{AckStatus, ReadingBatch};
use fc_testkit::Harness;
use std::time::{Duration, Instant};

fn batch(seq: u64, n: usize, t0: i64) -> ReadingBatch {
    fc_testkit::series_batch(seq, t0, vec![1.0; n])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_quota_device_is_refused_and_other_tenants_are_unaffected() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let reg = &h.registry;
    // Starter: 1,000 readings/s per device, 2,000 per tenant.
    let small = reg.create_tenant("Small Shop", "starter")?;
    let (_, noisy_token) = reg.create_device(&small.id, "noisy")?;
    let (_, calm_token) = h.tenant_with_device("Calm Factory")?;
    let t0 = fc_core::time::now_ms() - 3_600_000;

    let noisy = {
        let mut ingest = h.ingest(&noisy_token).await?;
        tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            let mut acks = ingest.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
            tokio::spawn(async move {
                for seq in 1..=60u64 {
                    if tx.send(batch(seq, 500, t0)).await.is_err() {
                        return;
                    }
                }
            });
            let (mut ok, mut refused) = (0, 0);
            while let Some(a) = acks.message().await? {
                match AckStatus::try_from(a.status)? {
                    AckStatus::Ok => ok += 1,
                    AckStatus::ResourceExhausted => {
                        assert!(a.message.contains("quota"), "{}", a.message);
                        refused += 1
                    }
                    other => panic!("unexpected {other:?}: {}", a.message),
                }
            }
            anyhow::Ok((ok, refused))
        })
    };
    let mut calm = h.ingest(&calm_token).await?;
    let mut calm_latencies = Vec::new();
    for seq in 1..=40u64 {
        let started = Instant::now();
        let r = calm.push(batch(seq, 10, t0)).await?.into_inner();
        calm_latencies.push(started.elapsed());
        assert_eq!(r.accepted, 10, "the calm tenant is never refused");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (ok, refused) = noisy.await??;
    calm_latencies.sort();
    eprintln!(
        "noisy device: {ok} batches accepted, {refused} refused; calm tenant push latency p50 {:?} max {:?}",
        calm_latencies[calm_latencies.len() / 2],
        calm_latencies[calm_latencies.len() - 1]
    );
    assert_eq!(ok + refused, 60);
    assert!(refused > 0, "60 x 500 readings far exceed 1,000 readings/s");
    assert!(ok >= 2, "the bucket's burst admits the first batches");
    // A single batch larger than the whole quota can never pass: a clear INVALID_ARGUMENT.
    let mut noisy_push = h.ingest(&noisy_token).await?;
    let err = noisy_push.push(batch(1000, 1500, t0)).await.expect_err("bigger than the bucket");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    Ok(())
}

/// Reads have a per-tenant budget: a starter tenant (250,000 readings read/s)
/// that reads 1,000,000 readings per call goes into debt (4 s of its budget per
/// call), and a read while in debt is refused with RESOURCE_EXHAUSTED saying
/// when to retry; another tenant's reads go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_read_budget_is_refused_and_others_read_on() -> anyhow::Result<()> {
    use fc_proto::v1::{RangeRequest, SeriesKey as PbKey};
    use fc_store::{Point, SeriesKey, SeriesPoints, TenantBatch};
    let h = Harness::start().await?;
    let reg = &h.registry;
    let heavy = reg.create_tenant("Heavy Reader", "starter")?;
    let (_, heavy_token) = reg.create_device(&heavy.id, "d")?;
    let (calm_id, calm_token) = h.tenant_with_device("Calm Reader")?;
    let t0 = fc_core::time::now_ms() - 3_600_000;
    for (tenant, n) in [(heavy.id.as_str(), 1_000_000i64), (calm_id.as_str(), 1_000)] {
        let points = (0..n).map(|i| Point { ts_ms: t0 + i, value: i as f64, quality: 1 }).collect();
        let series = vec![SeriesPoints { key: SeriesKey::new("m", "load"), unit: "kW".into(), points }];
        h.svc().state.store.write(vec![TenantBatch { tenant: tenant.into(), series }]).await?;
    }
    let all = || RangeRequest {
        series: Some(PbKey { machine: "m".into(), metric: "load".into() }),
        start_ms: t0,
        end_ms: t0 + 2_000_000,
        limit: 1_000_000,
        ..Default::default()
    };
    let mut heavy_q = h.query(&heavy_token).await?.max_decoding_message_size(256 << 20);
    let mut refused = None;
    let mut served = 0;
    // Each call costs 4 s of budget; unless a call takes over 4 s, one is refused within a few.
    for _ in 0..5 {
        match heavy_q.range(all()).await {
            Ok(r) => {
                assert_eq!(r.into_inner().readings.len(), 1_000_000, "a read is served whole");
                served += 1;
            }
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("a read in debt is refused");
    assert!(served >= 1, "the first read is served");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("read quota of 250000 readings/s") && refused.message().contains("retry in"), "{refused:?}");
    let mut calm_q = h.query(&calm_token).await?;
    for _ in 0..3 {
        let n = calm_q.range(all()).await?.into_inner().readings.len();
        assert_eq!(n, 1_000, "another tenant reads on");
    }
    Ok(())
}
