//! What a govpulse process runs on, whatever its callers do: the catalog and the files it
//! watches (`catalog_files`, `live_file`, `index_file`, `targets_file`), logs and traces
//! (`telemetry`), Prometheus metrics and their listener (`prometheus`, `grpc_metrics`), TLS
//! material (`tls`) and channels to other services (`client`).
//!
//! It knows nothing of callers: serving, limits, protocols and identity are
//! `govpulse-edge`'s, which builds on this crate.

pub mod alerts_file;
pub mod catalog_files;
pub mod client;
pub mod grpc_metrics;
pub mod index_file;
pub mod live_file;
pub mod prometheus;
pub mod targets_file;
pub mod telemetry;
pub mod tls;

/// Binds `addr` (port 0 picks a free port) and reads back the address it got.
pub async fn listen(
    addr: std::net::SocketAddr,
) -> Result<(tokio::net::TcpListener, std::net::SocketAddr), BindError> {
    let bound = async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        Ok((listener, local))
    };
    bound.await.map_err(|source| BindError { addr, source })
}

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
