//! One agency's counters in one bucket as a record of bytes: the value of its key
//! `P:{root}:n:<agency>:<bucket>`, and of its field in its parent's day roll-up
//! `P:{root}:k:<parent>:d<yyyymmdd>`.
//!
//! The record is every counter in storage order ([`Counter::ALL`]) as an unsigned LEB128
//! varint, the counters after the last one that is not zero left out: an agency's day that
//! received 3 dossiers online and resolved 2 of them on time is 9 bytes, a province's year
//! of millions of dossiers about 50, where the hash of counter fields it replaced took about
//! 130 bytes of listpack for a day and Redis one command per field to add to it.
//!
//! The tree writer reads the records a batch adds to and writes them back with the batch
//! added, inside the version-checked write of the batch (`tree_write`): Redis stores bytes,
//! one `MGET` and one `MSET` for a batch's thousand counter records instead of a `HINCRBY`
//! per counter. A counter added to [`Counter::ALL`] later goes at its end, so that records
//! written before it read as that counter being zero.

use govpulse_core::{Counter, Counters};
use integer_encoding::VarInt;

/// The longest record: every counter at its largest.
const MAX_LEN: usize = 10 * Counter::ALL.len();

/// The record of `counters`' summable counters (the distinct and backlog figures a reader
/// derives are not stored). Empty when every counter is zero.
pub(crate) fn encode(counters: &Counters) -> Vec<u8> {
    let values: Vec<u64> = counters.iter().map(|(_, n)| n).collect();
    let kept = values
        .iter()
        .rposition(|n| *n > 0)
        .map_or(0, |last| last + 1);
    let mut record = vec![0u8; MAX_LEN];
    let mut len = 0;
    for value in &values[..kept] {
        len += value.encode_var(&mut record[len..]);
    }
    record.truncate(len);
    record
}

/// The counters a record holds; `None` for bytes that no version of [`encode`] writes (a
/// value cut short or too long, more values than counters), which a writer must not add to.
pub(crate) fn decode(record: &[u8]) -> Option<Counters> {
    let mut counters = Counters::default();
    let mut rest = record;
    let mut counter = Counter::ALL.into_iter();
    while !rest.is_empty() {
        let (value, len) = u64::decode_var(rest)?;
        counters.increment(counter.next()?, value);
        rest = &rest[len..];
    }
    Some(counters)
}

/// `stored` (a record, or nothing) with `added` added; `None` when `stored` is not a record.
pub(crate) fn add(
    stored: Option<&[u8]>,
    added: impl IntoIterator<Item = (Counter, u64)>,
) -> Option<Vec<u8>> {
    let mut counters = stored.map_or(Some(Counters::default()), decode)?;
    for (counter, n) in added {
        counters.increment(counter, n);
    }
    Some(encode(&counters))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_record_holds_the_counters_up_to_the_last_that_is_not_zero() {
        assert_eq!(encode(&Counters::default()), Vec::<u8>::new());
        let day = Counters::from_pairs([
            (Counter::Received, 3),
            (Counter::ReceivedOnline, 3),
            (Counter::Resolved, 2),
            (Counter::ResolvedOnTime, 2),
        ]);
        assert_eq!(encode(&day), [3, 3, 0, 0, 0, 0, 0, 2, 2]);
        let big = Counters::from_pairs([(Counter::Received, 300)]);
        assert_eq!(encode(&big), [0xac, 0x02]);
        assert_eq!(decode(&[0xac, 0x02]), Some(big));
        let full = Counters::from_pairs(Counter::ALL.map(|c| (c, u64::MAX)));
        assert_eq!(encode(&full).len(), MAX_LEN);
        assert_eq!(decode(&encode(&full)), Some(full));
    }

    #[test]
    fn bytes_no_writer_wrote_are_refused() {
        // A value cut short.
        assert_eq!(decode(&[3, 0x80]), None);
        // A value longer than 64 bits.
        assert_eq!(decode(&[0xff; 11]), None);
        // One value more than there are counters.
        assert_eq!(decode(&[1; Counter::ALL.len() + 1]), None);
        assert_eq!(add(Some(&[3, 0x80]), [(Counter::Received, 1)]), None);
    }

    #[test]
    fn adding_to_nothing_is_adding_to_zero() {
        assert_eq!(
            add(None, [(Counter::Digitized, 2)]),
            Some(vec![0, 0, 0, 0, 2])
        );
        assert_eq!(
            add(
                Some(&[1]),
                [(Counter::Received, 2), (Counter::DueClosed, 1)]
            ),
            Some(encode(&Counters::from_pairs([
                (Counter::Received, 3),
                (Counter::DueClosed, 1)
            ])))
        );
    }

    proptest! {
        #[test]
        fn records_read_back_as_written_and_add_as_numbers(
            a in prop::collection::vec(0u64..u64::MAX / 2, Counter::ALL.len()),
            b in prop::collection::vec(0u64..u64::MAX / 2, Counter::ALL.len()),
        ) {
            let a = Counters::from_pairs(Counter::ALL.into_iter().zip(a));
            let b = Counters::from_pairs(Counter::ALL.into_iter().zip(b));
            prop_assert_eq!(decode(&encode(&a)), Some(a));
            let sum = add(Some(&encode(&a)), b.iter()).and_then(|r| decode(&r));
            let mut expected = a;
            for (counter, n) in b.iter() {
                expected.increment(counter, n);
            }
            prop_assert_eq!(sum, Some(expected));
        }
    }
}
