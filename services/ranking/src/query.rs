//! A ranking request, parsed: what the API edge turns a `RankingQuery` message into.

use govpulse_common::convert::{bad_request, block_from_proto};
use govpulse_core::{Block, Metric, Period, period::vietnam_day, ranking::Selection};
use govpulse_proto::ranking::{RankingQuery, ranking_query};
use time::OffsetDateTime;
use tonic::Status;

/// What to rank; equal queries share one live computation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// The metric.
    pub metric: Metric,
    /// The block.
    pub block: Block,
    /// The period as written (resolved to days by aggregate at each computation, so that
    /// `ytd` moves with the calendar).
    pub period: String,
    /// The rows shown.
    pub selection: Selection,
}

impl Query {
    /// Parses and checks a query message, naming the field that is wrong.
    pub fn parse(query: Option<RankingQuery>) -> Result<Query, Status> {
        let query = query.ok_or_else(|| bad_request("query", "is required"))?;
        let metric: Metric =
            query
                .metric
                .parse()
                .map_err(|e: govpulse_core::metric::UnknownMetric| {
                    bad_request("query.metric", &e.to_string())
                })?;
        let block = block_from_proto(query.block).ok_or_else(|| {
            bad_request(
                "query.block",
                "is required: BLOCK_MINISTRY or BLOCK_PROVINCE",
            )
        })?;
        Period::parse(&query.period, vietnam_day(OffsetDateTime::now_utc()))
            .map_err(|e| bad_request("query.period", &e.to_string()))?;
        let selection = match query.selection {
            None => Selection::All,
            Some(ranking_query::Selection::Top(0)) => {
                return Err(bad_request("query.top", "must be at least 1"));
            }
            Some(ranking_query::Selection::Bottom(0)) => {
                return Err(bad_request("query.bottom", "must be at least 1"));
            }
            Some(ranking_query::Selection::Top(n)) => Selection::Top(n),
            Some(ranking_query::Selection::Bottom(n)) => Selection::Bottom(n),
        };
        Ok(Query {
            metric,
            block,
            period: query.period.trim().to_owned(),
            selection,
        })
    }
}
