//! Generated gRPC bindings of `proto/factorychain/v1`. Invariant: nothing but
//! generated code lives here; conversion to domain types happens in the
//! handlers, where validation errors become `InvalidArgument`.
#![allow(clippy::all, missing_docs)]

/// `factorychain.v1`: telemetry ingest, query and administration.
pub mod v1 {
    tonic::include_proto!("factorychain.v1");
}

/// Encoded `FileDescriptorSet` of every proto file, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("factorychain_descriptor");
