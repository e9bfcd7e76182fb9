//! The three services in one process, wired to each other over real gRPC on loopback: the
//! single-machine deployment behind `govpulse serve` and `govpulse demo`, with the options of
//! the three service binaries that make sense in one process.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
};

use anyhow::Context;
use govpulse_edge::host::HostArgs;
use govpulse_runtime::tls::{TlsArgs, UpstreamTlsArgs};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where the stack listens, what it counts into and what it accepts. Each flag reads the
/// environment variable the service binaries read for the same setting.
#[derive(Debug, Clone, clap::Args)]
pub struct StackArgs {
    /// Count into this Redis (`redis://host:port/`, or a Redis Cluster as
    /// `redis+cluster://host:port,host:port,...`) instead of the in-memory store.
    #[arg(long, env = "GOVPULSE_REDIS_URL")]
    pub redis: Option<String>,
    /// Prefix of every Redis key.
    #[arg(long, env = "GOVPULSE_KEY_PREFIX", default_value = "gp")]
    pub key_prefix: String,
    /// Address the services listen on.
    #[arg(long, env = "GOVPULSE_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Preferred ports of ingest, aggregate and ranking (a busy port falls back to a free one).
    #[arg(long, num_args = 3, value_names = ["INGEST", "AGGREGATE", "RANKING"], default_values_t = [50051, 50052, 50053])]
    pub ports: Vec<u16>,
    /// Address of the Prometheus `/metrics` listener (all three services); none when unset.
    #[arg(long, env = "GOVPULSE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Folder with the catalog CSV files (provinces.csv, ministries.csv, and optionally
    /// units.csv, procedures.csv, mergers.csv); the built-in catalog when unset.
    #[arg(long, env = "GOVPULSE_CATALOG_DIR")]
    pub catalog_dir: Option<PathBuf>,
    /// Events older than this many days are refused; their ids are remembered this long
    /// [default: 400; the demo: enough for its history].
    #[arg(long, env = "GOVPULSE_HORIZON_DAYS")]
    pub horizon_days: Option<u16>,
    /// TOML file of targets (see deploy/config/targets.toml), reloaded when it changes; the
    /// built-in targets when unset.
    #[arg(long, env = "GOVPULSE_TARGETS")]
    pub targets: Option<PathBuf>,
    /// An agency with no event accepted for this many seconds (or never) is flagged stale
    /// [default: 7200].
    #[arg(long, env = "GOVPULSE_STALE_AFTER_SECS")]
    pub stale_after_secs: Option<u64>,
    /// TOML file of composite index profiles (see deploy/config/indexes.toml), reloaded when
    /// it changes; the built-in profiles when unset.
    #[arg(long, env = "GOVPULSE_INDEX_PROFILES")]
    pub index_profiles: Option<PathBuf>,
    /// TOML file of alert rules (see deploy/config/alerts.toml), reloaded when it changes;
    /// the built-in rules when unset.
    #[arg(long, env = "GOVPULSE_ALERT_RULES")]
    pub alert_rules: Option<PathBuf>,
    /// Agencies whose volume for a ranking's period (the metric's denominator; dossiers
    /// received for a composite index) is below this are listed apart, unranked
    /// [default: ranking's, 30].
    #[arg(long, env = "GOVPULSE_MIN_VOLUME")]
    pub min_volume: Option<u64>,
    /// Ingest's limits. Without --tokens or --tls-client-ca every caller is anonymous and
    /// acts for every agency, so the per-agency rate and stream limits do not apply (they
    /// would all share one allowance); the size limits always do.
    #[command(flatten)]
    pub limits: govpulse_ingest::Limits,
    /// TOML file of bearer tokens (docs/SECURITY.md), re-read when it changes. When set,
    /// ingest wants a credential with the reporter (or assessor) role, and ranking one with
    /// the reader role unless --public-read; unset, calls need no credential (development).
    #[arg(long, env = "GOVPULSE_TOKENS")]
    pub tokens: Option<PathBuf>,
    /// With --tokens or --tls-client-ca: anyone may still read rankings and figures.
    #[arg(long, env = "GOVPULSE_PUBLIC_READ", num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub public_read: bool,
    /// The connections, time and calls in flight each caller may hold, for every service.
    #[command(flatten)]
    pub edge: govpulse_edge::limits::EdgeLimits,
    /// TLS of all three services (one certificate, which must name the host the services
    /// call each other on); plaintext when no certificate is given.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// How ingest and ranking check aggregate's certificate: with --tls-cert, --upstream-ca
    /// is required.
    #[command(flatten)]
    pub upstream: UpstreamTlsArgs,
}

impl Default for StackArgs {
    /// The flags' defaults, with every service on a free port.
    fn default() -> Self {
        Self {
            redis: None,
            key_prefix: "gp".to_owned(),
            host: IpAddr::from([127, 0, 0, 1]),
            ports: vec![0, 0, 0],
            metrics_listen: None,
            catalog_dir: None,
            horizon_days: None,
            targets: None,
            stale_after_secs: None,
            index_profiles: None,
            alert_rules: None,
            min_volume: None,
            limits: govpulse_ingest::Limits::default(),
            tokens: None,
            public_read: false,
            edge: govpulse_edge::limits::EdgeLimits::default(),
            tls: TlsArgs::default(),
            upstream: UpstreamTlsArgs::default(),
        }
    }
}

/// The running services.
#[derive(Debug)]
pub struct Stack {
    /// ingest's address.
    pub ingest: SocketAddr,
    /// aggregate's address.
    pub aggregate: SocketAddr,
    /// ranking's address.
    pub ranking: SocketAddr,
    /// The `/metrics` listener's address, when configured.
    pub metrics: Option<SocketAddr>,
    /// Whether the services speak TLS (their URLs are `https://`).
    pub tls: bool,
    /// The catalog the services loaded.
    pub catalog: Arc<govpulse_core::Catalog>,
    /// Stops ingest and ranking, the services that call aggregate.
    stop_callers: CancellationToken,
    callers: [JoinHandle<()>; 2],
    /// Stops aggregate, once its callers have drained.
    stop_aggregate: CancellationToken,
    aggregate_task: JoinHandle<()>,
}

async fn bindable(host: IpAddr, port: u16) -> SocketAddr {
    let preferred = SocketAddr::new(host, port);
    match tokio::net::TcpListener::bind(preferred).await {
        Ok(_) => preferred,
        Err(_) => SocketAddr::new(host, 0),
    }
}

impl Stack {
    /// Starts aggregate, then ingest and ranking pointed at it.
    pub async fn start(args: StackArgs) -> anyhow::Result<Stack> {
        let catalog = Arc::new(govpulse_runtime::catalog_files::load(
            args.catalog_dir.as_deref(),
        )?);
        let tls = args.tls.tls_cert.is_some();
        if tls && args.upstream.upstream_ca.is_none() {
            anyhow::bail!(
                "--tls-cert needs --upstream-ca: the CA ingest and ranking check aggregate's certificate against"
            );
        }
        // The services' hosts: the stack's TLS, plaintext without a certificate, and its
        // limits; only aggregate serves /metrics (one process, one registry).
        let host = HostArgs {
            tls: TlsArgs {
                plaintext: !tls,
                ..args.tls.clone()
            },
            edge: args.edge.clone(),
            ..HostArgs::default()
        };
        // Callers authenticate when a token file or a client CA says how; otherwise this is
        // the development setting: anonymous calls acting for every agency.
        let anonymous = args.tokens.is_none() && args.tls.tls_client_ca.is_none();
        let port = |i: usize| args.ports.get(i).copied().unwrap_or(0);

        let mut aggregate_config =
            govpulse_aggregate::Config::new(bindable(args.host, port(1)).await);
        aggregate_config.store = args.redis.clone().unwrap_or_else(|| "memory".to_owned());
        aggregate_config.key_prefix = args.key_prefix.clone();
        aggregate_config.catalog_dir = args.catalog_dir.clone();
        aggregate_config.targets = args.targets.clone();
        aggregate_config.index_profiles = args.index_profiles.clone();
        aggregate_config.host = HostArgs {
            metrics_listen: args.metrics_listen,
            ..host.clone()
        };
        if let Some(days) = args.horizon_days {
            aggregate_config.horizon_days = days;
        }
        if let Some(secs) = args.stale_after_secs {
            aggregate_config.stale_after_secs = secs;
        }
        let store = govpulse_aggregate::open_store(&aggregate_config)
            .await
            .context("cannot open the counter store")?;
        let horizon_days = aggregate_config.horizon_days;
        let aggregate =
            govpulse_aggregate::build_with_store(aggregate_config, catalog.clone(), store).await?;
        let aggregate_addr = aggregate.host().local_addr();
        let metrics = aggregate.host().metrics_addr();
        let aggregate_url = Self::url_of(aggregate_addr, tls);

        let mut ingest_config =
            govpulse_ingest::Config::new(bindable(args.host, port(0)).await, aggregate_url.clone());
        ingest_config.catalog_dir = args.catalog_dir.clone();
        ingest_config.horizon_days = horizon_days;
        ingest_config.index_profiles = args.index_profiles.clone();
        ingest_config.host = host.clone();
        ingest_config.aggregate.upstream = args.upstream.clone();
        ingest_config.token_file.tokens = args.tokens.clone();
        ingest_config.allow_anonymous = anonymous;
        ingest_config.limits = if anonymous {
            args.limits.clone().without_per_agency()
        } else {
            args.limits.clone()
        };
        let ingest = govpulse_ingest::Server::build_with(ingest_config, catalog.clone()).await?;

        let mut ranking_config =
            govpulse_ranking::Config::new(bindable(args.host, port(2)).await, aggregate_url);
        ranking_config.catalog_dir = args.catalog_dir.clone();
        ranking_config.index_profiles = args.index_profiles.clone();
        ranking_config.alert_rules = args.alert_rules.clone();
        ranking_config.host = host;
        ranking_config.aggregate.upstream = args.upstream.clone();
        ranking_config.token_file.tokens = args.tokens.clone();
        ranking_config.public_read = anonymous || args.public_read;
        ranking_config.allow_anonymous = anonymous;
        if let Some(min_volume) = args.min_volume {
            ranking_config.min_volume = min_volume;
        }
        let ranking = govpulse_ranking::Server::build_with(ranking_config, catalog.clone()).await?;

        let (stop_callers, stop_aggregate) = (CancellationToken::new(), CancellationToken::new());
        let (ingest_addr, ranking_addr) = (ingest.host().local_addr(), ranking.host().local_addr());
        let aggregate_task = spawn(
            "aggregate",
            aggregate.run_until(stop_aggregate.clone().cancelled_owned()),
        );
        let callers = [
            spawn(
                "ingest",
                ingest.run_until(stop_callers.clone().cancelled_owned()),
            ),
            spawn(
                "ranking",
                ranking.run_until(stop_callers.clone().cancelled_owned()),
            ),
        ];
        Ok(Stack {
            ingest: ingest_addr,
            aggregate: aggregate_addr,
            ranking: ranking_addr,
            metrics,
            tls,
            catalog,
            stop_callers,
            callers,
            stop_aggregate,
            aggregate_task,
        })
    }

    /// A URL clients can dial for `addr` (a wildcard address becomes loopback).
    pub fn url(&self, addr: SocketAddr) -> String {
        Self::url_of(addr, self.tls)
    }

    fn url_of(addr: SocketAddr, tls: bool) -> String {
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://{}", loopback(addr))
    }

    /// Stops every service and waits for them to drain: ingest and ranking first, so that
    /// nothing they still do on their way out (a batch forwarded, a ranking recomputed) finds
    /// aggregate gone, then aggregate.
    pub async fn stop(self) {
        self.stop_callers.cancel();
        for task in self.callers {
            let _ = task.await;
        }
        self.stop_aggregate.cancel();
        let _ = self.aggregate_task.await;
    }
}

fn spawn<E: std::fmt::Display>(
    name: &'static str,
    run: impl Future<Output = Result<(), E>> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = run.await {
            tracing::error!(service = name, error = %e, "service stopped with an error");
        }
    })
}

fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::from([127, 0, 0, 1]), addr.port())
    } else {
        addr
    }
}
