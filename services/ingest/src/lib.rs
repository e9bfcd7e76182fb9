//! govpulse ingest: the public edge agencies' systems report to. It validates every event
//! (naming the field and the reason of each rejection), forwards the valid ones to aggregate
//! over gRPC, and answers with one outcome per event.

mod api;
mod error;
mod http;
mod limits;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use govpulse_core::{AcceptancePolicy, Catalog};
use govpulse_edge::auth::{Authenticator, LiveTokens, TokenFileArgs};
use govpulse_edge::host::{Host, HostArgs, Service};
use govpulse_edge::unary::{self, Unary};
use govpulse_proto::ingest::ingest_service_server::IngestServiceServer;
use govpulse_runtime::client::AggregateArgs;
use govpulse_runtime::index_file::LiveProfiles;
use tokio_util::sync::CancellationToken;
use tonic::{
    server::NamedService,
    service::{Routes, interceptor::InterceptedService},
};
use tracing::info;

pub use api::{Caller, IngestApi};
pub use error::Error;
pub use govpulse_edge::StartError;

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
    /// The aggregate service: its URL, and TLS towards it.
    #[command(flatten)]
    pub aggregate: AggregateArgs,
    /// How much one caller and one request may ask of ingest.
    #[command(flatten)]
    pub limits: Limits,
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
    /// The ports beside `listen`, TLS and the limits on each caller, as every service has
    /// them.
    #[command(flatten)]
    pub host: HostArgs,
    /// The bearer tokens' file (docs/SECURITY.md) and how often it is checked for changes.
    #[command(flatten)]
    pub token_file: TokenFileArgs,
    /// Accept calls without a credential, acting for every agency: development only.
    #[arg(long, env = "GOVPULSE_ALLOW_ANONYMOUS", num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub allow_anonymous: bool,
}

/// What one agency and one request may ask of ingest: a group of flags shared by
/// `govpulse-ingest` and `govpulse serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// The most events one batch may hold.
    #[arg(long, env = "GOVPULSE_MAX_BATCH", default_value_t = 1000)]
    pub max_batch: usize,
    /// Events per second each agency may send on average (0: no limit).
    #[arg(long, env = "GOVPULSE_RATE_PER_AGENCY", default_value_t = 2_000)]
    pub rate_per_agency: u32,
    /// Events each agency may send at once above its rate (at least the batch limit).
    #[arg(long, env = "GOVPULSE_BURST_PER_AGENCY", default_value_t = 10_000)]
    pub burst_per_agency: u32,
    /// StreamEvents calls each agency may hold open at once (0: no limit).
    #[arg(long, env = "GOVPULSE_MAX_STREAMS_PER_AGENCY", default_value_t = 8)]
    pub max_streams_per_agency: usize,
    /// Largest request message accepted, in bytes.
    #[arg(long, env = "GOVPULSE_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
}

impl Default for Limits {
    /// The production limits, as the flags' defaults.
    fn default() -> Self {
        Self {
            max_batch: 1000,
            rate_per_agency: 2_000,
            burst_per_agency: 10_000,
            max_streams_per_agency: 8,
            max_message_bytes: 4 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Without the per-agency rate and stream limits: anonymous callers act for every agency
    /// and would all share one agency's allowance. The size limits stay.
    pub fn without_per_agency(self) -> Self {
        Self {
            rate_per_agency: 0,
            max_streams_per_agency: 0,
            ..self
        }
    }
}

impl Config {
    /// The defaults, listening on `listen`, forwarding to `aggregate_url`. Like the flags'
    /// defaults they are the production ones: TLS and a credential are required until
    /// `development` (or the settings it makes) says otherwise.
    pub fn new(listen: SocketAddr, aggregate_url: String) -> Self {
        Self {
            listen,
            aggregate: AggregateArgs::at(aggregate_url),
            limits: Limits::default(),
            catalog_dir: None,
            horizon_days: 400,
            aggregate_timeout_ms: 10_000,
            index_profiles: None,
            host: HostArgs::default(),
            token_file: TokenFileArgs::default(),
            allow_anonymous: false,
        }
    }

    /// For the demo and tests: plaintext, calls without a credential act for every agency,
    /// and no rate or stream limit (anonymous callers would all share one bucket). Never in
    /// production.
    pub fn development(self) -> Self {
        Self {
            host: self.host.plaintext(),
            allow_anonymous: true,
            limits: self.limits.without_per_agency(),
            ..self
        }
    }
}

/// A bound ingest server, ready to run: `Server::build(config)`, then `run_until`.
pub type Server = govpulse_edge::host::Server<Ingest>;

/// Ingest's API with what serves beside it, as its [`Server`] runs it.
#[derive(Debug)]
pub struct Ingest {
    api: IngestApi,
    tokens: Option<(LiveTokens, std::time::Duration)>,
    max_message_bytes: usize,
}

impl Service for Ingest {
    type Config = Config;
    const NAME: &'static str = IngestServiceServer::<IngestApi>::NAME;

    /// Prepares the connection to aggregate (made on first use and re-made whenever it
    /// drops), loads the index profiles and the tokens, and binds.
    async fn build_with(config: Config, catalog: Arc<Catalog>) -> Result<Server, StartError> {
        let timeout = Duration::from_millis(config.aggregate_timeout_ms);
        let channel = config
            .aggregate
            .channel(Some(timeout))
            .map_err(StartError::Config)?;
        let edge = config.host.edge().map_err(StartError::Config)?;
        if config.token_file.tokens.is_none()
            && config.host.tls.tls_client_ca.is_none()
            && !config.allow_anonymous
        {
            return Err(StartError::Config(
                "no way to authenticate callers: set --tokens or --tls-client-ca, or --allow-anonymous for development".to_owned(),
            ));
        }
        let limits = &config.limits;
        if limits.max_batch > govpulse_proto::codec::MAX_ITEMS {
            return Err(StartError::Config(format!(
                "--max-batch {} is above {}, the most any batch may hold on the wire",
                limits.max_batch,
                govpulse_proto::codec::MAX_ITEMS
            )));
        }
        if limits.rate_per_agency > 0 && (limits.burst_per_agency as usize) < limits.max_batch {
            return Err(StartError::Config(format!(
                "--burst-per-agency {} is below --max-batch {}: a full batch would never fit",
                limits.burst_per_agency, limits.max_batch
            )));
        }
        let tokens = config.token_file.load(&catalog)?;
        let auth = Authenticator::new(catalog.clone(), tokens.clone(), config.allow_anonymous);
        let limiter = Arc::new(limits::AgencyLimiter::new(
            limits.rate_per_agency,
            limits.burst_per_agency,
            limits.max_streams_per_agency,
        ));
        let policy = AcceptancePolicy {
            horizon: time::Duration::days(i64::from(config.horizon_days)),
            ..AcceptancePolicy::default()
        };
        let profiles = LiveProfiles::load(config.index_profiles.clone())?;
        let tls_on = edge.tls.is_some();
        let host = Host::bind(config.host.listen(config.listen), edge).await?;
        let api = IngestApi::new(
            catalog.clone(),
            channel,
            policy,
            limits.max_batch,
            host.stopping(),
            auth,
            limiter,
        )
        .with_profiles(profiles.clone());
        info!(
            addr = %host.local_addr(),
            aggregate = %config.aggregate.aggregate_url,
            max_batch = limits.max_batch,
            tls = tls_on,
            anonymous = config.allow_anonymous,
            "ingest bound"
        );
        Ok(Server::new(
            host,
            catalog,
            profiles,
            Ingest {
                api,
                tokens: tokens.map(|t| (t, config.token_file.every())),
                max_message_bytes: limits.max_message_bytes,
            },
        ))
    }

    fn start(self, stopping: CancellationToken) -> Routes {
        if let Some((tokens, every)) = self.tokens {
            tokio::spawn(tokens.watch(every, stopping));
        }
        // Credentials are checked on the headers, before tonic reads and decodes a body.
        let gate = self.api.clone();
        let authenticate = move |mut request: tonic::Request<()>| {
            let (metadata, mut extensions, ()) = request.into_parts();
            gate.authenticate_first(metadata.as_ref(), &mut extensions)?;
            request = tonic::Request::from_parts(metadata, extensions, ());
            Ok(request)
        };
        let ingest = InterceptedService::new(
            IngestServiceServer::new(self.api.clone())
                .max_decoding_message_size(self.max_message_bytes),
            authenticate.clone(),
        );
        // SubmitEvents reads its events in place and forwards them as they came: its own
        // route, behind the same check.
        let api = self.api.clone();
        let submit = InterceptedService::new(
            Unary::new(
                move |request| {
                    let api = api.clone();
                    async move { api.submit_encoded(request).await }
                },
                self.max_message_bytes,
            ),
            authenticate,
        );
        // The JSON routes call the same service: same credentials, limits and outcomes.
        let http = http::router(self.api, self.max_message_bytes);
        let routes = govpulse_edge::http_json::routes(http).add_service(ingest);
        unary::route(routes, govpulse_proto::wire::SUBMIT_EVENTS, submit)
    }

    fn catalog_dir(config: &Config) -> Option<&Path> {
        config.catalog_dir.as_deref()
    }

    fn host_args(config: &Config) -> &HostArgs {
        &config.host
    }
}
