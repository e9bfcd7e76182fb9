//! The `govpulse-ranking` binary: configuration from flags and environment, then the library.

use govpulse_edge::server::serve_process;
use govpulse_ranking::Ranking;

fn main() -> anyhow::Result<()> {
    Ok(serve_process::<Ranking>("govpulse-ranking")?)
}
