//! Measures live rankings: the latency from an accepted event to its effect in a
//! WatchRanking stream under a steady load of events, how many concurrent subscribers one
//! ranking replica serves with every update delivered within a second (and its memory), and
//! `GetRanking` latency. Run with `cargo bench -p govpulse-e2e --bench ranking`.
//!
//! ingest and aggregate run in this process against a real `redis-server`; the ranking
//! replica runs as a child process (this same binary, re-executed) so that its memory is its
//! own, apart from the thousands of subscribers this process plays.

#![allow(clippy::print_stdout, reason = "a benchmark reports on standard output")]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use govpulse_core::period::VIETNAM;
use govpulse_e2e::{
    Options, RedisServer, Service, provinces_by_online_rate, received,
    report::{self, Row, mib, thousands},
    resolved,
};
use govpulse_proto::{
    catalog::Block,
    event::DossierEvent,
    ingest::{SubmitEventsRequest, ingest_service_client::IngestServiceClient},
    ranking::{
        GetRankingRequest, RankingQuery, WatchRankingRequest, ranking_query::Selection,
        ranking_service_client::RankingServiceClient, watch_ranking_response::Event,
    },
};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

/// Set in the child process: the aggregate URL its ranking replica reads from.
const CHILD_ENV: &str = "GOVPULSE_BENCH_RANKING_OF";
/// The steady load.
const EVENTS_PER_SECOND: u64 = 10_000;
const LOAD_SENDERS: u64 = 4;
const LOAD_TICK: Duration = Duration::from_millis(50);
const LOAD_DURATION: Duration = Duration::from_secs(20);
/// A probe event every this often during the load.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// The province whose resolutions are the probes: only probes resolve dossiers, so only
/// they change the on-time ranking.
const PROBE_AGENCY: &str = "ha-noi";
/// Subscriber counts to reach, in order.
const LEVELS: [usize; 5] = [1_000, 2_500, 5_000, 7_500, 10_000];
/// Subscribers share this many HTTP/2 connections.
const CONNECTIONS: usize = 100;
const UPDATES_PER_LEVEL: usize = 3;
/// With the most subscribers, the steady load runs this long, with a probe this often.
const LOADED_SUBSCRIBERS_DURATION: Duration = Duration::from_secs(15);
const LOADED_PROBE_EVERY: Duration = Duration::from_millis(500);
const CALLS: usize = 50;
const WARM_UP: usize = 5;

#[tokio::main]
async fn main() {
    match std::env::var(CHILD_ENV) {
        Ok(aggregate_url) => serve_ranking(aggregate_url).await,
        Err(_) => run().await,
    }
}

/// The child: one ranking replica with the default configuration, its address on the first
/// line of standard output, serving until its standard input closes (the parent exited).
async fn serve_ranking(aggregate_url: String) {
    let config =
        govpulse_ranking::Config::new(SocketAddr::from(([127, 0, 0, 1], 0)), aggregate_url)
            .development();
    let server = govpulse_ranking::Server::build(config)
        .await
        .expect("ranking starts");
    println!("{}", server.host().local_addr());
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut sink = tokio::io::sink();
        let _ = tokio::io::copy(&mut stdin, &mut sink).await;
    };
    server
        .run_until(stdin_closed)
        .await
        .expect("ranking serves");
}

/// The ranking replica child process, killed on drop.
struct RankingProcess {
    child: Child,
    addr: SocketAddr,
}

impl RankingProcess {
    fn start(aggregate_url: &str) -> RankingProcess {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .env(CHILD_ENV, aggregate_url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the ranking child starts");
        let stdout = child.stdout.take().expect("stdout");
        let line = BufReader::new(stdout)
            .lines()
            .next()
            .expect("an address line")
            .expect("utf-8");
        let addr = line.trim().parse().expect("an address");
        RankingProcess { child, addr }
    }

    /// Resident memory, from /proc.
    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status is readable");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("valid url")
            .connect_lazy()
    }
}

impl Drop for RankingProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn run() {
    let started = Instant::now();
    let redis = RedisServer::start().expect("redis-server starts (is it installed?)");
    let options = Options {
        // Events of 2024 for the 63-province ranking.
        horizon_days: Some(1_200),
        ..Options::default()
    };
    let aggregate = Service::aggregate(&redis, "bench", &options).await;
    let ingest = Service::ingest(&aggregate, &options).await;
    let ranking = RankingProcess::start(&aggregate.url());
    let idle_rss = ranking.rss_bytes();
    let mut rows = vec![Row::new(
        "ranking replica memory, idle",
        mib(idle_rss),
        "VmRSS of the ranking process after start".to_owned(),
    )];

    let provinces = province_ids_now(&ranking).await;
    rows.extend(update_latency_under_load(&ingest, &ranking, &provinces).await);
    rows.extend(subscribers(&ingest, &ranking, &provinces, idle_rss).await);
    rows.extend(get_ranking_latency(&ingest, &ranking).await);

    print_report(&rows, started.elapsed());
    drop(ranking);
    ingest.stop().await;
    aggregate.stop().await;
}

fn now_vietnam_day() -> String {
    OffsetDateTime::now_utc()
        .to_offset(VIETNAM)
        .date()
        .to_string()
}

/// A few seconds ago, never before today's Vietnam midnight.
fn recently() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    let midnight = now
        .to_offset(VIETNAM)
        .date()
        .midnight()
        .assume_offset(VIETNAM);
    (now - time::Duration::seconds(5)).max(midnight)
}

/// The on-time ranking of the provinces today: only probe events change it.
fn probe_query() -> RankingQuery {
    RankingQuery {
        metric: "on-time-rate".into(),
        index: String::new(),
        block: Block::Province.into(),
        period: now_vietnam_day(),
        selection: Some(Selection::Top(10)),
        parent_id: String::new(),
        ..Default::default()
    }
}

async fn province_ids_now(ranking: &RankingProcess) -> Vec<String> {
    let response = RankingServiceClient::new(ranking.channel())
        .get_ranking(GetRankingRequest {
            query: Some(provinces_by_online_rate(now_vietnam_day())),
        })
        .await
        .expect("ranking answers")
        .into_inner();
    response.rows.into_iter().map(|r| r.agency_id).collect()
}

async fn submit(client: &mut IngestServiceClient<Channel>, events: Vec<DossierEvent>) {
    let reply = client
        .submit_events(SubmitEventsRequest { events })
        .await
        .expect("ingest accepts the batch")
        .into_inner();
    assert_eq!(reply.rejected, 0, "{:?}", reply.outcomes.first());
}

/// Sends probe number `n` (a resolution of the probe agency, on time): afterwards the probe
/// agency's on-time rate is `n / n`. Returns when ingest acknowledged it.
async fn probe(client: &mut IngestServiceClient<Channel>, n: u64) -> Instant {
    let event = resolved(&format!("probe-{n}"), PROBE_AGENCY, recently(), true);
    submit(client, vec![event]).await;
    Instant::now()
}

/// Sends probe `n` and waits, up to 5 s, until `subscribers` subscribers have seen it on
/// `seen`: when ingest acknowledged it, how many saw it, and how long after the
/// acknowledgement the last of them did.
async fn probe_reach(
    client: &mut IngestServiceClient<Channel>,
    n: u64,
    subscribers: usize,
    seen: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
) -> (Instant, usize, Duration) {
    let acked = probe(client, n).await;
    let deadline = acked + Duration::from_secs(5);
    let mut reached = 0;
    let mut last = acked;
    while reached < subscribers {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, seen.recv()).await {
            Ok(Some((count, at))) if count == n => {
                reached += 1;
                last = last.max(at);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    (acked, reached, last.saturating_duration_since(acked))
}

/// The probe count a changes message shows, if it shows the probe agency.
fn probe_count(message: &govpulse_proto::ranking::WatchRankingResponse) -> Option<u64> {
    let Some(Event::Changes(changes)) = &message.event else {
        return None;
    };
    changes
        .changes
        .iter()
        .filter_map(|c| c.row.as_ref())
        .find(|r| r.agency_id == PROBE_AGENCY)
        .and_then(|r| r.rate.as_ref())
        .map(|r| r.denominator)
}

/// Subscribes on `channel`; says on `ready` when its snapshot is complete, and sends every
/// probe count it sees to `seen` with the time it came.
fn subscribe(
    channel: Channel,
    seen: mpsc::UnboundedSender<(u64, Instant)>,
    ready: mpsc::UnboundedSender<()>,
) {
    tokio::spawn(async move {
        let mut client = RankingServiceClient::new(channel);
        let mut stream = client
            .watch_ranking(WatchRankingRequest {
                query: Some(probe_query()),
                resume_revision: 0,
            })
            .await
            .expect("watch")
            .into_inner();
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message.event, Some(Event::SnapshotComplete(_))) {
                let _ = ready.send(());
            }
            if let Some(n) = probe_count(&message)
                && seen.send((n, Instant::now())).is_err()
            {
                return;
            }
        }
    });
}

/// The steady load: `LOAD_SENDERS` tasks each sending a batch of receptions every
/// `LOAD_TICK` through ingest, spread over the provinces, until `stop`.
struct Load {
    senders: Vec<tokio::task::JoinHandle<()>>,
    sent: Arc<AtomicU64>,
    started: Instant,
}

impl Load {
    fn per_tick() -> u64 {
        EVENTS_PER_SECOND * LOAD_TICK.as_millis() as u64 / 1_000 / LOAD_SENDERS
    }

    fn start(ingest: &Service, provinces: &[String], tag: &str, stop: Instant) -> Load {
        let sent = Arc::new(AtomicU64::new(0));
        let per_tick = Load::per_tick();
        let senders = (0..LOAD_SENDERS)
            .map(|lane| {
                let mut client = IngestServiceClient::new(ingest.channel());
                let provinces = provinces.to_vec();
                let sent = sent.clone();
                let tag = tag.to_owned();
                tokio::spawn(async move {
                    let mut ticks = tokio::time::interval(LOAD_TICK);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    let mut seq = 0u64;
                    while Instant::now() < stop {
                        ticks.tick().await;
                        let at = recently();
                        let events: Vec<DossierEvent> = (0..per_tick)
                            .map(|i| {
                                seq += 1;
                                let agency =
                                    &provinces[(seq as usize + i as usize) % provinces.len()];
                                received(
                                    &format!("load-{tag}-{lane}-{seq}"),
                                    agency,
                                    at,
                                    !seq.is_multiple_of(3),
                                )
                            })
                            .collect();
                        submit(&mut client, events).await;
                        sent.fetch_add(per_tick, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load {
            senders,
            sent,
            started: Instant::now(),
        }
    }

    /// Waits for the senders; the rate achieved and how long it ran.
    async fn finish(self) -> (f64, Duration) {
        for sender in self.senders {
            sender.await.expect("a load sender does not panic");
        }
        let elapsed = self.started.elapsed();
        (
            self.sent.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
            elapsed,
        )
    }
}

/// (a) A steady load through ingest, and probes whose effect a subscriber times.
async fn update_latency_under_load(
    ingest: &Service,
    ranking: &RankingProcess,
    provinces: &[String],
) -> Vec<Row> {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    subscribe(ranking.channel(), seen_tx, ready_tx);
    // A subscriber of the ranking the load changes, so it is recomputed and sent too.
    let loaded = provinces_by_online_rate(now_vietnam_day());
    let mut loaded_stream = RankingServiceClient::new(ranking.channel())
        .watch_ranking(WatchRankingRequest {
            query: Some(loaded),
            resume_revision: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let loaded_messages = Arc::new(AtomicU64::new(0));
    let counter = loaded_messages.clone();
    tokio::spawn(async move {
        while let Some(Ok(_)) = loaded_stream.next().await {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready.recv())
        .await
        .expect("the probe subscriber gets its snapshot within 10 s");

    let stop = Instant::now() + LOAD_DURATION;
    let load = Load::start(ingest, provinces, "a", stop);
    let mut probes = IngestServiceClient::new(ingest.channel());
    let mut latencies = Vec::new();
    let mut n = 0;
    while Instant::now() + PROBE_EVERY < stop {
        n += 1;
        let acked = probe(&mut probes, n).await;
        let deadline = acked + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, seen.recv()).await {
                Ok(Some((count, at))) if count >= n => {
                    latencies.push(at.saturating_duration_since(acked));
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => panic!("probe {n} not seen within 5 s"),
            }
        }
        tokio::time::sleep_until((acked + PROBE_EVERY).into()).await;
    }
    let (rate, elapsed) = load.finish().await;
    let per_tick = Load::per_tick();
    let latency = Latency(latencies);
    vec![
        Row::new(
            "steady load through ingest",
            format!("{} events/s", thousands(rate.round() as u64)),
            format!(
                "target {} events/s for {:.0} s: {LOAD_SENDERS} senders, a batch of {per_tick} every {} ms each, receptions spread over the provinces",
                thousands(EVENTS_PER_SECOND),
                elapsed.as_secs_f64(),
                LOAD_TICK.as_millis()
            ),
        ),
        Row::new(
            "update latency under that load: ingest ack of an event → its change in a WatchRanking stream",
            latency.summary(),
            format!(
                "{} probes (one on-time resolution of {PROBE_AGENCY} every {} ms), default --debounce-ms 100; meanwhile a subscriber of the loaded ranking got {} messages",
                latency.0.len(),
                PROBE_EVERY.as_millis(),
                loaded_messages.load(Ordering::Relaxed)
            ),
        ),
    ]
}

/// (b) Subscribers added level by level; at each level, updates timed to every subscriber.
async fn subscribers(
    ingest: &Service,
    ranking: &RankingProcess,
    provinces: &[String],
    idle_rss: u64,
) -> Vec<Row> {
    let channels: Vec<Channel> = (0..CONNECTIONS)
        .map(|_| {
            Endpoint::from_shared(format!("http://{}", ranking.addr))
                .expect("valid url")
                .connect_lazy()
        })
        .collect();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let mut client = IngestServiceClient::new(ingest.channel());
    // Probes continue from where the load phase left them: count them from the ranking.
    let mut n = current_probe_count(ranking).await;
    let mut subscribed = 0;
    let mut complete = 0;
    let mut rows = Vec::new();
    let mut max_ok = 0;
    for level in LEVELS {
        let connecting = Instant::now();
        while subscribed < level {
            subscribe(
                channels[subscribed % CONNECTIONS].clone(),
                seen_tx.clone(),
                ready_tx.clone(),
            );
            subscribed += 1;
        }
        while complete < level {
            let left = Duration::from_secs(120).saturating_sub(connecting.elapsed());
            match tokio::time::timeout(left, ready.recv()).await {
                Ok(Some(())) => complete += 1,
                Ok(None) | Err(_) => {
                    panic!("only {complete} of {level} subscribers got their snapshot in 120 s")
                }
            }
        }
        let connected_in = connecting.elapsed();
        // Drop what earlier levels' subscribers reported.
        while seen.try_recv().is_ok() {}
        let mut worst = Duration::ZERO;
        let mut all_delivered = true;
        for _ in 0..UPDATES_PER_LEVEL {
            n += 1;
            let (_, reached, took) = probe_reach(&mut client, n, level, &mut seen).await;
            worst = worst.max(took);
            if reached < level || took >= Duration::from_secs(1) {
                all_delivered = false;
            }
        }
        let rss = ranking.rss_bytes();
        rows.push(Row::new(
            &format!("{} subscribers on one ranking replica", thousands(level as u64)),
            format!(
                "slowest of {UPDATES_PER_LEVEL} updates reached all in {:.0} ms; RSS {}",
                worst.as_secs_f64() * 1e3,
                mib(rss)
            ),
            format!(
                "{}; all subscribed (snapshot complete) in {:.1} s over {CONNECTIONS} HTTP/2 connections; RSS − idle = {} ({} per subscriber)",
                if all_delivered {
                    "every update delivered to every subscriber within 1 s"
                } else {
                    "NOT every update reached every subscriber within 1 s"
                },
                connected_in.as_secs_f64(),
                mib(rss.saturating_sub(idle_rss)),
                thousands(rss.saturating_sub(idle_rss) / level as u64) + " bytes"
            ),
        ));
        if all_delivered {
            max_ok = level;
        } else {
            break;
        }
    }
    if max_ok == subscribed {
        // The same subscribers while the steady load runs.
        let stop = Instant::now() + LOADED_SUBSCRIBERS_DURATION;
        let load = Load::start(ingest, provinces, "b", stop);
        let mut to_all = Vec::new();
        let mut missed = 0;
        while Instant::now() + LOADED_PROBE_EVERY < stop {
            n += 1;
            let (acked, reached, took) = probe_reach(&mut client, n, subscribed, &mut seen).await;
            if reached < subscribed || took >= Duration::from_secs(1) {
                missed += 1;
            }
            to_all.push(took);
            tokio::time::sleep_until((acked + LOADED_PROBE_EVERY).into()).await;
        }
        let (rate, _) = load.finish().await;
        let probes = to_all.len();
        rows.push(Row::new(
            &format!(
                "{} subscribers while {} events/s arrive: ack → change reached every subscriber",
                thousands(subscribed as u64),
                thousands(rate.round() as u64)
            ),
            Latency(to_all).summary(),
            format!(
                "{probes} probes, {missed} of them not delivered to every subscriber within 1 s; RSS {}",
                mib(ranking.rss_bytes())
            ),
        ));
    }
    rows.push(Row::new(
        "most concurrent subscribers with every update within 1 s",
        thousands(max_ok as u64),
        format!(
            "levels tried: {}; one query shared by all (computed once per change); no event load while ramping (the row above: the largest level under the steady load)",
            LEVELS.map(|l| thousands(l as u64)).join(", ")
        ),
    ));
    rows
}

async fn current_probe_count(ranking: &RankingProcess) -> u64 {
    let response = RankingServiceClient::new(ranking.channel())
        .get_ranking(GetRankingRequest {
            query: Some(probe_query()),
        })
        .await
        .expect("ranking answers")
        .into_inner();
    response
        .rows
        .iter()
        .find(|r| r.agency_id == PROBE_AGENCY)
        .and_then(|r| r.rate.as_ref())
        .map_or(0, |r| r.denominator)
}

/// (c) GetRanking of the 63 provinces (a 2024 period) and of today's provinces.
async fn get_ranking_latency(ingest: &Service, ranking: &RankingProcess) -> Vec<Row> {
    let mut client = IngestServiceClient::new(ingest.channel());
    let day_2024 = time::macros::datetime!(2024-12-16 10:00 +7);
    let provinces_2024: Vec<String> = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/catalog/provinces.csv"
    ))
    .lines()
    .skip(1)
    .filter_map(|line| line.split(',').nth(1))
    .map(str::to_owned)
    .collect();
    let events: Vec<DossierEvent> = provinces_2024
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            (0..10).map(move |k| received(&format!("y2024-{p}-{k}"), p, day_2024, k <= i % 10))
        })
        .collect();
    submit(&mut client, events).await;
    let mut rows = Vec::new();
    let mut ranking_client = RankingServiceClient::new(ranking.channel());
    for (label, period) in [
        ("63 provinces, period 2024", "2024".to_owned()),
        (
            "the provinces today (34 since the 2025 merger), today",
            now_vietnam_day(),
        ),
    ] {
        let request = GetRankingRequest {
            query: Some(RankingQuery {
                metric: "online-dossier-rate".into(),
                index: String::new(),
                block: Block::Province.into(),
                period,
                selection: None,
                parent_id: String::new(),
                ..Default::default()
            }),
        };
        let mut rows_returned = 0;
        for _ in 0..WARM_UP {
            rows_returned = ranking_client
                .get_ranking(request.clone())
                .await
                .expect("GetRanking")
                .into_inner()
                .rows
                .len();
        }
        let mut samples = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let at = Instant::now();
            ranking_client
                .get_ranking(request.clone())
                .await
                .expect("GetRanking");
            samples.push(at.elapsed());
        }
        rows.push(Row::new(
            &format!("GetRanking {label}"),
            Latency(samples).summary(),
            format!("{rows_returned} rows; {CALLS} calls after {WARM_UP} warm-up; each reads two block snapshots from aggregate (the period and the previous one)"),
        ));
    }
    rows.push(Row::new(
        "GetRanking of 10,000 units",
        "see the metrics benchmark".to_owned(),
        "`cargo bench -p govpulse-e2e --bench metrics` holds the 10,000-unit data set and times GetRanking with parent_id there".to_owned(),
    ));
    rows
}

/// Latency samples.
#[derive(Debug)]
struct Latency(Vec<Duration>);

impl Latency {
    /// The nearest-rank percentile `p` (0 < p ≤ 1), in milliseconds.
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort();
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1].as_secs_f64() * 1e3
    }

    fn summary(&self) -> String {
        format!(
            "p50 {:.1} · p99 {:.1} · max {:.1} ms",
            self.percentile(0.50),
            self.percentile(0.99),
            self.percentile(1.0)
        )
    }
}

fn print_report(rows: &[Row], elapsed: Duration) {
    let build = report::build();
    report::print(
        &format!(
            "Measured: loopback gRPC, {build} build, {} CPUs shared by redis-server, ingest and aggregate (this process), the ranking replica (a child process) and every client (this process); p99 of fewer than 100 samples is their max.",
            std::thread::available_parallelism().map_or(0, usize::from)
        ),
        rows,
        elapsed,
    );
}
