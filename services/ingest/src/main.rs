//! The `govpulse-ingest` binary: configuration from flags and environment, then the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let build = || govpulse_ingest::Server::build(govpulse_ingest::Config::parse());
    let run = |server: govpulse_ingest::Server, stop| server.run_until(stop);
    Ok(govpulse_edge::server::serve_process("govpulse-ingest", build, run).await?)
}
