//! Agencies change: on 2025-07-01 the 63 provinces became 34. A merged province answers for
//! periods before the merger with the sums of its predecessors, and says so; blocks are the
//! provinces as they were on the period's last day; a province merged away reports no more.

use govpulse_e2e::{
    Deployment, Options, fraction, http::find_by, provinces_by_online_rate, received, resolved, ts,
};
use govpulse_proto::{
    aggregate::{GetBlockMetricsRequest, GetMetricsResponse, get_block_metrics_request::Scope},
    catalog::Block,
    event::{OutcomeStatus, dossier_event::Kind},
};
use time::{
    OffsetDateTime,
    macros::{date, time},
};

fn at(day: time::Date) -> OffsetDateTime {
    day.with_time(time!(10:00))
        .assume_offset(govpulse_core::period::VIETNAM)
}

async fn online_rate(deployment: &Deployment, agency: &str, period: &str) -> GetMetricsResponse {
    deployment
        .get_metrics(agency, period, &["online-dossier-rate"])
        .await
        .expect("metrics")
}

fn metric_fraction(response: &GetMetricsResponse) -> Option<(u64, u64)> {
    fraction(response.metrics[0].rate.as_ref())
}

/// A deployment of its own accepting events up to 1,500 days old: from before the mergers
/// of 2025 until today.
async fn start_with_old_events(prefix: &str) -> Deployment {
    let options = Options {
        horizon_days: Some(1500),
        ..Options::default()
    };
    Deployment::start_alone_with(prefix, options).await
}

#[tokio::test]
async fn a_merged_province_answers_with_the_sums_of_its_predecessors() {
    let deployment = start_with_old_events("mergers").await;
    let before = at(date!(2024 - 11 - 15));
    let after = at(date!(2025 - 11 - 15));
    let mut events = Vec::new();
    // 2024: Tuyên Quang 3 of 5 online, Hà Giang 4 of 6 (Hà Giang merged into Tuyên Quang).
    events.extend((0..5).map(|i| received(&format!("tq-{i}"), "tuyen-quang", before, i < 3)));
    events.extend((0..6).map(|i| received(&format!("hg-{i}"), "ha-giang", before, i < 4)));
    // 2025, after the merger: the new Tuyên Quang 8 of 10.
    events.extend((0..10).map(|i| received(&format!("tq-new-{i}"), "tuyen-quang", after, i < 8)));
    // Hà Giang no longer exists: its event is refused, naming the successor.
    events.push(received("hg-late", "ha-giang", after, true));
    let response = deployment.submit(events).await;
    assert_eq!((response.accepted, response.rejected), (21, 1));
    let refused = response
        .outcomes
        .iter()
        .find(|o| o.status == OutcomeStatus::Rejected as i32)
        .expect("one refused");
    assert_eq!(refused.field, "events[21].agency_id");
    assert_eq!(
        refused.reason,
        "agency ha-giang was merged into tuyen-quang on 2025-07-01; report events from that day for tuyen-quang"
    );

    // The merged province over 2024: the sums of its predecessors, and it says so.
    let merged = online_rate(&deployment, "tuyen-quang", "2024").await;
    assert_eq!(metric_fraction(&merged), Some((7, 11)));
    assert_eq!(merged.merged_from, ["ha-giang"]);
    assert_eq!(merged.counters.map(|c| c.received), Some(11));
    // The predecessors' own 2024 figures, as the 63 provinces of 2024 were listed then.
    let block_2024 = deployment
        .aggregate()
        .get_block_metrics(GetBlockMetricsRequest {
            scope: Some(Scope::Block(Block::Province.into())),
            metric: "online-dossier-rate".into(),
            period: "2024".into(),
            ..Default::default()
        })
        .await
        .expect("block metrics")
        .into_inner();
    assert_eq!(block_2024.agencies.len(), 63);
    let of = |id: &str| {
        let row = block_2024
            .agencies
            .iter()
            .find(|a| a.agency_id == id)
            .expect("listed");
        (fraction(row.rate.as_ref()), row.merged_from.clone())
    };
    assert_eq!(of("tuyen-quang"), (Some((3, 5)), vec![]));
    assert_eq!(of("ha-giang"), (Some((4, 6)), vec![]));
    let (Some(tq), Some(hg)) = (of("tuyen-quang").0, of("ha-giang").0) else {
        panic!("both predecessors have 2024 data");
    };
    assert_eq!(
        metric_fraction(&merged),
        Some((tq.0 + hg.0, tq.1 + hg.1)),
        "the merged figure is the sum of its predecessors'"
    );

    // 2025-Q4 against the same period of 2024: the merged province against the sum of its
    // predecessors ("compare a merged province with the sum of its predecessors").
    let q4 = online_rate(&deployment, "tuyen-quang", "2025-Q4").await;
    assert_eq!(metric_fraction(&q4), Some((8, 10)));
    assert!(q4.merged_from.is_empty(), "Q4 2025 began after the merger");
    let last_year = fraction(q4.metrics[0].same_period_last_year.as_ref());
    assert_eq!(last_year, Some((7, 11)));
    assert_eq!(
        q4.metrics[0]
            .change_from_last_year
            .as_ref()
            .map(|c| c.ratio.as_str()),
        Some("1.26")
    );

    // A period spanning the merger: the new province with its predecessors' earlier part.
    let span = online_rate(&deployment, "tuyen-quang", "2024-11-01..2025-12-31").await;
    assert_eq!(
        (metric_fraction(&span), span.merged_from.as_slice()),
        (Some((15, 21)), &["ha-giang".to_owned()][..])
    );

    // Rankings: 63 provinces for 2024, 34 for 2025-Q4.
    for (period, expected) in [("2024", 63), ("2025-Q4", 34)] {
        let ranking = deployment
            .get_ranking(provinces_by_online_rate(period))
            .await
            .expect("ranking");
        assert_eq!(ranking.rows.len(), expected, "{period}");
    }
    deployment.stop().await;
}

/// The on-time fraction of `agency`'s row in the province block over `period`.
async fn block_on_time(deployment: &Deployment, period: &str, agency: &str) -> Option<(u64, u64)> {
    let block = deployment
        .aggregate()
        .get_block_metrics(GetBlockMetricsRequest {
            scope: Some(Scope::Block(Block::Province.into())),
            metric: "on-time-rate".into(),
            period: period.into(),
            ..Default::default()
        })
        .await
        .expect("block metrics")
        .into_inner();
    let row = block.agencies.iter().find(|a| a.agency_id == agency);
    fraction(row.expect("listed").rate.as_ref())
}

#[tokio::test]
async fn a_merged_province_inherits_the_dossiers_its_predecessors_left_open_past_due() {
    let deployment = start_with_old_events("merged-backlog").await;
    let with_due = |id: &str, agency: &str, due: OffsetDateTime| {
        let mut event = received(id, agency, at(date!(2025 - 05 - 10)), true);
        event.dossier_id = id.to_owned();
        if let Some(Kind::Received(r)) = event.kind.as_mut() {
            r.due_at = ts(due);
        }
        event
    };
    // Hà Giang leaves a dossier due 10 June open when it merges into Tuyên Quang on 1 July;
    // Tuyên Quang resolves its own late, on 1 June.
    let mut late = resolved("tq-res", "tuyen-quang", at(date!(2025 - 06 - 01)), false);
    late.dossier_id = "tq-1".into();
    let events = vec![
        with_due("hg-1", "ha-giang", at(date!(2025 - 06 - 10))),
        with_due("tq-1", "tuyen-quang", at(date!(2025 - 05 - 20))),
        late,
    ];
    let response = deployment.submit(events).await;
    assert_eq!(response.accepted, 3);

    // The second quarter, as the provinces were then: each its own.
    assert_eq!(
        block_on_time(&deployment, "2025-Q2", "ha-giang").await,
        Some((0, 1)),
        "open past due on 30 June"
    );
    assert_eq!(
        block_on_time(&deployment, "2025-Q2", "tuyen-quang").await,
        Some((0, 1)),
        "resolved late"
    );
    // The fourth quarter: Hà Giang's open dossier is now Tuyên Quang's, in the block and in
    // its own report.
    assert_eq!(
        block_on_time(&deployment, "2025-Q4", "tuyen-quang").await,
        Some((0, 1))
    );
    let q4 = deployment
        .get_metrics("tuyen-quang", "2025-Q4", &["on-time-rate"])
        .await
        .expect("metrics");
    assert_eq!(q4.counters.map(|c| c.open_past_due_at_end), Some(1));
    assert_eq!(fraction(q4.metrics[0].rate.as_ref()), Some((0, 1)));
    assert_eq!(
        fraction(q4.metrics[0].same_period_last_year.as_ref()),
        None,
        "nothing was open or resolved in 2024"
    );
    assert_eq!(q4.open_past_due, 1, "the backlog now agrees");
    deployment.stop().await;
}

/// The catalog: the shipped provinces, ministries and merger, and one partially
/// online procedure each for Hà Giang, Hà Nội and Tuyên Quang.
fn write_partial_catalog(name: &str) -> std::path::PathBuf {
    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/catalog");
    let dir = std::env::temp_dir().join(format!("govpulse-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("catalog dir");
    for file in ["provinces.csv", "ministries.csv", "mergers.csv"] {
        std::fs::copy(format!("{SHIPPED}/{file}"), dir.join(file)).expect("copy");
    }
    std::fs::write(
        dir.join("procedures.csv"),
        "id,agency_id,name,provision,eligible_full_online\n\
         ha-giang.p1,ha-giang,Thủ tục,partial,true\n\
         ha-noi.p1,ha-noi,Thủ tục,partial,true\n\
         tuyen-quang.p1,tuyen-quang,Thủ tục,partial,true\n",
    )
    .expect("procedures");
    dir
}

/// `GET /api/v1/block-metrics` of the provinces, as JSON.
async fn provinces_over_http(
    deployment: &Deployment,
    metric: &str,
    period: &str,
    compare_to: &str,
) -> serde_json::Value {
    let mut path = format!("/api/v1/block-metrics?block=provinces&metric={metric}&period={period}");
    if !compare_to.is_empty() {
        path.push_str(&format!("&compare_to={compare_to}"));
    }
    let answer = govpulse_e2e::http::get(deployment.ranking_addr(), &path, &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

/// A fraction of the JSON mapping (`{"numerator": "1", "denominator": "2", ...}`).
fn json_fraction(rate: &serde_json::Value) -> Option<(u64, u64)> {
    let n = |key: &str| rate[key].as_str().and_then(|v| v.parse::<u64>().ok());
    Some((n("numerator").unwrap_or(0), n("denominator")?))
}

#[tokio::test]
async fn last_years_pooled_figure_counts_a_province_merged_later_once() {
    let catalog_dir = write_partial_catalog("merged-last-year");
    let options = Options {
        catalog_dir: Some(catalog_dir.clone()),
        horizon_days: Some(3000),
        ..Options::default()
    };
    let deployment = Deployment::start_alone_with("merged-last-year", options).await;
    let reception = |id: &str, agency: &str, day: time::Date, online: bool| {
        let mut event = received(id, agency, at(day), online);
        event.procedure_id = format!("{agency}.p1");
        event
    };
    // Hà Giang (merged into Tuyên Quang on 2025-07-01): online in 2021, in person in 2022 and
    // online in 2024; Hà Nội in person in 2021; the new Tuyên Quang in person in 2026.
    let events = vec![
        reception("hg-2021", "ha-giang", date!(2021 - 03 - 01), true),
        reception("hg-2022", "ha-giang", date!(2022 - 03 - 01), false),
        reception("hn-2021", "ha-noi", date!(2021 - 03 - 01), false),
        reception("hg-2024", "ha-giang", date!(2024 - 03 - 01), true),
        reception("tq-2026", "tuyen-quang", date!(2026 - 03 - 01), false),
    ];
    let response = deployment.submit(events).await;
    assert_eq!(response.accepted, 5, "{:?}", response.outcomes);

    // 2022 against 2021: the 63 provinces of 2022, each with its own 2021; Hà Giang's 2021
    // dossier counts once (it did twice, through Tuyên Quang, before the fix).
    let pooled = |body: &serde_json::Value, summary: &str| json_fraction(&body[summary]["pooled"]);
    let y2022 = provinces_over_http(&deployment, "online-dossier-rate", "2022", "").await;
    assert_eq!(pooled(&y2022, "summary"), Some((0, 1)));
    assert_eq!(pooled(&y2022, "summarySamePeriodLastYear"), Some((1, 2)));
    let row =
        |body: &serde_json::Value, id: &str| find_by(&body["agencies"], "agencyId", id).clone();
    assert_eq!(
        row(&y2022, "tuyen-quang")["samePeriodLastYear"],
        serde_json::Value::Null,
        "Tuyên Quang had absorbed nothing by the end of 2022"
    );
    assert_eq!(
        json_fraction(&row(&y2022, "ha-giang")["samePeriodLastYear"]),
        Some((1, 1))
    );
    let y2021 = provinces_over_http(&deployment, "online-dossier-rate", "2021", "").await;
    assert_eq!(pooled(&y2021, "summary"), Some((1, 2)));

    // Services with online dossiers: numerator and denominator over the same provinces.
    let services =
        provinces_over_http(&deployment, "services-with-online-dossiers", "2022", "").await;
    assert_eq!(pooled(&services, "summarySamePeriodLastYear"), Some((1, 3)));

    // 2022 against an earlier base, 2021, as the same period last year.
    let based = provinces_over_http(&deployment, "online-dossier-rate", "2022", "2021").await;
    assert_eq!(pooled(&based, "summaryBase"), Some((1, 2)));
    assert_eq!(based["basePeriod"]["expression"], "2021");

    // 2026 against 2024, across the merger: the 34 provinces of 2026, Tuyên Quang with Hà
    // Giang's 2024 dossier, the nation counting it once.
    let y2026 = provinces_over_http(&deployment, "online-dossier-rate", "2026", "2024").await;
    assert_eq!(y2026["agencies"].as_array().map(Vec::len), Some(34));
    let tq = row(&y2026, "tuyen-quang");
    assert_eq!(json_fraction(&tq["rate"]), Some((0, 1)));
    assert_eq!(json_fraction(&tq["base"]), Some((1, 1)));
    assert_eq!(tq["changeFromBase"]["points"], "-100.00");
    assert_eq!(pooled(&y2026, "summaryBase"), Some((1, 1)));
    // A base that is not earlier than the period is refused, naming the field.
    let refused = govpulse_e2e::http::get(
        deployment.ranking_addr(),
        "/api/v1/block-metrics?block=provinces&metric=online-dossier-rate&period=2022&compare_to=2022-06",
        &[],
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(refused.text().contains("compare_to"), "{}", refused.text());

    deployment.stop().await;
    let _ = std::fs::remove_dir_all(&catalog_dir);
}
