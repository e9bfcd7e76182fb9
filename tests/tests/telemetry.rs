//! Telemetry, end to end: one batch's trace crosses ingest, aggregate (and its Redis calls)
//! and ranking's recomputation when each runs as its own process exporting to an OTLP
//! receiver; and `/metrics` counts a batch's outcomes.
//!
//! The trace test runs the service binaries next to this test executable, which
//! `cargo test --workspace` builds (alone, `cargo test -p govpulse-e2e` needs
//! `cargo build --bins` first).

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use govpulse_e2e::{
    RedisServer, lazy_url, local0, next_within,
    processes::{binary, json_log},
    prometheus::{assert_samples, sample, scrape},
    received, ts, two_days_ago_noon,
};
use govpulse_edge::host::HostArgs;
use govpulse_proto::{
    catalog::Block,
    event::{DossierEvent, OutcomeStatus},
    ingest::{SubmitEventsRequest, ingest_service_client::IngestServiceClient},
    ranking::{
        RankingQuery, WatchRankingRequest, WatchRankingResponse,
        ranking_service_client::RankingServiceClient, watch_ranking_response::Event,
    },
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One span as the receiver got it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    links: Vec<Vec<u8>>,
}

/// An OTLP/gRPC trace receiver keeping every span it is sent; a test waits on its watch
/// channel for the spans it expects.
#[derive(Debug, Clone, Default)]
struct Receiver {
    spans: Arc<watch::Sender<Vec<ReceivedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(name) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    links: span.links.into_iter().map(|l| l.span_id).collect(),
                });
            }
        }
        self.spans.send_modify(|spans| spans.extend(received));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// Serves on a port-0 loopback address until `stop`.
    async fn start(&self, stop: CancellationToken) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("address");
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(self.clone()))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                stop.cancelled_owned(),
            );
        tokio::spawn(server);
        addr
    }

    /// Waits until `found` finds what it looks for among the spans received so far, looking
    /// again after each export; panics naming `what` after 20 s.
    async fn wait_for<T>(
        &self,
        what: &str,
        mut found: impl FnMut(&[ReceivedSpan]) -> Option<T>,
    ) -> T {
        let mut spans = self.spans.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(it) = found(&spans.borrow_and_update()) {
                    return it;
                }
                spans.changed().await.expect("the receiver lives");
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            let received: Vec<(String, String)> = self
                .spans
                .borrow()
                .iter()
                .map(|s| (s.service.clone(), s.name.clone()))
                .collect();
            panic!("no {what} within 20 s; received: {received:#?}")
        })
    }
}

/// A service process; killed if the test ends early.
struct Process {
    child: Child,
    logs: mpsc::Receiver<serde_json::Value>,
    addr: String,
}

impl Process {
    /// Starts `name` with `env` (JSON logs) and waits for its `"<service> bound"` log line.
    fn start(name: &str, env: &[(&str, String)]) -> Process {
        let mut child = Command::new(binary(name))
            .env("GOVPULSE_LISTEN", "127.0.0.1:0")
            // The development settings (each service reads the ones it has): plaintext,
            // anonymous calls acting for every agency, no rate or stream limit, public reads.
            .env("GOVPULSE_PLAINTEXT", "true")
            .env("GOVPULSE_ALLOW_ANONYMOUS", "true")
            .env("GOVPULSE_RATE_PER_AGENCY", "0")
            .env("GOVPULSE_MAX_STREAMS_PER_AGENCY", "0")
            .env("GOVPULSE_PUBLIC_READ", "true")
            .env("GOVPULSE_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let logs = json_log(child.stderr.take().expect("stderr is piped"));
        // Owned from here on: a panic while waiting stops the process.
        let mut process = Process {
            child,
            logs,
            addr: String::new(),
        };
        let bound_message = format!("{} bound", name.trim_start_matches("govpulse-"));
        let bound = process.wait_for_log(&bound_message);
        process.addr = bound["fields"]["addr"]
            .as_str()
            .expect("the bound address is logged")
            .to_owned();
        process
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the process logs `message`, and returns that log line.
    fn wait_for_log(&self, message: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.logs.recv_timeout(left) {
                Ok(log) if log["fields"]["message"] == message => return log,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no {message:?} logged within 20 s");
    }

    /// SIGTERM, then a clean exit (which flushes the spans still buffered). Waits off the
    /// runtime, whose tasks must go on answering the draining server (its GOAWAY).
    async fn stop(mut self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let status = tokio::task::spawn_blocking(move || self.child.wait())
            .await
            .expect("join")
            .expect("exits");
        assert!(status.success(), "SIGTERM is a clean stop: {status}");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The next message of a live ranking, within 10 s.
async fn next(stream: &mut tonic::Streaming<WatchRankingResponse>) -> WatchRankingResponse {
    next_within(stream, Duration::from_secs(10)).await
}

/// Opens a live ranking of the province block over `day` and reads its snapshot.
async fn watch_provinces(ranking: String, day: &str) -> tonic::Streaming<WatchRankingResponse> {
    let query = RankingQuery {
        metric: "online-dossier-rate".into(),
        block: Block::Province.into(),
        period: day.to_owned(),
        selection: None,
        ..Default::default()
    };
    let mut stream = RankingServiceClient::new(lazy_url(ranking))
        .watch_ranking(WatchRankingRequest {
            query: Some(query),
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    while !matches!(
        next(&mut stream).await.event,
        Some(Event::SnapshotComplete(_))
    ) {}
    stream
}

fn find<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|s| s.service == service && s.name == name)
}

// Multi-threaded: starting a process blocks this thread while the receiver must answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_is_one_trace_across_ingest_aggregate_redis_and_ranking() {
    let redis = RedisServer::start().expect("redis-server starts");
    let receiver = Receiver::default();
    let stop_receiver = CancellationToken::new();
    let otlp = receiver.start(stop_receiver.clone()).await;
    let otel = |service: &str| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}")),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("OTEL_SERVICE_NAME", format!("test-{service}")),
        ]
    };
    let mut aggregate_env = otel("aggregate");
    aggregate_env.extend([
        ("GOVPULSE_STORE", redis.url()),
        ("GOVPULSE_KEY_PREFIX", "telemetry".to_owned()),
    ]);
    let aggregate = Process::start("govpulse-aggregate", &aggregate_env);
    let mut ingest_env = otel("ingest");
    ingest_env.extend([
        ("GOVPULSE_AGGREGATE_URL", aggregate.url()),
        // Rejections are logged at debug, inside the call's span.
        ("RUST_LOG", "info,govpulse_ingest=debug".to_owned()),
    ]);
    let ingest = Process::start("govpulse-ingest", &ingest_env);
    let mut ranking_env = otel("ranking");
    ranking_env.extend([
        ("GOVPULSE_AGGREGATE_URL", aggregate.url()),
        // Only the batch's notice recomputes during the test, not the periodic refresh.
        ("GOVPULSE_REFRESH_MS", "600000".to_owned()),
        // Long enough that two batches sent one after the other fold into one recomputation.
        ("GOVPULSE_DEBOUNCE_MS", "1500".to_owned()),
    ]);
    let ranking = Process::start("govpulse-ranking", &ranking_env);
    ranking.wait_for_log("following aggregate's change notices");

    let at = two_days_ago_noon();
    let mut watch = watch_provinces(ranking.url(), &at.date().to_string()).await;
    let ingest_client = IngestServiceClient::new(lazy_url(ingest.url()));
    let submit_batch = |id: &'static str| {
        let mut client = ingest_client.clone();
        async move {
            let unknown_agency = DossierEvent {
                agency_id: "no-such-agency".to_owned(),
                ..received(&format!("{id}-bad"), "lang-son", at, true)
            };
            let response = client
                .submit_events(SubmitEventsRequest {
                    events: vec![received(id, "lang-son", at, true), unknown_agency],
                })
                .await
                .expect("submit")
                .into_inner();
            assert_eq!(response.accepted, 1, "{response:?}");
        }
    };
    submit_batch("telemetry-1").await;
    // The recomputation published the change: its span has ended.
    while !matches!(next(&mut watch).await.event, Some(Event::Changes(_))) {}

    // The batch's trace: ingest's call is its root; the rest descends from it.
    let submit_name = "govpulse.ingest.v1.IngestService/SubmitEvents";
    let snapshot_name = "govpulse.aggregate.v1.AggregateService/GetBlockSnapshot";
    let trace = receiver
        .wait_for("complete trace of the batch", |spans| {
            let root = find(spans, "test-ingest", submit_name)?;
            let trace: Vec<ReceivedSpan> = spans
                .iter()
                .filter(|s| s.trace_id == root.trace_id)
                .cloned()
                .collect();
            let has = |service: &str, name: &str| find(&trace, service, name).is_some();
            let snapshots = trace.iter().filter(|s| s.name == snapshot_name).count();
            let complete = has("test-aggregate", "store.apply")
                && has("test-ranking", "ranking.recompute")
                && has("test-aggregate", "store.read")
                && snapshots >= 2;
            complete.then_some(trace)
        })
        .await;

    let span = |service: &str, name: &str| {
        find(&trace, service, name)
            .unwrap_or_else(|| panic!("{service} {name} in the trace: {trace:#?}"))
            .clone()
    };
    let submit = span("test-ingest", submit_name);
    let apply = span(
        "test-aggregate",
        "govpulse.aggregate.v1.AggregateService/ApplyEvents",
    );
    let store_apply = span("test-aggregate", "store.apply");
    let recompute = span("test-ranking", "ranking.recompute");
    assert!(
        submit.parent_span_id.is_empty(),
        "ingest's call is the root"
    );
    assert_eq!(apply.parent_span_id, submit.span_id, "ingest → aggregate");
    assert_eq!(
        store_apply.parent_span_id, apply.span_id,
        "aggregate → Redis"
    );
    assert_eq!(
        recompute.parent_span_id, apply.span_id,
        "the notice of ApplyEvents → ranking's recomputation"
    );
    // The recomputation's reads are in the trace too: ranking → aggregate → Redis.
    let snapshots: Vec<&ReceivedSpan> = trace.iter().filter(|s| s.name == snapshot_name).collect();
    assert_eq!(snapshots.len(), 2, "this period and the previous one");
    assert!(
        snapshots
            .iter()
            .all(|s| s.parent_span_id == recompute.span_id)
    );
    // Ingest's log of the rejected event names the batch's trace.
    let rejected = ingest.wait_for_log("event rejected");
    let trace_hex: String = submit.trace_id.iter().map(|b| format!("{b:02x}")).collect();
    let logged = rejected["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|span| span["trace_id"].as_str())
        .collect::<Vec<_>>();
    assert_eq!(logged, [trace_hex.as_str()], "{rejected}");
    let services: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        services,
        BTreeSet::from(["test-aggregate", "test-ingest", "test-ranking"])
    );

    // Two batches within the debounce: one recomputation, the child of the first batch's
    // ApplyEvents and linked to the second's.
    submit_batch("telemetry-2").await;
    submit_batch("telemetry-3").await;
    while !matches!(next(&mut watch).await.event, Some(Event::Changes(_))) {}
    let apply_name = "govpulse.aggregate.v1.AggregateService/ApplyEvents";
    let (parent, link) = receiver
        .wait_for("folded recomputation of the two batches", |spans| {
            let applies: Vec<&ReceivedSpan> = spans
                .iter()
                .filter(|s| s.name == apply_name && s.span_id != apply.span_id)
                .collect();
            let folded = spans.iter().find(|s| {
                s.name == "ranking.recompute"
                    && s.span_id != recompute.span_id
                    && !s.links.is_empty()
            });
            let (Some(folded), 2) = (folded, applies.len()) else {
                return None;
            };
            let by_id = |id: &Vec<u8>| applies.iter().find(|a| &a.span_id == id).copied();
            Some((
                by_id(&folded.parent_span_id).cloned(),
                folded.links.iter().find_map(by_id).cloned(),
            ))
        })
        .await;
    let (parent, link) = (
        parent.expect("the parent is a batch's ApplyEvents"),
        link.expect("a link to the other batch's ApplyEvents"),
    );
    assert_ne!(parent.trace_id, link.trace_id, "two batches, two traces");

    drop(watch);
    let started = Instant::now();
    ingest.stop().await;
    ranking.stop().await;
    aggregate.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        started.elapsed()
    );
    stop_receiver.cancel();
}

#[tokio::test]
async fn metrics_count_events_by_outcome_and_reason_and_calls_by_status() {
    let redis = RedisServer::start().expect("redis-server starts");
    let stop = CancellationToken::new();
    let aggregate = govpulse_aggregate::Server::build(govpulse_aggregate::Config {
        store: redis.url(),
        key_prefix: "metrics".to_owned(),
        host: HostArgs {
            metrics_listen: Some(local0()),
            ..HostArgs::default().plaintext()
        },
        ..govpulse_aggregate::Config::new(local0()).development()
    })
    .await
    .expect("aggregate starts");
    let aggregate_url = format!("http://{}", aggregate.host().local_addr());
    let aggregate_metrics = aggregate.host().metrics_addr().expect("a metrics listener");
    let ingest = govpulse_ingest::Server::build(govpulse_ingest::Config {
        host: HostArgs {
            metrics_listen: Some(local0()),
            ..HostArgs::default().plaintext()
        },
        ..govpulse_ingest::Config::new(local0(), aggregate_url.clone()).development()
    })
    .await
    .expect("ingest starts");
    let ingest_addr = ingest.host().local_addr();
    let ingest_url = format!("http://{ingest_addr}");
    let ingest_metrics = ingest.host().metrics_addr().expect("a metrics listener");
    let ranking = govpulse_ranking::Server::build(
        govpulse_ranking::Config::new(local0(), aggregate_url).development(),
    )
    .await
    .expect("ranking starts");
    let ranking_addr = ranking.host().local_addr();
    let ranking_url = format!("http://{ranking_addr}");
    assert_eq!(
        ranking.host().metrics_addr(),
        None,
        "no listener unless configured"
    );
    let tasks = [
        tokio::spawn(aggregate.run_until(stop.clone().cancelled_owned())),
        tokio::spawn(ingest.run_until(stop.clone().cancelled_owned())),
        tokio::spawn(ranking.run_until(stop.clone().cancelled_owned())),
    ];

    let at = two_days_ago_noon();
    let mut watch = watch_provinces(ranking_url, &at.date().to_string()).await;
    let counted = received("metrics-1", "lang-son", at, true);
    let unknown_agency = DossierEvent {
        agency_id: "no-such-agency".to_owned(),
        occurred_at: ts(at),
        ..received("metrics-2", "lang-son", at, true)
    };
    let response = IngestServiceClient::new(lazy_url(ingest_url.clone()))
        .submit_events(SubmitEventsRequest {
            events: vec![counted.clone(), counted, unknown_agency],
        })
        .await
        .expect("submit")
        .into_inner();
    let statuses: Vec<i32> = response.outcomes.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses,
        [
            OutcomeStatus::Accepted as i32,
            OutcomeStatus::Duplicate as i32,
            OutcomeStatus::Rejected as i32
        ]
    );
    while !matches!(next(&mut watch).await.event, Some(Event::Changes(_))) {}
    let too_many = IngestServiceClient::new(lazy_url(ingest_url))
        .submit_events(SubmitEventsRequest {
            events: vec![DossierEvent::default(); 1001],
        })
        .await
        .expect_err("over the batch limit");
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument);
    // HTTP: a JSON batch that does not parse, the dashboard's page, a path nothing serves.
    let json = [("content-type", "application/json")];
    let bad = govpulse_e2e::http::call(ingest_addr, "POST", "/api/v1/events", &json, b"{".to_vec());
    assert_eq!(bad.await.status, 400);
    assert_eq!(
        govpulse_e2e::http::get(ranking_addr, "/", &[]).await.status,
        200
    );
    assert_eq!(
        govpulse_e2e::http::get(ingest_addr, "/nope", &[])
            .await
            .status,
        404
    );

    // The samples, as /metrics writes them.
    let expected = r#"
        govpulse_events_total{service="ingest",outcome="accepted",reason=""} 1
        govpulse_events_total{service="ingest",outcome="duplicate",reason=""} 1
        govpulse_events_total{service="ingest",outcome="rejected",reason="agency_id"} 1
        govpulse_events_total{service="aggregate",outcome="accepted",reason=""} 1
        govpulse_events_total{service="aggregate",outcome="duplicate",reason=""} 1
        govpulse_batch_events_count{service="ingest"} 1
        govpulse_batch_events_sum{service="ingest"} 3
        govpulse_batch_events_sum{service="aggregate"} 2
        govpulse_store_seconds_count{op="apply"} 1
        govpulse_grpc_requests_total{method="govpulse.ingest.v1.IngestService/SubmitEvents",code="OK"} 1
        govpulse_grpc_requests_total{method="govpulse.ingest.v1.IngestService/SubmitEvents",code="InvalidArgument"} 1
        govpulse_grpc_requests_total{method="govpulse.aggregate.v1.AggregateService/ApplyEvents",code="OK"} 1
        govpulse_http_requests_total{route="/api/v1/events",status="400"} 1
        govpulse_http_requests_total{route="/",status="200"} 1
        govpulse_http_requests_total{route="unknown",status="404"} 1
        govpulse_watch_subscribers{stream="ranking"} 1
        govpulse_watch_subscribers{stream="changes"} 1
    "#;
    // The lag is recorded once the recomputation that published the change is over, after
    // the change reached the stream; only /metrics shows it, so this scrapes until it does.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(ingest_metrics).await;
        if sample(&text, "govpulse_ranking_lag_seconds_count", &[]).is_some_and(|n| n >= 1.0) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no govpulse_ranking_lag_seconds_count within 10 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_samples(&text, expected);
    assert!(
        sample(&text, "govpulse_store_seconds_count", &[("op", "read")]).is_some_and(|n| n >= 2.0),
        "ranking's snapshot reads: {text}"
    );
    // The batch's tree was read from Redis: its first write, nothing cached yet.
    let lookups = |result| {
        sample(
            &text,
            "govpulse_store_write_cache_lookups_total",
            &[("result", result)],
        )
    };
    assert_eq!(lookups("hit"), Some(0.0), "{text}");
    assert!(lookups("miss").is_some_and(|n| n >= 1.0), "{text}");
    let held = sample(&text, "govpulse_store_write_cache_bytes", &[]);
    assert!(
        held.is_some_and(|n| n > 0.0),
        "what the batch left is kept: {text}"
    );
    // Every listener renders the process's one registry.
    let from_aggregate = scrape(aggregate_metrics).await;
    assert_samples(
        &from_aggregate,
        r#"govpulse_events_total{service="aggregate",outcome="accepted",reason=""} 1"#,
    );

    drop(watch);
    stop.cancel();
    for task in tasks {
        task.await.expect("service task").expect("clean stop");
    }
}

#[test]
fn the_dashboard_queries_only_metrics_the_services_record() {
    use govpulse_runtime::prometheus::{
        AGENCY_LAST_ACCEPTED, AGENCY_STALE, BATCH_EVENTS, EVENTS, GRPC_REQUESTS, HTTP_REQUESTS,
        RANKING_LAG_SECONDS, STORE_ERRORS, STORE_SECONDS, WATCH_SUBSCRIBERS,
    };
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard"))
            .expect("the dashboard is JSON");
    let recorded = [
        EVENTS,
        BATCH_EVENTS,
        STORE_SECONDS,
        STORE_ERRORS,
        WATCH_SUBSCRIBERS,
        RANKING_LAG_SECONDS,
        GRPC_REQUESTS,
        HTTP_REQUESTS,
        AGENCY_STALE,
        AGENCY_LAST_ACCEPTED,
    ];
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a query");
            for (start, _) in expr.match_indices("govpulse_") {
                let name: String = expr[start..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                queried.insert(name);
            }
        }
    }
    for name in &queried {
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| [BATCH_EVENTS, STORE_SECONDS, RANKING_LAG_SECONDS].contains(base))
            .unwrap_or(name);
        assert!(recorded.contains(&base), "{name} is not recorded");
    }
    for name in recorded {
        assert!(
            queried.iter().any(|q| q.starts_with(name)),
            "{name} is on no panel"
        );
    }
}
