//! One agency's figures per procedure: the drill-down that says which procedures drag a rate
//! down (the national portal's 766 index goes from province to unit to procedure).
//!
//! The store keeps every counter per (agency, procedure, bucket) as it keeps it per (agency,
//! bucket), its units' events included ([`crate::counting::Plan::procedures`]); a period is
//! read by the agency's own read plan ([`crate::reading::Plan::procedure_totals`]), so that a
//! procedure's figures are what the agency's would be if it had no other procedure. Here, the
//! report: each procedure's value of one metric, ranked best first with the competition
//! ranks agencies get ([`crate::ranking`]), those with no data (a zero denominator) apart.

use std::cmp::Reverse;

use crate::{
    Counter, Counters, Metric, Needs, ProcedureId, Rate, catalog::ProvisionFacts,
    ranking::order_and_rank,
};

/// A metric asked per procedure that has no value per procedure: it counts procedures (the
/// catalog's provision or the distinct procedures with online dossiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} has no value per procedure: it counts an agency's procedures; ask for a dossier \
     metric (online-dossier-rate, on-time-rate, ...)"
)]
pub struct NotPerProcedure(pub Metric);

/// One procedure's value of the metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcedureLine {
    /// The procedure.
    pub procedure: ProcedureId,
    /// Its competition rank among the ranked procedures (1 = best; equal values share a
    /// rank); 0 when it has no data.
    pub rank: u32,
    /// The metric's numerator.
    pub numerator: u64,
    /// The metric's denominator.
    pub denominator: u64,
    /// The value; `None` when the denominator is zero.
    pub rate: Option<Rate>,
}

/// Every procedure of one agency with counts in a period, by one metric.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcedureReport {
    /// The procedures with a value, best first; equal values by larger denominator, then by
    /// procedure id.
    pub ranked: Vec<ProcedureLine>,
    /// The procedures with counts but no value for the metric (nothing in its denominator),
    /// by procedure id.
    pub no_data: Vec<ProcedureLine>,
}

impl ProcedureReport {
    /// The `n` best procedures, best first.
    pub fn top(&self, n: usize) -> &[ProcedureLine] {
        &self.ranked[..n.min(self.ranked.len())]
    }

    /// The `n` worst procedures, worst first: the lowest value first and, among equal values,
    /// the one with more dossiers in the denominator first (the bigger drag on the agency's
    /// rate), then by id.
    pub fn bottom(&self, n: usize) -> Vec<&ProcedureLine> {
        let mut worst: Vec<&ProcedureLine> = self.ranked.iter().collect();
        worst.sort_by(|a, b| {
            a.rate
                .cmp(&b.rate)
                .then_with(|| b.denominator.cmp(&a.denominator))
                .then_with(|| a.procedure.cmp(&b.procedure))
        });
        worst.truncate(n);
        worst
    }
}

/// `metric`, when it has a value per procedure.
pub fn per_procedure(metric: Metric) -> Result<Metric, NotPerProcedure> {
    if metric.uses_provision_facts() {
        Err(NotPerProcedure(metric))
    } else {
        Ok(metric)
    }
}

/// What to read per procedure for `metric`: its counters and every event-day counter, so that
/// a procedure with dossiers in the period but nothing in the metric's denominator is listed
/// as having no data rather than left out.
pub fn procedure_needs(metric: Metric) -> Needs {
    let mut counters = metric.needs().counters;
    counters.extend(Counter::ALL.into_iter().filter(|c| !c.by_due_day()));
    counters.sort_unstable();
    counters.dedup();
    Needs {
        counters,
        distinct: false,
    }
}

/// Whether a procedure's counters over a period (read by [`procedure_needs`]) show it had
/// dossiers then: an event in the period, or a dossier open past due at its end.
fn had_dossiers(counters: &Counters) -> bool {
    counters.open_past_due_at_end > 0
        || Counter::ALL
            .into_iter()
            .any(|c| !c.by_due_day() && counters.get(c) > 0)
}

/// The report of `metric` over each procedure's counters (`totals`, from
/// [`crate::reading::Plan::procedure_totals`] reading [`procedure_needs`]): the procedures
/// that had dossiers in the period (a procedure read only in the buckets a plan subtracts
/// had none, and is left out).
pub fn procedure_report(
    metric: Metric,
    totals: Vec<(ProcedureId, Counters)>,
) -> Result<ProcedureReport, NotPerProcedure> {
    per_procedure(metric)?;
    let no_facts = ProvisionFacts::default();
    // Ties of value are broken by the larger denominator, then the procedure id.
    let items = totals
        .into_iter()
        .filter(|(_, counters)| had_dossiers(counters))
        .map(|(procedure, counters)| {
            let (numerator, denominator) = metric.fraction(&counters, &no_facts);
            (
                (Reverse(denominator), procedure),
                (numerator, Rate::new(numerator, denominator)),
            )
        })
        .collect();
    let (ranked, no_data): (Vec<ProcedureLine>, Vec<ProcedureLine>) = order_and_rank(
        items,
        |(_, rate)| rate.as_ref(),
        |(_, rate)| if rate.is_some() { 0 } else { 2 },
    )
    .into_iter()
    .map(
        |(rank, _, (Reverse(denominator), procedure), (numerator, rate))| ProcedureLine {
            procedure,
            rank,
            numerator,
            denominator,
            rate,
        },
    )
    .partition(|line| line.rate.is_some());
    Ok(ProcedureReport { ranked, no_data })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Counter;

    fn procedure(raw: &str) -> ProcedureId {
        ProcedureId::parse(raw).expect("test ids are valid")
    }

    fn online(received: u64, online: u64) -> Counters {
        Counters::from_pairs([
            (Counter::Received, received),
            (Counter::ReceivedOnline, online),
        ])
    }

    fn ids(
        lines: impl IntoIterator<Item = impl std::borrow::Borrow<ProcedureLine>>,
    ) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| format!("{}#{}", l.borrow().procedure, l.borrow().rank))
            .collect()
    }

    #[test]
    fn procedures_rank_best_first_with_shared_ranks_and_no_data_apart() {
        let report = procedure_report(
            Metric::OnlineDossierRate,
            vec![
                (procedure("birth"), online(4, 1)),
                (procedure("land"), online(10, 10)),
                (procedure("marriage"), online(2, 2)),
                (procedure("permit"), online(8, 2)),
                (
                    procedure("fee-only"),
                    Counters::from_pairs([(Counter::FeePaid, 3)]),
                ),
            ],
        )
        .expect("a dossier metric");
        // 100% twice (the larger denominator first), then 25% twice: shared ranks, skipping.
        assert_eq!(
            ids(&report.ranked),
            ["land#1", "marriage#1", "permit#3", "birth#3"]
        );
        assert_eq!(ids(report.top(1)), ["land#1"]);
        // Worst first; of two at 25%, the one with more dossiers first.
        assert_eq!(ids(report.bottom(2)), ["permit#3", "birth#3"]);
        assert_eq!(ids(report.top(10)).len(), 4);
        assert_eq!(ids(&report.no_data), ["fee-only#0"]);
        let needs = procedure_needs(Metric::SatisfactionRate);
        assert!(needs.counters.contains(&Counter::Received) && !needs.distinct);
        assert!(!needs.counters.contains(&Counter::DueOpened));
        assert!(
            procedure_needs(Metric::OnTimeRate)
                .counters
                .contains(&Counter::DueOpened)
        );
        assert_eq!(
            report.ranked[2].rate.map(|r| r.percent()),
            Some("25.00".into())
        );
    }

    #[test]
    fn the_on_time_rate_per_procedure_counts_its_dossiers_open_past_due() {
        let mut late = Counters::from_pairs([(Counter::Resolved, 3), (Counter::ResolvedOnTime, 3)]);
        late.open_past_due_at_end = 1;
        let report =
            procedure_report(Metric::OnTimeRate, vec![(procedure("p"), late)]).expect("metric");
        assert_eq!(
            (report.ranked[0].numerator, report.ranked[0].denominator),
            (3, 4)
        );
    }

    #[test]
    fn metrics_that_count_procedures_have_no_breakdown() {
        for metric in Metric::ALL {
            let refused = procedure_report(metric, Vec::new()).is_err();
            assert_eq!(refused, metric.uses_provision_facts(), "{metric}");
        }
        let message = NotPerProcedure(Metric::ServicesWithOnlineDossiers).to_string();
        assert!(message.starts_with("services-with-online-dossiers has no value per procedure"));
    }

    proptest! {
        /// Whatever the counts: every procedure with dossiers is listed once, those without
        /// a reception (only fees) apart as no data, and a rank is one more than the number
        /// of procedures strictly better.
        #[test]
        fn ranks_count_the_procedures_strictly_better(
            counts in proptest::collection::btree_map(
                "[a-e]{1,2}",
                (0u64..6, 0u64..6, 0u64..3),
                0..20,
            )
        ) {
            let totals: Vec<(ProcedureId, Counters)> = counts
                .iter()
                .map(|(p, (received, on, fees))| {
                    let mut counters = online(*received, (*on).min(*received));
                    counters.increment(Counter::FeePaid, *fees);
                    (procedure(p), counters)
                })
                .collect();
            let report = procedure_report(Metric::OnlineDossierRate, totals).expect("metric");
            // A procedure without a dossier in the period is left out.
            let ranked = counts.values().filter(|(received, _, _)| *received > 0).count();
            let no_data = counts
                .values()
                .filter(|(received, _, fees)| *received == 0 && *fees > 0)
                .count();
            prop_assert_eq!(report.ranked.len(), ranked);
            prop_assert_eq!(report.no_data.len(), no_data);
            for line in &report.ranked {
                let better = report.ranked.iter().filter(|o| o.rate > line.rate).count();
                prop_assert_eq!(line.rank as usize, better + 1);
            }
            for pair in report.no_data.windows(2) {
                prop_assert!(pair[0].procedure < pair[1].procedure, "no data by id");
            }
            for line in &report.no_data {
                prop_assert_eq!((line.denominator, line.rank), (0, 0));
            }
        }
    }
}
