//! One bucket of a tree's event ids or dossier records, as Redis stores it (`P:{root}:e:<n>`,
//! `P:{root}:ds:<n>`, docs/ARCHITECTURE.md section 4): one string, fixed-width records end to
//! end (an 8-byte digest, big-endian, then its value), then free slots up to the end of the
//! memory Redis allocates for the string anyway.
//!
//! The free slots are what lets a batch write a bucket's change, not the bucket. A string
//! Redis is given with `SET` is allocated in the smallest of the allocator's size classes that
//! holds it (jemalloc: four classes per doubling, so a 600-byte bucket sits in 640 bytes);
//! written whole, a bucket is padded with zero records to fill that class ([`padded`]), which
//! costs Redis no memory. A record that a later batch adds goes into the first free slot, and
//! a record it changes stays where it is: the span from the first changed record to the last
//! is written with one `SETRANGE` at its offset, some 90 bytes of command and append-only
//! file for one record instead of the whole bucket (about 800 bytes: with `appendfsync
//! always`, Redis syncs every byte before it answers). Only a bucket that has no free slot
//! left, that a sweep or a split rebuilt, or whose changes lie so far apart that the span
//! costs more than the bucket, is written whole again.
//! (`APPEND` or a `SETRANGE` past the end would make Redis allocate twice the string's
//! length: PERFORMANCE.md section 2.)
//!
//! A free slot is a record of zero bytes only: no record the stores write is so, since every
//! value holds the day after which it may be forgotten. Free slots are only ever at the end:
//! a bucket written whole has its records first.
//!
//! The write cache keeps each bucket with an [`Index`]: where its free slots start, and a
//! filter of the digests it holds. Most lookups are of ids the bucket does not hold (every new
//! event), and a bucket kept in the cache is memory no batch touched for a while: scanning it
//! to the end cost aggregate about an eighth of its CPU; the filter answers most of them from
//! one cache line.

/// One bucket's records as read and as the write leaves them, changed in place in the bytes
/// they were read in (no decoding of every bucket).
#[derive(Debug, Clone, Default)]
pub(crate) struct Records<const W: usize> {
    /// The bytes as Redis holds them: the records, then the free slots.
    read: Vec<u8>,
    /// How many bytes of `read` hold records (the free slots follow), once a record is to
    /// be added: finding it touches the end of the bucket, memory that a batch reading a
    /// bucket from the write cache otherwise need not bring in.
    live: Option<usize>,
    /// The records added once `read` had no free slot left (the bucket is then written
    /// whole).
    added: Vec<u8>,
    /// The bytes of `read` from the first to the end of the last record written since it was
    /// read, in place or into a free slot.
    written: Option<(usize, usize)>,
    /// The digests it holds, when known (a bucket from the write cache, or one rebuilt).
    filter: Option<Filter>,
}

#[cfg(test)]
impl<const W: usize> PartialEq for Records<W> {
    fn eq(&self, other: &Self) -> bool {
        tests::pairs(self) == tests::pairs(other)
    }
}

#[cfg(test)]
impl<const W: usize> Eq for Records<W> {}

/// What the write cache keeps of a bucket beside its bytes, so that the next batch need not
/// scan it to learn that it lacks a digest, nor to find its free slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Index {
    /// How many of its bytes hold records.
    live: usize,
    filter: Filter,
}

#[cfg(test)]
impl Index {
    /// The index of `live` bytes of records none of whose digests is known (for tests of the
    /// cache, which keeps it unread).
    pub(crate) fn of_bytes(live: usize) -> Index {
        Index {
            live,
            filter: Filter::default(),
        }
    }
}

/// 512 bits, three set for each digest a bucket holds: a digest it does not hold has all
/// three of its bits set with a chance of about 0.5% among 32 records, 1.5% among 48 (the
/// average, `spread::ENTRIES_PER_BUCKET`), 8% among 96 (a bucket at twice the average, its
/// neighbours split). The bits come from the digest's top 27 bits: its low bits name its
/// bucket, so the digests of one bucket share them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Filter([u64; 8]);

impl Filter {
    fn bits(digest: u64) -> [usize; 3] {
        [
            (digest >> 55) as usize,
            (digest >> 46) as usize & 0x1ff,
            (digest >> 37) as usize & 0x1ff,
        ]
    }

    fn add(&mut self, digest: u64) {
        for bit in Self::bits(digest) {
            self.0[bit >> 6] |= 1 << (bit & 63);
        }
    }

    fn may_hold(&self, digest: u64) -> bool {
        Self::bits(digest)
            .iter()
            .all(|bit| self.0[bit >> 6] & (1 << (bit & 63)) != 0)
    }
}

/// How a changed bucket is written.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Write<'a> {
    /// Its bytes from this offset on (`SETRANGE`): the string keeps its length.
    Range(usize, &'a [u8]),
    /// Whole, padded (in an `MSET`).
    Whole(&'a [u8]),
    /// No record left: the key is deleted.
    Delete,
}

/// What one `SETRANGE` costs Redis beyond the bytes it carries, as bytes of a bucket written
/// whole in an `MSET`: a command costs about 1.0 µs of Redis' CPU and a bucket of 800 bytes
/// in an `MSET` about 1.9 µs, 0.37 µs of it per key (redis-benchmark, pipelined, on the
/// benchmark machine, 2026-12-07): about 300 bytes. A bucket whose changes lie far apart is
/// written whole.
const RANGE_COST: usize = 300;

impl<const W: usize> Records<W> {
    /// The bytes of one record: its digest, then its value.
    const RECORD: usize = 8 + W;

    /// A bucket as read; `None` when its length is not a whole number of records.
    pub(crate) fn from_stored(stored: Vec<u8>) -> Option<Self> {
        stored.len().is_multiple_of(Self::RECORD).then_some(Self {
            read: stored,
            ..Self::default()
        })
    }

    /// A bucket as the write cache kept it.
    pub(crate) fn cached((stored, index): (Vec<u8>, Index)) -> Self {
        Self {
            read: stored,
            live: Some(index.live),
            filter: Some(index.filter),
            ..Self::default()
        }
    }

    /// The bucket as the write cache is to keep it once its write applied (`None`: no key),
    /// with its index (found now if not known: the bucket was just read or written, and its
    /// memory is at hand). Only after [`Records::write`] (or with nothing added) are its
    /// bytes what Redis holds.
    pub(crate) fn into_cached(mut self) -> Option<(Vec<u8>, Index)> {
        if self.read.is_empty() && self.added.is_empty() {
            return None;
        }
        let filter = match self.filter {
            Some(filter) => filter,
            None => {
                let mut filter = Filter::default();
                self.each_record(|digest, _, _| filter.add(digest));
                filter
            }
        };
        let live = self.live() + self.added.len();
        let mut stored = self.read;
        stored.extend_from_slice(&self.added);
        Some((stored, Index { live, filter }))
    }

    /// The bucket's bytes, in two parts: those read (its records, then its free slots),
    /// then the records added past its end.
    fn parts(&self) -> [&[u8]; 2] {
        [&self.read, &self.added]
    }

    /// How many bytes of `read` hold records: up to its last record that is not free.
    fn live(&mut self) -> usize {
        let read = &self.read;
        *self.live.get_or_insert_with(|| {
            let free = read
                .rchunks_exact(Self::RECORD)
                .take_while(|record| is_free(record))
                .count();
            read.len() - free * Self::RECORD
        })
    }

    /// Calls `f` with each record in order, free slots left out: its digest, its value and
    /// its bytes as they lie. Loops a part at a time: an iterator over both parts, chained
    /// or flattened and asked record by record, took 20 or more instructions a record to
    /// step, and a split's records a tenth more of aggregate's instructions.
    pub(crate) fn each_record<'s>(&'s self, mut f: impl FnMut(u64, &'s [u8; W], &'s [u8])) {
        for part in self.parts() {
            for record in part.chunks_exact(Self::RECORD) {
                if is_free(record) {
                    continue;
                }
                let Some((digest, value)) = record.split_first_chunk::<8>() else {
                    continue;
                };
                let Ok(value) = <&[u8; W]>::try_from(value) else {
                    continue;
                };
                f(u64::from_be_bytes(*digest), value, record);
            }
        }
    }

    /// Whether it holds no record: none added, and none read before its free slots. From
    /// its index when the write cache kept one, without touching its bytes: scanning for a
    /// first record brought in a line of memory that a write of a change elsewhere in the
    /// bucket never needs (in trees of a million ids, 6% of aggregate's samples).
    pub(crate) fn is_empty(&mut self) -> bool {
        self.added.is_empty() && self.live() == 0
    }

    /// Where `digest`'s record lies, if the bucket holds it: in `read` (`true`) or in
    /// `added`, and at which byte of it.
    fn position(&self, digest: u64) -> Option<(bool, usize)> {
        if self.filter.is_some_and(|filter| !filter.may_hold(digest)) {
            return None;
        }
        // Newest first: a bucket holds each digest once, and the record a batch looks for is
        // most often one written a moment ago (a dossier's resolution, fee and feedback
        // follow its reception), near the end of the bucket: scanned from the start, a
        // lookup that found its dossier had passed 51 records of 62 on average, and the
        // scans were a tenth of aggregate's instructions. Each part scanned on its own (one
        // scan chained over both took about 20 instructions a record), each record's digest
        // compared as one machine word (a slice comparison called memcmp per record).
        let word = u64::from_ne_bytes(digest.to_be_bytes());
        let find = |part: &[u8]| {
            part.chunks_exact(Self::RECORD)
                .rposition(|record| {
                    record
                        .first_chunk::<8>()
                        .is_some_and(|stored| u64::from_ne_bytes(*stored) == word)
                        // Only the digest 0 can be taken for a free slot's.
                        && (digest != 0 || !is_free(record))
                })
                .map(|n| n * Self::RECORD)
        };
        find(&self.added)
            .map(|at| (false, at))
            .or_else(|| find(&self.read).map(|at| (true, at)))
    }

    pub(crate) fn get(&self, digest: u64) -> Option<&[u8; W]> {
        let (read, at) = self.position(digest)?;
        let part = if read { &self.read } else { &self.added };
        part.get(at + 8..at + Self::RECORD)?.try_into().ok()
    }

    /// Sets `digest`'s value: in place if the bucket holds it, else as a new record.
    pub(crate) fn put(&mut self, digest: u64, value: [u8; W]) {
        match self.position(digest) {
            Some((true, at)) => {
                self.read[at + 8..at + Self::RECORD].copy_from_slice(&value);
                self.wrote(at);
            }
            Some((false, at)) => self.added[at + 8..at + Self::RECORD].copy_from_slice(&value),
            None => self.push(digest, &value),
        }
    }

    /// Adds a record the bucket does not hold: into its first free slot, or past its end.
    pub(crate) fn push(&mut self, digest: u64, value: &[u8; W]) {
        if let Some(filter) = &mut self.filter {
            filter.add(digest);
        }
        let at = self.live();
        match self.read.get_mut(at..at + Self::RECORD) {
            Some(slot) if self.added.is_empty() => {
                slot[..8].copy_from_slice(&digest.to_be_bytes());
                slot[8..].copy_from_slice(value);
                self.live = Some(at + Self::RECORD);
                self.wrote(at);
            }
            _ => {
                self.added.extend_from_slice(&digest.to_be_bytes());
                self.added.extend_from_slice(value);
            }
        }
    }

    /// Notes the record at `at` of `read` as written.
    fn wrote(&mut self, at: usize) {
        let end = at + Self::RECORD;
        self.written = Some(match self.written {
            Some((from, to)) => (from.min(at), to.max(end)),
            None => (at, end),
        });
    }

    /// Adds `other`'s records after this one's.
    pub(crate) fn append(&mut self, other: &Self) {
        other.each_record(|digest, value, _| self.push(digest, value));
    }

    /// The records `keep` keeps (in order), and the others, each a bucket to write whole.
    pub(crate) fn partition(&self, keep: impl Fn(u64, &[u8; W]) -> bool) -> (Self, Self) {
        // Each sized once for all the records (a split grew both record by record), and each
        // record copied as it lies: the new buckets have nothing read, so a record pushed
        // would go past their end anyway (record by record through `push`, a split took
        // about 160 instructions a record, and the splits of a warm batch 7% of aggregate's).
        let bytes = self.read.len() + self.added.len();
        let empty = || Self {
            added: Vec::with_capacity(bytes),
            filter: Some(Filter::default()),
            ..Self::default()
        };
        let (mut kept, mut left) = (empty(), empty());
        self.each_record(|digest, value, record| {
            let part = if keep(digest, value) {
                &mut kept
            } else {
                &mut left
            };
            part.added.extend_from_slice(record);
            part.filter.get_or_insert_default().add(digest);
        });
        (kept, left)
    }

    pub(crate) fn len(&self) -> usize {
        let mut count = 0;
        self.each_record(|_, _, _| count += 1);
        count
    }

    /// How the bucket is to be written so that Redis holds what this holds, for a key of
    /// `key_len` bytes; what this holds is then what Redis holds ([`Records::into_cached`]).
    /// Its bytes from its first changed record to its last when it kept its length and that
    /// costs Redis less than the whole bucket ([`RANGE_COST`]); else whole, its records
    /// first, then free slots up to the end of its allocation ([`padded`]).
    pub(crate) fn write(&mut self, key_len: usize) -> Write<'_> {
        if self.is_empty() {
            return Write::Delete;
        }
        if let (true, Some((from, to))) = (self.added.is_empty(), self.written)
            && to - from + RANGE_COST < key_len + self.read.len()
        {
            return Write::Range(from, &self.read[from..to]);
        }
        // Its records: those read up to its free slots, then those added.
        let live = self.live();
        let records = live + self.added.len();
        let mut whole = Vec::with_capacity(padded(records, Self::RECORD));
        whole.extend_from_slice(&self.read[..live]);
        whole.extend_from_slice(&self.added);
        whole.resize(padded(records, Self::RECORD), 0);
        *self = Self {
            read: whole,
            live: Some(records),
            filter: self.filter,
            ..Self::default()
        };
        Write::Whole(&self.read)
    }

    /// The bytes of a bucket that [`Records::write`] wrote whole, as it wrote them: its
    /// records, then its free slots.
    pub(crate) fn as_written(&self) -> &[u8] {
        &self.read
    }
}

/// Whether a record is a free slot: zero bytes only. Its digest first, as one word: a
/// record's is all but never zero, and byte by byte the test took about 80 instructions.
fn is_free(record: &[u8]) -> bool {
    record
        .first_chunk::<8>()
        .is_none_or(|digest| u64::from_ne_bytes(*digest) == 0)
        && record.iter().all(|&byte| byte == 0)
}

/// The length to write a bucket of `live` bytes of records as: its records, then free slots
/// of `record` bytes each, as many as fit in the memory Redis allocates for a string of
/// `live` bytes anyway (an `sds` string: its header, its bytes and a terminating zero, in the
/// smallest size class of Redis' allocator, jemalloc, that holds them). The conformance
/// suite checks the model against the Redis it runs
/// (`redis_store_buckets_written_as_their_changes_read_back_whole_and_cost_no_memory`):
/// another allocator would cost memory here, never a count.
pub(crate) fn padded(live: usize, record: usize) -> usize {
    let class = size_class(live + sds_header(live) + 1);
    let mut slots = (class - sds_header(live) - 1) / record;
    // A longer string may need a longer header.
    while slots * record > live && slots * record + sds_header(slots * record) + 1 > class {
        slots -= 1;
    }
    (slots * record).max(live)
}

/// The header of Redis' `sds` string of `len` bytes (`sdsReqType`: a 1-byte header below 32
/// bytes, 3 below 256, 5 below 65,536, else 9).
fn sds_header(len: usize) -> usize {
    match len {
        0..32 => 1,
        32..256 => 3,
        256..65_536 => 5,
        _ => 9,
    }
}

/// The smallest of jemalloc's size classes that holds `n` bytes: multiples of 16 up to 128
/// (8 for the smallest), then four classes per doubling.
fn size_class(n: usize) -> usize {
    match n {
        0..=8 => 8,
        9..=128 => n.div_ceil(16) * 16,
        _ => {
            let group = usize::BITS - 1 - (n - 1).leading_zeros();
            let spacing = 1 << (group - 2);
            n.div_ceil(spacing) * spacing
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn records<const W: usize>(pairs: &[(u64, [u8; W])]) -> Records<W> {
        let mut records = Records::default();
        for (digest, value) in pairs {
            records.push(*digest, value);
        }
        records
    }

    pub(crate) fn pairs<const W: usize>(records: &Records<W>) -> Vec<(u64, [u8; W])> {
        let mut pairs = Vec::new();
        records.each_record(|digest, value, _| pairs.push((digest, *value)));
        pairs
    }

    #[test]
    fn a_filter_lets_few_digests_it_does_not_hold_through() {
        // Digests spread over all 64 bits, as the stores' are.
        let digest = |n: u64| xxhash_rust::xxh3::xxh3_64(&n.to_le_bytes());
        let mut filter = Filter::default();
        (0..48).for_each(|n| filter.add(digest(n)));
        assert!(
            (0..48).all(|n| filter.may_hold(digest(n))),
            "no record missed"
        );
        // About 1.5% among 48 records (256 bits, two a digest, let about 10% through).
        let through = (1_000..101_000)
            .filter(|n| filter.may_hold(digest(*n)))
            .count();
        assert!(
            through < 3_000,
            "{through} of 100,000 absent digests let through"
        );
    }

    #[test]
    fn a_record_is_found_and_changed_in_either_part() {
        // Two records read, no free slot: a third goes past the end.
        let stored = [1u64, 2].map(|d| [&d.to_be_bytes()[..], &[d as u8; 19]].concat());
        let mut bucket = Records::<19>::from_stored(stored.concat()).expect("a bucket");
        bucket.push(3, &[3; 19]);
        assert_eq!((bucket.read.len(), bucket.added.len()), (54, 27));
        assert_eq!(bucket.get(1), Some(&[1; 19]));
        assert_eq!(bucket.get(3), Some(&[3; 19]));
        assert_eq!(bucket.get(4), None);
        bucket.put(1, [9; 19]);
        bucket.put(3, [8; 19]);
        assert_eq!(pairs(&bucket), [(1, [9; 19]), (2, [2; 19]), (3, [8; 19])]);
    }

    #[test]
    fn a_partition_takes_every_record_of_both_parts_in_order_and_no_free_slot() {
        // Read: digests 0 (a record, not a free slot: its value holds its day), 1 and 2,
        // then a free slot; then 3 and 4 past the end.
        let mut stored: Vec<u8> = [0u64, 1, 2]
            .iter()
            .flat_map(|d| [&d.to_be_bytes()[..], &[*d as u8 + 1; 19]].concat())
            .collect();
        stored.resize(4 * 27, 0);
        let mut bucket = Records::<19>::from_stored(stored).expect("a bucket");
        bucket.push(9, &[9; 19]);
        bucket.push(3, &[4; 19]);
        bucket.push(4, &[5; 19]);
        assert_eq!(
            bucket.added.len(),
            2 * 27,
            "the free slot taken, then past the end"
        );
        let (even, odd) = bucket.partition(|digest, _| digest % 2 == 0);
        let digests = |b: &Records<19>| pairs(b).into_iter().map(|(d, _)| d).collect::<Vec<_>>();
        assert_eq!(digests(&even), [0, 2, 4]);
        assert_eq!(digests(&odd), [1, 9, 3]);
        assert_eq!(even.get(4), Some(&[5; 19]), "found past its filter");
        assert_eq!(odd.get(9), Some(&[9; 19]));
        assert_eq!(even.get(1), None);
    }

    #[test]
    fn records_read_back_as_written_and_a_torn_bucket_is_refused() {
        let mut written = records(&[(1, [1, 2, 3]), (u64::MAX, [4, 5, 6])]);
        let Write::Whole(stored) = written.write(2) else {
            panic!("a new bucket is written whole")
        };
        let stored = stored.to_vec();
        assert_eq!(stored.len(), padded(2 * 11, 11), "padded");
        assert_eq!(
            &stored[..11],
            &[0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3],
            "big-endian"
        );
        assert!(stored[22..].iter().all(|&b| b == 0), "free slots after");
        let read = Records::<3>::from_stored(stored.clone()).expect("whole records");
        assert_eq!(pairs(&read), vec![(1, [1, 2, 3]), (u64::MAX, [4, 5, 6])]);
        assert_eq!(read.get(u64::MAX), Some(&[4, 5, 6]));
        assert_eq!(read.get(2), None);
        assert_eq!(read.get(0), None, "a free slot is no record");
        assert_eq!(read.len(), 2);
        assert_eq!(
            Records::<3>::from_stored(Vec::new()),
            Some(Records::default()),
            "a missing bucket"
        );
        assert_eq!(Records::<3>::from_stored(stored[..21].to_vec()), None);
    }

    /// An id bucket as Redis holds it: records of digests 1 to `n`, then free slots up to
    /// `slots` records.
    fn ids(n: u64, slots: usize) -> Records<19> {
        let mut stored = Vec::new();
        for digest in 1..=n {
            stored.extend_from_slice(&digest.to_be_bytes());
            stored.extend_from_slice(&[1; 19]);
        }
        stored.resize(slots * 27, 0);
        Records::from_stored(stored).expect("records")
    }

    fn record(digest: u64, value: u8) -> Vec<u8> {
        let mut record = digest.to_be_bytes().to_vec();
        record.extend_from_slice(&[value; 19]);
        record
    }

    #[test]
    fn records_go_into_free_slots_and_are_written_alone_until_none_is_left() {
        // 26 records in the 28 slots of 768 bytes.
        let mut bucket = ids(26, 28);
        assert_eq!(bucket.len(), 26);
        bucket.put(26, [5; 19]);
        bucket.put(27, [5; 19]);
        let next = [record(26, 5), record(27, 5)].concat();
        assert_eq!(
            bucket.write(20),
            Write::Range(25 * 27, &next[..]),
            "the last record changed and a new one next to it"
        );
        let (redis, _) = bucket.clone().into_cached().expect("a key");
        assert_eq!(redis.len(), 28 * 27, "the length kept");
        assert_eq!(&redis[25 * 27..27 * 27], &next[..]);

        let mut bucket = Records::<19>::from_stored(redis.clone()).expect("records");
        bucket.put(1, [7; 19]);
        bucket.put(28, [8; 19]);
        assert!(
            matches!(bucket.write(20), Write::Whole(_)),
            "the first record and the last: as many bytes as the bucket"
        );
        let mut bucket = Records::<19>::from_stored(redis).expect("records");
        bucket.put(27, [8; 19]);
        bucket.put(28, [8; 19]);
        let last = [record(27, 8), record(28, 8)].concat();
        assert_eq!(bucket.write(20), Write::Range(26 * 27, &last[..]));

        let mut bucket =
            Records::<19>::from_stored(bucket.into_cached().expect("a key").0).expect("records");
        assert_eq!(bucket.len(), 28);
        bucket.put(29, [9; 19]);
        let Write::Whole(whole) = bucket.write(20) else {
            panic!("no free slot left: whole")
        };
        assert_eq!(whole.len(), padded(29 * 27, 27));
        assert_eq!(&whole[28 * 27..29 * 27], &record(29, 9)[..]);
        assert_eq!(bucket.len(), 29);
        assert_eq!(bucket.get(27), Some(&[8; 19]));
    }

    #[test]
    fn scattered_changes_of_a_short_bucket_are_written_whole() {
        let mut bucket = records(&[(1, [1]), (2, [2]), (3, [3])]);
        assert!(matches!(bucket.write(4), Write::Whole(_)));
        let mut bucket =
            Records::<1>::from_stored(bucket.into_cached().expect("a key").0).expect("records");
        bucket.put(1, [9]);
        bucket.put(3, [9]);
        assert!(
            matches!(bucket.write(4), Write::Whole(_)),
            "two ranges cost more than the bucket"
        );
        let mut empty = Records::<1>::from_stored(bucket.into_cached().expect("a key").0)
            .expect("records")
            .partition(|_, _| false)
            .0;
        assert_eq!(empty.write(4), Write::Delete);
        let mut free_slots_only = Records::<1>::from_stored(vec![0; 18]).expect("two free slots");
        assert_eq!(free_slots_only.write(4), Write::Delete);
    }

    #[test]
    fn a_cached_bucket_finds_every_digest_it_holds_and_its_filter_turns_most_others_away() {
        // Digests of one bucket share their low bits (the spread's), as in a tree.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut digest = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state & !0xff | 0x2a
        };
        let mut bucket = Records::<19>::default();
        let mut held = Vec::new();
        for round in 1..=8 {
            for _ in 0..5 {
                let d = digest();
                bucket.put(d, [round; 19]);
                held.push(d);
            }
            let _ = bucket.write(20);
            // Through the cache between batches: the index kept, the filter grown by pushes.
            bucket = Records::cached(bucket.into_cached().expect("records"));
        }
        for d in &held {
            assert!(bucket.get(*d).is_some(), "{d:x} held");
        }
        // A sweep keeps some: the filter of what is kept.
        let (mut kept, _) = bucket.partition(|d, _| d >> 60 != 0);
        let _ = kept.write(20);
        let kept_digests: Vec<u64> = held.iter().copied().filter(|d| d >> 60 != 0).collect();
        let bucket = Records::<19>::cached(kept.into_cached().expect("records"));
        for d in &kept_digests {
            assert!(bucket.get(*d).is_some(), "{d:x} held");
        }
        let absent: Vec<u64> = (0..1_000).map(|_| digest()).collect();
        let passed = absent
            .iter()
            .filter(|d| bucket.filter.is_some_and(|f| f.may_hold(**d)))
            .count();
        assert!(absent.iter().all(|d| bucket.get(*d).is_none()));
        assert!(
            passed < 150,
            "{passed} of 1,000 absent digests pass the filter"
        );
    }

    #[test]
    fn a_padded_bucket_fills_the_size_class_of_its_records() {
        assert_eq!(size_class(8), 8);
        assert_eq!(size_class(9), 16);
        assert_eq!(size_class(128), 128);
        assert_eq!(size_class(129), 160);
        assert_eq!(size_class(600), 640);
        assert_eq!(size_class(641), 768);
        assert_eq!(size_class(1024), 1024);
        assert_eq!(size_class(1025), 1280);
        // Measured with DEBUG SDSLEN on redis-server 7.0.15 (jemalloc 5.3.0): 594 bytes
        // (22 ids) sit in 640, 864 (32) in 896.
        assert_eq!(padded(22 * 27, 27), 23 * 27);
        assert_eq!(padded(32 * 27, 27), 32 * 27, "no room for a 33rd");
        assert_eq!(padded(30 * 19, 19), 33 * 19);
        for record in [19, 27] {
            for live in (record..4_000).step_by(record) {
                let padded = padded(live, record);
                assert!(padded >= live && padded.is_multiple_of(record));
                assert_eq!(
                    size_class(padded + sds_header(padded) + 1),
                    size_class(live + sds_header(live) + 1),
                    "{live} bytes padded to {padded} take more memory"
                );
            }
        }
    }
}
