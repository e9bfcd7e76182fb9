//! The published metrics: each formula written once, here.

use std::{fmt, str::FromStr};

use crate::{Counter, Counters, Rate, catalog::ProvisionFacts};

/// A published metric. Its [`Metric::name`] is how people type it everywhere: CLI, config,
/// JSON and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Dossiers received online / dossiers received.
    OnlineDossierRate,
    /// Dossiers received online for full-process online procedures / dossiers received for
    /// those procedures.
    FullOnlineDossierRate,
    /// Online services that received an online dossier in the period / online services the
    /// agency provides (from the catalog).
    ServicesWithOnlineDossiers,
    /// Procedures provided full-process online / procedures eligible for it (from the
    /// catalog).
    FullOnlineProvision,
    /// Procedures provided online, full-process or partially / every procedure the agency
    /// provides (from the catalog): Quang Ninh's "1,278 of 1,766 provided online in full and
    /// in part".
    OnlineProvisionRate,
    /// Dossiers resolved by their due time / (dossiers resolved + dossiers still open past
    /// their due time at the end of the period): a dossier still open past its due time
    /// counts as late at the end of the period.
    OnTimeRate,
    /// Dossiers digitized at reception / dossiers received.
    DigitizedReceptionRate,
    /// Results issued electronically / dossiers resolved.
    ElectronicResultRate,
    /// Satisfied feedback / feedback given.
    SatisfactionRate,
    /// Fees paid online / fees paid.
    OnlinePaymentRate,
}

impl Metric {
    /// Every metric, in the documented order.
    pub const ALL: [Metric; 10] = [
        Metric::OnlineDossierRate,
        Metric::FullOnlineDossierRate,
        Metric::ServicesWithOnlineDossiers,
        Metric::FullOnlineProvision,
        Metric::OnlineProvisionRate,
        Metric::OnTimeRate,
        Metric::DigitizedReceptionRate,
        Metric::ElectronicResultRate,
        Metric::SatisfactionRate,
        Metric::OnlinePaymentRate,
    ];

    /// The name people type: `online-dossier-rate`, ...
    pub const fn name(self) -> &'static str {
        match self {
            Metric::OnlineDossierRate => "online-dossier-rate",
            Metric::FullOnlineDossierRate => "full-online-dossier-rate",
            Metric::ServicesWithOnlineDossiers => "services-with-online-dossiers",
            Metric::FullOnlineProvision => "full-online-provision",
            Metric::OnlineProvisionRate => "online-provision-rate",
            Metric::OnTimeRate => "on-time-rate",
            Metric::DigitizedReceptionRate => "digitized-reception-rate",
            Metric::ElectronicResultRate => "electronic-result-rate",
            Metric::SatisfactionRate => "satisfaction-rate",
            Metric::OnlinePaymentRate => "online-payment-rate",
        }
    }

    /// Whether the metric's value depends on the catalog's provision facts (procedure
    /// counts); the others ignore the facts given to [`Metric::fraction`].
    pub fn uses_provision_facts(self) -> bool {
        matches!(
            self,
            Metric::ServicesWithOnlineDossiers
                | Metric::FullOnlineProvision
                | Metric::OnlineProvisionRate
        )
    }

    /// What the metric reads from storage: its counters, and whether it needs the distinct
    /// count of procedures with online dossiers.
    pub fn needs(self) -> Needs {
        let counters = match self {
            Metric::OnlineDossierRate => vec![Counter::ReceivedOnline, Counter::Received],
            Metric::FullOnlineDossierRate => {
                vec![
                    Counter::ReceivedOnlineFullOnlineProcedure,
                    Counter::ReceivedFullOnlineProcedure,
                ]
            }
            Metric::ServicesWithOnlineDossiers
            | Metric::FullOnlineProvision
            | Metric::OnlineProvisionRate => vec![],
            // The due-day counters give the dossiers open past due at the period's end.
            Metric::OnTimeRate => vec![
                Counter::ResolvedOnTime,
                Counter::Resolved,
                Counter::DueOpened,
                Counter::DueClosed,
            ],
            Metric::DigitizedReceptionRate => vec![Counter::Digitized, Counter::Received],
            Metric::ElectronicResultRate => vec![Counter::ResultElectronic, Counter::Resolved],
            Metric::SatisfactionRate => vec![Counter::FeedbackSatisfied, Counter::Feedback],
            Metric::OnlinePaymentRate => vec![Counter::FeePaidOnline, Counter::FeePaid],
        };
        Needs {
            counters,
            distinct: self == Metric::ServicesWithOnlineDossiers,
        }
    }

    /// The numerator and denominator of the metric.
    pub fn fraction(self, counters: &Counters, facts: &ProvisionFacts) -> (u64, u64) {
        let c = |counter| counters.get(counter);
        match self {
            Metric::OnlineDossierRate => (c(Counter::ReceivedOnline), c(Counter::Received)),
            Metric::FullOnlineDossierRate => (
                c(Counter::ReceivedOnlineFullOnlineProcedure),
                c(Counter::ReceivedFullOnlineProcedure),
            ),
            Metric::ServicesWithOnlineDossiers => (
                counters.procedures_with_online_dossiers,
                facts.online_services,
            ),
            Metric::FullOnlineProvision => (facts.full_online, facts.eligible_full_online),
            Metric::OnlineProvisionRate => (facts.online_services, facts.procedures),
            Metric::OnTimeRate => (
                c(Counter::ResolvedOnTime),
                c(Counter::Resolved).saturating_add(counters.open_past_due_at_end),
            ),
            Metric::DigitizedReceptionRate => (c(Counter::Digitized), c(Counter::Received)),
            Metric::ElectronicResultRate => (c(Counter::ResultElectronic), c(Counter::Resolved)),
            Metric::SatisfactionRate => (c(Counter::FeedbackSatisfied), c(Counter::Feedback)),
            Metric::OnlinePaymentRate => (c(Counter::FeePaidOnline), c(Counter::FeePaid)),
        }
    }

    /// The metric's value; `None` (no data) when its denominator is zero.
    pub fn rate(self, counters: &Counters, facts: &ProvisionFacts) -> Option<Rate> {
        let (numerator, denominator) = self.fraction(counters, facts);
        Rate::new(numerator, denominator)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a read must fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    /// The counters to read. The due-day ones ([`Counter::by_due_day`]) are read over every
    /// day up to the period's end, and give [`Counters::open_past_due_at_end`].
    pub counters: Vec<Counter>,
    /// Whether to count the distinct procedures with online dossiers.
    pub distinct: bool,
}

impl Needs {
    /// Everything: every counter and the distinct count.
    pub fn everything() -> Needs {
        Needs {
            counters: Counter::ALL.to_vec(),
            distinct: true,
        }
    }

    /// What several metrics need together: every counter any of them reads, once, and the
    /// distinct count if one needs it.
    pub fn of(metrics: impl IntoIterator<Item = Metric>) -> Needs {
        let mut needs = Needs {
            counters: Vec::new(),
            distinct: false,
        };
        for metric in metrics {
            let more = metric.needs();
            for counter in more.counters {
                if !needs.counters.contains(&counter) {
                    needs.counters.push(counter);
                }
            }
            needs.distinct |= more.distinct;
        }
        needs
    }
}

/// An unknown metric name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{:?} is not a metric; the metrics are {}", .0, Metric::ALL.map(Metric::name).join(", "))]
pub struct UnknownMetric(pub String);

impl FromStr for Metric {
    type Err = UnknownMetric;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == raw.trim())
            .ok_or_else(|| UnknownMetric(raw.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalog's facts the formulas tests read: 9 online of 12, 3 full online of 4.
    const FACTS: ProvisionFacts = ProvisionFacts {
        online_services: 9,
        full_online: 3,
        eligible_full_online: 4,
        procedures: 12,
    };

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for m in Metric::ALL {
            assert_eq!(m.name().parse::<Metric>(), Ok(m));
        }
        let err = "online-rate".parse::<Metric>().expect_err("unknown");
        assert!(
            err.to_string().starts_with(
                "\"online-rate\" is not a metric; the metrics are online-dossier-rate, "
            )
        );
    }

    #[test]
    fn each_formula_reads_its_counters() {
        let mut counters = Counters::from_pairs(
            Counter::ALL
                .into_iter()
                .zip(1u64..)
                .map(|(c, v)| (c, v * 10)),
        );
        counters.procedures_with_online_dossiers = 7;
        counters.open_past_due_at_end = 6;
        let got: Vec<(u64, u64)> = Metric::ALL
            .iter()
            .map(|m| m.fraction(&counters, &FACTS))
            .collect();
        let v = |c: Counter| counters.get(c);
        assert_eq!(
            got,
            [
                (v(Counter::ReceivedOnline), v(Counter::Received)),
                (
                    v(Counter::ReceivedOnlineFullOnlineProcedure),
                    v(Counter::ReceivedFullOnlineProcedure)
                ),
                (7, 9),
                (3, 4),
                (9, 12),
                (v(Counter::ResolvedOnTime), v(Counter::Resolved) + 6),
                (v(Counter::Digitized), v(Counter::Received)),
                (v(Counter::ResultElectronic), v(Counter::Resolved)),
                (v(Counter::FeedbackSatisfied), v(Counter::Feedback)),
                (v(Counter::FeePaidOnline), v(Counter::FeePaid)),
            ]
        );
    }

    #[test]
    fn a_metric_needs_exactly_the_counters_its_formula_reads() {
        for m in Metric::ALL {
            let needs = m.needs();
            // Counters holding only what the metric needs give the same fraction as all of them.
            let all = Counters::from_pairs(Counter::ALL.into_iter().zip(1u64..));
            let mut only =
                Counters::from_pairs(all.iter().filter(|(c, _)| needs.counters.contains(c)));
            let mut all = all;
            all.procedures_with_online_dossiers = 5;
            all.open_past_due_at_end = 6;
            if needs.distinct {
                only.procedures_with_online_dossiers = 5;
            }
            if needs.counters.iter().any(|c| c.by_due_day()) {
                only.open_past_due_at_end = 6;
            }
            assert_eq!(m.fraction(&only, &FACTS), m.fraction(&all, &FACTS), "{m}");
        }
    }

    #[test]
    fn no_denominator_is_no_data() {
        let empty = Counters::default();
        for m in Metric::ALL {
            assert_eq!(m.rate(&empty, &ProvisionFacts::default()), None, "{m}");
        }
    }
}
