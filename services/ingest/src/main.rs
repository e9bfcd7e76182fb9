//! The `govpulse-ingest` binary: configuration from flags and environment, then the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = govpulse_common::telemetry::init("govpulse-ingest");
    let server = govpulse_ingest::Server::build(govpulse_ingest::Config::parse()).await?;
    let served = server
        .run_until(govpulse_common::server::shutdown_signal())
        .await;
    telemetry.shutdown().await;
    Ok(served?)
}
