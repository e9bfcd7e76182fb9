//! Publications end to end: a ranking published, retried, refused on a taken id or a bad
//! request; late events and events of days still running after it; the publication read back
//! exactly as published, and its revision log listing every changed row with its causes (the
//! days, late or not, the counters and the events, corrections and withdrawals apart), over
//! gRPC and HTTP (JSON and CSV).

use govpulse_core::period::{VIETNAM, vietnam_day};
use govpulse_e2e::{Deployment, Options, http, received};
use govpulse_proto::{
    aggregate::{
        GetBlockMetricsRequest, GetBlockMetricsResponse, get_block_metrics_request::Scope,
    },
    catalog::Block,
    ranking::{
        GetPublicationRequest, GetRankingRequest, GetRevisionsRequest, ListPublicationsRequest,
        Publication, PublishRequest, RankingQuery, RankingRow, RowRevision, WatchRankingRequest,
        WatchRankingResponse, ranking_query::Selection,
        ranking_service_client::RankingServiceClient, watch_ranking_response::Event,
    },
};
use time::{Date, Duration, OffsetDateTime, Time};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::{Streaming, transport::Channel};

/// Noon, Vietnam time, on `day`.
fn noon(day: Date) -> OffsetDateTime {
    day.with_time(Time::from_hms(12, 0, 0).expect("noon"))
        .assume_offset(VIETNAM)
}

/// The first day of last month, Vietnam time.
fn last_month_first() -> Date {
    let today = vietnam_day(OffsetDateTime::now_utc());
    let this_month = today.replace_day(1).expect("day 1");
    (this_month - Duration::days(1))
        .replace_day(1)
        .expect("day 1")
}

/// `count` receptions of `agency` on `day`, `online` of them online, ids from `prefix`.
fn receptions(
    prefix: &str,
    agency: &str,
    day: Date,
    count: usize,
    online: usize,
) -> Vec<govpulse_proto::event::DossierEvent> {
    (0..count)
        .map(|i| received(&format!("{prefix}-{i}"), agency, noon(day), i < online))
        .collect()
}

/// A cause as the test compares it: first day, late, events.
type Cause = (String, bool, i64);

/// A revision log's rows as the test compares them: agency, places gained, causes.
fn moved(rows: &[RowRevision]) -> Vec<(String, i32, Vec<Cause>)> {
    rows.iter()
        .map(|r| {
            (
                r.agency_id.clone(),
                r.places_gained,
                r.causes
                    .iter()
                    .map(|c| (c.first_day.clone(), c.late, c.events))
                    .collect(),
            )
        })
        .collect()
}

fn query(period: &str) -> RankingQuery {
    RankingQuery {
        metric: "online-dossier-rate".into(),
        block: Block::Province.into(),
        period: period.to_owned(),
        ..Default::default()
    }
}

fn publish(id: &str, title: &str, query: RankingQuery) -> PublishRequest {
    PublishRequest {
        publication_id: id.to_owned(),
        title: title.to_owned(),
        query: Some(query),
        block_metrics: None,
    }
}

/// Rank, agency and exact value of the rows with data.
fn ranked(rows: &[RankingRow]) -> Vec<(u32, String, (u64, u64))> {
    rows.iter()
        .filter_map(|r| {
            r.rate.as_ref().map(|rate| {
                (
                    r.rank,
                    r.agency_id.clone(),
                    (rate.numerator, rate.denominator),
                )
            })
        })
        .collect()
}

/// The agencies whose rows are flagged revised.
fn revised(rows: &[RankingRow]) -> Vec<String> {
    let mut flagged: Vec<String> = rows
        .iter()
        .filter(|r| r.revised)
        .map(|r| r.agency_id.clone())
        .collect();
    flagged.sort();
    flagged
}

/// Publication `id` as ranking reads it back.
async fn kept(ranking: &mut RankingServiceClient<Channel>, id: &str) -> Publication {
    ranking
        .get_publication(GetPublicationRequest {
            publication_id: id.into(),
        })
        .await
        .expect("read back")
        .into_inner()
        .publication
        .expect("the publication")
}

/// The revision log of publication `id`.
async fn revisions_of(
    ranking: &mut RankingServiceClient<Channel>,
    id: &str,
) -> govpulse_proto::ranking::GetRevisionsResponse {
    ranking
        .get_revisions(GetRevisionsRequest {
            publication_id: id.into(),
        })
        .await
        .expect("revisions")
        .into_inner()
}

/// The ranking of `query` now: the id of its latest publication, and its revised rows.
async fn flagged(
    ranking: &mut RankingServiceClient<Channel>,
    query: RankingQuery,
) -> (String, Vec<String>) {
    let now = ranking
        .get_ranking(GetRankingRequest { query: Some(query) })
        .await
        .expect("ranking")
        .into_inner();
    (
        now.publication
            .map(|p| p.publication_id)
            .unwrap_or_default(),
        revised(&now.rows),
    )
}

/// Reads a live ranking until its rows flagged revised are `expected` (a snapshot sets the
/// flags; a change sets its rows'), past its snapshot, within 5 s; returns the latest
/// publication it named.
async fn until_revised(stream: &mut Streaming<WatchRankingResponse>, expected: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut flags = std::collections::BTreeMap::<String, bool>::new();
    let mut publication = String::new();
    let mut complete = false;
    loop {
        let now: Vec<&str> = flags
            .iter()
            .filter(|(_, r)| **r)
            .map(|(a, _)| a.as_str())
            .collect();
        if complete && now == expected {
            return publication;
        }
        let message = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("revised {now:?}, expected {expected:?}"))
            .expect("the stream goes on")
            .expect("a message");
        match message.event.expect("an event") {
            Event::Snapshot(snapshot) => {
                flags.extend(
                    snapshot
                        .rows
                        .iter()
                        .map(|r| (r.agency_id.clone(), r.revised)),
                );
                if let Some(p) = snapshot.publication {
                    publication = p.publication_id;
                }
            }
            Event::SnapshotComplete(_) => complete = true,
            Event::Changes(changes) => {
                complete = true;
                for row in changes.changes.iter().filter_map(|c| c.row.as_ref()) {
                    flags.insert(row.agency_id.clone(), row.revised);
                }
                if let Some(p) = changes.publication {
                    publication = p.publication_id;
                }
            }
            _ => {}
        }
    }
}

fn owned(rows: &[(u32, &str, (u64, u64))]) -> Vec<(u32, String, (u64, u64))> {
    rows.iter()
        .map(|(r, a, v)| (*r, (*a).to_owned(), *v))
        .collect()
}

#[tokio::test]
async fn a_publication_stays_as_published_and_its_revisions_say_what_moved_and_why() {
    let deployment = Deployment::start_alone_with("pub", Options::default()).await;
    let first = last_month_first();
    let (d1, d2) = (first + Duration::days(2), first + Duration::days(5));
    let month = format!("{:04}-{:02}", first.year(), u8::from(first.month()));
    let mut events = receptions("hn", "ha-noi", d1, 10, 8);
    events.extend(receptions("hp", "hai-phong", d1, 10, 6));
    events.extend(receptions("ct", "can-tho", d1, 10, 4));
    deployment.accept_all(events).await;

    let mut ranking = deployment.ranking();
    let made = ranking
        .publish(publish(
            "monthly-1",
            "Online dossiers, last month",
            query(&month),
        ))
        .await
        .expect("published")
        .into_inner();
    assert!(made.created);
    let publication: Publication = made.publication.expect("the publication");
    assert_eq!(publication.published_by, "anonymous");
    let published = publication.ranking.clone().expect("its ranking");
    let before = owned(&[
        (1, "ha-noi", (8, 10)),
        (2, "hai-phong", (6, 10)),
        (3, "can-tho", (4, 10)),
    ]);
    assert_eq!(ranked(&published.rows), before);
    assert!(
        published.rows.len() > 3,
        "every row is kept, the provinces without data too"
    );
    assert_eq!(
        publication.basis.len(),
        usize::from(first.month().length(first.year())),
        "a month's basis is kept day by day"
    );

    // The monthly report: the nation's provinces and ministries, one metric, pooled.
    let report = ranking
        .publish(PublishRequest {
            publication_id: "report-1".into(),
            title: "Online dossiers by agency, last month".into(),
            query: None,
            block_metrics: Some(GetBlockMetricsRequest {
                scope: Some(Scope::Nation(true)),
                metric: "online-dossier-rate".into(),
                period: month.clone(),
                ..Default::default()
            }),
        })
        .await
        .expect("a report published")
        .into_inner()
        .publication
        .expect("the report");
    let report_rows = report.block_metrics.clone().expect("its figures").agencies;
    let pooled = |r: &GetBlockMetricsResponse| {
        r.summary
            .as_ref()
            .and_then(|s| s.pooled.as_ref())
            .map(|p| (p.numerator, p.denominator))
    };
    assert_eq!(
        pooled(report.block_metrics.as_ref().expect("figures")),
        Some((18, 30))
    );
    assert!(
        report_rows.len() > 34,
        "ministries and provinces: {}",
        report_rows.len()
    );
    assert!(report.query.is_none() && report.ranking.is_none());
    eprintln!(
        "kept: a month's ranking of the provinces {} bytes, the nation's report {} bytes",
        prost::Message::encoded_len(&publication),
        prost::Message::encoded_len(&report)
    );

    // A retry gives the publication made first; another title under its id is refused.
    let again = ranking
        .publish(publish(
            "monthly-1",
            "Online dossiers, last month",
            query(&month),
        ))
        .await
        .expect("a retry")
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.publication.as_ref(), Some(&publication));
    let taken = ranking
        .publish(publish("monthly-1", "Another title", query(&month)))
        .await
        .expect_err("the id is taken");
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
    for (request, field) in [
        (publish("Monthly", "t", query(&month)), "publication_id"),
        (publish("m2", "", query(&month)), "title"),
        (
            publish(
                "m2",
                "t",
                RankingQuery {
                    selection: Some(Selection::Top(5)),
                    ..query(&month)
                },
            ),
            "query.top",
        ),
        (publish("m2", "t", query("2026-13")), "query.period"),
        (
            PublishRequest {
                block_metrics: Some(GetBlockMetricsRequest::default()),
                ..publish("m2", "t", query(&month))
            },
            "block_metrics",
        ),
        (
            PublishRequest {
                query: None,
                block_metrics: Some(GetBlockMetricsRequest {
                    scope: Some(Scope::Nation(true)),
                    metric: "online-dossier-rate".into(),
                    period: month.clone(),
                    daily_events_days: 3,
                    ..Default::default()
                }),
                ..publish("m2", "t", query(&month))
            },
            "block_metrics.daily_events_days",
        ),
    ] {
        let refused = ranking.publish(request).await.expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().starts_with(field),
            "{field}: {}",
            refused.message()
        );
    }

    // The ranking, asked for or live, names its publication and flags no row yet.
    assert_eq!(
        flagged(&mut ranking, query(&month)).await,
        ("monthly-1".to_owned(), vec![])
    );
    let mut live = ranking
        .watch_ranking(WatchRankingRequest {
            query: Some(query(&month)),
            resume_revision: 0,
        })
        .await
        .expect("live")
        .into_inner();
    assert_eq!(until_revised(&mut live, &[]).await, "monthly-1");

    // Late data: can-tho re-syncs 25 online dossiers of d1; hai-phong sends 2 in-person
    // dossiers of d2. The rows now differ; the publication does not.
    let mut late = receptions("ct-late", "can-tho", d1, 25, 25);
    late.extend(receptions("hp-late", "hai-phong", d2, 2, 0));
    deployment.accept_all(late).await;
    let expected = ["can-tho", "ha-noi", "hai-phong"];
    until_revised(&mut live, &expected).await;
    assert_eq!(
        flagged(&mut ranking, query(&month)).await,
        ("monthly-1".to_owned(), expected.map(String::from).to_vec()),
        "every row whose rank or value moved is flagged"
    );
    let report_log = revisions_of(&mut ranking, "report-1").await;
    let report_moved = moved(&report_log.rows);
    assert_eq!(
        report_moved,
        [
            ("can-tho".to_owned(), 0, vec![(d1.to_string(), true, 25)]),
            ("hai-phong".to_owned(), 0, vec![(d2.to_string(), true, 2)]),
        ],
        "a report's rows by agency id; ha-noi's value did not move"
    );
    assert!(report_log.summary_revised, "the pooled figure moved");
    assert_eq!(
        pooled(report_log.block_metrics_now.as_ref().expect("figures now")),
        Some((43, 57))
    );
    assert_eq!(report_log.unchanged as usize, report_rows.len() - 2);
    assert_eq!(
        kept(&mut ranking, "monthly-1").await,
        publication,
        "exactly as published"
    );

    let revisions = revisions_of(&mut ranking, "monthly-1").await;
    assert_eq!(
        ranked(&revisions.now.expect("the ranking now").rows),
        owned(&[
            (1, "can-tho", (29, 35)),
            (2, "ha-noi", (8, 10)),
            (3, "hai-phong", (6, 12)),
        ])
    );
    let moved_now = moved(&revisions.rows);
    assert_eq!(
        moved_now,
        [
            ("can-tho".to_owned(), 2, vec![(d1.to_string(), true, 25)]),
            ("ha-noi".to_owned(), -1, vec![]),
            ("hai-phong".to_owned(), -1, vec![(d2.to_string(), true, 2)]),
        ],
        "every changed row, in the order of now, with its causes"
    );
    let can_tho = &revisions.rows[0].causes[0].counters;
    let counters: Vec<(&str, u64, u64)> = can_tho
        .iter()
        .map(|c| (c.counter.as_str(), c.published, c.now))
        .collect();
    assert_eq!(
        counters,
        [
            ("received", 10, 35),
            ("received_online", 4, 29),
            ("digitized", 10, 35),
            ("received_full_online_procedure", 10, 35),
            ("received_online_full_online_procedure", 4, 29),
        ],
        "can-tho.p01 is provided full-process online"
    );
    assert_eq!(
        revisions.unchanged as usize,
        published.rows.len() - 3,
        "the provinces without data stand as published"
    );

    // A year to date is frozen to its days; the list is newest first.
    let ytd = ranking
        .publish(publish("ytd-1", "Year to date", query("ytd")))
        .await
        .expect("published")
        .into_inner()
        .publication
        .expect("the publication");
    let today = vietnam_day(OffsetDateTime::now_utc());
    let frozen = format!("{}-01-01..{today}", today.year());
    assert_eq!(
        ytd.query.as_ref().map(|q| q.period.as_str()),
        Some(frozen.as_str())
    );
    let list = ranking
        .list_publications(ListPublicationsRequest {
            offset: 0,
            limit: 0,
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.total, 3);
    let ids: Vec<&str> = list
        .publications
        .iter()
        .map(|p| p.publication_id.as_str())
        .collect();
    assert_eq!(ids, ["ytd-1", "report-1", "monthly-1"]);
    assert_eq!(list.publications[2].ranked_count, 3);
    assert_eq!(
        list.publications[1]
            .block_metrics_query
            .as_ref()
            .map(|q| q.metric.as_str()),
        Some("online-dossier-rate")
    );
    let missing = ranking
        .get_publication(GetPublicationRequest {
            publication_id: "nothing-here".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");

    // Hai Phong fixes its data: one late reception was in fact online, another dossier was
    // withdrawn. The revision log counts the correction and the withdrawal apart.
    let fix = govpulse_proto::event::DossierEvent {
        event_id: "hp-late-0/fix".into(),
        corrects: "hp-late-0".into(),
        ..received("hp-late-0", "hai-phong", noon(d2), true)
    };
    let withdrawal = govpulse_proto::event::DossierEvent {
        event_id: "hp-late-1/withdrawn".into(),
        kind: Some(govpulse_proto::event::dossier_event::Kind::Withdrawn(
            govpulse_proto::event::Withdrawn {},
        )),
        ..received("hp-late-1", "hai-phong", noon(d2), false)
    };
    deployment.accept_all(vec![fix, withdrawal]).await;
    let revisions = revisions_of(&mut ranking, "monthly-1").await;
    let hai_phong = revisions
        .rows
        .iter()
        .find(|r| r.agency_id == "hai-phong")
        .expect("hai-phong revised");
    let causes: Vec<_> = hai_phong
        .causes
        .iter()
        .map(|c| {
            (
                c.first_day.clone(),
                c.late,
                c.events,
                c.withdrawals,
                c.corrections,
            )
        })
        .collect();
    assert_eq!(
        causes,
        [(d2.to_string(), true, 3, 1, 1)],
        "two late receptions and a withdrawal; one correction"
    );
    assert_eq!(
        kept(&mut ranking, "monthly-1").await,
        publication,
        "still exactly as published after the correction and the withdrawal"
    );

    // Over HTTP: the publication as published in CSV, the revisions in CSV, a retry by POST.
    let addr = deployment.ranking_addr();
    let csv = http::get(addr, "/api/v1/publications/monthly-1?format=csv", &[])
        .await
        .text();
    assert!(
        csv.contains("can-tho") && csv.contains("40.00"),
        "can-tho's rate as published, 4 of 10: {csv}"
    );
    let log = http::get(
        addr,
        "/api/v1/publications/monthly-1/revisions?format=csv",
        &[],
    )
    .await
    .text();
    assert!(
        log.contains(&format!("{d1}: received 10→35")),
        "the revision log names the day and counters: {log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("hai-phong,") && l.contains(",3,0,1,1,")),
        "late events, other events, withdrawals and corrections: {log}"
    );
    let body = format!(
        r#"{{"publicationId": "monthly-1", "title": "Online dossiers, last month", "query": {{"metric": "online-dossier-rate", "block": "BLOCK_PROVINCE", "period": "{month}"}}}}"#
    );
    let retried = http::post_json(addr, "/api/v1/publications", &[], &body).await;
    assert_eq!(retried.status, 200, "{}", retried.text());
    let fresh = http::post_json(
        addr,
        "/api/v1/publications",
        &[],
        &body.replace("monthly-1", "monthly-2"),
    )
    .await;
    assert_eq!(fresh.status, 201, "{}", fresh.text());
    assert_eq!(
        flagged(&mut ranking, query(&month)).await,
        ("monthly-2".to_owned(), vec![]),
        "published again: the rows stand as published"
    );
    deployment.stop().await;
}
