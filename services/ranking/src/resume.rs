//! The pure part of live rankings: revisions that name one state of one query, the bounded
//! history of recent states a client can resume from, the resume decision, and whether a
//! change notice can affect a query's period. No tokio, no gRPC: unit-tested here.

use std::{collections::VecDeque, sync::Arc};

/// Low bits of a revision that carry the state's digest.
pub const DIGEST_BITS: u32 = 20;

/// States kept per live ranking for resuming. At the default 100 ms debounce a ranking that
/// changes all the time publishes at most 10 states a second, so 256 states keep at least
/// the last 25 s: longer than a client's reconnect backoff (up to 5 s) after a dropped
/// connection. A restart of the replica loses them anyway (they live in its memory).
pub const HISTORY_STATES: usize = 256;

/// Rows kept per live ranking for resuming, all states together, so that the history of a
/// very large ranking (10,000 units) stays a few megabytes: 256 states of the 63 provinces
/// fit (16,128 rows), while a 10,000-row ranking keeps its last 5 states.
pub const HISTORY_ROWS: usize = 50_000;

/// The revision of a new state: the publication time in milliseconds since the Unix epoch,
/// at least one more than the previous state's, in the high bits; the low [`DIGEST_BITS`]
/// of the state's digest in the low bits.
///
/// Revisions grow with every state of a live ranking. Two different states (of one query
/// or of two, on one replica or two, before or after a restart) share a revision only if
/// they were published in the same millisecond and their digests agree in 20 bits; equal
/// states published in the same millisecond by two replicas get the same revision, which
/// is harmless since they are the same state.
pub fn next_revision(previous: u64, now_ms: u64, digest: u64) -> u64 {
    let ms = now_ms.max((previous >> DIGEST_BITS) + 1);
    (ms << DIGEST_BITS) | (digest & ((1 << DIGEST_BITS) - 1))
}

/// When a revision was published, in milliseconds since 1970 (at least: a revision never
/// goes back, so one published in a millisecond already used takes the next): what people
/// are shown instead of the revision's number ("updated 10:59:49").
pub fn revision_ms(revision: u64) -> u64 {
    revision >> DIGEST_BITS
}

/// 64-bit FNV-1a: a digest that every replica and every build computes alike (the standard
/// library's hasher promises neither).
#[derive(Debug, Clone, Copy)]
pub struct Digest(u64);

impl Default for Digest {
    fn default() -> Self {
        Digest(0xcbf2_9ce4_8422_2325)
    }
}

impl Digest {
    /// Adds bytes.
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    /// Adds a string, delimited so that ("ab", "c") and ("a", "bc") differ.
    pub fn text(self, text: &str) -> Self {
        self.bytes(text.as_bytes()).bytes(&[0xff])
    }

    /// Adds a number.
    pub fn number(self, n: u64) -> Self {
        self.bytes(&n.to_le_bytes())
    }

    /// The digest.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// The recent states of one live ranking, oldest first, keyed by revision.
#[derive(Debug)]
pub struct History<T> {
    states: VecDeque<(u64, Arc<T>, usize)>,
    rows: usize,
    max_states: usize,
    max_rows: usize,
}

impl<T> History<T> {
    /// An empty history keeping at most `max_states` states and `max_rows` rows; the newest
    /// state is always kept, however large.
    pub fn new(max_states: usize, max_rows: usize) -> Self {
        Self {
            states: VecDeque::new(),
            rows: 0,
            max_states: max_states.max(1),
            max_rows,
        }
    }

    /// Records the newest state, `rows` long, forgetting the oldest ones beyond the bounds.
    pub fn push(&mut self, revision: u64, state: Arc<T>, rows: usize) {
        self.states.push_back((revision, state, rows));
        self.rows += rows;
        while self.states.len() > self.max_states
            || (self.rows > self.max_rows && self.states.len() > 1)
        {
            if let Some((_, _, rows)) = self.states.pop_front() {
                self.rows -= rows;
            }
        }
    }

    /// The state published under `revision`, if still kept.
    pub fn get(&self, revision: u64) -> Option<&Arc<T>> {
        // Revisions grow, so the kept ones are sorted.
        self.states
            .binary_search_by_key(&revision, |(r, _, _)| *r)
            .ok()
            .map(|i| &self.states[i].1)
    }

    /// The oldest revision kept.
    pub fn oldest(&self) -> Option<u64> {
        self.states.front().map(|(r, _, _)| *r)
    }

    /// How many states are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// How many rows the kept states hold together.
    #[cfg(test)]
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Why a stream cannot resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// Older than every state kept.
    TooOld,
    /// Never published by this live ranking.
    Unknown,
}

/// How a WatchRanking stream starts.
#[derive(Debug, PartialEq, Eq)]
pub enum Start<T> {
    /// No revision given: a snapshot.
    Snapshot,
    /// Resume: send the changes from this state to the current one.
    ResumeFrom(Arc<T>),
    /// Tell the client why, then send a snapshot.
    Reset(ResetReason),
}

/// Decides how a stream asking to resume from `requested` (0: not resuming) starts.
pub fn start<T>(history: &History<T>, requested: u64) -> Start<T> {
    if requested == 0 {
        return Start::Snapshot;
    }
    match history.get(requested) {
        Some(state) => Start::ResumeFrom(state.clone()),
        None if history.oldest().is_some_and(|oldest| requested < oldest) => {
            Start::Reset(ResetReason::TooOld)
        }
        None => Start::Reset(ResetReason::Unknown),
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn revisions_grow_even_when_the_clock_does_not() {
        let a = next_revision(0, 1_000, 7);
        let b = next_revision(a, 1_000, 7);
        let c = next_revision(b, 999, 3);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(revision_ms(a), 1_000);
        assert_eq!(revision_ms(b), 1_001);
        assert_eq!(revision_ms(c), 1_002);
    }

    #[test]
    fn a_revision_carries_the_low_bits_of_the_digest() {
        let digest = 0xdead_beef_u64;
        let revision = next_revision(0, 5_000, digest);
        assert_eq!(revision & ((1 << DIGEST_BITS) - 1), digest & 0xf_ffff);
        assert_eq!(next_revision(0, 5_000, digest), revision, "deterministic");
        assert_ne!(next_revision(0, 5_000, digest + 1), revision);
    }

    #[test]
    fn a_revision_follows_the_clock_when_it_is_ahead() {
        let a = next_revision(0, 1_000, 0);
        assert_eq!(next_revision(a, 5_000, 0) >> DIGEST_BITS, 5_000);
    }

    #[test]
    fn digests_tell_apart_differently_split_texts() {
        let ab_c = Digest::default().text("ab").text("c").finish();
        let a_bc = Digest::default().text("a").text("bc").finish();
        assert_ne!(ab_c, a_bc);
        assert_eq!(ab_c, Digest::default().text("ab").text("c").finish());
    }

    #[test]
    fn fnv_matches_its_published_test_vector() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c.
        assert_eq!(
            Digest::default().bytes(b"a").finish(),
            0xaf63_dc4c_8601_ec8c
        );
    }

    fn filled(revisions: &[u64], rows: usize, max_states: usize, max_rows: usize) -> History<u64> {
        let mut history = History::new(max_states, max_rows);
        for r in revisions {
            history.push(*r, Arc::new(*r), rows);
        }
        history
    }

    #[test]
    fn history_forgets_the_oldest_state_beyond_its_count() {
        let history = filled(&[10, 20, 30, 40], 1, 3, 1_000);
        assert_eq!(history.len(), 3);
        assert_eq!(history.oldest(), Some(20));
        assert!(history.get(10).is_none());
        assert_eq!(history.get(30).map(|s| **s), Some(30));
    }

    #[test]
    fn history_forgets_the_oldest_states_beyond_its_rows() {
        let history = filled(&[10, 20, 30, 40], 100, 256, 250);
        assert_eq!(history.len(), 2);
        assert_eq!(history.rows(), 200);
        assert_eq!(history.oldest(), Some(30));
    }

    #[test]
    fn history_keeps_the_newest_state_however_large() {
        let history = filled(&[10, 20], 1_000, 256, 250);
        assert_eq!(history.len(), 1);
        assert_eq!(history.get(20).map(|s| **s), Some(20));
    }

    #[test]
    fn no_revision_starts_with_a_snapshot() {
        let history = filled(&[10, 20], 1, 8, 100);
        assert_eq!(start(&history, 0), Start::Snapshot);
    }

    #[test]
    fn a_kept_revision_resumes_from_its_own_state() {
        let history = filled(&[10, 20, 30], 1, 8, 100);
        assert_eq!(start(&history, 20), Start::ResumeFrom(Arc::new(20)));
        assert_eq!(
            start(&history, 30),
            Start::ResumeFrom(Arc::new(30)),
            "the current one"
        );
    }

    #[test]
    fn a_forgotten_revision_is_too_old() {
        let history = filled(&[10, 20, 30, 40], 1, 2, 100);
        assert_eq!(start(&history, 20), Start::Reset(ResetReason::TooOld));
        assert_eq!(start(&history, 5), Start::Reset(ResetReason::TooOld));
    }

    #[test]
    fn a_revision_never_published_here_is_unknown() {
        let history = filled(&[10, 20, 30], 1, 8, 100);
        assert_eq!(start(&history, 25), Start::Reset(ResetReason::Unknown));
        assert_eq!(
            start(&history, 31),
            Start::Reset(ResetReason::Unknown),
            "newer than the current: another replica or a restart"
        );
    }
}
