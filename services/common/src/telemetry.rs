//! Logging: `RUST_LOG` filters (default `info`); `GOVPULSE_LOG_FORMAT=json` gives one JSON
//! object per line for the cluster, anything else a compact human format.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber once; later calls (tests, the all-in-one CLI) are no-ops.
pub fn init(service: &'static str) {
    init_with_default(service, "info");
}

/// As [`init`], with another filter than `info` when `RUST_LOG` is unset.
pub fn init_with_default(service: &'static str, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("GOVPULSE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(fmt::layer().compact().with_writer(std::io::stderr))
            .try_init()
    };
    if installed.is_ok() {
        tracing::debug!(service, "logging initialised");
    }
}
