//! The per-agency rate of events: one token bucket per credential's agency (`governor`), so
//! an agency that floods exhausts only its own bucket and the others keep their rate; and
//! the number of StreamEvents calls each agency may hold open at once.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

/// Events per second and burst allowed to each agency.
#[derive(Debug)]
pub struct AgencyLimiter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
    max_streams: usize,
    open_streams: Mutex<HashMap<String, usize>>,
}

/// One open StreamEvents call of an agency; closing it (dropping this) frees its place.
#[derive(Debug)]
pub struct StreamSlot {
    limits: Arc<AgencyLimiter>,
    agency: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open_streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.agency) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.agency);
            }
        }
    }
}

impl AgencyLimiter {
    /// `per_second` events a second on average, `burst` at once; `per_second` 0 turns the
    /// limit off. `burst` must hold the largest batch. At most `max_streams` open
    /// StreamEvents calls per agency (0: no limit).
    pub fn new(per_second: u32, burst: u32, max_streams: usize) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
            max_streams,
            open_streams: Mutex::new(HashMap::new()),
        }
    }

    /// A place for one more open stream of `agency`, or the limit when it has them all.
    pub fn open_stream(self: &Arc<Self>, agency: &str) -> Result<StreamSlot, usize> {
        let mut open = self
            .open_streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(agency.to_owned()).or_insert(0);
        if self.max_streams > 0 && *count >= self.max_streams {
            return Err(self.max_streams);
        }
        *count += 1;
        Ok(StreamSlot {
            limits: self.clone(),
            agency: agency.to_owned(),
        })
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
        let limiter = AgencyLimiter::new(10, 100, 0);
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
        let limiter = AgencyLimiter::new(0, 0, 0);
        for _ in 0..100 {
            assert_eq!(limiter.take("ha-noi", 10_000), Ok(()));
        }
    }

    #[test]
    fn an_agency_holds_at_most_its_streams_and_a_closed_one_frees_its_place() {
        let limiter = Arc::new(AgencyLimiter::new(0, 0, 2));
        let first = limiter.open_stream("ha-noi").expect("first");
        let _second = limiter.open_stream("ha-noi").expect("second");
        assert_eq!(limiter.open_stream("ha-noi").map(|_| ()), Err(2));
        assert!(
            limiter.open_stream("hai-phong").is_ok(),
            "others are not held back"
        );
        drop(first);
        assert!(limiter.open_stream("ha-noi").is_ok());
    }
}
