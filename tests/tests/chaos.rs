//! Proof under faults: while load generators send with retries (SubmitEvents and
//! StreamEvents), aggregate and ingest are killed with SIGKILL and restarted, Redis crashes
//! (SIGKILL) and restarts from its append-only file (`appendfsync always`), and the
//! connection from ingest to aggregate is cut. Once an agency has events acknowledged, a
//! fifth of its events are corrections of them (a quarter of those retractions; in the short
//! form about 3.5% of all events, 450 corrections), so batches with corrections are retried
//! and resent through the faults too. Afterwards every agency's counters, read through
//! aggregate, equal what the distinct acknowledged events add up to as corrected, exactly:
//! no acknowledged event or correction lost, none counted twice.
//!
//! The services run as processes (the workspace's binaries, `cargo build --bins`). In CI
//! the short form runs: one round of the four faults at a modest rate. The long form:
//!
//! ```text
//! GOVPULSE_CHAOS_ROUNDS=10 GOVPULSE_CHAOS_RATE=20000 cargo test --release -p govpulse-e2e --test chaos
//! ```
//!
//! `GOVPULSE_CHAOS_REDIS=volatile` runs the same test against a Redis that keeps nothing on
//! disk, the setting that loses acknowledged events in a crash: the test must then fail.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use govpulse::loadgen::{self, LoadConfig, Mode, Progress, Report};
use govpulse_e2e::{
    RedisServer,
    processes::{Cutter, ServiceProcess, free_port},
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Transactions (`EXEC`, how aggregate writes a batch to a single Redis) the server at `url`
/// ran since it started.
async fn transactions(url: &str) -> u64 {
    let client = redis::Client::open(url).expect("a Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("the restarted Redis answers");
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .expect("INFO commandstats");
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_exec:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn channel(addr: std::net::SocketAddr, timeout: Option<Duration>) -> Channel {
    govpulse_runtime::client::lazy_channel(&format!("http://{addr}"), timeout).expect("a valid url")
}

/// Polls `done` until it holds; panics with `what` after `limit`. There is no event to wait
/// on from outside the processes: the load's own counters are the signal.
async fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The load generators' counters, summed.
struct Load {
    progress: Vec<Arc<Progress>>,
}

impl Load {
    /// Each generator's failed calls so far.
    fn failed_calls(&self) -> Vec<u64> {
        self.progress
            .iter()
            .map(|p| p.failed_calls.load(Ordering::Relaxed))
            .collect()
    }

    /// Waits until every generator has had a call fail since `failed_before` (its counts
    /// then): each felt the fault, which lasts until this returns, so each keeps sending into
    /// it. A fault not felt by all within 15 s is recorded, and reported after the
    /// reconciliation (a service that hides a fault usually loses events, which the
    /// reconciliation names).
    async fn feels(&self, fault: &str, failed_before: &[u64], unfelt: &mut Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let felt_by_all = || {
            self.failed_calls()
                .iter()
                .zip(failed_before)
                .all(|(now, before)| now > before)
        };
        while !felt_by_all() {
            if Instant::now() >= deadline {
                unfelt.push(format!(
                    "{fault} (failed calls per generator: {failed_before:?} then {:?})",
                    self.failed_calls()
                ));
                return;
            }
            // The load's counters are the only signal (see wait_until).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every generator has had batches acknowledged again.
    async fn recovers(&self, fault: &str) {
        let before: Vec<u64> = self
            .progress
            .iter()
            .map(|p| p.acknowledged_batches.load(Ordering::Relaxed))
            .collect();
        wait_until(
            &format!("the load recovers from: {fault}"),
            Duration::from_secs(60),
            || {
                self.progress
                    .iter()
                    .zip(&before)
                    .all(|(p, before)| p.acknowledged_batches.load(Ordering::Relaxed) > before + 2)
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_is_counted_exactly_once_through_crashes_restarts_and_cuts() {
    let rounds = setting("GOVPULSE_CHAOS_ROUNDS", 1);
    let rate = setting("GOVPULSE_CHAOS_RATE", 3000) as f64;
    let redis_options: &[&str] = match std::env::var("GOVPULSE_CHAOS_REDIS").as_deref() {
        Ok("volatile") => &["--save", "", "--appendonly", "no"],
        _ => &[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ],
    };
    let mut redis = RedisServer::start_with(redis_options).expect("redis-server starts");
    let mut aggregate = ServiceProcess::start(
        "govpulse-aggregate",
        &[
            ("GOVPULSE_LISTEN", format!("127.0.0.1:{}", free_port())),
            ("GOVPULSE_STORE", redis.url()),
            ("GOVPULSE_KEY_PREFIX", "chaos".to_owned()),
            ("GOVPULSE_PLAINTEXT", "true".to_owned()),
        ],
    );
    let cutter = Cutter::start(aggregate.addr()).await;
    let mut ingest = ServiceProcess::start(
        "govpulse-ingest",
        &[
            ("GOVPULSE_LISTEN", format!("127.0.0.1:{}", free_port())),
            (
                "GOVPULSE_AGGREGATE_URL",
                format!("http://{}", cutter.addr()),
            ),
            ("GOVPULSE_AGGREGATE_TIMEOUT_MS", "3000".to_owned()),
            // The development settings: plaintext, anonymous, no per-agency limits.
            ("GOVPULSE_PLAINTEXT", "true".to_owned()),
            ("GOVPULSE_ALLOW_ANONYMOUS", "true".to_owned()),
            ("GOVPULSE_RATE_PER_AGENCY", "0".to_owned()),
            ("GOVPULSE_MAX_STREAMS_PER_AGENCY", "0".to_owned()),
        ],
    );

    let catalog = Arc::new(govpulse_runtime::catalog_files::built_in().expect("the catalog"));
    let stop = CancellationToken::new();
    let mut load = Load {
        progress: Vec::new(),
    };
    let mut runs = Vec::new();
    for (mode, timeout, seed) in [
        (Mode::Batch, Some(Duration::from_secs(5)), 11),
        (Mode::Stream, None, 12),
    ] {
        let progress = Arc::new(Progress::default());
        load.progress.push(progress.clone());
        let config = LoadConfig {
            mode,
            rate: Some(rate / 2.0),
            // Sending ends when the faults are over (stop), at the latest after this.
            duration: Duration::from_secs(600),
            batch_size: 100,
            connections: 3,
            in_flight: 3,
            resend_share: 0.2,
            drain: Duration::from_secs(60),
            seed,
            corrections: 0.2,
            ..LoadConfig::default()
        };
        runs.push(tokio::spawn(loadgen::run(
            channel(ingest.addr(), timeout),
            catalog.clone(),
            config,
            progress,
            stop.clone(),
        )));
    }
    // Each sender takes its agencies in turn, one batch each: once every generator has had
    // this many batches acknowledged, every province and ministry has reported.
    wait_until("every agency has reported", Duration::from_secs(60), || {
        load.progress
            .iter()
            .all(|p| p.acknowledged_batches.load(Ordering::Relaxed) >= 60)
    })
    .await;

    let mut unfelt = Vec::new();
    for _ in 0..rounds {
        for (process, fault) in [
            (&mut aggregate, "aggregate killed (SIGKILL) and restarted"),
            (&mut ingest, "ingest killed (SIGKILL) and restarted"),
        ] {
            let failed = load.failed_calls();
            process.kill();
            load.feels(fault, &failed, &mut unfelt).await;
            process.restart();
            load.recovers(fault).await;
        }

        // One step. Aggregate may hide this one: an attempt that finds its connection dead
        // before writing anything reads again on a new one. What must hold is that the
        // restarted server (a new process, its counters from zero) counts the load.
        let fault = "redis crashed (SIGKILL) and restarted from its append-only file";
        redis
            .crash_and_restart()
            .expect("redis-server restarts on its port");
        load.recovers(fault).await;
        if transactions(&redis.url()).await == 0 {
            unfelt.push(format!("{fault}: no batch written to the restarted server"));
        }

        let fault = "ingest to aggregate connections cut";
        let failed = load.failed_calls();
        cutter.cut();
        load.feels(fault, &failed, &mut unfelt).await;
        cutter.restore();
        load.recovers(fault).await;
    }
    stop.cancel();

    let mut reports: Vec<Report> = Vec::new();
    for run in runs {
        reports.push(run.await.expect("the load generator finishes"));
    }
    let mut expected = loadgen::Expected::default();
    for report in &reports {
        expected.merge(report.expected.clone());
    }
    let distinct = expected.events();
    assert!(distinct > 1000, "enough load: {distinct} events");
    let result = loadgen::reconcile(channel(aggregate.addr(), None), &expected)
        .await
        .expect("aggregate answers");
    assert_eq!(
        result.agencies,
        34 + 21,
        "every province and ministry reported"
    );
    assert!(
        result.mismatches.is_empty(),
        "{} distinct acknowledged events, {} corrections; {} of {} counters differ, the first: {:#?}",
        distinct,
        reports
            .iter()
            .map(|r| r.corrections_acknowledged)
            .sum::<u64>(),
        result.mismatches.len(),
        result.compared,
        &result.mismatches[..result.mismatches.len().min(6)]
    );
    for (report, name) in reports.iter().zip(["batch", "stream"]) {
        assert_eq!(report.unacknowledged, 0, "{name}: every batch acknowledged");
        assert_eq!(report.rejected, 0, "{name}: no event rejected");
        assert_eq!(
            report.resent_accepted, 0,
            "{name}: a deliberate resend is never counted again"
        );
        assert!(report.resent > 0, "{name}: some batches were resent");
        assert!(
            report.corrections_acknowledged > 0 && report.retractions_acknowledged > 0,
            "{name}: corrections and retractions were counted: {} ({} retractions)",
            report.corrections_acknowledged,
            report.retractions_acknowledged
        );
        assert!(!report.errors.is_empty(), "{name}: the faults failed calls");
    }
    assert!(
        unfelt.is_empty(),
        "faults the load never met (no call failed, or nothing written after it): {unfelt:?}"
    );
    drop(ingest);
    drop(aggregate);
}
