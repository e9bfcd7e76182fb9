//! A ranking request, parsed: what the API edge turns a `RankingQuery` message into.

use std::{
    hash::{Hash, Hasher},
    sync::Arc,
};

use crate::error::Error;
use govpulse_core::{
    AgencyId, Block, Catalog, Metric, Period,
    index::{Profile, Profiles},
    period::vietnam_day,
    ranking::Selection,
};
use govpulse_edge::convert::{InvalidField, block_from_proto};
use govpulse_proto::ranking::{RankingQuery, ranking_query};
use time::OffsetDateTime;

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

/// Which agencies are ranked against each other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The top-level agencies of a block (ministries, or provinces).
    Block(Block),
    /// The direct children of one agency (units with their siblings).
    Children(AgencyId),
}

impl Scope {
    /// The scope as a snapshot request names it: a block, or a parent's id (the other left
    /// at its default).
    pub fn to_proto(&self) -> (i32, String) {
        match self {
            Scope::Block(block) => (
                govpulse_edge::convert::block_to_proto(*block).into(),
                String::new(),
            ),
            Scope::Children(parent) => (0, parent.to_string()),
        }
    }

    /// Whether an event reported by `agency` (or one of its units) can change this scope's
    /// ranking: `agency` is an agency of the block, or the parent (or a child, or below).
    pub fn is_touched_by(&self, catalog: &Catalog, agency: &AgencyId) -> bool {
        match self {
            Scope::Block(block) => catalog.agency(agency).is_some_and(|a| a.block == *block),
            // A notice lists every agency of each event's chain, so an event below the
            // parent lists the parent too.
            Scope::Children(parent) => parent == agency,
        }
    }
}

/// What to rank; equal queries share one live computation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// The metric or composite index.
    pub measure: Measure,
    /// The agencies ranked.
    pub scope: Scope,
    /// The period as written (resolved to days by aggregate at each computation, so that
    /// `ytd` moves with the calendar).
    pub period: String,
    /// The rows shown.
    pub selection: Selection,
}

impl Query {
    /// The query whose live ranking this one shows a view of: every row. Queries that differ
    /// only in their top or bottom N share it.
    pub fn live(&self) -> Query {
        Query {
            selection: Selection::All,
            ..self.clone()
        }
    }

    /// Parses and checks a query message against the composite index `profiles` in force,
    /// naming the field that is wrong.
    pub fn parse(
        query: Option<RankingQuery>,
        profiles: &Profiles,
        catalog: &Catalog,
    ) -> Result<Query, Error> {
        let query = query.ok_or_else(|| Error::invalid("query", "is required"))?;
        let measure = match (query.metric.trim(), query.index.trim()) {
            (_, "") if !query.criteria.is_empty() => {
                return Err(Error::invalid(
                    "query.criteria",
                    "ranks by criteria of a composite index: set index too",
                ));
            }
            (_, "") => Measure::Metric(query.metric.parse().map_err(
                |e: govpulse_core::metric::UnknownMetric| {
                    Error::invalid("query.metric", e.to_string())
                },
            )?),
            ("", name) => {
                let profile = profiles.get(name).ok_or_else(|| {
                    Error::invalid(
                        "query.index",
                        format!(
                            "unknown composite index {name:?}; the indexes are {}",
                            profiles.names()
                        ),
                    )
                })?;
                // One criterion or a group of them ranks as a profile of its own.
                let profile = if query.criteria.is_empty() {
                    profile.clone()
                } else {
                    let criteria: Vec<String> =
                        query.criteria.iter().map(|c| c.trim().to_owned()).collect();
                    profile
                        .part(&criteria)
                        .map_err(|e| Error::invalid("query.criteria", e))?
                };
                Measure::Index(Arc::new(profile))
            }
            (_, _) => {
                return Err(Error::invalid(
                    "query.index",
                    "set either metric or index, not both",
                ));
            }
        };
        let scope = match (query.parent_id.trim(), block_from_proto(query.block)) {
            ("", Some(block)) => Scope::Block(block),
            ("", None) => {
                return Err(Error::invalid(
                    "query.block",
                    "is required (BLOCK_MINISTRY or BLOCK_PROVINCE) unless parent_id is set",
                ));
            }
            (parent, None) => Scope::Children(
                catalog
                    .agency_by_str(parent)
                    .ok_or_else(|| {
                        Error::invalid(
                            "query.parent_id",
                            format!(
                                "unknown agency {parent:?}; CatalogService.ListAgencies lists them"
                            ),
                        )
                    })?
                    .id
                    .clone(),
            ),
            (_, Some(_)) => {
                return Err(Error::invalid(
                    "query.parent_id",
                    "set either block or parent_id, not both",
                ));
            }
        };
        Period::parse(&query.period, vietnam_day(OffsetDateTime::now_utc()))
            .map_err(|e| Error::invalid("query.period", e.to_string()))?;
        let selection = match query.selection {
            None => Selection::All,
            Some(ranking_query::Selection::Top(0)) => {
                return Err(Error::invalid("query.top", "must be at least 1"));
            }
            Some(ranking_query::Selection::Bottom(0)) => {
                return Err(Error::invalid("query.bottom", "must be at least 1"));
            }
            Some(ranking_query::Selection::Top(n)) => Selection::Top(n),
            Some(ranking_query::Selection::Bottom(n)) => Selection::Bottom(n),
        };
        Ok(Query {
            measure,
            scope,
            period: query.period.trim().to_owned(),
            selection,
        })
    }
}
