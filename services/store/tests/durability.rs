//! What an acknowledged batch survives when `redis-server` crashes (SIGKILL) and restarts
//! from its data folder, for each persistence setting docs/OPERATIONS.md (section 6)
//! describes. A crash of the machine (power cut) cannot be staged here: `everysec` then
//! loses up to about a second of acknowledged batches, which a process crash does not show.

use std::time::{Duration, Instant};

use govpulse_core::{AgencyId, Counter, Counters, Needs, Period};
use govpulse_store::{
    AgencyKey, Applied, CounterStore, EventWrite, GroupsRead, RedisStore, conformance,
    testing::{RedisServer, connect},
};
use time::macros::date;

const EVENTS: usize = 1000;

fn batch() -> Vec<EventWrite> {
    (0..EVENTS)
        .map(|i| {
            let chain: &[&str] = if i % 2 == 0 {
                &["phu-tho.dept-01", "phu-tho"]
            } else {
                &["mof"]
            };
            conformance::write(
                &format!("durable-{i}"),
                chain,
                date!(2026 - 08 - 15),
                &[Counter::Received, Counter::ReceivedOnline],
                Some("phu-tho.p01"),
            )
        })
        .collect()
}

fn key(root: &str, agency: &str) -> Vec<AgencyKey> {
    let id = |raw: &str| AgencyId::parse(raw).expect("a valid id");
    vec![AgencyKey {
        root: id(root),
        agency: id(agency),
    }]
}

/// Reads both trees' counters for the batch's month, retrying while the store reconnects
/// after the crash (the first command on the dead connection fails).
async fn counters(store: &RedisStore) -> Vec<Counters> {
    let period = Period::parse("2026-08", date!(2026 - 12 - 31)).expect("a valid period");
    let groups = [key("phu-tho", "phu-tho"), key("mof", "mof")];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store
            .read(GroupsRead {
                groups: &groups,
                buckets: &period.cover(),
                needs: &Needs::everything(),
            })
            .await
        {
            Ok(counters) => return counters,
            Err(e) => assert!(
                Instant::now() < deadline,
                "the store reads again within 30 s of redis restarting: {e}"
            ),
        }
        // The store reconnects by itself after a failed command, and nothing says when it
        // has: reading again, with a deadline, is the only way to know.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Redis' options for an append-only file (and no snapshots) written to disk as
/// `appendfsync` says.
fn append_only(appendfsync: &str) -> [&str; 6] {
    [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        appendfsync,
    ]
}

/// Applies the batch (acknowledged when `apply` returns), crashes Redis, restarts it, and
/// returns the received counts of both trees then and what sending the batch again gives.
async fn acknowledged_then_crashed(options: &[&str]) -> (Vec<u64>, Vec<Applied>) {
    let mut server = RedisServer::start_with(options).expect("redis-server starts");
    let store = connect(server.url(), "durability").await;
    let applied = store
        .apply(&batch())
        .await
        .expect("the batch is acknowledged");
    assert!(applied.iter().all(|a| *a == Applied::Accepted));
    let before: Vec<u64> = counters(&store)
        .await
        .iter()
        .map(|c| c.get(Counter::Received))
        .collect();
    assert_eq!(before, [500, 500]);

    server
        .crash_and_restart()
        .expect("redis-server restarts on its port");
    let after = counters(&store)
        .await
        .iter()
        .map(|c| c.get(Counter::Received))
        .collect();
    let again = store
        .apply(&batch())
        .await
        .expect("the batch is sent again");
    (after, again)
}

#[tokio::test]
async fn with_appendfsync_always_an_acknowledged_batch_survives_a_redis_crash() {
    let (after, again) = acknowledged_then_crashed(&append_only("always")).await;
    assert_eq!(
        after,
        [500, 500],
        "every acknowledged event is still counted"
    );
    assert!(
        again.iter().all(|a| *a == Applied::Duplicate),
        "the remembered ids survived too: a retry is not counted again"
    );
}

#[tokio::test]
async fn with_appendfsync_everysec_a_crash_of_the_redis_process_loses_nothing() {
    let (after, again) = acknowledged_then_crashed(&append_only("everysec")).await;
    assert_eq!(after, [500, 500], "the kernel held what Redis wrote");
    assert!(again.iter().all(|a| *a == Applied::Duplicate));
}

#[tokio::test]
async fn without_persistence_a_redis_crash_loses_every_acknowledged_batch() {
    let (after, again) = acknowledged_then_crashed(&["--save", "", "--appendonly", "no"]).await;
    assert_eq!(after, [0, 0], "nothing was kept");
    assert!(
        again.iter().all(|a| *a == Applied::Accepted),
        "the remembered ids were lost with the counts: a re-sync counts the events once more"
    );
}
