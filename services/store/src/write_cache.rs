//! The tree writer's cache: what it read and wrote of a tree, kept for its next batch of the
//! same tree, so that the keys of a tree this process writes are read from Redis once, not
//! at every batch (reading a bucket with `MGET` and sending its bytes back cost Redis about a
//! third of an event's CPU: docs/PERFORMANCE.md, section 2).
//!
//! The keys cached change only by tree writes (`tree_write.rs`), and every tree write sets
//! the tree's version (`P:{root}:v`) to a new random value inside the write. So what this
//! process holds of a tree is exact while Redis still holds the version its last write set.
//! Each attempt reads the version first (it must, to write only if nothing changed), and:
//! - the version is the one this process last wrote: the values cached are Redis' own, and
//!   only the keys missing from the cache are read;
//! - any other version (another replica wrote the tree, a restore or a flush, a write of
//!   this process whose outcome is unknown): what was cached of the tree is dropped, and the
//!   attempt reads everything.
//!
//! Values enter the cache only when the write of their attempt applied: that proves no other
//! writer changed the tree between the attempt's reads and its write, so what it read and
//! what it wrote is what Redis holds under the version it set. Random versions rather than a
//! count of writes: a restored backup or a tree flushed and written again reaches the same
//! count with other contents, the same random version only by chance (2^-62 a write).
//!
//! Only the keys that tree writes alone change are cached: the id and dossier buckets, the
//! counter records and day record lists, the fields of the day roll-ups, of the root's
//! procedure hashes and of the agencies' activity hash, and the packed roll-ups written
//! whole (one incremented in place is not known, and not kept), and which procedures the
//! online sets hold (a field per procedure, an empty value: what a write added to a set or
//! found there; one a correction took out is forgotten). Ordinal lists have their own check
//! (`ordinals.rs`).
//!
//! A tree's cache is its own, behind the tree's lock, which an attempt holds from its first
//! read to its write (this process's attempts on one tree take turns: two at once would
//! conflict on the version, and one would read and plan again). A bucket or a value is moved
//! out of the cache into the attempt, and its new bytes moved back once written: no copy
//! (copying the values of the unit mix's day record lists was 4 to 6% of aggregate's CPU),
//! no hashing of a bucket's key's text. One that an attempt did not write back is read
//! from Redis next time. Bounded by bytes across every tree: past the budget, a write drops the
//! caches of the trees used least recently, then buckets of its own tree; a budget of 0
//! keeps nothing.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use foldhash::{HashMap, HashMapExt};
use govpulse_core::AgencyId;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use xxhash_rust::xxh3::xxh3_128;

use crate::{CacheUse, bucket::Index};

/// What an entry costs beyond its value's bytes (the map's slot, the `Vec`'s header, the
/// allocation's rounding), counted against the budget.
const ENTRY_OVERHEAD: usize = 64;

/// The two growing structures of a tree kept as buckets of records (`tree_write.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Structure {
    Ids = 0,
    Dossiers = 1,
}

/// A key or a hash field of a tree, as the cache names it: by the 128-bit digest of its text
/// ([`Key::of`], [`Key::field`]): no text is kept, allocated or compared. Two names in one
/// tree's cache share a digest with a chance of about n²/2¹²⁹ for n names (a hundred million:
/// 1 in 10²²); a shared one would answer one key with the other's value. (Buckets are kept
/// by their structure and number.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key(u128);

/// A bucket as the cache keeps it: its bytes as Redis holds them, and what the writer knows
/// of them without a scan (`bucket::Index`), which lives and dies with them.
pub(crate) type Bucket = (Vec<u8>, Index);

impl Key {
    /// The cache's name for the key `key`.
    pub(crate) fn of(key: &str) -> Key {
        Key(xxh3_128(key.as_bytes()))
    }

    /// The cache's name for field `field` of the hash at `key`.
    pub(crate) fn field(key: &str, field: impl AsRef<[u8]>) -> Key {
        // The key's length first: no two (key, field) pairs, and no key (whose text has no
        // byte 0, as every length's 8 bytes have), are the same bytes. Hashed in one call,
        // on the stack when they fit (all but the longest ids), for the same digest as a
        // streaming hasher's, whose state of several hundred bytes was set up for each of
        // the thousands of fields a batch of the unit mix names.
        let (key, field) = (key.as_bytes(), field.as_ref());
        let len = 8 + key.len() + field.len();
        let mut stack = [0; 256];
        let mut heap = Vec::new();
        let name = if len <= stack.len() {
            &mut stack[..len]
        } else {
            heap.resize(len, 0);
            &mut heap[..]
        };
        let (length, rest) = name.split_at_mut(8);
        let (named_key, named_field) = rest.split_at_mut(key.len());
        length.copy_from_slice(&(key.len() as u64).to_le_bytes());
        named_key.copy_from_slice(key);
        named_field.copy_from_slice(field);
        Key(xxh3_128(name))
    }
}

/// What this process holds of one tree.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    /// The version Redis holds after this process's last write of the tree; `None` when
    /// that is not known (not written yet, or changed by another writer since).
    version: Option<Vec<u8>>,
    /// Each structure's buckets, by number.
    buckets: [HashMap<u64, Bucket>; 2],
    /// Keys and hash fields by name, `None` for one Redis does not hold.
    values: HashMap<u128, Option<Vec<u8>>>,
    /// The bytes held, and those counted in the cache's total so far.
    bytes: usize,
    counted: usize,
    /// Keys found and not found since the cache's counts were last told.
    hits: u64,
    misses: u64,
}

/// What a bucket costs the budget: the memory it holds (a bucket that gained records may
/// have room for more).
fn held((bytes, _): &Bucket) -> usize {
    bytes.capacity() + size_of::<Index>() + ENTRY_OVERHEAD
}

/// What a value costs the budget.
fn size(value: Option<&[u8]>) -> usize {
    value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD
}

impl Tree {
    /// Whether the cache was current at this attempt's start: a tree this process alone
    /// writes, whose next batch will find what this one leaves. (Once [`WriteCache::at`] has
    /// run for the attempt, a version is kept only if it is the one Redis holds.)
    pub(crate) fn current(&self) -> bool {
        self.version.is_some()
    }

    /// The cached value of `key`, if cached (`Some(None)`: Redis does not hold it): moved
    /// out, as a bucket is (every value an attempt asks for, it writes back with what the
    /// batch adds; one it left out would be read again, never answered wrong).
    pub(crate) fn lookup(&mut self, key: &Key) -> Option<Option<Vec<u8>>> {
        let found = self.values.remove(&key.0);
        if let Some(value) = &found {
            self.bytes -= size(value.as_deref());
        }
        self.count(found.is_some());
        found
    }

    /// Drops what is cached of `key`, if anything: Redis may no longer hold it (not a lookup,
    /// and not counted as one).
    pub(crate) fn forget_value(&mut self, key: &Key) {
        if let Some(value) = self.values.remove(&key.0) {
            self.bytes -= size(value.as_deref());
        }
    }

    /// Bucket `bucket` of `structure`, if cached: moved out (the attempt writes it back
    /// changed). A bucket Redis does not hold is not kept (read when asked for).
    pub(crate) fn take_bucket(&mut self, structure: Structure, bucket: u64) -> Option<Bucket> {
        let taken = self.buckets[structure as usize].remove(&bucket);
        if let Some(bucket) = &taken {
            self.bytes -= held(bucket);
        }
        self.count(taken.is_some());
        taken
    }

    fn count(&mut self, hit: bool) {
        match hit {
            true => self.hits += 1,
            false => self.misses += 1,
        }
    }

    fn put(&mut self, key: Key, value: Option<Vec<u8>>) {
        self.bytes += size(value.as_deref());
        if let Some(before) = self.values.insert(key.0, value) {
            self.bytes -= size(before.as_deref());
        }
    }

    fn put_bucket(&mut self, structure: Structure, number: u64, bucket: Option<Bucket>) {
        let buckets = &mut self.buckets[structure as usize];
        let before = match bucket {
            Some(bucket) => {
                self.bytes += held(&bucket);
                buckets.insert(number, bucket)
            }
            // A bucket left empty is no key in Redis: not kept (read next time).
            None => buckets.remove(&number),
        };
        if let Some(bucket) = before {
            self.bytes -= held(&bucket);
        }
    }

    /// Forgets what is kept and the version it was kept at.
    fn clear(&mut self) {
        self.version = None;
        self.drop_entries();
    }

    /// Drops what is kept (at the same version: what is left is still current).
    fn drop_entries(&mut self) {
        self.buckets = Default::default();
        self.values = HashMap::new();
        self.bytes = 0;
    }

    /// Drops buckets, then values, until `excess` fewer bytes are held (or none), visiting
    /// only those it drops.
    fn shed(&mut self, excess: usize) {
        // Each entry is taken out as the iteration reaches it; those not reached stay.
        let mut dropped = 0;
        for buckets in &mut self.buckets {
            let mut taken = buckets.extract_if(|_, _| true);
            while dropped < excess
                && let Some((_, bucket)) = taken.next()
            {
                dropped += held(&bucket);
            }
        }
        let mut taken = self.values.extract_if(|_, _| true);
        while dropped < excess
            && let Some((_, value)) = taken.next()
        {
            dropped += size(value.as_deref());
        }
        drop(taken);
        self.bytes -= dropped.min(self.bytes);
    }
}

/// One tree's place in the cache: its lock, and when it was last used.
#[derive(Debug, Default)]
struct Slot {
    tree: Arc<AsyncMutex<Tree>>,
    last_used: u64,
}

/// The caches of every tree this process writes.
#[derive(Debug)]
pub(crate) struct WriteCache {
    budget: usize,
    trees: Mutex<HashMap<AgencyId, Slot>>,
    /// The bytes every tree holds, as they last told.
    used: AtomicUsize,
    /// Moves on at each lock of a tree: its last use.
    ticks: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl WriteCache {
    /// A cache of at most `budget` bytes; 0 keeps nothing (the trees' locks remain).
    pub(crate) fn new(budget: u64) -> Self {
        WriteCache {
            budget: usize::try_from(budget).unwrap_or(usize::MAX),
            trees: Mutex::default(),
            used: AtomicUsize::new(0),
            ticks: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The tree `root`, once this process's other attempts on it are done.
    pub(crate) async fn lock(&self, root: &AgencyId) -> OwnedMutexGuard<Tree> {
        let tree = {
            // A poisoned map is still whole: entries are only ever added.
            let mut trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
            let slot = trees.entry(root.clone()).or_default();
            slot.last_used = self.ticks.fetch_add(1, Ordering::Relaxed);
            Arc::clone(&slot.tree)
        };
        tree.lock_owned().await
    }

    /// Makes `tree` what the cache may answer now that Redis holds `version`: all of it if
    /// that is the version this process last wrote, nothing otherwise.
    pub(crate) fn at(&self, tree: &mut Tree, version: Option<&[u8]>) {
        let current = self.budget > 0 && version.is_some() && tree.version.as_deref() == version;
        if !current {
            tree.clear();
        }
        self.settle(tree);
    }

    /// Keeps what a write that applied left in Redis: `known`, each key with its value after
    /// the write (`None`: no such key), in order (a later value of a key replaces an earlier
    /// one); `version` is the version the write set. Then keeps to the budget.
    pub(crate) fn applied(&self, tree: &mut Tree, version: Vec<u8>, known: Known) {
        tree.version = Some(version);
        if self.budget > 0 {
            for (key, value) in known.values {
                tree.put(key, value);
            }
            for (structure, number, bucket) in known.buckets {
                tree.put_bucket(structure, number, bucket);
            }
        }
        self.settle(tree);
        let over = |used: usize| used.saturating_sub(self.budget);
        if over(self.used.load(Ordering::Relaxed)) == 0 {
            return;
        }
        // The trees used least recently first, whole; those in use (this one) are skipped.
        let mut others: Vec<(u64, Arc<AsyncMutex<Tree>>)> = {
            let trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
            let slots = trees.values();
            (slots.map(|slot| (slot.last_used, Arc::clone(&slot.tree)))).collect()
        };
        others.sort_unstable_by_key(|(last_used, _)| *last_used);
        for (_, other) in others {
            if over(self.used.load(Ordering::Relaxed)) == 0 {
                return;
            }
            if let Ok(mut other) = other.try_lock() {
                other.drop_entries();
                self.settle(&mut other);
            }
        }
        tree.shed(over(self.used.load(Ordering::Relaxed)));
        self.settle(tree);
    }

    /// Drops what is kept of `tree`: a write of it failed, and what Redis holds is not known.
    pub(crate) fn forget(&self, tree: &mut Tree) {
        tree.clear();
        self.settle(tree);
    }

    /// Adds what `tree` changed since it last told to the cache's totals.
    fn settle(&self, tree: &mut Tree) {
        if tree.bytes >= tree.counted {
            self.used
                .fetch_add(tree.bytes - tree.counted, Ordering::Relaxed);
        } else {
            self.used
                .fetch_sub(tree.counted - tree.bytes, Ordering::Relaxed);
        }
        tree.counted = tree.bytes;
        self.hits
            .fetch_add(std::mem::take(&mut tree.hits), Ordering::Relaxed);
        self.misses
            .fetch_add(std::mem::take(&mut tree.misses), Ordering::Relaxed);
    }

    /// How many keys asked for the cache answered, how many were read from Redis, and the
    /// bytes it holds.
    pub(crate) fn usage(&self) -> CacheUse {
        CacheUse {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes: self.used.load(Ordering::Relaxed) as u64,
        }
    }
}

/// The values a write leaves, as the write is built, for [`WriteCache::applied`].
#[derive(Default)]
pub(crate) struct Known {
    values: Vec<(Key, Option<Vec<u8>>)>,
    buckets: Vec<(Structure, u64, Option<Bucket>)>,
}

impl Known {
    pub(crate) fn push(&mut self, key: Key, value: Option<Vec<u8>>) {
        self.values.push((key, value));
    }

    /// Bucket `number` of `structure` as the write leaves it (`None`: no key).
    pub(crate) fn push_bucket(
        &mut self,
        structure: Structure,
        number: u64,
        bucket: Option<Bucket>,
    ) {
        self.buckets.push((structure, number, bucket));
    }

    /// Adds `other`'s values after these.
    pub(crate) fn append(&mut self, mut other: Known) {
        self.values.append(&mut other.values);
        self.buckets.append(&mut other.buckets);
    }
}

/// One value per key asked for, in order: from the cache when it holds the key, else from
/// the reply of one read of the keys it does not hold (`MGET` of keys, `HMGET` of one hash's
/// fields), which [`Asked::missed`] says whether to send.
pub(crate) struct Asked {
    /// Per key asked: its cached value, or `None` to take the next value of the reply.
    answers: Vec<Option<Option<Vec<u8>>>>,
    /// How many keys the read asks Redis for.
    missed: usize,
}

impl Asked {
    /// Asks for `keys`, each as (the cache's name, the read's argument): those `tree` does
    /// not hold are added to `read`.
    pub(crate) fn new<A: redis::ToRedisArgs>(
        tree: &mut Tree,
        keys: impl IntoIterator<Item = (Key, A)>,
        read: &mut redis::Cmd,
    ) -> Self {
        let mut missed = 0;
        let answers = keys
            .into_iter()
            .map(|(key, argument)| {
                let cached = tree.lookup(&key);
                if cached.is_none() {
                    read.arg(argument);
                    missed += 1;
                }
                cached
            })
            .collect();
        Asked { answers, missed }
    }

    /// Whether the read must be sent (some key is not cached).
    pub(crate) fn missed(&self) -> bool {
        self.missed > 0
    }

    /// The values, in the order asked: `reply` is the read's reply, `None` when it was not
    /// sent; `None` when the reply is not one value per key missed.
    pub(crate) fn answers(self, reply: Option<redis::Value>) -> Option<Vec<Option<Vec<u8>>>> {
        let mut read = read_values(reply, self.missed)?.into_iter();
        self.answers
            .into_iter()
            .map(|cached| cached.or_else(|| read.next()))
            .collect()
    }
}

/// The values of a read of the `missed` keys the cache did not hold: `reply` is its reply,
/// `None` when it was not sent (nothing missed); `None` when the reply is not one value per
/// key missed.
pub(crate) fn read_values(
    reply: Option<redis::Value>,
    missed: usize,
) -> Option<Vec<Option<Vec<u8>>>> {
    let read: Vec<Option<Vec<u8>>> = match reply {
        Some(reply) => redis::from_redis_value(reply).ok()?,
        None => Vec::new(),
    };
    (read.len() == missed).then_some(read)
}

/// A command's arguments, its name first (for tests).
#[cfg(test)]
pub(crate) fn arguments(cmd: &redis::Cmd) -> Vec<Vec<u8>> {
    cmd.args_iter()
        .filter_map(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(bytes.to_vec()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: &str) -> AgencyId {
        AgencyId::parse(raw).expect("an agency id")
    }

    #[test]
    fn a_field_is_named_by_the_digest_of_its_key_s_length_its_key_and_its_name() {
        let streamed = |key: &str, field: &[u8]| {
            let mut name = xxhash_rust::xxh3::Xxh3Default::new();
            name.update(&(key.len() as u64).to_le_bytes());
            name.update(key.as_bytes());
            name.update(field);
            Key(name.digest128())
        };
        let long = "u".repeat(300);
        for (key, field) in [
            ("gp:{hanoi}:k:hanoi:d20260815", "hanoi.u00042"),
            ("gp:{hanoi}:s", ""),
            ("", "x"),
            (long.as_str(), "hanoi.u00042"),
            ("gp:{hanoi}:s", long.as_str()),
        ] {
            assert_eq!(
                Key::field(key, field),
                streamed(key, field.as_bytes()),
                "{key} {field}"
            );
        }
        assert_ne!(Key::field("ab", "c"), Key::field("a", "bc"));
        assert_ne!(Key::field("a", ""), Key::of("a"));
    }

    fn value(name: &str) -> Key {
        Key::of(name)
    }

    fn known(pairs: &[(&str, Option<&str>)]) -> Known {
        let mut known = Known::default();
        for (key, v) in pairs {
            known.push(value(key), v.map(|v| v.as_bytes().to_vec()));
        }
        known
    }

    fn text(tree: &mut Tree, key: &Key) -> Option<Option<String>> {
        tree.lookup(key)
            .map(|v| v.map(|b| String::from_utf8(b).expect("text")))
    }

    #[tokio::test]
    async fn a_tree_is_answered_from_the_cache_only_at_the_version_this_process_wrote() {
        let cache = WriteCache::new(1 << 20);
        let mut tree = cache.lock(&id("hoa-binh")).await;
        // Nothing is known before the first write.
        cache.at(&mut tree, Some(b"7"));
        assert_eq!(text(&mut tree, &value("a")), None);
        let mut written = known(&[
            ("a", Some("1")),
            ("b", None),
            ("a", Some("2")),
            ("d", Some("4")),
        ]);
        let records = (b"records".to_vec(), Index::of_bytes(7));
        written.push_bucket(Structure::Ids, 3, Some(records.clone()));
        written.push_bucket(Structure::Dossiers, 3, None);
        cache.applied(&mut tree, b"8".to_vec(), written);
        cache.at(&mut tree, Some(b"8"));
        assert_eq!(text(&mut tree, &value("a")), Some(Some("2".to_owned())));
        assert_eq!(
            text(&mut tree, &value("a")),
            None,
            "moved out to be written back"
        );
        assert_eq!(
            text(&mut tree, &value("b")),
            Some(None),
            "known not to exist"
        );
        assert_eq!(text(&mut tree, &value("c")), None, "not cached");
        // A value Redis may no longer hold is dropped, not looked up (nor counted as such).
        tree.forget_value(&value("d"));
        assert_eq!(text(&mut tree, &value("d")), None, "forgotten");
        assert_eq!(tree.take_bucket(Structure::Ids, 3), Some(records));
        assert_eq!(
            tree.take_bucket(Structure::Ids, 3),
            None,
            "moved out to be written back"
        );
        let other = tree.take_bucket(Structure::Ids, 4);
        let emptied = tree.take_bucket(Structure::Dossiers, 3);
        assert_eq!((other, emptied), (None, None));
        // Another writer moved the version: nothing cached is used, even once the version
        // comes back to the one this process wrote (a restore).
        cache.applied(&mut tree, b"8".to_vec(), known(&[("a", Some("2"))]));
        cache.at(&mut tree, Some(b"9"));
        assert_eq!(text(&mut tree, &value("a")), None);
        cache.at(&mut tree, Some(b"8"));
        assert_eq!(text(&mut tree, &value("a")), None);
        cache.at(&mut tree, None);
        assert_eq!(text(&mut tree, &value("a")), None);
        assert_eq!(cache.used.load(Ordering::Relaxed), 0, "nothing held");
        // A tree's lookups are counted in the cache's totals at its next attempt or write.
        cache.at(&mut tree, None);
        let lookups = cache.usage();
        assert_eq!((lookups.hits, lookups.misses), (3, 10));
        // A write whose outcome is not known: what was kept is not used, even at the version
        // this process wrote before.
        cache.applied(&mut tree, b"11".to_vec(), known(&[("a", Some("1"))]));
        cache.forget(&mut tree);
        cache.at(&mut tree, Some(b"11"));
        assert_eq!(text(&mut tree, &value("a")), None);
        assert_eq!(cache.used.load(Ordering::Relaxed), 0, "nothing held");
    }

    #[tokio::test]
    async fn a_budget_of_zero_keeps_nothing_and_the_cache_keeps_to_its_budget() {
        let none = WriteCache::new(0);
        let mut tree = none.lock(&id("hoa-binh")).await;
        none.applied(&mut tree, b"1".to_vec(), known(&[("a", Some("1"))]));
        none.at(&mut tree, Some(b"1"));
        assert_eq!(tree.lookup(&value("a")), None);

        let bucket_bytes = 880 + size_of::<Index>() + ENTRY_OVERHEAD;
        let cache = WriteCache::new(100 * bucket_bytes as u64);
        let buckets = |from: u64| {
            let mut many = Known::default();
            for n in from..from + 80 {
                let bucket = (vec![7u8; 880], Index::of_bytes(880));
                many.push_bucket(Structure::Ids, n, Some(bucket));
            }
            many
        };
        // An idle tree of 80 buckets, then 80 more of another tree: the idle one is dropped.
        let mut idle = cache.lock(&id("son-la")).await;
        cache.at(&mut idle, None);
        cache.applied(&mut idle, b"1".to_vec(), buckets(0));
        drop(idle);
        let mut busy = cache.lock(&id("hoa-binh")).await;
        cache.at(&mut busy, None);
        cache.applied(&mut busy, b"1".to_vec(), buckets(0));
        assert_eq!(cache.used.load(Ordering::Relaxed), 80 * bucket_bytes);
        let mut idle = cache.lock(&id("son-la")).await;
        cache.at(&mut idle, Some(b"1"));
        assert_eq!(idle.take_bucket(Structure::Ids, 0), None, "dropped");
        drop(idle);
        // A tree alone over the budget sheds its own buckets.
        cache.at(&mut busy, Some(b"1"));
        cache.applied(&mut busy, b"2".to_vec(), buckets(80));
        let used = cache.used.load(Ordering::Relaxed);
        assert!(used <= 100 * bucket_bytes, "{used} bytes held");
        assert!(used >= 99 * bucket_bytes, "{used} bytes held");
    }

    #[tokio::test]
    async fn answers_come_from_the_cache_and_the_reply_in_the_order_asked() {
        let cache = WriteCache::new(1 << 20);
        let mut tree = cache.lock(&id("hoa-binh")).await;
        cache.applied(
            &mut tree,
            b"1".to_vec(),
            known(&[("k:b", Some("cached")), ("k:d", None)]),
        );
        cache.at(&mut tree, Some(b"1"));
        let keys = ["k:a", "k:b", "k:c", "k:d"];
        let asked = |tree: &mut Tree, keys: &[&str], read: &mut redis::Cmd| {
            Asked::new(tree, keys.iter().map(|k| (value(k), *k)), read)
        };
        let mut read = redis::cmd("MGET");
        let answered = asked(&mut tree, &keys, &mut read);
        assert!(answered.missed());
        assert_eq!(
            arguments(&read),
            [b"MGET".to_vec(), b"k:a".to_vec(), b"k:c".to_vec()]
        );
        let reply = redis::Value::Array(vec![
            redis::Value::BulkString(b"read a".to_vec()),
            redis::Value::Nil,
        ]);
        assert_eq!(
            answered.answers(Some(reply)),
            Some(vec![
                Some(b"read a".to_vec()),
                Some(b"cached".to_vec()),
                None,
                None
            ])
        );
        // What was asked moved out of the cache: asked again, it is read.
        let answered = asked(&mut tree, &["k:b"], &mut redis::cmd("MGET"));
        assert!(answered.missed());
        // A reply of another length is refused.
        let answered = asked(&mut tree, &keys, &mut redis::cmd("MGET"));
        assert_eq!(answered.answers(None), None);
        // Every key cached: nothing to send.
        let cached = known(&[("k:b", Some("cached")), ("k:d", None)]);
        cache.applied(&mut tree, b"2".to_vec(), cached);
        cache.at(&mut tree, Some(b"2"));
        let answered = asked(&mut tree, &["k:b", "k:d"], &mut redis::cmd("MGET"));
        assert!(!answered.missed());
        assert_eq!(
            answered.answers(None),
            Some(vec![Some(b"cached".to_vec()), None])
        );
    }

    #[test]
    fn keys_and_fields_have_names_of_their_own() {
        let names = [
            Key::of("k"),
            Key::of("kf"),
            Key::field("k", "f"),
            Key::field("k", ""),
            Key::field("kf", ""),
            Key::field("k", "g"),
            Key::field("l", "f"),
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(Key::field("k", "f"), Key::field("k", "f"));
    }

    #[tokio::test]
    async fn a_trees_attempts_take_turns() {
        let cache = Arc::new(WriteCache::new(0));
        let first = cache.lock(&id("hoa-binh")).await;
        let waiting = tokio::spawn({
            let cache = Arc::clone(&cache);
            async move {
                let _tree = cache.lock(&id("hoa-binh")).await;
            }
        });
        // Another tree is not held up.
        drop(cache.lock(&id("son-la")).await);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        waiting
            .await
            .expect("the second attempt runs once the first is done");
    }
}
