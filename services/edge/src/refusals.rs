//! Refusals of calls and connections, counted and logged without flooding: every refusal
//! counts in `govpulse_refusals_total{reason}` (reasons from a closed set of names in the
//! code), and each reason writes at most one log line a second, saying how many were refused
//! since its last line. 20,000 refused calls write a few lines, not 20,000.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use tracing::warn;

use govpulse_runtime::prometheus::REFUSALS;

/// How often one reason may write a log line.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// Per reason: when it last wrote a line, and how many refusals it did not write since.
fn last_lines() -> &'static Mutex<HashMap<&'static str, (Instant, u64)>> {
    static LINES: OnceLock<Mutex<HashMap<&'static str, (Instant, u64)>>> = OnceLock::new();
    LINES.get_or_init(Mutex::default)
}

/// Counts a refusal for `reason` and returns how many refusals of it went unlogged since
/// its last line, when this one is to be logged (`None`: it is not).
pub fn count(reason: &'static str) -> Option<u64> {
    metrics::counter!(REFUSALS, "reason" => reason).increment(1);
    let now = Instant::now();
    let mut lines = last_lines()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match lines.get_mut(reason) {
        Some((last, skipped)) if now.duration_since(*last) < LOG_EVERY => {
            *skipped += 1;
            None
        }
        Some((last, skipped)) => {
            let unlogged = *skipped;
            *last = now;
            *skipped = 0;
            Some(unlogged)
        }
        None => {
            lines.insert(reason, (now, 0));
            Some(0)
        }
    }
}

/// A refusal that names only who was refused (a connection over a cap, a call over the
/// server's in-flight cap): counted, and logged as [`count`] allows.
pub fn refused(reason: &'static str, who: &str) {
    if let Some(unlogged) = count(reason) {
        warn!(target: "govpulse::audit", audit = reason, peer = who, unlogged, "refused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_refusals_writes_one_line_a_second_per_reason() {
        let logged = (0..10_000)
            .filter(|_| count("test_flood").is_some())
            .count();
        // Ten thousand in well under a second: the first is logged, the others counted.
        assert_eq!(logged, 1);
        let next = last_lines()
            .lock()
            .map(|lines| lines.get("test_flood").map(|(_, skipped)| *skipped))
            .ok()
            .flatten();
        assert_eq!(next, Some(9_999));
    }
}
