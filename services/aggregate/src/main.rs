//! The `govpulse-aggregate` binary: configuration from flags and environment, then the library.

use govpulse_aggregate::Aggregate;
use govpulse_edge::server::serve_process;

/// mimalloc: allocation is on every event's path (decoded ids, replies, plans), and it is
/// several times cheaper there than the system allocator (docs/PERFORMANCE.md). Ingest keeps
/// the system allocator: it returns a refused caller's large buffers to the system at once,
/// and what a caller without a credential costs is measured in resident memory there
/// (`tests/tests/edge_limits.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    Ok(serve_process::<Aggregate>("govpulse-aggregate")?)
}
