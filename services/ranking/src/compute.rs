//! One ranking computation: read block snapshots from aggregate (the period and the previous
//! comparable one), rank them with the core.

use govpulse_common::convert::{
    block_to_proto, counters_from_proto, period_to_proto, rate_to_proto,
};
use govpulse_core::{
    AgencyId, Catalog, Period,
    period::vietnam_day,
    ranking::{RankedRow, Rules, rank_with, ranked_count, select, with_movement},
};
use govpulse_proto::{
    aggregate::{
        GetBlockSnapshotRequest, PeriodRange, aggregate_service_client::AggregateServiceClient,
    },
    ranking::RankingRow,
};
use time::OffsetDateTime;
use tonic::{Status, transport::Channel};

use crate::query::Query;

/// A computed ranking: the rows a query shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranking {
    /// The days the period covered.
    pub period: PeriodRange,
    /// The rows shown.
    pub rows: Vec<RankedRow>,
    /// How many agencies are ranked.
    pub ranked_count: u32,
    /// The previous comparable period.
    pub previous_period: PeriodRange,
}

/// One period's ranking, every row.
async fn rank_period(
    aggregate: &AggregateServiceClient<Channel>,
    catalog: &Catalog,
    query: &Query,
    period: &str,
    rules: Rules,
) -> Result<(PeriodRange, Vec<RankedRow>), Status> {
    let snapshot = aggregate
        .clone()
        .get_block_snapshot(govpulse_common::telemetry::traced(
            GetBlockSnapshotRequest {
                block: block_to_proto(query.block).into(),
                period: period.to_owned(),
                metric: query.metric.name().to_owned(),
            },
        ))
        .await?
        .into_inner();
    // The catalog as it was on the period's last day gives the denominators of the
    // catalog-based metrics.
    let last_day = snapshot
        .period
        .as_ref()
        .and_then(|p| govpulse_core::period::parse_day(&p.last_day).ok())
        .ok_or_else(|| Status::internal("aggregate answered a snapshot without its last day"))?;
    let values = snapshot.agencies.iter().filter_map(|entry| {
        let agency = AgencyId::parse(&entry.agency_id).ok()?;
        let counters = entry
            .counters
            .as_ref()
            .map(counters_from_proto)
            .unwrap_or_default();
        let rate = query
            .metric
            .rate(&counters, &catalog.provision_facts(&agency, last_day));
        Some((agency, rate))
    });
    Ok((
        snapshot.period.unwrap_or_default(),
        rank_with(values, rules),
    ))
}

/// Computes a ranking now, with each row's rank in the previous comparable period.
pub async fn compute(
    aggregate: &AggregateServiceClient<Channel>,
    catalog: &Catalog,
    query: &Query,
    rules: Rules,
) -> Result<Ranking, Status> {
    let today = vietnam_day(OffsetDateTime::now_utc());
    let previous = Period::parse(&query.period, today)
        .map_err(|e| Status::invalid_argument(e.to_string()))?
        .previous();
    let (period, current) = rank_period(aggregate, catalog, query, &query.period, rules).await?;
    let (_, before) = rank_period(aggregate, catalog, query, previous.expression(), rules).await?;
    let ranking = with_movement(current, &before);
    Ok(Ranking {
        period,
        previous_period: period_to_proto(&previous),
        ranked_count: u32::try_from(ranked_count(&ranking)).unwrap_or(u32::MAX),
        rows: select(&ranking, query.selection).to_vec(),
    })
}

/// A ranked row as a message.
pub fn row_to_proto(catalog: &Catalog, row: &RankedRow) -> RankingRow {
    RankingRow {
        rank: row.rank,
        agency_id: row.agency.to_string(),
        agency_name: catalog
            .agency(&row.agency)
            .map(|a| a.name.clone())
            .unwrap_or_default(),
        rate: row.rate.map(rate_to_proto),
        below_minimum_volume: row.below_minimum,
        previous_period_rank: row.previous_rank.unwrap_or(0),
        places_gained: match (row.rank, row.previous_rank) {
            (0, _) | (_, None) => 0,
            (now, Some(before)) => i32::try_from(i64::from(before) - i64::from(now)).unwrap_or(0),
        },
    }
}
