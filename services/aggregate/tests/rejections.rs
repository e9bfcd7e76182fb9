//! Data quality through the aggregate API: the events ingest rejected (ApplyEvents'
//! `rejected_upstream`) and those aggregate rejects itself count per agency and Vietnam day
//! for the agency's whole chain, beside its accepted events, in GetMetrics and GetBlockMetrics
//! (`daily_events_days`); an unknown agency is never counted, and bad fields are refused by
//! name before anything is.

mod support;

use std::sync::Arc;

use govpulse_aggregate::{AggregateApi, Error};
use govpulse_core::{
    AcceptancePolicy, Catalog, CatalogBuilder, period::vietnam_day, targets::Targets,
};
use govpulse_proto::{
    aggregate::{
        AgencyRejections, ApplyEventsRequest, DailyEvents, GetBlockMetricsRequest,
        GetMetricsRequest, get_block_metrics_request::Scope,
    },
    catalog::Block,
    event::{DossierEvent, FeePaid, OutcomeStatus, dossier_event::Kind},
};
use govpulse_runtime::targets_file::LiveTargets;
use govpulse_store::MemoryStore;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

fn catalog() -> Catalog {
    support::two_provinces(Catalog::builder())
        .and_then(|b| {
            b.procedures_csv(
                "x",
                "id,agency_id,name,provision,eligible_full_online\nhb.full,hoa-binh,A,full,true\n",
            )
        })
        .and_then(CatalogBuilder::build)
        .expect("catalog")
}

fn api() -> AggregateApi {
    AggregateApi::new(
        Arc::new(catalog()),
        Arc::new(MemoryStore::new()),
        AcceptancePolicy::default(),
        LiveTargets::fixed(Targets::default()),
        CancellationToken::new(),
    )
}

/// A fee paid an hour ago for a dossier of `agency`.
fn fee(event_id: &str, agency: &str) -> DossierEvent {
    let at = OffsetDateTime::now_utc() - time::Duration::hours(1);
    DossierEvent {
        event_id: event_id.to_owned(),
        agency_id: agency.to_owned(),
        dossier_id: format!("d-{event_id}"),
        procedure_id: "hb.full".to_owned(),
        occurred_at: support::timestamp(at),
        kind: Some(Kind::FeePaid(FeePaid { online: true })),
        corrects: String::new(),
    }
}

fn upstream(agency: &str, count: u32) -> AgencyRejections {
    AgencyRejections {
        agency_id: agency.to_owned(),
        count,
    }
}

/// Today's events of `agency` as GetMetrics lists them (the last of its 30 days).
async fn today(api: &AggregateApi, agency: &str) -> DailyEvents {
    let response = api
        .metrics(GetMetricsRequest {
            agency_id: agency.to_owned(),
            period: "ytd".to_owned(),
            metrics: vec!["online-dossier-rate".to_owned()],
            ..Default::default()
        })
        .await
        .expect("metrics");
    assert_eq!(response.accepted_per_day.len(), 30);
    response.accepted_per_day.last().cloned().expect("today")
}

fn events(day: &str, accepted: u64, rejected: u64) -> DailyEvents {
    DailyEvents {
        day: day.to_owned(),
        accepted,
        rejected,
    }
}

fn refused_field(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::InvalidArgument(invalid)) => invalid.field,
        other => panic!("not refused for a field: {other:?}"),
    }
}

#[tokio::test]
async fn rejected_events_count_for_the_chain_of_a_known_agency_beside_accepted_ones() {
    let api = api();
    let day = vietnam_day(OffsetDateTime::now_utc()).to_string();
    let mut no_kind = fee("e2", "hb.dept");
    no_kind.kind = None;
    let response = api
        .apply(ApplyEventsRequest {
            events: vec![
                fee("e1", "hoa-binh"),
                no_kind,
                fee("e3", "nowhere"),
                fee("e4", "not an id!"),
            ],
            rejected_upstream: vec![upstream("hb.dept.commune", 2), upstream("quang-ninh", 1)],
        })
        .await
        .expect("apply");
    let statuses: Vec<i32> = response.outcomes.iter().map(|o| o.status).collect();
    let rejected = OutcomeStatus::Rejected as i32;
    assert_eq!(
        statuses,
        [OutcomeStatus::Accepted as i32, rejected, rejected, rejected]
    );
    // hb.dept's own rejection and its commune's, for it and its province; the unknown
    // agencies for nobody.
    assert_eq!(today(&api, "hoa-binh").await, events(&day, 1, 3));
    assert_eq!(today(&api, "hb.dept").await, events(&day, 0, 3));
    assert_eq!(today(&api, "hb.dept.commune").await, events(&day, 0, 2));
    assert_eq!(today(&api, "quang-ninh").await, events(&day, 0, 1));

    // A batch whose every event ingest rejected: no event, its rejections still count.
    let response = api
        .apply(ApplyEventsRequest {
            events: vec![],
            rejected_upstream: vec![upstream("hoa-binh", 4)],
        })
        .await
        .expect("apply");
    assert!(response.outcomes.is_empty());
    assert_eq!(today(&api, "hoa-binh").await, events(&day, 1, 7));

    // GetBlockMetrics: the last days asked for, today last, for each agency returned.
    let block = |days| GetBlockMetricsRequest {
        scope: Some(Scope::Block(Block::Province.into())),
        metric: "online-dossier-rate".to_owned(),
        period: "ytd".to_owned(),
        daily_events_days: days,
        ..Default::default()
    };
    let response = api.block_metrics(block(3)).await.expect("block metrics");
    let shown: Vec<(&str, Vec<(u64, u64)>)> = response
        .agencies
        .iter()
        .map(|a| {
            let days = a.daily_events.iter().map(|d| (d.accepted, d.rejected));
            (a.agency_id.as_str(), days.collect())
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("hoa-binh", vec![(0, 0), (0, 0), (1, 7)]),
            ("quang-ninh", vec![(0, 0), (0, 0), (0, 1)]),
        ]
    );
    assert_eq!(response.agencies[0].daily_events[2].day, day);
    let none = api.block_metrics(block(0)).await.expect("block metrics");
    assert!(none.agencies.iter().all(|a| a.daily_events.is_empty()));
    let most = api.block_metrics(block(30)).await.expect("block metrics");
    assert!(most.agencies.iter().all(|a| a.daily_events.len() == 30));
    assert_eq!(
        refused_field(api.block_metrics(block(31)).await),
        "daily_events_days"
    );
}

#[tokio::test]
async fn bad_upstream_rejections_are_refused_by_field_and_count_nothing() {
    let api = api();
    let day = vietnam_day(OffsetDateTime::now_utc()).to_string();
    let apply = |rejected_upstream| {
        api.apply(ApplyEventsRequest {
            events: vec![fee("e1", "hoa-binh")],
            rejected_upstream,
        })
    };
    assert_eq!(
        refused_field(apply(vec![upstream("hoa-binh", 0)]).await),
        "rejected_upstream[0].count"
    );
    assert_eq!(
        refused_field(apply(vec![upstream("hoa-binh", 10_001)]).await),
        "rejected_upstream"
    );
    assert_eq!(
        refused_field(apply(vec![upstream("hoa-binh", 1); 10_001]).await),
        "rejected_upstream"
    );
    assert_eq!(
        today(&api, "hoa-binh").await,
        events(&day, 0, 0),
        "nothing of a refused call is counted"
    );
}
