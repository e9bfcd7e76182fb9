//! The figures the press published (shared seeds, DOMAIN.md) come out of govpulse exactly,
//! from events sent through ingest: Hòa Bình's 87.02% and the top five provinces, a national
//! 51.49% that is 1.6 times the same period of the year before, an online processing rate of
//! 39.82% about 1.3 times the year before, and Quảng Ninh's 1,278 of 1,766 procedures.

use std::path::PathBuf;

use govpulse_e2e::{Deployment, Options, provinces_by_online_rate, ts};
use govpulse_proto::{
    aggregate::{
        GetBlockMetricsRequest, GetBlockMetricsResponse, get_block_metrics_request::Scope,
    },
    event::{Channel, DossierEvent, DossierReceived, dossier_event::Kind},
    ranking::{RankingQuery, ranking_query::Selection},
};
use time::{
    Date, OffsetDateTime,
    macros::{date, time},
};

const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/catalog");

/// A catalog with the real provinces and ministries and procedures shaped like the
/// articles: Quảng Ninh 1,766 procedures of which 1,278 provided online in full or in part;
/// 10,000 online
/// services nationwide (Hà Nội has 8,639 partially online ones).
fn write_catalog() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("govpulse-published-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for file in ["provinces.csv", "ministries.csv"] {
        std::fs::copy(format!("{CATALOG}/{file}"), dir.join(file))
            .expect("copy the shipped catalog");
    }
    let mut rows = String::from("id,agency_id,name,provision,eligible_full_online\n");
    for agency in top_level_ids(&dir) {
        match agency.as_str() {
            "quang-ninh" => {
                // 1,278 provided online, 780 of them full-process and 498 partially; the
                // other 488 are information only.
                for i in 1..=1766 {
                    let (provision, eligible) = match i {
                        ..=780 => ("full", true),
                        781..=1278 => ("partial", true),
                        _ => ("info", false),
                    };
                    rows.push_str(&format!(
                        "quang-ninh.p{i:04},quang-ninh,Thủ tục {i},{provision},{eligible}\n"
                    ));
                }
            }
            "ha-noi" => {
                rows.push_str("ha-noi.p1,ha-noi,Thủ tục,full,true\n");
                for i in 1..=8639 {
                    rows.push_str(&format!(
                        "ha-noi.x{i:04},ha-noi,Thủ tục {i},partial,false\n"
                    ));
                }
            }
            other => rows.push_str(&format!("{other}.p1,{other},Thủ tục,full,true\n")),
        }
    }
    std::fs::write(dir.join("procedures.csv"), rows).expect("write procedures");
    dir
}

/// The ids of the provinces and ministries in the copied catalog files (the id column comes
/// before any quoted name, so a plain split finds it).
fn top_level_ids(dir: &std::path::Path) -> Vec<String> {
    let mut ids = Vec::new();
    for (file, column) in [("provinces.csv", 1), ("ministries.csv", 0)] {
        let text = std::fs::read_to_string(dir.join(file)).expect("read");
        ids.extend(
            text.lines()
                .skip(1)
                .filter_map(|line| line.split(',').nth(column).map(str::to_owned)),
        );
    }
    ids
}

/// 10:00 Vietnam time on a day.
fn at(day: Date) -> OffsetDateTime {
    day.with_time(time!(10:00))
        .assume_offset(govpulse_core::period::VIETNAM)
}

fn reception(
    id: String,
    agency: &str,
    procedure: &str,
    at: OffsetDateTime,
    online: bool,
) -> DossierEvent {
    let channel = if online {
        Channel::Online
    } else {
        Channel::InPerson
    };
    DossierEvent {
        dossier_id: format!("HS-{id}"),
        event_id: id,
        agency_id: agency.to_owned(),
        procedure_id: procedure.to_owned(),
        occurred_at: ts(at),
        kind: Some(Kind::Received(DossierReceived {
            channel: channel.into(),
            digitized: false,
            due_at: None,
        })),
        corrects: String::new(),
    }
}

/// `online` online and `total - online` in-person receptions.
fn receptions(
    tag: &str,
    agency: &str,
    procedure: &str,
    at: OffsetDateTime,
    online: usize,
    total: usize,
) -> Vec<DossierEvent> {
    (0..total)
        .map(|i| {
            reception(
                format!("{tag}-{agency}-{i}"),
                agency,
                procedure,
                at,
                i < online,
            )
        })
        .collect()
}

async fn nation(deployment: &Deployment, metric: &str, period: &str) -> GetBlockMetricsResponse {
    let request = GetBlockMetricsRequest {
        scope: Some(Scope::Nation(true)),
        metric: metric.into(),
        period: period.into(),
        ..Default::default()
    };
    deployment
        .aggregate()
        .get_block_metrics(request)
        .await
        .expect("block metrics")
        .into_inner()
}

#[tokio::test]
async fn the_published_figures_come_out_exactly() {
    let catalog_dir = write_catalog();
    // The articles are about 2021 and 2022: accept events that old.
    let options = Options {
        catalog_dir: Some(catalog_dir.clone()),
        horizon_days: Some(3000),
        ..Options::default()
    };
    let deployment = Deployment::start_alone_with("published", options).await;

    // "The top five provinces in terms of the proportion of papers handled online are Hoa
    // Binh (87.02%), Quang Ninh (75.33%), Ninh Binh (59.35%), Ha Nam (56.73%), and Thanh Hoa
    // (56.6%)."
    // (Period A: the first four months of 2022, 63 provinces then.)
    let a = at(date!(2022 - 03 - 15));
    let month_a = "2022-01-01..2022-04-30".to_owned();
    let mut events = Vec::new();
    for (agency, procedure, online, total) in [
        ("hoa-binh", "hoa-binh.p1", 114, 131),
        ("quang-ninh", "quang-ninh.p0001", 113, 150),
        ("ninh-binh", "ninh-binh.p1", 73, 123),
        ("ha-nam", "ha-nam.p1", 59, 104),
        ("thanh-hoa", "thanh-hoa.p1", 30, 53),
        ("ha-noi", "ha-noi.p1", 10, 100),
    ] {
        events.extend(receptions("a", agency, procedure, a, online, total));
    }
    deployment.accept_all(events).await;
    let query = RankingQuery {
        selection: Some(Selection::Top(5)),
        ..provinces_by_online_rate(&month_a)
    };
    let top = deployment.get_ranking(query).await.expect("ranking");
    let shown: Vec<(u32, &str, &str)> = top
        .rows
        .iter()
        .map(|r| {
            (
                r.rank,
                r.agency_name.as_str(),
                r.rate.as_ref().map_or("", |r| r.percent.as_str()),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (1, "Hòa Bình", "87.02"),
            (2, "Quảng Ninh", "75.33"),
            (3, "Ninh Bình", "59.35"),
            (4, "Hà Nam", "56.73"),
            (5, "Thanh Hóa", "56.60")
        ]
    );
    assert_eq!(top.ranked_count, 6);

    // "On a nationwide scale, the proportion of online public services with records has
    // reached 51.49%, 1.6 times greater than the same period in 2021; and the rate of online
    // processing has reached 39.82%, about 1.3 times higher than the same period last year."
    // (Period B: May to August 2022, against May to August 2021.)
    let b = at(date!(2022 - 06 - 15));
    let month_b = "2022-05-01..2022-08-31".to_owned();
    let b_last_year = at(date!(2021 - 06 - 15));
    let mut events = Vec::new();
    // Online dossiers for 1,278 + 3,871 = 5,149 distinct online services now, 1,278 + 1,940
    // = 3,218 a year before; in-person dossiers make the online rates 5,149 of 12,931 and
    // 3,218 of 10,506.
    for (tag, at, hanoi_services, in_person) in
        [("now", b, 3871, 7782), ("before", b_last_year, 1940, 7288)]
    {
        for i in 1..=1278 {
            events.push(reception(
                format!("{tag}-qn-{i}"),
                "quang-ninh",
                &format!("quang-ninh.p{i:04}"),
                at,
                true,
            ));
        }
        for i in 1..=hanoi_services {
            events.push(reception(
                format!("{tag}-hn-{i}"),
                "ha-noi",
                &format!("ha-noi.x{i:04}"),
                at,
                true,
            ));
        }
        for i in 0..in_person {
            events.push(reception(
                format!("{tag}-desk-{i}"),
                "ha-noi",
                "ha-noi.x0001",
                at,
                false,
            ));
        }
    }
    deployment.accept_all(events).await;

    let services = nation(&deployment, "services-with-online-dossiers", &month_b).await;
    let summary = services.summary.expect("summary");
    let pooled = summary.pooled.expect("pooled");
    assert_eq!(
        (
            pooled.numerator,
            pooled.denominator,
            pooled.percent.as_str()
        ),
        (5149, 10_000, "51.49")
    );
    assert_eq!(summary.agencies, 84);
    let before = services
        .summary_same_period_last_year
        .and_then(|s| s.pooled)
        .expect("pooled last year");
    assert_eq!(before.percent, "32.18");
    assert_eq!(
        services.pooled_change_from_last_year.expect("change").ratio,
        "1.60",
        "1.6 times"
    );

    let online = nation(&deployment, "online-dossier-rate", &month_b).await;
    assert_eq!(
        online.summary.and_then(|s| s.pooled).map(|p| p.percent),
        Some("39.82".into())
    );
    assert_eq!(
        online
            .summary_same_period_last_year
            .and_then(|s| s.pooled)
            .map(|p| p.percent),
        Some("30.63".into())
    );
    assert_eq!(
        online.pooled_change_from_last_year.expect("change").ratio,
        "1.30",
        "about 1.3 times"
    );

    // "Out of a total of 1,766 administrative procedures, 1,278 are provided online in full
    // and in part"; full-process online provision counts the full ones among the eligible.
    let quang_ninh = deployment
        .get_metrics(
            "quang-ninh",
            &month_b,
            &["online-provision-rate", "full-online-provision"],
        )
        .await
        .expect("metrics");
    let fractions: Vec<(u64, u64, String)> = quang_ninh
        .metrics
        .iter()
        .map(|m| {
            let rate = m.rate.clone().expect("a value");
            (rate.numerator, rate.denominator, rate.percent)
        })
        .collect();
    assert_eq!(
        fractions,
        [(1278, 1766, "72.37".into()), (780, 1278, "61.03".into())]
    );

    // Hòa Bình's own report for month A says the same as the ranking.
    let hoa_binh = deployment
        .get_metrics("hoa-binh", &month_a, &["online-dossier-rate"])
        .await
        .expect("metrics");
    assert_eq!(
        hoa_binh.metrics[0]
            .rate
            .as_ref()
            .map(|r| r.percent.as_str()),
        Some("87.02")
    );

    deployment.stop().await;
    let _ = std::fs::remove_dir_all(&catalog_dir);
}
