//! Counting a batch into Redis: read what the batch needs, plan it with the counting rules of
//! the core, write the plan if nothing changed meanwhile.
//!
//! For each tree of the batch (its keys share the tree's hash slot):
//! 1. one pipeline reads the tree's version and the spreads of its event ids and dossier
//!    states (`spread.rs`);
//! 2. one pipeline reads the buckets the batch's ids and dossiers live in (`HMGET`), the
//!    buckets the growth splits and the ones the sweep looks at (`HGETALL`), and the ordinals
//!    of the children the batch counts in their parents' packed roll-ups;
//! 3. [`govpulse_core::counting::plan`] decides, from what was read, every outcome and every
//!    change (the rules live there and only there);
//! 4. one call of a generic compare-and-apply script ([`CAS_SCRIPT`]: no rule in it) writes
//!    every change and moves the version on, if the version is still the one read in 1.
//!    Otherwise another writer (another aggregate replica) changed the tree meanwhile, and
//!    the tree is read and planned again.
//!
//! So a tree's batch is applied whole or not at all, each (agency, event id) is counted once
//! whatever day it claims, and two replicas writing one tree at once apply their batches as
//! some order of the two would.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use govpulse_core::{
    AgencyId, Bucket, Counter, DossierId,
    backlog::DossierState,
    counting::{Applied, Content, EventWrite, Plan, dossier_digest, id_digest, plan},
};
use redis::Value;
use time::{Date, OffsetDateTime};

use crate::{
    StoreError,
    redis_store::{Commands, RedisStore},
    spread::{Split, Spread},
};

/// The compare-and-apply script: generic, it knows nothing of what it writes.
pub const CAS_SCRIPT: &str = include_str!("cas.lua");

/// How many times a tree is read and planned again when other writers keep changing it.
const ATTEMPTS: usize = 64;

/// Commands per script call are sent as argument count then arguments; a command longer
/// than this many arguments is cut in several (Lua's stack bounds `unpack`).
const MAX_ARGS: usize = 2_000;

fn day_number(day: Date) -> i32 {
    day.to_julian_day()
        - Date::from_calendar_date(1970, time::Month::January, 1).map_or(0, Date::to_julian_day)
}

fn date_of(number: i32) -> Option<Date> {
    let epoch = Date::from_calendar_date(1970, time::Month::January, 1).ok()?;
    Date::from_julian_day(epoch.to_julian_day() + number).ok()
}

/// A day as stores keep it: days since 1970 in two bytes, big-endian (enough until 2149;
/// a later day is kept as the last one two bytes hold, so it is never forgotten early).
fn day_bytes(day: i32) -> [u8; 2] {
    u16::try_from(day.max(0)).unwrap_or(u16::MAX).to_be_bytes()
}

fn day_at(value: &[u8], at: usize) -> Option<i32> {
    let bytes: [u8; 2] = value.get(at..at + 2)?.try_into().ok()?;
    Some(i32::from(u16::from_be_bytes(bytes)))
}

/// An id entry's value, 10 bytes: the content counted under it, and the day after which it
/// may be forgotten.
fn id_value(content: Content, until: OffsetDateTime) -> Vec<u8> {
    let mut value = content.to_bytes().to_vec();
    value.extend_from_slice(&day_bytes(utc_day(until)));
    value
}

/// The UTC day of an instant, as a day number: what expiry compares with today's.
fn utc_day(at: OffsetDateTime) -> i32 {
    day_number(at.to_offset(time::UtcOffset::UTC).date())
}

fn id_entry(value: &[u8]) -> Option<(Content, i32)> {
    if value.len() != Content::BYTES + 2 {
        return None;
    }
    let content = Content::from_bytes(value.get(..Content::BYTES)?)?;
    Some((content, day_at(value, Content::BYTES)?))
}

/// A dossier entry's value, 5 bytes: its state (`o` open with its due day, `c` resolved on a
/// day before any reception with a due time, `x` done) and the day after which a finished
/// one may be forgotten (an open one never is: its resolution may come late).
fn dossier_value(state: DossierState, until: OffsetDateTime) -> Vec<u8> {
    let (tag, day) = match state {
        DossierState::Open { due_day } => (b'o', day_number(due_day)),
        DossierState::Resolved { day } => (b'c', day_number(day)),
        DossierState::Done => (b'x', 0),
    };
    let mut value = vec![tag];
    value.extend_from_slice(&day_bytes(day));
    value.extend_from_slice(&day_bytes(utc_day(until)));
    value
}

fn dossier_entry(value: &[u8]) -> Option<(DossierState, i32)> {
    if value.len() != 5 {
        return None;
    }
    let (day, until) = (day_at(value, 1)?, day_at(value, 3)?);
    let state = match value.first()? {
        b'o' => DossierState::Open {
            due_day: date_of(day)?,
        },
        b'c' => DossierState::Resolved { day: date_of(day)? },
        b'x' => DossierState::Done,
        _ => return None,
    };
    Some((state, until))
}

fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

fn reply_err(what: &str) -> StoreError {
    StoreError::Unexpected(format!("an unreadable {what}"))
}

/// The entries of one bucket: field (an 8-byte digest) → value.
type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// Fields to set in one bucket: (field, value).
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One growing structure of a tree (its ids, or its dossier states) as one write sees it:
/// the buckets read whole (to split or to sweep), their entries as the write leaves them,
/// and the fields to set in other buckets.
#[derive(Debug, Default)]
struct Buckets {
    /// Buckets rewritten whole: bucket → field → value.
    whole: BTreeMap<u64, Entries>,
    /// Fields set in buckets not rewritten whole.
    set: BTreeMap<u64, Fields>,
}

impl Buckets {
    /// Puts `field` in `bucket`, where the spread says it lives.
    fn put(&mut self, bucket: u64, field: Vec<u8>, value: Vec<u8>) {
        match self.whole.get_mut(&bucket) {
            Some(entries) => {
                entries.insert(field, value);
            }
            None => self.set.entry(bucket).or_default().push((field, value)),
        }
    }
}

/// The keys of one tree.
struct TreeKeys<'a> {
    store: &'a RedisStore,
    root: &'a AgencyId,
}

impl TreeKeys<'_> {
    fn version(&self) -> String {
        format!("{}:{{{}}}:v", self.store.prefix, self.root)
    }
    fn id_spread(&self) -> String {
        format!("{}:{{{}}}:ix", self.store.prefix, self.root)
    }
    fn id_bucket(&self, bucket: u64) -> String {
        format!("{}:{{{}}}:i:{bucket}", self.store.prefix, self.root)
    }
    fn dossier_spread(&self) -> String {
        format!("{}:{{{}}}:sx", self.store.prefix, self.root)
    }
    fn dossier_bucket(&self, bucket: u64) -> String {
        format!("{}:{{{}}}:s:{bucket}", self.store.prefix, self.root)
    }
}

/// The call of the compare-and-apply script, written as it is built: each command as its
/// number of arguments then its arguments, straight into the call's buffer.
struct Writes {
    call: redis::Cmd,
}

impl Writes {
    /// The call for the script `hash`, applying if `version_key` still holds `version`.
    fn new(hash: &str, version_key: &str, version: &[u8]) -> Self {
        let mut call = redis::cmd("EVALSHA");
        call.arg(hash).arg(1).arg(version_key).arg(version);
        Writes { call }
    }

    fn push<A: AsRef<[u8]>>(&mut self, command: &[A]) {
        self.call.arg(command.len());
        for arg in command {
            self.call.arg(arg.as_ref());
        }
    }

    /// `name key` then `items`, each `width` arguments, cut so that no command is longer than
    /// [`MAX_ARGS`].
    fn chunked<A: AsRef<[u8]>>(&mut self, name: &str, key: &str, items: &[A], width: usize) {
        let per = (MAX_ARGS / width).max(1) * width;
        for chunk in items.chunks(per) {
            self.call.arg(chunk.len() + 2).arg(name).arg(key);
            for item in chunk {
                self.call.arg(item.as_ref());
            }
        }
    }
}

fn text(s: impl ToString) -> Vec<u8> {
    s.to_string().into_bytes()
}

impl RedisStore {
    /// Applies the events of one tree, reading, planning and writing again while other
    /// writers change the tree meanwhile; one outcome per event, in order.
    pub(crate) async fn apply_tree(
        &self,
        root: &AgencyId,
        batch: &[EventWrite],
    ) -> Result<Vec<Applied>, StoreError> {
        for _ in 0..ATTEMPTS {
            if let Some(outcomes) = self.try_tree(root, batch).await? {
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
        root: &AgencyId,
        batch: &[EventWrite],
    ) -> Result<Option<Vec<Applied>>, StoreError> {
        let keys = TreeKeys { store: self, root };
        let now = OffsetDateTime::now_utc();
        let today = utc_day(now);

        // 1. The version and the spreads.
        let mut first = Commands::default();
        first.push(root, redis::cmd("GET").arg(keys.version()).clone());
        first.push(root, redis::cmd("GET").arg(keys.id_spread()).clone());
        first.push(root, redis::cmd("GET").arg(keys.dossier_spread()).clone());
        let mut replies = first.run(&self.connection).await?.into_iter();
        let mut next = || replies.next().ok_or_else(|| reply_err("first read"));
        let version = bytes(next()?);
        let spread = |value: Value| {
            let stored = bytes(value).and_then(|b| String::from_utf8(b).ok());
            Spread::decode(stored.as_deref()).map_err(StoreError::Unexpected)
        };
        let (id_spread, dossier_spread) = (spread(next()?)?, spread(next()?)?);

        // 2. What the batch needs to read.
        let with_dossier = batch.iter().filter(|e| e.dossier.is_some()).count() as u64;
        let (id_splits, id_grown) = id_spread.grow_to(id_spread.entries + batch.len() as u64);
        let (dossier_splits, dossier_grown) =
            dossier_spread.grow_to(dossier_spread.entries + with_dossier);
        let id_sweep = id_spread.sweep % id_spread.buckets();
        let dossier_sweep = dossier_spread.sweep % dossier_spread.buckets();
        let whole_ids: BTreeSet<u64> = id_splits.iter().map(|s| s.from).chain([id_sweep]).collect();
        let whole_dossiers: BTreeSet<u64> = dossier_splits
            .iter()
            .map(|s| s.from)
            .chain([dossier_sweep])
            .collect();
        // Each event's id, and each dossier, in the bucket the spread read says.
        let mut id_fields: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for event in batch {
            let digest = id_digest(&event.agency, &event.event_id);
            id_fields
                .entry(id_spread.bucket(digest))
                .or_default()
                .push(digest);
        }
        let mut dossier_fields: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for event in batch {
            if let Some(dossier) = event.dossier.as_ref().map(dossier_id) {
                let digest = dossier_digest(&event.agency, dossier);
                dossier_fields
                    .entry(dossier_spread.bucket(digest))
                    .or_default()
                    .push(digest);
            }
        }
        // The children counted in their parents' packed roll-ups.
        let mut parents: BTreeMap<&AgencyId, BTreeSet<&AgencyId>> = BTreeMap::new();
        for event in batch {
            for pair in event.chain.windows(2) {
                parents.entry(&pair[1]).or_default().insert(&pair[0]);
            }
        }
        let mut second = Commands::default();
        let hmget = |key: String, digests: &[u64]| {
            let mut command = redis::cmd("HMGET");
            command.arg(key);
            for digest in digests {
                command.arg(&digest.to_be_bytes()[..]);
            }
            command
        };
        for (bucket, digests) in &id_fields {
            second.push(root, hmget(keys.id_bucket(*bucket), digests));
        }
        for (bucket, digests) in &dossier_fields {
            second.push(root, hmget(keys.dossier_bucket(*bucket), digests));
        }
        for bucket in &whole_ids {
            second.push(
                root,
                redis::cmd("HGETALL").arg(keys.id_bucket(*bucket)).clone(),
            );
        }
        for bucket in &whole_dossiers {
            second.push(
                root,
                redis::cmd("HGETALL")
                    .arg(keys.dossier_bucket(*bucket))
                    .clone(),
            );
        }
        for (parent, children) in &parents {
            let prefix = self.children_prefix(root, parent);
            second.push(root, redis::cmd("LLEN").arg(format!("{prefix}ids")).clone());
            let mut hmget = redis::cmd("HMGET");
            hmget.arg(format!("{prefix}ord"));
            for child in children {
                hmget.arg(child.as_str());
            }
            second.push(root, hmget);
        }
        let mut replies = second.run(&self.connection).await?.into_iter();
        let mut next = || replies.next().ok_or_else(|| reply_err("second read"));

        let mut known_ids: HashMap<u64, Content> = HashMap::new();
        for digests in id_fields.values() {
            let values: Vec<Option<Vec<u8>>> = redis::from_redis_value(next()?)?;
            for (digest, value) in digests.iter().zip(values) {
                if let Some((content, until)) = value.as_deref().and_then(id_entry)
                    && until >= today
                {
                    known_ids.insert(*digest, content);
                }
            }
        }
        let mut known_dossiers: HashMap<u64, DossierState> = HashMap::new();
        for digests in dossier_fields.values() {
            let values: Vec<Option<Vec<u8>>> = redis::from_redis_value(next()?)?;
            for (digest, value) in digests.iter().zip(values) {
                if let Some((state, _)) = value.as_deref().and_then(dossier_entry) {
                    known_dossiers.insert(*digest, state);
                }
            }
        }
        let mut read_whole = |whole: &BTreeSet<u64>| -> Result<BTreeMap<u64, Entries>, StoreError> {
            let mut buckets = BTreeMap::new();
            for bucket in whole {
                let entries: Fields = redis::from_redis_value(next()?)?;
                buckets.insert(*bucket, entries.into_iter().collect());
            }
            Ok(buckets)
        };
        let id_whole = read_whole(&whole_ids)?;
        let dossier_whole = read_whole(&whole_dossiers)?;
        let mut ordinals: BTreeMap<(&AgencyId, &AgencyId), usize> = BTreeMap::new();
        let mut list_lengths: BTreeMap<&AgencyId, usize> = BTreeMap::new();
        for (parent, children) in &parents {
            let len: usize = redis::from_redis_value(next()?)?;
            list_lengths.insert(parent, len);
            let known: Vec<Option<usize>> = redis::from_redis_value(next()?)?;
            for (child, ordinal) in children.iter().zip(known) {
                if let Some(ordinal) = ordinal {
                    ordinals.insert((parent, child), ordinal);
                }
            }
        }

        // 3. The plan, by the core's rules.
        let planned = plan(
            batch,
            |agency, event_id| known_ids.get(&id_digest(agency, event_id)).copied(),
            |agency, dossier| {
                known_dossiers
                    .get(&dossier_digest(agency, dossier))
                    .copied()
            },
        );

        // 4. The writes.
        let mut writes = Writes::new(
            self.cas.get_hash(),
            &keys.version(),
            version.as_deref().unwrap_or_default(),
        );
        let counted = planned.counted.len() as u64;
        let id_writes = grow(id_whole, &id_splits, id_sweep, |value| {
            id_entry(value).is_some_and(|(_, until)| until >= today)
        });
        let (mut ids, swept_ids) = id_writes;
        for i in &planned.counted {
            let event = &batch[*i];
            let digest = id_digest(&event.agency, &event.event_id);
            ids.put(
                id_grown.bucket(digest),
                digest.to_be_bytes().to_vec(),
                id_value(event.content, event.remember_until),
            );
        }
        let (mut dossiers, swept_dossiers) =
            grow(dossier_whole, &dossier_splits, dossier_sweep, |value| {
                // A finished dossier is forgotten after its time; an open one never is.
                dossier_entry(value).is_some_and(|(state, until)| {
                    matches!(state, DossierState::Open { .. }) || until >= today
                })
            });
        let mut new_dossiers = 0u64;
        let until_of: HashMap<(&AgencyId, &DossierId), OffsetDateTime> = planned
            .counted
            .iter()
            .filter_map(|i| {
                let event = &batch[*i];
                let dossier = event.dossier.as_ref().map(dossier_id)?;
                Some(((&event.agency, dossier), event.remember_until))
            })
            .collect();
        for (agency, dossier, state) in &planned.dossiers {
            let digest = dossier_digest(agency, dossier);
            if !known_dossiers.contains_key(&digest) {
                new_dossiers += 1;
            }
            let until = until_of.get(&(agency, dossier)).copied().unwrap_or(now);
            dossiers.put(
                dossier_grown.bucket(digest),
                digest.to_be_bytes().to_vec(),
                dossier_value(*state, until),
            );
        }
        write_buckets(&mut writes, &ids, |b| keys.id_bucket(b));
        write_buckets(&mut writes, &dossiers, |b| keys.dossier_bucket(b));
        let next_spread = |grown: Spread, before: Spread, added: u64, swept: u64| Spread {
            entries: before.entries + added - swept.min(before.entries + added),
            sweep: before.sweep + 1,
            ..grown
        };
        writes.push(&[
            "SET".to_owned(),
            keys.id_spread(),
            next_spread(id_grown, id_spread, counted, swept_ids).encode(),
        ]);
        writes.push(&[
            "SET".to_owned(),
            keys.dossier_spread(),
            next_spread(dossier_grown, dossier_spread, new_dossiers, swept_dossiers).encode(),
        ]);
        self.write_counts(
            root,
            &planned,
            batch,
            &mut ordinals,
            &list_lengths,
            &mut writes,
        );

        // 5. Compare and apply (loading the script first if this Redis does not have it: a
        // new or restarted server, a failover).
        let mut connection = self.connection.clone();
        let applied: i64 = match writes.call.query_async(&mut connection).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.cas.load_async(&mut connection).await?;
                writes.call.query_async(&mut connection).await?
            }
            other => other?,
        };
        Ok((applied == 1).then_some(planned.outcomes))
    }

    /// The counters, roll-ups, online sets and new ordinals the plan adds.
    fn write_counts<'a>(
        &self,
        root: &AgencyId,
        planned: &'a Plan,
        batch: &'a [EventWrite],
        ordinals: &mut BTreeMap<(&'a AgencyId, &'a AgencyId), usize>,
        list_lengths: &BTreeMap<&'a AgencyId, usize>,
        writes: &mut Writes,
    ) {
        // Each agency's parent in its tree, from the chains.
        let mut parent_of: HashMap<&AgencyId, &AgencyId> = HashMap::new();
        for event in batch {
            for pair in event.chain.windows(2) {
                parent_of.insert(&pair[0], &pair[1]);
            }
        }
        // Ordinals for children counted for the first time: after the list's last.
        let mut lengths: BTreeMap<&AgencyId, usize> = list_lengths.clone();
        let mut appended: BTreeMap<&AgencyId, Vec<&AgencyId>> = BTreeMap::new();
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
        // Packed roll-up increments, per key: (ordinal, count).
        let mut packed: BTreeMap<String, Vec<(usize, u64)>> = BTreeMap::new();
        // Day roll-ups, per key: (child, count).
        let mut by_day: BTreeMap<String, Vec<(&AgencyId, u64)>> = BTreeMap::new();
        for ((agency, bucket), sums) in &planned.counters {
            let key = self.counters_key(root, agency, *bucket);
            let increments: Vec<(Counter, u64)> = sums.nonzero().collect();
            for (counter, n) in &increments {
                writes.push(&["HINCRBY", &key, counter.key(), &n.to_string()]);
            }
            let Some(parent) = parent_of.get(agency).copied() else {
                continue;
            };
            for (counter, n) in increments {
                let rollup = self.children_key(root, parent, *bucket, counter);
                match bucket {
                    Bucket::Day(_) => by_day.entry(rollup).or_default().push((agency, n)),
                    _ => {
                        let ordinal = ordinal_of(parent, agency);
                        packed.entry(rollup).or_default().push((ordinal, n));
                    }
                }
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
            writes.chunked("RPUSH", &list, &pushed, 1);
            let pairs: Vec<Vec<u8>> = children
                .iter()
                .flat_map(|child| {
                    let ordinal = ordinals.get(&(*parent, *child)).copied().unwrap_or(0);
                    [text(child), text(ordinal)]
                })
                .collect();
            writes.chunked("HSET", &format!("{prefix}ord"), &pairs, 2);
        }
        for (key, children) in by_day {
            for (child, n) in children {
                writes.push(&["HINCRBY", &key, child.as_str(), &n.to_string()]);
            }
        }
        for (key, increments) in packed {
            let items: Vec<Vec<u8>> = increments
                .into_iter()
                .flat_map(|(ordinal, n)| {
                    [
                        text("INCRBY"),
                        text("i64"),
                        text(format!("#{ordinal}")),
                        text(n),
                    ]
                })
                .collect();
            writes.chunked("BITFIELD", &key, &items, 4);
        }
        let mut online: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for (agency, bucket, procedure) in &planned.online {
            online
                .entry(self.online_key(root, agency, *bucket))
                .or_default()
                .push(text(procedure));
        }
        for (key, members) in online {
            writes.chunked("SADD", &key, &members, 1);
        }
    }
}

fn dossier_id(change: &govpulse_core::DossierChange) -> &DossierId {
    match change {
        govpulse_core::DossierChange::Open { dossier, .. }
        | govpulse_core::DossierChange::Close { dossier } => dossier,
    }
}

/// The buckets read whole, after the growth's splits (in order) and the sweep of `swept`
/// (keeping what `keep` keeps): the buckets to rewrite, and how many entries were dropped.
fn grow(
    mut whole: BTreeMap<u64, Entries>,
    splits: &[Split],
    swept: u64,
    keep: impl Fn(&[u8]) -> bool,
) -> (Buckets, u64) {
    let mut dropped = 0u64;
    if let Some(entries) = whole.get_mut(&swept) {
        let before = entries.len();
        entries.retain(|_, value| keep(value));
        dropped = (before - entries.len()) as u64;
    }
    for split in splits {
        let from = whole.remove(&split.from).unwrap_or_default();
        let (moved, stay): (BTreeMap<_, _>, BTreeMap<_, _>) =
            from.into_iter().partition(|(field, _)| {
                field
                    .as_slice()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .is_ok_and(|digest| digest >> split.bit & 1 == 1)
            });
        whole.insert(split.from, stay);
        whole.entry(split.to).or_default().extend(moved);
    }
    (
        Buckets {
            whole,
            set: BTreeMap::new(),
        },
        dropped,
    )
}

/// The commands that leave `buckets` as planned: a bucket rewritten whole is deleted and
/// written again (so that it keeps Redis' compact encoding), the others get their new fields.
fn write_buckets(writes: &mut Writes, buckets: &Buckets, key: impl Fn(u64) -> String) {
    for (bucket, entries) in &buckets.whole {
        let key = key(*bucket);
        writes.push(&["DEL", &key]);
        let items: Vec<&[u8]> = entries
            .iter()
            .flat_map(|(field, value)| [&field[..], &value[..]])
            .collect();
        if !items.is_empty() {
            writes.chunked("HSET", &key, &items, 2);
        }
    }
    for (bucket, entries) in &buckets.set {
        let items: Vec<&[u8]> = entries
            .iter()
            .flat_map(|(field, value)| [&field[..], &value[..]])
            .collect();
        writes.chunked("HSET", &key(*bucket), &items, 2);
    }
}

#[cfg(test)]
mod tests {
    use govpulse_core::EventId;
    use time::macros::{date, datetime};

    use super::*;

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
        });
        let (back, day) = id_entry(&id_value(content, until)).expect("an id entry");
        assert_eq!(back, content);
        assert_eq!(
            date_of(day),
            Some(date!(2027 - 09 - 20)),
            "the UTC date of the instant"
        );
        for state in [
            DossierState::Open {
                due_day: date!(2026 - 08 - 20),
            },
            DossierState::Resolved {
                day: date!(2026 - 08 - 21),
            },
            DossierState::Done,
        ] {
            assert_eq!(
                dossier_entry(&dossier_value(state, until)).map(|(s, _)| s),
                Some(state)
            );
        }
    }
}
