//! Measures `GetBlockMetrics` latency (63 provinces, and the 10,000 units of one province),
//! `GetProcedureMetrics` latency (a province with 2,000 procedures), ingest throughput and
//! Redis memory per agency, on a real `redis-server` holding year-to-date data. Run with
//! `cargo bench -p govpulse-e2e --bench metrics`.

#![allow(clippy::print_stdout, reason = "a benchmark reports on standard output")]

use std::{
    io::Write as _,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use govpulse_core::period::VIETNAM;
use govpulse_e2e::{
    Deployment, Options, RedisServer, received,
    report::{self, Row, mib, thousands},
    ts,
};
use govpulse_proto::{
    aggregate::{
        GetBlockMetricsRequest, GetProcedureMetricsRequest,
        aggregate_service_client::AggregateServiceClient, get_block_metrics_request::Scope,
    },
    catalog::Block,
    event::{DossierEvent, DossierResolved, dossier_event::Kind, dossier_resolved},
    ingest::SubmitEventsRequest,
    ranking::{GetRankingRequest, RankingQuery, ranking_service_client::RankingServiceClient},
};
use time::{Date, OffsetDateTime};
use tonic::transport::Channel;

/// Units written under `PARENT`; `parent_id = PARENT` returns exactly these.
const UNITS: usize = 10_000;
const PARENT: &str = "ha-noi";
/// Units used only to estimate the cost of a year of daily buckets; under another province so
/// that they do not change the `parent_id = PARENT` scope.
const EXTRA_UNITS: usize = 100;
const EXTRA_PARENT: &str = "hoa-binh";
/// Reception events per agency, each on a different day.
const EVENTS_PER_AGENCY: usize = 12;
/// No event is older than this (the default horizon is 400 days).
const MAX_AGE_DAYS: i64 = 300;
/// Procedures `<province>.p01` … `<province>.p24` exist for every province.
const PROCEDURES_PER_PROVINCE: usize = 24;
const BATCH: usize = 1_000;
const SENDERS: usize = 4;
const WARM_UP: usize = 3;
const SAMPLES: usize = 30;
/// A case stops early (with at least `MIN_SAMPLES`) once its samples took this long, so the
/// whole run stays within a few minutes on a small machine.
const CASE_BUDGET: Duration = Duration::from_secs(25);
const MIN_SAMPLES: usize = 10;
const METRICS: [&str; 2] = ["online-dossier-rate", "services-with-online-dossiers"];
/// The province whose procedures the drill-down reads: it gets `DRILL_PROCEDURES` procedures
/// of its own, each with `DRILL_DOSSIERS` dossiers on days spread over the window, received
/// with a due time ten days on and resolved, on time or not, for two in three.
const DRILL_AGENCY: &str = "bac-ninh";
const DRILL_PROCEDURES: usize = 2_000;
const DRILL_DOSSIERS: usize = 6;

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let catalog = TempCatalog::create();
    let redis = RedisServer::start().expect("redis-server starts (is it installed?)");
    let options = Options {
        catalog_dir: Some(catalog.dir.clone()),
        ..Options::default()
    };
    let deployment = Deployment::start_with(&redis, "bench", options).await;
    let window = DayWindow::current();
    let mut rows = Vec::new();

    let before = redis_memory(redis.port());
    let agencies: Vec<String> = province_ids().into_iter().chain(unit_ids()).collect();
    let events = year_to_date_events(&agencies, &window);
    let ingest = send_all(&deployment, events).await;
    let after = redis_memory(redis.port());
    rows.push(ingest.row());
    rows.extend(memory_rows(before, after, agencies.len()));

    let floor = GetBlockMetricsRequest {
        scope: Some(Scope::Block(Block::Ministry.into())),
        metric: METRICS[0].to_owned(),
        period: window.today().to_string(),
        ..Default::default()
    };
    let latency = measure(Target::Grpc(deployment.aggregate()), floor).await;
    // The server side alone: aggregate's API over the same Redis, called in process, so the
    // time excludes gRPC encoding, the loopback network and the client's decoding.
    let server_side = govpulse_aggregate::Server::build(govpulse_aggregate::Config {
        store: redis.url(),
        key_prefix: "bench".to_owned(),
        catalog_dir: Some(catalog.dir.clone()),
        ..govpulse_aggregate::Config::new(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .development()
    })
    .await
    .expect("a second aggregate builds");
    rows.push(latency.row("reference: GetBlockMetrics block = BLOCK_MINISTRY (no data), today"));
    for metric in METRICS {
        for (label, scope) in [
            (
                "block = BLOCK_PROVINCE",
                Scope::Block(Block::Province.into()),
            ),
            ("parent_id = \"ha-noi\"", Scope::ParentId(PARENT.to_owned())),
        ] {
            let request = GetBlockMetricsRequest {
                scope: Some(scope),
                metric: metric.to_owned(),
                period: "ytd".to_owned(),
                ..Default::default()
            };
            let latency = measure(Target::Grpc(deployment.aggregate()), request.clone()).await;
            rows.push(latency.row(&format!("GetBlockMetrics {label}, {metric}, ytd")));
            let latency = measure(
                Target::InProcess(server_side.service().api()),
                request.clone(),
            )
            .await;
            rows.push(latency.row(&format!(
                "  server side: the same query answered in process, no gRPC ({label}, {metric})"
            )));
            let latency = measure(Target::Ranking(deployment.ranking()), request).await;
            rows.push(latency.row(&format!(
                "  GetRanking of the same agencies ({label}, {metric}): the snapshot read and the ranking"
            )));
        }
    }

    rows.extend(procedure_latency(&deployment, server_side.service().api(), &window).await);
    rows.push(daily_bucket_cost(&deployment, &redis, &window).await);

    print_report(&rows, &window, started.elapsed());
    deployment.stop().await;
    drop(redis);
    drop(catalog);
}

/// A catalog folder in the temporary directory, removed on drop.
#[derive(Debug)]
struct TempCatalog {
    dir: PathBuf,
}

impl TempCatalog {
    fn create() -> TempCatalog {
        let dir =
            std::env::temp_dir().join(format!("govpulse-bench-catalog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the temporary catalog folder can be created");
        let catalog = TempCatalog { dir };
        for name in ["provinces.csv", "ministries.csv", "procedures.csv"] {
            let from =
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/catalog")).join(name);
            std::fs::copy(&from, catalog.dir.join(name))
                .unwrap_or_else(|e| panic!("cannot copy {}: {e}", from.display()));
        }
        std::fs::write(catalog.dir.join("units.csv"), units_csv())
            .expect("units.csv can be written");
        let mut procedures = std::fs::OpenOptions::new()
            .append(true)
            .open(catalog.dir.join("procedures.csv"))
            .expect("the copied procedures.csv can be appended to");
        for id in drill_procedure_ids() {
            writeln!(
                procedures,
                "{id},{DRILL_AGENCY},Bench procedure {id},full,true"
            )
            .expect("procedures.csv can be written");
        }
        catalog
    }
}

impl Drop for TempCatalog {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unit_ids() -> impl Iterator<Item = String> {
    (1..=UNITS).map(|n| format!("{PARENT}.u{n:05}"))
}

fn drill_procedure_ids() -> impl Iterator<Item = String> {
    (1..=DRILL_PROCEDURES).map(|n| format!("{DRILL_AGENCY}.b{n:04}"))
}

fn extra_unit_ids() -> impl Iterator<Item = String> {
    (1..=EXTRA_UNITS).map(|n| format!("{EXTRA_PARENT}.x{n:03}"))
}

fn units_csv() -> String {
    let mut csv = String::from("id,name,parent_id\n");
    for (ids, parent) in [
        (unit_ids().collect::<Vec<_>>(), PARENT),
        (extra_unit_ids().collect(), EXTRA_PARENT),
    ] {
        for id in ids {
            csv.push_str(&format!("{id},Bench unit {id},{parent}\n"));
        }
    }
    csv
}

/// The ids of the 63 provinces, read from the shipped `provinces.csv` (`code,id,…`).
fn province_ids() -> Vec<String> {
    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/catalog/provinces.csv"
    ));
    text.lines()
        .skip(1)
        .filter_map(|line| line.split(',').nth(1))
        .map(str::to_owned)
        .collect()
}

/// The days events are spread over: from 1 January of the current Vietnam year (or
/// `MAX_AGE_DAYS` ago, whichever is later) to today, Vietnam time.
#[derive(Debug)]
struct DayWindow {
    first: Date,
    days: i64,
    now: OffsetDateTime,
}

impl DayWindow {
    fn current() -> DayWindow {
        let now = OffsetDateTime::now_utc();
        let today = now.to_offset(VIETNAM).date();
        let new_year = Date::from_ordinal_date(today.year(), 1).expect("1 January exists");
        let first = new_year.max(today - time::Duration::days(MAX_AGE_DAYS));
        DayWindow {
            first,
            days: (today - first).whole_days() + 1,
            now,
        }
    }

    fn today(&self) -> Date {
        self.first + time::Duration::days(self.days - 1)
    }

    /// 09:00 Vietnam time on day `index` of the window, but never in the future.
    fn at(&self, index: i64) -> OffsetDateTime {
        let day = self.first + time::Duration::days(index);
        day.with_hms(9, 0, 0)
            .expect("09:00 is a valid time")
            .assume_offset(VIETNAM)
            .min(self.now)
    }
}

/// One reception of `procedure` by `agency`, online or in person, digitized.
fn reception(
    event_id: String,
    agency: &str,
    procedure: String,
    at: OffsetDateTime,
    online: bool,
) -> DossierEvent {
    DossierEvent {
        procedure_id: procedure,
        ..received(&event_id, agency, at, online)
    }
}

/// The province a unit or province id belongs to (`ha-noi.u00001` → `ha-noi`).
fn province_of(agency: &str) -> &str {
    agency.split('.').next().unwrap_or(agency)
}

/// `EVENTS_PER_AGENCY` receptions per agency on distinct days spread over the window, two
/// in three online, cycling through the province's 24 procedures.
fn year_to_date_events(agencies: &[String], window: &DayWindow) -> Vec<DossierEvent> {
    let per_agency = i64::try_from(EVENTS_PER_AGENCY).expect("a small constant");
    let stride = (window.days / per_agency).max(1);
    let mut events = Vec::with_capacity(agencies.len() * EVENTS_PER_AGENCY);
    for (i, agency) in agencies.iter().enumerate() {
        let i64_index = i64::try_from(i).expect("fewer agencies than i64::MAX");
        for k in 0..EVENTS_PER_AGENCY {
            let k64 = i64::try_from(k).expect("a small index");
            let day = (k64 * stride + i64_index % stride).min(window.days - 1);
            let procedure = (i + k) % PROCEDURES_PER_PROVINCE + 1;
            events.push(reception(
                format!("bench:{agency}:{k}"),
                agency,
                format!("{}.p{procedure:02}", province_of(agency)),
                window.at(day),
                (i + k) % 3 != 0,
            ));
        }
    }
    events
}

/// What sending a set of events through ingest gave.
#[derive(Debug)]
struct Ingested {
    sent: usize,
    accepted: usize,
    /// Batches sent again after `UNAVAILABLE` (counting timed out).
    retries: usize,
    elapsed: Duration,
}

impl Ingested {
    fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64()
    }

    fn row(&self) -> Row {
        Row::new(
            "ingest SubmitEvents (populate year to date)",
            format!("{} events/s", thousands(self.rate().round() as u64)),
            format!(
                "{} events ({} counted) in {:.1} s; {EVENTS_PER_AGENCY} receptions on different days per agency; batches of {}, {SENDERS} concurrent senders; {} batches resent after a timeout",
                thousands(self.sent as u64),
                thousands(self.accepted as u64),
                self.elapsed.as_secs_f64(),
                thousands(BATCH as u64),
                self.retries
            ),
        )
    }
}

/// Sends `events` through ingest in batches of `BATCH`, from `SENDERS` concurrent tasks, and
/// panics unless every event is accepted.
async fn send_all(deployment: &Deployment, events: Vec<DossierEvent>) -> Ingested {
    let sent = events.len();
    let mut lanes: Vec<Vec<Vec<DossierEvent>>> = (0..SENDERS).map(|_| Vec::new()).collect();
    let mut events = events.into_iter().peekable();
    let mut lane = 0;
    while events.peek().is_some() {
        lanes[lane % SENDERS].push(events.by_ref().take(BATCH).collect());
        lane += 1;
    }
    let started = Instant::now();
    let tasks: Vec<_> = lanes
        .into_iter()
        .map(|batches| {
            let mut client = deployment.ingest();
            tokio::spawn(async move {
                let (mut accepted, mut retries) = (0, 0);
                for events in batches {
                    // As an agency's system would: a batch that timed out may have been
                    // counted, so it is sent again unchanged and its counted events come
                    // back DUPLICATE.
                    let mut attempt = 0;
                    let reply = loop {
                        match client
                            .submit_events(SubmitEventsRequest {
                                events: events.clone(),
                            })
                            .await
                        {
                            Ok(reply) => break reply.into_inner(),
                            Err(status)
                                if status.code() == tonic::Code::Unavailable && attempt < 5 =>
                            {
                                attempt += 1;
                                retries += 1;
                            }
                            Err(status) => panic!("ingest refused a batch: {status}"),
                        }
                    };
                    if reply.rejected > 0 {
                        let why = reply.outcomes.iter().find(|o| !o.reason.is_empty());
                        panic!("{} events were rejected, first: {why:?}", reply.rejected);
                    }
                    accepted += (reply.accepted + reply.duplicate) as usize;
                }
                (accepted, retries)
            })
        })
        .collect();
    let (mut accepted, mut retries) = (0, 0);
    for task in tasks {
        let (lane_accepted, lane_retries) = task.await.expect("a sender task does not panic");
        accepted += lane_accepted;
        retries += lane_retries;
    }
    let elapsed = started.elapsed();
    assert_eq!(
        accepted, sent,
        "every event is new and valid, so every one is counted (accepted, or duplicate on a retry)"
    );
    Ingested {
        sent,
        accepted,
        retries,
        elapsed,
    }
}

/// `used_memory` and the number of keys, from `redis-cli`.
#[derive(Debug, Clone, Copy)]
struct Memory {
    used: u64,
    keys: u64,
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli runs (it comes with redis-server)");
    assert!(output.status.success(), "redis-cli {args:?} failed");
    String::from_utf8(output.stdout).expect("redis-cli prints text")
}

fn redis_memory(port: u16) -> Memory {
    let info = redis_cli(port, &["info", "memory"]);
    let used = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("used_memory:"))
        .and_then(|value| value.parse().ok())
        .expect("INFO memory reports used_memory");
    let keys = redis_cli(port, &["dbsize"])
        .trim()
        .parse()
        .expect("DBSIZE is a number");
    Memory { used, keys }
}

fn memory_rows(before: Memory, after: Memory, agencies: usize) -> Vec<Row> {
    let delta = after.used.saturating_sub(before.used);
    let agencies64 = agencies as u64;
    vec![
        Row::new(
            "Redis used_memory before / after populating",
            format!("{} / {}", mib(before.used), mib(after.used)),
            format!(
                "INFO memory; keys {} / {}",
                thousands(before.keys),
                thousands(after.keys)
            ),
        ),
        Row::new(
            "Redis memory per agency (populated)",
            format!("{} bytes", thousands(delta / agencies64)),
            format!(
                "(after − before) / {} agencies; {:.1} keys per agency",
                thousands(agencies64),
                after.keys.saturating_sub(before.keys) as f64 / agencies as f64
            ),
        ),
    ]
}

/// Latencies of repeated calls, the CPU time this process spent on them, and the number of
/// rows (agencies or procedures) in the response.
#[derive(Debug)]
struct Latency {
    samples: Vec<Duration>,
    cpu: Duration,
    agencies: usize,
}

/// The CPU time this process has used, user and system, from `/proc/self/stat`: unlike the
/// wall time of a call, it does not grow when other processes compete for the 2 cores.
fn process_cpu() -> Duration {
    // USER_HZ, the unit of the /proc interface, is 100 on Linux whatever the kernel's HZ.
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat is readable");
    // Fields after the command name (in parentheses, which may hold spaces): state is the
    // first, utime the 12th and stime the 13th.
    let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

impl Latency {
    /// The nearest-rank percentile `p` (0 < p ≤ 1), in milliseconds.
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.samples.clone();
        sorted.sort();
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1].as_secs_f64() * 1e3
    }

    fn row(&self, label: &str) -> Row {
        Row::new(
            label,
            format!(
                "p50 {:.1} · p90 {:.1} · p99 {:.1} · max {:.1} ms",
                self.percentile(0.50),
                self.percentile(0.90),
                self.percentile(0.99),
                self.percentile(1.0)
            ),
            format!(
                "{} rows (agencies or procedures) in the response; {} calls after {WARM_UP} warm-up; CPU of this process {:.1} ms per call",
                thousands(self.agencies as u64),
                self.samples.len(),
                self.cpu.as_secs_f64() * 1e3 / self.samples.len() as f64
            ),
        )
    }
}

/// What a measured call goes through.
#[derive(Clone)]
enum Target<'a> {
    /// aggregate's gRPC server, over loopback.
    Grpc(AggregateServiceClient<Channel>),
    /// aggregate's API in this process.
    InProcess(&'a govpulse_aggregate::AggregateApi),
    /// ranking's `GetRanking` of the same agencies by the same metric, over loopback.
    Ranking(RankingServiceClient<Channel>),
}

/// Times `GetBlockMetrics` through `target` ([`measure_with`]).
async fn measure(target: Target<'_>, request: GetBlockMetricsRequest) -> Latency {
    measure_with(request, |request| {
        let mut target = target.clone();
        async move { call(&mut target, &request).await }
    })
    .await
}

/// Calls `call` `WARM_UP` times, then up to `SAMPLES` times (fewer once the case has taken
/// `CASE_BUDGET`), timing each call as the caller sees it; `call` answers how many rows
/// (agencies, procedures) the response held.
async fn measure_with<R: Clone, F: std::future::Future<Output = usize>>(
    request: R,
    mut call: impl FnMut(R) -> F,
) -> Latency {
    let mut agencies = 0;
    for _ in 0..WARM_UP {
        agencies = call(request.clone()).await;
    }
    let started = Instant::now();
    let cpu_before = process_cpu();
    let mut samples = Vec::with_capacity(SAMPLES);
    while samples.len() < SAMPLES
        && (samples.len() < MIN_SAMPLES || started.elapsed() < CASE_BUDGET)
    {
        let at = Instant::now();
        agencies = call(request.clone()).await;
        samples.push(at.elapsed());
    }
    Latency {
        samples,
        cpu: process_cpu().saturating_sub(cpu_before),
        agencies,
    }
}

async fn call(target: &mut Target<'_>, request: &GetBlockMetricsRequest) -> usize {
    let response = match target {
        Target::Grpc(client) => client
            .get_block_metrics(request.clone())
            .await
            .expect("GetBlockMetrics succeeds")
            .into_inner(),
        Target::InProcess(api) => api
            .block_metrics(request.clone())
            .await
            .expect("block_metrics succeeds"),
        Target::Ranking(client) => {
            let (block, parent_id) = match &request.scope {
                Some(Scope::Block(block)) => (*block, String::new()),
                Some(Scope::ParentId(parent)) => (0, parent.clone()),
                _ => panic!("the benchmark ranks a block or an agency's children"),
            };
            let query = RankingQuery {
                metric: request.metric.clone(),
                block,
                parent_id,
                period: request.period.clone(),
                ..RankingQuery::default()
            };
            return client
                .get_ranking(GetRankingRequest { query: Some(query) })
                .await
                .expect("GetRanking succeeds")
                .into_inner()
                .rows
                .len();
        }
    };
    response.agencies.len()
}

/// `DRILL_DOSSIERS` dossiers of each of `DRILL_AGENCY`'s `DRILL_PROCEDURES` procedures, then
/// `GetProcedureMetrics` of that agency for this month and the year to date, by the online
/// dossier rate and the on-time rate (which also reads the due-day counters up to the
/// period's end), over gRPC and in process.
async fn procedure_latency(
    deployment: &Deployment,
    server_side: &govpulse_aggregate::AggregateApi,
    window: &DayWindow,
) -> Vec<Row> {
    let mut events = Vec::with_capacity(DRILL_PROCEDURES * DRILL_DOSSIERS * 2);
    for (p, procedure) in drill_procedure_ids().enumerate() {
        for d in 0..DRILL_DOSSIERS {
            let index = p * DRILL_DOSSIERS + d;
            let day = i64::try_from(index * 37 % usize::try_from(window.days).unwrap_or(1))
                .expect("a day index is small");
            let at = window.at(day);
            let id = format!("drill:{procedure}:{d}");
            let mut received = reception(
                id.clone(),
                DRILL_AGENCY,
                procedure.clone(),
                at,
                !index.is_multiple_of(3),
            );
            if let Some(Kind::Received(r)) = &mut received.kind {
                r.due_at = ts(at + time::Duration::days(10));
            }
            let dossier = received.dossier_id.clone();
            events.push(received);
            if index % 3 != 2 {
                let on_time = !index.is_multiple_of(4);
                let resolved_at =
                    (at + time::Duration::days(if on_time { 3 } else { 12 })).min(window.now);
                events.push(DossierEvent {
                    event_id: format!("{id}:res"),
                    agency_id: DRILL_AGENCY.to_owned(),
                    dossier_id: dossier,
                    procedure_id: procedure.clone(),
                    occurred_at: ts(resolved_at),
                    kind: Some(Kind::Resolved(DossierResolved {
                        timeliness: Some(dossier_resolved::Timeliness::DueAt(
                            ts(at + time::Duration::days(10)).unwrap_or_default(),
                        )),
                        result_electronic: false,
                    })),
                    corrects: String::new(),
                });
            }
        }
    }
    let sent = send_all(deployment, events).await;
    let mut rows = vec![Row::new(
        "drill-down data",
        format!("{} events", thousands(sent.sent as u64)),
        format!(
            "{DRILL_PROCEDURES} procedures of {DRILL_AGENCY} × {DRILL_DOSSIERS} dossiers over the window, due 10 days on, 2 in 3 resolved"
        ),
    )];
    let month = format!(
        "{}-{:02}",
        window.today().year(),
        u8::from(window.today().month())
    );
    for (metric, period) in [
        ("online-dossier-rate", month.as_str()),
        ("online-dossier-rate", "ytd"),
        ("on-time-rate", month.as_str()),
        ("on-time-rate", "ytd"),
    ] {
        let request = GetProcedureMetricsRequest {
            agency_id: DRILL_AGENCY.to_owned(),
            period: period.to_owned(),
            metric: metric.to_owned(),
            top: 5,
        };
        let latency = measure_with(request.clone(), |request| {
            let mut client = deployment.aggregate();
            async move {
                let response = client
                    .get_procedure_metrics(request)
                    .await
                    .expect("GetProcedureMetrics succeeds")
                    .into_inner();
                response.procedures.len() + response.no_data.len()
            }
        })
        .await;
        rows.push(latency.row(&format!(
            "GetProcedureMetrics {DRILL_AGENCY}, {metric}, {period}"
        )));
        let latency = measure_with(request, |request| async move {
            let response = server_side
                .procedure_metrics(request)
                .await
                .expect("procedure_metrics succeeds");
            response.procedures.len() + response.no_data.len()
        })
        .await;
        rows.push(latency.row(&format!(
            "  server side: the same query answered in process, no gRPC ({metric}, {period})"
        )));
    }
    rows
}

/// Sends one reception per day of the window for each extra unit and measures the memory
/// this adds, extrapolated to a year of 366 daily buckets.
async fn daily_bucket_cost(
    deployment: &Deployment,
    redis: &RedisServer,
    window: &DayWindow,
) -> Row {
    let events: Vec<DossierEvent> = extra_unit_ids()
        .enumerate()
        .flat_map(|(i, unit)| {
            (0..window.days).map(move |day| {
                let day_index = usize::try_from(day).expect("a day index is small");
                reception(
                    format!("bench:{unit}:d{day}"),
                    &unit,
                    format!(
                        "{EXTRA_PARENT}.p{:02}",
                        (i + day_index) % PROCEDURES_PER_PROVINCE + 1
                    ),
                    window.at(day),
                    (i + day_index) % 3 != 0,
                )
            })
        })
        .collect();
    let before = redis_memory(redis.port());
    let sent = send_all(deployment, events).await;
    let after = redis_memory(redis.port());
    let delta = after.used.saturating_sub(before.used) as f64;
    let per_unit_day = delta / EXTRA_UNITS as f64 / window.days as f64;
    Row::new(
        "Redis memory per agency per year of daily buckets",
        format!("{} bytes", thousands((per_unit_day * 366.0).round() as u64)),
        format!(
            "{EXTRA_UNITS} extra units of {EXTRA_PARENT}, one reception per day for {} days ({} events, 2 in 3 online, rotating procedures): used_memory delta {} ({:.1} keys per unit) / {EXTRA_UNITS} / {} days × 366; includes the event-id sets (kept for the horizon) and the province's new buckets shared by the {EXTRA_UNITS}",
            window.days,
            thousands(sent.sent as u64),
            mib(after.used.saturating_sub(before.used)),
            after.keys.saturating_sub(before.keys) as f64 / EXTRA_UNITS as f64,
            window.days
        ),
    )
}

fn print_report(rows: &[Row], window: &DayWindow, elapsed: Duration) {
    let build = report::build();
    report::print(
        &format!(
            "Measured: client-observed latency over loopback gRPC (aggregate reading a local redis-server), {build} build, {} CPUs; events on {} Vietnam days from {} to today; p99 of fewer than 100 calls is their max.",
            std::thread::available_parallelism().map_or(0, usize::from),
            window.days,
            window.first
        ),
        rows,
        elapsed,
    );
}
