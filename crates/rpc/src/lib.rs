//! gRPC server plumbing every service shares: health and reflection (here),
//! traces across services ([`trace`]).
//!
//! [`add_introspection`] gives a server `grpc.health.v1.Health` and server
//! reflection in both versions tools use (`grpc.reflection.v1` and
//! `v1alpha`), listing exactly the services the port serves: a descriptor set
//! holds more services than one port serves (settlement's `Ledger` is in the
//! same proto package as ingest's `Query`), so the list is explicit.
//!
//! Health: every listed service and the server as a whole (`""`) answer
//! `SERVING` until shutdown fires, then `NOT_SERVING`.

pub mod ops;
pub mod service_auth;
pub mod trace;

use fc_core::Shutdown;
use tonic::transport::server::Router;
use tonic_health::ServingStatus;

/// The bearer token of a request (`authorization: Bearer <token>`), if any.
pub fn bearer(meta: &tonic::metadata::MetadataMap) -> Option<&str> {
    let v = meta.get("authorization")?.to_str().ok()?;
    v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(str::trim)
}

/// `grpc.health.v1.Health`.
pub const HEALTH: &str = "grpc.health.v1.Health";
/// `grpc.reflection.v1.ServerReflection`.
pub const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
/// `grpc.reflection.v1alpha.ServerReflection`.
pub const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

/// Why introspection could not be set up (a descriptor set that does not decode).
pub type Error = tonic_reflection::server::Error;

/// Every service name reflection lists for a port serving `services`: those,
/// health and both reflection versions, sorted.
pub fn listed(services: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = services.iter().map(|s| s.to_string()).collect();
    all.extend([HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA].map(String::from));
    all.sort();
    all.dedup();
    all
}

/// Adds health and reflection (v1 and v1alpha) for `services` (full names, as
/// in `factorychain.v1.Ingest`), described in `descriptors` (encoded
/// `FileDescriptorSet`s), to `router`.
pub async fn add_introspection<L>(
    router: Router<L>,
    descriptors: &[&'static [u8]],
    services: &[&'static str],
    shutdown: Shutdown,
) -> Result<Router<L>, Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status("", ServingStatus::Serving).await;
    for s in services {
        reporter.set_service_status(*s, ServingStatus::Serving).await;
    }
    {
        let services: Vec<&'static str> = services.to_vec();
        tokio::spawn(async move {
            shutdown.wait().await;
            reporter.set_service_status("", ServingStatus::NotServing).await;
            for s in services {
                reporter.set_service_status(s, ServingStatus::NotServing).await;
            }
        });
    }
    let configure = || {
        let mut b = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET);
        for d in descriptors {
            b = b.register_encoded_file_descriptor_set(d);
        }
        for name in listed(services) {
            b = b.with_service_name(name);
        }
        b
    };
    let v1 = configure().build_v1()?;
    let v1alpha = configure().build_v1alpha()?;
    Ok(router.add_service(health).add_service(v1).add_service(v1alpha))
}
