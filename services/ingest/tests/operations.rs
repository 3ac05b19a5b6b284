//! Operational surface: health, readiness, metrics, grpc.health.v1, and a
//! graceful shutdown that answers every batch already taken from a stream.

use fc_proto::v1::{AckStatus, RangeRequest, ReadingBatch, SeriesKey};
use fc_testkit::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await?;
    let code = buf.split_whitespace().nth(1).unwrap_or("0").parse()?;
    Ok((code, buf))
}

fn batch(seq: u64, t0: i64) -> ReadingBatch {
    fc_testkit::series_batch(seq, t0, vec![seq as f64; 10])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_grpc_health() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let http = h.svc().http_addr;
    assert_eq!(http_get(http, "/healthz").await?.0, 200);
    assert_eq!(http_get(http, "/readyz").await?.0, 200);
    let (tenant, token) = h.tenant_with_device("Ops Co")?;
    h.ingest(&token).await?.push(batch(1, fc_core::time::now_ms() - 60_000)).await?;
    h.wait_writer_idle().await?;
    let (code, body) = http_get(http, "/metrics").await?;
    assert_eq!(code, 200);
    for name in ["ingest_readings_total", "ingest_batches_total", "store_writer_readings_total", "ingest_ack_seconds"] {
        assert!(body.contains(name), "/metrics lacks {name}");
    }
    assert!(!body.contains(&token) && !body.contains(&tenant), "no tenant id or secret in metric labels");
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    for service in ["", "factorychain.v1.Ingest", "factorychain.v1.Query"] {
        assert_eq!(fc_testkit::health_status(&h.grpc_url(), service).await?, serving, "health of {service:?}");
    }
    Ok(())
}

/// Each gRPC port lists over reflection (v1 and v1alpha) exactly what it
/// serves, and answers health for it: ingest's port Ingest and Query (not
/// settlement's Ledger, which is in the same proto package); the portal's
/// tenancy port Admin and Tenancy; the settlement port Ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_port_lists_exactly_the_services_it_serves() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let expect = |services: &[&str]| fc_rpc::listed(services);
    let main = expect(&["factorychain.v1.Ingest", "factorychain.v1.Query"]);
    assert!(main.contains(&"grpc.reflection.v1alpha.ServerReflection".to_string()) && !main.iter().any(|s| s.ends_with("Ledger")));
    let (v1, v1alpha) = fc_testkit::reflected_services(&h.grpc_url()).await?;
    assert_eq!(v1, main, "main port, reflection v1");
    assert_eq!(v1alpha, main, "main port, reflection v1alpha");
    let tenancy = expect(&["factorychain.v1.Admin", "factorychain.v1.Tenancy"]);
    let (v1, v1alpha) = fc_testkit::reflected_services(&h.admin_url()).await?;
    assert_eq!((&v1, &v1alpha), (&tenancy, &tenancy), "tenancy port, reflection v1 and v1alpha");
    let settlement = format!("http://{}", h.settlement().await?.grpc_addr);
    let (v1, v1alpha) = fc_testkit::reflected_services(&settlement).await?;
    let ledger = expect(&["factorychain.v1.Ledger", "factorychain.v1.Settlement"]);
    assert_eq!(v1, ledger, "settlement port, reflection v1");
    assert_eq!(v1alpha, ledger, "settlement port, reflection v1alpha");
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(fc_testkit::health_status(&settlement, "factorychain.v1.Ledger").await?, serving);
    assert_eq!(fc_testkit::health_status(&settlement, "factorychain.v1.Settlement").await?, serving);
    assert_eq!(fc_testkit::health_status(&settlement, "").await?, serving);
    assert!(fc_testkit::health_status(&settlement, "factorychain.v1.Ingest").await.is_err(), "the settlement port does not serve Ingest");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_batches_in_flight_and_loses_none() -> anyhow::Result<()> {
    let mut h = Harness::start().await?;
    let (_, token) = h.tenant_with_device("Drain Co")?;
    let t0 = fc_core::time::now_ms() - 600_000;
    let mut ingest = h.ingest(&token).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(1000);
    for seq in 1..=500 {
        tx.send(batch(seq, t0)).await?;
    }
    let mut acks = ingest.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    let first = acks.message().await?.expect("first ack");
    assert_eq!(first.status, AckStatus::Ok as i32);
    // Shut down while the device still has batches queued and the stream is open.
    let svc = h.svc.take().expect("running");
    let stopping = tokio::spawn(svc.stop());
    let mut acked = vec![first.device_seq];
    let end = loop {
        match acks.message().await {
            Ok(Some(a)) => {
                assert_eq!(a.status, AckStatus::Ok as i32, "{a:?}");
                acked.push(a.device_seq);
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(end.is_ok(), "the stream ends cleanly at shutdown, not with an error: {end:?}");
    stopping.await?;
    drop(tx);
    // Restart: everything that was acked is there.
    h.restart().await?;
    h.wait_writer_idle().await?;
    let r = h
        .query(&token)
        .await?
        .range(RangeRequest {
            series: Some(SeriesKey { machine: "m".into(), metric: "x".into() }),
            start_ms: t0,
            end_ms: t0 + 100_000,
            limit: 100_000,
            ..Default::default()
        })
        .await?
        .into_inner();
    for seq in &acked {
        assert!(r.readings.iter().any(|x| x.value == *seq as f64), "acked batch {seq} missing after shutdown");
    }
    assert!(r.readings.len() >= acked.len() * 10);
    Ok(())
}
