//! The `govpulse-ranking` binary: configuration from flags and environment, then the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let build = || govpulse_ranking::Server::build(govpulse_ranking::Config::parse());
    let run = |server: govpulse_ranking::Server, stop| server.run_until(stop);
    Ok(govpulse_edge::server::serve_process("govpulse-ranking", build, run).await?)
}
