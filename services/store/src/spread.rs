//! Where a 64-bit digest lives among the buckets of a structure that grows: linear hashing.
//!
//! The event ids and dossier states of a tree are kept as strings of fixed-width records
//! (`bucket.rs`), each read whole: a bucket must stay small (a few hundred bytes cross the
//! network per bucket a batch reads or writes whole) but not so small that the cost of a
//! key (about 70 bytes in Redis) outweighs its records. A tree's entries are spread over
//! buckets so that each holds about [`ENTRIES_PER_BUCKET`] on average: the number of
//! buckets grows one at a time, each new one taking half of one old bucket's entries (the
//! one the split pointer names), so a growing tree never rewrites more than a bucket at once
//! and never needs its size known in advance.
//!
//! With `level` L and split pointer S there are 2^L + S buckets; a digest lives in bucket
//! `digest mod 2^L`, unless that is below S (that bucket was split at this level), then in
//! `digest mod 2^(L+1)`.

/// The average number of entries per bucket the spread keeps to. A bucket not yet split at
/// the current level holds up to twice the average (its half-level siblings were split), and
/// a bucket's count varies by about its square root (the test below). Measured in young
/// trees and in large ones (PERFORMANCE.md, section 2, "Young trees and large ones" and
/// "48 records a bucket"): 16 cost Redis more in young trees (more keys per batch) and 4 MiB
/// more per million events; 64 cost Redis 6% and aggregate 31% more in large trees, where
/// every event moves a whole bucket. 32 until 2026-12-07: since buckets are written as their
/// changes (`bucket.rs`), 48 costs large trees nothing more and every tree 1.3 MiB less per
/// million events, as a key's own bytes spread over more records. (A tree of before keeps
/// its buckets and splits later, when they hold 48 on average.)
pub const ENTRIES_PER_BUCKET: u64 = 48;

/// The state of one growing structure: how its digests spread over buckets, how many
/// entries it holds, and the next bucket to sweep for entries past their time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spread {
    /// Doublings so far.
    pub level: u32,
    /// Buckets of this level already split.
    pub split: u64,
    /// Entries held (as far as the writers counted them).
    pub entries: u64,
    /// The bucket the next sweep looks at, modulo the number of buckets.
    pub sweep: u64,
}

/// One bucket split in two: the entries of `from` whose next digest bit is set move to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// The bucket split.
    pub from: u64,
    /// The bucket created.
    pub to: u64,
    /// The digest bit that decides: set, the entry moves.
    pub bit: u32,
}

impl Spread {
    /// How many buckets there are.
    pub fn buckets(&self) -> u64 {
        (1u64 << self.level) + self.split
    }

    /// The bucket `digest` lives in.
    pub fn bucket(&self, digest: u64) -> u64 {
        let low = digest & ((1u64 << self.level) - 1);
        if low < self.split {
            digest & ((1u64 << (self.level + 1)) - 1)
        } else {
            low
        }
    }

    /// The splits that bring the average back to [`ENTRIES_PER_BUCKET`] once the structure
    /// holds `entries`, in the order they are made, and the spread after them. Only buckets
    /// that exist before the first split are split (at most doubling at once): a bucket made
    /// now and due to split too splits at a later write.
    pub fn grow_to(&self, entries: u64) -> (Vec<Split>, Spread) {
        let before = self.buckets();
        let mut spread = Spread { entries, ..*self };
        let mut splits = Vec::new();
        while entries > ENTRIES_PER_BUCKET * spread.buckets() && spread.split_source() < before {
            let split = Split {
                from: spread.split,
                to: spread.split + (1u64 << spread.level),
                bit: spread.level,
            };
            splits.push(split);
            spread.split += 1;
            if spread.split == 1u64 << spread.level {
                spread.level += 1;
                spread.split = 0;
            }
        }
        (splits, spread)
    }

    /// The bucket the next split would split.
    fn split_source(&self) -> u64 {
        self.split
    }

    /// The spread as stored: `level split entries sweep`.
    pub fn encode(&self) -> String {
        format!(
            "{} {} {} {}",
            self.level, self.split, self.entries, self.sweep
        )
    }

    /// The spread [`Spread::encode`] wrote; the empty spread for nothing (a new tree).
    pub fn decode(stored: Option<&str>) -> Result<Spread, String> {
        let Some(stored) = stored else {
            return Ok(Spread::default());
        };
        let parts: Vec<u64> = stored
            .split(' ')
            .map(|p| p.parse::<u64>().map_err(|e| format!("{stored:?}: {e}")))
            .collect::<Result<_, _>>()?;
        match parts[..] {
            [level, split, entries, sweep] if level < 63 && split < (1u64 << level) => Ok(Spread {
                level: u32::try_from(level).map_err(|e| e.to_string())?,
                split,
                entries,
                sweep,
            }),
            _ => Err(format!("{stored:?} is not a spread")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// Grows a spread entry by entry as writers would, batch after batch, moving entries on
    /// every split, and checks each is where `bucket` says.
    fn grown(digests: &[u64], batch: usize) -> (Spread, HashMap<u64, Vec<u64>>) {
        let mut spread = Spread::default();
        let mut buckets: HashMap<u64, Vec<u64>> = HashMap::new();
        for chunk in digests.chunks(batch) {
            let (splits, next) = spread.grow_to(spread.entries + chunk.len() as u64);
            for split in splits {
                let from = buckets.remove(&split.from).unwrap_or_default();
                let (moved, stay): (Vec<u64>, Vec<u64>) =
                    from.into_iter().partition(|d| d >> split.bit & 1 == 1);
                buckets.insert(split.from, stay);
                buckets.entry(split.to).or_default().extend(moved);
            }
            spread = next;
            for digest in chunk {
                buckets
                    .entry(spread.bucket(*digest))
                    .or_default()
                    .push(*digest);
            }
        }
        (spread, buckets)
    }

    proptest! {
        #[test]
        fn every_entry_is_in_the_bucket_its_digest_names(
            digests in prop::collection::vec(any::<u64>(), 0..5_000),
            batch in 1usize..2_000,
        ) {
            let (spread, buckets) = grown(&digests, batch);
            prop_assert_eq!(spread.entries, digests.len() as u64);
            for (bucket, entries) in &buckets {
                prop_assert!(*bucket < spread.buckets());
                for digest in entries {
                    prop_assert_eq!(spread.bucket(*digest), *bucket);
                }
            }
        }
    }

    #[test]
    fn buckets_stay_near_their_target_size() {
        // A million random ids, a thousand at a time.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let digests: Vec<u64> = (0..1_000_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            })
            .collect();
        let (spread, buckets) = grown(&digests, 1_000);
        let fullest = buckets.values().map(Vec::len).max().unwrap_or(0);
        let average = digests.len() as f64 / spread.buckets() as f64;
        assert!(average <= ENTRIES_PER_BUCKET as f64, "{average}");
        assert!(average > ENTRIES_PER_BUCKET as f64 / 2.0, "{average}");
        assert!(
            fullest < 4 * ENTRIES_PER_BUCKET as usize,
            "the fullest bucket holds {fullest}: a write of it would cost 4 average ones"
        );
    }

    #[test]
    fn a_spread_is_stored_as_four_numbers() {
        let spread = Spread {
            level: 5,
            split: 3,
            entries: 2_100,
            sweep: 17,
        };
        assert_eq!(Spread::decode(Some(&spread.encode())), Ok(spread));
        assert_eq!(Spread::decode(None), Ok(Spread::default()));
        assert!(
            Spread::decode(Some("5 40 1 1")).is_err(),
            "split past the level"
        );
        assert!(Spread::decode(Some("x")).is_err());
    }
}
