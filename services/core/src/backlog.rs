//! A dossier's stages, each counted once ([`Stage`], [`step`]), and dossiers still open past
//! their due time at the end of any period: the rule that makes it exact with summable
//! day-bucketed counters, the bounds on due times that keep its reads bounded, and the read
//! plan.
//!
//! **Once per stage.** A dossier (per reporting agency and dossier id) is received,
//! resolved, paid for and given feedback on at most once each: the first event of a stage to
//! arrive counts, and a later one under another event id is not counted at all (its sender
//! is told which stage was counted already). A store remembers per dossier which stages were
//! counted, with the due day of its reception and the day of its resolution ([`Dossier`]).
//!
//! A dossier received with a due time on Vietnam day `D` and resolved on day `R` is
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
//! and only once per dossier (a later reception or resolution of it is not counted). Retries
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

use xxhash_rust::xxh3::xxh3_64;

use crate::{
    AcceptancePolicy, Bucket, Counter, Period, ProcedureId, ReadPlan,
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

/// A stage of a dossier that govpulse counts. Each counts once per dossier (per reporting
/// agency and dossier id), whatever event ids it is sent under: a second reception,
/// resolution, payment or feedback of a dossier is not counted (DOMAIN.md: "a stage of a
/// dossier counts once"). A dossier *ends* once: resolved, withdrawn or returned, whichever is
/// counted first ([`Stage::ends`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    Received,
    Resolved,
    FeePaid,
    Feedback,
    /// Withdrawn by its owner: ended without a resolution.
    Withdrawn,
    /// Returned by the agency as ineligible: ended without a resolution.
    Returned,
}

impl Stage {
    /// Every stage, in the order of their bits in [`Dossier::stage_bits`].
    pub const ALL: [Stage; 6] = [
        Stage::Received,
        Stage::Resolved,
        Stage::FeePaid,
        Stage::Feedback,
        Stage::Withdrawn,
        Stage::Returned,
    ];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Whether the stage ends the dossier: a resolution, a withdrawal or a return. A dossier
    /// ends once; from the day it ends it is no longer open.
    pub fn ends(self) -> bool {
        matches!(self, Stage::Resolved | Stage::Withdrawn | Stage::Returned)
    }

    /// What happened at this stage, in words for an outcome's reason: `a reception`, ...
    pub fn described(self) -> &'static str {
        match self {
            Stage::Received => "a reception",
            Stage::Resolved => "a resolution",
            Stage::FeePaid => "a fee payment",
            Stage::Feedback => "feedback",
            Stage::Withdrawn => "a withdrawal",
            Stage::Returned => "a return",
        }
    }
}

/// What one new event does to its dossier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageEvent {
    /// Received; with a due time on Vietnam day `due_day`, if the event gave one.
    Received { due_day: Option<Date> },
    /// Resolved on Vietnam day `day`.
    Resolved { day: Date },
    /// Its fee was paid.
    FeePaid,
    /// Its owner gave feedback.
    Feedback,
    /// Withdrawn by its owner on Vietnam day `day`.
    Withdrawn { day: Date },
    /// Returned by the agency as ineligible on Vietnam day `day`.
    Returned { day: Date },
}

impl StageEvent {
    /// The stage the event is of.
    pub fn stage(self) -> Stage {
        match self {
            StageEvent::Received { .. } => Stage::Received,
            StageEvent::Resolved { .. } => Stage::Resolved,
            StageEvent::FeePaid => Stage::FeePaid,
            StageEvent::Feedback => Stage::Feedback,
            StageEvent::Withdrawn { .. } => Stage::Withdrawn,
            StageEvent::Returned { .. } => Stage::Returned,
        }
    }

    /// The Vietnam day it ends its dossier on, if it ends it.
    fn ends_on(self) -> Option<Date> {
        match self {
            StageEvent::Resolved { day }
            | StageEvent::Withdrawn { day }
            | StageEvent::Returned { day } => Some(day),
            StageEvent::Received { .. } | StageEvent::FeePaid | StageEvent::Feedback => None,
        }
    }
}

/// What a store remembers of one dossier (per reporting agency and dossier id): the
/// procedure it is for, which stages were counted, and the two days the backlog needs (the
/// due day of its reception, the day it ended), each kept even when the other is not known
/// yet (events arrive in any order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Dossier {
    procedure: u32,
    stages: u8,
    due_day: Option<Date>,
    ended_day: Option<Date>,
}

/// A 32-bit digest of a procedure id: what a dossier record keeps to tell that an event of
/// the dossier names another procedure. Two procedure ids share one with a chance of one in
/// 4 billion, and then such an event is taken as naming the dossier's own procedure.
pub fn procedure_digest(procedure: &ProcedureId) -> u32 {
    (xxh3_64(procedure.as_str().as_bytes()) >> 32) as u32
}

impl Dossier {
    /// A dossier nothing was counted of yet, for the procedure of `procedure_digest`.
    pub fn new(procedure_digest: u32) -> Dossier {
        Dossier {
            procedure: procedure_digest,
            ..Dossier::default()
        }
    }

    /// A dossier as a store kept it: its procedure's digest, [`Dossier::stage_bits`] and the
    /// two days. `None` when the parts disagree (a due day without a reception, an ending
    /// without its day or the other way round, two endings, an unknown bit): no such record
    /// is ever written.
    pub fn from_parts(
        procedure_digest: u32,
        stage_bits: u8,
        due_day: Option<Date>,
        ended_day: Option<Date>,
    ) -> Option<Dossier> {
        let dossier = Dossier {
            procedure: procedure_digest,
            stages: stage_bits,
            due_day,
            ended_day,
        };
        let known = Stage::ALL.iter().fold(0, |bits, s| bits | s.bit());
        let endings = Stage::ALL
            .iter()
            .filter(|s| s.ends() && dossier.has(**s))
            .count();
        let consistent = stage_bits & !known == 0
            && (due_day.is_none() || dossier.has(Stage::Received))
            && endings <= 1
            && ended_day.is_some() == (endings == 1);
        consistent.then_some(dossier)
    }

    /// The digest of the procedure it is for ([`procedure_digest`]).
    pub fn procedure(&self) -> u32 {
        self.procedure
    }

    /// Whether `stage` was counted.
    pub fn has(&self, stage: Stage) -> bool {
        self.stages & stage.bit() != 0
    }

    /// The counted stages as bits, [`Stage::ALL`] from the lowest: what stores keep.
    pub fn stage_bits(&self) -> u8 {
        self.stages
    }

    /// The due day of its counted reception, when that gave a due time.
    pub fn due_day(&self) -> Option<Date> {
        self.due_day
    }

    /// The day it ended: of its counted resolution, withdrawal or return.
    pub fn ended_day(&self) -> Option<Date> {
        self.ended_day
    }

    /// How it ended, if it did: the stage counted of those that end a dossier.
    pub fn ending(&self) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.ends() && self.has(*s))
    }

    /// Received with a due time and not ended: in the backlog, and kept by a store whatever
    /// its age (its resolution may come late).
    pub fn is_open(&self) -> bool {
        self.due_day.is_some() && self.ending().is_none()
    }
}

/// What one counted event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The dossier as the event leaves it.
    pub dossier: Dossier,
    /// The day in whose buckets [`Counter::DueOpened`] grows by one.
    pub due: Option<Date>,
    /// The day in whose buckets [`Counter::DueClosed`] grows by one.
    pub due_closed: Option<Date>,
}

/// The counting rule (module docs): what a new event does to a dossier (`None`: nothing
/// known of it yet), or `Err` with the stage counted already when the event's stage was (or,
/// for an ending, when the dossier ended already), and the event is not counted at all. The
/// first reception and the first ending (resolution, withdrawal or return) to arrive count;
/// the due counters move when both the due day and the day it ended are known: a withdrawn
/// or returned dossier leaves the backlog on its day as a resolved one does.
pub fn step(before: Option<Dossier>, event: StageEvent) -> Result<Step, Stage> {
    let mut dossier = before.unwrap_or_default();
    let stage = event.stage();
    if dossier.has(stage) {
        return Err(stage);
    }
    if let Some(ended) = dossier.ending().filter(|_| stage.ends()) {
        return Err(ended);
    }
    dossier.stages |= stage.bit();
    let (mut due, mut due_closed) = (None, None);
    if let StageEvent::Received { due_day } = event {
        dossier.due_day = due_day;
        due = due_day;
        due_closed = due_day
            .zip(dossier.ended_day)
            .map(|(due, ended)| ended.max(due));
    }
    if let Some(day) = event.ends_on() {
        dossier.ended_day = Some(day);
        due_closed = dossier.due_day.map(|due| day.max(due));
    }
    Ok(Step {
        dossier,
        due,
        due_closed,
    })
}

/// What taking back a counted stage of a dossier does (a retraction, or a correction before
/// its new content is counted): the exact opposite of the [`step`] that counted it, and of
/// the step that completed its pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unstep {
    /// The dossier without the stage: as if that event had never arrived.
    pub dossier: Dossier,
    /// The day in whose buckets [`Counter::DueOpened`] loses one.
    pub due: Option<Date>,
    /// The day in whose buckets [`Counter::DueClosed`] loses one.
    pub due_closed: Option<Date>,
}

/// Takes `stage` back from `dossier`; `None` when it was not counted. A reception takes back
/// `due` on its due day, and `due_cl` if the dossier ended; an ending (resolution,
/// withdrawal, return) takes back `due_cl` if the reception had a due time: whichever of the
/// two arrived last added it.
pub fn unstep(dossier: Dossier, stage: Stage) -> Option<Unstep> {
    if !dossier.has(stage) {
        return None;
    }
    let mut left = dossier;
    left.stages &= !stage.bit();
    let closed = dossier
        .due_day
        .zip(dossier.ended_day)
        .map(|(due, ended)| ended.max(due));
    let (due, due_closed) = match stage {
        Stage::Received => {
            left.due_day = None;
            (dossier.due_day, closed)
        }
        Stage::Resolved | Stage::Withdrawn | Stage::Returned => {
            left.ended_day = None;
            (None, closed)
        }
        Stage::FeePaid | Stage::Feedback => (None, None),
    };
    Some(Unstep {
        dossier: left,
        due,
        due_closed,
    })
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
    fn each_stage_counts_once() {
        let (d, r) = (date!(2026 - 03 - 10), date!(2026 - 03 - 20));
        let received = StageEvent::Received { due_day: Some(d) };
        let resolved = StageEvent::Resolved { day: r };
        let open = step(None, received).expect("first reception");
        assert_eq!((open.due, open.due_closed), (Some(d), None));
        assert!(open.dossier.is_open());
        let closed = step(Some(open.dossier), resolved).expect("first resolution");
        assert_eq!((closed.due, closed.due_closed), (None, Some(r)));
        assert!(!closed.dossier.is_open());
        assert_eq!(step(Some(closed.dossier), resolved), Err(Stage::Resolved));
        assert_eq!(step(Some(closed.dossier), received), Err(Stage::Received));
        let paid = step(Some(closed.dossier), StageEvent::FeePaid).expect("first payment");
        assert_eq!((paid.due, paid.due_closed), (None, None));
        assert_eq!(
            step(Some(paid.dossier), StageEvent::FeePaid),
            Err(Stage::FeePaid)
        );
        assert!(step(Some(paid.dossier), StageEvent::Feedback).is_ok());

        let first = step(None, resolved).expect("a resolution first");
        assert_eq!((first.due, first.due_closed), (None, None));
        let late_reception = step(Some(first.dossier), received).expect("its reception");
        assert_eq!(
            (late_reception.due, late_reception.due_closed),
            (Some(d), Some(r))
        );
        assert!(!late_reception.dossier.is_open());
        let without_due = step(None, StageEvent::Received { due_day: None }).expect("reception");
        assert_eq!((without_due.due, without_due.due_closed), (None, None));
        assert!(!without_due.dossier.is_open());
        assert_eq!(
            step(Some(without_due.dossier), received),
            Err(Stage::Received),
            "a later reception with a due time is a second reception"
        );
        let early = step(
            Some(
                step(
                    None,
                    StageEvent::Received {
                        due_day: Some(date!(2026 - 04 - 01)),
                    },
                )
                .expect("reception")
                .dossier,
            ),
            resolved,
        )
        .expect("resolution");
        assert_eq!(
            early.due_closed,
            Some(date!(2026 - 04 - 01)),
            "resolved before due"
        );
    }

    #[test]
    fn a_kept_dossier_reads_back_only_when_its_parts_agree() {
        let (d, r) = (date!(2026 - 03 - 10), date!(2026 - 03 - 20));
        let done = step(
            Some(
                step(None, StageEvent::Resolved { day: r })
                    .expect("resolved")
                    .dossier,
            ),
            StageEvent::Received { due_day: Some(d) },
        )
        .expect("received")
        .dossier;
        assert_eq!(
            Dossier::from_parts(
                done.procedure(),
                done.stage_bits(),
                done.due_day(),
                done.ended_day()
            ),
            Some(done)
        );
        let parts = |bits, due, resolved| Dossier::from_parts(7, bits, due, resolved);
        assert_eq!(parts(0b1, Some(d), None).map(|x| x.is_open()), Some(true));
        assert_eq!(parts(0b1, Some(d), None).map(|x| x.procedure()), Some(7));
        assert_eq!(parts(0b0, Some(d), None), None, "due day, no reception");
        assert_eq!(parts(0b10, None, None), None, "resolved without its day");
        assert_eq!(parts(0b1, None, Some(r)), None, "a day, not resolved");
        assert_eq!(parts(0b100_0000, None, None), None, "unknown stage");
        assert_eq!(
            parts(0b1_0001, None, Some(r)).map(|x| x.ending()),
            Some(Some(Stage::Withdrawn))
        );
        assert_eq!(
            parts(0b1_0010, None, Some(r)),
            None,
            "resolved and withdrawn"
        );
        assert_eq!(
            parts(0b10_0001, None, None),
            None,
            "returned without its day"
        );
    }

    #[test]
    fn a_dossier_ends_once_and_leaves_the_backlog_the_day_it_ends() {
        let (d, w) = (date!(2026 - 03 - 10), date!(2026 - 03 - 20));
        let received = step(None, StageEvent::Received { due_day: Some(d) }).expect("received");
        for (ending, stage) in [
            (StageEvent::Withdrawn { day: w }, Stage::Withdrawn),
            (StageEvent::Returned { day: w }, Stage::Returned),
        ] {
            let ended = step(Some(received.dossier), ending).expect("ended");
            assert_eq!((ended.due, ended.due_closed), (None, Some(w)));
            assert!(!ended.dossier.is_open());
            assert_eq!(ended.dossier.ending(), Some(stage));
            for later in [
                StageEvent::Resolved { day: w },
                StageEvent::Withdrawn { day: w },
                StageEvent::Returned { day: w },
            ] {
                assert_eq!(step(Some(ended.dossier), later), Err(stage), "ends once");
            }
            assert!(step(Some(ended.dossier), StageEvent::FeePaid).is_ok());
            let back = unstep(ended.dossier, stage).expect("counted");
            assert_eq!((back.due, back.due_closed), (None, Some(w)));
            assert_eq!(back.dossier, received.dossier, "open again");
        }
        let resolved = step(Some(received.dossier), StageEvent::Resolved { day: w })
            .expect("resolved")
            .dossier;
        assert_eq!(
            step(Some(resolved), StageEvent::Withdrawn { day: w }),
            Err(Stage::Resolved),
            "a resolved dossier is not withdrawn"
        );
        let first = step(None, StageEvent::Returned { day: w }).expect("a return first");
        assert_eq!((first.due, first.due_closed), (None, None));
        let then = step(
            Some(first.dossier),
            StageEvent::Received { due_day: Some(d) },
        )
        .expect("its reception");
        assert_eq!((then.due, then.due_closed), (Some(d), Some(w)));
    }

    /// The ending of a dossier in the property tests: resolved, withdrawn or returned on
    /// `day`.
    fn ending(kind: u8, day: Date) -> StageEvent {
        match kind {
            0 => StageEvent::Resolved { day },
            1 => StageEvent::Withdrawn { day },
            _ => StageEvent::Returned { day },
        }
    }

    /// One dossier: its due day, the day it ends if it does, whether that arrives first, how
    /// many times a stage is sent again, and how it ends.
    fn arb_dossier() -> impl Strategy<Value = (i64, Option<i64>, bool, u8, u8)> {
        (
            0i64..60,
            proptest::option::of(0i64..70),
            any::<bool>(),
            0u8..3,
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
            for (d, r, resolution_first, resends, how) in &dossiers {
                let mut events = vec![StageEvent::Received { due_day: Some(day(*d)) }];
                if let Some(r) = r {
                    events.push(ending(*how, day(*r)));
                    if *resolution_first {
                        events.reverse();
                    }
                }
                // Later receptions or endings of the same dossier are not counted.
                for k in 0..*resends {
                    events.push(events[0]);
                    if r.is_some() {
                        events.push(ending(k, day(1)));
                    }
                }
                let mut state = None;
                for event in events {
                    let Ok(s) = step(state, event) else {
                        prop_assert!(state.is_some_and(|d| d.has(event.stage())
                            || (event.stage().ends() && d.ending().is_some())));
                        continue;
                    };
                    state = Some(s.dossier);
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
                    .filter(|(d, r, _, _, _)| day(*d) <= b && r.is_none_or(|r| b < day(r)))
                    .count() as i64;
                prop_assert_eq!(running, expected, "end of {}", b);
            }
        }

        /// Taking back any counted stage, in any order, after any arrival order, subtracts
        /// exactly what counting added: the due counters sum to those of the stages left,
        /// and a dossier with every stage taken back is as if nothing had arrived.
        #[test]
        fn taking_back_a_stage_subtracts_exactly_what_counting_added(
            (d, r, resolution_first, fee, how) in (0i64..60, proptest::option::of(0i64..70), any::<bool>(), any::<bool>(), 0u8..3),
            order in Just(vec![0usize, 1, 2]).prop_shuffle(),
        ) {
            let first = date!(2025 - 12 - 01);
            let day = |n: i64| first + Duration::days(n);
            let mut events = vec![StageEvent::Received { due_day: Some(day(d)) }];
            if let Some(r) = r {
                events.push(ending(how, day(r)));
                if resolution_first {
                    events.reverse();
                }
            }
            if fee {
                events.push(StageEvent::FeePaid);
            }
            let mut net = BTreeMap::<(Date, bool), i64>::new();
            let mut dossier = None;
            for event in &events {
                let s = step(dossier, *event).expect("each stage once");
                dossier = Some(s.dossier);
                for (at, closing) in [(s.due, false), (s.due_closed, true)] {
                    if let Some(at) = at {
                        *net.entry((at, closing)).or_default() += 1;
                    }
                }
            }
            // Taken back in any order: `order` shuffles the indexes of the (at most three)
            // stages.
            let stages: Vec<Stage> = order.iter().filter_map(|&i| events.get(i)).map(|e| e.stage()).collect();
            let mut left = dossier.expect("counted");
            for stage in stages {
                let back = unstep(left, stage).expect("a counted stage");
                prop_assert_eq!(unstep(back.dossier, stage), None, "taken back once");
                for (at, closing) in [(back.due, false), (back.due_closed, true)] {
                    if let Some(at) = at {
                        *net.entry((at, closing)).or_default() -= 1;
                    }
                }
                left = back.dossier;
                // What is left counts as if only the stages left had arrived.
                let mut again = None;
                let mut expected = BTreeMap::<(Date, bool), i64>::new();
                for event in events.iter().filter(|e| left.has(e.stage())) {
                    let s = step(again, *event).expect("each stage once");
                    again = Some(s.dossier);
                    for (at, closing) in [(s.due, false), (s.due_closed, true)] {
                        if let Some(at) = at {
                            *expected.entry((at, closing)).or_default() += 1;
                        }
                    }
                }
                net.retain(|_, n| *n != 0);
                prop_assert_eq!(&net, &expected);
                prop_assert_eq!(again.unwrap_or_default().stage_bits(), left.stage_bits());
            }
            prop_assert_eq!(left, Dossier::default(), "nothing left");
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
