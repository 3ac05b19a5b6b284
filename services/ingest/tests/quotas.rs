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
    let reg = &h.svc().state.registry;
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
