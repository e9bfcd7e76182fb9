//! The freshness probe of `govpulse loadgen --freshness`: under load, every probe's event
//! reaches a WatchRanking subscriber, and the probe reports how long that took.

mod common;

use std::{collections::HashMap, sync::Arc, time::Duration};

use govpulse::freshness::{self, ProbeConfig};
use govpulse_e2e::{Deployment, lazy, provinces_by_online_rate, rows_of};
use time::OffsetDateTime;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_probe_reaches_the_stream_under_load() {
    let deployment = Deployment::start_alone("freshness").await;
    let catalog = Arc::new(govpulse_runtime::catalog_files::built_in().expect("built-in catalog"));
    let stop = CancellationToken::new();
    let load = common::background_load(&deployment, catalog.clone(), 2_000.0, 100, stop.clone());
    // Only the probe writes to the day it probes (the load dates its events now): each of
    // its events shows here as one more dossier received in a province's row.
    let day = govpulse_core::period::vietnam_day(OffsetDateTime::now_utc())
        - time::Duration::days(ProbeConfig::default().days_back);
    let mut probed = deployment
        .watch_ranking(provinces_by_online_rate(day.to_string()))
        .await;
    let probe_stop = CancellationToken::new();
    let probe = tokio::spawn({
        let (ingest, ranking) = (
            lazy(deployment.ingest_addr()),
            lazy(deployment.ranking_addr()),
        );
        let (catalog, probe_stop) = (catalog.clone(), probe_stop.clone());
        async move {
            freshness::probe(
                ingest,
                ranking,
                &catalog,
                ProbeConfig::default(),
                probe_stop,
            )
            .await
        }
    });
    // Probes go one at a time: once a fourth probe's event has arrived, the probe has had
    // the first three arrive (or time out).
    let mut received: HashMap<String, u64> = HashMap::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while received.values().sum::<u64>() < 4 {
            let message = probed
                .next()
                .await
                .expect("the stream stays open")
                .expect("a message");
            let Some(rows) = rows_of(message) else {
                continue;
            };
            for row in rows {
                received.insert(row.agency_id, row.rate.map_or(0, |r| r.denominator));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("four probes' events did not reach the stream within 30 s"));
    probe_stop.cancel();
    let measured = probe
        .await
        .expect("the probe task ends")
        .expect("the probe runs");
    stop.cancel();
    let report = load.await.expect("the load ends");
    assert!(report.accepted > 0, "the load was accepted: {report:?}");
    assert!(
        measured.latency.count >= 3,
        "the probe measured the three probes before the fourth: {measured:?}"
    );
    assert_eq!((measured.missed, measured.refused), (0, 0), "{measured:?}");
    assert!(
        measured.latency.max < ProbeConfig::default().timeout,
        "{measured:?}"
    );
    deployment.stop().await;
}
