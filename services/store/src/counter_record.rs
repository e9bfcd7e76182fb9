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

use govpulse_core::{Counter, Counters, counting::CounterSums};
use integer_encoding::VarInt;

/// How many counters a record holds at most.
const COUNTERS: usize = Counter::ALL.len();

/// The longest record: every counter at its largest.
const MAX_LEN: usize = 10 * COUNTERS;

/// The record of `counters`' summable counters (the distinct and backlog figures a reader
/// derives are not stored). Empty when every counter is zero. (The writer adds to records
/// with [`add`]; the tests build them whole.)
#[cfg(test)]
fn encode(counters: &Counters) -> Vec<u8> {
    encode_values(&Counter::ALL.map(|counter| counters.get(counter))).to_vec()
}

/// A record built on the stack: a batch of the unit mix adds to tens of thousands of
/// records, each decoded, added to and encoded again, most of them only to be copied into a
/// record list or a command.
struct Record {
    bytes: [u8; MAX_LEN],
    len: usize,
}

impl Record {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn to_vec(&self) -> Vec<u8> {
        self.as_slice().to_vec()
    }
}

/// The record of counter values in storage order, up to the last value that is not zero.
fn encode_values(values: &[u64; COUNTERS]) -> Record {
    let kept = values
        .iter()
        .rposition(|value| *value > 0)
        .map_or(0, |last| last + 1);
    let mut record = Record {
        bytes: [0u8; MAX_LEN],
        len: 0,
    };
    for value in &values[..kept] {
        record.len += write_varint(*value, &mut record.bytes[record.len..]);
    }
    record
}

/// `value` as an unsigned LEB128 varint at the start of `out`; its length.
fn write_varint(value: u64, out: &mut [u8]) -> usize {
    match (u8::try_from(value), out.first_mut()) {
        (Ok(byte @ 0..0x80), Some(first)) => {
            *first = byte;
            1
        }
        _ => value.encode_var(out),
    }
}

/// The counters a record holds; `None` for bytes that no version of [`encode_values`] writes (a
/// value cut short or too long, more values than counters), which a writer must not add to.
pub(crate) fn decode(record: &[u8]) -> Option<Counters> {
    let values = decode_values(record)?;
    Some(Counters::from_pairs(Counter::ALL.into_iter().zip(values)))
}

/// The counter values a record holds, in storage order; `None` as for [`decode`].
fn decode_values(record: &[u8]) -> Option<[u64; COUNTERS]> {
    let mut values = [0u64; COUNTERS];
    let mut slots = values.iter_mut();
    let mut rest = record;
    while let Some((&byte, tail)) = rest.split_first() {
        // Most counts of a record below a month are under 128: one byte.
        let (value, tail) = if byte < 0x80 {
            (u64::from(byte), tail)
        } else {
            let (value, len) = u64::decode_var(rest)?;
            (value, &rest[len..])
        };
        *slots.next()? = value;
        rest = tail;
    }
    Some(values)
}

/// `stored` (a record, or nothing) with `added` added (a negative count taken away); `None`
/// when `stored` is not a record, or holds less than is taken away. All zeros encode as no
/// bytes.
pub(crate) fn add(
    stored: Option<&[u8]>,
    added: impl IntoIterator<Item = (Counter, i64)>,
) -> Option<Vec<u8>> {
    add_on_stack(stored, added).map(|record| record.to_vec())
}

/// [`add`], the record left on the stack.
fn add_on_stack(
    stored: Option<&[u8]>,
    added: impl IntoIterator<Item = (Counter, i64)>,
) -> Option<Record> {
    let mut values = match stored {
        Some(record) => decode_values(record)?,
        None => [0; COUNTERS],
    };
    for (counter, n) in added {
        let slot = &mut values[counter as usize];
        *slot = slot.checked_add_signed(n)?;
    }
    Some(encode_values(&values))
}

/// One entry of a record list: its name, its record, and the entry's bytes as stored.
#[derive(Clone, Copy)]
struct Entry<'l> {
    name: &'l str,
    record: &'l [u8],
    bytes: &'l [u8],
}

/// The next entry of `rest`, moving past it: `Some(None)` at the end, `None` for bytes that
/// are not an entry.
fn next_entry<'l>(rest: &mut &'l [u8]) -> Option<Option<Entry<'l>>> {
    /// The next length-prefixed bytes of `rest`, moving past them.
    fn take<'l>(rest: &mut &'l [u8]) -> Option<&'l [u8]> {
        let (len, used) = usize::decode_var(rest)?;
        let bytes = rest.get(used..used.checked_add(len)?)?;
        *rest = &rest[used + len..];
        Some(bytes)
    }
    if rest.is_empty() {
        return Some(None);
    }
    let whole = *rest;
    let name = std::str::from_utf8(take(rest)?).ok()?;
    let record = take(rest)?;
    let bytes = &whole[..whole.len() - rest.len()];
    Some(Some(Entry {
        name,
        record,
        bytes,
    }))
}

/// The name of an agency's own entry in its day's record list: its record for the day, every
/// procedure's counts and the corrections' (`cor` counts under no procedure) together. Empty,
/// which no procedure id is, so first in name order: one key holds a unit's day, read and
/// written once, where a record and a list were two keys a batch read and wrote for each
/// unit and day it counted in.
pub(crate) const OWN: &str = "";

/// The agency's own record in a record list (its entry named [`OWN`]); `Some(None)` when it
/// has none (a list written before 2026-12-06, when the record was a key of its own);
/// `None` for bytes that are not a record list.
pub(crate) fn own_of_list(list: &[u8]) -> Option<Option<Counters>> {
    let mut rest = list;
    match next_entry(&mut rest)? {
        Some(entry) if entry.name == OWN => decode(entry.record).map(Some),
        _ => Some(None),
    }
}

/// The entries of a record list, in order; `None` for bytes that no version of
/// [`add_to_list`] writes.
pub(crate) fn decode_list(list: &[u8]) -> Option<Vec<(&str, Counters)>> {
    let mut entries = Vec::new();
    let mut rest = list;
    while let Some(entry) = next_entry(&mut rest)? {
        entries.push((entry.name, decode(entry.record)?));
    }
    Some(entries)
}

/// The record list `stored` (or an empty one) with `added` added to its names' records (a
/// name whose record ends all zeros, taken back by corrections, leaves the list); `None`
/// when `stored` is not a record list, a record added to is not a record or holds less than
/// is taken away. `added` comes in name order, each name once (a plan's procedures of one
/// agency and day): the list is merged with it in one pass, the entries it does not name
/// copied as they are.
pub(crate) fn add_to_list<'a>(
    stored: Option<&[u8]>,
    added: impl IntoIterator<Item = (&'a str, &'a CounterSums)>,
) -> Option<Vec<u8>> {
    let mut rest = stored.unwrap_or_default();
    let mut list = Vec::with_capacity(rest.len() + 64);
    let mut kept = next_entry(&mut rest)?;
    let mut previous: Option<&str> = None;
    for (name, sums) in added {
        debug_assert!(previous < Some(name), "added names in order, each once");
        previous = Some(name);
        while let Some(entry) = kept.filter(|e| e.name < name) {
            list.extend_from_slice(entry.bytes);
            kept = next_entry(&mut rest)?;
        }
        let record = match kept.filter(|e| e.name == name) {
            Some(entry) => {
                kept = next_entry(&mut rest)?;
                add_on_stack(Some(entry.record), sums.nonzero())?
            }
            None => add_on_stack(None, sums.nonzero())?,
        };
        if record.len == 0 {
            continue;
        }
        let mut len = [0u8; 10];
        for bytes in [name.as_bytes(), record.as_slice()] {
            let used = bytes.len().encode_var(&mut len);
            list.extend_from_slice(&len[..used]);
            list.extend_from_slice(bytes);
        }
    }
    while let Some(entry) = kept {
        list.extend_from_slice(entry.bytes);
        kept = next_entry(&mut rest)?;
    }
    Some(list)
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
        assert_eq!(
            add(Some(&[3]), [(Counter::Received, -4)]),
            None,
            "less than is taken away"
        );
        assert_eq!(add(Some(&[3]), [(Counter::Received, -3)]), Some(Vec::new()));
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

    #[test]
    fn a_record_list_holds_its_agencys_own_record_first() {
        let mut sums = CounterSums::default();
        sums.add(Counter::Received, 3);
        let list = add_to_list(None, [(OWN, &sums), ("p1", &sums)]).expect("a list");
        assert_eq!(list, [0, 1, 3, 2, b'p', b'1', 1, 3]);
        let own = own_of_list(&list).expect("a list").expect("an own entry");
        assert_eq!(own.get(Counter::Received), 3);
        // A list without (written before its agency's record moved into it), and bytes
        // that are not a list.
        assert_eq!(own_of_list(&list[3..]), Some(None));
        assert_eq!(own_of_list(&[]), Some(None));
        assert_eq!(own_of_list(&[0, 2, 3]), None);
    }

    #[test]
    fn a_record_list_keeps_each_name_once_in_order_and_adds_to_it() {
        let sums = |n: i32| {
            let mut sums = CounterSums::default();
            sums.add(Counter::Received, n);
            sums
        };
        let (one, two) = (sums(1), sums(2));
        let list = add_to_list(None, [("p1", &two), ("p2", &one)]).expect("a list");
        assert_eq!(list, [2, b'p', b'1', 1, 2, 2, b'p', b'2', 1, 1]);
        let list = add_to_list(Some(&list), [("p2", &two), ("p3", &one)]).expect("a list");
        let read: Vec<(&str, u64)> = decode_list(&list)
            .expect("a list")
            .into_iter()
            .map(|(name, c)| (name, c.get(Counter::Received)))
            .collect();
        assert_eq!(read, [("p1", 2), ("p2", 3), ("p3", 1)]);
        // Cut short, or a record that is not one.
        assert_eq!(decode_list(&list[..list.len() - 1]), None);
        assert_eq!(
            decode_list(&[
                1, b'p', 11, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ]),
            None
        );
        assert_eq!(add_to_list(Some(&[5, b'p']), [("p", &one)]), None);
        assert_eq!(decode_list(&[]), Some(Vec::new()));
        // Taken back to nothing, a name leaves the list; more than it holds, no list.
        let mut back = CounterSums::default();
        back.add(Counter::Received, -2);
        let list = add_to_list(Some(&list), [("p1", &back)]).expect("a list");
        let names: Vec<&str> = decode_list(&list)
            .expect("a list")
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, ["p2", "p3"]);
        assert_eq!(add_to_list(Some(&list), [("p3", &back)]), None);
    }

    proptest! {
        /// Merging in one pass gives what adding name by name to a map would.
        #[test]
        fn a_record_list_adds_like_a_map_of_names(
            stored in prop::collection::btree_map("[a-d]{1,2}", 1i64..5, 0..8),
            added in prop::collection::btree_map("[a-d]{1,2}", 1i64..5, 0..8),
        ) {
            let sums = |n: i64| {
                let mut sums = CounterSums::default();
                sums.add(Counter::Resolved, n as i32);
                sums
            };
            let stored_sums: Vec<(String, CounterSums)> =
                stored.iter().map(|(k, n)| (k.clone(), sums(*n))).collect();
            let added_sums: Vec<(String, CounterSums)> =
                added.iter().map(|(k, n)| (k.clone(), sums(*n))).collect();
            let list = add_to_list(None, stored_sums.iter().map(|(k, s)| (k.as_str(), s)))
                .expect("a list");
            let list = add_to_list(Some(&list), added_sums.iter().map(|(k, s)| (k.as_str(), s)))
                .expect("a list");
            let mut model = stored.clone();
            for (name, n) in &added {
                *model.entry(name.clone()).or_default() += n;
            }
            let read: Vec<(String, i64)> = decode_list(&list)
                .expect("a list")
                .into_iter()
                .map(|(name, c)| (name.to_owned(), c.get(Counter::Resolved) as i64))
                .collect();
            prop_assert_eq!(read, model.into_iter().collect::<Vec<_>>());
        }

        #[test]
        fn records_read_back_as_written_and_add_as_numbers(
            a in prop::collection::vec(0u64..u64::MAX / 2, Counter::ALL.len()),
            b in prop::collection::vec(0u64..u64::MAX / 2, Counter::ALL.len()),
        ) {
            let a = Counters::from_pairs(Counter::ALL.into_iter().zip(a));
            let b = Counters::from_pairs(Counter::ALL.into_iter().zip(b));
            prop_assert_eq!(decode(&encode(&a)), Some(a));
            let sum = add(Some(&encode(&a)), b.iter().map(|(c, n)| (c, n as i64)))
                .and_then(|r| decode(&r));
            let mut expected = a;
            for (counter, n) in b.iter() {
                expected.increment(counter, n);
            }
            prop_assert_eq!(sum, Some(expected));
        }
    }
}
