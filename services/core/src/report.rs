//! The read model's second half: figures built from counters that were read
//! ([`crate::reading`] plans the reads).
//!
//! Every rate a client sees goes through [`fractions`]: an agency's counters over a period
//! are measured against the catalog facts of the agencies counted with it, as the catalog
//! had them on the period's last day. aggregate's GetMetrics and GetBlockMetrics, and
//! ranking's rankings, all call it, so a ranking and a block's metrics cannot disagree.

use time::Date;

use crate::{
    Agency, AgencyId, Block, Catalog, Counters, Metric, Period, ProvisionFacts, Rate,
    summary::{Summary, summarize},
    targets::{Targets, Verdict},
};

/// Which agencies are compared with each other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The top-level agencies of a block (ministries, or provinces).
    Block(Block),
    /// The direct children of one agency.
    Children(AgencyId),
    /// Every top-level agency, of both blocks.
    Nation,
}

impl Scope {
    /// The members on `day`: the agencies of the scope that existed that day, a merged
    /// agency's predecessors until the day before the merger and its successor from then on.
    pub fn members<'a>(&self, catalog: &'a Catalog, day: Date) -> Vec<&'a Agency> {
        match self {
            Scope::Block(block) => catalog.block_members_on(*block, day).collect(),
            Scope::Children(parent) => catalog
                .children(parent)
                .into_iter()
                .filter(|a| a.exists_on(day))
                .collect(),
            Scope::Nation => catalog
                .agencies()
                .filter(|a| a.parent.is_none() && a.exists_on(day))
                .collect(),
        }
    }

    /// The parent whose roll-up of its children holds the members' counters, if any.
    pub fn parent(&self) -> Option<&AgencyId> {
        match self {
            Scope::Children(parent) => Some(parent),
            Scope::Block(_) | Scope::Nation => None,
        }
    }
}

/// The agencies counted with `agency` over `period`: itself, then those it absorbed after
/// the period began and by `as_of`.
fn constituents(
    catalog: &Catalog,
    agency: &AgencyId,
    period: &Period,
    as_of: Date,
) -> Vec<AgencyId> {
    catalog.constituents_within(agency, period.first_day(), as_of)
}

/// The catalog facts `agency`'s counters over `period` are measured against: the procedure
/// counts of the agencies counted with it, as the catalog had them on the period's last day.
pub fn facts(catalog: &Catalog, agency: &AgencyId, period: &Period, as_of: Date) -> ProvisionFacts {
    catalog.provision_facts_of(
        &constituents(catalog, agency, period, as_of),
        period.last_day(),
    )
}

/// The agencies `agency` absorbed after `period` began and by `as_of`, whose counts are in
/// its figures (the `merged_from` of a report).
pub fn merged_from(
    catalog: &Catalog,
    agency: &AgencyId,
    period: &Period,
    as_of: Date,
) -> Vec<AgencyId> {
    if !catalog.absorbed_any(agency) {
        return Vec::new();
    }
    constituents(catalog, agency, period, as_of)
        .into_iter()
        .skip(1)
        .collect()
}

/// Counters read for a list of agencies over one period, in the list's order.
#[derive(Debug, Clone, Copy)]
pub struct Counted<'a> {
    /// The period read.
    pub period: &'a Period,
    /// Each agency's counters over it.
    pub counters: &'a [Counters],
}

/// Each agency's numerator and denominator of `metric` over `counted.period`, the agencies
/// taken as they were on `as_of` (see [`facts`]).
pub fn fractions(
    catalog: &Catalog,
    metric: Metric,
    agencies: &[AgencyId],
    counted: Counted<'_>,
    as_of: Date,
) -> Vec<(u64, u64)> {
    agencies
        .iter()
        .zip(counted.counters)
        .map(|(agency, counters)| {
            // Most metrics do not look at the catalog's facts: 10,000 units skip 20,000
            // lookups.
            let facts = if metric.uses_provision_facts() {
                facts(catalog, agency, counted.period, as_of)
            } else {
                ProvisionFacts::default()
            };
            metric.fraction(counters, &facts)
        })
        .collect()
}

/// Each agency's value of `metric` (see [`fractions`]).
pub fn rates(
    catalog: &Catalog,
    metric: Metric,
    agencies: &[AgencyId],
    counted: Counted<'_>,
    as_of: Date,
) -> Vec<Option<Rate>> {
    fractions(catalog, metric, agencies, counted, as_of)
        .into_iter()
        .map(|(n, d)| Rate::new(n, d))
        .collect()
}

/// The counters a report compares: the period asked for and the periods it is compared
/// with.
#[derive(Debug, Clone, Copy)]
pub struct Periods<'a> {
    /// The period asked for.
    pub now: Counted<'a>,
    /// The same period of last year.
    pub last_year: Counted<'a>,
    /// The period just before, of the same kind (one agency's report only).
    pub previous: Option<Counted<'a>>,
    /// An earlier period the client asked to compare with.
    pub base: Option<Counted<'a>>,
}

/// One metric of one agency against the periods it is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricLine {
    /// The metric.
    pub metric: Metric,
    /// Its value over the period.
    pub rate: Option<Rate>,
    /// Over the same period of last year.
    pub same_period_last_year: Option<Rate>,
    /// Over the previous period.
    pub previous_period: Option<Rate>,
    /// Over the base period, when one was asked for.
    pub base: Option<Rate>,
    /// The standing against the target of the period's year, when one applies.
    pub target: Option<Verdict>,
}

/// One agency's report (GetMetrics): each of `metrics` over every period, the agency as it
/// is now (with every agency it absorbed since each period began). `periods` hold one
/// agency's counters each.
pub fn agency_report(
    catalog: &Catalog,
    targets: &Targets,
    agency: &AgencyId,
    metrics: &[Metric],
    periods: &Periods<'_>,
) -> Vec<MetricLine> {
    let agencies = std::slice::from_ref(agency);
    let value = |metric, counted: Counted<'_>| {
        rates(catalog, metric, agencies, counted, Date::MAX)
            .into_iter()
            .next()
            .flatten()
    };
    metrics
        .iter()
        .map(|&metric| {
            let rate = value(metric, periods.now);
            MetricLine {
                metric,
                rate,
                same_period_last_year: value(metric, periods.last_year),
                previous_period: periods.previous.and_then(|p| value(metric, p)),
                base: periods.base.and_then(|b| value(metric, b)),
                target: targets.verdict(
                    catalog,
                    agency,
                    metric,
                    periods.now.period.last_day().year(),
                    rate,
                ),
            }
        })
        .collect()
}

/// One member's row in a block's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow<'a> {
    /// The member.
    pub agency: &'a AgencyId,
    /// Its value over the period.
    pub rate: Option<Rate>,
    /// Over the same period of last year, for the same agencies.
    pub same_period_last_year: Option<Rate>,
    /// Over the base period, when one was asked for.
    pub base: Option<Rate>,
    /// Its standing against its target for the period's year.
    pub target: Option<Verdict>,
    /// The agencies it absorbed within the period, counted in its figures.
    pub merged_from: Vec<AgencyId>,
}

/// A block's report (GetBlockMetrics): each member's row, and the block as one figure.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockReport<'a> {
    /// The members' rows, in the members' order.
    pub rows: Vec<BlockRow<'a>>,
    /// The block over the period.
    pub summary: Summary,
    /// The block over the same period of last year.
    pub summary_last_year: Summary,
    /// The block over the base period, when one was asked for.
    pub summary_base: Option<Summary>,
    /// Members with data and a target: whether one without data meets its target is
    /// unknown.
    pub with_target: usize,
    /// Of those, the members meeting it.
    pub meeting_target: usize,
}

/// A block's report over `metric`: the members as they were on the period's last day, each
/// compared, over any other period, with the same agencies, so that no dossier counts for
/// two members. `periods` hold the members' counters in `members`' order.
pub fn block_report<'a>(
    catalog: &Catalog,
    targets: &Targets,
    metric: Metric,
    members: &'a [AgencyId],
    periods: &Periods<'_>,
) -> BlockReport<'a> {
    let period = periods.now.period;
    let as_of = period.last_day();
    let fractions = |counted| fractions(catalog, metric, members, counted, as_of);
    let now = fractions(periods.now);
    let last_year = fractions(periods.last_year);
    let base = periods.base.map(fractions);
    let rate = |(n, d): (u64, u64)| Rate::new(n, d);
    let rows: Vec<BlockRow> = members
        .iter()
        .enumerate()
        .map(|(i, agency)| BlockRow {
            agency,
            rate: rate(now[i]),
            same_period_last_year: rate(last_year[i]),
            base: base.as_ref().and_then(|b| rate(b[i])),
            target: targets.verdict(catalog, agency, metric, as_of.year(), rate(now[i])),
            merged_from: merged_from(catalog, agency, period, as_of),
        })
        .collect();
    let met = rows.iter().filter_map(|r| r.target.as_ref()?.met);
    BlockReport {
        with_target: met.clone().count(),
        meeting_target: met.filter(|m| *m).count(),
        summary: summarize(now),
        summary_last_year: summarize(last_year),
        summary_base: base.map(summarize),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::date;

    use super::*;
    use crate::Counter;
    use crate::testing::{Table, catalog_of, id};

    /// Provinces `a` (absorbing `b` on 2025-07-01) and `c`; a procedure each, provided
    /// online.
    fn catalog() -> Catalog {
        catalog_of(&[
            (Table::Provinces, "code,id,name\n01,a,A\n02,b,B\n03,c,C\n"),
            (
                Table::Mergers,
                "successor_id,successor_name,predecessor_ids,effective\na,A,a;b,2025-07-01\n",
            ),
            (
                Table::Procedures,
                "id,agency_id,name,provision,eligible_full_online\n\
                 pa,a,P,full,true\npb,b,P,partial,true\npc,c,P,info,false\n",
            ),
        ])
    }

    fn received(total: u64, online: u64) -> Counters {
        Counters::from_pairs([
            (Counter::Received, total),
            (Counter::ReceivedOnline, online),
        ])
    }

    fn targets(catalog: &Catalog) -> Targets {
        Targets::parse(
            "[[targets]]\nmetric = \"online-dossier-rate\"\nyear = 2025\nblock = \"province\"\npercent = 50\n",
            catalog,
        )
        .expect("targets")
    }

    #[test]
    fn a_block_report_rates_summarises_and_counts_targets_among_members_with_data() {
        let catalog = catalog();
        let targets = targets(&catalog);
        let q4 = Period::parse("2025-Q4", date!(2026 - 01 - 10)).expect("period");
        let q4_2024 = q4.same_period_last_year();
        let members = [id("a"), id("c")];
        let now = [received(10, 6), Counters::default()];
        let then = [received(4, 1), received(2, 2)];
        let report = block_report(
            &catalog,
            &targets,
            Metric::OnlineDossierRate,
            &members,
            &Periods {
                now: Counted {
                    period: &q4,
                    counters: &now,
                },
                last_year: Counted {
                    period: &q4_2024,
                    counters: &then,
                },
                previous: None,
                base: None,
            },
        );
        assert_eq!(report.rows[0].rate, Rate::new(6, 10));
        assert_eq!(report.rows[1].rate, None);
        assert_eq!(report.rows[1].same_period_last_year, Rate::new(2, 2));
        assert_eq!(report.summary.pooled, Rate::new(6, 10));
        assert_eq!(report.summary_last_year.pooled, Rate::new(3, 6));
        assert_eq!((report.with_target, report.meeting_target), (1, 1));
        assert!(
            report.rows[0].merged_from.is_empty(),
            "Q4 began after the merger"
        );
    }

    #[test]
    fn a_merged_agency_is_measured_against_the_procedures_of_its_predecessors_too() {
        let catalog = catalog();
        let year = Period::parse("2025", date!(2026 - 01 - 10)).expect("period");
        let h1 = Period::parse("2025-01-01..2025-06-30", date!(2026 - 01 - 10)).expect("h1");
        let counters = [Counters::default()];
        let provision = |period: &Period| {
            rates(
                &catalog,
                Metric::OnlineProvisionRate,
                &[id("a")],
                Counted {
                    period,
                    counters: &counters,
                },
                Date::MAX,
            )[0]
        };
        // Before the merger, b's procedure counts beside a's; from it on, only a's.
        assert_eq!(provision(&h1), Rate::new(2, 2));
        assert_eq!(provision(&year), Rate::new(1, 1));
        assert_eq!(merged_from(&catalog, &id("a"), &year, Date::MAX), [id("b")]);
        assert_eq!(
            Scope::Block(Block::Province)
                .members(&catalog, date!(2025 - 06 - 30))
                .len(),
            3
        );
        assert_eq!(
            Scope::Nation.members(&catalog, date!(2025 - 07 - 01)).len(),
            2
        );
    }

    proptest! {
        /// An agency's own report and its row in a block give the same value and standing.
        #[test]
        fn one_agency_reads_as_its_row_in_the_block(
            values in prop::collection::vec((0u64..50, 0u64..50), 2),
            metric in prop::sample::select(Metric::ALL.to_vec()),
        ) {
            let catalog = catalog();
            let targets = targets(&catalog);
            let period = Period::parse("2025-Q4", date!(2026 - 01 - 10)).expect("period");
            let members = [id("a"), id("c")];
            let counters: Vec<Counters> = values
                .iter()
                .map(|&(n, extra)| Counters::from_pairs(
                    Counter::ALL.into_iter().enumerate().map(|(i, c)| (c, n + extra * (i as u64 % 2)))
                ))
                .collect();
            let counted = Counted { period: &period, counters: &counters };
            let periods = Periods { now: counted, last_year: counted, previous: None, base: None };
            let block = block_report(&catalog, &targets, metric, &members, &periods);
            for (i, agency) in members.iter().enumerate() {
                let own = agency_report(&catalog, &targets, agency, &[metric], &Periods {
                    now: Counted { period: &period, counters: &counters[i..=i] },
                    last_year: Counted { period: &period, counters: &counters[i..=i] },
                    previous: None,
                    base: None,
                });
                prop_assert_eq!(own[0].rate, block.rows[i].rate);
                prop_assert_eq!(&own[0].target, &block.rows[i].target);
            }
        }
    }
}
