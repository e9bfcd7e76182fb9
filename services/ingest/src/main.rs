//! The `govpulse-ingest` binary: configuration from flags and environment, then the library.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = govpulse_ingest::Config::parse();
    let threads = config.host.worker_threads;
    let build = || govpulse_ingest::Server::build(config);
    let run = |server: govpulse_ingest::Server, stop| server.run_until(stop);
    Ok(govpulse_edge::server::serve_process(
        "govpulse-ingest",
        threads,
        build,
        run,
    )?)
}
