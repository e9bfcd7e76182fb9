//! Generates the Rust code for every govpulse proto, its protobuf JSON mapping (serde, via
//! pbjson) and the file descriptor set that the services serve through reflection.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "govpulse/event/v1/dossier_event.proto",
    "govpulse/event/v1/assessed_score.proto",
    "govpulse/catalog/v1/catalog_service.proto",
    "govpulse/ingest/v1/ingest_service.proto",
    "govpulse/aggregate/v1/aggregate_service.proto",
    "govpulse/ranking/v1/ranking_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out.join("govpulse_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        // Well-known types come from pbjson-types so that they have the JSON mapping too.
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        // Undecodable bytes are INVALID_ARGUMENT, and batches are counted before decoding.
        .codec_path("crate::codec::GovpulseCodec")
        .compile_protos(PROTOS, &["."])?;

    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .build(&[".govpulse"])?;

    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
