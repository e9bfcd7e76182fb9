//! The freshness probe of `govpulse loadgen --freshness`: under load, every probe's event
//! reaches a WatchRanking subscriber, and the probe reports how long that took.

use std::{sync::Arc, time::Duration};

use govpulse::{
    freshness::{self, ProbeConfig},
    loadgen::{self, LoadConfig, Mode, Progress},
};
use govpulse_e2e::{Deployment, RedisServer};
use tokio_util::sync::CancellationToken;

fn lazy(addr: std::net::SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("a url")
        .connect_lazy()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_probe_reaches_the_stream_under_load() {
    let redis = RedisServer::start().expect("redis-server starts");
    let deployment = Deployment::start(&redis, "freshness").await;
    let catalog = Arc::new(govpulse_common::catalog_files::built_in().expect("built-in catalog"));
    let stop = CancellationToken::new();
    let load = tokio::spawn(loadgen::run(
        lazy(deployment.ingest_addr()),
        catalog.clone(),
        LoadConfig {
            mode: Mode::Batch,
            rate: Some(2_000.0),
            duration: Duration::from_secs(600),
            batch_size: 100,
            connections: 2,
            drain: Duration::from_secs(1),
            ..LoadConfig::default()
        },
        Arc::new(Progress::default()),
        stop.clone(),
    ));
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
    tokio::time::sleep(Duration::from_secs(4)).await;
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
        "several probes in 4 s: {measured:?}"
    );
    assert_eq!((measured.missed, measured.refused), (0, 0), "{measured:?}");
    assert!(
        measured.latency.max < ProbeConfig::default().timeout,
        "{measured:?}"
    );
    deployment.stop().await;
}
