//! The `govpulse-aggregate` binary: configuration from flags and environment, then the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = govpulse_common::telemetry::init("govpulse-aggregate");
    let server = govpulse_aggregate::Server::build(govpulse_aggregate::Config::parse()).await?;
    let served = server
        .run_until(govpulse_common::server::shutdown_signal())
        .await;
    telemetry.shutdown().await;
    Ok(served?)
}
