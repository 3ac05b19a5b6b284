//! The internal `factorychain.v1.Settlement` API over a real gRPC port: only
//! the services it names may call it, the acting organisation is believed
//! only from them, and a design is published only when its upload arrived
//! whole.

use fc_proto::v1::settlement_client::SettlementClient as Raw;
use fc_proto::v1::upload_design_request::Part;
use fc_proto::v1::{DesignUploadHeader, ListNetworksRequest, NetworkRequest, UploadDesignRequest};
use fc_rpc::service_auth::{Credential, Issuer, TENANT_HEADER, TOKEN_HEADER};
use fc_settlement_api::SettlementClient;
use fc_testkit::Harness;
use std::time::Duration;
use tonic::Code;

const AGE: &[u8] = b"age-encryption.org/v1\n";

struct World {
    h: Harness,
    url: String,
    buyer: String,
    supplier: String,
}

async fn world() -> anyhow::Result<World> {
    let h = Harness::start().await?;
    let url = format!("http://{}", h.settlement().await?.grpc_addr);
    let buyer = h.registry.create_tenant("Buyer Motors", "growth")?.id;
    let supplier = h.registry.create_tenant("Supplier One", "growth")?.id;
    h.registry.request_partner(&buyer, &supplier)?;
    h.registry.accept_partner(&supplier, &buyer)?;
    Ok(World { h, url, buyer, supplier })
}

fn request<T>(msg: T, token: Option<&str>, tenant: Option<&str>) -> anyhow::Result<tonic::Request<T>> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut().insert(TOKEN_HEADER, t.parse()?);
    }
    if let Some(t) = tenant {
        r.metadata_mut().insert(TENANT_HEADER, t.parse()?);
    }
    Ok(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_named_services_may_call_and_only_they_may_name_the_actor() -> anyhow::Result<()> {
    let w = world().await?;
    let mut raw = Raw::new(tonic::transport::Channel::from_shared(w.url.clone())?.connect().await?);
    let stranger = Issuer::generate()?.mint("portal", Duration::from_secs(600))?;
    let (ingest, portal) = (w.h.service_token("ingest"), w.h.service_token("portal"));
    let (_, api_key) = w.h.registry.create_api_key(&w.buyer, "op", fc_registry::Role::Operator)?;
    let cases: [(Option<&str>, Option<&str>, Code, &str); 5] = [
        (None, Some(&w.buyer), Code::Unauthenticated, "a tenant named without a service credential is not believed"),
        (Some(&api_key), Some(&w.buyer), Code::Unauthenticated, "a tenant's API key is no service credential"),
        (Some(&stranger), Some(&w.buyer), Code::Unauthenticated, "a token of another issuer"),
        (Some(&ingest), Some(&w.buyer), Code::PermissionDenied, "ingest is not a caller of settlement"),
        (Some(&portal), None, Code::InvalidArgument, "the portal must name the organisation it acts for"),
    ];
    for (token, tenant, code, why) in cases {
        let e = raw.list_networks(request(ListNetworksRequest {}, token, tenant)?).await.unwrap_err();
        assert_eq!(e.code(), code, "{why}: {e:?}");
        let e = raw.list_designs(request(NetworkRequest { network: w.buyer.clone() }, token, tenant)?).await.unwrap_err();
        assert_eq!(e.code(), code, "{why}: {e:?}");
        let e = raw.get_log_info(request(NetworkRequest::default(), token, tenant)?).await.unwrap_err();
        assert_eq!(e.code(), code, "{why}: {e:?}");
        let header = UploadDesignRequest {
            part: Some(Part::Header(DesignUploadHeader {
                network: w.buyer.clone(),
                design_id: "D".into(),
                recipients: vec![w.supplier.clone()],
                content_length: None,
            })),
        };
        let e = raw.upload_design(request(futures::stream::iter([header]), token, tenant)?).await.unwrap_err();
        assert_eq!(e.code(), code, "{why}: {e:?}");
    }
    // The portal's credential with an organisation: that organisation acts, under the service's rules.
    let client = SettlementClient::new(&w.url, Credential::new(&portal)?, Duration::from_secs(10))?;
    let mine = client.networks(&w.supplier).await?;
    assert_eq!(
        mine.iter().map(|n| (n.network.as_str(), n.role.as_str())).collect::<Vec<_>>(),
        [(w.supplier.as_str(), "buyer"), (w.buyer.as_str(), "supplier")]
    );
    let e = client.publish_design(&w.buyer, &w.supplier, "D", std::slice::from_ref(&w.supplier), AGE).await.unwrap_err();
    assert_eq!(e.code, fc_core::ErrorCode::PermissionDenied, "a supplier does not publish the buyer's designs: {e:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_design_is_published_only_when_its_upload_arrived_whole() -> anyhow::Result<()> {
    let w = world().await?;
    let portal = w.h.service_token("portal");
    let client = SettlementClient::new(&w.url, Credential::new(&portal)?, Duration::from_secs(10))?;
    let to = [w.buyer.clone(), w.supplier.clone()];
    let file = [AGE, &vec![7u8; 3 << 20]].concat();
    // The caller's source fails midway (a client hung up on the portal): nothing is published.
    let (head, tail) = file.split_at(2 << 20);
    let parts: Vec<Result<bytes::Bytes, String>> =
        vec![Ok(bytes::Bytes::copy_from_slice(head)), Err("connection reset".into()), Ok(bytes::Bytes::copy_from_slice(tail))];
    let e = client.upload_design(&w.buyer, &w.buyer, "D", &to, None, futures::stream::iter(parts)).await.unwrap_err();
    assert!(!e.too_large && e.error.message.contains("connection reset"), "{e:?}");
    // A stream that ends without its end marker publishes nothing either.
    let mut raw = Raw::new(tonic::transport::Channel::from_shared(w.url.clone())?.connect().await?);
    let header = UploadDesignRequest {
        part: Some(Part::Header(DesignUploadHeader {
            network: w.buyer.clone(),
            design_id: "D".into(),
            recipients: to.to_vec(),
            content_length: None,
        })),
    };
    let mut parts = vec![header];
    parts.extend(file.chunks(fc_settlement_api::UPLOAD_CHUNK).map(|c| UploadDesignRequest { part: Some(Part::Data(c.to_vec())) }));
    let e = raw.upload_design(request(futures::stream::iter(parts), Some(&portal), Some(&w.buyer))?).await.unwrap_err();
    assert_eq!(e.code(), Code::Cancelled, "{e:?}");
    assert!(client.designs(&w.buyer, &w.buyer).await?.is_empty(), "nothing was published");
    let dir = w.h.settlement_dir().join("designs").join(&w.buyer);
    let left: Vec<_> = std::fs::read_dir(&dir)?.collect();
    assert!(left.is_empty(), "no file is left behind: {left:?}");
    // Whole, it is published, and streams back to a recipient byte for byte.
    let body = futures::stream::iter(file.chunks(100_000).map(|c| Ok::<_, String>(bytes::Bytes::copy_from_slice(c))).collect::<Vec<_>>());
    let d = client.upload_design(&w.buyer, &w.buyer, "D", &to, Some(file.len() as u64), body).await.map_err(|e| e.error)?;
    assert_eq!((d.version, d.downloadable), (1, true));
    assert_eq!(client.download_design_bytes(&w.buyer, &w.supplier, "D", 1).await?, file);
    // Over the per-file limit: refused as too large (HTTP 413 at the portal), before the body.
    let huge = client.upload_design(&w.buyer, &w.buyer, "E", &to, Some(1 << 40), futures::stream::empty::<Result<bytes::Bytes, String>>());
    let e = huge.await.unwrap_err();
    assert!(e.too_large, "{e:?}");
    Ok(())
}
