//! What is set when `/metrics` is scraped: the freshness gauges, whether each top-level
//! agency is stale, for Prometheus and the alerts routed from it (`govpulse_agency_stale`,
//! `govpulse_agency_last_accepted_timestamp_seconds`), and the store's write cache counts
//! (`govpulse_store_write_cache_lookups_total`, `govpulse_store_write_cache_bytes`).

use std::sync::Arc;

use govpulse_core::report::Scope;
use govpulse_runtime::prometheus::{
    AGENCY_LAST_ACCEPTED, AGENCY_STALE, Collector, WRITE_CACHE_BYTES, WRITE_CACHE_LOOKUPS,
    collect_on_scrape,
};
use tracing::warn;

use super::AggregateApi;

impl AggregateApi {
    /// Has every scrape of this process's `/metrics` set the freshness gauges of every
    /// top-level agency first, as of the scrape (one store read per tree), and the store's
    /// write cache counts, until the returned collector is dropped.
    pub fn export_gauges(&self) -> Collector {
        let api = self.clone();
        collect_on_scrape(Arc::new(move || {
            let api = api.clone();
            Box::pin(async move {
                api.set_write_cache_gauges();
                api.set_freshness_gauges().await;
            })
        }))
    }

    fn set_write_cache_gauges(&self) {
        if let Some(cache) = self.store.write_cache_use() {
            metrics::counter!(WRITE_CACHE_LOOKUPS, "result" => "hit").absolute(cache.hits);
            metrics::counter!(WRITE_CACHE_LOOKUPS, "result" => "miss").absolute(cache.misses);
            metrics::gauge!(WRITE_CACHE_BYTES).set(cache.bytes as f64);
        }
    }

    async fn set_freshness_gauges(&self) {
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
            // The gauges keep their last values; the next scrape tries again.
            Err(error) => warn!(%error, "freshness gauges not updated"),
        }
    }
}
