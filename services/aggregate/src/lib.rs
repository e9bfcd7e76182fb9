//! govpulse aggregate: the only service that talks to the counter store. It applies
//! batches from ingest (atomically, exactly once) and answers reads of counters and metrics
//! for any agency, block and period, and tells subscribers when something was counted.

mod api;
mod error;
mod store_telemetry;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use govpulse_core::{AcceptancePolicy, Catalog, freshness::FreshnessPolicy};
use govpulse_edge::host::{Host, HostArgs, Service};
use govpulse_edge::unary::{self, Unary};
use govpulse_proto::aggregate::aggregate_service_server::AggregateServiceServer;
use govpulse_runtime::index_file::LiveProfiles;
use govpulse_runtime::targets_file::LiveTargets;
use govpulse_store::{CounterStore, MemoryStore, RedisStore, RedisStoreConfig};
use tokio_util::sync::CancellationToken;
use tonic::{server::NamedService, service::Routes};
use tracing::info;

pub use api::AggregateApi;

pub use error::Error;
pub use govpulse_edge::StartError;

/// The largest request aggregate decodes: a publication to keep (up to 16 MiB, checked by
/// `KeepPublication`) with room for its summary. Its callers are ingest and ranking only
/// (the NetworkPolicies), whose own edges bound what they forward.
const MAX_REQUEST_BYTES: usize = 17 * 1024 * 1024;

/// `--write-cache-mib`'s default.
const DEFAULT_WRITE_CACHE_MIB: u64 = govpulse_store::DEFAULT_WRITE_CACHE_BYTES >> 20;

/// Configuration, from flags or the environment.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "govpulse-aggregate", about = "Counts dossier events and answers metric reads")]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "GOVPULSE_LISTEN", default_value = "0.0.0.0:50052")]
    pub listen: SocketAddr,
    /// The counter store: a `redis://host:port/` URL (one Redis), a
    /// `redis+cluster://host:port,host:port,...` URL (a Redis Cluster, any of its nodes), or
    /// `memory` for an in-process store that is lost on exit (development and the demo only).
    #[arg(long, env = "GOVPULSE_STORE", default_value = "redis://127.0.0.1:6379/")]
    pub store: String,
    /// Prefix of every Redis key, so that deployments and tests can share one Redis.
    #[arg(long, env = "GOVPULSE_KEY_PREFIX", default_value = "gp")]
    pub key_prefix: String,
    /// MiB of memory the counting may keep of what it read and wrote of each tree in Redis,
    /// so that the next batch of a tree does not read it again (exact: used only while no
    /// other writer changed the tree); 0 reads everything at every batch.
    #[arg(long, env = "GOVPULSE_WRITE_CACHE_MIB", default_value_t = DEFAULT_WRITE_CACHE_MIB)]
    pub write_cache_mib: u64,
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

impl Config {
    /// The defaults, listening on `listen`, with the in-memory store (set `store` to a
    /// `redis://` URL for Redis).
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            store: "memory".to_owned(),
            key_prefix: "gp".to_owned(),
            write_cache_mib: DEFAULT_WRITE_CACHE_MIB,
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

/// A bound aggregate server, ready to run: `Server::build(config)`, then `run_until`.
pub type Server = govpulse_edge::host::Server<Aggregate>;

/// Aggregate's API with what serves beside it, as its [`Server`] runs it.
#[derive(Debug)]
pub struct Aggregate {
    api: AggregateApi,
    /// Notices every replica publishes through the store, subscribed before binding so
    /// that none published after `build` returns is missed.
    shared_changes: tokio::sync::broadcast::Receiver<govpulse_store::ChangeNotice>,
    targets: LiveTargets,
    reload_every: Duration,
}

impl Aggregate {
    /// The API it serves, to call in process (benchmarks measure the server side with it).
    pub fn api(&self) -> &AggregateApi {
        &self.api
    }
}

impl Service for Aggregate {
    type Config = Config;
    const NAME: &'static str = AggregateServiceServer::<AggregateApi>::NAME;

    /// Connects the store `config` names and binds ([`build_with_store`]).
    async fn build_with(config: Config, catalog: Arc<Catalog>) -> Result<Server, StartError> {
        let store = open_store(&config).await?;
        build_with_store(config, catalog, store).await
    }

    fn start(self, stopping: CancellationToken) -> Routes {
        tokio::spawn(
            self.api
                .clone()
                .relay_changes(self.shared_changes, stopping.clone()),
        );
        tokio::spawn(self.targets.watch(self.reload_every, stopping.clone()));
        // Unregistered when the service stops.
        let gauges = self.api.export_gauges();
        tokio::spawn(async move {
            stopping.cancelled().await;
            drop(gauges);
        });
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
        );
        // ApplyEvents reads its events in place: its own route.
        unary::route(routes, govpulse_proto::wire::APPLY_EVENTS, apply)
    }

    fn catalog_dir(config: &Config) -> Option<&Path> {
        config.catalog_dir.as_deref()
    }

    fn host_args(config: &Config) -> &HostArgs {
        &config.host
    }
}

/// Binds with a given catalog and store (the CLI's embedded stack: its in-memory store).
pub async fn build_with_store(
    config: Config,
    catalog: Arc<Catalog>,
    store: Arc<dyn CounterStore>,
) -> Result<Server, StartError> {
    let targets = LiveTargets::load(config.targets.clone(), catalog.clone())?;
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
    Ok(Server::new(
        host,
        catalog,
        profiles,
        Aggregate {
            api,
            shared_changes,
            targets,
            reload_every,
        },
    ))
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
            write_cache_bytes: config.write_cache_mib.saturating_mul(1 << 20),
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
