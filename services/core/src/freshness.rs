//! Whether an agency's figures are current, and how clean the data its systems send is:
//! when it last reported, whether it has been silent for too long, and how many of its
//! events were accepted and rejected per day.
//!
//! A one-stop system that stops syncing leaves its rates frozen, and a frozen rate looks as
//! good as a live one. So every counted event also records, for every agency of its chain,
//! when govpulse accepted it and when it says it happened ([`Seen`], kept by the stores as
//! the latest of each), and how many events were accepted per Vietnam day
//! ([`crate::counting::Plan::arrivals`]). An agency with no event accepted for longer than
//! [`FreshnessPolicy::silence`] (or ever) is *stale*: its figures are shown, flagged.
//!
//! A system that sends broken events is the other way figures go wrong without anyone
//! noticing: its rejected events are counted per agency and Vietnam day too
//! ([`crate::counting::Plan::rejected`]), against the agency [`blamed`] for them, beside
//! its accepted ones ([`Arrivals`]).

use std::{collections::BTreeMap, sync::Arc};

use time::{Date, Duration, OffsetDateTime};

use crate::{AgencyId, Catalog, counting::RejectedWrite};

/// How long an agency may stay silent before its figures are flagged stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreshnessPolicy {
    /// Silence longer than this flags an agency stale. Dashboards built on the national
    /// portal treat data older than two hours as stale: the default.
    pub silence: Duration,
}

impl Default for FreshnessPolicy {
    fn default() -> Self {
        Self {
            silence: Duration::hours(2),
        }
    }
}

/// The latest events counted for an agency (its own and its units'): what the stores keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Seen {
    /// When govpulse last accepted one; `None` when it never did.
    pub last_accepted: Option<OffsetDateTime>,
    /// The latest time an accepted one says it happened.
    pub last_occurred: Option<OffsetDateTime>,
}

impl Seen {
    /// What is seen after an event accepted at `accepted` that happened at `occurred`.
    pub fn record(&mut self, accepted: OffsetDateTime, occurred: OffsetDateTime) {
        *self = self.latest(Seen {
            last_accepted: Some(accepted),
            last_occurred: Some(occurred),
        });
    }

    /// The latest of each of two records: what a store keeps when both are written, in
    /// either order.
    pub fn latest(self, other: Seen) -> Seen {
        Seen {
            last_accepted: self.last_accepted.max(other.last_accepted),
            last_occurred: self.last_occurred.max(other.last_occurred),
        }
    }

    /// Whether the agency is stale at `now`, and since (or until) when.
    pub fn at(self, now: OffsetDateTime, policy: FreshnessPolicy) -> Freshness {
        let stale_at = self.last_accepted.map(|at| at + policy.silence);
        Freshness {
            seen: self,
            stale: stale_at.is_none_or(|at| now >= at),
            stale_at,
        }
    }
}

/// How many Vietnam days of per-day counts the stores keep per agency: [`RECENT_DAYS`]
/// shown, with room for the days a reader's and a writer's clocks may disagree on.
pub const ARRIVAL_DAYS: usize = 35;

/// How many of the last Vietnam days of events per day a reader is shown at most:
/// GetMetrics shows this many, GetBlockMetrics as many as it is asked for up to this.
pub const RECENT_DAYS: usize = 30;

/// The last `n` Vietnam days up to `today`, oldest first, today last.
pub fn recent_days(today: Date, n: usize) -> Vec<Date> {
    (0..n)
        .rev()
        .filter_map(|back| i64::try_from(back).ok())
        .map(|back| today - Duration::days(back))
        .collect()
}

/// Counts per Vietnam day over the [`ARRIVAL_DAYS`] days up to the latest day counted: what
/// a store keeps, one small record, moved on as days pass (no key per day, nothing to
/// expire). An agency keeps two ([`Arrivals`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DayCounts {
    /// The latest day counted; `None` before the first count.
    last_day: Option<Date>,
    /// `counts[k]`: what was counted on `last_day - k` days.
    counts: [u32; ARRIVAL_DAYS],
}

impl Default for DayCounts {
    fn default() -> Self {
        Self {
            last_day: None,
            counts: [0; ARRIVAL_DAYS],
        }
    }
}

impl DayCounts {
    /// Counts `n` on `day`. A later day moves the window on (the days that leave it are
    /// forgotten); a day before the window is not counted.
    pub fn add(&mut self, day: Date, n: u64) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let last = match self.last_day {
            Some(last) if last >= day => last,
            Some(last) => {
                let shift = usize::try_from((day - last).whole_days()).unwrap_or(usize::MAX);
                if shift >= ARRIVAL_DAYS {
                    self.counts = [0; ARRIVAL_DAYS];
                } else {
                    self.counts.copy_within(..ARRIVAL_DAYS - shift, shift);
                    self.counts[..shift].fill(0);
                }
                self.last_day = Some(day);
                day
            }
            None => {
                self.last_day = Some(day);
                day
            }
        };
        if let Some(slot) = Self::slot(last, day) {
            self.counts[slot] = self.counts[slot].saturating_add(n);
        }
    }

    /// What was counted on `day`: 0 for a day outside the window kept.
    pub fn on(&self, day: Date) -> u64 {
        self.last_day
            .and_then(|last| Self::slot(last, day))
            .map_or(0, |slot| u64::from(self.counts[slot]))
    }

    fn slot(last: Date, day: Date) -> Option<usize> {
        usize::try_from((last - day).whole_days())
            .ok()
            .filter(|k| *k < ARRIVAL_DAYS)
    }

    /// The latest day counted and each day's count back from it, as a store keeps them.
    pub fn parts(&self) -> (Option<Date>, &[u32; ARRIVAL_DAYS]) {
        (self.last_day, &self.counts)
    }

    /// The counts [`DayCounts::parts`] gave.
    pub fn from_parts(last_day: Option<Date>, counts: [u32; ARRIVAL_DAYS]) -> Self {
        Self { last_day, counts }
    }
}

/// An agency's events (its own and its units') per Vietnam day over the last few weeks:
/// accepted ones per day of acceptance, rejected ones per day of rejection. Two windows that
/// move on independently (each up to its own latest day), so that a store may keep, read and
/// write each on its own: a batch without rejections touches only the accepted one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Arrivals {
    /// Events accepted (counted now: not duplicates, conflicts or rejected ones).
    pub accepted: DayCounts,
    /// Events rejected as invalid, counted against the agency ([`blamed`]).
    pub rejected: DayCounts,
}

impl Arrivals {
    /// The events of `day`.
    pub fn on(&self, day: Date) -> DailyEvents {
        DailyEvents {
            day,
            accepted: self.accepted.on(day),
            rejected: self.rejected.on(day),
        }
    }
}

/// An agency's events of one Vietnam day: what its data quality is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DailyEvents {
    /// The day.
    pub day: Date,
    /// Events accepted that day, whatever day they describe.
    pub accepted: u64,
    /// Events rejected as invalid that day and counted against the agency.
    pub rejected: u64,
}

/// Who an event rejected as invalid counts against: the agency it names, when that is an
/// agency of the catalog (`named`: what decoding found, `None` when the `agency_id` is not
/// one) and the sender may send events of it (`may_send`: the sender's credential's scope);
/// nobody otherwise. So a sender cannot blame another agency (an event refused because it is
/// not the sender's to send counts against nobody), and an id outside the catalog costs no
/// state.
pub fn blamed(
    named: Option<&AgencyId>,
    may_send: impl FnOnce(&AgencyId) -> bool,
) -> Option<&AgencyId> {
    named.filter(|agency| may_send(agency))
}

/// The events of one call rejected as invalid, per agency [`blamed`] for them: what ingest
/// forwards beside the call's valid events, and aggregate adds its own rejections to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections(BTreeMap<AgencyId, u64>);

impl Rejections {
    /// Counts `n` more events rejected for `agency`.
    pub fn add(&mut self, agency: &AgencyId, n: u64) {
        let kept = match self.0.get_mut(agency) {
            Some(kept) => kept,
            None => self.0.entry(agency.clone()).or_default(),
        };
        *kept = kept.saturating_add(n);
    }

    /// No rejection counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many events, all agencies together.
    pub fn total(&self) -> u64 {
        self.0.values().fold(0, |sum, n| sum.saturating_add(*n))
    }

    /// Each agency with its count, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&AgencyId, u64)> {
        self.0.iter().map(|(agency, n)| (agency, *n))
    }

    /// What the stores count, rejected at `at` (the batch's clock reading): one write per
    /// agency, for its whole chain (an agency's figure includes its units'). An agency the
    /// catalog does not know has no chain and is left out.
    pub fn writes(&self, catalog: &Catalog, at: OffsetDateTime) -> Vec<RejectedWrite> {
        self.iter()
            .filter_map(|(agency, count)| {
                let chain: Arc<[AgencyId]> = catalog.shared_chain(agency);
                (!chain.is_empty()).then_some(RejectedWrite {
                    chain,
                    count,
                    rejected_at: at,
                })
            })
            .collect()
    }
}

/// What a store answers of an agency's reporting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// The latest events counted for it.
    pub seen: Seen,
    /// Its events on each of the Vietnam days asked for, in the order asked; 0 for a day more
    /// than [`ARRIVAL_DAYS`] days before its last acceptance (accepted) or its last
    /// rejection (rejected).
    pub days: Vec<DailyEvents>,
}

/// An agency's freshness at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Freshness {
    /// What was seen of it.
    pub seen: Seen,
    /// Silent for longer than the policy allows, or never heard from.
    pub stale: bool,
    /// When it is (or was) flagged stale unless something more arrives: the last acceptance
    /// plus the policy's silence; `None` when nothing was ever accepted.
    pub stale_at: Option<OffsetDateTime>,
}

impl Freshness {
    /// The earliest moment after `now` at which one of `rows` turns stale: when a view of
    /// them must be looked at again even if nothing arrives.
    pub fn next_change<'a>(
        rows: impl IntoIterator<Item = &'a Freshness>,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        rows.into_iter()
            .filter(|f| !f.stale)
            .filter_map(|f| f.stale_at)
            .filter(|at| *at > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::testing::{Table, catalog_of, id as agency};

    const POLICY: FreshnessPolicy = FreshnessPolicy {
        silence: Duration::hours(2),
    };

    #[test]
    fn an_agency_never_heard_from_is_stale_with_no_moment() {
        let freshness = Seen::default().at(datetime!(2026-12-05 08:00 UTC), POLICY);
        assert!(freshness.stale);
        assert_eq!(freshness.stale_at, None);
    }

    #[test]
    fn an_agency_turns_stale_exactly_when_its_silence_reaches_the_policy() {
        let mut seen = Seen::default();
        seen.record(
            datetime!(2026-12-05 08:00 UTC),
            datetime!(2026-12-04 23:00 UTC),
        );
        let at = |now| seen.at(now, POLICY);
        assert!(!at(datetime!(2026-12-05 09:59:59.999 UTC)).stale);
        assert!(at(datetime!(2026-12-05 10:00 UTC)).stale);
        assert_eq!(
            at(datetime!(2026-12-05 09:00 UTC)).stale_at,
            Some(datetime!(2026-12-05 10:00 UTC))
        );
    }

    #[test]
    fn the_latest_of_each_is_kept_whatever_the_order() {
        let early = Seen {
            last_accepted: Some(datetime!(2026-12-05 08:00 UTC)),
            last_occurred: Some(datetime!(2026-12-05 07:00 UTC)),
        };
        // A late event: accepted later, but it happened earlier.
        let late = Seen {
            last_accepted: Some(datetime!(2026-12-05 09:00 UTC)),
            last_occurred: Some(datetime!(2026-11-30 07:00 UTC)),
        };
        let expected = Seen {
            last_accepted: late.last_accepted,
            last_occurred: early.last_occurred,
        };
        assert_eq!(early.latest(late), expected);
        assert_eq!(late.latest(early), expected);
        assert_eq!(Seen::default().latest(early), early);
    }

    #[test]
    fn day_counts_keep_a_window_of_days_that_moves_with_the_latest() {
        use time::macros::date;
        let mut arrivals = DayCounts::default();
        assert_eq!(arrivals.on(date!(2026 - 12 - 05)), 0);
        arrivals.add(date!(2026 - 12 - 01), 3);
        arrivals.add(date!(2026 - 12 - 01), 2);
        arrivals.add(date!(2026 - 12 - 03), 7);
        // A replica whose clock is behind counts into a day already in the window.
        arrivals.add(date!(2026 - 12 - 02), 1);
        assert_eq!(
            [1, 2, 3, 4].map(|d| arrivals.on(date!(2026 - 12 - 01) + Duration::days(d - 1))),
            [5, 1, 7, 0]
        );
        // 34 days after the last: the first day is still in the window, one more and it
        // leaves it; a day long before is not counted.
        arrivals.add(date!(2027 - 01 - 04), 1);
        assert_eq!(arrivals.on(date!(2026 - 12 - 01)), 5);
        arrivals.add(date!(2027 - 01 - 05), 1);
        assert_eq!(arrivals.on(date!(2026 - 12 - 01)), 0);
        assert_eq!(arrivals.on(date!(2026 - 12 - 03)), 7);
        arrivals.add(date!(2026 - 01 - 01), 9);
        assert_eq!(arrivals.on(date!(2026 - 01 - 01)), 0);
        // A silence longer than the window forgets everything before it.
        arrivals.add(date!(2027 - 06 - 01), 4);
        assert_eq!(arrivals.on(date!(2027 - 01 - 05)), 0);
        assert_eq!(arrivals.on(date!(2027 - 06 - 01)), 4);
        let (last, counts) = arrivals.parts();
        assert_eq!(DayCounts::from_parts(last, *counts), arrivals);
    }

    #[test]
    fn accepted_and_rejected_events_move_on_each_in_its_own_window() {
        use time::macros::date;
        let mut arrivals = Arrivals::default();
        arrivals.accepted.add(date!(2026 - 12 - 01), 5);
        arrivals.rejected.add(date!(2026 - 12 - 01), 2);
        // Rejections only, long after: the accepted window stays where it was.
        arrivals.rejected.add(date!(2026 - 12 - 20), 1);
        assert_eq!(
            arrivals.on(date!(2026 - 12 - 01)),
            DailyEvents {
                day: date!(2026 - 12 - 01),
                accepted: 5,
                rejected: 2
            }
        );
        let both = |events: DailyEvents| (events.accepted, events.rejected);
        assert_eq!(both(arrivals.on(date!(2026 - 12 - 20))), (0, 1));
        // 35 days after the first rejection, it has left its window; the accepted events of
        // that day have not, their window never moved.
        arrivals.rejected.add(date!(2027 - 01 - 05), 1);
        assert_eq!(both(arrivals.on(date!(2026 - 12 - 01))), (5, 0));
    }

    #[test]
    fn the_recent_days_end_today_oldest_first() {
        use time::macros::date;
        let today = date!(2026 - 03 - 01);
        assert_eq!(
            recent_days(today, 3),
            [
                date!(2026 - 02 - 27),
                date!(2026 - 02 - 28),
                date!(2026 - 03 - 01)
            ]
        );
        assert!(recent_days(today, 0).is_empty());
        assert_eq!(recent_days(today, RECENT_DAYS).len(), RECENT_DAYS);
    }

    fn catalog() -> Catalog {
        catalog_of(&[
            (
                Table::Provinces,
                "code,id,name\n17,hoa-binh,Hòa Bình\n01,ha-noi,Hà Nội\n",
            ),
            (Table::Units, "id,name,parent_id\nhb-dept,Sở,hoa-binh\n"),
        ])
    }

    #[test]
    fn a_rejected_event_counts_against_a_known_agency_its_sender_may_send_for_only() {
        let catalog = catalog();
        // A sender of Hòa Bình: itself and its units.
        let scope = |id: &AgencyId| catalog.chain(id).contains(&agency("hoa-binh"));
        let (dept, province, other) = (agency("hb-dept"), agency("hoa-binh"), agency("ha-noi"));
        assert_eq!(blamed(Some(&dept), scope), Some(&dept));
        assert_eq!(blamed(Some(&province), scope), Some(&province));
        assert_eq!(blamed(Some(&other), scope), None, "not its to send");
        assert_eq!(
            blamed(None, |_| true),
            None,
            "no agency of the catalog named"
        );
    }

    #[test]
    fn rejections_add_up_per_agency_and_count_for_its_chain() {
        use time::macros::datetime;
        let catalog = catalog();
        let mut rejections = Rejections::default();
        assert!(rejections.is_empty());
        rejections.add(&agency("hb-dept"), 2);
        rejections.add(&agency("ha-noi"), 1);
        rejections.add(&agency("hb-dept"), 3);
        assert_eq!(rejections.total(), 6);
        assert_eq!(
            rejections.iter().collect::<Vec<_>>(),
            [(&agency("ha-noi"), 1), (&agency("hb-dept"), 5)]
        );
        // An agency outside the catalog (never blamed, but a write must not be made up).
        rejections.add(&agency("nowhere"), 1);
        let at = datetime!(2026-12-05 08:00 UTC);
        let writes = rejections.writes(&catalog, at);
        let chains: Vec<(Vec<&str>, u64)> = writes
            .iter()
            .map(|w| (w.chain.iter().map(AgencyId::as_str).collect(), w.count))
            .collect();
        assert_eq!(
            chains,
            [(vec!["ha-noi"], 1), (vec!["hb-dept", "hoa-binh"], 5)]
        );
        assert!(writes.iter().all(|w| w.rejected_at == at));
        assert_eq!(writes[1].chain[0], agency("hb-dept"));
        assert_eq!(writes[1].root(), Some(&agency("hoa-binh")));
    }

    #[test]
    fn the_next_change_is_the_first_fresh_row_to_turn_stale() {
        let now = datetime!(2026-12-05 09:00 UTC);
        let seen = |accepted| Seen {
            last_accepted: Some(accepted),
            last_occurred: Some(accepted),
        };
        let rows = [
            seen(datetime!(2026-12-05 08:30 UTC)).at(now, POLICY),
            seen(datetime!(2026-12-05 07:30 UTC)).at(now, POLICY),
            seen(datetime!(2026-12-05 06:00 UTC)).at(now, POLICY),
            Seen::default().at(now, POLICY),
        ];
        assert_eq!(
            Freshness::next_change(&rows, now),
            Some(datetime!(2026-12-05 09:30 UTC))
        );
        assert_eq!(Freshness::next_change(&rows[2..], now), None);
    }
}
