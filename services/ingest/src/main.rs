//! The `govpulse-ingest` binary: configuration from flags and environment, then the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = govpulse_runtime::telemetry::init("govpulse-ingest");
    // Before binding: a SIGTERM as soon as the port is reachable is a clean stop.
    let stop = govpulse_edge::server::shutdown_signal();
    let server = govpulse_ingest::Server::build(govpulse_ingest::Config::parse()).await?;
    let served = server.run_until(stop).await;
    telemetry.shutdown().await;
    Ok(served?)
}
