//! One ranking computation: read a block snapshot from aggregate, rank it with the core.

use govpulse_common::convert::{block_to_proto, counters_from_proto, rate_to_proto};
use govpulse_core::{
    AgencyId, Catalog,
    ranking::{RankedRow, rank, ranked_count, select},
};
use govpulse_proto::{
    aggregate::{
        GetBlockSnapshotRequest, PeriodRange, aggregate_service_client::AggregateServiceClient,
    },
    ranking::RankingRow,
};
use tonic::{Status, transport::Channel};

use crate::query::Query;

/// A computed ranking: the rows a query shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranking {
    /// The days the period covered.
    pub period: PeriodRange,
    /// The rows shown.
    pub rows: Vec<RankedRow>,
    /// How many agencies have a value.
    pub ranked_count: u32,
}

/// Computes a ranking now.
pub async fn compute(
    aggregate: &AggregateServiceClient<Channel>,
    catalog: &Catalog,
    query: &Query,
) -> Result<Ranking, Status> {
    let snapshot = aggregate
        .clone()
        .get_block_snapshot(GetBlockSnapshotRequest {
            block: block_to_proto(query.block).into(),
            period: query.period.clone(),
            metric: query.metric.name().to_owned(),
        })
        .await?
        .into_inner();
    let values = snapshot.agencies.iter().filter_map(|entry| {
        let agency = AgencyId::parse(&entry.agency_id).ok()?;
        let counters = entry
            .counters
            .as_ref()
            .map(counters_from_proto)
            .unwrap_or_default();
        let rate = query
            .metric
            .rate(&counters, &catalog.provision_facts(&agency));
        Some((agency, rate))
    });
    let ranking = rank(values);
    Ok(Ranking {
        period: snapshot.period.unwrap_or_default(),
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
    }
}
