//! Units ranked with their siblings: `RankingQuery.parent_id` ranks the direct children of one
//! agency (a province's departments and communes), read from the parent's roll-up, with the
//! same rules as a block, live as well as on request.

use std::path::{Path, PathBuf};

use govpulse_e2e::{Deployment, catalog_with, ranked, received, two_hours_ago};
use govpulse_proto::{
    catalog::Block,
    ingest::SubmitEventsRequest,
    ranking::{RankingQuery, watch_ranking_response},
};
use tokio_stream::StreamExt;
use tonic::Code;

/// The shipped provinces and ministries, and three departments of Hà Nội and a commune
/// below one of them, each with one procedure named `<agency>.p01`.
fn write_catalog(dir: &Path) -> PathBuf {
    let mut procedures = String::from("id,agency_id,name,provision,eligible_full_online\n");
    for agency in [
        "ha-noi",
        "ha-noi.d1",
        "ha-noi.d2",
        "ha-noi.d3",
        "ha-noi.d1.c1",
        "hai-phong",
    ] {
        procedures.push_str(&format!("{agency}.p01,{agency},Thủ tục,full,true\n"));
    }
    catalog_with(
        dir,
        "id,name,parent_id,valid_from,valid_until\n\
         ha-noi.d1,Sở Một,ha-noi,,\n\
         ha-noi.d2,Sở Hai,ha-noi,,\n\
         ha-noi.d3,Sở Ba,ha-noi,,\n\
         ha-noi.d1.c1,Phường Một,ha-noi.d1,,\n",
        &procedures,
    )
}

fn children_of(parent: &str, period: &str) -> RankingQuery {
    RankingQuery {
        metric: "online-dossier-rate".into(),
        period: period.to_owned(),
        parent_id: parent.to_owned(),
        ..RankingQuery::default()
    }
}

/// (agency, rank, numerator/denominator) of each row.
fn rows(rows: &[govpulse_proto::ranking::RankingRow]) -> Vec<(String, u32, String)> {
    rows.iter()
        .map(|r| {
            let rate = r
                .rate
                .as_ref()
                .map(|r| format!("{}/{}", r.numerator, r.denominator))
                .unwrap_or_default();
            (r.agency_id.clone(), r.rank, rate)
        })
        .collect()
}

#[tokio::test]
async fn departments_are_ranked_among_their_siblings_live_and_on_request() {
    let (dir, deployment) = Deployment::start_alone_with_catalog("children", write_catalog).await;
    let (at, day) = two_hours_ago();
    // d1 2 of 2 online, one of them through its commune (a commune counts for its
    // department); d2 1 of 2; d3 1 of 2 (tied with d2); Hà Nội's own and Hải Phòng's
    // events are not children of Hà Nội.
    let events = vec![
        received("a1", "ha-noi.d1", at, true),
        received("a2", "ha-noi.d1.c1", at, true),
        received("b1", "ha-noi.d2", at, true),
        received("b2", "ha-noi.d2", at, false),
        received("c1", "ha-noi.d3", at, false),
        received("c2", "ha-noi.d3", at, true),
        received("h1", "ha-noi", at, false),
        received("p1", "hai-phong", at, true),
    ];
    let reply = deployment.submit(events).await;
    assert_eq!(reply.accepted, 8, "{reply:?}");

    // The ranking of `parent`'s children, `what` naming it when it fails.
    let children = async |parent: &str, what: &str| {
        deployment
            .get_ranking(children_of(parent, &day))
            .await
            .expect(what)
    };
    let ranking = children("ha-noi", "a ranking of Hà Nội's departments").await;
    assert_eq!(
        rows(&ranking.rows),
        [
            ranked("ha-noi.d1", 1, "2/2"),
            ranked("ha-noi.d2", 2, "1/2"),
            ranked("ha-noi.d3", 2, "1/2"),
        ]
    );
    assert_eq!(ranking.ranked_count, 3);

    // One level down: the department's communes.
    let communes = children("ha-noi.d1", "a ranking of the department's communes").await;
    assert_eq!(rows(&communes.rows), [ranked("ha-noi.d1.c1", 1, "1/1")]);

    // Live: a new online dossier of d3 moves it above d2.
    let mut stream = deployment.watch_ranking(children_of("ha-noi", &day)).await;
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .expect("the snapshot arrives")
            .expect("the stream is open")
            .expect("a message");
        if matches!(
            message.event,
            Some(watch_ranking_response::Event::SnapshotComplete(_))
        ) {
            break;
        }
    }
    let reply = deployment
        .ingest()
        .submit_events(SubmitEventsRequest {
            events: vec![received("c3", "ha-noi.d3", at, true)],
        })
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(reply.accepted, 1);
    // Each message within a second, and the change itself within one too, heartbeats or not.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    let change = loop {
        let message = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the change arrives within a second")
            .expect("the stream is open")
            .expect("a message");
        if let Some(watch_ranking_response::Event::Changes(changes)) = message.event {
            break changes;
        }
    };
    let moved: Vec<(String, u32, u32)> = change
        .changes
        .iter()
        .filter_map(|c| {
            c.row
                .as_ref()
                .map(|r| (r.agency_id.clone(), r.rank, c.previous_rank))
        })
        .collect();
    assert!(
        moved.contains(&("ha-noi.d3".to_owned(), 2, 2))
            && moved.contains(&("ha-noi.d2".to_owned(), 3, 2)),
        "d3 (2/3) is now second and d2 third: {moved:?}"
    );

    // Bad scopes are named.
    for (query, field) in [
        (children_of("nowhere", &day), "query.parent_id"),
        (
            RankingQuery {
                block: Block::Province.into(),
                ..children_of("ha-noi", &day)
            },
            "query.parent_id",
        ),
    ] {
        let status = deployment.get_ranking(query).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains(field) || format!("{status:?}").contains(field),
            "{status:?}"
        );
    }
    deployment.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
