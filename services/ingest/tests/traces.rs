//! Traces across the service: with an OTLP endpoint configured, one device batch
//! is one trace from the gRPC call through JetStream to the store commit,
//! continuing the device's own `traceparent`. A real OTLP/gRPC receiver (the
//! collector protocol, served by tonic) gets the spans; the test checks their
//! parent links. One test per binary: the tracing subscriber is process-global.

use fc_testkit::Harness;
use std::time::Duration;

/// The server span of a call is named after its gRPC method.
const PUSH: &str = "/factorychain.v1.Ingest/Push";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_batch_is_one_trace_from_the_call_through_jetstream_to_the_store() -> anyhow::Result<()> {
    let otlp = fc_testkit::OtlpReceiver::start().await?;
    // Logs at "warn" (as `make bench` and quiet deployments run): the log level must not
    // decide which spans are exported.
    let tracing = fc_rpc::trace::init("fc-ingest-test", "warn", Some(&otlp.url)).map_err(anyhow::Error::msg)?;
    let h = Harness::start().await?;
    let (_, token) = h.tenant_with_device("Traced Co")?;
    // The device's own span: the service's spans must continue its trace.
    let (trace_id, device_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let mut ingest = h.ingest(&token).await?;
    let mut request = tonic::Request::new(fc_testkit::series_batch(1, fc_core::time::now_ms() - 60_000, vec![1.0, 2.0, 3.0]));
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-{device_span}-01").parse()?);
    assert_eq!(ingest.push(request).await?.into_inner().accepted, 3);
    h.wait_writer_idle().await?;
    tracing.flush().await;
    let spans = otlp.wait_for(trace_id, &[PUSH, "ingest_batch", "store_write"], Duration::from_secs(30)).await?;
    let one = |name: &str| {
        let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "one {name} span in {spans:?}");
        found[0].clone()
    };
    let (call, batch, store) = (one(PUSH), one("ingest_batch"), one("store_write"));
    assert_eq!(call.parent_span_id, device_span, "the call continues the device's span");
    assert_eq!(batch.parent_span_id, call.span_id, "the batch is inside the call");
    assert_eq!(store.parent_span_id, batch.span_id, "the store write continues the batch, across JetStream");
    assert!(spans.iter().all(|s| s.service == "fc-ingest-test"), "{spans:?}");

    // A call without a traceparent starts a trace of its own; nothing leaks between calls.
    let before = otlp.spans().len();
    ingest.push(fc_testkit::series_batch(2, fc_core::time::now_ms() - 50_000, vec![4.0])).await?;
    h.wait_writer_idle().await?;
    tracing.flush().await;
    fc_testkit::wait_until(Duration::from_secs(30), "the second call's spans", || {
        let n = otlp.spans().len();
        async move { n >= before + 3 }
    })
    .await?;
    let fresh: Vec<_> = otlp.spans().into_iter().skip(before).collect();
    let root = fresh.iter().find(|s| s.name == PUSH).expect("a server span of the call");
    assert!(root.parent_span_id.is_empty() && root.trace_id != trace_id, "{root:?}");
    Ok(())
}
