//! Test support: a deployment of the three services as separate gRPC servers on port-0
//! loopback addresses, counting into a real `redis-server` that the test owns.

pub mod command;
pub mod http;
pub mod pki;
pub mod processes;
pub mod prometheus;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use govpulse_proto::{
    Timestamp,
    aggregate::{
        GetMetricsRequest, GetMetricsResponse, Rate,
        aggregate_service_client::AggregateServiceClient,
    },
    catalog::Block,
    event::{
        AssessedScore, Channel as PbChannel, DossierEvent, DossierReceived, DossierResolved,
        EventOutcome, OutcomeStatus, dossier_event::Kind, dossier_resolved,
    },
    ingest::{
        SubmitEventsRequest, SubmitEventsResponse, ingest_service_client::IngestServiceClient,
    },
    ranking::{
        GetRankingRequest, GetRankingResponse, RankingQuery, RankingRow, WatchRankingRequest,
        WatchRankingResponse, ranking_service_client::RankingServiceClient,
        watch_ranking_response::Event,
    },
};
pub use govpulse_store::testing::{RedisCluster, RedisServer};
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming, transport::Channel};
use tonic_types::StatusExt;

/// Noon (Vietnam time) two days ago: inside one Vietnam day and the accepted horizon,
/// whatever the hour the tests run.
pub fn two_days_ago_noon() -> OffsetDateTime {
    let vietnam = govpulse_core::period::VIETNAM;
    let day = (OffsetDateTime::now_utc().to_offset(vietnam) - time::Duration::days(2)).date();
    day.with_time(time::macros::time!(12:00))
        .assume_offset(vietnam)
}

/// Two hours ago, and its day in Vietnam (`2026-05-04`, the period of that day's figures).
pub fn two_hours_ago() -> (OffsetDateTime, String) {
    let at = OffsetDateTime::now_utc() - time::Duration::hours(2);
    (at, govpulse_core::period::vietnam_day(at).to_string())
}

/// A ranked line as tests compare them: (agency or procedure id, rank, `numerator/denominator`).
pub fn ranked(id: &str, rank: u32, fraction: &str) -> (String, u32, String) {
    (id.to_owned(), rank, fraction.to_owned())
}

/// One running service: its address and how to stop it.
#[derive(Debug)]
struct Running {
    addr: SocketAddr,
    /// Its `/metrics` listener, when it has one.
    metrics: Option<SocketAddr>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// A service on `addr` (its `/metrics` on `metrics`, if any), spawned by `serve` to run until
/// the token it is given is cancelled.
fn run<E: std::fmt::Debug + Send + 'static>(
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
    serve: impl FnOnce(CancellationToken) -> JoinHandle<Result<(), E>>,
) -> Running {
    let stop = CancellationToken::new();
    let handle = serve(stop.clone());
    let task = tokio::spawn(async move {
        match handle.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("service failed: {e:?}"),
            Err(e) => panic!("service panicked: {e}"),
        }
    });
    Running {
        addr,
        metrics,
        stop,
        task,
    }
}

/// Builds the server of `S` from `config` (panicking with `starts` when it cannot start) and
/// [`run`]s it, with its `/metrics` listener if it has one.
async fn serve<S: govpulse_edge::host::Service>(config: S::Config, starts: &str) -> Running {
    let server = govpulse_edge::host::Server::<S>::build(config)
        .await
        .expect(starts);
    let (addr, metrics) = (server.host().local_addr(), server.host().metrics_addr());
    run(addr, metrics, |stop| {
        tokio::spawn(server.run_until(stop.cancelled_owned()))
    })
}

/// How a test deployment differs from the defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A catalog folder instead of the built-in catalog.
    pub catalog_dir: Option<PathBuf>,
    /// Accepted age of events, in days, instead of 400 (tests of last-year comparisons send
    /// events more than a year old).
    pub horizon_days: Option<u16>,
    /// A targets file instead of the built-in targets.
    pub targets: Option<PathBuf>,
    /// Ranking's minimum volume (0 ranks every agency with data).
    pub min_volume: u64,
    /// Ranking's debounce instead of 100 ms.
    pub debounce_ms: Option<u64>,
    /// Ranking's refresh instead of 5 s (tests of notices set it far beyond their waits).
    pub refresh_ms: Option<u64>,
    /// Aggregate's silence before an agency is flagged stale, instead of two hours.
    pub stale_after_secs: Option<u64>,
    /// Aggregate serves `/metrics` on a port of its own ([`Deployment::aggregate_metrics_addr`]).
    pub aggregate_metrics: bool,
    /// Ranking's alert rules file, checked for changes every 100 ms; none by default (no
    /// rule: the built-in rules would add reads to every test).
    pub alert_rules: Option<PathBuf>,
    /// Ranking serves `/metrics` on a port of its own ([`Deployment::ranking_metrics_addr`]).
    pub ranking_metrics: bool,
}

/// ingest, aggregate and ranking, each its own server, aggregate counting into Redis.
#[derive(Debug)]
pub struct Deployment {
    redis_url: String,
    prefix: String,
    options: Options,
    aggregate: Option<Running>,
    ingest: Running,
    ranking: Running,
    /// The redis-server of [`Deployment::start_alone`], killed when the deployment is
    /// dropped (last: after the services).
    own_redis: Option<RedisServer>,
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn start_aggregate(
    redis_url: &str,
    prefix: &str,
    addr: SocketAddr,
    options: &Options,
) -> Running {
    let defaults = govpulse_aggregate::Config::new(addr).development();
    let config = govpulse_aggregate::Config {
        store: redis_url.to_owned(),
        key_prefix: prefix.to_owned(),
        catalog_dir: options.catalog_dir.clone(),
        targets: options.targets.clone(),
        horizon_days: options.horizon_days.unwrap_or(defaults.horizon_days),
        stale_after_secs: options
            .stale_after_secs
            .unwrap_or(defaults.stale_after_secs),
        host: with_metrics(&defaults.host, options.aggregate_metrics),
        ..defaults
    };
    serve::<govpulse_aggregate::Aggregate>(config, "aggregate starts").await
}

async fn start_ranking(aggregate_url: &str, addr: SocketAddr, options: &Options) -> Running {
    let defaults = govpulse_ranking::Config::new(addr, aggregate_url.to_owned()).development();
    let ranking_config = govpulse_ranking::Config {
        heartbeat_ms: 500,
        catalog_dir: options.catalog_dir.clone(),
        min_volume: options.min_volume,
        debounce_ms: options.debounce_ms.unwrap_or(defaults.debounce_ms),
        refresh_ms: options.refresh_ms.unwrap_or(defaults.refresh_ms),
        alert_rules: Some(
            options
                .alert_rules
                .clone()
                .unwrap_or_else(|| no_alert_rules().to_owned()),
        ),
        alert_rules_reload_ms: 100,
        alerts_debounce_ms: options.debounce_ms.unwrap_or(defaults.alerts_debounce_ms),
        host: with_metrics(&defaults.host, options.ranking_metrics),
        ..defaults
    };
    serve::<govpulse_ranking::Ranking>(ranking_config, "ranking starts").await
}

/// `host` with a `/metrics` listener on a free port when `metrics` asks for one.
fn with_metrics(
    host: &govpulse_edge::host::HostArgs,
    metrics: bool,
) -> govpulse_edge::host::HostArgs {
    govpulse_edge::host::HostArgs {
        metrics_listen: metrics.then(local0),
        ..host.clone()
    }
}

/// An alert rules file with no rule, written once per test process.
fn no_alert_rules() -> &'static Path {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let path = scratch("no-alert-rules").join("alerts.toml");
        std::fs::write(&path, "# no rule\n").expect("write an empty alert rules file");
        path
    })
}

async fn start_ingest(aggregate_url: &str, options: &Options) -> Running {
    let defaults = govpulse_ingest::Config::new(local(0), aggregate_url.to_owned()).development();
    let config = govpulse_ingest::Config {
        catalog_dir: options.catalog_dir.clone(),
        horizon_days: options.horizon_days.unwrap_or(defaults.horizon_days),
        ..defaults
    };
    serve::<govpulse_ingest::Ingest>(config, "ingest starts").await
}

/// One service started on its own, for topologies other than a [`Deployment`] (several
/// replicas of a service); stopped with [`Service::stop`].
#[derive(Debug)]
pub struct Service(Running);

impl Service {
    /// An aggregate replica counting into `redis` under `prefix`.
    pub async fn aggregate(redis: &RedisServer, prefix: &str, options: &Options) -> Service {
        Service(start_aggregate(&redis.url(), prefix, local(0), options).await)
    }

    /// An ingest replica forwarding to `aggregate`.
    pub async fn ingest(aggregate: &Service, options: &Options) -> Service {
        Service(start_ingest(&aggregate.url(), options).await)
    }

    /// A ranking replica reading from (and following the notices of) `aggregate`.
    pub async fn ranking(aggregate: &Service, options: &Options) -> Service {
        Service(start_ranking(&aggregate.url(), local(0), options).await)
    }

    /// A ranking replica on `addr` (for example the address of one that was stopped, as a
    /// restarted pod would be).
    pub async fn ranking_on(aggregate: &Service, addr: SocketAddr, options: &Options) -> Service {
        Service(start_ranking(&aggregate.url(), addr, options).await)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Its `http://` URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.0.addr)
    }

    /// A client channel to it.
    pub fn channel(&self) -> Channel {
        lazy(self.0.addr)
    }

    /// Stops it, draining.
    pub async fn stop(self) {
        self.0.stop().await;
    }
}

/// A service built from a configuration of the test's own and serving until
/// [`Spawned::stop`], which expects it to stop cleanly.
#[derive(Debug)]
pub struct Spawned {
    name: &'static str,
    addr: SocketAddr,
    health: Option<SocketAddr>,
    stop: CancellationToken,
    task: JoinHandle<Result<(), String>>,
}

impl Spawned {
    /// Aggregate, built from `config`.
    pub async fn aggregate(config: govpulse_aggregate::Config) -> Spawned {
        Self::spawn::<govpulse_aggregate::Aggregate>("aggregate", config).await
    }

    /// Ingest, built from `config`.
    pub async fn ingest(config: govpulse_ingest::Config) -> Spawned {
        Self::spawn::<govpulse_ingest::Ingest>("ingest", config).await
    }

    /// Ranking, built from `config`.
    pub async fn ranking(config: govpulse_ranking::Config) -> Spawned {
        Self::spawn::<govpulse_ranking::Ranking>("ranking", config).await
    }

    /// The server of `S` built from `config` (panicking when it cannot start) and spawned as
    /// `name`.
    async fn spawn<S: govpulse_edge::host::Service>(
        name: &'static str,
        config: S::Config,
    ) -> Spawned {
        let server = govpulse_edge::host::Server::<S>::build(config)
            .await
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let (addr, health) = (server.host().local_addr(), server.host().health_addr());
        let stop = CancellationToken::new();
        let serving = server.run_until(stop.clone().cancelled_owned());
        let task = tokio::spawn(async move { serving.await.map_err(|e| e.to_string()) });
        Spawned {
            name,
            addr,
            health,
            stop,
            task,
        }
    }

    /// Which service it is: `aggregate`, `ingest` or `ranking`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its health port's address, when its configuration gives it one.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health
    }

    /// Stops it, draining, and panics unless it stopped cleanly.
    pub async fn stop(self) {
        self.stop.cancel();
        let name = self.name;
        self.task
            .await
            .expect("joins")
            .unwrap_or_else(|e| panic!("{name} stops cleanly: {e}"));
    }
}

impl Deployment {
    /// Starts the three services against `redis`, with keys under `prefix`.
    pub async fn start(redis: &RedisServer, prefix: &str) -> Deployment {
        Self::start_with(redis, prefix, Options::default()).await
    }

    /// Starts a redis-server of its own and the three services against it, with keys under
    /// `prefix`; the server lives as long as the deployment.
    pub async fn start_alone(prefix: &str) -> Deployment {
        Self::start_alone_with(prefix, Options::default()).await
    }

    /// [`Deployment::start_alone`] with `options`.
    pub async fn start_alone_with(prefix: &str, options: Options) -> Deployment {
        let redis = RedisServer::start().expect("redis-server starts");
        let mut deployment = Self::start_with(&redis, prefix, options).await;
        deployment.own_redis = Some(redis);
        deployment
    }

    /// [`Deployment::start_alone`] with the catalog `write_catalog` writes into the scratch
    /// folder `prefix` (see [`scratch`]), otherwise the default [`Options`]: that folder, to
    /// remove when done, and the deployment.
    pub async fn start_alone_with_catalog(
        prefix: &str,
        write_catalog: impl FnOnce(&Path) -> PathBuf,
    ) -> (PathBuf, Deployment) {
        let dir = scratch(prefix);
        let options = Options {
            catalog_dir: Some(write_catalog(&dir)),
            ..Options::default()
        };
        (dir, Self::start_alone_with(prefix, options).await)
    }

    /// Starts the three services with `options`.
    pub async fn start_with(redis: &RedisServer, prefix: &str, options: Options) -> Deployment {
        Self::start_on(&redis.url(), prefix, options).await
    }

    /// Starts the three services with aggregate counting into the Redis (or Redis Cluster,
    /// `redis+cluster://...`) at `redis_url`.
    pub async fn start_on(redis_url: &str, prefix: &str, options: Options) -> Deployment {
        let redis_url = redis_url.to_owned();
        let aggregate = start_aggregate(&redis_url, prefix, local(0), &options).await;
        let aggregate_url = format!("http://{}", aggregate.addr);
        let ingest = start_ingest(&aggregate_url, &options).await;
        let ranking = start_ranking(&aggregate_url, local(0), &options).await;
        Deployment {
            redis_url,
            prefix: prefix.to_owned(),
            options,
            aggregate: Some(aggregate),
            ingest,
            ranking,
            own_redis: None,
        }
    }

    /// aggregate's `/metrics` address, when [`Options::aggregate_metrics`] asked for one.
    pub fn aggregate_metrics_addr(&self) -> Option<SocketAddr> {
        self.aggregate.as_ref().and_then(|a| a.metrics)
    }

    /// ingest's address.
    /// ranking's `/metrics` address, when [`Options::ranking_metrics`] asked for one.
    pub fn ranking_metrics_addr(&self) -> Option<SocketAddr> {
        self.ranking.metrics
    }

    /// ingest's address.
    pub fn ingest_addr(&self) -> SocketAddr {
        self.ingest.addr
    }

    /// aggregate's address.
    pub fn aggregate_addr(&self) -> SocketAddr {
        self.aggregate.as_ref().expect("aggregate is running").addr
    }

    /// ranking's address.
    pub fn ranking_addr(&self) -> SocketAddr {
        self.ranking.addr
    }

    /// The development configuration of another ingest on a free loopback port, forwarding to
    /// this deployment's aggregate: for a test's own ingest ([`Spawned::ingest`]).
    pub fn ingest_config(&self) -> govpulse_ingest::Config {
        govpulse_ingest::Config::new(local0(), self.aggregate_url()).development()
    }

    /// The development configuration of another ranking on a free loopback port, reading from
    /// this deployment's aggregate: for a test's own ranking ([`Spawned::ranking`]).
    pub fn ranking_config(&self) -> govpulse_ranking::Config {
        govpulse_ranking::Config::new(local0(), self.aggregate_url()).development()
    }

    fn aggregate_url(&self) -> String {
        format!("http://{}", self.aggregate_addr())
    }

    /// A client of ingest.
    pub fn ingest(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::new(lazy(self.ingest.addr))
    }

    /// A client of aggregate.
    pub fn aggregate(&self) -> AggregateServiceClient<Channel> {
        AggregateServiceClient::new(lazy(self.aggregate_addr()))
    }

    /// A client of ranking.
    pub fn ranking(&self) -> RankingServiceClient<Channel> {
        RankingServiceClient::new(lazy(self.ranking.addr))
    }

    /// Aggregate's GetMetrics of `agency` over `period`: `metrics` (none: every metric), or the
    /// status it was refused with.
    pub async fn get_metrics(
        &self,
        agency: &str,
        period: &str,
        metrics: &[&str],
    ) -> Result<GetMetricsResponse, Status> {
        self.aggregate()
            .get_metrics(metrics_request(agency, period, metrics))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Ranking's GetRanking of `query`: the ranking, or the status it was refused with.
    pub async fn get_ranking(&self, query: RankingQuery) -> Result<GetRankingResponse, Status> {
        self.ranking()
            .get_ranking(GetRankingRequest { query: Some(query) })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Ranking's WatchRanking of `query` from its start (no revision to resume from).
    pub async fn watch_ranking(&self, query: RankingQuery) -> Streaming<WatchRankingResponse> {
        self.ranking()
            .watch_ranking(WatchRankingRequest {
                query: Some(query),
                resume_revision: 0,
            })
            .await
            .expect("watch")
            .into_inner()
    }

    /// Submits `events` through ingest in one call, and returns its answer.
    pub async fn submit(&self, events: Vec<DossierEvent>) -> SubmitEventsResponse {
        self.ingest()
            .submit_events(SubmitEventsRequest { events })
            .await
            .expect("submit")
            .into_inner()
    }

    /// Submits `events` through ingest in batches of 1,000, asserting that every one is
    /// accepted (the first other outcome is named).
    pub async fn accept_all(&self, events: Vec<DossierEvent>) {
        for batch in events.chunks(1000) {
            let response = self.submit(batch.to_vec()).await;
            assert_eq!(
                response.accepted as usize,
                batch.len(),
                "{:?}",
                response
                    .outcomes
                    .iter()
                    .find(|o| o.status != OutcomeStatus::Accepted as i32)
            );
        }
    }

    /// Stops aggregate (draining it) and starts a new one on the same address, as a pod
    /// restart would; ingest and ranking reconnect by themselves.
    pub async fn restart_aggregate(&mut self) {
        let old = self.aggregate.take().expect("aggregate is running");
        let addr = old.addr;
        old.stop().await;
        self.aggregate =
            Some(start_aggregate(&self.redis_url, &self.prefix, addr, &self.options).await);
    }

    /// Stops everything.
    pub async fn stop(mut self) {
        self.ingest.stop().await;
        self.ranking.stop().await;
        if let Some(aggregate) = self.aggregate.take() {
            aggregate.stop().await;
        }
    }
}

/// A GetMetrics request of `agency` over `period`: `metrics` (none: every metric).
pub fn metrics_request(agency: &str, period: &str, metrics: &[&str]) -> GetMetricsRequest {
    GetMetricsRequest {
        agency_id: agency.to_owned(),
        period: period.to_owned(),
        metrics: metrics.iter().map(|m| (*m).to_owned()).collect(),
        ..GetMetricsRequest::default()
    }
}

/// A channel to a service at `addr` (plaintext), connected on first use.
pub fn lazy(addr: SocketAddr) -> Channel {
    lazy_url(format!("http://{addr}"))
}

/// A channel to a service at `url`, connected on first use.
pub fn lazy_url(url: String) -> Channel {
    tonic::transport::Endpoint::from_shared(url)
        .expect("valid url")
        .connect_lazy()
}

/// Loopback with port 0: a listener binds a free port, read back from it.
pub fn local0() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// An empty folder for one test's files: `govpulse-<name>-<process id>` in the system's
/// temporary folder (emptied first, in case an earlier process of the same id left it).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("govpulse-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The shipped catalog (`deploy/catalog`).
pub const SHIPPED_CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/catalog");

/// Writes `text` to `path` with a modification time `secs` ahead of now, so that a service
/// following the file sees each version as new, however coarse the file system's clock.
pub fn write_ahead(path: &Path, text: &str, secs: u64) {
    std::fs::write(path, text).expect("write");
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(secs))
        .expect("set its modification time");
}

/// A catalog folder `<dir>/catalog`: the shipped provinces and ministries, and `units` and
/// `procedures` as the text of `units.csv` and `procedures.csv` (header row included).
pub fn catalog_with(dir: &Path, units: &str, procedures: &str) -> PathBuf {
    let catalog = dir.join("catalog");
    std::fs::create_dir_all(&catalog).expect("catalog dir");
    for file in ["provinces.csv", "ministries.csv"] {
        std::fs::copy(format!("{SHIPPED_CATALOG}/{file}"), catalog.join(file))
            .expect("copy the shipped catalog");
    }
    std::fs::write(catalog.join("units.csv"), units).expect("units.csv");
    std::fs::write(catalog.join("procedures.csv"), procedures).expect("procedures.csv");
    catalog
}

/// The statuses of a batch's outcomes, in order.
pub fn statuses(outcomes: &[EventOutcome]) -> Vec<OutcomeStatus> {
    outcomes
        .iter()
        .map(|o| OutcomeStatus::try_from(o.status).expect("a known status"))
        .collect()
}

/// `message` as a request carrying the bearer `token`.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

/// The field and description of the first field violation (google.rpc.BadRequest) of
/// `status`, which must be INVALID_ARGUMENT.
pub fn field_violation(status: &Status) -> (String, String) {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let details = status
        .get_details_bad_request()
        .expect("a google.rpc.BadRequest");
    let violation = details.field_violations.first().expect("a field violation");
    (violation.field.clone(), violation.description.clone())
}

/// One `[[credential]]` of a token file: the token's SHA-256 (`sha256`), the agency it acts
/// for and its `roles`, written as the items of a TOML list (`"reporter", "reader"`).
pub fn credential_for(sha256: &str, agency: &str, roles: &str) -> String {
    format!("[[credential]]\nsha256 = \"{sha256}\"\nagency = \"{agency}\"\nroles = [{roles}]\n")
}

/// A protobuf timestamp.
pub fn ts(at: OffsetDateTime) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: at.unix_timestamp(),
        nanos: 0,
    })
}

/// An assessor's `points` for `criterion` of the composite index `profile`, for `agency` over
/// `period`.
pub fn assessed_score(
    agency: &str,
    profile: &str,
    criterion: &str,
    period: &str,
    points: impl ToString,
) -> AssessedScore {
    AssessedScore {
        agency_id: agency.to_owned(),
        profile: profile.to_owned(),
        criterion: criterion.to_owned(),
        period: period.to_owned(),
        points: points.to_string(),
    }
}

/// A reception event of `agency` for its first demo procedure (`<agency>.p01`).
pub fn received(event_id: &str, agency: &str, at: OffsetDateTime, online: bool) -> DossierEvent {
    let channel = if online {
        PbChannel::Online
    } else {
        PbChannel::InPerson
    };
    event(
        event_id,
        agency,
        at,
        Kind::Received(DossierReceived {
            channel: channel.into(),
            digitized: true,
            due_at: None,
        }),
    )
}

/// A resolution event, on time or not (by the due time).
pub fn resolved(event_id: &str, agency: &str, at: OffsetDateTime, on_time: bool) -> DossierEvent {
    let due = if on_time {
        at + time::Duration::hours(1)
    } else {
        at - time::Duration::hours(1)
    };
    event(
        event_id,
        agency,
        at,
        Kind::Resolved(DossierResolved {
            timeliness: Some(dossier_resolved::Timeliness::DueAt(
                ts(due).unwrap_or_default(),
            )),
            result_electronic: false,
        }),
    )
}

/// An event `kind` of `agency` at `at`, for the dossier `HS-<event_id>` of its first demo
/// procedure (`<agency>.p01`).
pub fn event(event_id: &str, agency: &str, at: OffsetDateTime, kind: Kind) -> DossierEvent {
    DossierEvent {
        event_id: event_id.to_owned(),
        agency_id: agency.to_owned(),
        dossier_id: format!("HS-{event_id}"),
        procedure_id: format!("{agency}.p01"),
        occurred_at: ts(at),
        kind: Some(kind),
        corrects: String::new(),
    }
}

/// A rate as its fraction, numerator over denominator.
pub fn fraction(rate: Option<&Rate>) -> Option<(u64, u64)> {
    rate.map(|r| (r.numerator, r.denominator))
}

/// One row of a ranking as a subscriber shows it: rank, agency, value, below the minimum,
/// rank in the previous period.
pub type ShownRow = (u32, String, Option<(u64, u64)>, bool, u32);

fn shown(row: &RankingRow) -> ShownRow {
    (
        row.rank,
        row.agency_id.clone(),
        fraction(row.rate.as_ref()),
        row.below_minimum_volume,
        row.previous_period_rank,
    )
}

/// The provinces ranked by online dossier rate over `period`, every row: the ranking most
/// tests read.
pub fn provinces_by_online_rate(period: impl Into<String>) -> RankingQuery {
    RankingQuery {
        metric: "online-dossier-rate".into(),
        block: Block::Province.into(),
        period: period.into(),
        ..RankingQuery::default()
    }
}

/// The next message of a live ranking, within 5 s.
pub async fn next_message(stream: &mut Streaming<WatchRankingResponse>) -> WatchRankingResponse {
    next_within(stream, std::time::Duration::from_secs(5)).await
}

/// The next message of a live ranking, within `limit`; panics when none comes, the stream
/// ends or fails.
pub async fn next_within(
    stream: &mut Streaming<WatchRankingResponse>,
    limit: std::time::Duration,
) -> WatchRankingResponse {
    tokio::time::timeout(limit, stream.message())
        .await
        .unwrap_or_else(|_| panic!("a message within {limit:?}"))
        .expect("ok")
        .expect("open")
}

/// The rows of a GetRanking answer as a subscriber would show them, in [`LiveRows::rows`]
/// order.
pub fn shown_rows(rows: &[RankingRow]) -> Vec<ShownRow> {
    let mut rows: Vec<ShownRow> = rows.iter().map(shown).collect();
    rows.sort_by(order);
    rows
}

fn order(a: &ShownRow, b: &ShownRow) -> std::cmp::Ordering {
    (a.0 == 0, a.0, &a.1).cmp(&(b.0 == 0, b.0, &b.1))
}

/// The rows a WatchRanking message carries: a snapshot's, or a change's rows as they are
/// now (including rows that left); `None` for a message without rows.
pub fn rows_of(message: WatchRankingResponse) -> Option<Vec<RankingRow>> {
    match message.event? {
        Event::Snapshot(snapshot) => Some(snapshot.rows),
        Event::Changes(changes) => {
            Some(changes.changes.into_iter().filter_map(|c| c.row).collect())
        }
        _ => None,
    }
}

/// A live ranking as a subscriber keeps it, built from WatchRanking messages, checking the
/// stream's promises as it goes.
#[derive(Debug, Default, Clone)]
pub struct LiveRows {
    rows: BTreeMap<String, ShownRow>,
    /// How many agencies are ranked.
    pub ranked_count: u32,
    /// The revision of the last message applied.
    pub revision: u64,
    /// The snapshot is complete.
    pub complete: bool,
    /// Changes messages applied.
    pub changes: usize,
    snapshot_open: bool,
}

impl LiveRows {
    /// Applies one message; panics when the stream breaks a promise (a revision going
    /// back, a change before the snapshot is complete).
    pub fn apply(&mut self, message: &WatchRankingResponse) {
        match &message.event {
            Some(Event::Reset(_)) => {
                self.complete = false;
                self.snapshot_open = false;
                self.revision = message.revision;
                return;
            }
            Some(Event::Snapshot(snapshot)) => {
                if !self.snapshot_open {
                    self.rows.clear();
                    self.snapshot_open = true;
                    self.complete = false;
                    self.revision = message.revision;
                }
                self.ranked_count = snapshot.ranked_count;
                for row in &snapshot.rows {
                    self.rows.insert(row.agency_id.clone(), shown(row));
                }
            }
            Some(Event::SnapshotComplete(_)) => {
                self.snapshot_open = false;
                self.complete = true;
            }
            Some(Event::Changes(changes)) => {
                assert!(self.complete, "a change before a complete snapshot");
                // Only a resumed stream's first message may repeat the revision: nothing
                // changed since, and it carries no rows.
                assert!(
                    message.revision > self.revision
                        || (message.revision == self.revision && changes.changes.is_empty()),
                    "a change at revision {} after {}: no duplicate, no step back",
                    message.revision,
                    self.revision
                );
                self.changes += 1;
                self.ranked_count = changes.ranked_count;
                for change in &changes.changes {
                    let Some(row) = &change.row else { continue };
                    if change.left {
                        self.rows.remove(&row.agency_id);
                    } else {
                        self.rows.insert(row.agency_id.clone(), shown(row));
                    }
                }
            }
            Some(Event::Heartbeat(_)) | None => {}
        }
        assert!(
            message.revision >= self.revision,
            "revision {} after {}",
            message.revision,
            self.revision
        );
        self.revision = message.revision;
    }

    /// The rows in rank order (ranked first, then rank 0), as GetRanking lists them.
    pub fn rows(&self) -> Vec<ShownRow> {
        let mut rows: Vec<ShownRow> = self.rows.values().cloned().collect();
        rows.sort_by(order);
        rows
    }
}

/// Number formats for the benchmarks' tables.
pub mod report {
    use std::time::Duration;

    /// One line of a benchmark's report.
    #[derive(Debug)]
    pub struct Row {
        measurement: String,
        value: String,
        notes: String,
    }

    impl Row {
        /// What was measured, the figure, and what to know about it.
        pub fn new(measurement: &str, value: String, notes: String) -> Row {
            Row {
                measurement: measurement.to_owned(),
                value,
                notes,
            }
        }
    }

    /// The build the figures come from: `debug` or `release`.
    pub fn build() -> &'static str {
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    }

    /// Prints a benchmark's report: the line saying how it was `measured`, the rows as a
    /// Markdown table, and the run's total time.
    #[expect(clippy::print_stdout, reason = "a benchmark reports on standard output")]
    pub fn print(measured: &str, rows: &[Row], elapsed: Duration) {
        println!();
        println!("{measured}");
        println!();
        println!("| measurement | value | notes |");
        println!("|---|---|---|");
        for row in rows {
            println!("| {} | {} | {} |", row.measurement, row.value, row.notes);
        }
        println!();
        println!("Total run time: {:.1} s", elapsed.as_secs_f64());
    }

    /// Bytes as mebibytes with one decimal: `1.5 MiB`.
    pub fn mib(bytes: u64) -> String {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }

    /// `1234567` → `1,234,567`.
    pub fn thousands(n: u64) -> String {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn thousands_are_grouped_by_three() {
            assert_eq!(super::thousands(0), "0");
            assert_eq!(super::thousands(999), "999");
            assert_eq!(super::thousands(1_000), "1,000");
            assert_eq!(super::thousands(1_234_567), "1,234,567");
            assert_eq!(super::mib(3 * 1024 * 1024 / 2), "1.5 MiB");
        }
    }
}
