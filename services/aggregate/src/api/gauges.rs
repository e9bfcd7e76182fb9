//! The freshness gauges: whether each top-level agency is stale, for Prometheus and the
//! alerts routed from it (`govpulse_agency_stale`, `govpulse_agency_last_accepted_timestamp_seconds`).

use std::time::Duration;

use govpulse_core::report::Scope;
use govpulse_runtime::prometheus::{AGENCY_LAST_ACCEPTED, AGENCY_STALE};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::AggregateApi;

impl AggregateApi {
    /// Sets the freshness gauges of every top-level agency now and every `every` after,
    /// until `stopping`. Reads one store command per tree and sorted set each time.
    pub async fn export_freshness(self, every: Duration, stopping: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopping.cancelled() => return,
                _ = tick.tick() => {}
            }
            let horizon = self.horizon();
            let agencies: Vec<_> = Scope::Nation
                .members(&self.catalog, horizon.today)
                .into_iter()
                .map(|a| a.id.clone())
                .collect();
            match self.activity(&horizon, &agencies, &[]).await {
                Ok(activity) => {
                    for (agency, (freshness, _)) in agencies.iter().zip(activity) {
                        let label = agency.as_str().to_owned();
                        metrics::gauge!(AGENCY_STALE, "agency" => label.clone())
                            .set(if freshness.stale { 1.0 } else { 0.0 });
                        if let Some(at) = freshness.seen.last_accepted {
                            metrics::gauge!(AGENCY_LAST_ACCEPTED, "agency" => label)
                                .set(at.unix_timestamp_nanos() as f64 / 1e9);
                        }
                    }
                }
                // The gauges keep their last values; the next tick tries again.
                Err(error) => warn!(%error, "freshness gauges not updated"),
            }
        }
    }
}
