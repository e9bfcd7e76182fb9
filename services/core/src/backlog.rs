//! Dossiers still open past their due time at the end of any period: the rule that makes it
//! exact with summable day-bucketed counters, the bounds on due times that keep its reads
//! bounded, and the read plan.
//!
//! A dossier received with a due time on Vietnam day `D` and resolved on day `R` (the first
//! reception and resolution to arrive count, when several are sent for one dossier) is
//! open past due at the end of day `b` exactly when `D ≤ b < R` (its due time has passed by
//! the end of `b`; it was not resolved by then); never resolved, for every `b ≥ D`. The
//! domain rule counts such a dossier as late at the end of a period ending on `b`.
//!
//! Two counters hold it, counted for every agency of the chain like any other counter but in
//! the buckets of a day that is *not* the event's day:
//! - [`Counter::DueOpened`] (`due`) +1 in the buckets of `D`;
//! - [`Counter::DueClosed`] (`due_cl`) +1 in the buckets of `max(R, D)`.
//!
//! **Claim.** The dossiers open past due at the end of day `b` number
//! `Σ_{days d ≤ b} (due(d) − due_cl(d))`.
//!
//! **Proof.** Sums are linear, so it is enough that one dossier contributes
//! `[D ≤ b] − [max(R, D) ≤ b]`, which is `[D ≤ b < R]`: when `R ≤ D` both terms are `[D ≤ b]`
//! and cancel, and indeed no `b` has `D ≤ b < R`; when `R > D` the difference is
//! `[D ≤ b] − [R ≤ b] = [D ≤ b < R]`; never resolved, only `[D ≤ b]` is counted. Each
//! dossier's `due_cl` day is never before its `due` day, so no prefix is negative. [`step`]
//! counts exactly these two increments whatever order the reception and the resolution arrive
//! in (a resolution first is remembered with its day, and counted when the reception comes),
//! and only once per dossier (later receptions and resolutions of it change nothing). Retries
//! never reach it: the store drops an event id it has counted. The property test below checks
//! the claim on random dossiers and arrival orders.
//!
//! **Bounded reads.** Due times are checked at the edge ([`check_due`]): never before the
//! reception, at most [`MAX_DUE_SPAN`] after it, and never before [`FIRST_DUE_YEAR`]. So no
//! bucket before that year holds these counters, and none after
//! [`last_possible_due_day`]; the prefix is read as one bucket per year before the last day's
//! year plus the read plan of that year up to the last day ([`prefix_plan`]). The existing
//! read plan's assumption, "no data after now + skew", does not hold for these counters (a
//! due day can be months ahead): their plan uses the latest due day instead.

use time::{Date, Duration, OffsetDateTime};

use crate::{
    AcceptancePolicy, Bucket, Counter, Period, ReadPlan,
    period::{VIETNAM, vietnam_day},
};

/// The first year a due time may fall in: the prefix sums start on 1 January of it. No
/// reception with a due time earlier than this is accepted, so no bucket before it holds
/// [`Counter::DueOpened`] or [`Counter::DueClosed`]. Early enough for the oldest published
/// figures govpulse reproduces (2021), late enough that a prefix reads few year buckets (six
/// in 2026).
pub const FIRST_DUE_YEAR: i32 = 2020;

/// How far after its reception a dossier may be due.
pub const MAX_DUE_SPAN: Duration = Duration::days(366);

/// Why a reception's due time is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DueError {
    #[error("is before occurred_at; a dossier cannot be due before it is received")]
    BeforeReception,
    #[error("is more than {} days after occurred_at", MAX_DUE_SPAN.whole_days())]
    TooFar,
    #[error("is before {FIRST_DUE_YEAR}, the first year govpulse counts due times from")]
    BeforeFirstYear,
}

/// Checks the due time of a dossier received at `occurred_at`.
pub fn check_due(occurred_at: OffsetDateTime, due_at: OffsetDateTime) -> Result<(), DueError> {
    if due_at < occurred_at {
        return Err(DueError::BeforeReception);
    }
    if due_at > occurred_at + MAX_DUE_SPAN {
        return Err(DueError::TooFar);
    }
    if due_at.to_offset(VIETNAM).year() < FIRST_DUE_YEAR {
        return Err(DueError::BeforeFirstYear);
    }
    Ok(())
}

/// The latest Vietnam day any accepted due time can fall on, as of `now`: receptions are at
/// most `future_skew` ahead, and due at most [`MAX_DUE_SPAN`] after.
pub fn last_possible_due_day(policy: &AcceptancePolicy, now: OffsetDateTime) -> Date {
    vietnam_day(now + policy.future_skew + MAX_DUE_SPAN)
}

/// The buckets whose due-day counters, added minus subtracted, sum every day from 1 January
/// [`FIRST_DUE_YEAR`] to `last`, knowing that no day after `last_possible` holds any: each
/// year before `last`'s year, then the cheapest read plan of that year up to `last`.
pub fn prefix_plan(last: Date, last_possible: Date) -> ReadPlan {
    let mut plan = ReadPlan::default();
    if last.year() < FIRST_DUE_YEAR {
        return plan;
    }
    plan.add
        .extend((FIRST_DUE_YEAR..last.year()).map(Bucket::Year));
    let this_year = Period::from_days(Bucket::Year(last.year()).first_day(), last);
    let rest = this_year.read_plan(last_possible);
    plan.add.extend(rest.add);
    plan.subtract.extend(rest.subtract);
    plan
}

/// What the store remembers of one dossier (per reporting agency and dossier id) for the
/// backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DossierState {
    /// Received with a due time on `due_day`, not resolved: counted in `due` of that day,
    /// and in the open sets.
    Open { due_day: Date },
    /// Resolved on `day`, with no reception with a due time seen yet (it may arrive later).
    Resolved { day: Date },
    /// Resolved, and its reception counted if it had a due time: nothing changes it now.
    Done,
}

/// A new event as the backlog sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DueEvent {
    /// Received with a due time on Vietnam day `due_day`.
    Received { due_day: Date },
    /// Resolved on Vietnam day `day`.
    Resolved { day: Date },
}

/// What one new event does to its dossier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    /// The new state; `None` when it stays as it was.
    pub state: Option<DossierState>,
    /// Whether the dossier joins the open sets (the current backlog).
    pub open: bool,
    /// Whether the dossier leaves the open sets.
    pub close: bool,
    /// The day in whose buckets [`Counter::DueOpened`] grows by one.
    pub due: Option<Date>,
    /// The day in whose buckets [`Counter::DueClosed`] grows by one.
    pub due_closed: Option<Date>,
}

/// The counting rule (module docs): what a new event does to a dossier in `state` (`None`:
/// nothing known of it yet). The first reception with a due time and the first resolution
/// count; later ones change nothing.
pub fn step(state: Option<DossierState>, event: DueEvent) -> Step {
    match (state, event) {
        (None, DueEvent::Received { due_day }) => Step {
            state: Some(DossierState::Open { due_day }),
            open: true,
            due: Some(due_day),
            ..Step::default()
        },
        (Some(DossierState::Resolved { day }), DueEvent::Received { due_day }) => Step {
            state: Some(DossierState::Done),
            due: Some(due_day),
            due_closed: Some(day.max(due_day)),
            ..Step::default()
        },
        (None, DueEvent::Resolved { day }) => Step {
            state: Some(DossierState::Resolved { day }),
            ..Step::default()
        },
        (Some(DossierState::Open { due_day }), DueEvent::Resolved { day }) => Step {
            state: Some(DossierState::Done),
            close: true,
            due_closed: Some(day.max(due_day)),
            ..Step::default()
        },
        (Some(DossierState::Open { .. } | DossierState::Done), DueEvent::Received { .. })
        | (Some(DossierState::Resolved { .. } | DossierState::Done), DueEvent::Resolved { .. }) => {
            Step::default()
        }
    }
}

/// The two counters, for callers that list what a read needs.
pub const DUE_COUNTERS: [Counter; 2] = [Counter::DueOpened, Counter::DueClosed];

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn due_times_are_bounded_by_their_reception() {
        let at = datetime!(2026-08-15 10:00 +7);
        assert_eq!(check_due(at, at), Ok(()));
        assert_eq!(check_due(at, at + MAX_DUE_SPAN), Ok(()));
        assert_eq!(
            check_due(at, at - Duration::SECOND).map_err(|e| e.to_string()),
            Err("is before occurred_at; a dossier cannot be due before it is received".into())
        );
        assert_eq!(
            check_due(at, at + MAX_DUE_SPAN + Duration::SECOND).map_err(|e| e.to_string()),
            Err("is more than 366 days after occurred_at".into())
        );
        let old = datetime!(2019-12-31 23:00 +7);
        assert_eq!(
            check_due(old, old + Duration::minutes(30)).map_err(|e| e.to_string()),
            Err("is before 2020, the first year govpulse counts due times from".into())
        );
        assert_eq!(
            check_due(old, old + Duration::hours(1)),
            Ok(()),
            "due on 1 January 2020, Vietnam time"
        );
    }

    #[test]
    fn the_latest_due_day_is_a_year_and_a_day_after_now_plus_skew() {
        let policy = AcceptancePolicy::default();
        assert_eq!(
            last_possible_due_day(&policy, datetime!(2026-11-23 16:00 UTC)),
            date!(2027 - 11 - 24)
        );
        assert_eq!(
            last_possible_due_day(&policy, datetime!(2026-11-23 16:57 UTC)),
            date!(2027 - 11 - 25),
            "23:57 in Vietnam: a reception 5 minutes ahead is tomorrow's"
        );
    }

    fn names(buckets: &[Bucket]) -> Vec<String> {
        buckets.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_prefix_is_one_bucket_per_year_then_the_plan_of_the_last_year() {
        let plan = prefix_plan(date!(2026 - 09 - 30), date!(2027 - 11 - 24));
        assert_eq!(
            (names(&plan.add), names(&plan.subtract)),
            (
                [
                    "y2020", "y2021", "y2022", "y2023", "y2024", "y2025", "y2026"
                ]
                .map(String::from)
                .to_vec(),
                vec!["q20264".into()]
            ),
            "due days run past today: the fourth quarter is read and subtracted"
        );
        let plan = prefix_plan(date!(2020 - 12 - 30), date!(2027 - 11 - 24));
        assert_eq!(
            (names(&plan.add), names(&plan.subtract)),
            (vec!["y2020".into()], vec!["d20201231".into()])
        );
        assert!(prefix_plan(date!(2019 - 12 - 31), date!(2027 - 11 - 24)).is_empty());
    }

    #[test]
    fn each_transition_counts_once() {
        let (d, r) = (date!(2026 - 03 - 10), date!(2026 - 03 - 20));
        let received = DueEvent::Received { due_day: d };
        let resolved = DueEvent::Resolved { day: r };
        let open = step(None, received);
        assert_eq!(
            (open.state, open.open, open.due),
            (Some(DossierState::Open { due_day: d }), true, Some(d))
        );
        let closed = step(open.state, resolved);
        assert_eq!(
            (closed.state, closed.close, closed.due_closed),
            (Some(DossierState::Done), true, Some(r))
        );
        assert_eq!(step(closed.state, resolved), Step::default());
        assert_eq!(step(closed.state, received), Step::default());
        let first = step(None, resolved);
        assert_eq!(first.state, Some(DossierState::Resolved { day: r }));
        let late_reception = step(first.state, received);
        assert_eq!(
            (
                late_reception.due,
                late_reception.due_closed,
                late_reception.open
            ),
            (Some(d), Some(r), false)
        );
        assert_eq!(step(first.state, resolved), Step::default());
        assert_eq!(step(open.state, received), Step::default());
        let early = step(
            Some(DossierState::Open {
                due_day: date!(2026 - 04 - 01),
            }),
            resolved,
        );
        assert_eq!(
            early.due_closed,
            Some(date!(2026 - 04 - 01)),
            "resolved before due"
        );
    }

    /// One dossier: its due day, its resolution day if any, and whether the resolution
    /// arrives first.
    fn arb_dossier() -> impl Strategy<Value = (i64, Option<i64>, bool, u8)> {
        (
            0i64..60,
            proptest::option::of(0i64..70),
            any::<bool>(),
            0u8..3,
        )
    }

    proptest! {
        /// Whatever the arrival order and retries, the prefix sum of due − due_cl up to any
        /// day is the number of dossiers with D ≤ b < R, never negative on the way.
        #[test]
        fn the_prefix_sum_counts_dossiers_open_past_due(dossiers in prop::collection::vec(arb_dossier(), 0..30)) {
            let first = date!(2025 - 12 - 01);
            let day = |n: i64| first + Duration::days(n);
            let mut due = BTreeMap::<Date, i64>::new();
            let mut closed = BTreeMap::<Date, i64>::new();
            for (d, r, resolution_first, resends) in &dossiers {
                let mut events = vec![DueEvent::Received { due_day: day(*d) }];
                if let Some(r) = r {
                    events.push(DueEvent::Resolved { day: day(*r) });
                    if *resolution_first {
                        events.reverse();
                    }
                }
                // Later receptions or resolutions of the same dossier change nothing.
                for _ in 0..*resends {
                    events.push(events[0]);
                }
                let mut state = None;
                for event in events {
                    let s = step(state, event);
                    state = s.state.or(state);
                    if let Some(at) = s.due {
                        *due.entry(at).or_default() += 1;
                    }
                    if let Some(at) = s.due_closed {
                        *closed.entry(at).or_default() += 1;
                    }
                }
            }
            let mut running = 0i64;
            for b in (0..80).map(day) {
                running += due.get(&b).copied().unwrap_or(0) - closed.get(&b).copied().unwrap_or(0);
                prop_assert!(running >= 0);
                let expected = dossiers
                    .iter()
                    .filter(|(d, r, _, _)| day(*d) <= b && r.is_none_or(|r| b < day(r)))
                    .count() as i64;
                prop_assert_eq!(running, expected, "end of {}", b);
            }
        }

        /// The prefix plan counts every day that can hold due counters once when it is not
        /// after the last day, and never otherwise.
        #[test]
        fn a_prefix_plan_counts_each_possible_day_exactly(last in 0i64..3000, possible in 0i64..3000) {
            let origin = date!(2019 - 06 - 01);
            let last = origin + Duration::days(last);
            let last_possible = origin + Duration::days(possible);
            let plan = prefix_plan(last, last_possible);
            let mut day = Bucket::Year(FIRST_DUE_YEAR).first_day();
            while day <= last_possible {
                let weight = |buckets: &[Bucket]| {
                    buckets.iter().filter(|b| b.first_day() <= day && day <= b.last_day()).count() as i64
                };
                prop_assert_eq!(weight(&plan.add) - weight(&plan.subtract), i64::from(day <= last), "day {}", day);
                day = day.next_day().expect("in range");
            }
            prop_assert!(plan.len() <= (last.year() - FIRST_DUE_YEAR).max(0) as usize + 31 + 4);
        }
    }
}
