//! An agency whose system stops syncing keeps its last figures, which look as good as live
//! ones: after aggregate's `--stale-after-secs` of silence it is flagged stale in GetMetrics,
//! GetRanking, WatchRanking (a change, without waiting for the refresh tick) and
//! `/metrics`, and its next event clears the flag everywhere.

use std::time::Duration;

use govpulse_e2e::{
    Deployment, Options, fraction,
    prometheus::{sample, scrape},
    provinces_by_online_rate, received, rows_of, two_days_ago_noon,
};
use govpulse_edge::convert::freshness_from_proto;
use govpulse_proto::{
    aggregate::Freshness,
    ranking::{RankingQuery, RankingRow, watch_ranking_response::Event},
};
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_stream::StreamExt;

/// The silence this test allows: long enough for the first reads to come back before it
/// ends, short enough to wait for.
const SILENCE_SECS: u64 = 4;

/// Checks `freshness`, answered between `asked` and `answered`, against the rule: flagged
/// exactly when the answer's moment is `stale_at` or later, `stale_at` being the last
/// acceptance plus the silence. Only a moment strictly inside the request can be either.
fn check(freshness: &Freshness, asked: OffsetDateTime, answered: OffsetDateTime) -> bool {
    let f = freshness_from_proto(freshness).expect("readable freshness");
    let accepted = f.seen.last_accepted.expect("an acceptance");
    let stale_at = f.stale_at.expect("a moment it turns stale");
    assert_eq!(
        stale_at - accepted,
        time::Duration::seconds(SILENCE_SECS as i64)
    );
    if answered < stale_at {
        assert!(!f.stale, "stale before {stale_at}: {freshness:?}");
    }
    if asked >= stale_at {
        assert!(f.stale, "not stale after {stale_at}: {freshness:?}");
    }
    f.stale
}

fn query() -> RankingQuery {
    provinces_by_online_rate(two_days_ago_noon().date().to_string())
}

fn row<'a>(rows: &'a [RankingRow], agency: &str) -> &'a RankingRow {
    rows.iter()
        .find(|r| r.agency_id == agency)
        .unwrap_or_else(|| panic!("{agency} in {rows:?}"))
}

/// `govpulse_agency_stale{agency}` as aggregate's `/metrics` shows it: set by the scrape
/// itself, as of its moment.
async fn stale_gauge(deployment: &Deployment, agency: &str) -> Option<f64> {
    let addr = deployment
        .aggregate_metrics_addr()
        .expect("a metrics listener");
    sample(
        &scrape(addr).await,
        "govpulse_agency_stale",
        &[("agency", agency)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agency_is_flagged_stale_everywhere_and_its_next_event_clears_it() {
    let deployment = Deployment::start_alone_with(
        "stale",
        Options {
            stale_after_secs: Some(SILENCE_SECS),
            aggregate_metrics: true,
            // Far beyond the test: only the hub's own timer can flag a row in time.
            refresh_ms: Some(600_000),
            ..Options::default()
        },
    )
    .await;
    let at = two_days_ago_noon();
    let sent = OffsetDateTime::now_utc();
    deployment
        .accept_all(vec![
            received("ls-1", "lang-son", at, true),
            received("ls-2", "lang-son", at, false),
        ])
        .await;
    let mut watch = deployment.watch_ranking(query()).await;

    // Just after: fresh (unless this machine took the whole silence to answer), with the
    // moment it turns stale; an agency never heard from is stale with no moment.
    let metrics = || async {
        let asked = OffsetDateTime::now_utc();
        let answer = deployment
            .get_metrics("lang-son", &at.date().to_string(), &[])
            .await
            .expect("metrics");
        (answer, asked, OffsetDateTime::now_utc())
    };
    let (answer, asked, answered) = metrics().await;
    let freshness = answer.freshness.as_ref().expect("freshness");
    check(freshness, asked, answered);
    let seen = freshness_from_proto(freshness).expect("readable");
    assert!(seen.seen.last_accepted >= Some(sent) && seen.seen.last_accepted <= Some(asked));
    assert_eq!(seen.seen.last_occurred, Some(at));
    assert!(!answer.provisional, "two days ago is over");
    // Thirty days, today's last (the sum, should Vietnam's midnight fall in between).
    assert_eq!(answer.accepted_per_day.len(), 30);
    let last = answer.accepted_per_day.last().map(|d| d.day.clone());
    let today = |at| Some(govpulse_core::period::vietnam_day(at).to_string());
    assert!(last == today(asked) || last == today(answered), "{last:?}");
    let accepted = |answer: &govpulse_proto::aggregate::GetMetricsResponse| {
        answer
            .accepted_per_day
            .iter()
            .map(|d| d.accepted)
            .sum::<u64>()
    };
    assert_eq!(accepted(&answer), 2);
    let ranking = deployment.get_ranking(query()).await.expect("ranking");
    let never = row(&ranking.rows, "ha-noi").freshness.expect("freshness");
    assert!(never.stale && never.stale_at.is_none() && never.last_accepted_at.is_none());

    // The stream: a snapshot, then, with no event and no refresh tick, a change flagging
    // Lạng Sơn once its silence is over.
    let mut stale_at = None;
    let mut flagged = None;
    let deadline = Instant::now() + Duration::from_secs(SILENCE_SECS + 10);
    while flagged.is_none() {
        let message = tokio::time::timeout_at(deadline, watch.next())
            .await
            .expect("Lạng Sơn flagged on the stream in time")
            .expect("the stream goes on")
            .expect("a message");
        let Some(rows) = rows_of(message) else {
            continue;
        };
        for r in rows.iter().filter(|r| r.agency_id == "lang-son") {
            let f =
                freshness_from_proto(r.freshness.as_ref().expect("freshness")).expect("readable");
            stale_at = f.stale_at;
            if f.stale {
                flagged = Some(OffsetDateTime::now_utc());
            }
        }
    }
    let (stale_at, flagged) = (stale_at.expect("a moment"), flagged.expect("flagged"));
    assert!(
        flagged >= stale_at,
        "flagged at {flagged}, before {stale_at}"
    );
    assert!(
        flagged - stale_at < time::Duration::seconds(3),
        "flagged {} after the moment: the timer, not the refresh, should have done it",
        flagged - stale_at
    );
    let (answer, asked, answered) = metrics().await;
    assert!(check(
        answer.freshness.as_ref().expect("freshness"),
        asked,
        answered
    ));
    assert_eq!(stale_gauge(&deployment, "lang-son").await, Some(1.0));
    assert_eq!(
        stale_gauge(&deployment, "ha-noi").await,
        Some(1.0),
        "never reported"
    );

    // It reports again: fresh everywhere.
    deployment
        .accept_all(vec![received("ls-3", "lang-son", at, true)])
        .await;
    let (answer, asked, answered) = metrics().await;
    assert!(!check(
        answer.freshness.as_ref().expect("freshness"),
        asked,
        answered
    ));
    assert_eq!(accepted(&answer), 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    'stream: loop {
        let message = tokio::time::timeout_at(deadline, watch.next())
            .await
            .expect("Lạng Sơn cleared on the stream in time")
            .expect("the stream goes on")
            .expect("a message");
        if let Some(Event::Changes(changes)) = message.event {
            for r in changes.changes.iter().filter_map(|c| c.row.as_ref()) {
                if r.agency_id == "lang-son" && !r.freshness.as_ref().is_some_and(|f| f.stale) {
                    assert_eq!(fraction(r.rate.as_ref()), Some((2, 3)));
                    break 'stream;
                }
            }
        }
    }
    assert_eq!(stale_gauge(&deployment, "lang-son").await, Some(0.0));
    deployment.stop().await;
}
