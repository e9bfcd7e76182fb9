//! The read model's first half: which stored buckets answer a question about counters.
//!
//! A [`Question`] (agencies, a period, the day the agencies are taken as of, what is needed)
//! becomes a [`Plan`]: a few generic [`Read`]s that any store executes (counters summed over
//! buckets, per group of agencies or per child from a parent's roll-up), and the arithmetic
//! ([`Plan::totals`]) that turns their answers into each agency's [`Counters`] over the
//! period. The rules live here once:
//!
//! - event-day counters are read as the cheapest buckets to add minus buckets to subtract
//!   ([`Period::read_plan`]), knowing that no event is dated after [`Horizon::last_event_day`];
//! - the due-day counters give the dossiers open past due at the period's end, summed over
//!   every day up to it ([`crate::backlog::prefix_plan`]), for the agency and every agency it
//!   had absorbed by then (their open dossiers passed to it);
//! - the distinct count of procedures with online dossiers cannot subtract: it is the union
//!   over buckets holding exactly the period's data ([`Period::union_cover`]);
//! - an agency is read with the agencies it absorbed after the period began and by `as_of`
//!   ([`Catalog::constituents_within`]); children that absorbed none are read from their
//!   parent's roll-up, which needs no per-agency keys.

use std::{collections::BTreeSet, sync::Arc};

use time::{Date, OffsetDateTime};

use crate::{
    AcceptancePolicy, AgencyId, Bucket, Catalog, Counter, Counters, Needs, Period, ProcedureId,
    ReadPlan, backlog, period::vietnam_day,
};

/// What one clock reading allows a request to assume: today, and the last days that can
/// hold data. Built once per request, so that one request never sees two "todays".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    /// The moment of the request (what freshness is judged at: [`crate::freshness`]).
    pub now: OffsetDateTime,
    /// The Vietnam day of the request.
    pub today: Date,
    /// No event can be dated after this day (now plus the accepted clock skew).
    pub last_event_day: Date,
    /// No accepted due time can fall after this day.
    pub last_due_day: Date,
}

impl Horizon {
    /// The horizon at `now` under `policy`.
    pub fn at(now: OffsetDateTime, policy: &AcceptancePolicy) -> Horizon {
        Horizon {
            now,
            today: vietnam_day(now),
            last_event_day: vietnam_day(now + policy.future_skew),
            last_due_day: backlog::last_possible_due_day(policy, now),
        }
    }

    /// Whether `period`'s figures are provisional: it includes today (or days still to
    /// come), whose events are still arriving.
    pub fn is_provisional(&self, period: &Period) -> bool {
        period.last_day() >= self.today
    }
}

/// What to read: each of `agencies`' counters over `period`, with what `needs` lists.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// The agencies, in the order the answer lists them.
    pub agencies: &'a [AgencyId],
    /// Set when the agencies are all children of this agency: those that absorbed no other
    /// agency are then read from its roll-up of its children.
    pub parent: Option<&'a AgencyId>,
    /// The days.
    pub period: &'a Period,
    /// Each agency is read with the agencies it had absorbed after the period began and by
    /// this day: `Date::MAX` for an agency as it is now, a block's last day for its members
    /// as they were then.
    pub as_of: Date,
    /// The counters, and whether the distinct count is needed.
    pub needs: &'a Needs,
}

impl<'a> Question<'a> {
    /// The answer to this question, `counters` read for each of its agencies, as a report
    /// takes it.
    pub fn answered(&self, counters: &'a [Counters]) -> crate::report::Counted<'a> {
        crate::report::Counted {
            period: self.period,
            counters,
        }
    }
}

/// Whose counters a [`Read`] gathers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source<'a> {
    /// One answer per group: the sum over the group's agencies (an agency and those it
    /// absorbed). Shared by a plan's reads of the same agencies.
    Groups(Arc<[Vec<AgencyId>]>),
    /// One answer per child, from the parent's roll-up of its children (each child's own
    /// events and its units'): the question's own agencies, not copied, as there may be
    /// 10,000 of them.
    Children {
        /// The parent.
        parent: &'a AgencyId,
        /// Its children, in answer order.
        children: &'a [AgencyId],
    },
}

/// One generic store read: per agency of the source, `needs` summed over `buckets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read<'a> {
    /// Whose counters.
    pub source: Source<'a>,
    /// The buckets summed (never empty).
    pub buckets: Vec<Bucket>,
    /// The counters, and for a [`Source::Groups`] read whether to count distinct
    /// procedures with online dossiers (the union over the buckets).
    pub needs: Needs,
}

/// What [`Plan::totals`] does with one read's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    AddEventDay,
    SubtractEventDay,
    AddDueDay,
    SubtractDueDay,
    Distinct,
}

/// The reads that answer a [`Question`], and how their answers combine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<'a> {
    agencies: usize,
    reads: Vec<Read<'a>>,
    roles: Vec<Role>,
}

/// A store's answers did not fit the plan (a store defect, never the caller's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the store answered {0}")]
pub struct WrongAnswer(String);

impl<'a> Plan<'a> {
    /// The reads, to run in any order (concurrently); answer them in this order.
    pub fn reads(&self) -> &[Read<'a>] {
        &self.reads
    }

    /// Each agency's counters over the period, from the answers to [`Plan::reads`]: added
    /// buckets minus subtracted ones, the open past due from the due-day counters, the
    /// distinct count from its union.
    pub fn totals(&self, answers: Vec<Vec<Counters>>) -> Result<Vec<Counters>, WrongAnswer> {
        self.combine(answers, self.agencies)
    }

    /// The one agency's counters over the period per procedure, from the answers to
    /// [`Plan::reads`] given per procedure (each answer a procedure's counters summed over
    /// the read's buckets, procedures with nothing left out): every procedure any answer
    /// names, in procedure order, combined as [`Plan::totals`] combines an agency's.
    pub fn procedure_totals(
        &self,
        answers: Vec<Vec<(ProcedureId, Counters)>>,
    ) -> Result<Vec<(ProcedureId, Counters)>, WrongAnswer> {
        if self.agencies != 1 {
            return Err(WrongAnswer(format!(
                "a procedure breakdown of {} agencies",
                self.agencies
            )));
        }
        let procedures: Vec<ProcedureId> = answers
            .iter()
            .flatten()
            .map(|(procedure, _)| procedure)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .cloned()
            .collect();
        let aligned = answers
            .into_iter()
            .map(|answer| {
                let mut row = vec![Counters::default(); procedures.len()];
                for (procedure, counters) in answer {
                    if let Ok(at) = procedures.binary_search(&procedure) {
                        row[at] = counters;
                    }
                }
                row
            })
            .collect();
        let totals = self.combine(aligned, procedures.len())?;
        Ok(procedures.into_iter().zip(totals).collect())
    }

    /// The answers of `rows` rows each combined by the reads' roles.
    fn combine(
        &self,
        answers: Vec<Vec<Counters>>,
        rows: usize,
    ) -> Result<Vec<Counters>, WrongAnswer> {
        if answers.len() != self.reads.len() {
            return Err(WrongAnswer(format!(
                "{} reads of {}",
                answers.len(),
                self.reads.len()
            )));
        }
        if let Some(answer) = answers.iter().find(|a| a.len() != rows) {
            return Err(WrongAnswer(format!(
                "{} rows of counters for {rows}",
                answer.len(),
            )));
        }
        // Each kind of counter starts as its added read's answer, already the sum over its
        // buckets (a plan adds one read per kind), taken as it is: 10,000 children's
        // counters are not copied again.
        let (mut totals, mut due, mut distinct) = (None, None, None);
        let mut subtracted = Vec::new();
        for (role, answer) in self.roles.iter().zip(answers) {
            match role {
                Role::AddEventDay => totals = Some(answer),
                Role::AddDueDay => due = Some(answer),
                Role::Distinct => distinct = Some(answer),
                Role::SubtractEventDay | Role::SubtractDueDay => subtracted.push((*role, answer)),
            }
        }
        for (role, outside) in subtracted {
            let from = if role == Role::SubtractEventDay {
                totals.as_mut()
            } else {
                due.as_mut()
            };
            for (total, outside) in from.into_iter().flatten().zip(&outside) {
                total.subtract(outside);
            }
        }
        let mut totals = totals.unwrap_or_else(|| vec![Counters::default(); rows]);
        if let Some(due) = due {
            for (total, due) in totals.iter_mut().zip(&due) {
                total.open_past_due_at_end = due
                    .get(Counter::DueOpened)
                    .saturating_sub(due.get(Counter::DueClosed));
            }
        }
        if let Some(distinct) = distinct {
            for (total, read) in totals.iter_mut().zip(&distinct) {
                total.procedures_with_online_dossiers = read.procedures_with_online_dossiers;
            }
        }
        Ok(totals)
    }

    fn push(&mut self, role: Role, source: &Source<'a>, buckets: &[Bucket], needs: Needs) {
        if buckets.is_empty() {
            return;
        }
        self.reads.push(Read {
            source: source.clone(),
            buckets: buckets.to_vec(),
            needs,
        });
        self.roles.push(role);
    }

    /// Reads `counters` over a read plan's added buckets, minus its subtracted ones.
    fn push_plan(
        &mut self,
        roles: [Role; 2],
        source: &Source<'a>,
        plan: &ReadPlan,
        counters: &[Counter],
    ) {
        let needs = Needs {
            counters: counters.to_vec(),
            distinct: false,
        };
        self.push(roles[0], source, &plan.add, needs.clone());
        self.push(roles[1], source, &plan.subtract, needs);
    }
}

/// The reads that answer `question` (see the module documentation for the rules).
pub fn plan<'a>(catalog: &Catalog, horizon: &Horizon, question: &Question<'a>) -> Plan<'a> {
    let Question {
        agencies,
        parent,
        period,
        as_of,
        needs,
    } = *question;
    let mut plan = Plan {
        agencies: agencies.len(),
        reads: Vec::new(),
        roles: Vec::new(),
    };
    // The source for agencies read with `constituents`: the parent's roll-up when none of
    // them absorbed another, else each agency's group.
    let source = |constituents: &dyn Fn(&AgencyId) -> Vec<AgencyId>| {
        let merged = |a: &AgencyId| catalog.absorbed_any(a) && constituents(a).len() > 1;
        match parent {
            Some(parent) if !agencies.iter().any(merged) => Source::Children {
                parent,
                children: agencies,
            },
            _ => Source::Groups(agencies.iter().map(constituents).collect()),
        }
    };
    let within_period = |a: &AgencyId| catalog.constituents_within(a, period.first_day(), as_of);
    let (by_event_day, by_due_day): (Vec<Counter>, Vec<Counter>) =
        needs.counters.iter().partition(|c| !c.by_due_day());
    // The agencies over the period: read by the event-day counters and, when they are groups,
    // by the distinct count too, which takes them as they are.
    let within = (!by_event_day.is_empty() || needs.distinct).then(|| source(&within_period));
    if let Some(within) = within.as_ref().filter(|_| !by_event_day.is_empty()) {
        plan.push_plan(
            [Role::AddEventDay, Role::SubtractEventDay],
            within,
            &period.read_plan(horizon.last_event_day),
            &by_event_day,
        );
    }
    if !by_due_day.is_empty() {
        // Due days run up to a year ahead, so this plan may not assume that nothing lies
        // after today; every agency absorbed by `as_of`, whenever, passed its open dossiers.
        let ever = |a: &AgencyId| catalog.constituents_within(a, Date::MIN, as_of);
        plan.push_plan(
            [Role::AddDueDay, Role::SubtractDueDay],
            &source(&ever),
            &backlog::prefix_plan(period.last_day(), horizon.last_due_day),
            &by_due_day,
        );
    }
    if needs.distinct {
        // Distinct sets are kept per agency only (no roll-up of children).
        let groups = match within {
            Some(groups @ Source::Groups(_)) => groups,
            _ => Source::Groups(agencies.iter().map(within_period).collect()),
        };
        let distinct_only = Needs {
            counters: Vec::new(),
            distinct: true,
        };
        plan.push(
            Role::Distinct,
            &groups,
            &period.union_cover(horizon.last_event_day),
            distinct_only,
        );
    }
    plan
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;
    use time::{Duration, macros::date};

    use super::*;
    use crate::testing::{Table, catalog_of, id};

    /// A reference store: every counter and distinct procedure per (agency, day), and the
    /// generic reads answered by summing days.
    #[derive(Debug, Default)]
    struct Days {
        counters: BTreeMap<(AgencyId, Date), Counters>,
        online_procedures: BTreeMap<(AgencyId, Date), BTreeSet<u8>>,
        /// Each unit's parent: its events count in the parent's roll-up too.
        parents: BTreeMap<AgencyId, AgencyId>,
    }

    impl Days {
        fn sum(
            &self,
            agencies: &[AgencyId],
            days: impl Fn(Date) -> bool,
            needs: &Needs,
        ) -> Counters {
            let mut total = Counters::default();
            for ((agency, day), counters) in &self.counters {
                if agencies.contains(agency) && days(*day) {
                    for counter in &needs.counters {
                        total.increment(*counter, counters.get(*counter));
                    }
                }
            }
            if needs.distinct {
                let procedures: BTreeSet<u8> = self
                    .online_procedures
                    .iter()
                    .filter(|((agency, day), _)| agencies.contains(agency) && days(*day))
                    .flat_map(|(_, p)| p.iter().copied())
                    .collect();
                total.procedures_with_online_dossiers = procedures.len() as u64;
            }
            total
        }

        /// An agency with its units.
        fn family(&self, agency: &AgencyId) -> Vec<AgencyId> {
            let mut family = vec![agency.clone()];
            family.extend(
                self.parents
                    .iter()
                    .filter(|(_, parent)| *parent == agency)
                    .map(|(unit, _)| unit.clone()),
            );
            family
        }

        fn answer(&self, read: &Read) -> Vec<Counters> {
            let in_buckets = |day: Date| {
                read.buckets
                    .iter()
                    .any(|b| b.first_day() <= day && day <= b.last_day())
            };
            match &read.source {
                Source::Groups(groups) => groups
                    .iter()
                    .map(|group| self.sum(group, in_buckets, &read.needs))
                    .collect(),
                Source::Children { children, .. } => children
                    .iter()
                    .map(|child| self.sum(&self.family(child), in_buckets, &read.needs))
                    .collect(),
            }
        }

        fn totals(
            &self,
            catalog: &Catalog,
            horizon: &Horizon,
            question: &Question<'_>,
        ) -> Vec<Counters> {
            let plan = plan(catalog, horizon, question);
            let answers: Vec<Vec<Counters>> = plan.reads().iter().map(|r| self.answer(r)).collect();
            plan.totals(answers).expect("answers fit the plan")
        }
    }

    /// Two provinces, `b` merged into `a` on 2025-07-01, and a unit `u` of `a`.
    fn catalog() -> Catalog {
        catalog_of(&[
            (Table::Provinces, "code,id,name\n01,a,A\n02,b,B\n"),
            (Table::Units, "id,name,parent_id\nu,U,a\n"),
            (
                Table::Mergers,
                "successor_id,successor_name,predecessor_ids,effective\na,A,a;b,2025-07-01\n",
            ),
        ])
    }

    /// The horizon at midnight UTC starting `day`, under the default policy.
    fn horizon_on(day: Date) -> Horizon {
        Horizon::at(day.midnight().assume_utc(), &AcceptancePolicy::default())
    }

    /// The plan for `agencies` as they are now (`as_of` is `Date::MAX`), with no parent.
    fn plan_today<'a>(
        catalog: &Catalog,
        horizon: &Horizon,
        agencies: &'a [AgencyId],
        period: &'a Period,
        needs: &'a Needs,
    ) -> Plan<'a> {
        plan(
            catalog,
            horizon,
            &Question {
                agencies,
                parent: None,
                period,
                as_of: Date::MAX,
                needs,
            },
        )
    }

    #[test]
    fn a_year_to_date_is_one_read_of_the_year_as_nothing_lies_ahead() {
        let catalog = catalog();
        let horizon = horizon_on(date!(2026 - 11 - 23));
        let period = Period::parse("ytd", horizon.today).expect("period");
        let needs = Needs {
            counters: vec![Counter::Received],
            distinct: false,
        };
        let agencies = [id("a")];
        let plan = plan_today(&catalog, &horizon, &agencies, &period, &needs);
        assert_eq!(plan.reads().len(), 1, "{:?}", plan.reads());
        assert_eq!(plan.reads()[0].buckets, [Bucket::Year(2026)]);
        assert_eq!(
            plan.reads()[0].source,
            Source::Groups(vec![vec![id("a")]].into())
        );
    }

    #[test]
    fn children_come_from_the_roll_up_unless_one_absorbed_another_within_the_period() {
        let catalog = catalog();
        let horizon = horizon_on(date!(2026 - 01 - 10));
        let needs = Needs {
            counters: vec![Counter::Received],
            distinct: false,
        };
        let root = id("root-of-nothing");
        let agencies = [id("a")];
        let from_roll_up = |raw: &str| {
            let period = Period::parse(raw, horizon.today).expect("period");
            let plan = plan(
                &catalog,
                &horizon,
                &Question {
                    agencies: &agencies,
                    parent: Some(&root),
                    period: &period,
                    as_of: period.last_day(),
                    needs: &needs,
                },
            );
            match &plan.reads()[0].source {
                Source::Children { .. } => None,
                Source::Groups(groups) => Some(groups.to_vec()),
            }
        };
        assert_eq!(from_roll_up("2025-Q4"), None);
        assert_eq!(from_roll_up("2025"), Some(vec![vec![id("a"), id("b")]]));
    }

    #[test]
    fn wrong_answers_are_refused_not_zipped() {
        let catalog = catalog();
        let horizon = horizon_on(date!(2026 - 01 - 10));
        let period = Period::parse("2025", horizon.today).expect("period");
        let needs = Needs::everything();
        let agencies = [id("a"), id("u")];
        let plan = plan_today(&catalog, &horizon, &agencies, &period, &needs);
        assert!(plan.totals(Vec::new()).is_err());
        let short = vec![vec![Counters::default()]; plan.reads().len()];
        assert!(plan.totals(short).is_err());
    }

    fn day_in(range: std::ops::Range<i64>) -> impl Strategy<Value = Date> {
        range.prop_map(|offset| date!(2024 - 01 - 01) + Duration::days(offset))
    }

    prop_compose! {
        fn history()(
            rows in prop::collection::vec(
                (0usize..3, day_in(0..1100), prop::collection::vec(0u64..5, Counter::ALL.len()), prop::option::of(0u8..6)),
                0..40,
            )
        ) -> Days {
            let names = ["a", "b", "u"];
            let mut days = Days::default();
            days.parents.insert(id("u"), id("a"));
            for (who, day, values, procedure) in rows {
                // b existed until the merger only.
                let day = if who == 1 { day.min(date!(2025 - 06 - 30)) } else { day };
                let counters = days.counters.entry((id(names[who]), day)).or_default();
                for (counter, value) in Counter::ALL.into_iter().zip(values) {
                    counters.increment(counter, value);
                }
                if let Some(p) = procedure {
                    days.online_procedures.entry((id(names[who]), day)).or_default().insert(p);
                }
            }
            days
        }
    }

    proptest! {
        /// For any history and period, the plan's reads combined give what summing the days
        /// directly gives: event-day counters over the period, the open past due from every
        /// due day up to its end, and the distinct procedures over the period, for an agency
        /// with the one it absorbed.
        #[test]
        fn totals_equal_a_sum_over_the_days(
            days in history(),
            first in day_in(0..1100),
            length in 0i64..400,
            today in day_in(0..1100),
            units in any::<bool>(),
        ) {
            let catalog = catalog();
            let horizon = Horizon {
                now: today.midnight().assume_offset(crate::period::VIETNAM),
                today,
                last_event_day: today + Duration::days(1),
                last_due_day: today + Duration::days(366),
            };
            // Nothing lies after the horizon's last days, as ingest guarantees.
            let mut days = days;
            days.counters.retain(|(_, day), _| *day <= horizon.last_event_day);
            days.online_procedures.retain(|(_, day), _| *day <= horizon.last_event_day);
            let period = Period::from_days(first, first + Duration::days(length));
            let needs = Needs::everything();
            let (agencies, parent) = if units {
                (vec![id("u")], Some(id("a")))
            } else {
                (vec![id("a")], None)
            };
            let totals = days.totals(&catalog, &horizon, &Question {
                agencies: &agencies,
                parent: parent.as_ref(),
                period: &period,
                as_of: Date::MAX,
                needs: &needs,
            });
            let who = if units {
                vec![id("u")]
            } else {
                catalog.constituents_within(&id("a"), period.first_day(), Date::MAX)
            };
            let event_day: Vec<Counter> =
                Counter::ALL.into_iter().filter(|c| !c.by_due_day()).collect();
            let mut expected = days.sum(
                &who,
                |d| period.contains(d),
                &Needs { counters: event_day, distinct: true },
            );
            let ever = if units {
                vec![id("u")]
            } else {
                catalog.constituents_within(&id("a"), Date::MIN, Date::MAX)
            };
            let due = days.sum(&ever, |d| d <= period.last_day(), &Needs {
                counters: backlog::DUE_COUNTERS.to_vec(),
                distinct: false,
            });
            expected.open_past_due_at_end = due
                .get(Counter::DueOpened)
                .saturating_sub(due.get(Counter::DueClosed));
            prop_assert_eq!(totals, vec![expected]);
        }
    }
}
