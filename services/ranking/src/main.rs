//! The `govpulse-ranking` binary: configuration from flags and environment, then the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = govpulse_common::telemetry::init("govpulse-ranking");
    let server = govpulse_ranking::Server::build(govpulse_ranking::Config::parse()).await?;
    let served = server
        .run_until(govpulse_common::server::shutdown_signal())
        .await;
    telemetry.shutdown().await;
    Ok(served?)
}
