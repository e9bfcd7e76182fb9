//! Whether an agency's figures are current: when it last reported, and whether it has been
//! silent for too long.
//!
//! A one-stop system that stops syncing leaves its rates frozen, and a frozen rate looks as
//! good as a live one. So every counted event also records, for every agency of its chain,
//! when govpulse accepted it and when it says it happened ([`Seen`], kept by the stores as
//! the latest of each), and how many events were accepted per Vietnam day
//! ([`crate::counting::Plan::arrivals`]). An agency with no event accepted for longer than
//! [`FreshnessPolicy::silence`] (or ever) is *stale*: its figures are shown, flagged.

use time::{Date, Duration, OffsetDateTime};

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

/// How many Vietnam days of per-day arrivals the stores keep per agency: 30 shown, with room
/// for the days a reader's and a writer's clocks may disagree on.
pub const ARRIVAL_DAYS: usize = 35;

/// An agency's events per Vietnam day of acceptance over the [`ARRIVAL_DAYS`] days up to its
/// last acceptance: what a store keeps, one small record per agency, moved on as days pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arrivals {
    /// The latest day counted; `None` before the first event.
    last_day: Option<Date>,
    /// `counts[k]`: events accepted on `last_day - k` days.
    counts: [u32; ARRIVAL_DAYS],
}

impl Default for Arrivals {
    fn default() -> Self {
        Self {
            last_day: None,
            counts: [0; ARRIVAL_DAYS],
        }
    }
}

impl Arrivals {
    /// Counts `n` events accepted on `day`. A later day moves the window on (the days that
    /// leave it are forgotten); a day before the window is not counted.
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

    /// Events accepted on `day`: 0 for a day outside the window kept.
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

    /// The arrivals [`Arrivals::parts`] gave.
    pub fn from_parts(last_day: Option<Date>, counts: [u32; ARRIVAL_DAYS]) -> Self {
        Self { last_day, counts }
    }
}

/// What a store answers of an agency's reporting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// The latest events counted for it.
    pub seen: Seen,
    /// How many events were counted for it on each of the Vietnam days asked for (days of
    /// acceptance), in the order asked; 0 for a day more than [`ARRIVAL_DAYS`] days before
    /// its last acceptance.
    pub accepted_per_day: Vec<u64>,
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
    fn arrivals_keep_a_window_of_days_that_moves_with_the_latest() {
        use time::macros::date;
        let mut arrivals = Arrivals::default();
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
        assert_eq!(Arrivals::from_parts(last, *counts), arrivals);
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
