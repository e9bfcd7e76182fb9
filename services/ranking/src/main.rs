//! The `govpulse-ranking` binary: configuration from flags and environment, then the library.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = govpulse_ranking::Config::parse();
    let threads = config.host.worker_threads;
    let build = || govpulse_ranking::Server::build(config);
    let run = |server: govpulse_ranking::Server, stop| server.run_until(stop);
    Ok(govpulse_edge::server::serve_process(
        "govpulse-ranking",
        threads,
        build,
        run,
    )?)
}
