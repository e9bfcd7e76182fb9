//! The `govpulse-ingest` binary: configuration from flags and environment, then the library.

use govpulse_edge::server::serve_process;
use govpulse_ingest::Server;

fn main() -> anyhow::Result<()> {
    let run = |server: Server, stop| server.run_until(stop);
    Ok(serve_process("govpulse-ingest", Server::build, run)?)
}
