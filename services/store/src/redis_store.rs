//! The Redis store.
//!
//! Key schema (`P` is the configured prefix, `{root}` the top-level agency of the tree, in
//! braces so that a tree's keys share one Redis Cluster hash slot):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{root}:n:<agency>:<bucket>` | string | the agency's counters in the bucket as one record of varints (`counter_record.rs`); `due` and `due_cl` are bucketed by due day (`govpulse_core::backlog`). The root has one for every bucket, an agency below it for its months only, its quarters and years read as their months ([`keeps_record`]) and its days in its day lists (`…:p:…`; a day's record kept here before 2026-12-06 is still read and added, [`record_buckets`]) |
//! | `P:{root}:k:<parent>:d<yyyymmdd>` | hash | child agency → its counters that day, one record as above: the parent's roll-up of its children |
//! | `P:{root}:k:<parent>:<month>:<field>` | string | the same roll-up for a month, packed: each child's count as a signed 64-bit big-endian integer at offset 8 × its ordinal, added to slot by slot (`BITFIELD … INCRBY i64 #<ordinal>`) or, when a batch changes half of the slots or more, written whole (`tree_write.rs`); a quarter's or a year's is the sum of its months' |
//! | `P:{root}:k:<parent>:ids` | list | the mark of the list's creation (`created <unix seconds>.<microseconds>`), then the parent's children in the order they were first counted: a child's index is its ordinal, never changed |
//! | `P:{root}:k:<parent>:ord` | hash | child agency → its ordinal: written for the writers of the version before 2026-12-06; this one reads the list above (`ordinals.rs`) |
//! | `P:{root}:r:<root>:<bucket>` | hash | procedure → the root's counters for it in the bucket, one record as above; days and months only ([`keeps_procedures`]) |
//! | `P:{root}:p:<agency>:d<yyyymmdd>` | string | an agency below the root, per day: its own record (the entry named `counter_record::OWN`) and its procedures' in one list (`counter_record::add_to_list`) |
//! | `P:{root}:o:<agency>:<bucket>` | set | procedures that received an online dossier |
//! | `P:{root}:v` | string | the tree's version, moved on by every batch written to it (`WATCH` … `EXEC`, or the compare-and-apply script on a cluster) |
//! | `P:{root}:ex`, `P:{root}:dsx` | string | how the tree's event ids and dossier records spread over their buckets (`spread.rs`) |
//! | `P:{root}:e:<n>` | string | 27-byte records: 8-byte digest of (agency, event id), what the id says and counts (`govpulse_core::counting::Remembered`) and the UTC day it may be forgotten after (`tree_write.rs`); then free slots, zero bytes, up to the end of Redis' allocation (`bucket.rs`) |
//! | `P:{root}:ds:<n>` | string | 19-byte records: 8-byte digest of (agency, dossier id), its backlog record (`govpulse_core::backlog::Dossier`) and the day it may be forgotten after unless open; then free slots |
//! | `P:{root}:s` | hash | agency → when an event of it or its units was last accepted and the latest time such an event happened, two big-endian signed 64-bit Unix milliseconds ([`seen_bytes`]); `<agency>#n` (`#` is in no id) → its events accepted per Vietnam day of acceptance over the 35 days up to the last ([`day_counts_bytes`]); `<agency>#r` → the same of its events rejected as invalid, per day of rejection; all written as what the writer read with its batch added (`govpulse_core::freshness`) |
//! | `P:{root}:a:<agency>:<bucket>` | hash | `<profile>/<criterion>` → assessed points with two decimals (`38.75`), for the calendar period `<bucket>` |
//! | `P:{#pub}:b` | hash | publication id → the kept publication's bytes (`publications.rs`; `{#pub}` is no tree's: `#` is in no id) |
//! | `P:{#pub}:s` | hash | publication id → its summary's bytes |
//! | `P:{#pub}:t` | sorted set | publication ids, scored minus their `published_at` in Unix milliseconds (newest first) |
//!
//! Buckets are written `d20260815`, `m202608`, `q20263`, `y2026` (Vietnam local time).
//! A batch is read, planned by `govpulse_core::counting` and written per tree with one
//! transaction, or on a cluster one generic compare-and-apply script (`tree_write.rs`):
//! exactly once, atomic per tree.
//!
//! Change notices go through the pub/sub channel `P:changes` (a channel, not a key; see
//! `notices.rs`).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use async_trait::async_trait;
use govpulse_core::{
    AgencyId, Bucket, Counter, Counters, ProcedureId,
    counting::KeptBuckets,
    freshness::{ARRIVAL_DAYS, Activity, Arrivals, DayCounts, Seen},
    index::{hundredths_text, parse_hundredths},
};
use redis::{
    Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
};
use std::time::Duration;
use time::{Date, OffsetDateTime};

use crate::{
    AgencyKey, Applied, AssessedRead, AssessedWrite, CacheUse, ChangeNotice, ChildrenRead,
    CounterStore, EventWrite, GroupsRead, NewPublication, ProceduresRead, RejectedWrite,
    StoreError, counter_record,
    exclusive::Exclusive,
    notices::RedisNotices,
    ordinals::OrdinalCache,
    tree_write::{date_of, day_at, day_bytes, day_number},
    write_cache::WriteCache,
};

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisStoreConfig {
    /// A single Redis, `redis://host:port/`, or a Redis Cluster,
    /// `redis+cluster://host1:port1,host2:port2,...` (any reachable nodes: the client learns
    /// the others and the slot map from them, and follows slot moves).
    pub url: String,
    /// Prepended to every key, so that deployments (and tests) can share one Redis.
    pub prefix: String,
    /// The bytes the tree writer may keep of what it read and wrote, so as not to read it
    /// again at the next batch of the same tree (`write_cache.rs`); 0 keeps nothing.
    pub write_cache_bytes: u64,
}

/// The write cache's default size: the trees of about five million recent events (an id's
/// and a dossier's records, 46 bytes an event, with the counter records they add to).
pub const DEFAULT_WRITE_CACHE_BYTES: u64 = 256 << 20;

/// The URL scheme of a Redis Cluster.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// A connection to a single Redis or to a Redis Cluster. Both reconnect by themselves; the
/// cluster one also follows slot moves (`MOVED`, `ASK`) and refreshes its slot map.
#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// Commands of one read, each tagged with the tree whose keys it touches. On a single Redis
/// they go out as one pipeline; on a cluster a pipeline must stay within one hash slot, so
/// each tree's commands are one pipeline, all sent at once, and the replies are put back in
/// the order of the commands.
#[derive(Default, Clone)]
pub(crate) struct Commands<'a> {
    commands: Vec<(&'a AgencyId, redis::Cmd)>,
}

impl<'a> Commands<'a> {
    pub(crate) fn push(&mut self, root: &'a AgencyId, command: redis::Cmd) {
        self.commands.push((root, command));
    }

    fn len(&self) -> usize {
        self.commands.len()
    }

    /// Runs the commands as one pipeline on a connection of the caller's own (a single
    /// Redis).
    pub(crate) async fn run_on(
        self,
        connection: &mut redis::aio::MultiplexedConnection,
    ) -> Result<Vec<redis::Value>, StoreError> {
        if self.commands.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (_, command) in self.commands {
            pipe.add_command(command);
        }
        Ok(pipe.query_async(connection).await?)
    }

    pub(crate) async fn run(
        self,
        connection: &Connection,
    ) -> Result<Vec<redis::Value>, StoreError> {
        if self.commands.is_empty() {
            return Ok(Vec::new());
        }
        // The commands move into the pipelines: a children read carries 10,000 arguments.
        let count = self.commands.len();
        let replies: Vec<redis::Value> = match connection {
            Connection::Single(_) => {
                let mut pipe = redis::pipe();
                for (_, command) in self.commands {
                    pipe.add_command(command);
                }
                pipe.query_async(&mut connection.clone()).await?
            }
            Connection::Cluster(_) => {
                let mut trees: HashMap<&AgencyId, (redis::Pipeline, Vec<usize>)> = HashMap::new();
                for (position, (root, command)) in self.commands.into_iter().enumerate() {
                    let (pipe, positions) = trees.entry(root).or_default();
                    pipe.add_command(command);
                    positions.push(position);
                }
                let answers =
                    futures::future::try_join_all(trees.into_values().map(|(pipe, positions)| {
                        let mut connection = connection.clone();
                        async move {
                            let replies: Vec<redis::Value> =
                                pipe.query_async(&mut connection).await?;
                            Ok::<_, StoreError>((positions, replies))
                        }
                    }))
                    .await?;
                let mut ordered = vec![redis::Value::Nil; count];
                for (positions, replies) in answers {
                    if positions.len() != replies.len() {
                        return Err(StoreError::Unexpected(format!(
                            "{} replies for {} commands",
                            replies.len(),
                            positions.len()
                        )));
                    }
                    for (position, reply) in positions.into_iter().zip(replies) {
                        ordered[position] = reply;
                    }
                }
                ordered
            }
        };
        if replies.len() != count {
            return Err(StoreError::Unexpected(format!(
                "{} replies for {} commands",
                replies.len(),
                count
            )));
        }
        Ok(replies)
    }
}

/// `P:{root}:` and then `parts`, a bucket's text last if there is one: built without the
/// formatting machinery (a batch names thousands of keys, and `format!` of one took about
/// 2,000 instructions).
pub(crate) fn tree_key(
    prefix: &str,
    root: &AgencyId,
    parts: &[&str],
    bucket: Option<Bucket>,
) -> String {
    let named: usize = parts.iter().map(|part| part.len()).sum();
    let mut key = String::with_capacity(prefix.len() + root.as_str().len() + named + 16);
    key.push_str(prefix);
    key.push_str(":{");
    key.push_str(root.as_str());
    key.push_str("}:");
    for part in parts {
        key.push_str(part);
    }
    if let Some(bucket) = bucket {
        bucket.push_to(&mut key);
    }
    key
}

/// Counters in Redis.
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) connection: Connection,
    pub(crate) prefix: String,
    /// The generic compare-and-apply script batches are written with on a cluster
    /// (`tree_write.rs`).
    pub(crate) cas: Script,
    /// On a single Redis, the connections batches are written with as transactions
    /// (`WATCH` … `MULTI` … `EXEC`, `tree_write.rs`); `None` on a cluster.
    pub(crate) writers: Option<Arc<Exclusive>>,
    /// Change notices on the pub/sub channel `P:changes`.
    notices: Arc<RedisNotices>,
    /// Children's ordinals in the packed roll-ups, as far as they were read (by the reads
    /// of children and by the tree writer).
    pub(crate) ordinals: Arc<OrdinalCache>,
    /// What the tree writer read and wrote, for its next batch of the same tree.
    pub(crate) write_cache: Arc<WriteCache>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects (and keeps reconnecting when the connection drops).
    pub async fn connect(config: RedisStoreConfig) -> Result<Self, StoreError> {
        // Small pipelined replies must not wait for Nagle's algorithm.
        let tcp = || redis::io::tcp::TcpSettings::default().set_nodelay(true);
        let (connect_timeout, response_timeout) = (Duration::from_secs(5), Duration::from_secs(10));
        // Change notices use classic pub/sub, where a message published on any node of a
        // cluster reaches the subscribers of every node: one subscribing connection, to the
        // first node named, is enough.
        let (connection, pubsub, writers) = match config.url.strip_prefix(CLUSTER_SCHEME) {
            Some(nodes) => {
                let nodes: Vec<String> = nodes
                    .split(',')
                    .map(str::trim)
                    .filter(|node| !node.is_empty())
                    .map(|node| format!("redis://{}/", node.trim_end_matches('/')))
                    .collect();
                if nodes.is_empty() {
                    return Err(StoreError::Unexpected(format!(
                        "{CLUSTER_SCHEME} names no node: {}",
                        config.url
                    )));
                }
                let pubsub = redis::Client::open(
                    redis::IntoConnectionInfo::into_connection_info(nodes[0].as_str())?
                        .set_tcp_settings(tcp()),
                )?;
                let client = ClusterClient::builder(nodes)
                    .connection_timeout(connect_timeout)
                    .response_timeout(response_timeout)
                    .retries(3)
                    .tcp_settings(tcp())
                    .build()?;
                (
                    Connection::Cluster(client.get_async_connection().await?),
                    pubsub,
                    None,
                )
            }
            None => {
                let info = redis::IntoConnectionInfo::into_connection_info(config.url.as_str())?
                    .set_tcp_settings(tcp());
                let client = redis::Client::open(info)?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout))
                    .set_number_of_retries(2);
                (
                    Connection::Single(
                        ConnectionManager::new_with_config(client.clone(), manager_config).await?,
                    ),
                    client.clone(),
                    Some(Arc::new(Exclusive::new(
                        client,
                        connect_timeout,
                        response_timeout,
                    ))),
                )
            }
        };
        let notices = Arc::new(RedisNotices::new(pubsub, &config.prefix));
        Ok(Self {
            connection,
            prefix: config.prefix,
            cas: Script::new(crate::tree_write::CAS_SCRIPT),
            writers,
            notices,
            ordinals: Arc::default(),
            write_cache: Arc::new(WriteCache::new(config.write_cache_bytes)),
        })
    }

    pub(crate) fn counters_key(
        &self,
        root: &AgencyId,
        agency: &AgencyId,
        bucket: Bucket,
    ) -> String {
        tree_key(
            &self.prefix,
            root,
            &["n:", agency.as_str(), ":"],
            Some(bucket),
        )
    }

    /// The roll-up of `parent`'s children for one day: child → its counter record.
    pub(crate) fn day_children_key(
        &self,
        root: &AgencyId,
        parent: &AgencyId,
        day: Bucket,
    ) -> String {
        tree_key(&self.prefix, root, &["k:", parent.as_str(), ":"], Some(day))
    }

    pub(crate) fn children_key(
        &self,
        root: &AgencyId,
        parent: &AgencyId,
        bucket: Bucket,
        counter: Counter,
    ) -> String {
        let mut key = self.day_children_key(root, parent, bucket);
        key.push(':');
        key.push_str(counter.key());
        key
    }

    /// The roll-up key of `parent`'s children without its bucket and counter.
    pub(crate) fn children_prefix(&self, root: &AgencyId, parent: &AgencyId) -> String {
        tree_key(&self.prefix, root, &["k:", parent.as_str(), ":"], None)
    }

    /// An agency's procedures on one day, below its tree's root: their record list
    /// (`counter_record::add_to_list`).
    pub(crate) fn procedure_list_key(
        &self,
        root: &AgencyId,
        agency: &AgencyId,
        day: Date,
    ) -> String {
        tree_key(
            &self.prefix,
            root,
            &["p:", agency.as_str(), ":"],
            Some(Bucket::Day(day)),
        )
    }

    /// The key a read finds `key`'s counters in `bucket` at ([`Held`]).
    fn held_key(&self, key: &AgencyKey, bucket: Bucket, held: Held) -> String {
        match held {
            Held::Record => self.counters_key(&key.root, &key.agency, bucket),
            Held::DayList => self.procedure_list_key(&key.root, &key.agency, bucket.first_day()),
        }
    }

    /// A tree's root's counters per procedure in one bucket: procedure → its counter record.
    pub(crate) fn root_procedures_key(&self, root: &AgencyId, bucket: Bucket) -> String {
        tree_key(
            &self.prefix,
            root,
            &["r:", root.as_str(), ":"],
            Some(bucket),
        )
    }

    pub(crate) fn online_key(&self, root: &AgencyId, agency: &AgencyId, bucket: Bucket) -> String {
        tree_key(
            &self.prefix,
            root,
            &["o:", agency.as_str(), ":"],
            Some(bucket),
        )
    }

    /// What was last seen of the tree's agencies ([`seen_bytes`]).
    pub(crate) fn seen_key(&self, root: &AgencyId) -> String {
        tree_key(&self.prefix, root, &["s"], None)
    }

    fn assessed_key(&self, key: &AgencyKey, bucket: Bucket) -> String {
        tree_key(
            &self.prefix,
            &key.root,
            &["a:", key.agency.as_str(), ":"],
            Some(bucket),
        )
    }
}

#[async_trait]
impl CounterStore for RedisStore {
    async fn publish_change(&self, notice: &ChangeNotice) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: i64 = redis::cmd("PUBLISH")
            .arg(self.notices.channel())
            .arg(crate::notices::encode(notice))
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    async fn subscribe_changes(
        &self,
    ) -> Result<tokio::sync::broadcast::Receiver<ChangeNotice>, StoreError> {
        self.notices.subscribe().await
    }

    async fn keep_publication(
        &self,
        publication: NewPublication<'_>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.keep_publication_in_redis(publication).await
    }

    async fn publication(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.publication_in_redis(id).await
    }

    fn write_cache_use(&self) -> Option<CacheUse> {
        Some(self.write_cache.usage())
    }

    async fn publications(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, usize), StoreError> {
        self.publications_in_redis(offset, limit).await
    }

    async fn apply_with_rejected(
        &self,
        events: &[EventWrite],
        rejected: &[RejectedWrite],
    ) -> Result<Vec<Applied>, StoreError> {
        // Most batches are one agency's, so one tree's: applied as they came, without
        // grouping (a map entry per event was 2% of a batch's instructions).
        let first = events
            .first()
            .map(EventWrite::root)
            .or_else(|| rejected.iter().find_map(RejectedWrite::root));
        if let Some(root) = first
            && events.iter().all(|event| event.root() == root)
            && rejected
                .iter()
                .all(|write| write.root().is_none_or(|r| r == root))
        {
            return self.apply_tree(root, events, rejected).await;
        }
        // Per tree, its events' and its rejections' positions.
        let mut trees: foldhash::HashMap<&AgencyId, (Vec<usize>, Vec<usize>)> =
            foldhash::HashMap::default();
        for (position, event) in events.iter().enumerate() {
            trees.entry(event.root()).or_default().0.push(position);
        }
        for (position, write) in rejected.iter().enumerate() {
            if let Some(root) = write.root() {
                trees.entry(root).or_default().1.push(position);
            }
        }
        let mut outcomes = vec![Applied::Duplicate; events.len()];
        for (root, (positions, rejections)) in &trees {
            let batch: Vec<EventWrite> = positions.iter().map(|i| events[*i].clone()).collect();
            let rejected: Vec<RejectedWrite> =
                rejections.iter().map(|i| rejected[*i].clone()).collect();
            let applied = self.apply_tree(root, &batch, &rejected).await?;
            for (position, outcome) in positions.iter().zip(applied) {
                outcomes[*position] = outcome;
            }
        }
        Ok(outcomes)
    }

    async fn read(&self, read: GroupsRead<'_>) -> Result<Vec<Counters>, StoreError> {
        let (groups, buckets, needs) = (read.groups, read.buckets, read.needs);
        // The distinct union is the costliest command of all: only for the metric that needs
        // it. A counter record is a few dozen bytes: read whole, the caller's counters kept.
        let read_counters = !needs.counters.is_empty();
        let mut commands = Commands::default();
        // Per group, where its distinct count comes from: when its sets are in one tree, one
        // size (an SCARD after its counters, or its place in a batch of unions read last),
        // else one member list per tree (a merged province read with its predecessors),
        // united here because a cluster cannot union across hash slots.
        let mut distinct_replies = Vec::with_capacity(groups.len());
        let mut unions = UnionBatches::default();
        // Per agency of every group in order, the keys its MGET reads and what each holds.
        let mut record_reads: Vec<Vec<(String, Held)>> = Vec::new();
        for group in groups {
            if read_counters && !buckets.is_empty() {
                for key in group {
                    let read: Vec<(String, Held)> = record_buckets(key, buckets)
                        .map(|(bucket, held)| (self.held_key(key, bucket, held), held))
                        .collect();
                    let mut mget = redis::cmd("MGET");
                    for (key, _) in &read {
                        mget.arg(key);
                    }
                    commands.push(&key.root, mget);
                    record_reads.push(read);
                }
            }
            if !needs.distinct || buckets.is_empty() {
                distinct_replies.push(DistinctReplies::None);
                continue;
            }
            let mut trees: Vec<(&AgencyId, Vec<String>)> = Vec::new();
            for key in group {
                let sets = buckets
                    .iter()
                    .map(|bucket| self.online_key(&key.root, &key.agency, *bucket));
                match trees.iter_mut().find(|(root, _)| *root == &key.root) {
                    Some((_, tree_sets)) => tree_sets.extend(sets),
                    None => trees.push((&key.root, sets.collect())),
                }
            }
            match trees.as_slice() {
                [] => distinct_replies.push(DistinctReplies::None),
                [(root, sets)] if sets.len() == 1 => {
                    let mut scard = redis::cmd("SCARD");
                    scard.arg(&sets[0]);
                    commands.push(root, scard);
                    distinct_replies.push(DistinctReplies::Size);
                }
                [(root, sets)] => {
                    let (batch, index) = unions.add(root, sets);
                    distinct_replies.push(DistinctReplies::Union { batch, index });
                }
                many => {
                    for (root, sets) in many {
                        let mut sunion = redis::cmd("SUNION");
                        sunion.arg(sets);
                        commands.push(root, sunion);
                    }
                    distinct_replies.push(DistinctReplies::Members(many.len()));
                }
            }
        }
        // The union sizes go last, one script per batch of groups.
        let first_union = commands.len();
        let batch_groups: Vec<usize> = unions.batches.iter().map(|b| b.counts.len()).collect();
        for batch in unions.batches {
            let mut eval = redis::cmd("EVAL");
            eval.arg(UNION_SIZES_SCRIPT)
                .arg(batch.sets.len())
                .arg(batch.sets)
                .arg(&batch.counts);
            commands.push(batch.root, eval);
        }
        let expected = commands.len();
        let mut replies = commands.run(&self.connection).await?;
        let union_sizes: Vec<Vec<u64>> = replies
            .split_off(first_union)
            .into_iter()
            .map(redis::from_redis_value)
            .collect::<Result<_, _>>()?;
        for (sizes, groups) in union_sizes.iter().zip(&batch_groups) {
            if sizes.len() != *groups {
                return Err(StoreError::Unexpected(format!(
                    "{} union sizes for {groups} groups",
                    sizes.len()
                )));
            }
        }
        let mut replies = replies.into_iter();
        let mut out = Vec::with_capacity(groups.len());
        let mut record_reads = record_reads.into_iter();
        for (group, distinct) in groups.iter().zip(distinct_replies) {
            let mut total = Counters::default();
            if read_counters && !buckets.is_empty() {
                for _ in group {
                    let records: Vec<Option<Vec<u8>>> =
                        redis::from_redis_value(next_reply(&mut replies, expected)?)?;
                    let read = record_reads
                        .next()
                        .ok_or_else(|| StoreError::Unexpected("a read of no records".to_owned()))?;
                    if records.len() != read.len() {
                        return Err(StoreError::Unexpected(format!(
                            "{} counter records for {} buckets",
                            records.len(),
                            read.len()
                        )));
                    }
                    for ((key, held), record) in read.into_iter().zip(records) {
                        let Some(record) = record else { continue };
                        let counters = match held {
                            Held::Record => counter_record::decode(&record),
                            Held::DayList => {
                                counter_record::own_of_list(&record).map(Option::unwrap_or_default)
                            }
                        };
                        let counters = counters.ok_or_else(|| {
                            StoreError::Unexpected(format!("{key} holds no counters"))
                        })?;
                        for counter in &needs.counters {
                            total.increment(*counter, counters.get(*counter));
                        }
                    }
                }
            }
            total.procedures_with_online_dossiers = match distinct {
                DistinctReplies::None => 0,
                DistinctReplies::Size => {
                    redis::from_redis_value(next_reply(&mut replies, expected)?)?
                }
                DistinctReplies::Union { batch, index } => union_sizes
                    .get(batch)
                    .and_then(|sizes| sizes.get(index))
                    .copied()
                    .ok_or_else(|| {
                        StoreError::Unexpected(format!(
                            "no union size {index} in the replies of union batch {batch}"
                        ))
                    })?,
                DistinctReplies::Members(trees) => {
                    let mut members: std::collections::HashSet<String> =
                        std::collections::HashSet::new();
                    for _ in 0..trees {
                        let tree_members: Vec<String> =
                            redis::from_redis_value(next_reply(&mut replies, expected)?)?;
                        members.extend(tree_members);
                    }
                    members.len() as u64
                }
            };
            out.push(total);
        }
        Ok(out)
    }

    async fn read_procedures(
        &self,
        read: ProceduresRead<'_>,
    ) -> Result<Vec<(ProcedureId, Counters)>, StoreError> {
        let (group, buckets, counters) = (read.of, read.buckets, read.counters);
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        // A root: one HGETALL per bucket of its procedure hashes. An agency below it: one
        // MGET of its record lists of every day of the buckets.
        let mut commands = Commands::default();
        let mut lists = Vec::new();
        for key in group {
            if key.agency == key.root {
                let kept = buckets
                    .iter()
                    .flat_map(|bucket| kept_or_months(*bucket, keeps_procedures(*bucket)));
                for bucket in kept {
                    let hash = self.root_procedures_key(&key.root, bucket);
                    commands.push(&key.root, redis::cmd("HGETALL").arg(hash).clone());
                    lists.push(false);
                }
                continue;
            }
            let mut mget = redis::cmd("MGET");
            for bucket in buckets {
                let mut day = Some(bucket.first_day());
                while let Some(d) = day.filter(|d| *d <= bucket.last_day()) {
                    mget.arg(self.procedure_list_key(&key.root, &key.agency, d));
                    day = d.next_day();
                }
            }
            commands.push(&key.root, mget);
            lists.push(true);
        }
        // Hashed while summing (2,000 procedures in a dozen buckets), sorted once at the end.
        let mut totals: foldhash::HashMap<String, Counters> = foldhash::HashMap::default();
        let mut add = |procedure: &str, record: Counters| {
            let total = match totals.get_mut(procedure) {
                Some(total) => total,
                None => totals.entry(procedure.to_owned()).or_default(),
            };
            for counter in counters {
                total.increment(*counter, record.get(*counter));
            }
        };
        for (reply, is_lists) in commands.run(&self.connection).await?.into_iter().zip(lists) {
            if !is_lists {
                each_entry(reply, |procedure, record| {
                    add(
                        procedure,
                        decode_record("a procedures hash", procedure, record)?,
                    );
                    Ok(())
                })?;
                continue;
            }
            let stored: Vec<Option<Vec<u8>>> = redis::from_redis_value(reply)?;
            for list in stored.iter().flatten() {
                let entries = counter_record::decode_list(list).ok_or_else(|| {
                    StoreError::Unexpected("a procedure list holds no record list".to_owned())
                })?;
                for (procedure, record) in entries {
                    // The agency's own entry is no procedure's.
                    if procedure != counter_record::OWN {
                        add(procedure, record);
                    }
                }
            }
        }
        let mut totals = totals
            .into_iter()
            .map(|(procedure, counters)| {
                let procedure = ProcedureId::parse(&procedure).map_err(|e| {
                    StoreError::Unexpected(format!("a procedure id {procedure:?} that {e}"))
                })?;
                Ok((procedure, counters))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        totals.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        Ok(totals)
    }

    async fn read_children(&self, read: ChildrenRead<'_>) -> Result<Vec<Counters>, StoreError> {
        let (parent, children) = (read.of.parent, read.of.children);
        let (buckets, counters) = (read.buckets, read.counters);
        let mut totals = vec![Counters::default(); children.len()];
        if children.is_empty() || buckets.is_empty() || counters.is_empty() {
            return Ok(totals);
        }
        let prefix = self.children_prefix(&parent.root, &parent.agency);
        let ids_key = format!("{prefix}ids");
        let from = self.ordinals.next_read(&ids_key);
        // One round trip: the ordinals list's creation mark, its last entry known and those
        // added since the last read, then every roll-up. A day's roll-up is a hash (HGETALL: few children
        // count on one day); a longer bucket's is a packed array (GET: one value per child,
        // contiguous in Redis' memory, no parsing per child).
        let mut commands = Commands::default();
        let mut lrange = redis::cmd("LRANGE");
        lrange.arg(&ids_key).arg(0).arg(0);
        commands.push(&parent.root, lrange);
        let mut lrange = redis::cmd("LRANGE");
        lrange.arg(&ids_key).arg(from).arg(-1);
        commands.push(&parent.root, lrange);
        // A day's roll-up: one HGETALL of its records, whatever the counters; a month's: one
        // GET per counter; a quarter's or a year's: its months' (only months are packed).
        let mut reads: Vec<Option<Counter>> = Vec::new();
        for bucket in buckets {
            if matches!(bucket, Bucket::Day(_)) {
                let key = self.day_children_key(&parent.root, &parent.agency, *bucket);
                commands.push(&parent.root, redis::cmd("HGETALL").arg(key).clone());
                reads.push(None);
                continue;
            }
            for month in months_of(*bucket) {
                for counter in counters {
                    let key = self.children_key(&parent.root, &parent.agency, month, *counter);
                    commands.push(&parent.root, redis::cmd("GET").arg(key).clone());
                    reads.push(Some(*counter));
                }
            }
        }
        let expected = commands.len();
        let mut replies = commands.run(&self.connection).await?.into_iter();
        let created: Vec<Vec<u8>> = redis::from_redis_value(next_reply(&mut replies, expected)?)?;
        let added: Vec<String> = redis::from_redis_value(next_reply(&mut replies, expected)?)?;
        let created = created.first().map(Vec::as_slice);
        let ordinals = match self
            .ordinals
            .update(&ids_key, created, from, added, children)
        {
            Some(ordinals) => ordinals,
            // The list is not the one cached (the data was flushed or restored): the whole
            // list, read after the roll-ups, names every child they count.
            None => {
                let all: Vec<String> = redis::cmd("LRANGE")
                    .arg(&ids_key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut self.connection.clone())
                    .await?;
                self.ordinals.update_whole(&ids_key, all, children)?
            }
        };
        let mut positions: Option<foldhash::HashMap<&str, usize>> = None;
        for read in reads {
            let reply = next_reply(&mut replies, expected)?;
            match read {
                None => {
                    // foldhash: SipHash over 10,000 ids, built and then probed once per
                    // roll-up entry, was a sizeable part of a block query's time.
                    let positions = positions.get_or_insert_with(|| {
                        children
                            .iter()
                            .enumerate()
                            .map(|(i, child)| (child.as_str(), i))
                            .collect()
                    });
                    add_children_records(reply, counters, positions, &mut totals)?;
                }
                Some(counter) => add_packed_counts(reply, counter, &ordinals, &mut totals)?,
            }
        }
        Ok(totals)
    }

    async fn put_assessed(&self, scores: &[AssessedWrite]) -> Result<(), StoreError> {
        if scores.is_empty() {
            return Ok(());
        }
        // MULTI/EXEC: the scores are stored together. HSET replaces a field, so a retried
        // report stores the same values again. On a cluster a transaction stays within one
        // hash slot: one per tree, sent at once, so there a call is atomic per tree.
        let pipeline = |scores: &mut dyn Iterator<Item = &AssessedWrite>| {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for score in scores {
                pipe.hset(
                    self.assessed_key(&score.key, score.bucket),
                    format!("{}/{}", score.profile, score.criterion),
                    hundredths_text(score.hundredths),
                )
                .ignore();
            }
            pipe
        };
        match &self.connection {
            Connection::Single(_) => {
                let () = pipeline(&mut scores.iter())
                    .query_async(&mut self.connection.clone())
                    .await?;
            }
            Connection::Cluster(_) => {
                let mut trees: HashMap<&AgencyId, Vec<&AssessedWrite>> = HashMap::new();
                for score in scores {
                    trees.entry(&score.key.root).or_default().push(score);
                }
                futures::future::try_join_all(trees.into_values().map(|tree| {
                    let pipe = pipeline(&mut tree.into_iter());
                    let mut connection = self.connection.clone();
                    async move {
                        let () = pipe.query_async(&mut connection).await?;
                        Ok::<_, StoreError>(())
                    }
                }))
                .await?;
            }
        }
        Ok(())
    }

    async fn read_activity(
        &self,
        agencies: &[AgencyKey],
        days: &[Date],
    ) -> Result<Vec<Activity>, StoreError> {
        // Per tree one HMGET: what was seen of each agency and, when days are asked for, its
        // accepted and its rejected events per day, whatever the number of agencies (10,000
        // units of a province are one command).
        let mut trees: BTreeMap<&AgencyId, Vec<usize>> = BTreeMap::new();
        for (i, key) in agencies.iter().enumerate() {
            trees.entry(&key.root).or_default().push(i);
        }
        let mut commands = Commands::default();
        for (root, members) in &trees {
            let mut hmget = redis::cmd("HMGET");
            hmget.arg(self.seen_key(root));
            for i in members {
                hmget.arg(agencies[*i].agency.as_str());
            }
            if !days.is_empty() {
                for field in [accepted_field, rejected_field] {
                    for i in members {
                        hmget.arg(field(&agencies[*i].agency));
                    }
                }
            }
            commands.push(root, hmget);
        }
        let replies = commands.run(&self.connection).await?;
        if replies.len() != trees.len() {
            return Err(StoreError::Unexpected(
                "fewer replies than commands".to_owned(),
            ));
        }
        let mut activity = vec![Activity::default(); agencies.len()];
        for (members, reply) in trees.values().zip(replies) {
            let mut seen: Vec<Option<Vec<u8>>> = redis::from_redis_value(reply)?;
            let mut accepted = seen.split_off(members.len().min(seen.len()));
            let rejected = accepted.split_off(members.len().min(accepted.len()));
            for (j, i) in members.iter().enumerate() {
                let seen = match seen.get(j).and_then(Option::as_deref) {
                    None => Seen::default(),
                    Some(bytes) => seen_from_bytes(bytes)
                        .ok_or_else(|| StoreError::Unexpected("a torn seen record".to_owned()))?,
                };
                // A record of the rejections may be missing where the accepted one is not:
                // every agency written before they were counted (it reads as none).
                let arrivals = Arrivals {
                    accepted: day_counts_read(&accepted, j)?,
                    rejected: day_counts_read(&rejected, j)?,
                };
                activity[*i] = Activity {
                    seen,
                    days: days.iter().map(|day| arrivals.on(*day)).collect(),
                };
            }
        }
        Ok(activity)
    }

    async fn read_assessed(
        &self,
        read: AssessedRead<'_>,
    ) -> Result<Vec<Vec<(String, u64)>>, StoreError> {
        let (agencies, bucket, profile) = (read.agencies, read.bucket, read.profile);
        let mut commands = Commands::default();
        for key in agencies {
            let mut hgetall = redis::cmd("HGETALL");
            hgetall.arg(self.assessed_key(key, bucket));
            commands.push(&key.root, hgetall);
        }
        let replies = commands.run(&self.connection).await?;
        let prefix = format!("{profile}/");
        replies
            .into_iter()
            .map(|reply| {
                let hash: HashMap<String, String> = redis::from_redis_value(reply)?;
                let mut points: Vec<(String, u64)> = hash
                    .into_iter()
                    .filter_map(|(field, value)| {
                        field
                            .strip_prefix(&prefix)
                            .map(|criterion| (criterion.to_owned(), value))
                    })
                    .map(|(criterion, value)| {
                        parse_hundredths(&value)
                            .map(|h| (criterion, h))
                            .map_err(|e| StoreError::Unexpected(e.to_string()))
                    })
                    .collect::<Result<_, _>>()?;
                points.sort();
                Ok(points)
            })
            .collect()
    }
}

/// What a store keeps of [`Seen`]: the last acceptance and the latest event time, each as
/// big-endian signed 64-bit Unix milliseconds; `None` for a record with no acceptance (never
/// written: an agency is recorded with its first counted event).
pub(crate) fn seen_bytes(seen: Seen) -> Option<[u8; 16]> {
    let millis = |at: OffsetDateTime| {
        i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&millis(seen.last_accepted?).to_be_bytes());
    bytes[8..].copy_from_slice(&millis(seen.last_occurred?).to_be_bytes());
    Some(bytes)
}

/// The [`Seen`] that [`seen_bytes`] wrote; `None` for anything else.
pub(crate) fn seen_from_bytes(bytes: &[u8]) -> Option<Seen> {
    let moment = |raw: &[u8]| {
        let millis = i64::from_be_bytes(raw.try_into().ok()?);
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()
    };
    if bytes.len() != 16 {
        return None;
    }
    Some(Seen {
        last_accepted: Some(moment(&bytes[..8])?),
        last_occurred: Some(moment(&bytes[8..])?),
    })
}

/// The field of an agency's accepted events per day in its tree's `s` hash: `<agency>#n`.
pub(crate) fn accepted_field(agency: &AgencyId) -> Vec<u8> {
    day_counts_field(agency, b"#n")
}

/// The field of an agency's rejected events per day in its tree's `s` hash: `<agency>#r`. A
/// field of its own rather than more bytes in `#n`: a batch without rejections reads and
/// writes what it did before they were counted, and `#n` stays what the previous version
/// reads (as exactly 142 bytes), so replicas of both can run side by side in a rolling
/// upgrade (an older one ignores `#r`; a newer one reads a missing `#r` as no rejections).
pub(crate) fn rejected_field(agency: &AgencyId) -> Vec<u8> {
    day_counts_field(agency, b"#r")
}

fn day_counts_field(agency: &AgencyId, suffix: &[u8]) -> Vec<u8> {
    let mut field = Vec::with_capacity(agency.as_str().len() + suffix.len());
    field.extend_from_slice(agency.as_str().as_bytes());
    field.extend_from_slice(suffix);
    field
}

/// The `j`-th of the records of events per day an `HMGET` read: none when missing.
fn day_counts_read(read: &[Option<Vec<u8>>], j: usize) -> Result<DayCounts, StoreError> {
    match read.get(j).and_then(Option::as_deref) {
        None => Ok(DayCounts::default()),
        Some(bytes) => day_counts_from_bytes(bytes)
            .ok_or_else(|| StoreError::Unexpected("a torn record of events per day".to_owned())),
    }
}

/// What a store keeps of [`DayCounts`]: the latest day counted (as id records keep days:
/// [`day_bytes`]) then each day's count back from it (four bytes big-endian each), 142 bytes;
/// `None` for counts with no day (nothing to keep).
pub(crate) fn day_counts_bytes(counts: &DayCounts) -> Option<Vec<u8>> {
    let (last, counts) = counts.parts();
    let mut bytes = Vec::with_capacity(2 + 4 * counts.len());
    bytes.extend_from_slice(&day_bytes(day_number(last?)));
    for count in counts {
        bytes.extend_from_slice(&count.to_be_bytes());
    }
    Some(bytes)
}

/// The [`DayCounts`] that [`day_counts_bytes`] wrote; `None` for anything else.
pub(crate) fn day_counts_from_bytes(bytes: &[u8]) -> Option<DayCounts> {
    let last = date_of(day_at(bytes, 0)?)?;
    let rest = &bytes[2..];
    let mut counts = [0u32; ARRIVAL_DAYS];
    if rest.len() != 4 * ARRIVAL_DAYS {
        return None;
    }
    for (count, raw) in counts.iter_mut().zip(rest.chunks_exact(4)) {
        *count = u32::from_be_bytes(raw.try_into().ok()?);
    }
    Some(DayCounts::from_parts(Some(last), counts))
}

/// What follows a group's counter replies for its distinct count.
#[derive(Debug, Clone, Copy)]
enum DistinctReplies {
    /// Nothing: not asked for.
    None,
    /// The size of the one set, `SCARD`.
    Size,
    /// The size of the union, the `index`-th answer of union batch `batch`.
    Union { batch: usize, index: usize },
    /// The members of each of this many trees' unions, to unite here.
    Members(usize),
}

/// Whether `agency` of the tree of `root` keeps a counter record for `bucket`: the root for
/// every bucket (a ranking reads a quarter or a year of each root as one record), an agency
/// below it for its days and months only (an event of a unit reads and writes two records
/// fewer; its day's record is the own entry of its day's list, [`in_day_list`]). A quarter or
/// a year not kept is read as its months ([`kept_or_months`]).
pub(crate) fn keeps_record(root: &AgencyId, agency: &AgencyId, bucket: Bucket) -> bool {
    KEPT.keeps(agency == root, bucket)
}

/// The buckets this store keeps counters in ([`keeps_record`]): what it has batches
/// planned for.
pub(crate) const KEPT: KeptBuckets = KeptBuckets::MonthsBelowRoot;

/// Whether the root's procedure breakdown is kept in `bucket`: in days and months only (its
/// drill-down of a year reads 12 hashes; every batch writes 2 instead of 4).
pub(crate) fn keeps_procedures(bucket: Bucket) -> bool {
    bucket.is_month_or_shorter()
}

/// The buckets whose records hold `bucket`'s counts: the bucket itself when a record is
/// `kept` for it, else its months.
fn kept_or_months(bucket: Bucket, kept: bool) -> Vec<Bucket> {
    match kept {
        true => vec![bucket],
        false => months_of(bucket),
    }
}

/// Whether `agency`'s counters in `bucket` are the own entry of its day's record list
/// (`…:p:<agency>:d<day>`, [`counter_record::OWN`]) rather than a counter record of their own:
/// the days of an agency below the root, whose procedures that list holds too.
pub(crate) fn in_day_list(root: &AgencyId, agency: &AgencyId, bucket: Bucket) -> bool {
    agency != root && matches!(bucket, Bucket::Day(_))
}

/// Where a read finds an agency's counters in one bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Held {
    /// Its counter record (`…:n:<agency>:<bucket>`).
    Record,
    /// The own entry of its day's record list ([`in_day_list`]).
    DayList,
}

/// The buckets that hold `key`'s counts in `buckets` and where: the bucket's counter record
/// when one is kept for it, else its months'; for a day of an agency below the root, its
/// day's record list and the counter record such a day had until 2026-12-06 (never written
/// since; read and added, so that a store written before keeps every figure).
fn record_buckets(key: &AgencyKey, buckets: &[Bucket]) -> impl Iterator<Item = (Bucket, Held)> {
    buckets
        .iter()
        .flat_map(move |bucket| {
            kept_or_months(*bucket, keeps_record(&key.root, &key.agency, *bucket))
        })
        .flat_map(move |bucket| {
            let listed = in_day_list(&key.root, &key.agency, bucket);
            std::iter::once((bucket, Held::Record)).chain(listed.then_some((bucket, Held::DayList)))
        })
}

/// The months a month, quarter or year spans (a day spans none): the packed roll-ups that
/// make up its children's counts, and the records of a unit's quarter or year.
fn months_of(bucket: Bucket) -> Vec<Bucket> {
    match bucket {
        Bucket::Day(_) => Vec::new(),
        Bucket::Month(..) => vec![bucket],
        Bucket::Quarter(..) => bucket.parts(),
        Bucket::Year(_) => bucket.parts().into_iter().flat_map(Bucket::parts).collect(),
    }
}

/// Adds a packed roll-up (a GET: signed 64-bit big-endian counts at the children's
/// ordinals; nil when nothing was counted) to the children's totals. `ordinals` are the
/// children's, in their order; a child never counted, or past the array's end, has none.
fn add_packed_counts(
    reply: redis::Value,
    counter: Counter,
    ordinals: &[Option<usize>],
    totals: &mut [Counters],
) -> Result<(), StoreError> {
    let packed = match reply {
        redis::Value::Nil => return Ok(()),
        redis::Value::BulkString(bytes) => bytes,
        other => {
            return Err(StoreError::Unexpected(format!(
                "a packed roll-up {other:?}"
            )));
        }
    };
    for (ordinal, total) in ordinals.iter().zip(totals.iter_mut()) {
        let Some(slot) = ordinal.and_then(|o| packed.get(o * 8..o * 8 + 8)) else {
            continue;
        };
        let count = i64::from_be_bytes(slot.try_into().expect("a slot is 8 bytes"));
        let count = u64::try_from(count).map_err(|_| {
            StoreError::Unexpected(format!("a negative count {count} in a packed roll-up"))
        })?;
        total.increment(counter, count);
    }
    Ok(())
}

/// Adds an `HGETALL` reply of a day roll-up (child id → counter record) to the children it names;
/// children not asked for (no longer members on the period's last day) are passed over
/// without decoding their records.
fn add_children_records(
    reply: redis::Value,
    counters: &[Counter],
    positions: &foldhash::HashMap<&str, usize>,
    totals: &mut [Counters],
) -> Result<(), StoreError> {
    each_entry(reply, |child, record| {
        if let Some(position) = positions.get(child) {
            let record = decode_record("the day roll-up", child, record)?;
            for counter in counters {
                totals[*position].increment(*counter, record.get(*counter));
            }
        }
        Ok(())
    })
}

/// The counter record `bytes`, held under `field` of `what`.
fn decode_record(what: &str, field: &str, bytes: &[u8]) -> Result<Counters, StoreError> {
    counter_record::decode(bytes).ok_or_else(|| {
        StoreError::Unexpected(format!("{what} holds no counter record for {field}"))
    })
}

/// Calls `f` with each field of an `HGETALL` reply and the bytes it holds.
fn each_entry(
    reply: redis::Value,
    mut f: impl FnMut(&str, &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut add = |field: &redis::Value, value: &redis::Value| -> Result<(), StoreError> {
        let (redis::Value::BulkString(field), redis::Value::BulkString(value)) = (field, value)
        else {
            return Err(StoreError::Unexpected(format!(
                "an HGETALL entry {field:?} → {value:?}"
            )));
        };
        f(&String::from_utf8_lossy(field), value)
    };
    match reply {
        // RESP2 answers a flat list of field, value, field, value, ...
        redis::Value::Array(items) => {
            for pair in items.chunks(2) {
                match pair {
                    [field, value] => add(field, value)?,
                    _ => return Err(StoreError::Unexpected("an odd HGETALL reply".to_owned())),
                }
            }
        }
        // RESP3 answers a map.
        redis::Value::Map(entries) => {
            for (field, value) in &entries {
                add(field, value)?;
            }
        }
        other => {
            return Err(StoreError::Unexpected(format!(
                "HGETALL answered {other:?}"
            )));
        }
    }
    Ok(())
}

/// The exact size of the union of each group's sets, computed in Redis so the members never
/// cross the network: KEYS are the sets of one group after another, `ARGV[i]` the number of
/// sets of group `i`; answers one size per group. The KEYS share one tree's hash slot, so this
/// also runs on a cluster.
const UNION_SIZES_SCRIPT: &str = "local sizes, first = {}, 1
for i = 1, #ARGV do
  local last = first + tonumber(ARGV[i]) - 1
  sizes[i] = #redis.call('SUNION', unpack(KEYS, first, last))
  first = last + 1
end
return sizes";

/// At most this many groups' unions per script: one script call costs a few microseconds
/// more than the unions it computes (a block of 10,000 units, one script per unit, spent
/// most of its 300 ms there), but Redis serves no other client while a script runs.
const UNION_GROUPS_PER_SCRIPT: usize = 500;

/// The distinct counts of a read that need a union, gathered into scripts per tree.
#[derive(Default)]
struct UnionBatches<'a> {
    batches: Vec<UnionBatch<'a>>,
    /// Per tree, the batch being filled.
    open: HashMap<&'a AgencyId, usize>,
}

struct UnionBatch<'a> {
    root: &'a AgencyId,
    sets: Vec<String>,
    /// Per group, how many of `sets` are its.
    counts: Vec<usize>,
}

impl<'a> UnionBatches<'a> {
    /// Adds a group's sets (all of tree `root`); answers where its size will be: (batch,
    /// index in the batch).
    fn add(&mut self, root: &'a AgencyId, sets: &[String]) -> (usize, usize) {
        let batch = match self.open.get(root) {
            Some(&batch) if self.batches[batch].counts.len() < UNION_GROUPS_PER_SCRIPT => batch,
            _ => {
                self.batches.push(UnionBatch {
                    root,
                    sets: Vec::new(),
                    counts: Vec::new(),
                });
                self.open.insert(root, self.batches.len() - 1);
                self.batches.len() - 1
            }
        };
        let filling = &mut self.batches[batch];
        filling.sets.extend_from_slice(sets);
        filling.counts.push(sets.len());
        (batch, filling.counts.len() - 1)
    }
}

fn next_reply(
    replies: &mut impl Iterator<Item = redis::Value>,
    expected: usize,
) -> Result<redis::Value, StoreError> {
    replies.next().ok_or_else(|| {
        StoreError::Unexpected(format!("fewer replies than the {expected} commands"))
    })
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn tree_keys_are_named_as_the_key_schema_says() {
        let root = AgencyId::parse("hoa-binh").expect("id");
        let cases: [(&str, &[&str], Option<Bucket>, &str); 7] = [
            (
                "P",
                &["n:", "hb.dept", ":"],
                Some(Bucket::Day(date!(2026 - 08 - 15))),
                "P:{hoa-binh}:n:hb.dept:d20260815",
            ),
            (
                "P",
                &["k:", "hoa-binh", ":"],
                Some(Bucket::Month(2026, 8)),
                "P:{hoa-binh}:k:hoa-binh:m202608",
            ),
            ("P", &["k:", "hb", ":"], None, "P:{hoa-binh}:k:hb:"),
            ("gp", &["s"], None, "gp:{hoa-binh}:s"),
            ("gp", &["ds:"], None, "gp:{hoa-binh}:ds:"),
            (
                "P",
                &["a:", "hb", ":"],
                Some(Bucket::Year(2024)),
                "P:{hoa-binh}:a:hb:y2024",
            ),
            (
                "P",
                &["o:", "hb", ":"],
                Some(Bucket::Quarter(2026, 3)),
                "P:{hoa-binh}:o:hb:q20263",
            ),
        ];
        for (prefix, parts, bucket, key) in cases {
            assert_eq!(tree_key(prefix, &root, parts, bucket), key);
        }
    }
}
