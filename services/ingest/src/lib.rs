//! govpulse ingest: the public edge agencies' systems report to. It validates every event
//! (naming the field and the reason of each rejection), forwards the valid ones to aggregate
//! over gRPC, and answers with one outcome per event.

mod api;
mod error;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use govpulse_common::{
    catalog_service::CatalogApi, client::lazy_channel, index_file::LiveProfiles, server,
};
use govpulse_core::{AcceptancePolicy, Catalog};
use govpulse_proto::{
    aggregate::aggregate_service_client::AggregateServiceClient,
    catalog::catalog_service_server::CatalogServiceServer,
    ingest::ingest_service_server::IngestServiceServer,
};
use tokio_util::sync::CancellationToken;
use tonic::{server::NamedService, service::Routes};
use tracing::info;

pub use api::IngestApi;
pub use error::Error;

/// Configuration, from flags or the environment.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "govpulse-ingest",
    about = "Takes dossier events from agencies and has them counted once"
)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "GOVPULSE_LISTEN", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    /// The aggregate service.
    #[arg(
        long,
        env = "GOVPULSE_AGGREGATE_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub aggregate_url: String,
    /// The most events one batch may hold.
    #[arg(long, env = "GOVPULSE_MAX_BATCH", default_value_t = 1000)]
    pub max_batch: usize,
    /// Folder with the catalog CSV files; the built-in catalog when unset.
    #[arg(long, env = "GOVPULSE_CATALOG_DIR")]
    pub catalog_dir: Option<PathBuf>,
    /// Events older than this many days are refused (keep equal to aggregate's).
    #[arg(long, env = "GOVPULSE_HORIZON_DAYS", default_value_t = 400)]
    pub horizon_days: u16,
    /// How long a call to aggregate may take before the batch fails with UNAVAILABLE.
    #[arg(long, env = "GOVPULSE_AGGREGATE_TIMEOUT_MS", default_value_t = 10_000)]
    pub aggregate_timeout_ms: u64,
    /// TOML file of composite index profiles (see deploy/config/indexes.toml), which
    /// assessed scores are checked against; checked every 10 s and reloaded when it
    /// changes; the built-in profiles when unset.
    #[arg(long, env = "GOVPULSE_INDEX_PROFILES")]
    pub index_profiles: Option<PathBuf>,
    /// Address of the Prometheus `/metrics` listener; none when unset.
    #[arg(long, env = "GOVPULSE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// The defaults, listening on `listen`, forwarding to `aggregate_url`.
    pub fn new(listen: SocketAddr, aggregate_url: String) -> Self {
        Self {
            listen,
            aggregate_url,
            max_batch: 1000,
            catalog_dir: None,
            horizon_days: 400,
            aggregate_timeout_ms: 10_000,
            index_profiles: None,
            metrics_listen: None,
        }
    }
}

/// A bound ingest server, ready to run.
#[derive(Debug)]
pub struct Server {
    bound: server::Bound,
    api: IngestApi,
    catalog: Arc<Catalog>,
    profiles: LiveProfiles,
    stopping: CancellationToken,
    metrics: Option<govpulse_common::prometheus::MetricsListener>,
}

/// How often the index profiles file is checked for changes.
const PROFILES_RELOAD_EVERY: Duration = Duration::from_secs(10);

impl Server {
    /// Loads the catalog, prepares the connection to aggregate (made on first use and
    /// re-made whenever it drops) and binds the listen address.
    pub async fn build(config: Config) -> Result<Self, Error> {
        let catalog = Arc::new(govpulse_common::catalog_files::load(
            config.catalog_dir.as_deref(),
        )?);
        Self::build_with(config, catalog).await
    }

    /// Binds with a given catalog.
    pub async fn build_with(config: Config, catalog: Arc<Catalog>) -> Result<Self, Error> {
        let timeout = Duration::from_millis(config.aggregate_timeout_ms);
        let channel = lazy_channel(&config.aggregate_url, Some(timeout))
            .map_err(|e| Error::Config(format!("aggregate url: {e}")))?;
        let policy = AcceptancePolicy {
            horizon: time::Duration::days(i64::from(config.horizon_days)),
            ..AcceptancePolicy::default()
        };
        let profiles = LiveProfiles::load(config.index_profiles.clone())?;
        let bound = server::bind(config.listen).await?;
        let metrics = match config.metrics_listen {
            Some(addr) => Some(govpulse_common::prometheus::bind(addr).await?),
            None => None,
        };
        let stopping = CancellationToken::new();
        let api = IngestApi::new(
            catalog.clone(),
            AggregateServiceClient::new(channel),
            policy,
            config.max_batch,
            stopping.clone(),
        )
        .with_profiles(profiles.clone());
        info!(addr = %bound.local_addr(), aggregate = %config.aggregate_url, max_batch = config.max_batch, "ingest bound");
        Ok(Self {
            bound,
            api,
            catalog,
            profiles,
            stopping,
            metrics,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.bound.local_addr()
    }

    /// The address of the `/metrics` listener, when one was configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.local_addr())
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        tokio::spawn(
            self.profiles
                .watch(PROFILES_RELOAD_EVERY, self.stopping.clone()),
        );
        if let Some(metrics) = self.metrics {
            tokio::spawn(metrics.serve(self.stopping.clone()));
        }
        let routes = Routes::new(IngestServiceServer::new(self.api))
            .add_service(CatalogApi::server(self.catalog));
        let served = [
            IngestServiceServer::<IngestApi>::NAME,
            CatalogServiceServer::<CatalogApi>::NAME,
        ];
        Ok(server::serve(self.bound, routes, &served, shutdown, self.stopping).await?)
    }
}
