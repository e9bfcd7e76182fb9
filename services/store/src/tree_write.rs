//! Counting a batch into Redis: read what the batch needs, plan it with the counting rules of
//! the core, write the plan if nothing changed meanwhile.
//!
//! For each tree of the batch (its keys share the tree's hash slot):
//! 1. one pipeline reads the tree's version and the spreads of its event ids and dossier
//!    states (`spread.rs`);
//! 2. one pipeline reads, with one `MGET`, the buckets the batch's ids and dossiers live in,
//!    the buckets the growth splits and the ones the sweep looks at (each bucket a string of
//!    fixed-width records, `bucket.rs`: Redis only stores bytes, the lookups run here), and
//!    the ordinals of the children the batch counts in their parents' packed roll-ups;
//! 3. [`govpulse_core::counting::plan`] decides, from what was read, every outcome and every
//!    change (the rules live there and only there); a third pipeline reads the counter
//!    records the plan adds to (`counter_record.rs`) and the children's records in their
//!    parents' day roll-ups;
//! 4. the writes (each changed bucket's changed records with a `SETRANGE`, or the bucket
//!    whole; the counter records with the plan added, with one `MSET`; the day roll-ups'
//!    records, the packed roll-ups' increments and the sets) and
//!    the version's new random value apply only if the version is still the one read in 1:
//!    on a single Redis a `MULTI` … `EXEC` on the writer's own leased connection, which
//!    `WATCH`ed the version before reading (`exclusive.rs`); on a cluster one call of a
//!    generic compare-and-apply script ([`CAS_SCRIPT`]: no rule in it). Otherwise another
//!    writer (another aggregate replica) changed the tree meanwhile, and the tree is read and
//!    planned again.
//!
//! Steps 2 and 3 read only what the write cache (`write_cache.rs`) does not hold of the tree:
//! all of it unless the version read in 1 is the one this process's last write of the tree
//! set.
//!
//! So a tree's batch is applied whole or not at all, each (agency, event id) is counted once
//! whatever day it claims, and two replicas writing one tree at once apply their batches as
//! some order of the two would.

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet, hash_map::Entry},
    sync::Arc,
};

use foldhash::{HashMap, HashMapExt};

use govpulse_core::{
    AgencyId, Bucket, Counter, ProcedureId,
    backlog::Dossier,
    counting::{
        Applied, Batch, CounterSums, EventWrite, Plan, ProcedureSums, RejectedWrite, Remembered,
        id_digest, plan,
    },
    freshness::{DayCounts, Seen},
};
use time::{Date, OffsetDateTime};

use crate::{
    StoreError,
    bucket::{Records, Write},
    counter_record,
    exclusive::Lease,
    redis_store::{
        Commands, KEPT, RedisStore, accepted_field, day_counts_bytes, day_counts_from_bytes,
        in_day_list, keeps_procedures, keeps_record, rejected_field, seen_bytes, seen_from_bytes,
        tree_key,
    },
    spread::{Split, Spread},
    write_cache::{Asked, Bucket as CachedBucket, Key, Known, Structure, Tree, read_values},
};

/// The compare-and-apply script: generic, it knows nothing of what it writes.
pub const CAS_SCRIPT: &str = include_str!("cas.lua");

/// How many times a tree is read and planned again when other writers keep changing it.
const ATTEMPTS: usize = 64;

/// Commands per script call are sent as argument count then arguments; a command longer
/// than this many arguments is cut in several (Lua's stack bounds `unpack`).
const MAX_ARGS: usize = 2_000;

/// A packed month roll-up is read and written whole (one `GET`, one `SET` of 8 bytes a
/// slot) when its changed slots are at least 1 / `PACKED_WHOLE_SHARE` of all its slots,
/// else incremented slot by slot (`BITFIELD INCRBY`, one reply a slot, each reply several
/// hundred instructions of the writer's parser). Measured on the unit mix (PERFORMANCE.md,
/// section 2): half of the slots or more, +7% events/s in 20 s runs; a quarter, better in
/// 10 s runs but worse in 20 s ones, where parents have more children and every slot read
/// and written costs Redis and the parser bytes. A parent of 10,000 units takes increments.
const PACKED_WHOLE_SHARE: usize = 2;

/// The bytes of an id record's value: what the id says and counts
/// ([`Remembered::to_bytes`]), and the UTC day after which it may be forgotten.
const ID_VALUE: usize = Remembered::BYTES + 2;

/// The bytes of a dossier record's value: its procedure's digest, the stages counted, the
/// due day and the resolution day (0: none), and the UTC day after which a finished one may
/// be forgotten.
const DOSSIER_VALUE: usize = 11;

/// Days since 1970 (UTC calendar), as stores keep days.
pub(crate) fn day_number(day: Date) -> i32 {
    day.to_julian_day() - EPOCH_JULIAN_DAY
}

/// The Julian day of 1970-01-01, day number 0.
const EPOCH_JULIAN_DAY: i32 = time::macros::date!(1970 - 01 - 01).to_julian_day();

/// The day [`day_number`] numbered.
pub(crate) fn date_of(number: i32) -> Option<Date> {
    Date::from_julian_day(EPOCH_JULIAN_DAY.checked_add(number)?).ok()
}

/// A day as stores keep it: days since 1970 in two bytes, big-endian (enough until 2149;
/// a later day is kept as the last one two bytes hold, so it is never forgotten early).
pub(crate) fn day_bytes(day: i32) -> [u8; 2] {
    u16::try_from(day.max(0)).unwrap_or(u16::MAX).to_be_bytes()
}

/// The day [`day_bytes`] wrote at `at` in `value`.
pub(crate) fn day_at(value: &[u8], at: usize) -> Option<i32> {
    let bytes: [u8; 2] = value.get(at..at + 2)?.try_into().ok()?;
    Some(i32::from(u16::from_be_bytes(bytes)))
}

/// An id record's value: what the id says and counts, and the day after which it may be
/// forgotten.
fn id_value(remembered: Remembered, until: i32) -> [u8; ID_VALUE] {
    let mut value = [0u8; ID_VALUE];
    value[..Remembered::BYTES].copy_from_slice(&remembered.to_bytes());
    value[Remembered::BYTES..].copy_from_slice(&day_bytes(until));
    value
}

/// The UTC day of an instant, as a day number: what expiry compares with today's. From its
/// Unix time (a day is 86,400 of its seconds): the same number as [`day_number`] of its UTC
/// date, without the calendar conversion that cost a write about 90 instructions a record.
fn utc_day(at: OffsetDateTime) -> i32 {
    // Within i32 for some five million years either side of 1970, far past `time`'s range.
    at.unix_timestamp().div_euclid(86_400) as i32
}

fn id_entry(value: &[u8; ID_VALUE]) -> Option<(Remembered, i32)> {
    let remembered = Remembered::from_bytes(&value[..Remembered::BYTES])?;
    Some((remembered, day_at(value, Remembered::BYTES)?))
}

/// A dossier record's value: its procedure's digest (4 bytes, big-endian), the stages
/// counted as bits ([`Dossier::stage_bits`]), the due day of its reception and the day of
/// its resolution (0 when not known: no day that near 1970 is ever counted), and the day
/// after which it may be forgotten unless it is open (its resolution may come late).
fn dossier_value(state: Dossier, until: i32) -> [u8; DOSSIER_VALUE] {
    let day = |day: Option<Date>| day_bytes(day.map_or(0, day_number));
    let mut value = [0u8; DOSSIER_VALUE];
    value[..4].copy_from_slice(&state.procedure().to_be_bytes());
    value[4] = state.stage_bits();
    value[5..7].copy_from_slice(&day(state.due_day()));
    value[7..9].copy_from_slice(&day(state.ended_day()));
    value[9..].copy_from_slice(&day_bytes(until));
    value
}

fn dossier_entry(value: &[u8; DOSSIER_VALUE]) -> Option<(Dossier, i32)> {
    let day = |at: usize| match day_at(value, at)? {
        0 => Some(None),
        n => date_of(n).map(Some),
    };
    let procedure = u32::from_be_bytes(value[..4].try_into().ok()?);
    let state = Dossier::from_parts(procedure, value[4], day(5)?, day(7)?)?;
    Some((state, day_at(value, 9)?))
}

/// A record to write: its digest, its value, the later of its forget day and the one kept
/// (`kept`: `None` when the store has no record of it), and whether it is new.
fn later_of<T>(
    digest: u64,
    value: T,
    until: OffsetDateTime,
    kept: Option<i32>,
) -> (u64, T, i32, bool) {
    let until = utc_day(until);
    match kept {
        Some(kept) => (digest, value, until.max(kept), false),
        None => (digest, value, until, true),
    }
}

fn reply_err(what: &str) -> StoreError {
    StoreError::Unexpected(format!("an unreadable {what}"))
}

/// The buckets of one growing structure of a tree (its ids, or its dossier states) that a
/// write read, as the write leaves them.
#[derive(Debug)]
struct Table<const W: usize> {
    structure: Structure,
    buckets: HashMap<u64, Records<W>>,
    /// Buckets to write back, each at least once (a put each: a sorted set's insert per put
    /// was 2.5% of aggregate's CPU), sorted and deduplicated when written.
    changed: Vec<u64>,
    /// What [`Table::get`] found of each digest it was asked for, so that a bucket is scanned
    /// once per digest rather than at each of the plan's lookup, the kept day's and the write
    /// (a record is found by scanning its bucket). `None` stays true to the end: sweeps and
    /// splits only drop and move records, and a put remembers what it wrote; a found value
    /// is forgotten at each sweep.
    looked_up: RefCell<HashMap<u64, Option<[u8; W]>>>,
}

impl<const W: usize> Table<W> {
    /// The buckets of `structure` as read, for about `lookups` digests to look up (the
    /// batch's events: growing the map as they came rehashed it about nine times a batch).
    fn read(structure: Structure, buckets: HashMap<u64, Records<W>>, lookups: usize) -> Self {
        Table {
            structure,
            buckets,
            changed: Vec::new(),
            looked_up: RefCell::new(HashMap::with_capacity(lookups)),
        }
    }

    /// The value `digest` holds in `bucket`, if the bucket was read and holds it. A digest is
    /// always looked up in the bucket its spread names, so what was found is kept per digest:
    /// a second lookup does not scan again.
    fn get(&self, bucket: u64, digest: u64) -> Option<[u8; W]> {
        *self
            .looked_up
            .borrow_mut()
            .entry(digest)
            .or_insert_with(|| self.buckets.get(&bucket)?.get(digest).copied())
    }

    /// Sets `digest` to `value` in `bucket` (where the spread says it lives).
    fn put(&mut self, bucket: u64, digest: u64, value: [u8; W]) {
        let records = self.buckets.entry(bucket).or_default();
        match self.looked_up.get_mut().insert(digest, Some(value)) {
            // Not in the table when looked up, so not now: no need to scan the bucket.
            Some(None) => records.push(digest, &value),
            _ => records.put(digest, value),
        }
        self.changed.push(bucket);
    }

    /// Drops the records of `bucket` that `keep` does not keep; how many were dropped.
    fn sweep(&mut self, bucket: u64, keep: impl Fn(&[u8; W]) -> bool) -> u64 {
        let Some(records) = self.buckets.get_mut(&bucket) else {
            return 0;
        };
        let (kept, mut dropped) = records.partition(|_, value| keep(value));
        if dropped.is_empty() {
            return 0;
        }
        *records = kept;
        self.forget_found();
        self.changed.push(bucket);
        dropped.len() as u64
    }

    /// Moves the records whose digest has the split's bit set to the bucket it creates.
    fn split(&mut self, split: &Split) {
        let from = self.buckets.remove(&split.from).unwrap_or_default();
        let (stay, moved) = from.partition(|digest, _| digest >> split.bit & 1 == 0);
        self.buckets.insert(split.from, stay);
        match self.buckets.entry(split.to) {
            // The bucket a split creates is new: it is what moved.
            Entry::Vacant(to) => {
                to.insert(moved);
            }
            Entry::Occupied(mut to) => to.get_mut().append(&moved),
        }
        // What was looked up stays true: a split moves records and changes none, and
        // lookups go by digest (forgetting it walked every digest the batch had looked up,
        // at each of the thirty or so splits of a warm batch).
        self.changed.extend([split.from, split.to]);
    }

    /// Forgets the values looked up (a sweep drops records), not the digests known to be
    /// absent.
    fn forget_found(&mut self) {
        self.looked_up.get_mut().retain(|_, found| found.is_none());
    }

    /// The commands that leave the changed buckets as planned (`Records::write`): one
    /// `SETRANGE` of the records changed in each bucket that kept its length, one `MSET` of
    /// the buckets written whole, one `DEL` of those left empty. Every bucket read or
    /// written is then `known` as the write leaves it.
    fn write(mut self, writes: &mut Writes, key: impl Fn(u64) -> String) {
        let changed = sorted_once(std::mem::take(&mut self.changed).into_iter());
        let mut wholes = Vec::new();
        let mut emptied = Vec::new();
        let mut offset = itoa::Buffer::new();
        for bucket in &changed {
            let key = key(*bucket);
            let Some(records) = self.buckets.get_mut(bucket) else {
                emptied.push(key);
                continue;
            };
            match records.write(key.len()) {
                Write::Range(at, bytes) => {
                    let at = offset.format(at).as_bytes();
                    writes.push(&[&b"SETRANGE"[..], key.as_bytes(), at, bytes]);
                }
                Write::Whole(_) => wholes.push((key, *bucket)),
                Write::Delete => emptied.push(key),
            }
        }
        // The buckets written whole, in `MSET`s of at most `MAX_ARGS` arguments, each sized
        // once: grown a bucket at a time, a batch's `MSET` of a hundred kilobytes was copied
        // over and over (1.7% of aggregate's instructions in the province mix, warm).
        for chunk in wholes.chunks(MAX_ARGS / 2) {
            let buckets = || {
                chunk
                    .iter()
                    .filter_map(|(key, bucket)| Some((key, self.buckets.get(bucket)?.as_written())))
            };
            let size: usize = buckets().map(|(key, bytes)| key.len() + bytes.len()).sum();
            let mut mset = redis::Cmd::with_capacity(1 + 2 * chunk.len(), "MSET".len() + size);
            mset.arg("MSET");
            for (key, bytes) in buckets() {
                mset.arg(key).arg(bytes);
            }
            writes.add(mset);
        }
        writes.chunked("DEL", None, &emptied, 1);
        for (bucket, records) in self.buckets {
            let cached = records.into_cached();
            writes.known.push_bucket(self.structure, bucket, cached);
        }
    }
}

/// The keys of one tree. A batch names a thousand buckets twice (read, then written): their
/// names are the tree's prefix and a number, not a `format!` each.
struct TreeKeys<'a> {
    store: &'a RedisStore,
    root: &'a AgencyId,
    /// `P:{root}:e:` and `P:{root}:ds:`.
    id_buckets: String,
    dossier_buckets: String,
}

impl<'a> TreeKeys<'a> {
    fn new(store: &'a RedisStore, root: &'a AgencyId) -> Self {
        TreeKeys {
            store,
            root,
            id_buckets: tree_key(&store.prefix, root, &["e:"], None),
            dossier_buckets: tree_key(&store.prefix, root, &["ds:"], None),
        }
    }
    fn version(&self) -> String {
        tree_key(&self.store.prefix, self.root, &["v"], None)
    }
    fn id_spread(&self) -> String {
        tree_key(&self.store.prefix, self.root, &["ex"], None)
    }
    fn id_bucket(&self, bucket: u64) -> String {
        numbered(&self.id_buckets, bucket)
    }
    fn dossier_spread(&self) -> String {
        tree_key(&self.store.prefix, self.root, &["dsx"], None)
    }
    fn dossier_bucket(&self, bucket: u64) -> String {
        numbered(&self.dossier_buckets, bucket)
    }
}

/// The buckets `buckets` names, each once, in order (a sorted vector: cheaper to build than
/// a sorted set for the thousand buckets of a batch).
fn sorted_once(buckets: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut buckets: Vec<u64> = buckets.collect();
    buckets.sort_unstable();
    buckets.dedup();
    buckets
}

/// `prefix` followed by `n` in decimal.
fn numbered(prefix: &str, n: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n);
    let mut key = String::with_capacity(prefix.len() + digits.len());
    key.push_str(prefix);
    key.push_str(digits);
    key
}

/// A tree's writes as they are built: their commands, and what they leave of the keys the
/// write cache keeps (`known`, each write site says).
struct Writes {
    commands: Apply,
    known: Known,
}

/// How a tree's write is applied: the commands of a transaction (single Redis), or the call
/// of the compare-and-apply script, each command as its number of arguments then its
/// arguments, straight into the call's buffer (cluster).
enum Apply {
    Transaction(redis::Pipeline),
    Script(redis::Cmd),
}

impl Writes {
    /// The commands of a `MULTI` … `EXEC`, to follow a `WATCH` of the version.
    fn transaction() -> Self {
        let mut pipe = redis::pipe();
        pipe.atomic();
        Self::applied_by(Apply::Transaction(pipe))
    }

    /// The call of the script `hash`, applying if `version_key` still holds `version`.
    fn script(hash: &str, version_key: &str, version: &[u8]) -> Self {
        let mut call = redis::cmd("EVALSHA");
        call.arg(hash).arg(1).arg(version_key).arg(version);
        Self::applied_by(Apply::Script(call))
    }

    fn applied_by(commands: Apply) -> Self {
        Writes {
            commands,
            known: Known::default(),
        }
    }

    fn push<A: AsRef<[u8]>>(&mut self, command: &[A]) {
        if command.is_empty() {
            return;
        }
        // Sized once: an MSET carries hundreds of buckets of half a kilobyte.
        let size = command.iter().map(|arg| arg.as_ref().len()).sum();
        let mut cmd = redis::Cmd::with_capacity(command.len(), size);
        for arg in command {
            cmd.arg(arg.as_ref());
        }
        self.add(cmd);
    }

    /// Adds a whole command: to the transaction, or to the script's call as its number of
    /// arguments then its arguments.
    fn add(&mut self, cmd: redis::Cmd) {
        match &mut self.commands {
            Apply::Transaction(pipe) => {
                pipe.add_command(cmd);
            }
            Apply::Script(call) => {
                call.arg(cmd.args_iter().len());
                for arg in cmd.args_iter() {
                    if let redis::Arg::Simple(bytes) = arg {
                        call.arg(bytes);
                    }
                }
            }
        }
    }

    /// `name`, `key` if there is one, then `items`, each `width` arguments, cut so that no
    /// command is longer than [`MAX_ARGS`]; nothing when there are no items.
    fn chunked<A: AsRef<[u8]>>(
        &mut self,
        name: &str,
        key: Option<&str>,
        items: &[A],
        width: usize,
    ) {
        let per = (MAX_ARGS / width).max(1) * width;
        for chunk in items.chunks(per) {
            let head = [name.as_bytes()].into_iter().chain(key.map(str::as_bytes));
            let command: Vec<&[u8]> = head.chain(chunk.iter().map(AsRef::as_ref)).collect();
            self.push(&command);
        }
    }

    /// The same for items that `write` writes as their `width` arguments straight into the
    /// command (a record, a field, an ordinal written in place, not collected first: the unit
    /// mix writes about ten arguments per event); nothing when there are no items, and
    /// nothing more once `write` fails. `bytes` is about what the items' arguments hold in
    /// all: each command is sized once for its share (grown argument by argument, the unit
    /// mix's `MSET` of 400 KB of record lists was copied over and over).
    fn items<I>(
        &mut self,
        name: &str,
        key: Option<&str>,
        width: usize,
        bytes: usize,
        items: impl IntoIterator<Item = I, IntoIter: ExactSizeIterator>,
        mut write: impl FnMut(&mut redis::Cmd, I) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let per = (MAX_ARGS / width).max(1);
        let mut items = items.into_iter();
        let count = items.len();
        let head = name.len() + key.map_or(0, str::len);
        while items.len() > 0 {
            let taken = items.len().min(per);
            let share = bytes.saturating_mul(taken) / count.max(1);
            let mut cmd = redis::Cmd::with_capacity(2 + taken * width, head + share);
            cmd.arg(name);
            if let Some(key) = key {
                cmd.arg(key);
            }
            for item in items.by_ref().take(taken) {
                write(&mut cmd, item)?;
            }
            self.add(cmd);
        }
        Ok(())
    }
}

fn text(s: impl ToString) -> Vec<u8> {
    s.to_string().into_bytes()
}

impl RedisStore {
    /// Applies the events of one tree and counts its rejections, reading, planning and
    /// writing again while other writers change the tree meanwhile; one outcome per event,
    /// in order.
    pub(crate) async fn apply_tree(
        &self,
        root: &AgencyId,
        batch: &[EventWrite],
        rejected: &[RejectedWrite],
    ) -> Result<Vec<Applied>, StoreError> {
        let batch = Batch::new(batch).keeping(KEPT);
        let mut tree = self.write_cache.lock(root).await;
        for _ in 0..ATTEMPTS {
            if let Some(outcomes) = self.try_tree(&mut tree, root, &batch, rejected).await? {
                return Ok(outcomes);
            }
        }
        Err(StoreError::Unexpected(format!(
            "tree {root} changed under {ATTEMPTS} attempts in a row to count a batch"
        )))
    }

    /// One attempt: `None` when the tree changed between the reads and the write.
    async fn try_tree(
        &self,
        tree: &mut Tree,
        root: &AgencyId,
        batch: &Batch<'_>,
        rejected: &[RejectedWrite],
    ) -> Result<Option<Vec<Applied>>, StoreError> {
        let keys = TreeKeys::new(self, root);
        let now = OffsetDateTime::now_utc();
        let today = utc_day(now);

        // On a single Redis, a connection of this writer's own, watching the version from
        // before the first read (a transaction then writes only if nobody wrote since).
        let mut lease = match &self.writers {
            Some(writers) => Some(writers.lease().await?),
            None => None,
        };

        // 1. The version and the spreads.
        let mut first = Commands::default();
        if lease.is_some() {
            first.push(root, redis::cmd("WATCH").arg(keys.version()).clone());
        }
        first.push(
            root,
            redis::cmd("MGET")
                .arg(keys.version())
                .arg(keys.id_spread())
                .arg(keys.dossier_spread())
                .clone(),
        );
        let replies = match (self.read(&mut lease, first.clone()).await, &self.writers) {
            // An idle connection may have died with its server since its last use (a
            // restart, a failover): nothing was written yet, so read again on a new one.
            (Err(StoreError::Redis(_)), Some(writers)) => {
                lease = Some(writers.lease_new().await?);
                self.read(&mut lease, first).await?
            }
            (replies, _) => replies?,
        };
        let read: Vec<Option<Vec<u8>>> = match replies.into_iter().last() {
            Some(reply) => redis::from_redis_value(reply)?,
            None => return Err(reply_err("first read")),
        };
        let [version, id_spread, dossier_spread] =
            <[Option<Vec<u8>>; 3]>::try_from(read).map_err(|_| reply_err("version and spreads"))?;
        let spread = |stored: Option<Vec<u8>>| {
            let stored = stored.and_then(|b| String::from_utf8(b).ok());
            Spread::decode(stored.as_deref()).map_err(StoreError::Unexpected)
        };
        let (id_spread, dossier_spread) = (spread(id_spread)?, spread(dossier_spread)?);
        // What this process holds of the tree, if the version is the one it last wrote.
        self.write_cache.at(tree, version.as_deref());

        // 2. What the batch needs to read: each event's id, and each dossier, in the bucket
        // the spread read says; the buckets the growth splits; the one the sweep looks at.
        let batch_size = batch.events().len() as u64;
        let (id_splits, id_grown) = id_spread.grow_to(id_spread.entries + batch_size);
        let (dossier_splits, dossier_grown) =
            dossier_spread.grow_to(dossier_spread.entries + batch_size);
        let id_sweep = id_spread.sweep % id_spread.buckets();
        let dossier_sweep = dossier_spread.sweep % dossier_spread.buckets();
        // The ids the batch's corrections name are read too: their records change.
        let targets = batch.events().iter().filter_map(|event| {
            let target = event.corrects.as_ref()?;
            Some(id_spread.bucket(id_digest(&event.agency, target)))
        });
        let id_reads = sorted_once(
            batch
                .iter()
                .map(|(_, digests)| id_spread.bucket(digests.id))
                .chain(targets)
                .chain(id_splits.iter().map(|s| s.from))
                .chain([id_sweep]),
        );
        let dossier_reads = sorted_once(
            batch
                .iter()
                .map(|(_, digests)| dossier_spread.bucket(digests.dossier))
                .chain(dossier_splits.iter().map(|s| s.from))
                .chain([dossier_sweep]),
        );
        // Each agency's parent, and the children counted in their parents' packed roll-ups.
        let parent_of = parents_of(batch.events());
        let mut parents: HashMap<&AgencyId, Vec<&AgencyId>> = HashMap::new();
        for (child, parent) in &parent_of {
            parents.entry(parent).or_default().push(child);
        }
        // What was seen of the batch's agencies, to keep the latest, and their events per day
        // (section 6c): the rejected ones only of the agencies the batch has rejections for,
        // so a batch without reads and writes none.
        let reporters =
            each_once(chain_runs(batch.events().iter().map(|e| &e.chain)).flat_map(|c| c.iter()));
        let rejecters =
            each_once(chain_runs(rejected.iter().map(|r| &r.chain)).flat_map(|c| c.iter()));
        let mut second = Commands::default();
        let seen_key = self.seen_key(root);
        let mut seen_read = redis::cmd("HMGET");
        seen_read.arg(&seen_key);
        let seen_fields = (reporters
            .iter()
            .map(|agency| agency.as_str().as_bytes().to_vec()))
        .chain(reporters.iter().map(|agency| accepted_field(agency)))
        .chain(rejecters.iter().map(|agency| rejected_field(agency)));
        let seen_fields = seen_fields.map(|field| (Key::field(&seen_key, &field), field));
        let seen_asked = Asked::new(tree, seen_fields, &mut seen_read);
        if seen_asked.missed() {
            second.push(root, seen_read);
        }
        // The buckets the write cache holds are taken out of it; the others are read with one
        // `MGET` (a bucket's key, a thousand a batch, is formatted only when it is read).
        let mut mget = redis::cmd("MGET");
        let mut buckets_missed = 0;
        let ids = id_reads.iter().map(|b| (Structure::Ids, *b));
        let dossiers = dossier_reads.iter().map(|b| (Structure::Dossiers, *b));
        let buckets_cached: Vec<Option<CachedBucket>> = ids
            .chain(dossiers)
            .map(|(structure, b)| {
                let cached = tree.take_bucket(structure, b);
                if cached.is_none() {
                    mget.arg(match structure {
                        Structure::Ids => keys.id_bucket(b),
                        Structure::Dossiers => keys.dossier_bucket(b),
                    });
                    buckets_missed += 1;
                }
                cached
            })
            .collect();
        if buckets_missed > 0 {
            second.push(root, mget);
        }
        // The ordinals lists: each one's creation mark, and its entries from the last one this
        // process knows (`OrdinalCache`): a few entries a batch, where asking the parent's
        // `…:ord` hash for every child cost Redis a scan of its listpack per child (150 µs a
        // batch of the unit mix) and the writer a reply per child.
        let mut lists = Vec::with_capacity(parents.len());
        for (parent, children) in &parents {
            let list = format!("{}ids", self.children_prefix(root, parent));
            let from = self.ordinals.next_read(&list);
            second.push(root, redis::cmd("LRANGE").arg(&list).arg(0).arg(0).clone());
            second.push(
                root,
                redis::cmd("LRANGE").arg(&list).arg(from).arg(-1).clone(),
            );
            lists.push((*parent, children, list, from));
        }
        let mut replies = self.read(&mut lease, second).await?.into_iter();

        // A record that does not read (none is ever written so) is taken as none: the batch's
        // write replaces it, and only its freshness history is lost, never a count.
        let mut seen = answered(seen_asked, &mut replies, "activity")?;
        let mut accepted = seen.split_off(reporters.len().min(seen.len()));
        let rejections = accepted.split_off(reporters.len().min(accepted.len()));
        let known_seen: HashMap<&AgencyId, Seen> = reporters
            .iter()
            .zip(seen)
            .filter_map(|(agency, value)| Some((*agency, seen_from_bytes(&value?)?)))
            .collect();
        let activity = KnownActivity {
            seen: known_seen,
            accepted: known_day_counts(&reporters, accepted),
            rejected: known_day_counts(&rejecters, rejections),
        };
        let reply = match buckets_missed {
            0 => None,
            _ => Some(replies.next().ok_or_else(|| reply_err("buckets"))?),
        };
        let mut buckets_read = read_values(reply, buckets_missed)
            .ok_or_else(|| reply_err("buckets"))?
            .into_iter();
        let mut buckets_cached = buckets_cached.into_iter();
        fn table<const W: usize>(
            structure: Structure,
            reads: &[u64],
            cached: &mut impl Iterator<Item = Option<CachedBucket>>,
            read: &mut impl Iterator<Item = Option<Vec<u8>>>,
            lookups: usize,
        ) -> Result<Table<W>, StoreError> {
            let mut buckets = HashMap::with_capacity(reads.len());
            for bucket in reads {
                let records = match cached.next().ok_or_else(|| reply_err("bucket read"))? {
                    Some(cached) => Records::cached(cached),
                    None => {
                        let bytes = read.next().ok_or_else(|| reply_err("buckets"))?;
                        Records::from_stored(bytes.unwrap_or_default())
                            .ok_or_else(|| reply_err("bucket"))?
                    }
                };
                buckets.insert(*bucket, records);
            }
            Ok(Table::read(structure, buckets, lookups))
        }
        let (cached, read) = (&mut buckets_cached, &mut buckets_read);
        let lookups = batch.events().len();
        let mut ids: Table<ID_VALUE> = table(Structure::Ids, &id_reads, cached, read, lookups)?;
        let mut dossiers: Table<DOSSIER_VALUE> =
            table(Structure::Dossiers, &dossier_reads, cached, read, lookups)?;
        let mut next = || replies.next().ok_or_else(|| reply_err("second read"));
        let mut ordinals: HashMap<(&AgencyId, &AgencyId), usize> = HashMap::new();
        let mut list_lengths: HashMap<&AgencyId, usize> = HashMap::new();
        // Lists that are not what this process cached (flushed and created again, restored
        // from a backup): read whole next.
        let mut unknown = Vec::new();
        for (parent, children, list, from) in lists {
            let created: Vec<Vec<u8>> = redis::from_redis_value(next()?)?;
            let added: Vec<String> = redis::from_redis_value(next()?)?;
            let len = from + added.len();
            let created = created.first().map(Vec::as_slice);
            let read = children.iter().copied();
            match self.ordinals.update(&list, created, from, added, read) {
                Some(known) => {
                    list_lengths.insert(parent, if created.is_some() { len } else { 0 });
                    known_ordinals(&mut ordinals, parent, children, known);
                }
                None => unknown.push((parent, children, list)),
            }
        }
        if !unknown.is_empty() {
            let mut whole = Commands::default();
            for (_, _, list) in &unknown {
                whole.push(root, redis::cmd("LRANGE").arg(list).arg(0).arg(-1).clone());
            }
            let mut replies = self.read(&mut lease, whole).await?.into_iter();
            for (parent, children, list) in unknown {
                let reply = replies.next().ok_or_else(|| reply_err("ordinals list"))?;
                let all: Vec<String> = redis::from_redis_value(reply)?;
                list_lengths.insert(parent, all.len());
                let read = children.iter().copied();
                let known = self.ordinals.update_whole(&list, all, read)?;
                known_ordinals(&mut ordinals, parent, children, known);
            }
        }

        // 3. The plan, by the core's rules. An id past its day is forgotten already.
        // (The lookups borrow the tables: they end before the next await.)
        let (planned, dossier_writes, id_writes) = {
            let kept_id = |digest: u64| {
                ids.get(id_spread.bucket(digest), digest)
                    .as_ref()
                    .and_then(id_entry)
                    .filter(|(_, until)| *until >= today)
            };
            let known_id = |digest: u64| kept_id(digest).map(|(remembered, _)| remembered);
            let kept_dossier = |digest: u64| {
                dossiers
                    .get(dossier_spread.bucket(digest), digest)
                    .as_ref()
                    .and_then(dossier_entry)
            };
            let known_dossier = |digest: u64| kept_dossier(digest).map(|(state, _)| state);
            let planned = plan(
                batch,
                rejected,
                |_, _, digest| known_id(digest),
                |_, _, digest| known_dossier(digest),
            );
            // Each changed dossier with the later of its kept day and the batch's, and whether it
            // is new to the store.
            let dossier_writes: Vec<(u64, Dossier, i32, bool)> = planned
                .dossiers
                .iter()
                .map(|write| {
                    let kept = kept_dossier(write.digest).map(|(_, until)| until);
                    later_of(write.digest, write.state, write.remember_until, kept)
                })
                .collect();
            // The same for the ids.
            let id_writes: Vec<(u64, Remembered, i32, bool)> = planned
                .ids
                .iter()
                .map(|write| {
                    let kept = kept_id(write.digest).map(|(_, until)| until);
                    later_of(write.digest, write.remembered, write.remember_until, kept)
                })
                .collect();
            (planned, dossier_writes, id_writes)
        };
        let new_dossiers = dossier_writes.iter().filter(|(.., new)| *new).count() as u64;
        let new_ids = id_writes.iter().filter(|(.., new)| *new).count() as u64;

        // 4. The writes: the sweep, the growth's splits (in order), then the new records.
        let swept_ids = ids.sweep(id_sweep, |value| {
            id_entry(value).is_some_and(|(_, until)| until >= today)
        });
        for split in &id_splits {
            ids.split(split);
        }
        for (digest, remembered, until, _) in &id_writes {
            ids.put(
                id_grown.bucket(*digest),
                *digest,
                id_value(*remembered, *until),
            );
        }
        // A finished dossier is forgotten after its time; an open one never is.
        let swept_dossiers = dossiers.sweep(dossier_sweep, |value| {
            dossier_entry(value).is_some_and(|(state, until)| state.is_open() || until >= today)
        });
        for split in &dossier_splits {
            dossiers.split(split);
        }
        for (digest, state, until, _) in &dossier_writes {
            dossiers.put(
                dossier_grown.bucket(*digest),
                *digest,
                dossier_value(*state, *until),
            );
        }
        // How many slots each parent's packed roll-ups will have: its children counted
        // before, and those this batch counts for the first time.
        let slots: HashMap<&AgencyId, usize> = parents
            .iter()
            .map(|(parent, children)| {
                let new = children
                    .iter()
                    .filter(|child| !ordinals.contains_key(&(*parent, **child)))
                    .count();
                let before = list_lengths.get(parent).copied().unwrap_or(0).max(1);
                (*parent, before + new)
            })
            .collect();
        // The counter records the plan adds to (its due-day buckets are known only now),
        // read under the same version: written back with the plan added.
        let records = self
            .read_records(&mut lease, tree, root, &planned, parent_of, &slots)
            .await?;
        let left_online = self
            .online_left(&mut lease, root, &planned, &records)
            .await?;

        let mut writes = match lease {
            Some(_) => Writes::transaction(),
            None => Writes::script(
                self.cas.get_hash(),
                &keys.version(),
                version.as_deref().unwrap_or_default(),
            ),
        };
        ids.write(&mut writes, |b| keys.id_bucket(b));
        dossiers.write(&mut writes, |b| keys.dossier_bucket(b));
        let next_spread = |grown: Spread, before: Spread, added: u64, swept: u64| Spread {
            entries: before.entries + added - swept.min(before.entries + added),
            sweep: before.sweep + 1,
            ..grown
        };
        writes.push(&[
            "MSET".to_owned(),
            keys.id_spread(),
            next_spread(id_grown, id_spread, new_ids, swept_ids).encode(),
            keys.dossier_spread(),
            next_spread(dossier_grown, dossier_spread, new_dossiers, swept_dossiers).encode(),
        ]);
        self.write_counts(
            root,
            &planned,
            records,
            &mut ordinals,
            &list_lengths,
            &mut writes,
        )?;
        self.write_online(root, &planned, left_online, tree, &mut writes)?;
        self.write_activity(root, &planned, &activity, &mut writes);
        // The tree's new version: random, so that no other history of the tree (a restored
        // backup, a flush) reaches it again (`write_cache.rs`); an integer, which the
        // writers of before (`INCR`) can still move on during a rolling upgrade.
        let next_version = text(rand::random::<u64>() >> 2);
        let version_key = keys.version();
        writes.push(&[b"SET", version_key.as_bytes(), &next_version]);

        // 5. Compare and apply: the transaction runs only if the version is still the one
        // watched; the script (loaded first if this Redis does not have it: a new or
        // restarted server, a failover) only if it still holds the one read.
        let Writes { commands, known } = writes;
        match self.compare_and_apply(commands, lease).await {
            Ok(true) => {
                self.write_cache.applied(tree, next_version, known);
                Ok(Some(planned.outcomes))
            }
            Ok(false) => Ok(None),
            // Whether it applied, or applied in part (Redis does not undo a transaction or a
            // script that fails part-way), is not known: nothing cached of the tree is used.
            Err(error) => {
                self.write_cache.forget(tree);
                Err(error)
            }
        }
    }

    /// Sends a tree's write: whether it applied (the version was still the one read).
    async fn compare_and_apply(
        &self,
        commands: Apply,
        lease: Option<Lease<'_>>,
    ) -> Result<bool, StoreError> {
        match (commands, lease) {
            (Apply::Transaction(pipe), Some(mut lease)) => {
                let done: Option<Vec<redis::Value>> =
                    pipe.query_async(&mut lease.connection).await?;
                lease.release();
                Ok(done.is_some())
            }
            (Apply::Script(call), _) => {
                let mut connection = self.connection.clone();
                let applied: i64 = match call.query_async(&mut connection).await {
                    Err(e)
                        if e.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                    {
                        self.cas.load_async(&mut connection).await?;
                        call.query_async(&mut connection).await?
                    }
                    other => other?,
                };
                Ok(applied == 1)
            }
            (Apply::Transaction(_), None) => Err(StoreError::Unexpected(
                "a transaction without its connection".to_owned(),
            )),
        }
    }

    /// Runs a read: on the writer's own connection when it has one (its `WATCH` in force),
    /// else on the shared one.
    async fn read(
        &self,
        lease: &mut Option<Lease<'_>>,
        commands: Commands<'_>,
    ) -> Result<Vec<redis::Value>, StoreError> {
        match lease {
            Some(lease) => commands.run_on(&mut lease.connection).await,
            None => commands.run(&self.connection).await,
        }
    }

    /// The online sets that lose a procedure: where corrections took online receptions of a
    /// procedure back (a negative count in the plan), a set keeps the procedure only if one
    /// remains in its bucket. A day keeps it while the day's procedure record, with the plan
    /// added, still counts an online reception of it (on one day a procedure is provided one
    /// way, so each counted is one of the set's); a month, quarter or year while one of its
    /// parts (days, months, quarters) keeps it, as the part's set held it before the batch
    /// (one `SISMEMBER` each, read under the same version) with the batch's changes. Returns
    /// (set, procedure) to remove; no read at all for a batch without such a correction.
    async fn online_left<'a>(
        &self,
        lease: &mut Option<Lease<'_>>,
        root: &AgencyId,
        planned: &'a Plan<'_>,
        records: &CounterRecords<'_>,
    ) -> Result<Vec<(String, &'a ProcedureId)>, StoreError> {
        type Slot<'k> = (&'k AgencyId, Bucket, &'k ProcedureId);
        let mut emptied: Vec<Slot> = Vec::new();
        for ((agency, bucket, procedure), n) in &planned.online {
            let Bucket::Day(day) = bucket else { continue };
            if *n < 0 && records.received_online(self, root, agency, *day, procedure)? == 0 {
                emptied.push((agency, *bucket, procedure));
            }
        }
        if emptied.is_empty() {
            return Ok(Vec::new());
        }
        // What the sets of every part of every bucket above an emptied day held.
        let mut asked: BTreeSet<Slot> = BTreeSet::new();
        for (agency, day, procedure) in &emptied {
            for bucket in &Bucket::containing(day.first_day())[1..] {
                asked.extend(bucket.parts().into_iter().map(|p| (*agency, p, *procedure)));
            }
        }
        let mut commands = Commands::default();
        for (agency, bucket, procedure) in &asked {
            let mut sismember = redis::cmd("SISMEMBER");
            sismember
                .arg(self.online_key(root, agency, *bucket))
                .arg(procedure.as_str());
            commands.push(root, sismember);
        }
        let replies = self.read(lease, commands).await?;
        if replies.len() != asked.len() {
            return Err(reply_err("online sets"));
        }
        let mut held: BTreeMap<Slot, bool> = BTreeMap::new();
        for (slot, reply) in asked.into_iter().zip(replies) {
            held.insert(slot, redis::from_redis_value(reply)?);
        }
        // From the days up: a bucket keeps the procedure if a part gains it in this batch,
        // or held it and keeps it.
        let mut gone: BTreeSet<Slot> = emptied.iter().copied().collect();
        for level in 1..4 {
            for (agency, day, procedure) in &emptied {
                let bucket = Bucket::containing(day.first_day())[level];
                let kept = bucket.parts().into_iter().any(|part| {
                    let slot = (*agency, part, *procedure);
                    let gains = planned
                        .online
                        .get(&(*agency, part, *procedure))
                        .is_some_and(|n| *n > 0);
                    gains || (held.get(&slot).copied().unwrap_or(false) && !gone.contains(&slot))
                });
                if !kept {
                    gone.insert((agency, bucket, procedure));
                }
            }
        }
        Ok(gone
            .into_iter()
            .map(|(agency, bucket, procedure)| (self.online_key(root, agency, bucket), procedure))
            .collect())
    }

    /// Reads the counter records `planned` adds to: every (agency, bucket) it counts in, and
    /// for each day its children's records in their parent's day roll-up (`parent_of`: each
    /// agency's parent in the batch's chains).
    async fn read_records<'a>(
        &self,
        lease: &mut Option<Lease<'_>>,
        cached: &mut Tree,
        root: &AgencyId,
        planned: &'a Plan<'_>,
        parent_of: HashMap<&'a AgencyId, &'a AgencyId>,
        slots: &HashMap<&AgencyId, usize>,
    ) -> Result<CounterRecords<'a>, StoreError> {
        if planned.counters.is_empty() {
            return Ok(CounterRecords::default());
        }
        let mut own = Vec::with_capacity(planned.counters.len());
        // An agency below the root keeps each day in one record list, its own record and its
        // procedures' together (`in_day_list`): what the plan adds to each, per (agency, day).
        let mut day_lists: HashMap<(&AgencyId, Date), DayAdded> = HashMap::new();
        let mut days: BTreeMap<(&AgencyId, Bucket), ChildRecords> = BTreeMap::new();
        // Packed roll-up increments, per (parent, month, counter): (child, count). Only
        // months are packed: a quarter's or a year's roll-up is the sum of its months'
        // (`read_children`), so each child and counter costs one increment, not three.
        let mut increments: HashMap<RollUp, Vec<(&AgencyId, i64)>> = HashMap::new();
        for ((agency, bucket), sums) in &planned.counters {
            if let (true, Bucket::Day(day)) = (in_day_list(root, agency, *bucket), bucket) {
                day_lists.entry((agency, *day)).or_default().own = Some(sums);
            } else if keeps_record(root, agency, *bucket) {
                own.push((self.counters_key(root, agency, *bucket), sums, None));
            }
            match (parent_of.get(agency), bucket) {
                (Some(parent), Bucket::Day(_)) => {
                    days.entry((parent, *bucket))
                        .or_default()
                        .push((agency, *sums, None));
                }
                (Some(parent), Bucket::Month(..)) => {
                    for (counter, n) in sums.nonzero() {
                        increments
                            .entry((parent, *bucket, counter))
                            .or_default()
                            .push((agency, n));
                    }
                }
                _ => {}
            }
        }
        // A roll-up is written whole when the write cache holds it (not read), or, read here
        // first, when the cache is current (a tree this process alone writes: its next
        // batches find the roll-up there) or half or more of its slots change; the others
        // take increments (`PACKED_WHOLE_SHARE`). A whole roll-up costs Redis and the writer
        // 8 bytes a slot, an increment a command's arguments and a reply that the writer
        // parses (several hundred instructions): with the cache, whole costs less.
        let mut packed = Vec::with_capacity(increments.len());
        let mut whole = redis::cmd("MGET");
        for ((parent, bucket, counter), children) in increments {
            let key = self.children_key(root, parent, bucket, counter);
            let slots = slots.get(parent).copied().unwrap_or(usize::MAX);
            let changes_half = children.len().saturating_mul(PACKED_WHOLE_SHARE) >= slots;
            let (write, read) = match cached.lookup(&Key::of(&key)) {
                Some(stored) => (PackedWrite::Whole(stored), false),
                None if cached.current() || changes_half => {
                    whole.arg(&key);
                    (PackedWrite::Whole(None), true)
                }
                None => (PackedWrite::Increments, false),
            };
            packed.push(PackedRollUp {
                key,
                parent,
                children,
                write,
                read,
            });
        }
        // The procedures: an agency below the root keeps them in its days' record lists, read
        // with the counter records; the root one hash per bucket (its drill-down of a year
        // must not read a year of days).
        let mut by_bucket: BTreeMap<Bucket, BTreeMap<&ProcedureId, CounterSums>> = BTreeMap::new();
        for ((agency, day), sums) in &planned.procedures {
            if *agency == root {
                for bucket in Bucket::containing(*day)
                    .into_iter()
                    .filter(|b| keeps_procedures(*b))
                {
                    let kept = by_bucket.entry(bucket).or_default();
                    for (procedure, sums) in sums {
                        kept.entry(procedure).or_default().add_all(sums);
                    }
                }
            } else {
                day_lists.entry((agency, *day)).or_default().procedures = Some(sums);
            }
        }
        let mut lists = Vec::with_capacity(day_lists.len());
        // A day counted before 2026-12-06 kept the agency's record in a key of its own, which
        // reads add to the list's: a batch that takes counts back (corrections) reads it too,
        // moves it into the list and deletes it, since what it takes back may be there.
        let mut legacy = redis::cmd("MGET");
        for ((agency, day), added) in day_lists {
            let key = self.procedure_list_key(root, agency, day);
            let takes_back = added
                .own
                .is_some_and(|sums| sums.nonzero().any(|(_, n)| n < 0));
            let legacy_key = takes_back.then(|| {
                let key = self.counters_key(root, agency, Bucket::Day(day));
                legacy.arg(&key);
                key
            });
            lists.push(DayList {
                key,
                added,
                stored: None,
                legacy: legacy_key.map(|key| (key, None)),
            });
        }
        let mut commands = Commands::default();
        let mut mget = redis::cmd("MGET");
        let record_keys = (own.iter().map(|(key, ..)| key)).chain(lists.iter().map(|l| &l.key));
        let record_keys = record_keys.map(|key| (Key::of(key), key));
        let records_asked = Asked::new(cached, record_keys, &mut mget);
        if records_asked.missed() {
            commands.push(root, mget);
        }
        let read_legacy = lists.iter().any(|list| list.legacy.is_some());
        if read_legacy {
            commands.push(root, legacy);
        }
        let read_whole = packed.iter().any(|rollup| rollup.read);
        if read_whole {
            commands.push(root, whole);
        }
        // Fields of a hash, through the cache: (the fields' names, their hash's key) each.
        let mut ask_fields = |key: &str, fields: Vec<&str>| {
            let mut hmget = redis::cmd("HMGET");
            hmget.arg(key);
            let named = fields
                .into_iter()
                .map(|field| (Key::field(key, field), field));
            let asked = Asked::new(&mut *cached, named, &mut hmget);
            if asked.missed() {
                commands.push(root, hmget);
            }
            asked
        };
        let mut days_asked = Vec::with_capacity(days.len());
        for ((parent, day), children) in &days {
            let key = self.day_children_key(root, parent, *day);
            let fields = children.iter().map(|(child, ..)| child.as_str()).collect();
            days_asked.push(ask_fields(&key, fields));
        }
        let mut procedures = Vec::with_capacity(by_bucket.len());
        let mut procedures_asked = Vec::with_capacity(by_bucket.len());
        for (bucket, sums) in by_bucket {
            let key = self.root_procedures_key(root, bucket);
            let fields = sums.keys().map(|procedure| procedure.as_str()).collect();
            procedures_asked.push(ask_fields(&key, fields));
            procedures.push((
                key,
                sums.into_iter().map(|(p, sums)| (p, sums, None)).collect(),
            ));
        }
        let mut replies = self.read(lease, commands).await?.into_iter();
        let mut stored = answered(records_asked, &mut replies, "counter records")?.into_iter();
        for ((_, _, record), stored) in own.iter_mut().zip(stored.by_ref()) {
            *record = stored;
        }
        for (list, stored) in lists.iter_mut().zip(stored) {
            list.stored = stored;
        }
        let mut next = || replies.next().ok_or_else(|| reply_err("counter records"));
        if read_legacy {
            let read: Vec<Option<Vec<u8>>> = redis::from_redis_value(next()?)?;
            let mut read = read.into_iter();
            for (_, record) in lists.iter_mut().filter_map(|list| list.legacy.as_mut()) {
                *record = read.next().ok_or_else(|| reply_err("day records"))?;
            }
        }
        if read_whole {
            let read: Vec<Option<Vec<u8>>> = redis::from_redis_value(next()?)?;
            let mut read = read.into_iter();
            for rollup in packed.iter_mut().filter(|rollup| rollup.read) {
                if let PackedWrite::Whole(stored) = &mut rollup.write {
                    *stored = read.next().ok_or_else(|| reply_err("packed roll-ups"))?;
                }
            }
        }
        for (children, asked) in days.values_mut().zip(days_asked) {
            fill_records(children, answered(asked, &mut replies, "day roll-up")?)?;
        }
        for ((_, fields), asked) in procedures.iter_mut().zip(procedures_asked) {
            fill_records(fields, answered(asked, &mut replies, "procedure records")?)?;
        }
        Ok(CounterRecords {
            parent_of,
            own,
            days,
            lists,
            procedures,
            packed,
        })
    }

    /// The counters, roll-ups, online sets and new ordinals the plan adds: the counter records
    /// as read with the plan added, the longer roll-ups as increments.
    fn write_counts<'a>(
        &self,
        root: &AgencyId,
        planned: &'a Plan<'_>,
        records: CounterRecords<'a>,
        ordinals: &mut HashMap<(&'a AgencyId, &'a AgencyId), usize>,
        list_lengths: &HashMap<&'a AgencyId, usize>,
        writes: &mut Writes,
    ) -> Result<(), StoreError> {
        let added = |stored: Option<&[u8]>, sums: &CounterSums, key: &dyn Fn() -> String| {
            counter_record::add(stored, sums.nonzero()).ok_or_else(|| {
                StoreError::Unexpected(format!(
                    "{} is not a counter record: the batch is not counted into it",
                    key()
                ))
            })
        };
        let parent_of = records.parent_of;
        // What the records' and roll-ups' writes leave, for the write cache (apart from
        // `writes`, which the commands' builders borrow).
        let mut known = Known::default();
        let bytes = records
            .own
            .iter()
            .map(|(key, _, stored)| record_argument_bytes(key, stored.as_deref()))
            .sum();
        writes.items(
            "MSET",
            None,
            2,
            bytes,
            records.own,
            |cmd, (key, sums, stored)| {
                let record = added(stored.as_deref(), sums, &|| key.clone())?;
                cmd.arg(&key).arg(record.as_slice());
                known.push(Key::of(&key), Some(record));
                Ok(())
            },
        )?;
        for ((parent, day), children) in &records.days {
            let key = self.day_children_key(root, parent, *day);
            let bytes = children
                .iter()
                .map(|(child, _, stored)| record_argument_bytes(child.as_str(), stored.as_deref()))
                .sum();
            writes.items(
                "HSET",
                Some(&key),
                2,
                bytes,
                children,
                |cmd, (child, sums, stored)| {
                    let record = added(stored.as_deref(), sums, &|| format!("{key} {child}"))?;
                    cmd.arg(child.as_str()).arg(record.as_slice());
                    known.push(Key::field(&key, child.as_str()), Some(record));
                    Ok(())
                },
            )?;
        }
        for (key, procedures) in &records.procedures {
            let mut fields = Vec::with_capacity(2 * procedures.len());
            let mut emptied = Vec::new();
            for (procedure, sums, stored) in procedures {
                let record = added(stored.as_deref(), sums, &|| format!("{key} {procedure}"))?;
                let field = Key::field(key, procedure.as_str());
                // A procedure whose counts corrections took back to nothing leaves the hash.
                if record.is_empty() {
                    emptied.push(text(procedure));
                    known.push(field, None);
                } else {
                    fields.extend([text(procedure), record.clone()]);
                    known.push(field, Some(record));
                }
            }
            writes.chunked("HSET", Some(key), &fields, 2);
            writes.chunked("HDEL", Some(key), &emptied, 1);
        }
        let moved: Vec<&String> = records
            .lists
            .iter()
            .filter_map(|list| match &list.legacy {
                Some((key, Some(_))) => Some(key),
                _ => None,
            })
            .collect();
        // A list grows by its entries' records, and by an entry for a procedure new to it.
        let bytes = records
            .lists
            .iter()
            .map(|list| {
                let procedures = list.added.procedures.map_or(0, |added| added.len());
                list.key.len()
                    + list.stored.as_ref().map_or(0, Vec::len)
                    + (1 + procedures) * (RECORD_GROWTH + 32)
            })
            .sum();
        writes.items("MSET", None, 2, bytes, &records.lists, |cmd, list| {
            let stored = list.with_plan()?;
            cmd.arg(&list.key).arg(stored.as_slice());
            known.push(Key::of(&list.key), Some(stored));
            Ok(())
        })?;
        writes.chunked("DEL", None, &moved, 1);
        // Ordinals for children counted for the first time: after the list's last.
        let mut lengths: HashMap<&AgencyId, usize> = list_lengths.clone();
        let mut appended: HashMap<&AgencyId, Vec<&AgencyId>> = HashMap::new();
        let mut ordinal_of = |parent: &'a AgencyId, child: &'a AgencyId| -> usize {
            if let Some(ordinal) = ordinals.get(&(parent, child)) {
                return *ordinal;
            }
            let len = lengths.entry(parent).or_insert(0);
            if *len == 0 {
                // Index 0 is the mark of the list's creation.
                *len = 1;
            }
            let ordinal = *len;
            *len += 1;
            ordinals.insert((parent, child), ordinal);
            appended.entry(parent).or_default().push(child);
            ordinal
        };
        // Every child counted in a month has its ordinal, before any roll-up is written.
        for (agency, bucket) in planned.counters.keys() {
            if let (Some(parent), Bucket::Month(..)) = (parent_of.get(agency), bucket) {
                ordinal_of(parent, agency);
            }
        }
        for (parent, children) in &appended {
            let prefix = self.children_prefix(root, parent);
            let list = format!("{prefix}ids");
            let mut pushed = Vec::new();
            if list_lengths.get(parent).copied().unwrap_or(0) == 0 {
                let created = OffsetDateTime::now_utc();
                pushed.push(text(format!(
                    "created {}.{:06}",
                    created.unix_timestamp(),
                    created.microsecond()
                )));
            }
            pushed.extend(children.iter().map(text));
            writes.chunked("RPUSH", Some(&list), &pushed, 1);
            let pairs: Vec<Vec<u8>> = children
                .iter()
                .flat_map(|child| {
                    let ordinal = ordinals.get(&(*parent, *child)).copied().unwrap_or(0);
                    [text(child), text(ordinal)]
                })
                .collect();
            // Read by no writer of this version (they read the list), but by those of the
            // version before, which may run beside it during a rolling upgrade.
            writes.chunked("HSET", Some(&format!("{prefix}ord")), &pairs, 2);
        }
        let ordinal = |parent: &AgencyId, child: &AgencyId| {
            ordinals.get(&(parent, child)).copied().ok_or_else(|| {
                StoreError::Unexpected(format!("{child} has no ordinal under {parent}"))
            })
        };
        let mut wholes = Vec::new();
        for rollup in records.packed {
            match rollup.write {
                PackedWrite::Increments => writes.items(
                    "BITFIELD",
                    Some(&rollup.key),
                    4,
                    // `INCRBY i64 #<ordinal> <n>`.
                    rollup.children.len() * 40,
                    &rollup.children,
                    |cmd, (child, n)| {
                        // `#<ordinal>`: the ordinal-th 64-bit slot, written in place.
                        let mut digits = itoa::Buffer::new();
                        let digits = digits.format(ordinal(rollup.parent, child)?).as_bytes();
                        let mut slot = [b'#'; 1 + 20];
                        slot[1..=digits.len()].copy_from_slice(digits);
                        cmd.arg("INCRBY")
                            .arg("i64")
                            .arg(&slot[..=digits.len()])
                            .arg(*n);
                        Ok(())
                    },
                )?,
                PackedWrite::Whole(stored) => {
                    let mut packed = stored.unwrap_or_default();
                    for (child, n) in &rollup.children {
                        add_to_slot(&mut packed, ordinal(rollup.parent, child)?, *n);
                    }
                    wholes.push((rollup.key, packed));
                }
            }
        }
        let bytes = wholes
            .iter()
            .map(|(key, packed)| key.len() + packed.len())
            .sum();
        writes.items("MSET", None, 2, bytes, wholes, |cmd, (key, packed)| {
            cmd.arg(&key).arg(packed.as_slice());
            known.push(Key::of(&key), Some(packed));
            Ok(())
        })?;
        writes.known.append(known);
        Ok(())
    }

    /// The online sets' changes: the procedures the plan adds to a set (`SADD`), except
    /// those the write cache knows the set holds, and those corrections left a set without
    /// (`left`, `SREM`), which the cache then forgets. A set gains a procedure once, and the
    /// unit mix's batches named the same ones again and again: 270 `SADD`s a batch, a tenth
    /// of Redis' time. What the cache knows of a set is a field of it per procedure held
    /// ([`Key::field`], an empty value); like every value it holds, it is used only while the
    /// tree's version is the one this process's last write set.
    fn write_online(
        &self,
        root: &AgencyId,
        planned: &Plan<'_>,
        left: Vec<(String, &ProcedureId)>,
        cached: &mut Tree,
        writes: &mut Writes,
    ) -> Result<(), StoreError> {
        // Few: only corrections empty a set.
        let mut gone = Vec::with_capacity(left.len());
        for (key, procedure) in left {
            let member = Key::field(&key, procedure.as_str());
            cached.forget_value(&member);
            gone.push(member);
            writes.push(&["SREM".to_owned(), key, procedure.to_string()]);
        }
        // The procedures per set, so that each set's key is formatted once: a batch of the
        // unit mix adds about 1,600 (agency, bucket, procedure) entries to a few hundred sets.
        let mut sets: HashMap<(&AgencyId, Bucket), Vec<&ProcedureId>> = HashMap::new();
        for ((agency, bucket, procedure), _) in planned.online.iter().filter(|(_, n)| **n > 0) {
            sets.entry((agency, *bucket)).or_default().push(procedure);
        }
        let mut online = Vec::with_capacity(sets.len());
        for ((agency, bucket), procedures) in sets {
            let key = self.online_key(root, agency, bucket);
            let mut added = Vec::with_capacity(procedures.len());
            for procedure in procedures {
                let member = Key::field(&key, procedure.as_str());
                if gone.contains(&member) {
                    continue;
                }
                let held = matches!(cached.lookup(&member), Some(Some(_)));
                writes.known.push(member, Some(Vec::new()));
                if !held {
                    added.push(procedure);
                }
            }
            if !added.is_empty() {
                online.push((key, added));
            }
        }
        // In the keys' order, as every write of the batch: the same batch, the same commands.
        online.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        for (key, members) in online {
            let bytes = members
                .iter()
                .map(|procedure| procedure.as_str().len())
                .sum();
            writes.items("SADD", Some(&key), 1, bytes, members, |cmd, procedure| {
                cmd.arg(procedure.as_str());
                Ok(())
            })?;
        }
        Ok(())
    }

    /// When the plan's agencies were last seen and their events accepted and rejected per
    /// day: what the store had (`known`, read in this attempt, so no other writer changed it
    /// if the write applies) with what the plan adds.
    fn write_activity(
        &self,
        root: &AgencyId,
        planned: &Plan<'_>,
        known: &KnownActivity<'_>,
        writes: &mut Writes,
    ) {
        let key = self.seen_key(root);
        let mut fields: Vec<Vec<u8>> = Vec::new();
        let mut set = |field: Vec<u8>, value: Vec<u8>| {
            writes
                .known
                .push(Key::field(&key, &field), Some(value.clone()));
            fields.extend([field, value]);
        };
        for (agency, seen) in &planned.seen {
            let latest = known.seen.get(agency).map_or(*seen, |k| k.latest(*seen));
            if let Some(bytes) = seen_bytes(latest) {
                set(text(agency), bytes.to_vec());
            }
        }
        for (added, kept, field) in [
            (
                &planned.arrivals,
                &known.accepted,
                accepted_field as fn(&AgencyId) -> Vec<u8>,
            ),
            (&planned.rejected, &known.rejected, rejected_field),
        ] {
            let mut counts: BTreeMap<&AgencyId, DayCounts> = BTreeMap::new();
            for ((agency, day), n) in added {
                counts
                    .entry(agency)
                    .or_insert_with(|| kept.get(agency).copied().unwrap_or_default())
                    .add(*day, *n);
            }
            for (agency, counts) in counts {
                if let Some(bytes) = day_counts_bytes(&counts) {
                    set(field(agency), bytes);
                }
            }
        }
        writes.chunked("HSET", Some(&key), &fields, 2);
    }
}

/// What a tree's `s` hash held of the batch's agencies when this attempt read it: what was
/// last seen of them, and their events accepted and rejected per day.
struct KnownActivity<'a> {
    seen: HashMap<&'a AgencyId, Seen>,
    accepted: HashMap<&'a AgencyId, DayCounts>,
    rejected: HashMap<&'a AgencyId, DayCounts>,
}

/// The counter records a plan adds to, as read, with what the plan adds to each: each
/// (agency, bucket) of the plan's counters with its key; per (parent, day), its children's
/// records in its day roll-up; per (agency below the root, day), its procedures' record
/// list; per bucket, the root's procedures' records with the key of their hash; and each
/// agency's parent, from the batch's chains.
#[derive(Default)]
struct CounterRecords<'a> {
    parent_of: HashMap<&'a AgencyId, &'a AgencyId>,
    own: Vec<(String, &'a CounterSums, Option<Vec<u8>>)>,
    days: BTreeMap<(&'a AgencyId, Bucket), ChildRecords<'a>>,
    lists: Vec<DayList<'a>>,
    procedures: Vec<(String, ProcedureRecords<'a>)>,
    packed: Vec<PackedRollUp<'a>>,
}

/// One of a parent's packed month roll-ups (`…:k:<parent>:m<yyyymm>:<field>`) that the plan
/// adds to, with each child's count.
struct PackedRollUp<'a> {
    key: String,
    parent: &'a AgencyId,
    children: Vec<(&'a AgencyId, i64)>,
    write: PackedWrite,
    /// Whether it is read from Redis (written whole, and not in the write cache).
    read: bool,
}

/// How a packed roll-up is written.
enum PackedWrite {
    /// One `BITFIELD INCRBY` a child: the roll-up is not read.
    Increments,
    /// Written whole with every child's count added to it as Redis holds it (read, or
    /// from the write cache; `None`: no such key).
    Whole(Option<Vec<u8>>),
}

/// (parent, month, counter): one packed roll-up.
type RollUp<'k> = (&'k AgencyId, Bucket, Counter);

/// `n` added to the signed 64-bit big-endian count at slot `ordinal` of a packed roll-up,
/// wrapping as `BITFIELD INCRBY` does; a roll-up shorter than the slot is lengthened with
/// zeros, as `BITFIELD` lengthens it.
fn add_to_slot(packed: &mut Vec<u8>, ordinal: usize, n: i64) {
    let at = 8 * ordinal;
    if packed.len() < at + 8 {
        packed.resize(at + 8, 0);
    }
    let slot = &mut packed[at..at + 8];
    let mut count = [0u8; 8];
    count.copy_from_slice(slot);
    slot.copy_from_slice(&i64::from_be_bytes(count).wrapping_add(n).to_be_bytes());
}

/// Takes in the ordinals `known` of `children` of `parent` (`None`: not in the list yet).
fn known_ordinals<'a>(
    ordinals: &mut HashMap<(&'a AgencyId, &'a AgencyId), usize>,
    parent: &'a AgencyId,
    children: &[&'a AgencyId],
    known: Vec<Option<usize>>,
) {
    for (child, ordinal) in children.iter().zip(known) {
        if let Some(ordinal) = ordinal {
            ordinals.insert((parent, child), ordinal);
        }
    }
}

impl CounterRecords<'_> {
    /// How many online receptions of `procedure` `agency` counts on `day` once the plan is
    /// added: from the root's procedure hash of the day, or the agency's record list of it.
    fn received_online(
        &self,
        store: &RedisStore,
        root: &AgencyId,
        agency: &AgencyId,
        day: time::Date,
        procedure: &ProcedureId,
    ) -> Result<u64, StoreError> {
        let unreadable = || reply_err("procedure record");
        let counters = if agency == root {
            let key = store.root_procedures_key(root, Bucket::Day(day));
            let Some((_, fields)) = self.procedures.iter().find(|(k, _)| *k == key) else {
                return Ok(0);
            };
            let Some((_, sums, stored)) = fields.iter().find(|(p, ..)| *p == procedure) else {
                return Ok(0);
            };
            counter_record::add(stored.as_deref(), sums.nonzero())
                .and_then(|record| counter_record::decode(&record))
                .ok_or_else(unreadable)?
        } else {
            let key = store.procedure_list_key(root, agency, day);
            let Some(list) = self.lists.iter().find(|list| list.key == key) else {
                return Ok(0);
            };
            let list = list.with_plan()?;
            let entries = counter_record::decode_list(&list).ok_or_else(unreadable)?;
            match entries
                .into_iter()
                .find(|(name, _)| *name == procedure.as_str())
            {
                Some((_, counters)) => counters,
                None => return Ok(0),
            }
        };
        Ok(counters.get(Counter::ReceivedOnline))
    }
}

/// What a plan adds to one agency's day below the root: to its own record and to its
/// procedures'.
#[derive(Default)]
struct DayAdded<'a> {
    own: Option<&'a CounterSums>,
    procedures: Option<&'a ProcedureSums<'a>>,
}

/// One agency's record list of one day ([`in_day_list`]): its key, what the plan adds, the
/// list as read, and, when the batch takes counts back, the key of the day's record kept
/// apart before 2026-12-06 with what it held.
struct DayList<'a> {
    key: String,
    added: DayAdded<'a>,
    stored: Option<Vec<u8>>,
    legacy: Option<(String, Option<Vec<u8>>)>,
}

impl DayList<'_> {
    /// The list as read with the plan added, the record kept apart moved into its own entry.
    fn with_plan(&self) -> Result<Vec<u8>, StoreError> {
        let unreadable = |what: &str| {
            StoreError::Unexpected(format!(
                "{what} is not what this version writes: the batch is not counted into it"
            ))
        };
        let mut own = self.added.own.copied().unwrap_or_default();
        if let Some((key, Some(record))) = &self.legacy {
            let kept = counter_record::decode(record).ok_or_else(|| unreadable(key))?;
            for counter in Counter::ALL.into_iter().filter(|c| kept.get(*c) > 0) {
                let n = i32::try_from(kept.get(counter)).map_err(|_| unreadable(key))?;
                own.add(counter, n);
            }
        }
        let procedures = self.added.procedures.into_iter().flatten();
        let added = std::iter::once((counter_record::OWN, &own))
            .chain(procedures.map(|(procedure, sums)| (procedure.as_str(), sums)));
        counter_record::add_to_list(self.stored.as_deref(), added)
            .ok_or_else(|| unreadable(&self.key))
    }
}

/// What a counter record grows by in a batch, at most: its counters' varints lengthen.
const RECORD_GROWTH: usize = 8;

/// About the bytes of the arguments that write a counter record named `name` (a key or a
/// field) read as `stored`, the batch added: what a write command is sized for.
fn record_argument_bytes(name: &str, stored: Option<&[u8]>) -> usize {
    name.len() + stored.map_or(0, <[u8]>::len) + RECORD_GROWTH
}

/// Fields of one hash of counter records (children in a day roll-up, procedures of an agency
/// in a bucket), each with what the plan adds and its record as read.
type HashRecords<'a, F> = Vec<(&'a F, CounterSums, Option<Vec<u8>>)>;

/// Children of one parent with their records in one of its day roll-ups.
type ChildRecords<'a> = HashRecords<'a, AgencyId>;

/// Procedures of one agency with their records in one bucket.
type ProcedureRecords<'a> = HashRecords<'a, ProcedureId>;

/// The values `asked` asked for: the read's reply is the next of `replies` if it was sent.
fn answered(
    asked: Asked,
    replies: &mut impl Iterator<Item = redis::Value>,
    what: &str,
) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    let reply = match asked.missed() {
        true => Some(replies.next().ok_or_else(|| reply_err(what))?),
        false => None,
    };
    asked.answers(reply).ok_or_else(|| reply_err(what))
}

/// Takes the records an `HMGET` of one hash's fields read, one per field in order.
fn fill_records<F>(
    fields: &mut HashRecords<'_, F>,
    stored: Vec<Option<Vec<u8>>>,
) -> Result<(), StoreError> {
    if stored.len() != fields.len() {
        return Err(reply_err("records of a hash"));
    }
    for ((_, _, record), stored) in fields.iter_mut().zip(stored) {
        *record = stored;
    }
    Ok(())
}

/// The records of events per day read for `agencies` (one each, in order), those that read.
fn known_day_counts<'a>(
    agencies: &[&'a AgencyId],
    read: Vec<Option<Vec<u8>>>,
) -> HashMap<&'a AgencyId, DayCounts> {
    agencies
        .iter()
        .zip(read)
        .filter_map(|(agency, value)| Some((*agency, day_counts_from_bytes(&value?)?)))
        .collect()
}

/// Each of `agencies` once, in the order first named (hashed: a batch of the unit mix names
/// a thousand chains).
fn each_once<'a>(agencies: impl Iterator<Item = &'a AgencyId>) -> Vec<&'a AgencyId> {
    let mut named = foldhash::HashSet::default();
    agencies.filter(|agency| named.insert(*agency)).collect()
}

/// `chains` without the ones that repeat the chain just before (the same shared chain): a
/// batch comes from one system, and runs of events of one agency name its chain once, not
/// once an event, to the sets and maps built of them.
fn chain_runs<'a>(
    chains: impl Iterator<Item = &'a Arc<[AgencyId]>>,
) -> impl Iterator<Item = &'a Arc<[AgencyId]>> {
    let mut last: Option<&Arc<[AgencyId]>> = None;
    chains.filter(move |chain| {
        let repeats = last.is_some_and(|last| Arc::ptr_eq(last, chain));
        last = Some(chain);
        !repeats
    })
}

/// Each agency's parent in its tree, from the batch's chains.
fn parents_of(batch: &[EventWrite]) -> HashMap<&AgencyId, &AgencyId> {
    let mut parent_of = HashMap::new();
    for chain in chain_runs(batch.iter().map(|event| &event.chain)) {
        for pair in chain.windows(2) {
            parent_of.insert(&pair[0], &pair[1]);
        }
    }
    parent_of
}

#[cfg(test)]
mod tests {
    use govpulse_core::{
        DossierId, EventId,
        backlog::{StageEvent, step},
        counting::{Counts, Effect},
    };
    use time::macros::{date, datetime};

    use super::*;
    use crate::{
        bucket::{
            self,
            tests::{pairs, records},
        },
        write_cache::arguments,
    };

    #[test]
    fn a_run_of_one_chain_names_it_once_and_a_chain_named_again_later_again() {
        let id = |raw: &str| AgencyId::parse(raw).expect("an id");
        let a: Arc<[AgencyId]> = Arc::from([id("a.u1"), id("a")]);
        let b: Arc<[AgencyId]> = Arc::from([id("b")]);
        // Equal but not shared: named again (only shared chains are skipped).
        let a_copy: Arc<[AgencyId]> = Arc::from([id("a.u1"), id("a")]);
        let chains = [&a, &a, &b, &b, &b, &a, &a_copy, &a_copy];
        let runs: Vec<&Arc<[AgencyId]>> = chain_runs(chains.into_iter()).collect();
        assert_eq!(runs.len(), 4);
        assert!(Arc::ptr_eq(runs[0], &a) && Arc::ptr_eq(runs[1], &b));
        assert!(Arc::ptr_eq(runs[2], &a) && Arc::ptr_eq(runs[3], &a_copy));
        let named = each_once(chain_runs(chains.into_iter()).flat_map(|c| c.iter()));
        assert_eq!(named, [&id("a.u1"), &id("a"), &id("b")]);
    }

    #[test]
    fn an_instant_s_utc_day_is_the_day_number_of_its_utc_date() {
        let midnight = datetime!(2026-08-15 00:00 UTC);
        for at in [
            midnight,
            midnight - time::Duration::nanoseconds(1),
            midnight + time::Duration::nanoseconds(1),
            datetime!(2026-08-15 06:59:59.999 +7),
            datetime!(2026-08-15 07:00 +7),
            datetime!(1970-01-01 00:00 UTC),
            datetime!(1969-12-31 23:59:59 UTC),
            datetime!(1900-03-01 12:00 -5),
            datetime!(2100-02-28 23:00 -2),
        ] {
            let date = at.to_offset(time::UtcOffset::UTC).date();
            assert_eq!(utc_day(at), day_number(date), "{at}");
        }
    }

    #[test]
    fn a_packed_slot_adds_as_bitfield_incrby_does() {
        let mut packed = Vec::new();
        add_to_slot(&mut packed, 2, 5);
        assert_eq!(packed.len(), 24, "lengthened with zeros to the slot");
        add_to_slot(&mut packed, 2, -7);
        add_to_slot(&mut packed, 1, i64::MAX);
        add_to_slot(&mut packed, 1, 1);
        let slot = |packed: &[u8], i: usize| {
            i64::from_be_bytes(packed[8 * i..8 * i + 8].try_into().expect("8 bytes"))
        };
        assert_eq!(slot(&packed, 0), 0);
        assert_eq!(slot(&packed, 1), i64::MIN, "wraps, as OVERFLOW WRAP does");
        assert_eq!(slot(&packed, 2), -2);
        let longer = packed.clone();
        add_to_slot(&mut packed, 0, 3);
        assert_eq!(
            packed.len(),
            longer.len(),
            "a longer roll-up keeps its length"
        );
        assert_eq!(slot(&packed, 0), 3);
    }

    #[test]
    fn what_was_seen_reads_back_as_written_to_the_millisecond() {
        let seen = Seen {
            last_accepted: Some(datetime!(2026-12-05 07:15:17.589 UTC)),
            last_occurred: Some(datetime!(1999-12-31 23:59:59.999 +7)),
        };
        let bytes = seen_bytes(seen).expect("a record");
        assert_eq!(seen_from_bytes(&bytes), Some(seen));
        assert_eq!(seen_bytes(Seen::default()), None);
        assert_eq!(seen_from_bytes(&bytes[..15]), None);
        let mut counts = DayCounts::default();
        assert_eq!(day_counts_bytes(&counts), None);
        counts.add(date!(2026 - 12 - 05), 7);
        counts.add(date!(2026 - 11 - 20), 70_000);
        let bytes = day_counts_bytes(&counts).expect("a record");
        // The size the previous version reads `#n` as (and any version `#r`).
        assert_eq!(bytes.len(), 142);
        assert_eq!(day_counts_from_bytes(&bytes), Some(counts));
        assert_eq!(day_counts_from_bytes(&bytes[..141]), None);
        let agency = AgencyId::parse("hb.dept-01").expect("id");
        assert_eq!(accepted_field(&agency), b"hb.dept-01#n");
        assert_eq!(rejected_field(&agency), b"hb.dept-01#r");
    }

    #[test]
    fn entries_read_back_as_written() {
        let until = datetime!(2027-09-21 00:05 +7);
        let content = govpulse_core::counting::Content::of(&govpulse_core::DossierEvent {
            event_id: EventId::parse("e1").expect("id"),
            agency: AgencyId::parse("ha-noi").expect("id"),
            dossier: DossierId::parse("d1").expect("id"),
            procedure: govpulse_core::ProcedureId::parse("p1").expect("id"),
            occurred_at: datetime!(2026-08-15 09:00 +7),
            kind: govpulse_core::EventKind::FeePaid { online: true },
            corrects: None,
        });
        let remembered = Remembered {
            content,
            dossier: 7,
            counts: Counts::Event(Effect {
                day: date!(2026 - 08 - 15),
                counters: 0b101,
                online: true,
            }),
        };
        let (back, day) = id_entry(&id_value(remembered, utc_day(until))).expect("an id entry");
        assert_eq!(back, remembered);
        assert_eq!(
            date_of(day),
            Some(date!(2027 - 09 - 20)),
            "the UTC date of the instant"
        );
        let open = step(
            None,
            StageEvent::Received {
                due_day: Some(date!(2026 - 08 - 20)),
            },
        )
        .expect("counted")
        .dossier;
        let resolved = step(
            None,
            StageEvent::Resolved {
                day: date!(2026 - 08 - 21),
            },
        )
        .expect("counted")
        .dossier;
        let done = step(Some(resolved), StageEvent::Received { due_day: None })
            .expect("counted")
            .dossier;
        let paid = step(Some(done), StageEvent::FeePaid)
            .expect("counted")
            .dossier;
        let until = utc_day(until);
        for state in [open, resolved, done, paid] {
            assert_eq!(
                dossier_entry(&dossier_value(state, until)),
                Some((state, until))
            );
        }
        assert_eq!(
            dossier_entry(&[0, 0, 0, 9, 0, 0, 0, 0, 1, 0, 1]),
            None,
            "a resolution day without a resolution"
        );
    }

    #[test]
    fn a_table_sweeps_splits_and_puts_and_writes_back_only_what_changed() {
        let mut table: Table<1> = Table::read(
            Structure::Ids,
            HashMap::from_iter([
                (0, records(&[(0b00, [1]), (0b10, [0]), (0b100, [1])])),
                // As read from Redis: what the batch adds is kept apart, written after it.
                (
                    1,
                    Records::from_stored(vec![0, 0, 0, 0, 0, 0, 0, 0b01, 1]).expect("a record"),
                ),
                (3, records(&[(0b111, [1])])),
            ]),
            4,
        );
        assert_eq!(table.get(0, 0b10), Some([0]));
        assert_eq!(table.get(0, 0b100), Some([1]));
        assert_eq!(table.get(1, 0b101), None);
        assert_eq!(table.sweep(1, |v| v[0] == 1), 0, "nothing to drop");
        assert_eq!(table.sweep(0, |v| v[0] == 1), 1);
        table.split(&Split {
            from: 0,
            to: 2,
            bit: 2,
        });
        table.put(2, 0b110, [7]);
        table.put(0, 0b00, [9]);
        table.put(1, 0b101, [6]);
        // Found before the split moved it: changed where it is now, not added again.
        table.put(2, 0b100, [5]);
        assert_eq!(table.get(2, 0b100), Some([5]), "what was written");
        assert_eq!(pairs(&table.buckets[&0]), vec![(0b00, [9])]);
        assert_eq!(pairs(&table.buckets[&1]), vec![(0b01, [1]), (0b101, [6])]);
        assert_eq!(pairs(&table.buckets[&2]), vec![(0b100, [5]), (0b110, [7])]);
        let changed = sorted_once(table.changed.iter().copied());
        assert_eq!(changed, [0, 1, 2], "not 3");

        let mut writes = Writes::script("hash", "v", b"");
        table.write(&mut writes, |b| format!("b{b}"));
        let Apply::Script(call) = writes.commands else {
            panic!("a script call")
        };
        let args = arguments(&call);
        let expected: Vec<Vec<u8>> = [
            &b"EVALSHA"[..],
            b"hash",
            b"1",
            b"v",
            b"",
            b"7",
            b"MSET",
            b"b0",
            &[0, 0, 0, 0, 0, 0, 0, 0b00, 9],
            // Padded with a free slot: Redis allocates 32 bytes for 18 anyway.
            b"b1",
            &[
                0, 0, 0, 0, 0, 0, 0, 0b01, 1, 0, 0, 0, 0, 0, 0, 0, 0b101, 6, 0, 0, 0, 0, 0, 0, 0,
                0, 0,
            ],
            b"b2",
            &[
                0, 0, 0, 0, 0, 0, 0, 0b100, 5, 0, 0, 0, 0, 0, 0, 0, 0b110, 7, 0, 0, 0, 0, 0, 0, 0,
                0, 0,
            ],
        ]
        .iter()
        .map(|a| a.to_vec())
        .collect();
        assert_eq!(args, expected);
    }

    #[test]
    fn a_record_added_into_a_free_slot_or_changed_in_place_is_written_alone() {
        // An id bucket as written whole: 22 records, padded to 23 (its 640 bytes in Redis).
        let mut stored = Vec::new();
        for digest in 1..=22u64 {
            stored.extend_from_slice(&digest.to_be_bytes());
            stored.extend_from_slice(&[1; ID_VALUE]);
        }
        stored.resize(bucket::padded(stored.len(), 8 + ID_VALUE), 0);
        assert_eq!(stored.len(), 23 * 27);
        let read = Records::from_stored(stored).expect("records");
        let mut table: Table<ID_VALUE> =
            Table::read(Structure::Ids, HashMap::from_iter([(5, read.clone())]), 1);
        table.put(5, 23, [2; ID_VALUE]);
        let mut writes = Writes::transaction();
        table.write(&mut writes, |b| format!("b{b}"));
        let Apply::Transaction(pipe) = &writes.commands else {
            panic!("a transaction")
        };
        let commands: Vec<Vec<Vec<u8>>> = pipe.cmd_iter().map(arguments).collect();
        let mut record = 23u64.to_be_bytes().to_vec();
        record.extend_from_slice(&[2; ID_VALUE]);
        assert_eq!(
            commands,
            [[
                b"SETRANGE".to_vec(),
                b"b5".to_vec(),
                b"594".to_vec(),
                record
            ]],
            "into the free slot, not the bucket"
        );

        // One record changed in place and two new ones, for its one free slot: whole.
        let mut table: Table<ID_VALUE> =
            Table::read(Structure::Ids, HashMap::from_iter([(5, read)]), 1);
        table.put(5, 2, [3; ID_VALUE]);
        table.put(5, 23, [2; ID_VALUE]);
        table.put(5, 24, [2; ID_VALUE]);
        let mut writes = Writes::transaction();
        table.write(&mut writes, |b| format!("b{b}"));
        let Apply::Transaction(pipe) = &writes.commands else {
            panic!("a transaction")
        };
        let commands: Vec<Vec<u8>> = pipe
            .cmd_iter()
            .map(|cmd| arguments(cmd)[0].clone())
            .collect();
        assert_eq!(
            commands,
            [b"MSET".to_vec()],
            "no slot left for a second record: whole"
        );
    }
}
