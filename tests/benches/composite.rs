//! Measures `GetRanking` by composite index against the same ranking by one metric, on a real
//! `redis-server`: the 34 provinces of today with a month of events and a reported
//! transparency score (`service-index-766`), and the 63 provinces of 2024 with a full quality
//! evaluation (`system-quality-2024`). Run with `cargo bench -p govpulse-e2e --bench composite`.

#![allow(clippy::print_stdout, reason = "a benchmark reports on standard output")]

use std::time::{Duration, Instant};

use govpulse_core::period::VIETNAM;
use govpulse_e2e::{
    Deployment, RedisServer, assessed_score, provinces_by_online_rate, received, resolved, ts,
};
use govpulse_proto::{
    catalog::Block,
    event::{AssessedScore, DossierEvent, FeePaid, FeedbackGiven, dossier_event::Kind},
    ingest::{ReportAssessedScoresRequest, SubmitEventsRequest},
    ranking::{GetRankingRequest, RankingQuery},
};
use time::{Date, OffsetDateTime, macros::time};

const WARM_UP: usize = 5;
const SAMPLES: usize = 100;
/// Events of each kind per province and day.
const PER_DAY: usize = 20;
const BATCH: usize = 1_000;

#[tokio::main]
async fn main() {
    run().await;
}

/// The days of this month up to two days ago (at least that day), Vietnam time.
fn days() -> Vec<Date> {
    let last = (OffsetDateTime::now_utc().to_offset(VIETNAM) - time::Duration::days(2)).date();
    let first = last.replace_day(1).expect("the first of a month exists");
    let mut days = vec![first];
    while let Some(next) = days
        .last()
        .and_then(|d| d.next_day())
        .filter(|d| *d <= last)
    {
        days.push(next);
    }
    days
}

async fn province_ids(deployment: &Deployment, period: &str) -> Vec<String> {
    deployment
        .get_ranking(provinces_by_online_rate(period))
        .await
        .expect("ranking")
        .rows
        .into_iter()
        .map(|r| r.agency_id)
        .collect()
}

fn events(provinces: &[String], days: &[Date]) -> Vec<DossierEvent> {
    let mut events = Vec::new();
    for (p, province) in provinces.iter().enumerate() {
        for day in days {
            let at = day.with_time(time!(12:00)).assume_offset(VIETNAM);
            for i in 0..PER_DAY {
                let id = |kind: &str| format!("{province}-{day}-{kind}{i}");
                events.push(received(&id("r"), province, at, (i + p) % 3 != 0));
                events.push(resolved(&id("s"), province, at, (i + p) % 5 != 0));
                let fee = Kind::FeePaid(FeePaid {
                    online: (i + p) % 2 == 0,
                });
                let feedback = Kind::Feedback(FeedbackGiven {
                    satisfied: (i + p) % 7 != 0,
                });
                for (kind, what) in [("f", fee), ("b", feedback)] {
                    events.push(DossierEvent {
                        event_id: id(kind),
                        agency_id: province.clone(),
                        dossier_id: format!("HS-{}", id("r")),
                        procedure_id: format!("{province}.p01"),
                        occurred_at: ts(at),
                        kind: Some(what),
                        corrects: String::new(),
                    });
                }
            }
        }
    }
    events
}

async fn report(deployment: &Deployment, scores: Vec<AssessedScore>) -> Duration {
    let started = Instant::now();
    deployment
        .ingest()
        .report_assessed_scores(ReportAssessedScoresRequest { scores })
        .await
        .expect("stored");
    started.elapsed()
}

/// GetRanking latencies in milliseconds: p50, p99.
async fn measure(deployment: &Deployment, query: &RankingQuery) -> (f64, f64, usize) {
    let mut client = deployment.ranking();
    let mut samples = Vec::with_capacity(SAMPLES);
    let mut rows = 0;
    for i in 0..WARM_UP + SAMPLES {
        let started = Instant::now();
        let response = client
            .get_ranking(GetRankingRequest {
                query: Some(query.clone()),
            })
            .await
            .expect("ranking")
            .into_inner();
        if i >= WARM_UP {
            samples.push(started.elapsed());
        }
        rows = response.ranked_count as usize;
    }
    samples.sort();
    let at = |p: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1].as_secs_f64() * 1e3
    };
    (at(0.5), at(0.99), rows)
}

async fn run() {
    let redis = RedisServer::start().expect("redis-server starts (is it installed?)");
    let deployment = Deployment::start(&redis, "bench").await;
    let days = days();
    let month = days[0].to_string()[..7].to_owned();

    let today = province_ids(&deployment, &month).await;
    let all = events(&today, &days);
    let count = all.len();
    let mut ingest = deployment.ingest();
    for batch in all.chunks(BATCH) {
        ingest
            .submit_events(SubmitEventsRequest {
                events: batch.to_vec(),
            })
            .await
            .expect("submit");
    }
    let transparency: Vec<AssessedScore> = today
        .iter()
        .enumerate()
        .map(|(i, p)| assessed_score(p, "service-index-766", "transparency", &month, 10 + i % 9))
        .collect();
    let reported_766 = report(&deployment, transparency).await;

    let of_2024 = province_ids(&deployment, "2024").await;
    let criteria = [
        ("function", 50),
        ("structure-layout", 5),
        ("performance", 20),
        ("security", 15),
        ("convenient-access", 5),
        ("monitoring-connection", 5),
    ];
    let evaluations: Vec<AssessedScore> = of_2024
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            criteria.iter().map(move |(criterion, max)| {
                assessed_score(
                    p,
                    "system-quality-2024",
                    criterion,
                    "2024",
                    (i * 7) % (max + 1),
                )
            })
        })
        .collect();
    let evaluation_count = evaluations.len();
    let reported_quality = report(&deployment, evaluations).await;

    println!(
        "setup: {count} events for {} provinces over {} days; ReportAssessedScores of {} scores {:.1} ms, of {evaluation_count} scores {:.1} ms",
        today.len(),
        days.len(),
        today.len(),
        reported_766.as_secs_f64() * 1e3,
        reported_quality.as_secs_f64() * 1e3,
    );
    println!("GetRanking, province block, {SAMPLES} sequential calls each:");
    let cases = [
        (
            "metric online-dossier-rate",
            "online-dossier-rate",
            "",
            month.as_str(),
        ),
        (
            "index service-index-766",
            "",
            "service-index-766",
            month.as_str(),
        ),
        (
            "metric online-dossier-rate",
            "online-dossier-rate",
            "",
            "2024",
        ),
        (
            "index system-quality-2024",
            "",
            "system-quality-2024",
            "2024",
        ),
    ];
    for (label, metric, index, period) in cases {
        let query = RankingQuery {
            metric: metric.to_owned(),
            index: index.to_owned(),
            block: Block::Province.into(),
            period: period.to_owned(),
            ..Default::default()
        };
        let (p50, p99, ranked) = measure(&deployment, &query).await;
        println!(
            "  {label:<28} {period:<8} ranked {ranked:>2}  p50 {p50:6.2} ms  p99 {p99:6.2} ms"
        );
    }
    deployment.stop().await;
}
