//! The `govpulse-ranking` binary: configuration from flags and environment, then the library.

use govpulse_edge::server::serve_process;
use govpulse_ranking::Server;

fn main() -> anyhow::Result<()> {
    let run = |server: Server, stop| server.run_until(stop);
    Ok(serve_process("govpulse-ranking", Server::build, run)?)
}
