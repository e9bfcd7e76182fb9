//! The govpulse gRPC API, generated from the protos beside this crate: the one copy every
//! service and client uses.

pub mod codec;
pub mod wire;

/// The file descriptor set of every govpulse proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/govpulse_descriptor.bin"));

/// Generated code, one module per proto package.
#[allow(missing_docs, missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod govpulse {
    pub mod event {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/govpulse.event.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/govpulse.event.v1.serde.rs"));
        }
    }
    pub mod catalog {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/govpulse.catalog.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/govpulse.catalog.v1.serde.rs"));
        }
    }
    pub mod ingest {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/govpulse.ingest.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/govpulse.ingest.v1.serde.rs"));
        }
    }
    pub mod aggregate {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/govpulse.aggregate.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/govpulse.aggregate.v1.serde.rs"));
        }
    }
    pub mod ranking {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/govpulse.ranking.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/govpulse.ranking.v1.serde.rs"));
        }
    }
}

/// Every rpc of every govpulse service as the path a call names (`/govpulse.ingest.v1.
/// IngestService/SubmitEvents`), read from the descriptor set: the closed set of method
/// labels a server may record (a path outside it is no rpc of ours).
pub fn method_paths() -> Vec<String> {
    use prost::Message;
    let Ok(set) = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET) else {
        return Vec::new();
    };
    set.file
        .iter()
        .flat_map(|file| {
            let package = file.package().to_owned();
            file.service.iter().flat_map(move |service| {
                let service_path = format!("/{package}.{}/", service.name());
                service
                    .method
                    .iter()
                    .map(move |method| format!("{service_path}{}", method.name()))
            })
        })
        .collect()
}

pub use govpulse::{aggregate::v1 as aggregate, catalog::v1 as catalog, event::v1 as event};
pub use govpulse::{ingest::v1 as ingest, ranking::v1 as ranking};
pub use pbjson_types::Timestamp;
