//! govpulse ranking: ranks the agencies of a block by any metric over any period, once
//! (GetRanking) or live (WatchRanking), from counters it reads from aggregate over gRPC.

mod alerts;
mod api;
mod cause;
mod changes;
mod compute;
mod dashboard;
mod error;
pub use error::Error;
mod http;
mod hub;
mod publications;
mod query;
mod resume;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use govpulse_core::{Catalog, ranking::Rules};
use govpulse_edge::auth::{Authenticator, LiveTokens, Role, TokenFileArgs};
use govpulse_edge::catalog_service::CatalogApi;
use govpulse_edge::host::{Host, HostArgs, Service};
use govpulse_proto::{
    aggregate::aggregate_service_client::AggregateServiceClient,
    ranking::ranking_service_server::RankingServiceServer,
};
use govpulse_runtime::alerts_file::{self, LiveAlertRules};
use govpulse_runtime::client::AggregateArgs;
use govpulse_runtime::index_file::LiveProfiles;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tonic::{server::NamedService, service::Routes};
use tracing::info;

use alerts::{AlertTiming, Alerts};
pub use api::RankingApi;
pub use hub::HubSettings;
pub use resume::revision_ms;

/// The default minimum volume: 30 dossiers (or resolutions, fees, feedback: the metric's
/// denominator). Below it one dossier moves a rate by more than 3.3 points; see
/// docs/ARCHITECTURE.md, section 7, for the choice.
pub const DEFAULT_MIN_VOLUME: u64 = 30;

/// Configuration, from flags or the environment.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "govpulse-ranking", about = "Ranks agencies and streams live rankings")]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "GOVPULSE_LISTEN", default_value = "0.0.0.0:50053")]
    pub listen: SocketAddr,
    /// The aggregate service: its URL, and TLS towards it.
    #[command(flatten)]
    pub aggregate: AggregateArgs,
    /// Folder with the catalog CSV files; the built-in catalog when unset.
    #[arg(long, env = "GOVPULSE_CATALOG_DIR")]
    pub catalog_dir: Option<PathBuf>,
    /// A live ranking with no change sends a heartbeat this often.
    #[arg(long, env = "GOVPULSE_HEARTBEAT_MS", default_value_t = 5_000)]
    pub heartbeat_ms: u64,
    /// Change notices arriving within this window cause one recomputation.
    #[arg(long, env = "GOVPULSE_DEBOUNCE_MS", default_value_t = 100)]
    pub debounce_ms: u64,
    /// Agencies whose volume for the period (the metric's denominator; dossiers received for
    /// a composite index with measured indicators) is below this are listed after the ranked
    /// ones, unranked and flagged; 0 ranks every agency with data. The default keeps an
    /// agency with a handful of dossiers out of first place (docs/ARCHITECTURE.md, section 7).
    #[arg(long, env = "GOVPULSE_MIN_VOLUME", default_value_t = DEFAULT_MIN_VOLUME)]
    pub min_volume: u64,
    /// Live rankings are recomputed at least this often, notice or not.
    #[arg(long, env = "GOVPULSE_REFRESH_MS", default_value_t = 5_000)]
    pub refresh_ms: u64,
    /// A live ranking goes on this long after its last subscriber left, so that a client
    /// reconnecting meanwhile resumes from its revision instead of a fresh snapshot.
    #[arg(long, env = "GOVPULSE_LINGER_MS", default_value_t = 30_000)]
    pub linger_ms: u64,
    /// Live rankings this replica computes at once (a query's top or bottom N is a view of
    /// one); one lingering without subscribers makes room for a new one, and with none a new
    /// query is refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "GOVPULSE_MAX_LIVE_RANKINGS", default_value_t = 128)]
    pub max_live_rankings: usize,
    /// WatchRanking streams (Server-Sent Events included) one caller may hold open at once:
    /// one credential's agency, or one remote address where reading is public.
    #[arg(long, env = "GOVPULSE_MAX_WATCHES_PER_CALLER", default_value_t = 16)]
    pub max_watches_per_caller: usize,
    /// TOML file of composite index profiles (see deploy/config/indexes.toml), checked
    /// every 10 s and reloaded when it changes; the built-in profiles when unset.
    #[arg(long, env = "GOVPULSE_INDEX_PROFILES")]
    pub index_profiles: Option<PathBuf>,
    /// TOML file of alert rules (see deploy/config/alerts.toml), checked every 10 s and
    /// reloaded when it changes (a broken version is refused, the rules in force stay); the
    /// built-in rules when unset.
    #[arg(long, env = "GOVPULSE_ALERT_RULES")]
    pub alert_rules: Option<PathBuf>,
    /// How often the alert rules file is checked for changes.
    #[arg(long, env = "GOVPULSE_ALERT_RULES_RELOAD_MS", default_value_t = 10_000)]
    pub alert_rules_reload_ms: u64,
    /// Change notices arriving within this window cause one evaluation of the alert rules.
    #[arg(long, env = "GOVPULSE_ALERTS_DEBOUNCE_MS", default_value_t = 200)]
    pub alerts_debounce_ms: u64,
    /// The alert rules are evaluated at least this often, notice or not.
    #[arg(long, env = "GOVPULSE_ALERTS_REFRESH_MS", default_value_t = 30_000)]
    pub alerts_refresh_ms: u64,
    /// The ports beside `listen`, TLS and the limits on each caller, as every service has
    /// them.
    #[command(flatten)]
    pub host: HostArgs,
    /// Anyone may read rankings; otherwise a credential with the `reader` role is needed
    /// (a token from `--tokens` or a client certificate).
    #[arg(long, env = "GOVPULSE_PUBLIC_READ", num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub public_read: bool,
    /// The bearer tokens' file, as ingest's (docs/SECURITY.md), and how often it is checked
    /// for changes.
    #[command(flatten)]
    pub token_file: TokenFileArgs,
    /// Development only: calls without a credential may publish (RankingService.Publish).
    /// Otherwise publishing needs the `publisher` role, from `--tokens` or a client
    /// certificate, even where reading is public.
    #[arg(long, env = "GOVPULSE_ALLOW_ANONYMOUS", num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub allow_anonymous: bool,
}

impl Config {
    /// The defaults, listening on `listen`, reading from `aggregate_url`.
    pub fn new(listen: SocketAddr, aggregate_url: String) -> Self {
        Self {
            listen,
            aggregate: AggregateArgs::at(aggregate_url),
            catalog_dir: None,
            heartbeat_ms: 5_000,
            debounce_ms: 100,
            refresh_ms: 5_000,
            min_volume: DEFAULT_MIN_VOLUME,
            linger_ms: 30_000,
            max_live_rankings: 128,
            max_watches_per_caller: 16,
            index_profiles: None,
            alert_rules: None,
            alert_rules_reload_ms: 10_000,
            alerts_debounce_ms: 200,
            alerts_refresh_ms: 30_000,
            host: HostArgs::default(),
            public_read: false,
            token_file: TokenFileArgs::default(),
            allow_anonymous: false,
        }
    }

    /// For the demo and tests: plaintext, rankings readable and publishable by anyone. Never
    /// in production (public reading may be, by choice: `--public-read`).
    pub fn development(mut self) -> Self {
        self.host = self.host.plaintext();
        self.public_read = true;
        self.allow_anonymous = true;
        self
    }
}

/// The largest answer ranking takes from aggregate (its own service, so trusted): a block
/// query over 10,000 units with 30 days of events each (an alert rule's, or a forwarded
/// GetBlockMetrics) is about 7.4 MB, over tonic's default of 4 MiB.
const MAX_AGGREGATE_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The largest request message ranking decodes: a query names a metric, a period, an agency
/// and a few criteria.
const MAX_QUERY_BYTES: usize = 64 * 1024;

pub use govpulse_edge::StartError;

/// A bound ranking server, ready to run: `Server::build(config)`, then `run_until`.
pub type Server = govpulse_edge::host::Server<Ranking>;

/// Ranking's API with what serves beside it, as its [`Server`] runs it.
#[derive(Debug)]
pub struct Ranking {
    api: RankingApi,
    catalog: Arc<Catalog>,
    aggregate: AggregateServiceClient<tonic::transport::Channel>,
    notices: broadcast::Sender<govpulse_core::notice::ChangeNotice>,
    alert_rules: LiveAlertRules,
    alerts: Alerts,
    alert_timing: AlertTiming,
    /// How often the alert rules file is checked for changes.
    alert_rules_every: Duration,
    /// Who may read, when reading is not public.
    readers: Option<Arc<Authenticator>>,
    /// The token file (readers' and publishers'), with its reload interval.
    tokens: Option<TokenFile>,
    /// The public dashboard's files (`GET /`).
    dashboard: dashboard::Dashboard,
}

/// The token file and how often it is checked for changes.
type TokenFile = (LiveTokens, Duration);

impl Service for Ranking {
    type Config = Config;
    const NAME: &'static str = RankingServiceServer::<RankingApi>::NAME;

    /// Prepares the connection to aggregate, loads the settings files and binds.
    async fn build_with(config: Config, catalog: Arc<Catalog>) -> Result<Server, StartError> {
        // No per-call timeout: the same channel carries the long-lived WatchChanges stream.
        let channel = config.aggregate.channel(None).map_err(StartError::Config)?;
        let edge = config.host.edge().map_err(StartError::Config)?;
        let tokens = config.token_file.load(&catalog)?;
        let readers = if config.public_read {
            None
        } else {
            if config.token_file.tokens.is_none() && config.host.tls.tls_client_ca.is_none() {
                return Err(StartError::Config(
                    "reading needs a credential but none can be checked: set --tokens or --tls-client-ca, or --public-read".to_owned(),
                ));
            }
            Some(Arc::new(Authenticator::new(
                catalog.clone(),
                tokens.clone(),
                false,
            )))
        };
        let publishers = Arc::new(Authenticator::new(
            catalog.clone(),
            tokens.clone(),
            config.allow_anonymous,
        ));
        let tokens = tokens.map(|t| (t, config.token_file.every()));
        let aggregate = AggregateServiceClient::new(channel)
            .max_decoding_message_size(MAX_AGGREGATE_ANSWER_BYTES);
        let profiles = LiveProfiles::load(config.index_profiles.clone())?;
        let alert_rules = alerts_file::load(config.alert_rules.clone(), catalog.clone())?;
        let alerts = Alerts::new(alert_rules.clone());
        let alert_timing = AlertTiming {
            debounce: Duration::from_millis(config.alerts_debounce_ms),
            refresh: Duration::from_millis(config.alerts_refresh_ms.max(1)),
        };
        let host = Host::bind(config.host.listen(config.listen), edge).await?;
        let (notices, _) = broadcast::channel(1024);
        let settings = HubSettings {
            debounce: Duration::from_millis(config.debounce_ms),
            refresh: Duration::from_millis(config.refresh_ms.max(1)),
            linger: Duration::from_millis(config.linger_ms),
            rules: Rules {
                min_volume: config.min_volume,
            },
            max_live: config.max_live_rankings,
        };
        let latest =
            publications::Latest::new(aggregate.clone(), catalog.clone(), profiles.clone());
        let hubs = hub::Hubs::new(
            aggregate.clone(),
            catalog.clone(),
            notices.clone(),
            latest,
            settings,
            host.stopping(),
        );
        let heartbeat = Duration::from_millis(config.heartbeat_ms.max(1));
        let dashboard = dashboard::Dashboard::new(heartbeat);
        let api = RankingApi::new(hubs, alerts.clone(), heartbeat, host.stopping())
            .with_profiles(profiles.clone())
            .with_watchers(
                readers.as_ref().map(|auth| auth.as_ref().clone()),
                config.max_watches_per_caller,
            )
            .with_publishers(publishers);
        info!(addr = %host.local_addr(), aggregate = %config.aggregate.aggregate_url, "ranking bound");
        Ok(Server::new(
            host,
            catalog.clone(),
            profiles,
            Ranking {
                api,
                catalog,
                aggregate,
                notices,
                alert_rules,
                alerts,
                alert_timing,
                alert_rules_every: Duration::from_millis(config.alert_rules_reload_ms.max(1)),
                readers,
                tokens,
                dashboard,
            },
        ))
    }

    fn start(self, stopping: CancellationToken) -> Routes {
        tokio::spawn(
            self.alert_rules
                .watch(self.alert_rules_every, stopping.clone()),
        );
        tokio::spawn(self.alerts.run(
            self.aggregate.clone(),
            self.notices.clone(),
            self.alert_timing,
            stopping.clone(),
        ));
        tokio::spawn(changes::follow(
            self.aggregate,
            self.notices,
            stopping.clone(),
        ));
        if let Some((tokens, every)) = self.tokens {
            tokio::spawn(tokens.watch(every, stopping.clone()));
        }
        let readers = self.readers;
        // The HTTP routes call the same service under the same reader check; the dashboard's
        // files are public.
        let http = http::router(
            self.api.clone(),
            CatalogApi::new(self.catalog.clone()),
            readers.clone(),
        )
        .merge(self.dashboard.router());
        // Queries are a few hundred bytes: a larger request is refused before it is decoded.
        let ranking =
            RankingServiceServer::new(self.api).max_decoding_message_size(MAX_QUERY_BYTES);
        let routes = govpulse_edge::http_json::routes(http);
        match readers {
            None => routes.add_service(ranking),
            Some(auth) => routes.add_service(tonic::service::interceptor::InterceptedService::new(
                ranking,
                move |request: tonic::Request<()>| {
                    check_reader(&auth, &request)?;
                    Ok(request)
                },
            )),
        }
    }

    fn catalog_dir(config: &Config) -> Option<&Path> {
        config.catalog_dir.as_deref()
    }

    fn host_args(config: &Config) -> &HostArgs {
        &config.host
    }
}

/// Lets a call through only with a credential holding the `reader` role: UNAUTHENTICATED
/// without a valid one, PERMISSION_DENIED without the role (both audited). The gRPC routes'
/// interceptor and the HTTP routes both check here.
pub(crate) fn check_reader<T>(
    auth: &Authenticator,
    request: &tonic::Request<T>,
) -> Result<(), tonic::Status> {
    auth.authorize(request, Role::Reader)?;
    Ok(())
}
