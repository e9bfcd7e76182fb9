//! What a govpulse process runs on, whatever its callers do: the catalog and the files it
//! watches (`catalog_files`, `live_file`, `index_file`, `targets_file`), logs and traces
//! (`telemetry`), Prometheus metrics and their listener (`prometheus`, `grpc_metrics`), TLS
//! material (`tls`) and channels to other services (`client`).
//!
//! It knows nothing of callers: serving, limits, protocols and identity are
//! `govpulse-edge`'s, which builds on this crate.

pub mod catalog_files;
pub mod client;
pub mod grpc_metrics;
pub mod index_file;
pub mod live_file;
pub mod prometheus;
pub mod targets_file;
pub mod telemetry;
pub mod tls;

/// A listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind {addr}: {source}")]
pub struct BindError {
    /// The address asked for.
    pub addr: std::net::SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}
