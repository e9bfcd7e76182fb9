//! What the aggregate tests share: the API they drive (over ten years of history), the
//! agencies their catalogs start from, protobuf timestamps, and the runner that gives every
//! case a store of its own, on the backend a test names.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
};

use govpulse_aggregate::AggregateApi;
use govpulse_core::{AcceptancePolicy, Catalog, CatalogBuilder, CatalogError, targets::Targets};
use govpulse_proto::Timestamp;
use govpulse_runtime::targets_file::LiveTargets;
use govpulse_store::{
    CounterStore, MemoryStore,
    testing::{RedisCluster, RedisServer, store_per_case},
};
use proptest::{
    strategy::Strategy,
    test_runner::{Config as ProptestConfig, TestCaseError, TestRunner},
};
use time::{Duration, OffsetDateTime};
use tokio_util::sync::CancellationToken;

/// The aggregate API over `catalog` and `store`, with no targets, accepting events up to ten
/// years old: the generated histories start well before today.
pub fn api(catalog: Arc<Catalog>, store: Arc<dyn CounterStore>) -> AggregateApi {
    let policy = AcceptancePolicy {
        horizon: Duration::days(3650),
        ..AcceptancePolicy::default()
    };
    AggregateApi::new(
        catalog,
        store,
        policy,
        LiveTargets::fixed(Targets::default()),
        CancellationToken::new(),
    )
}

/// `builder` with two provinces, Hòa Bình (with a department, `hb.dept`, and its commune,
/// `hb.dept.commune`) and Quảng Ninh: the agencies the tests' catalogs start from.
pub fn two_provinces(builder: CatalogBuilder) -> Result<CatalogBuilder, CatalogError> {
    builder
        .provinces_csv(
            "p",
            "code,id,name\n17,hoa-binh,Hòa Bình\n22,quang-ninh,Quảng Ninh\n",
        )
        .and_then(|b| {
            b.units_csv(
                "u",
                "id,name,parent_id\nhb.dept,Sở,hoa-binh\nhb.dept.commune,Xã,hb.dept\n",
            )
        })
}

/// `at` as a protobuf timestamp, to the second.
pub fn timestamp(at: OffsetDateTime) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: at.unix_timestamp(),
        nanos: 0,
    })
}

/// Runs `cases` cases of `strategy` through `check` on `runtime`, the n-th case against the
/// store `store(n)` (so that no case sees another's counters); panics with `property` when a
/// case fails, after proptest has shrunk it.
pub fn run_property<S, F>(
    cases: u32,
    strategy: S,
    store: impl Fn(u32) -> Arc<dyn CounterStore>,
    runtime: &tokio::runtime::Runtime,
    check: impl Fn(Arc<dyn CounterStore>, S::Value) -> F,
    property: &str,
) where
    S: Strategy,
    F: Future<Output = Result<(), TestCaseError>>,
{
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let case = AtomicU32::new(0);
    runner
        .run(&strategy, |value| {
            let n = case.fetch_add(1, Ordering::Relaxed);
            runtime.block_on(check(store(n), value))
        })
        .expect(property);
}

/// The counter store a property runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    /// A fresh in-memory store per case.
    Memory,
    /// A redis-server of the test's own, each case's keys under this prefix and its number.
    Redis(&'static str),
    /// A three-master Redis Cluster of the test's own, keys as for [`Backend::Redis`].
    RedisCluster(&'static str),
}

/// [`run_property`] on `backend`, started for the test and stopped after it.
pub fn run_property_on<S, F>(
    backend: Backend,
    cases: u32,
    strategy: S,
    check: impl Fn(Arc<dyn CounterStore>, S::Value) -> F,
    property: &str,
) where
    S: Strategy,
    F: Future<Output = Result<(), TestCaseError>>,
{
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    match backend {
        Backend::Memory => {
            let store = |_| Arc::new(MemoryStore::new()) as Arc<dyn CounterStore>;
            run_property(cases, strategy, store, &runtime, check, property);
        }
        Backend::Redis(prefix) => {
            let server = RedisServer::start().expect("redis-server starts");
            let store = store_per_case(server.url(), &runtime, prefix);
            run_property(cases, strategy, store, &runtime, check, property);
        }
        Backend::RedisCluster(prefix) => {
            let cluster = RedisCluster::start().expect("a three-master redis cluster starts");
            let store = store_per_case(cluster.url(), &runtime, prefix);
            run_property(cases, strategy, store, &runtime, check, property);
        }
    }
}
