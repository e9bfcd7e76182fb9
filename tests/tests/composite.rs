//! Composite indexes, end to end: assessed scores and events through ingest, stored by
//! aggregate in a real Redis, ranked by score with grades by ranking, against figures
//! computed by hand.

use govpulse_e2e::{
    Deployment, assessed_score, event, field_violation, next_message, received, resolved,
    two_days_ago_noon,
};
use govpulse_proto::{
    aggregate::GetMetricsRequest,
    catalog::Block,
    event::{AssessedScore, FeePaid, FeedbackGiven, OutcomeStatus, dossier_event::Kind},
    ingest::ReportAssessedScoresRequest,
    ranking::{
        GetRankingResponse, RankingQuery, RankingRow, ranking_query::Selection,
        watch_ranking_response::Event,
    },
};

const QUALITY: &str = "system-quality-2024";
const SERVICE: &str = "service-index-766";
const QUALITY_CRITERIA: [&str; 6] = [
    "function",
    "structure-layout",
    "performance",
    "security",
    "convenient-access",
    "monitoring-connection",
];

/// One agency's quality evaluation: points per criterion, in the profile's order.
fn evaluation(agency: &str, period: &str, points: [&str; 6]) -> Vec<AssessedScore> {
    QUALITY_CRITERIA
        .iter()
        .zip(points)
        .map(|(criterion, p)| assessed_score(agency, QUALITY, criterion, period, p))
        .collect()
}

async fn report(deployment: &Deployment, scores: Vec<AssessedScore>) -> Result<u32, tonic::Status> {
    deployment
        .ingest()
        .report_assessed_scores(ReportAssessedScoresRequest { scores })
        .await
        .map(|r| r.into_inner().stored)
}

/// The provinces ranked by the composite `index` over `period`, every row.
fn provinces_by(index: &str, period: &str) -> RankingQuery {
    RankingQuery {
        index: index.to_owned(),
        block: Block::Province.into(),
        period: period.to_owned(),
        ..Default::default()
    }
}

async fn ranking(deployment: &Deployment, index: &str, period: &str) -> GetRankingResponse {
    deployment
        .get_ranking(provinces_by(index, period))
        .await
        .expect("ranking")
}

/// The row of `agency` in `response`, which lists it.
fn row<'a>(response: &'a GetRankingResponse, agency: &str) -> &'a RankingRow {
    response
        .rows
        .iter()
        .find(|r| r.agency_id == agency)
        .expect("listed")
}

/// A row as the tests compare them: (rank, agency, score, grade, incomplete, `previous_rank`).
fn summary(row: &RankingRow, previous_rank: u32) -> (u32, &str, &str, &str, bool, u32) {
    (
        row.rank,
        row.agency_id.as_str(),
        row.score.as_str(),
        row.grade.as_str(),
        row.incomplete,
        previous_rank,
    )
}

/// The [`summary`] of each row with a score, with its rank in the previous period.
fn scored(rows: &[RankingRow]) -> Vec<(u32, &str, &str, &str, bool, u32)> {
    rows.iter()
        .filter(|r| !r.score.is_empty())
        .map(|r| summary(r, r.previous_period_rank))
        .collect()
}

#[tokio::test]
async fn the_quality_ranking_scores_and_grades_assessed_provinces() {
    let deployment = Deployment::start_alone("quality").await;
    let mut scores = Vec::new();
    // Hà Giang as in the article: 38.75 of 50 for function, 72.5 in all, grade C.
    scores.extend(evaluation(
        "ha-giang",
        "2024",
        ["38.75", "4", "15", "11", "3.75", "0"],
    ));
    // Tuyên Quang reaches the same 72.5 another way: tied, after Hà Giang by id.
    scores.extend(evaluation(
        "tuyen-quang",
        "2024",
        ["40", "5", "12.5", "10", "5", "0"],
    ));
    scores.extend(evaluation(
        "lang-son",
        "2024",
        ["45", "5", "18", "14", "4", "5"],
    )); // 91
    scores.extend(evaluation(
        "quang-ninh",
        "2024",
        ["40", "4.5", "17", "13.5", "5", "5"],
    )); // 85
    scores.extend(evaluation(
        "ninh-binh",
        "2024",
        ["30", "3", "10", "4", "2", "0.99"],
    )); // 49.99
    // Cao Bằng: only function assessed so far: 50 points, grade D, flagged incomplete.
    scores.push(assessed_score(
        "cao-bang", QUALITY, "function", "2024", "50",
    ));
    // The year before: Ninh Bình first, Lạng Sơn second.
    scores.push(assessed_score(
        "ninh-binh",
        QUALITY,
        "function",
        "2023",
        "50",
    ));
    scores.push(assessed_score(
        "lang-son", QUALITY, "function", "2023", "40",
    ));
    let sent = u32::try_from(scores.len()).expect("small");
    assert_eq!(
        report(&deployment, scores.clone()).await.expect("stored"),
        sent
    );
    // A retry stores the same values again: nothing changes.
    assert_eq!(report(&deployment, scores).await.expect("stored"), sent);

    let response = ranking(&deployment, QUALITY, "2024").await;
    assert_eq!(
        scored(&response.rows),
        [
            (1, "lang-son", "91.00", "A", false, 2),
            (2, "quang-ninh", "85.00", "B", false, 0),
            (3, "ha-giang", "72.50", "C", false, 0),
            (3, "tuyen-quang", "72.50", "C", false, 0),
            (5, "cao-bang", "50.00", "D", true, 0),
            (6, "ninh-binh", "49.99", "E", false, 1),
        ]
    );
    assert_eq!(response.ranked_count, 6);
    assert_eq!(response.rows.len(), 63, "every province of 2024 is listed");
    let ha_giang = row(&response, "ha-giang");
    let points: Vec<(&str, &str, &str)> = ha_giang
        .indicators
        .iter()
        .map(|i| {
            (
                i.criterion.as_str(),
                i.points.as_str(),
                i.max_points.as_str(),
            )
        })
        .collect();
    assert_eq!(
        points,
        [
            ("function", "38.75", "50.00"),
            ("structure-layout", "4.00", "5.00"),
            ("performance", "15.00", "20.00"),
            ("security", "11.00", "15.00"),
            ("convenient-access", "3.75", "5.00"),
            ("monitoring-connection", "0.00", "5.00"),
        ]
    );
    assert!(
        ha_giang.rate.is_none(),
        "an index row has a score, not a rate"
    );
    let cao_bang = row(&response, "cao-bang");
    assert_eq!(
        cao_bang
            .indicators
            .iter()
            .filter(|i| i.points.is_empty())
            .count(),
        5,
        "the criteria not assessed show no points"
    );
    let ninh_binh = row(&response, "ninh-binh");
    assert_eq!(ninh_binh.places_gained, -5);
    let unassessed = row(&response, "ha-noi");
    assert_eq!(
        (
            unassessed.rank,
            unassessed.score.as_str(),
            unassessed.grade.as_str()
        ),
        (0, "", ""),
        "no score reported is no data, not zero"
    );
    assert_eq!(
        scored(&ranking(&deployment, QUALITY, "2024-Q1").await.rows),
        [],
        "a year's assessment is not a quarter's"
    );
    deployment.stop().await;
}

#[tokio::test]
async fn a_bad_assessed_score_is_refused_naming_its_field_and_stores_nothing() {
    let deployment = Deployment::start_alone("refused").await;
    let good = assessed_score("lang-son", QUALITY, "function", "2024", "45");
    // Each call sends a good score, then the bad one: the message names the bad one's field.
    for (bad, message) in [
        (
            assessed_score("lang-son", QUALITY, "security", "2024", "15.5"),
            "scores[1].points: 15.5 is above the 15.00 points of security in system-quality-2024",
        ),
        (
            assessed_score("lang-son", QUALITY, "speed", "2024", "1"),
            "scores[1].criterion: \"speed\" is not a criterion of system-quality-2024; its assessed criteria are function, structure-layout, performance, security, convenient-access, monitoring-connection",
        ),
        (
            assessed_score("atlantis", QUALITY, "function", "2024", "1"),
            "scores[1].agency_id: unknown agency \"atlantis\"",
        ),
        (
            assessed_score("lang-son", SERVICE, "progress", "2024", "1"),
            "scores[1].criterion: progress of service-index-766 is measured from events (on-time-rate), not assessed",
        ),
        (
            assessed_score(
                "lang-son",
                QUALITY,
                "function",
                "2024-01-01..2024-02-15",
                "1",
            ),
            "scores[1].period: \"2024-01-01..2024-02-15\" is not a calendar period; assess a day 2024-08-15, a month 2024-08, a quarter 2024-Q3 or a year 2024",
        ),
    ] {
        let status = report(&deployment, vec![good.clone(), bad])
            .await
            .expect_err("refused");
        let (field, _) = message.split_once(": ").expect("field: reason");
        assert_eq!(field_violation(&status).0, field, "{message}");
        assert_eq!(status.message(), message);
    }
    assert_eq!(
        scored(&ranking(&deployment, QUALITY, "2024").await.rows),
        [],
        "a refused call stores none of its scores"
    );
    // The same checks hold at aggregate, which stores only what it checked itself.
    let status = deployment
        .aggregate()
        .apply_assessed_scores(govpulse_proto::aggregate::ApplyAssessedScoresRequest {
            scores: vec![
                good,
                assessed_score("lang-son", QUALITY, "function", "2024", "50.01"),
            ],
        })
        .await
        .expect_err("refused");
    assert_eq!(field_violation(&status).0, "scores[1].points");
    assert_eq!(
        scored(&ranking(&deployment, QUALITY, "2024").await.rows),
        []
    );
    deployment.stop().await;
}

/// The points (in hundredths, rounded half up) that `points` earns at a rate of n/d with
/// full points at `saturation_percent`, worked out with integers.
fn saturated_hundredths(points: u128, n: u128, d: u128, saturation_percent: u128) -> u128 {
    if n * 100 >= saturation_percent * d {
        return points * 100;
    }
    let (numerator, denominator) = (points * 100 * n * 100, d * saturation_percent);
    (numerator * 2 + denominator) / (2 * denominator)
}

#[tokio::test]
async fn the_service_index_combines_measured_rates_and_assessed_transparency() {
    let deployment = Deployment::start_alone("service").await;
    let at = two_days_ago_noon();
    let day = at.date().to_string();
    let mut events = Vec::new();
    // Lạng Sơn: 4 received (all digitized), 2 on time of 4 resolved, 1 of 2 fees online,
    // 3 of 4 feedback satisfied.
    for i in 0..4 {
        events.push(received(&format!("ls-r{i}"), "lang-son", at, i < 2));
        events.push(resolved(&format!("ls-s{i}"), "lang-son", at, i < 2));
        events.push(event(
            &format!("ls-fb{i}"),
            "lang-son",
            at,
            Kind::Feedback(FeedbackGiven { satisfied: i < 3 }),
        ));
    }
    for i in 0..2 {
        events.push(event(
            &format!("ls-fee{i}"),
            "lang-son",
            at,
            Kind::FeePaid(FeePaid { online: i == 0 }),
        ));
    }
    // Quảng Ninh: 1 received, nothing else measured, and no transparency score.
    events.push(received("qn-r0", "quang-ninh", at, true));
    let outcomes = deployment.submit(events).await;
    assert!(
        outcomes
            .outcomes
            .iter()
            .all(|o| o.status == OutcomeStatus::Accepted as i32),
        "{outcomes:?}"
    );
    report(
        &deployment,
        vec![assessed_score(
            "lang-son",
            SERVICE,
            "transparency",
            &day,
            "16.5",
        )],
    )
    .await
    .expect("stored");

    // Online services come from the catalog: full-online-provision, full points at 80%.
    let provision = |agency: &str| {
        let mut aggregate = deployment.aggregate();
        let agency = agency.to_owned();
        let day = day.clone();
        async move {
            let rate = aggregate
                .get_metrics(GetMetricsRequest {
                    agency_id: agency,
                    period: day,
                    metrics: vec!["full-online-provision".to_owned()],
                    ..Default::default()
                })
                .await
                .expect("metrics")
                .into_inner()
                .metrics[0]
                .rate
                .clone()
                .expect("the demo catalog has procedures");
            saturated_hundredths(12, rate.numerator.into(), rate.denominator.into(), 80)
        }
    };
    let (ls_online, qn_online) = (provision("lang-son").await, provision("quang-ninh").await);
    let text = |h: u128| format!("{}.{:02}", h / 100, h % 100);
    // transparency 16.5 + progress 20 x 2/4 + online services + payment 10 x 1/2
    // + satisfaction 18 x 3/4 + digitization 22 x 4/4.
    let lang_son = 1_650 + 1_000 + ls_online + 500 + 1_350 + 2_200;
    // Quảng Ninh: digitization 22 x 1/1 and online services only.
    let quang_ninh = 2_200 + qn_online;

    let response = ranking(&deployment, SERVICE, &day).await;
    let rows: Vec<(u32, &str, &str, &str, bool)> = scored(&response.rows)
        .into_iter()
        .map(|(rank, agency, score, grade, incomplete, _)| (rank, agency, score, grade, incomplete))
        .collect();
    assert!(lang_son > quang_ninh, "the fixture ranks Lạng Sơn first");
    assert_eq!(
        rows[..2],
        [
            (1, "lang-son", text(lang_son).as_str(), "", false),
            (2, "quang-ninh", text(quang_ninh).as_str(), "", true),
        ],
        "the 766 index has no grades; Quảng Ninh's missing values count 0 and flag it"
    );
    // Online services come from the catalog, so every other province has a partial score:
    // its online-services points alone, flagged incomplete.
    for row in response.rows.iter().filter(|r| r.rank > 2) {
        let online = row
            .indicators
            .iter()
            .find(|i| i.criterion == "online-services")
            .expect("every indicator is listed");
        assert_eq!(
            (row.score.as_str(), row.incomplete),
            (online.points.as_str(), true),
            "{}",
            row.agency_id
        );
    }
    let points: Vec<(&str, &str)> = row(&response, "lang-son")
        .indicators
        .iter()
        .map(|i| (i.criterion.as_str(), i.points.as_str()))
        .collect();
    assert_eq!(
        points,
        [
            ("transparency", "16.50"),
            ("progress", "10.00"),
            ("online-services", text(ls_online).as_str()),
            ("online-payment", "5.00"),
            ("satisfaction", "13.50"),
            ("digitization", "22.00"),
        ]
    );
    deployment.stop().await;
}

#[tokio::test]
async fn a_live_composite_ranking_changes_when_scores_are_reported() {
    let deployment = Deployment::start_alone("live").await;
    let mut scores = evaluation("ha-giang", "2024", ["38.75", "4", "15", "11", "3.75", "0"]);
    scores.push(assessed_score(
        "lang-son", QUALITY, "function", "2024", "45",
    ));
    report(&deployment, scores).await.expect("stored");
    let query = RankingQuery {
        selection: Some(Selection::Top(2)),
        ..provinces_by(QUALITY, "2024")
    };
    let mut stream = deployment.watch_ranking(query).await;
    let first = next_message(&mut stream).await;
    let Some(Event::Snapshot(snapshot)) = first.event else {
        panic!("a snapshot first, got {first:?}")
    };
    assert_eq!(
        scored(&snapshot.rows),
        [
            (1, "ha-giang", "72.50", "C", false, 0),
            (2, "lang-son", "45.00", "E", true, 0),
        ]
    );
    assert!(matches!(
        next_message(&mut stream).await.event,
        Some(Event::SnapshotComplete(_))
    ));

    // Lạng Sơn's other criteria arrive: 45 + 5 + 20 + 15 + 5 + 5 = 95, grade A, first.
    let mut rest = evaluation("lang-son", "2024", ["45", "5", "20", "15", "5", "5"]);
    rest.remove(0);
    report(&deployment, rest).await.expect("stored");
    // Heartbeats keep coming while nothing changes: the change has a deadline of its own.
    let changes = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match next_message(&mut stream).await.event {
                Some(Event::Heartbeat(_)) => {}
                Some(Event::Changes(changes)) => break changes,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("the change arrives within 30 s");
    let moved: Vec<(u32, &str, &str, &str, bool, u32)> = changes
        .changes
        .iter()
        .map(|c| summary(c.row.as_ref().expect("a row"), c.previous_rank))
        .collect();
    assert_eq!(
        moved,
        [
            (1, "lang-son", "95.00", "A", false, 2),
            (2, "ha-giang", "72.50", "C", false, 1)
        ]
    );
    deployment.stop().await;
}

#[tokio::test]
async fn a_query_names_a_known_index_or_a_metric_not_both() {
    let deployment = Deployment::start_alone("queries").await;
    for (metric, index, reason) in [
        (
            "",
            "nope",
            "query.index: unknown composite index \"nope\"; the indexes are service-index-766, system-quality-2024",
        ),
        (
            "online-dossier-rate",
            QUALITY,
            "query.index: set either metric or index, not both",
        ),
    ] {
        let query = RankingQuery {
            metric: metric.to_owned(),
            ..provinces_by(index, "2024")
        };
        let status = deployment.get_ranking(query).await.expect_err("refused");
        assert_eq!(field_violation(&status).0, "query.index");
        assert_eq!(status.message(), reason);
    }
    deployment.stop().await;
}
