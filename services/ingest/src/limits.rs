//! The per-agency rate of events: one token bucket per credential's agency (`governor`), so
//! an agency that floods exhausts only its own bucket and the others keep their rate.

use std::{num::NonZeroU32, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

/// Events per second and burst allowed to each agency.
#[derive(Debug)]
pub struct AgencyLimiter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl AgencyLimiter {
    /// `per_second` events a second on average, `burst` at once; `per_second` 0 turns the
    /// limit off. `burst` must hold the largest batch.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// Takes `events` from `agency`'s bucket, or says how long to wait before the batch fits.
    pub fn take(&self, agency: &str, events: usize) -> Result<(), Duration> {
        let (Some(limiter), Some(n)) = (
            &self.limiter,
            NonZeroU32::new(u32::try_from(events).unwrap_or(u32::MAX)),
        ) else {
            return Ok(());
        };
        match limiter.check_key_n(&agency.to_owned(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(self.clock.now())),
            // Larger than the burst: it never fits; the batch limit keeps this from happening.
            Err(_) => Err(Duration::from_secs(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_agency_over_its_rate_does_not_use_up_another_agencys() {
        let limiter = AgencyLimiter::new(10, 100);
        assert_eq!(limiter.take("ha-noi", 100), Ok(()));
        let wait = limiter.take("ha-noi", 10).expect_err("over the rate");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(limiter.take("hai-phong", 100), Ok(()));
    }

    #[test]
    fn a_zero_rate_means_no_limit() {
        let limiter = AgencyLimiter::new(0, 0);
        for _ in 0..100 {
            assert_eq!(limiter.take("ha-noi", 10_000), Ok(()));
        }
    }
}
