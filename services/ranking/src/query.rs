//! A ranking request, parsed: what the API edge turns a `RankingQuery` message into.

use std::{
    hash::{Hash, Hasher},
    sync::Arc,
};

use govpulse_common::convert::{bad_request, block_from_proto};
use govpulse_core::{
    Block, Metric, Period,
    index::{Profile, Profiles},
    period::vietnam_day,
    ranking::Selection,
};
use govpulse_proto::ranking::{RankingQuery, ranking_query};
use time::OffsetDateTime;
use tonic::Status;

/// What agencies are ranked by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measure {
    /// A metric's value.
    Metric(Metric),
    /// A composite index's score, with the profile as it was when the query was parsed: a
    /// live ranking keeps its profile, and a query parsed after the profiles file changed
    /// is a different query.
    Index(Arc<Profile>),
}

/// Hashes what identifies the measure (equal measures have equal names).
impl Hash for Measure {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Measure::Metric(metric) => (0u8, metric.name()).hash(state),
            Measure::Index(profile) => (1u8, profile.name.as_str()).hash(state),
        }
    }
}

/// What to rank; equal queries share one live computation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// The metric or composite index.
    pub measure: Measure,
    /// The block.
    pub block: Block,
    /// The period as written (resolved to days by aggregate at each computation, so that
    /// `ytd` moves with the calendar).
    pub period: String,
    /// The rows shown.
    pub selection: Selection,
}

impl Query {
    /// Parses and checks a query message against the composite index `profiles` in force,
    /// naming the field that is wrong.
    pub fn parse(query: Option<RankingQuery>, profiles: &Profiles) -> Result<Query, Status> {
        let query = query.ok_or_else(|| bad_request("query", "is required"))?;
        let measure = match (query.metric.trim(), query.index.trim()) {
            (_, "") => Measure::Metric(query.metric.parse().map_err(
                |e: govpulse_core::metric::UnknownMetric| {
                    bad_request("query.metric", &e.to_string())
                },
            )?),
            ("", name) => Measure::Index(Arc::new(
                profiles
                    .get(name)
                    .ok_or_else(|| {
                        bad_request(
                            "query.index",
                            &format!(
                                "unknown composite index {name:?}; the indexes are {}",
                                profiles.names()
                            ),
                        )
                    })?
                    .clone(),
            )),
            (_, _) => {
                return Err(bad_request(
                    "query.index",
                    "set either metric or index, not both",
                ));
            }
        };
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
            measure,
            block,
            period: query.period.trim().to_owned(),
            selection,
        })
    }
}
