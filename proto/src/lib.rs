//! The govpulse gRPC API, generated from the protos beside this crate: the one copy every
//! service and client uses.

/// The file descriptor set of every govpulse proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/govpulse_descriptor.bin"));

/// Generated code, one module per proto package.
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
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

pub use govpulse::{aggregate::v1 as aggregate, catalog::v1 as catalog, event::v1 as event};
pub use govpulse::{ingest::v1 as ingest, ranking::v1 as ranking};
pub use pbjson_types::Timestamp;
