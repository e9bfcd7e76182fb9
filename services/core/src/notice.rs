//! What one counted batch (or one set of stored assessed scores) changed: the one type a
//! change travels as inside govpulse, from aggregate through the store (to the other
//! aggregate replicas) and WatchChanges (to ranking) to the live rankings that recompute.

use std::sync::Arc;

use time::Date;

use crate::{AgencyId, Period};

/// Something was counted. Cheap to clone: a broadcast hands one to every live ranking.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeNotice {
    /// Who published it (an aggregate replica's id), so that a replica can skip its own;
    /// empty when it does not matter.
    pub origin: Arc<str>,
    /// The agencies whose figures changed, ancestors included; empty means anything may
    /// have changed.
    pub agencies: Arc<[AgencyId]>,
    /// The Vietnam days whose counters changed; empty means any day (assessed scores, which
    /// are per period, or a notice that does not say).
    pub days: Arc<[Date]>,
    /// The W3C traceparent of the batch that caused it, so the recomputations it causes join
    /// that batch's trace; empty when the batch was not traced.
    pub traceparent: Arc<str>,
}

impl ChangeNotice {
    /// "Anything may have changed": after a gap in a subscription, or a notice that could
    /// not be read.
    pub fn anything() -> Self {
        Self::default()
    }

    /// Whether it may have changed anything (it names no agency).
    pub fn is_anything(&self) -> bool {
        self.agencies.is_empty()
    }

    /// Whether it can change figures over `period` or the period before it (which a
    /// ranking's movement compares with): one of its days falls in either, or it names no
    /// day.
    pub fn affects(&self, period: &Period) -> bool {
        if self.days.is_empty() {
            return true;
        }
        let previous = period.previous();
        self.days
            .iter()
            .any(|day| period.contains(*day) || previous.contains(*day))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn a_notice_affects_its_days_periods_and_the_periods_after_them() {
        let notice = ChangeNotice {
            days: Arc::from([date!(2026 - 08 - 15)]),
            agencies: Arc::from([AgencyId::parse("hoa-binh").expect("id")]),
            ..ChangeNotice::default()
        };
        let period = |raw| Period::parse(raw, date!(2026 - 12 - 01)).expect("period");
        assert!(notice.affects(&period("2026-08")));
        assert!(
            notice.affects(&period("2026-09")),
            "August is September's previous"
        );
        assert!(!notice.affects(&period("2026-10")));
        assert!(
            !notice.affects(&period("2026-07")),
            "a later day changes no earlier figure"
        );
        let two = ChangeNotice {
            days: Arc::from([date!(2026 - 01 - 01), date!(2026 - 08 - 01)]),
            ..notice.clone()
        };
        assert!(two.affects(&period("2026-08")));
        assert!(ChangeNotice::anything().affects(&period("2020")));
        assert!(ChangeNotice::anything().is_anything() && !notice.is_anything());
    }
}
