//! The R3 guarantee on a real 3-node JetStream cluster: devices stream while
//! the TELEMETRY stream's leader is killed with SIGKILL; they re-send what was
//! not acknowledged, and every reading is stored exactly once.

use fc_proto::v1::{AckStatus, RangeRequest, SeriesKey};
use fc_testkit::{Harness, NatsCluster};
use std::collections::BTreeSet;
use std::time::Duration;

const BATCHES: u64 = 400;
const PER_BATCH: usize = 50;

/// Stream `seqs` once; return the ones acknowledged (OK or DUPLICATE). `on_ack` sees
/// the number acknowledged so far after each one.
async fn stream_once(h: &Harness, token: &str, seqs: Vec<u64>, t0: i64, mut on_ack: impl FnMut(usize)) -> BTreeSet<u64> {
    let mut acked = BTreeSet::new();
    let Ok(mut ingest) = h.ingest(token).await else { return acked };
    let batches: Vec<_> =
        seqs.iter().map(|&s| fc_testkit::series_batch(s, t0, (0..PER_BATCH).map(|i| (s * 1000 + i as u64) as f64).collect())).collect();
    let Ok(resp) = ingest.stream(tokio_stream::iter(batches)).await else { return acked };
    let mut acks = resp.into_inner();
    while let Ok(Some(a)) = acks.message().await {
        if a.status == AckStatus::Ok as i32 || a.status == AckStatus::Duplicate as i32 {
            acked.insert(a.device_seq);
            on_ack(acked.len());
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_mid_stream_loses_no_acked_reading() -> anyhow::Result<()> {
    let mut cluster = NatsCluster::start(3).await?;
    let h = Harness::start_on(cluster.url(), |c| {
        c.bus.replicas = 3;
        c.writer.ack_wait_ms = 3_000;
    })
    .await?;
    let reg = &h.registry;
    let t = reg.create_tenant("Cluster Steel", "enterprise")?;
    let (_, token) = reg.create_device(&t.id, "gw")?;
    let t0 = fc_core::time::now_ms() - 3_600_000;

    // Find the stream's leader, then kill it once the device is part-way through.
    let leader = {
        let mut s = h.svc().state.bus.jetstream().get_stream(fc_bus::TELEMETRY_STREAM).await?;
        s.info().await?.cluster.as_ref().and_then(|c| c.leader.clone()).ok_or_else(|| anyhow::anyhow!("no stream leader"))?
    };
    // SIGKILL the leader right when the 60th ack arrives: the other 340 batches are
    // still to be sent or in flight.
    let at = cluster.nodes.iter().position(|n| n.name == leader).ok_or_else(|| anyhow::anyhow!("the leader is not one of ours"))?;
    let mut doomed = Some(cluster.nodes.remove(at));
    let mut acked = stream_once(&h, &token, (1..=BATCHES).collect(), t0, |n| {
        if n == 60
            && let Some(mut node) = doomed.take()
        {
            node.kill();
        }
    })
    .await;
    assert!(doomed.is_none(), "the leader was killed mid-stream, after 60 of {BATCHES} acks");
    eprintln!("{} of {BATCHES} batches acked in the stream that lost its leader", acked.len());
    for _round in 0..120 {
        let rest: Vec<u64> = (1..=BATCHES).filter(|s| !acked.contains(s)).collect();
        if rest.is_empty() {
            break;
        }
        acked.extend(stream_once(&h, &token, rest, t0, |_| {}).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(acked.len(), BATCHES as usize, "every batch is eventually acknowledged on the surviving nodes");

    let q = h.query(&token).await?;
    let req = RangeRequest {
        series: Some(SeriesKey { machine: "m".into(), metric: "x".into() }),
        start_ms: t0,
        end_ms: t0 + (BATCHES as i64 + 2) * PER_BATCH as i64,
        limit: 1_000_000,
        ..Default::default()
    };
    fc_testkit::assert_stored_once(&q, req, BATCHES as usize * PER_BATCH, |i| {
        let (seq, j) = (1 + (i / PER_BATCH) as u64, (i % PER_BATCH) as u64);
        (t0 + (seq as i64) * PER_BATCH as i64 + j as i64 + 1, (seq * 1000 + j) as f64)
    })
    .await?;
    Ok(())
}
