//! The `govpulse-ingest` binary: configuration from flags and environment, then the library.

use govpulse_edge::server::serve_process;
use govpulse_ingest::Ingest;

fn main() -> anyhow::Result<()> {
    Ok(serve_process::<Ingest>("govpulse-ingest")?)
}
