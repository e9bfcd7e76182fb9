//! The store conformance suite, against the in-memory store and a real redis-server.

use govpulse_store::{
    Children, ChildrenRead, CounterStore, GroupsRead, MemoryStore, RedisStore, conformance,
    testing::{RedisCluster, RedisServer, connect},
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
async fn memory_store_counts_each_id_once_for_writers_at_once_and_in_turn() {
    let store = MemoryStore::new();
    conformance::concurrent_writers_count_each_id_once(&store, &store).await;
    let store = MemoryStore::new();
    conformance::writers_in_turn_see_each_others_writes(&store, &store).await;
}

/// Two stores on one Redis (or cluster), as two aggregate replicas are.
async fn two_writers(url: String, prefix: &str) -> (RedisStore, RedisStore) {
    (
        connect(url.clone(), prefix).await,
        connect(url, prefix).await,
    )
}

/// Two replicas on the Redis at `url` (one server or a cluster), writing and keeping at the
/// same moment or in turn: each id counted once, each seeing the other's writes, one
/// publication kept, every change notice heard by both.
async fn two_replicas_agree(url: String) {
    let (a, b) = two_writers(url.clone(), "concurrent").await;
    conformance::concurrent_writers_count_each_id_once(&a, &b).await;
    let (a, b) = two_writers(url.clone(), "in-turn").await;
    conformance::writers_in_turn_see_each_others_writes(&a, &b).await;
    let (a, b) = two_writers(url.clone(), "publications").await;
    conformance::concurrent_keeps_keep_one_publication(&a, &b).await;
    // On a cluster, published through the cluster connection (any node) and heard by
    // subscriptions to the first node: classic pub/sub reaches every node of a cluster.
    let (a, b) = two_writers(url, "notices").await;
    conformance::notices_reach_every_subscriber(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_replicas_agree() {
    let server = RedisServer::start().expect("redis-server starts");
    two_replicas_agree(server.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store_replicas_agree() {
    let cluster = RedisCluster::start().expect("a three-master redis cluster starts");
    two_replicas_agree(cluster.url()).await;
}

/// The whole suite against the Redis at `url`, each check's store under a key prefix of its
/// own (`<prefix><n>`).
async fn redis_at_conforms(url: String, prefix: &str) {
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        connect(url.clone(), format!("{prefix}{n}"))
    })
    .await;
}

#[tokio::test]
async fn redis_store_conforms() {
    let server = RedisServer::start().expect("redis-server starts");
    redis_at_conforms(server.url(), "conformance").await;
}

#[tokio::test]
async fn redis_cluster_store_conforms() {
    let cluster = RedisCluster::start().expect("a three-master redis cluster starts");
    redis_at_conforms(cluster.url(), "cluster").await;
}

#[tokio::test]
async fn a_cluster_spreads_trees_over_its_masters() {
    // The conformance suite only proves something about a cluster if its trees do not all
    // land on one master: count the keys each master holds after writing a few trees.
    let cluster = RedisCluster::start().expect("a three-master redis cluster starts");
    let store = connect(cluster.url(), "spread").await;
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
    let e = conformance::write(
        "e1",
        &["ha-noi"],
        time::macros::date!(2026 - 01 - 01),
        &[govpulse_core::Counter::Received],
        None,
    );
    let first = connect(server.url(), "restart").await;
    assert_eq!(
        first.apply(std::slice::from_ref(&e)).await.expect("apply"),
        [govpulse_store::Applied::Accepted]
    );
    drop(first);
    let second = connect(server.url(), "restart").await;
    assert_eq!(
        second.apply(&[e]).await.expect("apply"),
        [govpulse_store::Applied::Duplicate]
    );
}

/// The keys a batch writes are named as the key schema says (redis_store.rs, ARCHITECTURE.md
/// section 4): stored data outlives a release, so a key's name may not drift. One online
/// reception of a unit on 2026-08-15, counted for its province: a new tree, whose event ids
/// and dossier records are in their first buckets.
#[tokio::test]
async fn redis_store_names_its_keys_as_the_key_schema_says() {
    use govpulse_core::Counter;

    let server = RedisServer::start().expect("redis-server starts");
    let store = connect(server.url(), "schema").await;
    let e = conformance::write(
        "e1",
        &["hoa-binh.dept-01", "hoa-binh"],
        time::macros::date!(2026 - 08 - 15),
        &[Counter::Received, Counter::ReceivedOnline],
        Some("p-online"),
    );
    assert_eq!(
        store.apply(&[e]).await.expect("apply"),
        [govpulse_store::Applied::Accepted]
    );
    let mut admin = admin(&server).await;
    let kept = [
        "schema:{hoa-binh}:n:hoa-binh.dept-01:m202608",
        "schema:{hoa-binh}:n:hoa-binh:q20263",
        "schema:{hoa-binh}:n:hoa-binh:y2026",
        "schema:{hoa-binh}:k:hoa-binh:d20260815",
        "schema:{hoa-binh}:k:hoa-binh:m202608:rcv",
        "schema:{hoa-binh}:k:hoa-binh:ids",
        "schema:{hoa-binh}:p:hoa-binh.dept-01:d20260815",
        "schema:{hoa-binh}:r:hoa-binh:d20260815",
        "schema:{hoa-binh}:r:hoa-binh:m202608",
        "schema:{hoa-binh}:o:hoa-binh:m202608",
        "schema:{hoa-binh}:s",
        "schema:{hoa-binh}:v",
        "schema:{hoa-binh}:ex",
        "schema:{hoa-binh}:e:0",
        "schema:{hoa-binh}:dsx",
        "schema:{hoa-binh}:ds:0",
    ];
    // A unit's counters and the root's procedures are kept for days and months only: their
    // quarters and years are read as their months. A unit's day is one record list, its own
    // record and its procedures' (`…:p:…`): no record of its own since 2026-12-06.
    let not_kept = [
        "schema:{hoa-binh}:n:hoa-binh.dept-01:d20260815",
        "schema:{hoa-binh}:n:hoa-binh.dept-01:q20263",
        "schema:{hoa-binh}:n:hoa-binh.dept-01:y2026",
        "schema:{hoa-binh}:r:hoa-binh:q20263",
        "schema:{hoa-binh}:r:hoa-binh:y2026",
    ];
    let expected = kept.map(|key| (key, true));
    for (key, want) in expected.into_iter().chain(not_kept.map(|key| (key, false))) {
        let exists: bool = query(&mut admin, redis::cmd("EXISTS").arg(key)).await;
        assert_eq!(exists, want, "{key} in Redis");
    }
}

/// Event ids and dossier records live in buckets that a batch writes as its changes
/// (`SETRANGE` of a record into a free slot or in place), and whole, padded with free slots,
/// only when a bucket has no room left (services/store/src/bucket.rs). Rounds of receptions
/// and resolutions of earlier dossiers through one store (its write cache current, so the
/// changes are written alone), then every event again through a new store, which reads the
/// buckets as Redis holds them: each is a duplicate. And a bucket costs Redis no more memory
/// than its records alone would: the padding fills the allocation Redis makes anyway.
#[tokio::test]
async fn redis_store_buckets_written_as_their_changes_read_back_whole_and_cost_no_memory() {
    use govpulse_core::{Counter, DossierId, backlog::StageEvent};

    let server = RedisServer::start().expect("redis-server starts");
    let store = connect(server.url(), "mem").await;
    let day = time::macros::date!(2026 - 08 - 15);
    let mut sent = Vec::new();
    for round in 0..30 {
        let mut batch = Vec::new();
        for i in 0..25 {
            batch.push(conformance::write(
                &format!("r{round}-{i}"),
                &["hoa-binh"],
                day,
                &[Counter::Received],
                None,
            ));
            if round > 0 {
                let mut resolved = conformance::write(
                    &format!("s{round}-{i}"),
                    &["hoa-binh"],
                    day,
                    &[Counter::Resolved],
                    None,
                );
                resolved.dossier = DossierId::parse(&format!("r{}-{i}", round - 1)).expect("id");
                resolved.stage = Some(StageEvent::Resolved { day });
                batch.push(resolved);
            }
        }
        let applied = store.apply(&batch).await.expect("apply");
        assert!(
            applied
                .iter()
                .all(|a| *a == govpulse_store::Applied::Accepted),
            "round {round}: {applied:?}"
        );
        sent.extend(batch);
    }
    let mut admin = admin(&server).await;
    assert!(
        calls(&mut admin, "setrange").await > 0,
        "records written alone"
    );

    let fresh = connect(server.url(), "mem").await;
    for batch in sent.chunks(100) {
        let applied = fresh.apply(batch).await.expect("apply");
        assert!(
            applied
                .iter()
                .all(|a| *a == govpulse_store::Applied::Duplicate),
            "{applied:?}"
        );
    }

    let mut padded = 0;
    for (pattern, record) in [("mem:*:e:*", 27), ("mem:*:ds:*", 19)] {
        let keys: Vec<String> = query(&mut admin, redis::cmd("KEYS").arg(pattern)).await;
        assert!(!keys.is_empty(), "{pattern}");
        for key in keys {
            let value: Vec<u8> = query(&mut admin, redis::cmd("GET").arg(&key)).await;
            let mut records = value.clone();
            while records.len() >= record
                && records[records.len() - record..].iter().all(|b| *b == 0)
            {
                records.truncate(records.len() - record);
            }
            padded += usize::from(records.len() < value.len());
            // The value with and without its free slots, under a key of its own.
            let scratch = key.replacen("mem", "tmp", 1);
            let mut usage = Vec::new();
            for bytes in [&value, &records] {
                let () = query(&mut admin, redis::cmd("SET").arg(&scratch).arg(bytes)).await;
                let used: u64 =
                    query(&mut admin, redis::cmd("MEMORY").arg("USAGE").arg(&scratch)).await;
                usage.push(used);
            }
            assert_eq!(usage[0], usage[1], "{key}: {} bytes", value.len());
        }
    }
    assert!(padded > 0, "some bucket has free slots");
}

/// The packed roll-ups place children by ordinals a reader caches: children counted for the
/// first time after a read, a restore from a backup after which another child takes the
/// next ordinal, and a flush after which the same children get other ordinals, still read
/// exactly, through the store that cached the old ordinals and through a new one. (The year
/// and its month are read together: each event counts twice.)
/// A reception by `unit` under hoa-binh on the day the roll-up tests count.
fn received_by(event: &str, unit: &str) -> govpulse_store::EventWrite {
    let day = time::macros::date!(2026 - 04 - 09);
    conformance::write(event, &[unit, "hoa-binh"], day, &[RECEIVED], None)
}

/// What `store` reads of each of `units` under hoa-binh in its roll-ups: receptions in the
/// year and in the month of that day (so each event counts twice; a year reads as months).
async fn received_under_hoa_binh(store: &RedisStore, units: &[&str]) -> Vec<u64> {
    use govpulse_core::{AgencyId, Bucket};
    let id = |raw: &str| AgencyId::parse(raw).expect("a valid id");
    let parent = govpulse_store::AgencyKey {
        root: id("hoa-binh"),
        agency: id("hoa-binh"),
    };
    let children: Vec<AgencyId> = units.iter().map(|unit| id(unit)).collect();
    let buckets = [Bucket::Year(2026), Bucket::Month(2026, 4)];
    store
        .read_children(ChildrenRead {
            of: Children {
                parent: &parent,
                children: &children,
            },
            buckets: &buckets,
            counters: &[RECEIVED],
        })
        .await
        .expect("read children")
        .iter()
        .map(|c| c.get(RECEIVED))
        .collect()
}

const RECEIVED: govpulse_core::Counter = govpulse_core::Counter::Received;

/// What Redis answers `cmd` on `admin`.
async fn query<T: redis::FromRedisValue>(
    admin: &mut redis::aio::MultiplexedConnection,
    cmd: &redis::Cmd,
) -> T {
    cmd.query_async(admin).await.expect("Redis answers")
}

/// How many times Redis has run `command` (lower case, as `INFO commandstats` names it).
async fn calls(admin: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = query(admin, redis::cmd("INFO").arg("commandstats")).await;
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// A plain connection to `server`, for what a test asks of Redis itself.
async fn admin(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("a client")
        .get_multiplexed_async_connection()
        .await
        .expect("connects")
}

#[tokio::test]
async fn redis_store_children_read_exactly_across_new_children_a_restore_and_a_flush() {
    let server = RedisServer::start().expect("redis-server starts");
    let store = connect(server.url(), "ordinals").await;
    let receive = received_by;
    let counts = async |store: RedisStore| {
        received_under_hoa_binh(&store, &["hb-a", "hb-b", "hb-c", "hb-d"]).await
    };
    let mut admin = admin(&server).await;
    let flush = |mut admin: redis::aio::MultiplexedConnection| async move {
        let () = query(&mut admin, &redis::cmd("FLUSHALL")).await;
    };

    store
        .apply(&[
            receive("1", "hb-a"),
            receive("2", "hb-b"),
            receive("3", "hb-b"),
        ])
        .await
        .expect("apply");
    assert_eq!(counts(store.clone()).await, [2, 4, 0, 0]);
    // A backup: every key's DUMP.
    let keys: Vec<String> = query(&mut admin, redis::cmd("KEYS").arg("*")).await;
    let mut backup: Vec<(String, Vec<u8>)> = Vec::new();
    for key in keys {
        let dump: Vec<u8> = query(&mut admin, redis::cmd("DUMP").arg(&key)).await;
        backup.push((key, dump));
    }
    store.apply(&[receive("4", "hb-c")]).await.expect("apply");
    assert_eq!(
        counts(store.clone()).await,
        [2, 4, 2, 0],
        "hb-c, new since the last read"
    );

    // Restored: hb-c is gone, and hb-d, counted next, takes its ordinal.
    flush(admin.clone()).await;
    for (key, dump) in &backup {
        let () = query(&mut admin, redis::cmd("RESTORE").arg(key).arg(0).arg(dump)).await;
    }
    // hb-a, counted before the backup, keeps its ordinal: the writer reads the restored list
    // whole, since it is not the one it cached.
    store
        .apply(&[receive("5", "hb-d"), receive("5a", "hb-a")])
        .await
        .expect("apply");
    assert_eq!(
        counts(store.clone()).await,
        [4, 4, 0, 2],
        "after a restore, through the store that cached hb-c's ordinal"
    );

    // Flushed, then counted again in another order, so every ordinal changes.
    flush(admin.clone()).await;
    store
        .apply(&[
            receive("6", "hb-d"),
            receive("7", "hb-c"),
            receive("8", "hb-b"),
            receive("9", "hb-a"),
        ])
        .await
        .expect("apply");
    store.apply(&[receive("10", "hb-a")]).await.expect("apply");
    assert_eq!(
        counts(store.clone()).await,
        [4, 2, 2, 2],
        "after a flush, through the store that cached the old ordinals"
    );
    let fresh = connect(server.url(), "ordinals").await;
    assert_eq!(
        counts(fresh).await,
        [4, 2, 2, 2],
        "a store with nothing cached"
    );
    flush(admin).await;
    assert_eq!(
        counts(store).await,
        [0, 0, 0, 0],
        "nothing after another flush"
    );
}

/// An online set is sent only the procedures it lacks as far as the write cache knows: a
/// procedure a set was given is not sent again while the tree is this store's alone; a new
/// one is; a store that knows nothing of the sets sends what it is told (`SADD` changes
/// nothing then). (A procedure a correction takes out is sent again: the conformance
/// suite's `corrections_take_back_exactly`.)
#[tokio::test]
async fn redis_store_adds_to_an_online_set_only_what_it_lacks() {
    let server = RedisServer::start().expect("redis-server starts");
    let store = connect(server.url(), "online").await;
    let mut admin = admin(&server).await;
    let mut sadds = async || calls(&mut admin, "sadd").await;
    let day = time::macros::date!(2026 - 04 - 09);
    let online = |event: &str, procedure: &str| {
        let counters = [RECEIVED, govpulse_core::Counter::ReceivedOnline];
        conformance::write(
            event,
            &["hb-u01", "hoa-binh"],
            day,
            &counters,
            Some(procedure),
        )
    };

    store.apply(&[online("a1", "p1")]).await.expect("apply");
    // One command per set: the unit's and the province's day, month, quarter and year.
    let sets = sadds().await;
    assert_eq!(sets, 8);
    store.apply(&[online("a2", "p1")]).await.expect("apply");
    assert_eq!(sadds().await, sets, "every set holds p1 already");
    store.apply(&[online("a3", "p2")]).await.expect("apply");
    assert_eq!(sadds().await, 2 * sets, "no set holds p2");
    let fresh = connect(server.url(), "online").await;
    fresh.apply(&[online("a4", "p1")]).await.expect("apply");
    assert_eq!(sadds().await, 3 * sets, "a store with nothing cached");
    store.apply(&[online("a5", "p2")]).await.expect("apply");
    assert_eq!(
        sadds().await,
        4 * sets,
        "another store wrote the tree since"
    );

    let keys: Vec<String> = query(&mut admin, redis::cmd("KEYS").arg("online:*:o:*")).await;
    assert_eq!(keys.len() as u64, sets);
    for key in keys {
        let mut members: Vec<String> = query(&mut admin, redis::cmd("SMEMBERS").arg(&key)).await;
        members.sort();
        assert_eq!(members, ["p1", "p2"], "{key}");
    }
}

#[tokio::test]
async fn redis_store_packed_roll_ups_add_up_whether_written_slot_by_slot_or_whole() {
    let server = RedisServer::start().expect("redis-server starts");
    // Without the write cache, as the rule alone decides.
    let store = RedisStore::connect(govpulse_store::RedisStoreConfig {
        url: server.url(),
        prefix: "packed".to_owned(),
        write_cache_bytes: 0,
    })
    .await
    .expect("connects");
    let units: Vec<String> = (0..12).map(|i| format!("hb-u{i:02}")).collect();
    let units: Vec<&str> = units.iter().map(String::as_str).collect();
    let every_unit = |batch: &str| -> Vec<_> {
        units
            .iter()
            .map(|unit| received_by(&format!("{batch}-{unit}"), unit))
            .collect()
    };
    let one_unit = |batch: &str| -> Vec<_> {
        (0..3)
            .map(|n| received_by(&format!("{batch}{n}"), "hb-u05"))
            .collect()
    };
    let counts = |store| received_under_hoa_binh(store, &units);
    let mut admin = admin(&server).await;
    let mut bitfields = async || calls(&mut admin, "bitfield").await;

    // Every slot of a new roll-up changes: written whole. (A year reads as its months, so
    // each event counts twice below.)
    store.apply(&every_unit("a")).await.expect("apply");
    assert_eq!(counts(&store).await, [2; 12]);
    assert_eq!(bitfields().await, 0, "written whole");
    // One slot of 13 (the list's mark and 12 units), less than half: incremented, the rest
    // not read.
    store.apply(&one_unit("b")).await.expect("apply");
    let mut expected = [2; 12];
    expected[5] = 8;
    assert_eq!(counts(&store).await, expected);
    assert_eq!(bitfields().await, 1, "incremented slot by slot");
    // Every slot again: read with the increment in it and written whole.
    store.apply(&every_unit("c")).await.expect("apply");
    let expected = expected.map(|n| n + 2);
    assert_eq!(counts(&store).await, expected);
    assert_eq!(bitfields().await, 1, "written whole again");

    // With the write cache, a tree this store alone writes: its roll-ups are kept, and
    // written whole from the cache even when one slot changes.
    let cached = connect(server.url(), "packed-cached").await;
    cached.apply(&every_unit("a")).await.expect("apply");
    cached.apply(&one_unit("b")).await.expect("apply");
    cached.apply(&one_unit("d")).await.expect("apply");
    let mut expected = [2; 12];
    expected[5] = 14;
    assert_eq!(counts(&cached).await, expected);
    assert_eq!(bitfields().await, 1, "no increment");
    // A roll-up the cache does not hold yet (another month) of a tree whose cache is
    // current: read once and written whole, as the tree's next batches find it cached.
    let may = time::macros::date!(2026 - 05 - 09);
    let in_may: Vec<_> = (0..3)
        .map(|n| {
            conformance::write(
                &format!("e{n}"),
                &["hb-u05", "hoa-binh"],
                may,
                &[RECEIVED],
                None,
            )
        })
        .collect();
    cached.apply(&in_may).await.expect("apply");
    assert_eq!(bitfields().await, 1, "a new roll-up written whole");
}

/// An upgrade keeps reading what the previous version wrote, and the previous version keeps
/// reading what this one writes (replicas of both run side by side in a rolling upgrade):
/// an agency's accepted events per day, written by hand as the previous version wrote them
/// (`<agency>#n`, the day then 35 counts), read as they were with no rejections, and left
/// byte for byte as they were by a batch of rejections (which go to `<agency>#r`).
#[tokio::test]
async fn redis_store_reads_and_keeps_the_previous_versions_records_of_events_per_day() {
    use govpulse_core::{AgencyId, freshness::DailyEvents};
    use govpulse_store::{AgencyKey, RejectedWrite};

    let server = RedisServer::start().expect("redis-server starts");
    let store = connect(server.url(), "upgrade").await;
    let mut admin = admin(&server).await;
    let now = time::OffsetDateTime::now_utc();
    let today = govpulse_core::period::vietnam_day(now);
    let yesterday = today - time::Duration::days(1);
    // 7 events accepted today, 5 yesterday.
    let epoch = time::macros::date!(1970 - 01 - 01);
    let mut previous = u16::try_from((today - epoch).whole_days())
        .expect("a day two bytes hold")
        .to_be_bytes()
        .to_vec();
    for count in [7u32, 5].into_iter().chain([0; 33]) {
        previous.extend_from_slice(&count.to_be_bytes());
    }
    let () = query(
        &mut admin,
        redis::cmd("HSET")
            .arg("upgrade:{hoa-binh}:s")
            .arg("hoa-binh#n")
            .arg(&previous),
    )
    .await;
    let key = AgencyKey {
        root: AgencyId::parse("hoa-binh").expect("id"),
        agency: AgencyId::parse("hoa-binh").expect("id"),
    };
    let read = |store: RedisStore| {
        let key = key.clone();
        async move {
            store
                .read_activity(&[key], &[yesterday, today])
                .await
                .expect("read_activity")
                .remove(0)
                .days
        }
    };
    let day = |day, accepted, rejected| DailyEvents {
        day,
        accepted,
        rejected,
    };
    assert_eq!(
        read(store.clone()).await,
        [day(yesterday, 5, 0), day(today, 7, 0)]
    );
    store
        .apply_with_rejected(
            &[],
            &[RejectedWrite {
                chain: vec![key.agency.clone()].into(),
                count: 2,
                rejected_at: now,
            }],
        )
        .await
        .expect("apply");
    assert_eq!(read(store).await, [day(yesterday, 5, 0), day(today, 7, 2)]);
    let kept: Vec<u8> = query(
        &mut admin,
        redis::cmd("HGET")
            .arg("upgrade:{hoa-binh}:s")
            .arg("hoa-binh#n"),
    )
    .await;
    assert_eq!(kept, previous, "what the previous version reads, unchanged");
}

/// A unit's day counted before 2026-12-06 kept its record in a key of its own beside its
/// procedures' list: such a store keeps every figure (reads add the record to the list's own
/// entry, the unit's read alone and its parent's read of its children alike), and a
/// retraction of an event counted then takes its counts back, moving the old record into
/// the list.
#[tokio::test]
async fn redis_store_reads_and_takes_back_a_units_day_kept_in_the_layout_before() {
    use govpulse_core::{AgencyId, Bucket, EventId, Needs};

    let server = RedisServer::start().expect("redis-server starts");
    let store = connect(server.url(), "before").await;
    let day = time::macros::date!(2026 - 08 - 15);
    let unit = ["hb-dept", "hoa-binh"];
    let received = conformance::write("e1", &unit, day, &[RECEIVED], None);
    let other = conformance::write("e2", &unit, day, &[RECEIVED], None);
    assert_eq!(
        store
            .apply(&[received.clone(), other])
            .await
            .expect("apply"),
        [
            govpulse_store::Applied::Accepted,
            govpulse_store::Applied::Accepted
        ]
    );
    // The list begins with the unit's own entry: an empty name (length 0), then its record
    // (length 1: 2 received). Put back as the layout before kept it: the record apart, and
    // the tree's version moved as that version's writer moved it (the writer's cache of the
    // tree is then not used).
    let list_key = "before:{hoa-binh}:p:hb-dept:d20260815";
    let record_key = "before:{hoa-binh}:n:hb-dept:d20260815";
    let mut admin = admin(&server).await;
    let list: Vec<u8> = query(&mut admin, redis::cmd("GET").arg(list_key)).await;
    assert_eq!(list[..3], [0, 1, 2], "the own entry first");
    let () = redis::pipe()
        .cmd("MSET")
        .arg(record_key)
        .arg(&[2u8][..])
        .arg(list_key)
        .arg(&list[3..])
        .ignore()
        .cmd("INCR")
        .arg("before:{hoa-binh}:v")
        .ignore()
        .query_async(&mut admin)
        .await
        .expect("MSET, INCR");

    let id = |raw: &str| AgencyId::parse(raw).expect("a valid id");
    let parent = govpulse_store::AgencyKey {
        root: id("hoa-binh"),
        agency: id("hoa-binh"),
    };
    let children = [id("hb-dept"), id("hb-quiet")];
    let received_that_day = async || {
        let key = govpulse_store::AgencyKey {
            root: id("hoa-binh"),
            agency: id("hb-dept"),
        };
        let alone = store
            .read(GroupsRead {
                groups: &[vec![key]],
                buckets: &[Bucket::Day(day)],
                needs: &Needs::everything(),
            })
            .await
            .expect("read")[0]
            .get(RECEIVED);
        let as_children = store
            .read_children(ChildrenRead {
                of: Children {
                    parent: &parent,
                    children: &children,
                },
                buckets: &[Bucket::Day(day)],
                counters: &[RECEIVED],
            })
            .await
            .expect("read children");
        assert_eq!(
            as_children
                .iter()
                .map(|c| c.get(RECEIVED))
                .collect::<Vec<_>>(),
            [alone, 0],
            "the unit read alone and as its parent's child"
        );
        alone
    };
    assert_eq!(
        received_that_day().await,
        2,
        "the record kept apart is read"
    );

    // e1 never happened: its retraction takes back what the old record holds.
    let mut retraction = conformance::write("c1", &unit, day, &[], None);
    retraction.dossier = received.dossier.clone();
    retraction.corrects = Some(EventId::parse("e1").expect("a valid id"));
    retraction.stage = None;
    assert_eq!(
        store.apply(&[retraction]).await.expect("apply"),
        [govpulse_store::Applied::Accepted]
    );
    assert_eq!(received_that_day().await, 1);
    let exists: bool = query(&mut admin, redis::cmd("EXISTS").arg(record_key)).await;
    assert!(!exists, "the record kept apart moved into the list");
    assert_eq!(received_that_day().await, 1);
}
