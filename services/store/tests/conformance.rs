//! The store conformance suite, against the in-memory store and a real redis-server.

use govpulse_store::{
    CounterStore, MemoryStore, RedisStore, RedisStoreConfig, conformance, testing::RedisServer,
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
