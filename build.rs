//! Compiles `proto/` with protox (pure Rust, no system `protoc`), generates the
//! tonic code and writes the descriptor set that server reflection serves.

use std::{env, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/callscope/v1/call.proto",
    "proto/callscope/v1/call_service.proto",
    "proto/callscope/v1/ingest_service.proto",
    "proto/callscope/v1/analytics_service.proto",
    "proto/callscope/v1/admin_service.proto",
    "proto/callscope/v1/events.proto",
    "proto/callscope/v1/catalog_service.proto",
    "proto/callscope/v1/sync_service.proto",
    "proto/callscope/v1/subscription_service.proto",
    "proto/google/rpc/error_details.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // `sqlx::migrate!` embeds the migration files at compile time; without
    // this a new migration file is silently left out of the binary.
    println!("cargo:rerun-if-changed=migrations");
    let file_descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_bytes = file_descriptors.encode_to_vec();
    std::fs::write(out_dir.join("callscope_descriptor.bin"), &descriptor_bytes)?;
    tonic_prost_build::configure()
        // pbjson's well-known types carry serde impls that follow the proto3
        // JSON mapping (RFC 3339 timestamps, durations as "1.5s").
        .compile_well_known_types(true)
        .extern_path(".google.protobuf.Timestamp", "crate::proto::Timestamp")
        .extern_path(".google.protobuf", "::pbjson_types")
        // prost's codec answers INTERNAL for a malformed body; ours,
        // INVALID_ARGUMENT, and it encodes and decodes through contiguous
        // bytes (src/api/codec.rs).
        .codec_path("crate::api::codec::ValidatingCodec")
        .build_server(true)
        .build_client(true)
        .compile_fds(file_descriptors)?;
    // serde impls for every callscope message, in the proto3 JSON mapping
    // (lowerCamelCase names, enums by name, 64-bit integers as strings):
    // the JSON API, outgoing webhooks and exports all speak it.
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .build(&[".callscope"])?;
    Ok(())
}
