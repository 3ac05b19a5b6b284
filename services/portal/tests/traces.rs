//! Traces through the portal: with an OTLP endpoint configured, one request
//! that changes the ledger is one trace from the HTTP call (continuing the
//! client's `traceparent`) through settlement to the ledger append, and one
//! chart read is one trace from the HTTP call to ingest's `Query` (over gRPC,
//! the service credential carrying the trace context). A real
//! OTLP/gRPC receiver gets the spans. One test per binary: the tracing
//! subscriber is process-global.

use fc_registry::Role;
use fc_testkit::http::request;
use fc_testkit::{Harness, ReceivedSpan};
use std::time::Duration;

/// `span`'s parent links lead to `ancestor` within 10 hops.
fn assert_descends(span: &ReceivedSpan, ancestor: &ReceivedSpan, spans: &[ReceivedSpan]) {
    let mut at = span;
    let mut hops = 0;
    while at.span_id != ancestor.span_id {
        at = spans.iter().find(|s| s.span_id == at.parent_span_id).unwrap_or_else(|| panic!("broken chain at {at:?} in {spans:?}"));
        hops += 1;
        assert!(hops < 10, "{spans:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_request_is_one_trace_through_the_settlement_service_to_the_ledger_append() -> anyhow::Result<()> {
    let otlp = fc_testkit::OtlpReceiver::start().await?;
    let tracing = fc_rpc::trace::init("fc-portal-test", "info", Some(&otlp.url)).map_err(anyhow::Error::msg)?;
    let h = Harness::start().await?;
    let addr = h.portal().await?.addr;
    let reg = h.registry.clone();
    let t = reg.create_tenant("Traced Buyer", "growth")?;
    let (_, key) = reg.create_api_key(&t.id, "erp", Role::Operator)?;
    let auth = format!("Bearer {key}");
    let keys = fc_sealed::OrgKeys::generate();
    let body = serde_json::json!({ "age_recipient": keys.recipient() }).to_string();
    let r =
        request(addr, "PUT", "/api/v1/org/key", &[("authorization", &auth), ("content-type", "application/json")], body.as_bytes()).await?;
    assert!((200..300).contains(&r.status), "{} {}", r.status, r.body);

    // The buyer publishes a design (a ledger entry), inside the client's own trace.
    let (trace_id, client_span) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let traceparent = format!("00-{trace_id}-{client_span}-01");
    let sealed = fc_sealed::seal(b"drawing", &[keys.recipient()])?;
    let path = format!("/api/v1/networks/{}/designs/bracket?to={}", t.id, t.id);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/octet-stream"), ("traceparent", traceparent.as_str())];
    let r = request(addr, "POST", &path, &headers, &sealed).await?;
    assert_eq!(r.status, 201, "{}", r.body);
    tracing.flush().await;
    let upload = "/factorychain.v1.Settlement/UploadDesign";
    let spans = otlp.wait_for(trace_id, &["ledger_append", upload], Duration::from_secs(30)).await?;
    let http = spans
        .iter()
        .find(|s| s.parent_span_id == client_span)
        .unwrap_or_else(|| panic!("a server span continuing the client's: {spans:?}"));
    assert!(http.name.starts_with("POST "), "{http:?}");
    // The append's ancestors lead, through settlement's gRPC server span, to the HTTP span.
    let append = spans.iter().find(|s| s.name == "ledger_append").expect("append span");
    let settlement = spans.iter().find(|s| s.name == upload).expect("waited for it");
    assert_descends(append, settlement, &spans);
    assert_descends(settlement, http, &spans);

    // A chart's read: the portal asks ingest's Query over gRPC, in the same trace.
    let (trace_id, client_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let traceparent = format!("00-{trace_id}-{client_span}-01");
    let headers = [("authorization", auth.as_str()), ("traceparent", traceparent.as_str())];
    let r = request(addr, "GET", "/api/v1/series/m/x", &headers, b"").await?;
    assert_eq!(r.status, 404, "no such series yet: {}", r.body);
    tracing.flush().await;
    let spans = otlp.wait_for(trace_id, &["/factorychain.v1.Query/Range"], Duration::from_secs(30)).await?;
    let http = spans.iter().find(|s| s.parent_span_id == client_span).unwrap_or_else(|| panic!("the portal's span: {spans:?}"));
    let query = spans.iter().find(|s| s.name == "/factorychain.v1.Query/Range").expect("waited for it");
    assert_descends(query, http, &spans);
    Ok(())
}
