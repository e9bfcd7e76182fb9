//! The store conformance suite, against the in-memory store and a real redis-server.

use govpulse_store::{
    CounterStore, MemoryStore, RedisStore, RedisStoreConfig, conformance,
    testing::{RedisCluster, RedisServer},
};

#[tokio::test]
async fn memory_store_conforms() {
    conformance::run_all(|| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn memory_store_notices_reach_every_subscriber() {
    let store = MemoryStore::new();
    conformance::notices_reach_every_subscriber(&store, &store).await;
}

#[tokio::test]
async fn redis_store_notices_reach_every_replica() {
    let server = RedisServer::start().expect("redis-server starts");
    let config = RedisStoreConfig {
        url: server.url(),
        prefix: "notices".to_owned(),
    };
    let a = RedisStore::connect(config.clone()).await.expect("connects");
    let b = RedisStore::connect(config).await.expect("connects");
    conformance::notices_reach_every_subscriber(&a, &b).await;
}

#[tokio::test]
async fn redis_store_conforms() {
    let server = RedisServer::start().expect("redis-server starts");
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        let config = RedisStoreConfig {
            url: server.url(),
            prefix: format!("conformance{n}"),
        };
        async move { RedisStore::connect(config).await.expect("redis connects") }
    })
    .await;
}

#[tokio::test]
async fn redis_cluster_store_conforms() {
    let cluster = RedisCluster::start().expect("a three-master redis cluster starts");
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        let config = RedisStoreConfig {
            url: cluster.url(),
            prefix: format!("cluster{n}"),
        };
        async move {
            RedisStore::connect(config)
                .await
                .expect("the cluster connects")
        }
    })
    .await;
}

#[tokio::test]
async fn redis_cluster_store_notices_reach_every_replica() {
    // Published through the cluster connection (any node), heard by subscriptions to the
    // first node: classic pub/sub reaches every node of a cluster.
    let cluster = RedisCluster::start().expect("a three-master redis cluster starts");
    let config = RedisStoreConfig {
        url: cluster.url(),
        prefix: "notices".to_owned(),
    };
    let a = RedisStore::connect(config.clone())
        .await
        .expect("the cluster connects");
    let b = RedisStore::connect(config)
        .await
        .expect("the cluster connects");
    conformance::notices_reach_every_subscriber(&a, &b).await;
}

#[tokio::test]
async fn a_cluster_spreads_trees_over_its_masters() {
    // The conformance suite only proves something about a cluster if its trees do not all
    // land on one master: count the keys each master holds after writing a few trees.
    let cluster = RedisCluster::start().expect("a three-master redis cluster starts");
    let store = RedisStore::connect(RedisStoreConfig {
        url: cluster.url(),
        prefix: "spread".to_owned(),
    })
    .await
    .expect("the cluster connects");
    let day = time::macros::date!(2026 - 01 - 01);
    let roots = [
        "ha-noi",
        "hoa-binh",
        "quang-ninh",
        "phu-tho",
        "mof",
        "moh",
        "da-nang",
    ];
    let writes: Vec<_> = roots
        .iter()
        .map(|root| {
            conformance::write(
                &format!("e-{root}"),
                &[root],
                day,
                &[govpulse_core::Counter::Received],
                None,
            )
        })
        .collect();
    assert!(
        store
            .apply(&writes)
            .await
            .expect("apply")
            .iter()
            .all(|a| *a == govpulse_store::Applied::Accepted)
    );
    let masters_with_keys = cluster
        .ports()
        .iter()
        .filter(|port| {
            let output = std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "dbsize"])
                .output()
                .expect("redis-cli runs");
            String::from_utf8_lossy(&output.stdout).trim() != "0"
        })
        .count();
    assert!(
        masters_with_keys >= 2,
        "{} trees landed on {masters_with_keys} master(s)",
        roots.len()
    );
}

#[tokio::test]
async fn redis_store_remembers_event_ids_across_reconnects() {
    let server = RedisServer::start().expect("redis-server starts");
    let config = RedisStoreConfig {
        url: server.url(),
        prefix: "restart".to_owned(),
    };
    let e = conformance::write(
        "e1",
        &["ha-noi"],
        time::macros::date!(2026 - 01 - 01),
        &[govpulse_core::Counter::Received],
        None,
    );
    let first = RedisStore::connect(config.clone()).await.expect("connects");
    assert_eq!(
        first.apply(std::slice::from_ref(&e)).await.expect("apply"),
        [govpulse_store::Applied::Accepted]
    );
    drop(first);
    let second = RedisStore::connect(config).await.expect("connects");
    assert_eq!(
        second.apply(&[e]).await.expect("apply"),
        [govpulse_store::Applied::Duplicate]
    );
}
