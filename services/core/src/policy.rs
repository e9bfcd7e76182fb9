//! Which event times are accepted, and how long event ids are remembered.

use time::{Date, Duration, OffsetDateTime, Time};

use crate::period::VIETNAM;

/// The accepted window of event times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptancePolicy {
    /// How far back an event may be: older ones are refused (they would change periods long
    /// published, and their ids are no longer remembered).
    pub horizon: Duration,
    /// How far ahead of the receiver's clock an event may be (senders' clocks drift).
    pub future_skew: Duration,
}

impl Default for AcceptancePolicy {
    fn default() -> Self {
        Self {
            horizon: Duration::days(400),
            future_skew: Duration::minutes(5),
        }
    }
}

/// Why an event time is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("is {ahead} ahead of the server clock; at most {skew} is allowed")]
    InFuture { ahead: Duration, skew: Duration },
    #[error("is older than the accepted horizon of {} days", .horizon.whole_days())]
    BeyondHorizon { horizon: Duration },
}

impl AcceptancePolicy {
    /// Checks an event time against `now`.
    pub fn check(&self, occurred_at: OffsetDateTime, now: OffsetDateTime) -> Result<(), TimeError> {
        // In nanoseconds since the epoch: every event passes here (in ingest and again in
        // aggregate), and date arithmetic on `OffsetDateTime` cost several times more.
        let (at, now_ns) = (
            occurred_at.unix_timestamp_nanos(),
            now.unix_timestamp_nanos(),
        );
        if at > now_ns + self.future_skew.whole_nanoseconds() {
            return Err(TimeError::InFuture {
                ahead: occurred_at - now,
                skew: self.future_skew,
            });
        }
        if at < now_ns - self.horizon.whole_nanoseconds() {
            return Err(TimeError::BeyondHorizon {
                horizon: self.horizon,
            });
        }
        Ok(())
    }

    /// Until when the ids of events of `day` must be remembered: a day after the last
    /// instant at which an event of that day can still be accepted.
    pub fn remember_until(&self, day: Date) -> OffsetDateTime {
        let end_of_day = day
            .next_day()
            .unwrap_or(day)
            .with_time(Time::MIDNIGHT)
            .assume_offset(VIETNAM);
        end_of_day + self.horizon + self.future_skew + Duration::days(1)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn times_inside_the_window_are_accepted() {
        let policy = AcceptancePolicy::default();
        let now = datetime!(2026-08-15 12:00 UTC);
        // The bounds are exact, to the nanosecond, whatever offset the times carry.
        let nanosecond = Duration::nanoseconds(1);
        let local = now.to_offset(crate::period::VIETNAM);
        for (at, accepted) in [
            (now, true),
            (now + Duration::minutes(5), true),
            (now + Duration::minutes(5) + nanosecond, false),
            (local + Duration::minutes(5), true),
            (local + Duration::minutes(5) + nanosecond, false),
            (now - Duration::days(400), true),
            (now - Duration::days(400) - nanosecond, false),
        ] {
            assert_eq!(policy.check(at, now).is_ok(), accepted, "{at}");
        }
        assert_eq!(
            policy
                .check(now + Duration::minutes(6), now)
                .map_err(|e| e.to_string()),
            Err("is 6m ahead of the server clock; at most 5m is allowed".to_owned())
        );
        assert_eq!(
            policy
                .check(now - Duration::days(401), now)
                .map_err(|e| e.to_string()),
            Err("is older than the accepted horizon of 400 days".to_owned())
        );
    }

    #[test]
    fn ids_are_remembered_past_the_last_acceptable_moment() {
        let policy = AcceptancePolicy::default();
        let day = date!(2026 - 08 - 15);
        let last_accepted_at = datetime!(2026-08-15 23:59:59 +7) + policy.horizon;
        assert!(policy.remember_until(day) > last_accepted_at + Duration::hours(23));
    }
}
