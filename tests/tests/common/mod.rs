//! What more than one test file shares and the harness (`govpulse_e2e`) cannot hold: it
//! builds on the `govpulse` command's library, which depends on the harness for its own tests.

use std::{sync::Arc, time::Duration};

use govpulse::loadgen::{self, LoadConfig, Mode, Progress, Report};
use govpulse_core::Catalog;
use govpulse_e2e::{Deployment, lazy};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The load generator in the background, keeping `deployment`'s ingest busy while a test
/// looks elsewhere: batches of `batch_size` events of `catalog`'s agencies at `rate` events a
/// second over two connections, until `stop` (at the latest after ten minutes), the last
/// answers awaited for a second.
pub fn background_load(
    deployment: &Deployment,
    catalog: Arc<Catalog>,
    rate: f64,
    batch_size: usize,
    stop: CancellationToken,
) -> JoinHandle<Report> {
    tokio::spawn(loadgen::run(
        lazy(deployment.ingest_addr()),
        catalog,
        LoadConfig {
            mode: Mode::Batch,
            rate: Some(rate),
            duration: Duration::from_secs(600),
            batch_size,
            connections: 2,
            drain: Duration::from_secs(1),
            ..LoadConfig::default()
        },
        Arc::new(Progress::default()),
        stop,
    ))
}
