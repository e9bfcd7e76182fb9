//! The `govpulse-ranking` binary: configuration from flags and environment, then the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = govpulse_runtime::telemetry::init("govpulse-ranking");
    // Before binding: a SIGTERM as soon as the port is reachable is a clean stop.
    let stop = govpulse_edge::server::shutdown_signal();
    let server = govpulse_ranking::Server::build(govpulse_ranking::Config::parse()).await?;
    let served = server.run_until(stop).await;
    telemetry.shutdown().await;
    Ok(served?)
}
