//! The `govpulse-aggregate` binary: configuration from flags and environment, then the library.

/// mimalloc: allocation is on every event's path (decoded ids, replies, plans), and it is
/// several times cheaper there than the system allocator (docs/PERFORMANCE.md). Ingest keeps
/// the system allocator: it returns a refused caller's large buffers to the system at once,
/// and what a caller without a credential costs is measured in resident memory there
/// (`tests/tests/edge_limits.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = govpulse_runtime::telemetry::init("govpulse-aggregate");
    // Before binding: a SIGTERM as soon as the port is reachable is a clean stop.
    let stop = govpulse_edge::server::shutdown_signal();
    let server = govpulse_aggregate::Server::build(govpulse_aggregate::Config::parse()).await?;
    let served = server.run_until(stop).await;
    telemetry.shutdown().await;
    Ok(served?)
}
