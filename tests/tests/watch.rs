//! Live rankings end to end: change notices across aggregate replicas, identical rankings
//! from two ranking replicas, resuming from a revision, and a subscriber that stops reading.

use std::time::{Duration, Instant};

use govpulse_e2e::{
    Deployment, LiveRows, Options, RedisServer, Service, lazy, next_message, next_within, received,
    shown_rows, two_days_ago_noon,
};
use govpulse_proto::{
    aggregate::{WatchChangesRequest, aggregate_service_client::AggregateServiceClient},
    catalog::Block,
    event::DossierEvent,
    ingest::{SubmitEventsRequest, ingest_service_client::IngestServiceClient},
    ranking::{
        GetRankingRequest, RankingQuery, ResetReason, WatchRankingRequest, WatchRankingResponse,
        ranking_query::Selection, ranking_service_client::RankingServiceClient,
        watch_ranking_response::Event,
    },
};
use prost::Message;
use time::OffsetDateTime;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// Options where only change notices (never the periodic refresh) can update a ranking
/// within a test's waits.
fn notices_only() -> Options {
    Options {
        refresh_ms: Some(600_000),
        ..Options::default()
    }
}

/// An aggregate counting into `redis` under `prefix`, and an ingest and a ranking on it, all
/// with [`notices_only`]'s options.
async fn one_of_each(redis: &RedisServer, prefix: &str) -> (Service, Service, Service) {
    let options = notices_only();
    let aggregate = Service::aggregate(redis, prefix, &options).await;
    let ingest = Service::ingest(&aggregate, &options).await;
    let ranking = Service::ranking(&aggregate, &options).await;
    (aggregate, ingest, ranking)
}

/// Two aggregate replicas counting into `redis` under one `prefix`, and an ingest in front of
/// the first, all with [`notices_only`]'s options.
async fn two_replicas(redis: &RedisServer, prefix: &str) -> (Service, Service, Service) {
    let options = notices_only();
    let a = Service::aggregate(redis, prefix, &options).await;
    let b = Service::aggregate(redis, prefix, &options).await;
    let ingest = Service::ingest(&a, &options).await;
    (a, b, ingest)
}

/// Stops `services` in order, draining each.
async fn stop_all(services: impl IntoIterator<Item = Service>) {
    for service in services {
        service.stop().await;
    }
}

fn provinces(at: OffsetDateTime, selection: Option<Selection>) -> RankingQuery {
    RankingQuery {
        metric: "online-dossier-rate".into(),
        index: String::new(),
        block: Block::Province.into(),
        period: at.date().to_string(),
        selection,
        parent_id: String::new(),
        ..Default::default()
    }
}

async fn submit(ingest: Channel, events: Vec<DossierEvent>) {
    let reply = IngestServiceClient::new(ingest)
        .submit_events(SubmitEventsRequest { events })
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(reply.rejected, 0, "{reply:?}");
}

/// What the replica and resume tests start from: Lạng Sơn 7 of 8 receptions online, Quảng Ninh
/// 3 of 4, Ninh Bình 1 of 2.
const BASE: [(&str, usize, usize); 3] = [
    ("lang-son", 7, 8),
    ("quang-ninh", 3, 4),
    ("ninh-binh", 1, 2),
];

/// `online` of `total` receptions for each agency, ids prefixed with `tag`.
fn receptions(tag: &str, at: OffsetDateTime, counts: &[(&str, usize, usize)]) -> Vec<DossierEvent> {
    counts
        .iter()
        .flat_map(|(agency, online, total)| {
            (0..*total)
                .map(move |i| received(&format!("{tag}-{agency}-{i}"), agency, at, i < *online))
        })
        .collect()
}

async fn watch(
    ranking: Channel,
    query: &RankingQuery,
    resume_revision: u64,
) -> tonic::Streaming<WatchRankingResponse> {
    RankingServiceClient::new(ranking)
        .watch_ranking(WatchRankingRequest {
            query: Some(query.clone()),
            resume_revision,
        })
        .await
        .expect("watch")
        .into_inner()
}

/// Reads the snapshot into `rows`, up to SnapshotComplete.
async fn read_snapshot(stream: &mut tonic::Streaming<WatchRankingResponse>, rows: &mut LiveRows) {
    loop {
        let message = next_message(stream).await;
        rows.apply(&message);
        if rows.complete {
            return;
        }
    }
}

/// Reads until a changes message (heartbeats skipped), applies it and returns when it came.
async fn read_change(
    stream: &mut tonic::Streaming<WatchRankingResponse>,
    rows: &mut LiveRows,
    limit: Duration,
) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        let message = next_within(stream, deadline.saturating_duration_since(Instant::now())).await;
        rows.apply(&message);
        match message.event {
            Some(Event::Changes(_)) => return Instant::now(),
            Some(Event::Heartbeat(_)) => {}
            other => panic!("a change or a heartbeat, got {other:?}"),
        }
    }
}

/// Reads until `rows` is at `revision`.
async fn read_until(
    stream: &mut tonic::Streaming<WatchRankingResponse>,
    rows: &mut LiveRows,
    revision: u64,
) {
    while rows.revision < revision {
        let message = next_message(stream).await;
        rows.apply(&message);
    }
    assert_eq!(
        rows.revision, revision,
        "the stream passes through {revision}"
    );
}

async fn get_ranking(ranking: Channel, query: &RankingQuery) -> Vec<govpulse_e2e::ShownRow> {
    let response = RankingServiceClient::new(ranking)
        .get_ranking(GetRankingRequest {
            query: Some(query.clone()),
        })
        .await
        .expect("ranking")
        .into_inner();
    shown_rows(&response.rows)
}

#[tokio::test]
async fn an_event_applied_by_one_aggregate_replica_reaches_a_ranking_following_another_within_a_second()
 {
    let redis = RedisServer::start().expect("redis-server starts");
    let (a, b, ingest) = two_replicas(&redis, "replicas").await;
    let ranking = Service::ranking(&b, &notices_only()).await;
    let at = two_days_ago_noon();

    // Aggregate B tells its own subscribers about a batch A applied.
    let mut b_changes = AggregateServiceClient::new(b.channel())
        .watch_changes(WatchChangesRequest {})
        .await
        .expect("watch changes")
        .into_inner();
    submit(
        ingest.channel(),
        receptions("first", at, &[("lang-son", 3, 4), ("ninh-binh", 1, 2)]),
    )
    .await;
    let notice = tokio::time::timeout(Duration::from_secs(1), b_changes.next())
        .await
        .expect("B relays A's notice within 1 s")
        .expect("open")
        .expect("ok");
    assert!(
        notice.agency_ids.contains(&"lang-son".to_owned()),
        "{notice:?}"
    );
    assert_eq!(notice.days, [at.date().to_string()]);

    // A ranking replica following B sees A's next batch within a second.
    let query = provinces(at, Some(Selection::Top(3)));
    let mut stream = watch(ranking.channel(), &query, 0).await;
    let mut rows = LiveRows::default();
    read_snapshot(&mut stream, &mut rows).await;
    let names: Vec<String> = rows.rows().into_iter().map(|r| r.1).collect();
    assert_eq!(names, ["lang-son", "ninh-binh"]);
    let sent = Instant::now();
    submit(
        ingest.channel(),
        receptions("second", at, &[("ninh-binh", 5, 5)]),
    )
    .await;
    let seen = read_change(&mut stream, &mut rows, Duration::from_secs(1)).await;
    let waited = seen - sent;
    assert!(waited < Duration::from_secs(1), "seen after {waited:?}");
    let names: Vec<String> = rows.rows().into_iter().map(|r| r.1).collect();
    assert_eq!(names, ["ninh-binh", "lang-son"], "6 of 7 beats 3 of 4");

    stop_all([ranking, ingest, a, b]).await;
}

#[tokio::test]
async fn two_ranking_replicas_give_identical_rankings_and_live_states() {
    let redis = RedisServer::start().expect("redis-server starts");
    let (a, b, ingest) = two_replicas(&redis, "identical").await;
    let options = notices_only();
    let first = Service::ranking(&a, &options).await;
    let second = Service::ranking(&b, &options).await;
    let at = two_days_ago_noon();
    let base = [BASE.as_slice(), &[("phu-tho", 1, 2)]].concat();
    submit(ingest.channel(), receptions("base", at, &base)).await;
    let query = provinces(at, None);
    let once = get_ranking(first.channel(), &query).await;
    assert_eq!(
        once.len(),
        province_ids(&a, at).await.len(),
        "every province, with data or not"
    );
    assert_eq!(once, get_ranking(second.channel(), &query).await);

    let mut one = watch(first.channel(), &query, 0).await;
    let mut two = watch(second.channel(), &query, 0).await;
    let (mut one_rows, mut two_rows) = (LiveRows::default(), LiveRows::default());
    read_snapshot(&mut one, &mut one_rows).await;
    read_snapshot(&mut two, &mut two_rows).await;
    assert_eq!(one_rows.rows(), once);
    assert_eq!(two_rows.rows(), once);

    submit(
        ingest.channel(),
        receptions("more", at, &[("phu-tho", 4, 4), ("quang-ninh", 0, 2)]),
    )
    .await;
    read_change(&mut one, &mut one_rows, Duration::from_secs(2)).await;
    read_change(&mut two, &mut two_rows, Duration::from_secs(2)).await;
    let now = get_ranking(first.channel(), &query).await;
    assert_ne!(now, once, "the batch moved the ranking");
    assert_eq!(now, get_ranking(second.channel(), &query).await);
    assert_eq!(one_rows.rows(), now);
    assert_eq!(two_rows.rows(), now);
    assert_eq!(one_rows.ranked_count, two_rows.ranked_count);

    stop_all([first, second, ingest, a, b]).await;
}

#[tokio::test]
async fn a_subscriber_that_reconnects_with_its_revision_gets_no_gap_and_no_duplicate() {
    let redis = RedisServer::start().expect("redis-server starts");
    let (aggregate, ingest, ranking) = one_of_each(&redis, "resume").await;
    let at = two_days_ago_noon();
    submit(ingest.channel(), receptions("base", at, &BASE)).await;
    let query = provinces(at, Some(Selection::Top(3)));
    // The observer stays connected throughout and sees every state.
    let mut observer = watch(ranking.channel(), &query, 0).await;
    let mut seen = LiveRows::default();
    read_snapshot(&mut observer, &mut seen).await;
    let mut client = watch(ranking.channel(), &query, 0).await;
    let mut shown = LiveRows::default();
    read_snapshot(&mut client, &mut shown).await;

    submit(
        ingest.channel(),
        receptions("c1", at, &[("ninh-binh", 5, 5)]),
    )
    .await;
    read_change(&mut client, &mut shown, Duration::from_secs(2)).await;
    read_until(&mut observer, &mut seen, shown.revision).await;
    let left_at = shown.revision;
    drop(client);

    // Two changes while the client is away: Phú Thọ enters first (9 of 9) and pushes
    // Quảng Ninh out; Lạng Sơn (7 of 10) falls below Quảng Ninh (3 of 4) and out.
    submit(ingest.channel(), receptions("c2", at, &[("phu-tho", 9, 9)])).await;
    read_change(&mut observer, &mut seen, Duration::from_secs(2)).await;
    submit(
        ingest.channel(),
        receptions("c3", at, &[("lang-son", 0, 2)]),
    )
    .await;
    read_change(&mut observer, &mut seen, Duration::from_secs(2)).await;
    assert_ne!(seen.rows(), shown.rows());

    // Resumed: one changes message, no snapshot, to exactly the observer's state.
    let mut client = watch(ranking.channel(), &query, left_at).await;
    let first = next_message(&mut client).await;
    assert!(
        matches!(first.event, Some(Event::Changes(_))),
        "a resumed stream starts with the changes since its revision, got {first:?}"
    );
    assert_eq!(first.revision, seen.revision);
    shown.apply(&first);
    assert_eq!(shown.rows(), seen.rows(), "no gap");

    // And goes on: the next change (Quảng Ninh at 3 of 5 out, Lạng Sơn back) arrives once,
    // after the resumed state.
    submit(
        ingest.channel(),
        receptions("c4", at, &[("quang-ninh", 0, 1)]),
    )
    .await;
    read_change(&mut observer, &mut seen, Duration::from_secs(2)).await;
    let changes_before = shown.changes;
    read_until(&mut client, &mut shown, seen.revision).await;
    assert_eq!(shown.changes, changes_before + 1, "no duplicate");
    assert_eq!(shown.rows(), seen.rows());
    assert_eq!(shown.rows(), get_ranking(ranking.channel(), &query).await);

    // Resuming from the current state: one message without rows, at that revision.
    drop(client);
    let mut client = watch(ranking.channel(), &query, shown.revision).await;
    let same = next_message(&mut client).await;
    let Some(Event::Changes(nothing)) = &same.event else {
        panic!("a changes message, got {same:?}")
    };
    assert!(nothing.changes.is_empty());
    assert_eq!(same.revision, shown.revision);

    // The same revision on a restarted replica (its history is gone): a reset, then a
    // fresh snapshot of the same ranking.
    let addr = ranking.addr();
    drop(observer);
    drop(client);
    ranking.stop().await;
    let ranking = Service::ranking_on(&aggregate, addr, &notices_only()).await;
    let mut client = watch(ranking.channel(), &query, shown.revision).await;
    let reset = next_message(&mut client).await;
    let Some(Event::Reset(why)) = &reset.event else {
        panic!("a reset first, got {reset:?}")
    };
    assert_eq!(why.requested_revision, shown.revision);
    assert_ne!(why.reason(), ResetReason::Unspecified);
    let mut fresh = LiveRows::default();
    fresh.apply(&reset);
    read_snapshot(&mut client, &mut fresh).await;
    assert_eq!(fresh.rows(), seen.rows());

    stop_all([ranking, ingest, aggregate]).await;
}

/// Bytes a subscriber's stream is sent, messages encoded as on the wire.
fn wire_bytes(message: &WatchRankingResponse) -> usize {
    message.encoded_len() + 5
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_neither_delays_another_nor_holds_more_than_a_bound() {
    const UPDATES: usize = 100;
    /// The slow subscriber's HTTP/2 receive window: what it lets the server send ahead.
    const WINDOW: u32 = 16 * 1024;
    /// tonic encodes a stream's ready messages into chunks of up to 32 KiB.
    const ENCODER_CHUNK: usize = 32 * 1024;
    let deployment = Deployment::start_alone_with(
        "slow",
        Options {
            debounce_ms: Some(10),
            ..notices_only()
        },
    )
    .await;
    let at = two_days_ago_noon();
    let ids = province_ids_of(deployment.aggregate(), at).await;
    let batch = |tag: &str, online: bool| -> Vec<DossierEvent> {
        ids.iter()
            .map(|id| received(&format!("{tag}-{id}"), id, at, online))
            .collect()
    };
    submit(lazy(deployment.ingest_addr()), batch("base", true)).await;
    let query = provinces(at, None);

    let slow_channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", deployment.ranking_addr()))
            .expect("valid url")
            .initial_stream_window_size(Some(WINDOW))
            .initial_connection_window_size(Some(WINDOW))
            .connect()
            .await
            .expect("connects");
    let mut slow = watch(slow_channel, &query, 0).await;
    let mut fast = watch(lazy(deployment.ranking_addr()), &query, 0).await;
    let mut fast_rows = LiveRows::default();
    read_snapshot(&mut fast, &mut fast_rows).await;

    // Every update changes every province's value: one row per province per changes message.
    let mut largest = 0;
    let mut slowest = Duration::ZERO;
    for update in 0..UPDATES {
        let sent = Instant::now();
        submit(
            lazy(deployment.ingest_addr()),
            batch(&format!("u{update}"), false),
        )
        .await;
        // Within a second of the update, whatever heartbeats come in between.
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let message = next_within(
                &mut fast,
                deadline.saturating_duration_since(Instant::now()),
            )
            .await;
            fast_rows.apply(&message);
            if let Some(Event::Changes(changes)) = &message.event {
                largest = largest.max(wire_bytes(&message));
                if changes.changes.len() == ids.len() {
                    break;
                }
            }
        }
        slowest = slowest.max(sent.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(1),
        "the reading subscriber saw every update within 1 s (slowest {slowest:?})"
    );
    assert_eq!(fast_rows.changes, UPDATES, "one changes message per update");

    // The slow subscriber now reads what was queued for it, up to the latest state.
    let mut slow_rows = LiveRows::default();
    let mut received_bytes = 0;
    let mut messages = 0;
    while slow_rows.revision < fast_rows.revision {
        let message = next_message(&mut slow).await;
        received_bytes += wire_bytes(&message);
        messages += 1;
        slow_rows.apply(&message);
    }
    assert_eq!(
        slow_rows.rows(),
        fast_rows.rows(),
        "it ends at the latest state"
    );
    assert!(
        slow_rows.changes < UPDATES,
        "its backlog collapsed: {} changes messages for {UPDATES} updates",
        slow_rows.changes
    );
    // All the server (and the network) held for it: the window it allowed, one encoder
    // chunk, the 4-message buffer, the message in hand and the collapsed one, the snapshot.
    let bound = WINDOW as usize + ENCODER_CHUNK + 8 * largest;
    assert!(
        UPDATES * largest > 2 * bound,
        "the updates outweigh the bound, so an unbounded backlog would fail this test"
    );
    assert!(
        received_bytes <= bound,
        "{received_bytes} bytes in {messages} messages were held for the slow subscriber; bound {bound} (an unbounded backlog would be about {})",
        UPDATES * largest
    );
    deployment.stop().await;
}

/// The provinces of the block on `at`'s day (34 since the 2025 merger).
async fn province_ids(aggregate: &Service, at: OffsetDateTime) -> Vec<String> {
    province_ids_of(AggregateServiceClient::new(aggregate.channel()), at).await
}

async fn province_ids_of(
    mut aggregate: AggregateServiceClient<Channel>,
    at: OffsetDateTime,
) -> Vec<String> {
    let snapshot = aggregate
        .get_block_snapshot(govpulse_proto::aggregate::GetBlockSnapshotRequest {
            block: Block::Province.into(),
            period: at.date().to_string(),
            metric: "online-dossier-rate".into(),
            ..Default::default()
        })
        .await
        .expect("snapshot")
        .into_inner();
    snapshot.agencies.into_iter().map(|a| a.agency_id).collect()
}

#[tokio::test]
async fn a_lone_subscriber_that_reconnects_soon_resumes_instead_of_starting_over() {
    let redis = RedisServer::start().expect("redis-server starts");
    let (aggregate, ingest, ranking) = one_of_each(&redis, "linger").await;
    let at = two_days_ago_noon();
    submit(
        ingest.channel(),
        receptions("base", at, &[("lang-son", 3, 4), ("ninh-binh", 1, 2)]),
    )
    .await;
    let query = provinces(at, Some(Selection::Top(3)));
    let mut client = watch(ranking.channel(), &query, 0).await;
    let mut shown = LiveRows::default();
    read_snapshot(&mut client, &mut shown).await;
    // Its only subscriber leaves (the server lets go of it as soon as the stream closes);
    // the live ranking lingers (30 s by default) and keeps following changes, so the
    // reconnect finds it instead of starting a new one without history.
    drop(client);
    submit(
        ingest.channel(),
        receptions("away", at, &[("ninh-binh", 5, 5)]),
    )
    .await;

    let mut client = watch(ranking.channel(), &query, shown.revision).await;
    let first = next_message(&mut client).await;
    assert!(
        matches!(first.event, Some(Event::Changes(_))),
        "resumed, not reset: {first:?}"
    );
    shown.apply(&first);
    let expected = get_ranking(ranking.channel(), &query).await;
    // The change made while it was away is in the first message or follows it.
    while shown.rows() != expected {
        let message = next_message(&mut client).await;
        shown.apply(&message);
    }
    assert_eq!(shown.rows()[0].1, "ninh-binh", "6 of 7 first");

    stop_all([ranking, ingest, aggregate]).await;
}
