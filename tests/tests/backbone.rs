//! The backbone, end to end: events through ingest, counted by aggregate in a real Redis,
//! read back as counts, rates and rankings computed by hand.

use govpulse_e2e::{
    Deployment, Options, RedisCluster, RedisServer, field_violation, fraction, next_message,
    provinces_by_online_rate, received, resolved, statuses, ts, two_days_ago_noon,
};
use govpulse_proto::{
    aggregate::{GetBlockSnapshotRequest, GetMetricsResponse},
    catalog::Block,
    event::{DossierEvent, DossierReceived, EventOutcome, OutcomeStatus, dossier_event::Kind},
    ingest::{StreamEventsRequest, SubmitEventsRequest},
    ranking::{RankingQuery, ranking_query::Selection, watch_ranking_response::Event},
};
use time::{Date, OffsetDateTime, macros::time};
use tokio_stream::StreamExt;

/// Lạng Sơn 7 of 8 online, Quảng Ninh 3 of 4, Ninh Bình 1 of 2; plus resolutions.
fn country_batch(at: OffsetDateTime) -> Vec<DossierEvent> {
    let mut events = Vec::new();
    for (agency, online, total) in [
        ("lang-son", 7, 8),
        ("quang-ninh", 3, 4),
        ("ninh-binh", 1, 2),
    ] {
        for i in 0..total {
            events.push(received(&format!("{agency}-r{i}"), agency, at, i < online));
        }
    }
    events.push(resolved("lang-son-s1", "lang-son", at, true));
    events.push(resolved("lang-son-s2", "lang-son", at, false));
    events
}

/// `total` receptions of `agency` at `at`, the first `online` of them online, with ids
/// `<tag>-<i>`.
fn receptions(
    tag: &str,
    agency: &str,
    at: OffsetDateTime,
    online: usize,
    total: usize,
) -> Vec<DossierEvent> {
    (0..total)
        .map(|i| received(&format!("{tag}-{i}"), agency, at, i < online))
        .collect()
}

/// A deployment of its own, keys under `prefix`, that has counted [`country_batch`] at noon
/// two days ago; and that noon.
async fn counting_the_country(prefix: &str) -> (Deployment, OffsetDateTime) {
    let deployment = Deployment::start_alone(prefix).await;
    let at = two_days_ago_noon();
    submit(&deployment, country_batch(at)).await;
    (deployment, at)
}

async fn metrics(deployment: &Deployment, agency: &str, period: &str) -> GetMetricsResponse {
    deployment
        .get_metrics(agency, period, &[])
        .await
        .expect("metrics")
}

/// The dossiers `agency` received over `period`, and how many of them online.
async fn counted(deployment: &Deployment, agency: &str, period: &str) -> (u64, u64) {
    let counters = metrics(deployment, agency, period)
        .await
        .counters
        .expect("counters");
    (counters.received, counters.received_online)
}

fn rate(response: &GetMetricsResponse, metric: &str) -> Option<(u64, u64, String)> {
    let value = response
        .metrics
        .iter()
        .find(|m| m.metric == metric)
        .expect("metric listed");
    value
        .rate
        .as_ref()
        .map(|r| (r.numerator, r.denominator, r.percent.clone()))
}

async fn submit(deployment: &Deployment, events: Vec<DossierEvent>) -> Vec<EventOutcome> {
    deployment.submit(events).await.outcomes
}

async fn province_ranking(
    deployment: &Deployment,
    period: &str,
    selection: Option<Selection>,
) -> Vec<(u32, String, String)> {
    let query = RankingQuery {
        selection,
        ..provinces_by_online_rate(period)
    };
    let response = deployment.get_ranking(query).await.expect("ranking");
    response
        .rows
        .into_iter()
        .map(|r| {
            (
                r.rank,
                r.agency_id,
                r.rate.map(|r| r.percent).unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn events_flow_from_ingest_to_exact_counts_rates_and_ranking() {
    let redis = RedisServer::start().expect("redis-server starts");
    events_flow_from_ingest_to_exact_counts_rates_and_ranking_on(&redis.url()).await;
}

#[tokio::test]
async fn events_flow_the_same_with_aggregate_on_a_redis_cluster() {
    let cluster = RedisCluster::start().expect("a three-master redis cluster starts");
    events_flow_from_ingest_to_exact_counts_rates_and_ranking_on(&cluster.url()).await;
}

async fn events_flow_from_ingest_to_exact_counts_rates_and_ranking_on(redis_url: &str) {
    let mut deployment = Deployment::start_on(redis_url, "flow", Options::default()).await;
    let at = two_days_ago_noon();
    let day = at.date().to_string();
    let batch = country_batch(at);

    let outcomes = submit(&deployment, batch.clone()).await;
    assert_eq!(
        statuses(&outcomes),
        vec![OutcomeStatus::Accepted; batch.len()]
    );

    let hoa_binh = metrics(&deployment, "lang-son", &day).await;
    let counters = hoa_binh.counters.expect("counters");
    assert_eq!(
        (
            counters.received,
            counters.received_online,
            counters.received_in_person
        ),
        (8, 7, 1)
    );
    assert_eq!(
        (
            counters.resolved,
            counters.resolved_on_time,
            counters.digitized
        ),
        (2, 1, 8)
    );
    assert_eq!(
        rate(&hoa_binh, "online-dossier-rate"),
        Some((7, 8, "87.50".into()))
    );
    assert_eq!(
        rate(&hoa_binh, "on-time-rate"),
        Some((1, 2, "50.00".into()))
    );
    assert_eq!(
        rate(&hoa_binh, "satisfaction-rate"),
        None,
        "no feedback is no data, not 0%"
    );
    // The same figures for the month and the year that contain the day.
    let month = &day[..7];
    assert_eq!(
        rate(
            &metrics(&deployment, "lang-son", month).await,
            "online-dossier-rate"
        ),
        Some((7, 8, "87.50".into()))
    );
    assert_eq!(
        rate(
            &metrics(&deployment, "lang-son", &day[..4]).await,
            "online-dossier-rate"
        ),
        Some((7, 8, "87.50".into()))
    );

    let top = province_ranking(&deployment, &day, Some(Selection::Top(3))).await;
    assert_eq!(
        top,
        [
            (1, "lang-son".to_owned(), "87.50".to_owned()),
            (2, "quang-ninh".to_owned(), "75.00".to_owned()),
            (3, "ninh-binh".to_owned(), "50.00".to_owned())
        ]
    );
    let all = province_ranking(&deployment, &day, None).await;
    assert_eq!(
        all.len(),
        34,
        "every province of today (34 since the 2025 merger) is listed"
    );
    assert!(
        all[3..]
            .iter()
            .all(|(rank, _, value)| *rank == 0 && value.is_empty()),
        "the rest have no data"
    );

    // The same batch again, as a sender retrying after a timeout: nothing counted twice.
    let again = submit(&deployment, batch.clone()).await;
    assert_eq!(
        statuses(&again),
        vec![OutcomeStatus::Duplicate; batch.len()]
    );
    assert_eq!(
        metrics(&deployment, "lang-son", &day).await.counters,
        Some(counters)
    );

    // aggregate restarts: the counts and the memory of event ids are in Redis.
    deployment.restart_aggregate().await;
    assert_eq!(
        metrics(&deployment, "lang-son", &day).await.counters,
        Some(counters)
    );
    let after_restart = submit(
        &deployment,
        vec![
            batch[0].clone(),
            received("lang-son-new", "lang-son", at, false),
        ],
    )
    .await;
    assert_eq!(
        statuses(&after_restart),
        [OutcomeStatus::Duplicate, OutcomeStatus::Accepted]
    );
    assert_eq!(
        rate(
            &metrics(&deployment, "lang-son", &day).await,
            "online-dossier-rate"
        ),
        Some((7, 9, "77.78".into()))
    );
    deployment.stop().await;
}

#[tokio::test]
async fn counts_survive_a_restart_of_every_service() {
    let redis = RedisServer::start().expect("redis-server starts");
    let at = two_days_ago_noon();
    let day = at.date().to_string();
    let batch = country_batch(at);
    let first = Deployment::start(&redis, "restart-all").await;
    submit(&first, batch.clone()).await;
    first.stop().await;

    let second = Deployment::start(&redis, "restart-all").await;
    let outcomes = submit(&second, batch.clone()).await;
    assert_eq!(
        statuses(&outcomes),
        vec![OutcomeStatus::Duplicate; batch.len()]
    );
    assert_eq!(counted(&second, "quang-ninh", &day).await, (4, 3));
    second.stop().await;
}

#[tokio::test]
async fn bad_events_are_rejected_one_by_one_and_never_counted() {
    let deployment = Deployment::start_alone("bad").await;
    let at = two_days_ago_noon();
    let day = at.date().to_string();
    let good = received("good-1", "lang-son", at, true);
    let made = std::cell::Cell::new(0);
    let with = |f: fn(&mut DossierEvent)| {
        made.set(made.get() + 1);
        let mut e = good.clone();
        e.event_id = format!("bad-{}", made.get());
        f(&mut e);
        e
    };
    let batch = vec![
        good.clone(),
        with(|e| e.agency_id = "atlantis".into()),
        with(|e| e.event_id.clear()),
        with(|e| {
            e.kind = Some(Kind::Received(DossierReceived {
                channel: 9,
                digitized: false,
                due_at: None,
            }))
        }),
        with(|e| e.occurred_at = ts(OffsetDateTime::now_utc() + time::Duration::days(30))),
        with(|e| e.procedure_id = "quang-ninh.p01".into()),
        with(|e| e.kind = None),
        with(|e| e.occurred_at = None),
    ];
    let outcomes = submit(&deployment, batch).await;
    let summary: Vec<(OutcomeStatus, &str)> = outcomes
        .iter()
        .map(|o| {
            (
                OutcomeStatus::try_from(o.status).expect("known"),
                o.field.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (OutcomeStatus::Accepted, ""),
            (OutcomeStatus::Rejected, "events[1].agency_id"),
            (OutcomeStatus::Rejected, "events[2].event_id"),
            (OutcomeStatus::Rejected, "events[3].received.channel"),
            (OutcomeStatus::Rejected, "events[4].occurred_at"),
            (OutcomeStatus::Rejected, "events[5].procedure_id"),
            (OutcomeStatus::Rejected, "events[6].kind"),
            (OutcomeStatus::Rejected, "events[7].occurred_at"),
        ]
    );
    assert!(
        outcomes[1].reason.contains("unknown agency \"atlantis\""),
        "{}",
        outcomes[1].reason
    );
    assert_eq!(outcomes[2].reason, "must not be empty");
    assert!(
        outcomes[3].reason.contains("unknown channel 9"),
        "{}",
        outcomes[3].reason
    );
    assert!(
        outcomes[4].reason.contains("ahead of the server clock"),
        "{}",
        outcomes[4].reason
    );
    assert!(
        outcomes[5].reason.contains("belongs to quang-ninh"),
        "{}",
        outcomes[5].reason
    );
    assert_eq!(
        counted(&deployment, "lang-son", &day).await,
        (1, 1),
        "only the valid event counted"
    );
    assert_eq!(counted(&deployment, "quang-ninh", &day).await.0, 0);
    deployment.stop().await;
}

#[tokio::test]
async fn an_oversized_batch_is_refused_whole_with_a_field_violation() {
    let deployment = Deployment::start_alone("oversized").await;
    let at = two_days_ago_noon();
    let status = deployment
        .ingest()
        .submit_events(SubmitEventsRequest {
            events: receptions("big", "lang-son", at, 1001, 1001),
        })
        .await
        .expect_err("refused");
    assert_eq!(
        field_violation(&status),
        (
            "events".to_owned(),
            "has 1001 events; the limit is 1000: split the batch".to_owned()
        )
    );
    assert_eq!(
        counted(&deployment, "lang-son", &at.date().to_string())
            .await
            .0,
        0,
        "nothing of a refused batch is counted"
    );
    deployment.stop().await;
}

#[tokio::test]
async fn stream_events_acknowledges_every_batch_in_order() {
    let deployment = Deployment::start_alone("stream").await;
    let at = two_days_ago_noon();
    let first = receptions("s", "thanh-hoa", at, 5, 10);
    let oversized = receptions("o", "thanh-hoa", at, 1001, 1001);
    let requests = vec![
        StreamEventsRequest {
            batch_id: 7,
            events: first.clone(),
        },
        StreamEventsRequest {
            batch_id: 8,
            events: oversized,
        },
        StreamEventsRequest {
            batch_id: 9,
            events: first,
        },
    ];
    let acks: Vec<_> = deployment
        .ingest()
        .stream_events(tokio_stream::iter(requests))
        .await
        .expect("stream opens")
        .into_inner()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("every ack");
    let tallies: Vec<(u64, u32, u32, u32)> = acks
        .iter()
        .map(|a| (a.batch_id, a.accepted, a.duplicate, a.rejected))
        .collect();
    assert_eq!(tallies, [(7, 10, 0, 0), (8, 0, 0, 1001), (9, 0, 10, 0)]);
    assert_eq!(acks[1].outcomes[0].field, "events");
    let thanh_hoa = counted(&deployment, "thanh-hoa", &at.date().to_string()).await;
    assert_eq!(thanh_hoa, (10, 5));
    deployment.stop().await;
}

#[tokio::test]
async fn a_block_snapshot_lists_every_agency_of_the_block() {
    let (deployment, at) = counting_the_country("snapshot").await;
    let snapshot = deployment
        .aggregate()
        .get_block_snapshot(GetBlockSnapshotRequest {
            block: Block::Ministry.into(),
            period: at.date().to_string(),
            metric: String::new(),
            ..Default::default()
        })
        .await
        .expect("snapshot")
        .into_inner();
    assert_eq!(snapshot.agencies.len(), 21);
    assert!(
        snapshot
            .agencies
            .iter()
            .all(|a| a.counters.as_ref().is_some_and(|c| c.received == 0))
    );
    let status = deployment
        .aggregate()
        .get_block_snapshot(GetBlockSnapshotRequest {
            block: 0,
            period: "2026-13".into(),
            metric: String::new(),
            ..Default::default()
        })
        .await
        .expect_err("invalid");
    assert_eq!(field_violation(&status).0, "block");
    deployment.stop().await;
}

#[tokio::test]
async fn watch_ranking_sends_the_snapshot_then_each_change() {
    let (deployment, at) = counting_the_country("watch").await;
    let query = RankingQuery {
        selection: Some(Selection::Top(3)),
        ..provinces_by_online_rate(at.date().to_string())
    };
    let mut stream = deployment.watch_ranking(query).await;
    let first = next_message(&mut stream).await;
    let Some(Event::Snapshot(snapshot)) = first.event else {
        panic!("a snapshot first, got {first:?}")
    };
    let ids: Vec<&str> = snapshot.rows.iter().map(|r| r.agency_id.as_str()).collect();
    assert_eq!(ids, ["lang-son", "quang-ninh", "ninh-binh"]);
    let complete = next_message(&mut stream).await;
    assert!(matches!(complete.event, Some(Event::SnapshotComplete(_))));
    assert_eq!(complete.revision, first.revision);

    // Ninh Bình gets 5 more online dossiers: 6 of 7 = 85.71%, second place.
    let sent = OffsetDateTime::now_utc();
    submit(&deployment, receptions("nb-more", "ninh-binh", at, 5, 5)).await;
    // Heartbeats keep coming while nothing changes: the change has a deadline of its own.
    let change = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let message = next_message(&mut stream).await;
            match message.event {
                Some(Event::Heartbeat(_)) => assert_eq!(
                    message.revision, first.revision,
                    "heartbeats repeat the revision"
                ),
                Some(Event::Changes(changes)) => break (message.revision, changes),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("the change arrives within 30 s");
    let waited = OffsetDateTime::now_utc() - sent;
    assert!(
        waited < time::Duration::seconds(1),
        "the change arrived after {waited}"
    );
    assert!(change.0 > first.revision, "revisions grow");
    let moved: Vec<(&str, u32, u32)> = change
        .1
        .changes
        .iter()
        .map(|c| {
            (
                c.row.as_ref().map_or("", |r| r.agency_id.as_str()),
                c.previous_rank,
                c.row.as_ref().map_or(0, |r| r.rank),
            )
        })
        .collect();
    assert_eq!(moved, [("ninh-binh", 3, 2), ("quang-ninh", 2, 3)]);
    deployment.stop().await;
}

#[tokio::test]
async fn ranking_rejects_bad_queries_naming_the_field() {
    let deployment = Deployment::start_alone("queries").await;
    let cases = [
        (
            RankingQuery {
                metric: "online-rate".into(),
                ..provinces_by_online_rate("2026")
            },
            "query.metric",
        ),
        (
            RankingQuery {
                block: 0,
                ..provinces_by_online_rate("2026")
            },
            "query.block",
        ),
        (provinces_by_online_rate("2026-Q5"), "query.period"),
        (
            RankingQuery {
                selection: Some(Selection::Top(0)),
                ..provinces_by_online_rate("2026")
            },
            "query.top",
        ),
    ];
    for (query, field) in cases {
        let status = deployment.get_ranking(query).await.expect_err("invalid");
        assert_eq!(field_violation(&status).0, field);
    }
    deployment.stop().await;
}

#[tokio::test]
async fn open_dossiers_past_their_due_time_are_the_backlog() {
    let deployment = Deployment::start_alone("backlog").await;
    let at = two_days_ago_noon();
    let with_due = |id: &str, due: OffsetDateTime| {
        let mut event = received(id, "lang-son", at, true);
        if let Some(Kind::Received(r)) = event.kind.as_mut() {
            r.due_at = ts(due);
        }
        event
    };
    let yesterday = at + time::Duration::days(1);
    let next_week = at + time::Duration::days(9);
    // Late and open; late but resolved (the resolution arrives first); not due yet.
    let late = with_due("late", yesterday);
    let resolved_first = DossierEvent {
        event_id: "done-res".into(),
        ..resolved("done", "lang-son", at, true)
    };
    let done = with_due("done", yesterday);
    let not_due = with_due("not-due", next_week);
    submit(&deployment, vec![resolved_first]).await;
    let outcomes = submit(&deployment, vec![late, done, not_due]).await;
    assert_eq!(statuses(&outcomes), vec![OutcomeStatus::Accepted; 3]);
    let report = metrics(&deployment, "lang-son", "ytd").await;
    assert_eq!(report.open_past_due, 1, "only the late open dossier");
    // Today's period ends with the late dossier still open: it counts as late.
    let today = govpulse_core::period::vietnam_day(OffsetDateTime::now_utc()).to_string();
    let today = metrics(&deployment, "lang-son", &today).await;
    assert_eq!(
        today.counters.as_ref().map(|c| c.open_past_due_at_end),
        Some(1)
    );
    let on_time = today
        .metrics
        .iter()
        .find(|m| m.metric == "on-time-rate")
        .and_then(|m| fraction(m.rate.as_ref()));
    assert_eq!(
        on_time,
        Some((0, 1)),
        "no resolution today, one dossier late"
    );
    deployment.stop().await;
}

#[tokio::test]
async fn rankings_show_movement_and_keep_small_agencies_apart() {
    let options = govpulse_e2e::Options {
        min_volume: 10,
        horizon_days: Some(800),
        ..Default::default()
    };
    let deployment = Deployment::start_alone_with("movement", options).await;
    // Two consecutive months, well in the past.
    let before = OffsetDateTime::now_utc() - time::Duration::days(120);
    let (month, previous_month) = {
        let vn = |t: OffsetDateTime| t.to_offset(govpulse_core::period::VIETNAM).date();
        let earlier = vn(before);
        let later = (earlier.replace_day(1).expect("day 1") + time::Duration::days(40))
            .replace_day(15)
            .expect("day 15");
        (later, earlier.replace_day(15).expect("day 15"))
    };
    let noon = |d: Date| {
        d.with_time(time!(12:00))
            .assume_offset(govpulse_core::period::VIETNAM)
    };
    let mut events = Vec::new();
    let mut batch = |tag: &str, agency: &str, at: OffsetDateTime, online: usize, total: usize| {
        events.extend(
            (0..total).map(|i| received(&format!("{tag}-{agency}-{i}"), agency, at, i < online)),
        );
    };
    // The month before: Lạng Sơn 1st (9 of 10 online), Quảng Ninh 2nd (5 of 10).
    batch("p", "quang-ninh", noon(previous_month), 5, 10);
    batch("p", "lang-son", noon(previous_month), 9, 10);
    // This month: Quảng Ninh overtakes; Thanh Hóa is new; Ninh Bình has 3 dossiers, all
    // online (100%), under the minimum of 10.
    batch("m", "quang-ninh", noon(month), 9, 10);
    batch("m", "lang-son", noon(month), 6, 10);
    batch("m", "thanh-hoa", noon(month), 7, 10);
    batch("m", "ninh-binh", noon(month), 3, 3);
    submit(&deployment, events).await;

    let period = format!("{:04}-{:02}", month.year(), u8::from(month.month()));
    let response = deployment
        .get_ranking(provinces_by_online_rate(period))
        .await
        .expect("ranking");
    let rows: Vec<(u32, &str, u32, i32, bool)> = response
        .rows
        .iter()
        .take(4)
        .map(|r| {
            (
                r.rank,
                r.agency_id.as_str(),
                r.previous_period_rank,
                r.places_gained,
                r.below_minimum_volume,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (1, "quang-ninh", 2, 1, false),
            (2, "thanh-hoa", 0, 0, false),
            (3, "lang-son", 1, -2, false),
            (0, "ninh-binh", 0, 0, true),
        ],
        "a three-dossier province at 100% is listed after the ranked ones, never first"
    );
    assert_eq!(response.ranked_count, 3);
    let previous = response.previous_period.expect("previous period");
    assert_eq!(
        previous.first_day,
        format!(
            "{:04}-{:02}-01",
            previous_month.year(),
            u8::from(previous_month.month())
        )
    );
    deployment.stop().await;
}
