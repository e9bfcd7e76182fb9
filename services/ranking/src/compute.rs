//! One ranking computation: read block snapshots from aggregate (the period and the previous
//! comparable one), rank them with the core. A composite index reads, in the same snapshot,
//! the counters its measured indicators need and the agencies' assessed scores, and ranks
//! the scores the core computes.

use govpulse_edge::convert::{
    counters_from_proto, freshness_from_proto, freshness_to_proto, period_to_proto, rate_to_proto,
};
use std::{collections::HashMap, sync::Arc};

use govpulse_core::{
    AgencyId, Catalog, Counter, Counters, Metric, Period, ProvisionFacts,
    index::{Profile, hundredths_text, parse_hundredths},
    ranking::{
        RankedRow, Rules, Scored, rank_scores_with, rank_with, ranked_count, select,
        with_freshness, with_movement,
    },
    report::{self, Counted},
};
use govpulse_proto::{
    aggregate::{
        AgencyCounters, GetBlockSnapshotRequest, PeriodRange,
        aggregate_service_client::AggregateServiceClient,
    },
    ranking::{GetRankingResponse, IndicatorPoints, RankingRow},
};
use tonic::transport::Channel;

use crate::{
    error::Error,
    publications::Frozen,
    query::{Measure, Query},
};

/// A computed ranking: the rows a query shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranking {
    /// The period as written, with the days aggregate resolved it to.
    pub period: PeriodRange,
    /// Those days: what a change notice is checked against (see `Hubs::run`), so that the
    /// period is resolved by one clock, aggregate's.
    pub days: Period,
    /// The rows shown.
    pub rows: Vec<RankedRow>,
    /// How many agencies are ranked.
    pub ranked_count: u32,
    /// The previous comparable period.
    pub previous_period: PeriodRange,
    /// The minimum volume applied (0: none applies).
    pub min_volume: u64,
    /// For a composite index, the most points a score can reach, with two decimals.
    pub max_score: String,
    /// The period includes aggregate's today: the ranking will still change.
    pub provisional: bool,
    /// The latest publication of this ranking, which the rows' `revised` flags compare
    /// with (`crate::publications::Latest::mark`); `None` until marked, or never published.
    pub publication: Option<Arc<Frozen>>,
}

/// One period's rows as aggregate's snapshot gave them.
struct Ranked {
    /// The period as written, with its days.
    range: PeriodRange,
    days: Period,
    rows: Vec<RankedRow>,
    provisional: bool,
}

/// One period's ranking, every row.
async fn rank_period(
    aggregate: &AggregateServiceClient<Channel>,
    catalog: &Catalog,
    query: &Query,
    period: &str,
    rules: Rules,
    read_freshness: bool,
) -> Result<Ranked, Error> {
    let (block, parent_id) = query.scope.to_proto();
    let request = match &query.measure {
        Measure::Metric(metric) => GetBlockSnapshotRequest {
            block,
            parent_id: parent_id.clone(),
            period: period.to_owned(),
            metric: metric.name().to_owned(),
            with_freshness: read_freshness,
            ..Default::default()
        },
        Measure::Index(profile) => GetBlockSnapshotRequest {
            block,
            parent_id,
            period: period.to_owned(),
            metrics: index_metrics(profile)
                .iter()
                .map(|m| m.name().to_owned())
                .collect(),
            assessed_profile: profile.name.clone(),
            with_freshness: read_freshness,
            ..Default::default()
        },
    };
    let snapshot = aggregate
        .clone()
        .get_block_snapshot(govpulse_runtime::telemetry::traced(request))
        .await
        .map_err(Error::Aggregate)?
        .into_inner();
    // The days aggregate resolved the period to: the members' values are measured as
    // aggregate's reports measure them (govpulse_core::report), against the catalog facts
    // of the agencies counted with each, as they were on the period's last day.
    let (range, days) = answered_period(snapshot.period.as_ref(), "a snapshot's period")?;
    let mut freshness = HashMap::with_capacity(snapshot.agencies.len());
    let (agencies, counters): (Vec<AgencyId>, Vec<Counters>) = snapshot
        .agencies
        .iter()
        .map(|entry| {
            let agency = AgencyId::parse(&entry.agency_id)
                .map_err(|e| Error::BadAnswer(format!("agency id {:?}: {e}", entry.agency_id)))?;
            let counters = entry
                .counters
                .as_ref()
                .map(counters_from_proto)
                .unwrap_or_default();
            if let Some(f) = &entry.freshness {
                let f = freshness_from_proto(f)
                    .map_err(|e| Error::BadAnswer(format!("freshness of {agency}: {e}")))?;
                freshness.insert(agency.clone(), f);
            }
            Ok((agency, counters))
        })
        .collect::<Result<Vec<_>, Error>>()?
        .into_iter()
        .unzip();
    let counted = Counted {
        period: &days,
        counters: &counters,
    };
    let rows = match &query.measure {
        Measure::Metric(metric) => {
            let rates = report::rates(catalog, *metric, &agencies, counted, days.last_day());
            rank_with(agencies.into_iter().zip(rates), rules)
        }
        Measure::Index(profile) => {
            let measured = !profile.metrics().is_empty();
            // As for a metric's rates: the catalog's facts only for an index that reads them.
            let uses_facts = profile.metrics().iter().any(|m| m.uses_provision_facts());
            let values = agencies
                .into_iter()
                .zip(&counters)
                .zip(&snapshot.agencies)
                .map(|((agency, counters), entry)| {
                    let facts = if uses_facts {
                        report::facts(catalog, &agency, &days, days.last_day())
                    } else {
                        ProvisionFacts::default()
                    };
                    score_of(profile, measured, agency, counters, &facts, entry)
                })
                .collect::<Result<Vec<_>, _>>()?;
            rank_scores_with(values, rules)
        }
    };
    Ok(Ranked {
        range: range.clone(),
        days,
        rows: with_freshness(rows, &freshness),
        provisional: snapshot.provisional,
    })
}

/// The days from `first_day` to `last_day` as aggregate answered them (a snapshot's period,
/// a basis). Named by `what` when unreadable: aggregate's fault (a version mismatch), never
/// the caller's.
pub(crate) fn answered_days(first_day: &str, last_day: &str, what: &str) -> Result<Period, Error> {
    let day = |raw: &str| {
        govpulse_core::period::parse_day(raw).map_err(|e| Error::BadAnswer(format!("{what}: {e}")))
    };
    Ok(Period::from_days(day(first_day)?, day(last_day)?))
}

/// The period aggregate answered with and its days ([`answered_days`]), named by `what`
/// when missing or unreadable: aggregate's fault, never the caller's.
pub(crate) fn answered_period<'a>(
    period: Option<&'a PeriodRange>,
    what: &str,
) -> Result<(&'a PeriodRange, Period), Error> {
    let range = period.ok_or_else(|| Error::BadAnswer(format!("{what}: missing")))?;
    let days = answered_days(&range.first_day, &range.last_day, what)?;
    Ok((range, days))
}

/// The metrics a composite index reads: its measured indicators', and, when it has any,
/// the online dossier rate for its denominator, dossiers received, which is the volume the
/// minimum applies to.
fn index_metrics(profile: &Profile) -> Vec<Metric> {
    let mut metrics = profile.metrics();
    if !metrics.is_empty() && !metrics.contains(&Metric::OnlineDossierRate) {
        metrics.push(Metric::OnlineDossierRate);
    }
    metrics
}

/// One agency's score on a profile from its counters and snapshot entry, with its volume:
/// dossiers received when the profile has `measured` indicators, none otherwise.
fn score_of(
    profile: &Profile,
    measured: bool,
    agency: AgencyId,
    counters: &Counters,
    facts: &ProvisionFacts,
    entry: &AgencyCounters,
) -> Result<Scored, Error> {
    let assessed: HashMap<&str, u64> = entry
        .assessed
        .iter()
        .map(|a| {
            parse_hundredths(&a.points)
                .map(|h| (a.criterion.as_str(), h))
                .map_err(|e| Error::BadAnswer(format!("assessed points {e}")))
        })
        .collect::<Result<_, _>>()?;
    let score = profile.score(
        |metric| metric.rate(counters, facts),
        |criterion| assessed.get(criterion).copied(),
    );
    let volume = measured.then(|| counters.get(Counter::Received));
    Ok((agency, score, volume))
}

/// Computes a ranking now, with each row's rank in the previous comparable period.
pub async fn compute(
    aggregate: &AggregateServiceClient<Channel>,
    catalog: &Catalog,
    query: &Query,
    rules: Rules,
) -> Result<Ranking, Error> {
    // aggregate resolves the period with its clock; the previous one follows from the days
    // it answered with, so the two are never resolved against two different "todays".
    let current = rank_period(aggregate, catalog, query, &query.period, rules, true).await?;
    let previous = current.days.previous();
    // The previous period only gives ranks: its freshness is not read.
    let before = rank_period(
        aggregate,
        catalog,
        query,
        previous.expression(),
        rules,
        false,
    )
    .await?;
    let ranking = with_movement(current.rows, &before.rows);
    let (min_volume, max_score) = match &query.measure {
        Measure::Metric(_) => (rules.min_volume, String::new()),
        // A profile of assessed criteria only has no volume to apply a minimum to.
        Measure::Index(profile) => (
            if profile.metrics().is_empty() {
                0
            } else {
                rules.min_volume
            },
            hundredths_text(profile.total_hundredths),
        ),
    };
    Ok(Ranking {
        period: current.range,
        days: current.days,
        provisional: current.provisional,
        previous_period: period_to_proto(&previous),
        ranked_count: u32::try_from(ranked_count(&ranking)).unwrap_or(u32::MAX),
        rows: select(&ranking, query.selection).to_vec(),
        min_volume,
        max_score,
        publication: None,
    })
}

/// A ranking as a message: every row it holds, and the publication it names.
pub fn ranking_to_proto(catalog: &Catalog, ranking: Ranking) -> GetRankingResponse {
    GetRankingResponse {
        rows: ranking
            .rows
            .iter()
            .map(|r| row_to_proto(catalog, r))
            .collect(),
        period: Some(ranking.period),
        ranked_count: ranking.ranked_count,
        previous_period: Some(ranking.previous_period),
        min_volume: ranking.min_volume,
        max_score: ranking.max_score,
        provisional: ranking.provisional,
        publication: ranking.publication.map(|p| p.summary.clone()),
    }
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
        score: row
            .score
            .as_ref()
            .map(|s| s.total.two_decimals())
            .unwrap_or_default(),
        grade: row
            .score
            .as_ref()
            .and_then(|s| s.grade.clone())
            .unwrap_or_default(),
        indicators: row
            .score
            .iter()
            .flat_map(|s| &s.indicators)
            .map(|i| IndicatorPoints {
                criterion: i.criterion.clone(),
                points: i
                    .points
                    .as_ref()
                    .map(govpulse_core::index::Points::two_decimals)
                    .unwrap_or_default(),
                max_points: hundredths_text(i.max_hundredths),
            })
            .collect(),
        incomplete: row.score.as_ref().is_some_and(|s| s.incomplete),
        below_minimum_volume: row.below_minimum,
        previous_period_rank: row.previous_rank.unwrap_or(0),
        places_gained: match (row.rank, row.previous_rank) {
            (0, _) | (_, None) => 0,
            (now, Some(before)) => i32::try_from(i64::from(before) - i64::from(now)).unwrap_or(0),
        },
        freshness: Some(freshness_to_proto(&row.freshness)),
        revised: row.revised,
    }
}
