//! govpulse aggregate: the only service that talks to the counter store. It applies
//! batches from ingest (atomically, exactly once) and answers reads of counters and metrics
//! for any agency, block and period, and tells subscribers when something was counted.

mod api;
mod error;
mod store_telemetry;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use govpulse_core::{AcceptancePolicy, Catalog, freshness::FreshnessPolicy};
use govpulse_edge::catalog_service::CatalogApi;
use govpulse_edge::host::{Host, HostArgs};
use govpulse_edge::unary::{self, Unary};
use govpulse_proto::{
    aggregate::aggregate_service_server::AggregateServiceServer,
    catalog::catalog_service_server::CatalogServiceServer,
};
use govpulse_runtime::index_file::LiveProfiles;
use govpulse_runtime::targets_file::LiveTargets;
use govpulse_store::{CounterStore, MemoryStore, RedisStore, RedisStoreConfig};
use tonic::{server::NamedService, service::Routes};
use tracing::info;

pub use api::AggregateApi;

pub use error::Error;
pub use govpulse_edge::StartError;

/// The largest request aggregate decodes: a publication to keep (up to 16 MiB, checked by
/// `KeepPublication`) with room for its summary. Its callers are ingest and ranking only
/// (the NetworkPolicies), whose own edges bound what they forward.
const MAX_REQUEST_BYTES: usize = 17 * 1024 * 1024;

/// Configuration, from flags or the environment.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "govpulse-aggregate",
    about = "Counts dossier events and answers metric reads"
)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "GOVPULSE_LISTEN", default_value = "0.0.0.0:50052")]
    pub listen: SocketAddr,
    /// The counter store: a `redis://host:port/` URL (one Redis), a
    /// `redis+cluster://host:port,host:port,...` URL (a Redis Cluster, any of its nodes), or
    /// `memory` for an in-process store that is lost on exit (development and the demo only).
    #[arg(
        long,
        env = "GOVPULSE_STORE",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub store: String,
    /// Prefix of every Redis key, so that deployments and tests can share one Redis.
    #[arg(long, env = "GOVPULSE_KEY_PREFIX", default_value = "gp")]
    pub key_prefix: String,
    /// Folder with the catalog CSV files; the built-in catalog when unset.
    #[arg(long, env = "GOVPULSE_CATALOG_DIR")]
    pub catalog_dir: Option<PathBuf>,
    /// TOML file of targets (see deploy/config/targets.toml), reloaded when it changes; the
    /// built-in targets when unset.
    #[arg(long, env = "GOVPULSE_TARGETS")]
    pub targets: Option<PathBuf>,
    /// How often to check the targets file for changes.
    #[arg(long, env = "GOVPULSE_TARGETS_RELOAD_MS", default_value_t = 10_000)]
    pub targets_reload_ms: u64,
    /// Events older than this many days are refused; their ids are remembered this long.
    #[arg(long, env = "GOVPULSE_HORIZON_DAYS", default_value_t = 400)]
    pub horizon_days: u16,
    /// An agency with no event accepted for this many seconds (or never) is flagged stale
    /// in every report and ranking row: its figures may be frozen rather than current.
    #[arg(long, env = "GOVPULSE_STALE_AFTER_SECS", default_value_t = 7_200)]
    pub stale_after_secs: u64,
    /// TOML file of composite index profiles (see deploy/config/indexes.toml), checked
    /// every 10 s and reloaded when it changes; the built-in profiles when unset.
    #[arg(long, env = "GOVPULSE_INDEX_PROFILES")]
    pub index_profiles: Option<PathBuf>,
    /// The ports beside `listen`, TLS and the limits on each caller, as every service has
    /// them.
    #[command(flatten)]
    pub host: HostArgs,
}

/// The settings its host reads before it starts (the runtime's threads).
impl AsRef<HostArgs> for Config {
    fn as_ref(&self) -> &HostArgs {
        &self.host
    }
}

impl Config {
    /// The defaults, listening on `listen`, with the in-memory store (set `store` to a
    /// `redis://` URL for Redis).
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            store: "memory".to_owned(),
            key_prefix: "gp".to_owned(),
            catalog_dir: None,
            targets: None,
            targets_reload_ms: 10_000,
            horizon_days: 400,
            stale_after_secs: 7_200,
            index_profiles: None,
            host: HostArgs::default(),
        }
    }

    /// For the demo and tests: plaintext. Never in production.
    pub fn development(mut self) -> Self {
        self.host = self.host.plaintext();
        self
    }

    /// When the configuration flags a silent agency stale.
    pub fn freshness(&self) -> FreshnessPolicy {
        FreshnessPolicy {
            silence: time::Duration::seconds(
                i64::try_from(self.stale_after_secs).unwrap_or(i64::MAX),
            ),
        }
    }

    /// The acceptance policy the configuration gives.
    pub fn policy(&self) -> AcceptancePolicy {
        AcceptancePolicy {
            horizon: time::Duration::days(i64::from(self.horizon_days)),
            ..AcceptancePolicy::default()
        }
    }
}

/// A bound aggregate server, ready to run.
#[derive(Debug)]
pub struct Server {
    host: Host,
    api: AggregateApi,
    /// Notices every replica publishes through the store, subscribed before binding so
    /// that none published after `build` returns is missed.
    shared_changes: tokio::sync::broadcast::Receiver<govpulse_store::ChangeNotice>,
    catalog: Arc<Catalog>,
    targets: LiveTargets,
    reload_every: Duration,
    profiles: LiveProfiles,
}

impl Server {
    /// Loads the catalog, connects the store and binds the listen address.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let catalog = Arc::new(govpulse_runtime::catalog_files::load(
            config.catalog_dir.as_deref(),
        )?);
        let store = open_store(&config).await?;
        Self::build_with(config, catalog, store).await
    }

    /// Binds with a given catalog and store.
    pub async fn build_with(
        config: Config,
        catalog: Arc<Catalog>,
        store: Arc<dyn CounterStore>,
    ) -> Result<Self, StartError> {
        let targets = LiveTargets::load(config.targets.clone(), &catalog)?;
        let profiles = LiveProfiles::load(config.index_profiles.clone())?;
        let shared_changes = store.subscribe_changes().await.map_err(StartError::store)?;
        let edge = config.host.edge().map_err(StartError::Config)?;
        let host = Host::bind(config.host.listen(config.listen), edge).await?;
        let store = store_telemetry::Instrumented::wrap(store);
        let api = AggregateApi::new(
            catalog.clone(),
            store,
            config.policy(),
            targets.clone(),
            host.stopping(),
        )
        .with_profiles(profiles.clone())
        .with_freshness(config.freshness());
        info!(addr = %host.local_addr(), store = store_kind(&config.store), "aggregate bound");
        let reload_every = Duration::from_millis(config.targets_reload_ms.max(100));
        Ok(Self {
            host,
            api,
            shared_changes,
            catalog,
            targets,
            reload_every,
            profiles,
        })
    }

    /// Its listeners (read their addresses: port 0 picks a free one).
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The API it serves, to call in process (benchmarks measure the server side with it).
    pub fn api(&self) -> &AggregateApi {
        &self.api
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let stopping = self.host.stopping();
        tokio::spawn(
            self.api
                .clone()
                .relay_changes(self.shared_changes, stopping.clone()),
        );
        tokio::spawn(
            self.targets
                .watch(self.catalog.clone(), self.reload_every, stopping.clone()),
        );
        tokio::spawn(
            self.profiles
                .watch(govpulse_runtime::index_file::RELOAD_EVERY, stopping),
        );
        // Unregistered when serving ends.
        let _gauges = self.api.export_freshness();
        let api = self.api.clone();
        let apply = Unary::new(
            move |request| {
                let api = api.clone();
                async move { api.apply_events_encoded(request).await }
            },
            MAX_REQUEST_BYTES,
        );
        let routes = Routes::new(
            AggregateServiceServer::new(self.api).max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(CatalogApi::server(self.catalog));
        // ApplyEvents reads its events in place: its own route.
        let routes = unary::route(routes, govpulse_proto::wire::APPLY_EVENTS, apply);
        let served = [
            AggregateServiceServer::<AggregateApi>::NAME,
            CatalogServiceServer::<CatalogApi>::NAME,
        ];
        Ok(self.host.serve(routes, &served, shutdown).await?)
    }
}

/// The counter store `config.store` names: in memory, or Redis (one server or a cluster),
/// connected.
pub async fn open_store(config: &Config) -> Result<Arc<dyn CounterStore>, StartError> {
    Ok(if config.store == "memory" {
        Arc::new(MemoryStore::new())
    } else {
        let redis_config = RedisStoreConfig {
            url: config.store.clone(),
            prefix: config.key_prefix.clone(),
        };
        Arc::new(
            RedisStore::connect(redis_config)
                .await
                .map_err(StartError::store)?,
        )
    })
}

/// The store's kind for logs, without credentials a URL may carry.
fn store_kind(store: &str) -> &str {
    if store == "memory" { "memory" } else { "redis" }
}
