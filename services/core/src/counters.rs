//! The raw counts kept per agency and bucket, and what one event adds to them.

use crate::ProcedureId;

/// One summable counter. Its [`Counter::key`] is the field name in storage: short, because
/// it is stored once per agency and bucket, and stable, because stored data outlives code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    /// Dossiers received, on any channel.
    Received,
    /// Dossiers received online.
    ReceivedOnline,
    /// Dossiers received in person.
    ReceivedInPerson,
    /// Dossiers received by post.
    ReceivedPostal,
    /// Dossiers digitized when received.
    Digitized,
    /// Dossiers received for procedures provided full-process online.
    ReceivedFullOnlineProcedure,
    /// Dossiers received online for procedures provided full-process online.
    ReceivedOnlineFullOnlineProcedure,
    /// Dossiers resolved.
    Resolved,
    /// Dossiers resolved by their due time.
    ResolvedOnTime,
    /// Results issued electronically.
    ResultElectronic,
    /// Fees paid.
    FeePaid,
    /// Fees paid online.
    FeePaidOnline,
    /// Feedback given.
    Feedback,
    /// Satisfied feedback.
    FeedbackSatisfied,
    /// Dossiers opened with a due time, counted in the buckets of their due day, not of the
    /// event's day (see [`crate::backlog`]).
    DueOpened,
    /// Dossiers open with a due time that ended (resolved, withdrawn or returned), counted in
    /// the buckets of the later of the day they ended and the due day (see
    /// [`crate::backlog`]).
    DueClosed,
    /// Dossiers withdrawn by their owner (`rút hồ sơ`): ended without a resolution.
    Withdrawn,
    /// Dossiers returned by the agency as ineligible (`trả lại`): ended without a resolution.
    Returned,
    /// Corrections and retractions that changed the day's counters: one in the buckets of the
    /// day of what they took back, and one in those of their own day when that is another.
    /// Not a figure of its own: it tells a revision made by corrections from late data.
    Corrected,
}

impl Counter {
    /// Every counter, in storage order: a counter added later goes at the end, so that
    /// records written before it read as that counter being zero.
    pub const ALL: [Counter; 19] = [
        Counter::Received,
        Counter::ReceivedOnline,
        Counter::ReceivedInPerson,
        Counter::ReceivedPostal,
        Counter::Digitized,
        Counter::ReceivedFullOnlineProcedure,
        Counter::ReceivedOnlineFullOnlineProcedure,
        Counter::Resolved,
        Counter::ResolvedOnTime,
        Counter::ResultElectronic,
        Counter::FeePaid,
        Counter::FeePaidOnline,
        Counter::Feedback,
        Counter::FeedbackSatisfied,
        Counter::DueOpened,
        Counter::DueClosed,
        Counter::Withdrawn,
        Counter::Returned,
        Counter::Corrected,
    ];

    /// The field name in storage.
    pub const fn key(self) -> &'static str {
        match self {
            Counter::Received => "rcv",
            Counter::ReceivedOnline => "rcv_on",
            Counter::ReceivedInPerson => "rcv_ip",
            Counter::ReceivedPostal => "rcv_po",
            Counter::Digitized => "dig",
            Counter::ReceivedFullOnlineProcedure => "rcv_fp",
            Counter::ReceivedOnlineFullOnlineProcedure => "rcv_fp_on",
            Counter::Resolved => "res",
            Counter::ResolvedOnTime => "res_ot",
            Counter::ResultElectronic => "res_el",
            Counter::FeePaid => "fee",
            Counter::FeePaidOnline => "fee_on",
            Counter::Feedback => "fb",
            Counter::FeedbackSatisfied => "fb_ok",
            Counter::DueOpened => "due",
            Counter::DueClosed => "due_cl",
            Counter::Withdrawn => "wd",
            Counter::Returned => "ret",
            Counter::Corrected => "cor",
        }
    }

    /// Whether the counter is bucketed by a dossier's due day rather than by the event's day:
    /// a period reads it as a sum over every day up to the period's end
    /// ([`crate::backlog::prefix_plan`]), never over the period's own buckets.
    pub const fn by_due_day(self) -> bool {
        matches!(self, Counter::DueOpened | Counter::DueClosed)
    }

    /// The counter stored under `key`, if any.
    pub fn from_key(key: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.key() == key)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// The counts of one agency over one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    values: [u64; Counter::ALL.len()],
    /// Distinct procedures that received at least one online dossier in the period. Not
    /// summable across buckets: the store computes it as the size of a union.
    pub procedures_with_online_dossiers: u64,
    /// Dossiers received with a due time and still open past it at the end of the period's
    /// last day. Not summable across the period's buckets: the reader derives it from the
    /// due-day counters summed over every day up to the period's end ([`crate::backlog`]).
    pub open_past_due_at_end: u64,
}

impl Counters {
    /// One counter's value.
    pub fn get(&self, counter: Counter) -> u64 {
        self.values[counter.index()]
    }

    /// Adds `amount` to one counter.
    pub fn increment(&mut self, counter: Counter, amount: u64) {
        let slot = &mut self.values[counter.index()];
        *slot = slot.saturating_add(amount);
    }

    /// Adds `amount` to one counter, or takes it away when negative; `None` (and nothing
    /// changed) when that would leave it below zero.
    pub fn add_signed(&mut self, counter: Counter, amount: i64) -> Option<()> {
        let slot = &mut self.values[counter.index()];
        *slot = slot.checked_add_signed(amount)?;
        Some(())
    }

    /// Whether every counter is zero (the two derived counts aside).
    pub fn is_zero(&self) -> bool {
        self.values.iter().all(|v| *v == 0)
    }

    /// Takes `other` away, counter by counter (never below zero): a read plan's subtracted
    /// buckets lie inside its added ones.
    pub fn subtract(&mut self, other: &Counters) {
        for counter in Counter::ALL {
            let slot = &mut self.values[counter.index()];
            *slot = slot.saturating_sub(other.get(counter));
        }
    }

    /// Builds counters from (counter, value) pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Counter, u64)>) -> Self {
        let mut counters = Counters::default();
        for (counter, value) in pairs {
            counters.increment(counter, value);
        }
        counters
    }

    /// Every counter with its value, in storage order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.into_iter().map(|c| (c, self.get(c)))
    }
}

/// What one event adds: one to each listed counter, and perhaps a procedure to the set of
/// procedures with online dossiers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterDelta {
    /// The counters that grow by one.
    pub increments: Vec<Counter>,
    /// The procedure to add to the period's distinct set of procedures with online dossiers.
    pub online_procedure: Option<ProcedureId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_keys_are_unique_and_round_trip() {
        let mut keys: Vec<&str> = Counter::ALL.iter().map(|c| c.key()).collect();
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(Counter::from_key(c.key()), Some(*c));
        }
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), Counter::ALL.len());
        assert_eq!(Counter::from_key("nope"), None);
    }

    #[test]
    fn counters_increment_and_subtract_without_going_below_zero() {
        let mut a = Counters::from_pairs([(Counter::Received, 3), (Counter::ReceivedOnline, 2)]);
        a.increment(Counter::Received, 4);
        a.subtract(&Counters::from_pairs([
            (Counter::ReceivedOnline, 5),
            (Counter::Received, 1),
        ]));
        assert_eq!(
            (
                a.get(Counter::Received),
                a.get(Counter::ReceivedOnline),
                a.get(Counter::Feedback)
            ),
            (6, 0, 0)
        );
    }
}
