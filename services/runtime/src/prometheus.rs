//! Prometheus metrics: the names every service records under, and the `/metrics` listener
//! (`--metrics-listen`), separate from the gRPC port.
//!
//! One recorder per process, installed by the first listener bound: the demo and the tests
//! run several services in one process, and they share it (the `service` label tells their
//! series apart); each listener renders the same registry. With no listener, no recorder is
//! installed and recording a metric does nothing.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures::future::BoxFuture;
use govpulse_proto::event::{EventOutcome, OutcomeStatus};
use http_body_util::Full;
use hyper::{
    Method, Response, StatusCode,
    body::Incoming,
    header::{CONTENT_TYPE, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::BindError;

/// Counter `{service, outcome, reason}`: events by outcome (`accepted`, `duplicate`,
/// `conflict`, `rejected`); `reason` is the violated field of a rejected event (`agency_id`,
/// `occurred_at`, `received.channel`, `events` for a refused batch), empty otherwise.
pub const EVENTS: &str = "govpulse_events_total";
/// Histogram `{service}`: events per batch received.
pub const BATCH_EVENTS: &str = "govpulse_batch_events";
/// Histogram `{op}`: seconds per counter store call (`apply`, `read`, `read_children`,
/// `read_activity`, `put_assessed`, `read_assessed`, `publish_change`, `subscribe_changes`,
/// `keep_publication`, `publication`, `publications`),
/// measured in aggregate around each call.
pub const STORE_SECONDS: &str = "govpulse_store_seconds";
/// Counter `{op}`: counter store calls that failed.
pub const STORE_ERRORS: &str = "govpulse_store_errors_total";
/// Counter `{result}`: keys the tree writer asked for that its cache answered (`hit`) or that
/// it read from Redis (`miss`), set from the store's own counts when `/metrics` is scraped.
pub const WRITE_CACHE_LOOKUPS: &str = "govpulse_store_write_cache_lookups_total";
/// Gauge: the bytes the tree writer's cache holds (its budget is `--write-cache-mib`), set
/// when `/metrics` is scraped.
pub const WRITE_CACHE_BYTES: &str = "govpulse_store_write_cache_bytes";
/// Gauge `{stream}`: open `WatchRanking` (`ranking`), `WatchAlerts` (`alerts`) and
/// `WatchChanges` (`changes`) streams.
pub const WATCH_SUBSCRIBERS: &str = "govpulse_watch_subscribers";
/// Counter `{method, code}`: gRPC calls answered, by method
/// (`govpulse.ingest.v1.IngestService/SubmitEvents`; `unknown` for unimplemented paths) and
/// final status (`OK`, `InvalidArgument`, `Unavailable`, ...; `Cancelled` when the client
/// went away before the end).
pub const GRPC_REQUESTS: &str = "govpulse_grpc_requests_total";
/// Counter `{route, status}`: HTTP requests answered on the services' ports (the JSON API, the
/// dashboard), by route pattern (`/api/v1/events`, `/assets/{name}`; `unknown` for a path no
/// route serves) and HTTP status (`200`, `400`, ...), counted when the answer starts (a
/// `text/event-stream` when it opens).
pub const HTTP_REQUESTS: &str = "govpulse_http_requests_total";
/// Gauge: live rankings a ranking replica computes (watched, or lingering for a client that
/// may resume).
pub const LIVE_RANKINGS: &str = "govpulse_live_rankings";
/// Counter `{reason}`: calls and connections refused at the edge, by reason
/// (`credential_rejected`, `scope_denied`, `rate_limited`, `connection_cap`,
/// `in_flight_cap`, `live_ranking_cap`, `watch_cap`); their log lines are limited to one a second per
/// reason (`refusals.rs`).
pub const REFUSALS: &str = "govpulse_refusals_total";
/// Histogram: seconds from the change notice that made a live ranking recompute to the end
/// of that recomputation (its publication, when the ranking changed).
pub const RANKING_LAG_SECONDS: &str = "govpulse_ranking_lag_seconds";

/// Gauge `{agency}`: 1 when a top-level agency (a ministry or a province) is stale, no event
/// of it or its units accepted for longer than aggregate's `--stale-after-secs` (or ever),
/// else 0. Set by aggregate when `/metrics` is scraped ([`collect_on_scrape`]); one series
/// per top-level agency of the catalog, never more.
pub const AGENCY_STALE: &str = "govpulse_agency_stale";
/// Gauge `{agency}`: when an event of a top-level agency or its units was last accepted, in
/// Unix seconds (absent until one is); alongside [`AGENCY_STALE`], for alerts on other
/// silences (`time() - govpulse_agency_last_accepted_timestamp_seconds > 3600`).
pub const AGENCY_LAST_ACCEPTED: &str = "govpulse_agency_last_accepted_timestamp_seconds";

/// Gauge `{rule, agency, severity, state}`: 1 while ranking's alert of `rule` for `agency`
/// is in `state` (`pending`, `firing`), 0 once it left it; the shape of Prometheus's own
/// `ALERTS`, so that Alertmanager can route govpulse's alerts. At most two series per rule
/// of the alert rules file and agency of its scope.
pub const ALERT_ACTIVE: &str = "govpulse_alert_active";

/// How long a scrape waits for the values collected at its moment ([`collect_on_scrape`])
/// before it renders what the registry holds (a collector's store may be down).
const COLLECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Sets gauges read from elsewhere (aggregate: each top-level agency's freshness, from the
/// store): run by every scrape just before it renders, so a gauge is exact at the scrape's
/// moment and nothing is read when nobody scrapes.
pub type Collect = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// The process's collectors, by registration number.
fn collectors() -> &'static Mutex<Vec<(u64, Collect)>> {
    static COLLECTORS: OnceLock<Mutex<Vec<(u64, Collect)>>> = OnceLock::new();
    COLLECTORS.get_or_init(Mutex::default)
}

/// A registered collector: scrapes run it until this is dropped.
#[derive(Debug)]
#[must_use = "the collector is unregistered when this is dropped"]
pub struct Collector(u64);

/// Has every scrape run `collect` first, until the returned [`Collector`] is dropped.
pub fn collect_on_scrape(collect: Collect) -> Collector {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    lock(collectors()).push((id, collect));
    Collector(id)
}

impl Drop for Collector {
    fn drop(&mut self) {
        lock(collectors()).retain(|(id, _)| *id != self.0);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs every collector, each at most [`COLLECT_TIMEOUT`], for a scrape that took `ticket`
/// ([`Coalesced::ticket`]) when it arrived. One collection runs at a time, and a scrape takes
/// the values of one that started after it arrived instead of running its own: however many
/// scrapes come at once (the metrics port has no credential), the collectors' reads run one
/// after another.
async fn collect(ticket: u64) {
    COLLECTIONS
        .run(ticket, || async {
            let running: Vec<Collect> = lock(collectors()).iter().map(|(_, c)| c.clone()).collect();
            let all = futures::future::join_all(running.iter().map(|collect| collect()));
            if tokio::time::timeout(COLLECT_TIMEOUT, all).await.is_err() {
                warn!(
                    "a /metrics collector took longer than 2 s: its gauges keep their last values"
                );
            }
        })
        .await;
}

static COLLECTIONS: Coalesced = Coalesced::new();

/// Work run one at a time, skipped by a caller for whom a run started after it arrived
/// (that run's result is as recent as the caller asked for).
struct Coalesced {
    started: AtomicU64,
    turn: tokio::sync::Mutex<()>,
}

impl Coalesced {
    const fn new() -> Self {
        Self {
            started: AtomicU64::new(0),
            turn: tokio::sync::Mutex::const_new(()),
        }
    }

    /// What a caller takes when it arrives: the runs started so far.
    fn ticket(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }

    /// Runs `work` for a caller holding `ticket`, unless a run started since it took it;
    /// whether it ran.
    async fn run<F: Future<Output = ()>>(&self, ticket: u64, work: impl FnOnce() -> F) -> bool {
        let _turn = self.turn.lock().await;
        if self.started.load(Ordering::SeqCst) > ticket {
            return false;
        }
        self.started.fetch_add(1, Ordering::SeqCst);
        work().await;
        true
    }
}

/// Records the outcomes of one batch as seen by `service`.
pub fn record_outcomes(service: &'static str, outcomes: &[EventOutcome]) {
    metrics::histogram!(BATCH_EVENTS, "service" => service).record(outcomes.len() as f64);
    let (mut accepted, mut duplicate, mut conflict) = (0u64, 0u64, 0u64);
    for outcome in outcomes {
        match OutcomeStatus::try_from(outcome.status) {
            Ok(OutcomeStatus::Accepted) => accepted += 1,
            Ok(OutcomeStatus::Duplicate) => duplicate += 1,
            Ok(OutcomeStatus::Conflict) => conflict += 1,
            _ => metrics::counter!(
                EVENTS,
                "service" => service,
                "outcome" => "rejected",
                "reason" => rejected_reason(&outcome.field),
            )
            .increment(1),
        }
    }
    for (outcome, count) in [
        ("accepted", accepted),
        ("duplicate", duplicate),
        ("conflict", conflict),
    ] {
        if count > 0 {
            metrics::counter!(EVENTS, "service" => service, "outcome" => outcome, "reason" => "")
                .increment(count);
        }
    }
}

/// The field a rejection names, without the event's position (`events[3].agency_id` →
/// `agency_id`), so the label has a handful of values whatever the batch size.
fn rejected_reason(field: &str) -> String {
    match field.strip_prefix("events[") {
        Some(rest) => match rest.split_once("].") {
            Some((_, field)) => field.to_owned(),
            None => "events".to_owned(),
        },
        None => field.to_owned(),
    }
}

/// Counts one open stream in [`WATCH_SUBSCRIBERS`] while it lives.
#[derive(Debug)]
pub struct Subscriber(&'static str);

impl Subscriber {
    /// One more open `stream` (`ranking`, `alerts` or `changes`) until this is dropped.
    pub fn open(stream: &'static str) -> Self {
        metrics::gauge!(WATCH_SUBSCRIBERS, "stream" => stream).increment(1.0);
        Self(stream)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        metrics::gauge!(WATCH_SUBSCRIBERS, "stream" => self.0).decrement(1.0);
    }
}

/// The process's recorder, installed on first use.
fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            let sizes = [
                1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10_000.0,
            ];
            // Buckets (not the exporter's default summaries) so that replicas aggregate.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(STORE_SECONDS.to_owned()), &seconds)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(RANKING_LAG_SECONDS.to_owned()),
                        &seconds,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(BATCH_EVENTS.to_owned()), &sizes)
                })
                .unwrap_or_else(|e| {
                    warn!(error = %e, "histogram buckets refused: histograms render as summaries");
                    PrometheusBuilder::new()
                });
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                warn!("another metrics recorder is installed: /metrics shows nothing");
            }
            handle
        })
        .clone()
}

/// A bound `/metrics` listener.
#[derive(Debug)]
pub struct MetricsListener {
    listener: TcpListener,
    local: SocketAddr,
    handle: PrometheusHandle,
}

/// Installs the process's recorder (once) and binds `addr`; port 0 picks a free port.
pub async fn bind(addr: SocketAddr) -> Result<MetricsListener, BindError> {
    let (listener, local) = crate::listen(addr).await?;
    Ok(MetricsListener {
        listener,
        local,
        handle: recorder(),
    })
}

impl MetricsListener {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Answers `GET /metrics` (Prometheus text format) until `stopping` is cancelled.
    pub async fn serve(self, stopping: CancellationToken) {
        info!(addr = %self.local, "metrics listening");
        // Histogram samples are folded into buckets on upkeep (and on each scrape).
        let mut upkeep = tokio::time::interval(Duration::from_secs(5));
        loop {
            let accepted = tokio::select! {
                () = stopping.cancelled() => return,
                _ = upkeep.tick() => {
                    self.handle.run_upkeep();
                    continue;
                }
                accepted = self.listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    debug!(error = %e, "metrics accept failed");
                    continue;
                }
            };
            let handle = self.handle.clone();
            let stopping = stopping.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let handle = handle.clone();
                    async move {
                        let response = if request.method() == Method::GET
                            && request.uri().path() == "/metrics"
                        {
                            collect(COLLECTIONS.ticket()).await;
                            let mut response =
                                Response::new(Full::new(Bytes::from(handle.render())));
                            response.headers_mut().insert(
                                CONTENT_TYPE,
                                HeaderValue::from_static("text/plain; version=0.0.4"),
                            );
                            response
                        } else {
                            let mut response =
                                Response::new(Full::new(Bytes::from_static(b"try GET /metrics\n")));
                            *response.status_mut() = StatusCode::NOT_FOUND;
                            response
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    () = stopping.cancelled() => {}
                    result = connection => if let Err(e) = result {
                        debug!(error = %e, "metrics connection failed");
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /metrics` on `addr`: the body.
    async fn scrape(addr: SocketAddr) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .expect("sends");
        let mut page = String::new();
        stream.read_to_string(&mut page).await.expect("reads");
        page
    }

    #[tokio::test]
    async fn a_scrape_runs_the_collectors_first_until_they_are_dropped() {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("binds");
        let addr = listener.local_addr();
        let stopping = CancellationToken::new();
        tokio::spawn(listener.serve(stopping.clone()));
        let runs = Arc::new(AtomicU64::new(0));
        let counted = runs.clone();
        let collector = collect_on_scrape(Arc::new(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                metrics::gauge!("govpulse_test_collected").set(n as f64);
            })
        }));
        assert!(scrape(addr).await.contains("govpulse_test_collected 1"));
        assert!(scrape(addr).await.contains("govpulse_test_collected 2"));
        drop(collector);
        assert!(scrape(addr).await.contains("govpulse_test_collected 2"));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        stopping.cancel();
    }

    #[tokio::test]
    async fn scrapes_that_arrive_while_a_collection_runs_take_its_values() {
        let coalesced = Coalesced::new();
        let runs = AtomicU64::new(0);
        let work = || async {
            runs.fetch_add(1, Ordering::SeqCst);
        };
        let first = coalesced.ticket();
        assert!(coalesced.run(first, work).await);
        // Arrived before that run started (it was waiting for its turn): no run of its own.
        assert!(!coalesced.run(first, work).await);
        // Arrived after: the values must be as of its arrival.
        assert!(coalesced.run(coalesced.ticket(), work).await);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // Many at once: the first runs, the others waited for it and take its values.
        let ticket = coalesced.ticket();
        let all = futures::future::join_all((0..8).map(|_| coalesced.run(ticket, work))).await;
        assert_eq!(all.iter().filter(|ran| **ran).count(), 1);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_rejection_reason_is_the_field_without_the_event_position() {
        assert_eq!(rejected_reason("events[3].agency_id"), "agency_id");
        assert_eq!(
            rejected_reason("events[12].received.channel"),
            "received.channel"
        );
        assert_eq!(rejected_reason("events"), "events");
        assert_eq!(rejected_reason("events[0]"), "events");
    }
}
