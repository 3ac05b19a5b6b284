//! Compiles `proto/factorychain/v1/*.proto` with protox (pure Rust: no protoc
//! install) and writes the descriptor set for gRPC reflection.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "factorychain/v1/telemetry.proto",
        "factorychain/v1/admin.proto",
        "factorychain/v1/bus.proto",
        "factorychain/v1/settlement.proto",
        "factorychain/v1/supply.proto",
        "factorychain/v1/tenancy.proto",
        "factorychain/v1/monitor.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("factorychain_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
