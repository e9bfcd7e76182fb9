//! The Redis store.
//!
//! Key schema (`P` is the configured prefix, `{root}` the top-level agency of the tree, in
//! braces so that a tree's keys share one Redis Cluster hash slot):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{root}:c:<agency>:<bucket>` | hash | counter field (`rcv`, `rcv_on`, ...) → count |
//! | `P:{root}:o:<agency>:<bucket>` | set | procedures that received an online dossier |
//! | `P:{root}:e:<agency>:<yyyymmdd>` | set | event ids counted for events of that day; expires after the horizon |
//! | `P:{root}:ds:<agency>` | hash | dossier id → `o` (open) or `c` (resolved), for dossiers received with a due time or resolved |
//! | `P:{root}:open:<agency>` | sorted set | `<reporting agency>/<dossier id>` → due time (Unix seconds), for open dossiers of the agency and its units |
//! | `P:{root}:a:<agency>:<bucket>` | hash | `<profile>/<criterion>` → assessed points with two decimals (`38.75`), for the calendar period `<bucket>` |
//!
//! Buckets are written `d20260815`, `m202608`, `q20263`, `y2026` (Vietnam local time).
//! A batch is applied by one Lua script per tree ([`APPLY_SCRIPT`]): dedupe, counting and
//! expiry in one atomic step.

use std::collections::HashMap;

use async_trait::async_trait;
use govpulse_core::{
    AgencyId, Bucket, Counter, Counters, DossierChange, Needs,
    index::{hundredths_text, parse_hundredths},
};
use redis::{
    Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use time::Date;

use crate::{AgencyKey, Applied, AssessedWrite, CounterStore, EventWrite, StoreError};

/// The batch script; see the file for its argument layout.
pub const APPLY_SCRIPT: &str = include_str!("apply.lua");

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisStoreConfig {
    /// A `redis://` URL.
    pub url: String,
    /// Prepended to every key, so that deployments (and tests) can share one Redis.
    pub prefix: String,
}

/// Counters in Redis.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    script: Script,
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
        let info = redis::IntoConnectionInfo::into_connection_info(config.url.as_str())?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(5)))
            .set_response_timeout(Some(std::time::Duration::from_secs(10)))
            .set_number_of_retries(2);
        let connection = ConnectionManager::new_with_config(client, manager_config).await?;
        Ok(Self {
            connection,
            prefix: config.prefix,
            script: Script::new(APPLY_SCRIPT),
        })
    }

    fn counters_key(&self, root: &AgencyId, agency: &AgencyId, bucket: Bucket) -> String {
        format!("{}:{{{root}}}:c:{agency}:{bucket}", self.prefix)
    }

    fn online_key(&self, root: &AgencyId, agency: &AgencyId, bucket: Bucket) -> String {
        format!("{}:{{{root}}}:o:{agency}:{bucket}", self.prefix)
    }

    fn dossiers_key(&self, root: &AgencyId, agency: &AgencyId) -> String {
        format!("{}:{{{root}}}:ds:{agency}", self.prefix)
    }

    fn open_key(&self, root: &AgencyId, agency: &AgencyId) -> String {
        format!("{}:{{{root}}}:open:{agency}", self.prefix)
    }

    fn assessed_key(&self, key: &AgencyKey, bucket: Bucket) -> String {
        format!("{}:{{{}}}:a:{}:{bucket}", self.prefix, key.root, key.agency)
    }

    fn seen_key(&self, root: &AgencyId, agency: &AgencyId, day: Date) -> String {
        format!(
            "{}:{{{root}}}:e:{agency}:{}",
            self.prefix,
            &Bucket::Day(day).to_string()[1..]
        )
    }

    /// Runs the script for the events of one tree; `events` are (position, event) pairs.
    async fn apply_tree(
        &self,
        root: &AgencyId,
        events: &[(usize, &EventWrite)],
    ) -> Result<Vec<Applied>, StoreError> {
        let mut args = ScriptArgs::default();
        let mut templates: HashMap<TemplateKey<'_>, usize> = HashMap::new();
        let mut template_args: Vec<String> = Vec::new();
        let mut event_args: Vec<String> = Vec::with_capacity(events.len() * 3);
        let mut expirations: HashMap<usize, i64> = HashMap::new();
        for (_, event) in events {
            let template_key = TemplateKey {
                agency: &event.agency,
                day: event.day,
                delta: &event.delta,
            };
            let next = templates.len() + 1;
            let template = *templates.entry(template_key).or_insert_with(|| {
                let buckets = Bucket::containing(event.day);
                let increments: Vec<(usize, &str)> = event
                    .chain
                    .iter()
                    .flat_map(|agency| buckets.iter().map(move |b| (agency, *b)))
                    .flat_map(|(agency, bucket)| {
                        let key = self.counters_key(root, agency, bucket);
                        event
                            .delta
                            .increments
                            .iter()
                            .map(move |c| (key.clone(), c.key()))
                    })
                    .map(|(key, field)| (args.key(key), field))
                    .collect();
                template_args.push(increments.len().to_string());
                for (key, field) in increments {
                    template_args.push(key.to_string());
                    template_args.push(field.to_owned());
                }
                match &event.delta.online_procedure {
                    Some(procedure) => {
                        template_args.push((event.chain.len() * buckets.len()).to_string());
                        for agency in &event.chain {
                            for bucket in buckets {
                                let key = args.key(self.online_key(root, agency, bucket));
                                template_args.push(key.to_string());
                                template_args.push(procedure.to_string());
                            }
                        }
                    }
                    None => template_args.push("0".to_owned()),
                }
                // Where the event's dossier state lives, and the open-dossier sets of every
                // agency of its chain.
                template_args.push(args.key(self.dossiers_key(root, &event.agency)).to_string());
                template_args.push(format!("{}/", event.agency));
                template_args.push(event.chain.len().to_string());
                for agency in &event.chain {
                    template_args.push(args.key(self.open_key(root, agency)).to_string());
                }
                next
            });
            let seen = args.key(self.seen_key(root, &event.agency, event.day));
            let until = event.remember_until.unix_timestamp();
            expirations
                .entry(seen)
                .and_modify(|at| *at = (*at).max(until))
                .or_insert(until);
            event_args.push(seen.to_string());
            event_args.push(event.event_id.to_string());
            event_args.push(template.to_string());
            match &event.dossier {
                Some(DossierChange::Open { dossier, due }) => {
                    event_args.extend([
                        "o".to_owned(),
                        dossier.to_string(),
                        due.unix_timestamp().to_string(),
                    ]);
                }
                Some(DossierChange::Close { dossier }) => {
                    event_args.extend(["c".to_owned(), dossier.to_string(), "0".to_owned()]);
                }
                None => event_args.extend(["-".to_owned(), String::new(), "0".to_owned()]),
            }
        }

        let mut invocation = self.script.prepare_invoke();
        for key in &args.keys {
            invocation.key(key);
        }
        invocation.arg(templates.len()).arg(&template_args);
        invocation.arg(events.len()).arg(&event_args);
        invocation.arg(expirations.len());
        for (set, at) in &expirations {
            invocation.arg(set).arg(at);
        }
        let mut connection = self.connection.clone();
        let flags: Vec<i64> = invocation.invoke_async(&mut connection).await?;
        if flags.len() != events.len() {
            return Err(StoreError::Unexpected(format!(
                "{} outcomes for {} events",
                flags.len(),
                events.len()
            )));
        }
        Ok(flags
            .into_iter()
            .map(|f| {
                if f == 1 {
                    Applied::Accepted
                } else {
                    Applied::Duplicate
                }
            })
            .collect())
    }
}

/// Events with equal template keys add the same increments to the same keys.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TemplateKey<'a> {
    agency: &'a AgencyId,
    day: Date,
    delta: &'a govpulse_core::CounterDelta,
}

/// The script's KEYS, each listed once, with 1-based positions as Lua indexes them.
#[derive(Debug, Default)]
struct ScriptArgs {
    keys: Vec<String>,
    positions: HashMap<String, usize>,
}

impl ScriptArgs {
    fn key(&mut self, key: String) -> usize {
        if let Some(position) = self.positions.get(&key) {
            return *position;
        }
        self.keys.push(key.clone());
        self.positions.insert(key, self.keys.len());
        self.keys.len()
    }
}

#[async_trait]
impl CounterStore for RedisStore {
    async fn apply(&self, events: &[EventWrite]) -> Result<Vec<Applied>, StoreError> {
        let mut trees: HashMap<&AgencyId, Vec<(usize, &EventWrite)>> = HashMap::new();
        for (position, event) in events.iter().enumerate() {
            trees
                .entry(event.root())
                .or_default()
                .push((position, event));
        }
        let mut outcomes = vec![Applied::Duplicate; events.len()];
        for (root, tree_events) in &trees {
            let applied = self.apply_tree(root, tree_events).await?;
            for ((position, _), outcome) in tree_events.iter().zip(applied) {
                outcomes[*position] = outcome;
            }
        }
        Ok(outcomes)
    }

    async fn open_past_due(
        &self,
        agencies: &[AgencyKey],
        now: time::OffsetDateTime,
    ) -> Result<Vec<u64>, StoreError> {
        if agencies.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in agencies {
            // Strictly before now: a dossier due this second is not late yet.
            pipe.zcount(
                self.open_key(&key.root, &key.agency),
                "-inf",
                format!("({}", now.unix_timestamp()),
            );
        }
        let mut connection = self.connection.clone();
        Ok(pipe.query_async(&mut connection).await?)
    }

    async fn read(
        &self,
        groups: &[Vec<AgencyKey>],
        buckets: &[Bucket],
        needs: &Needs,
    ) -> Result<Vec<Counters>, StoreError> {
        // Only what the caller needs crosses the network: HMGET of a metric's two fields is
        // much cheaper than HGETALL of all of them, and the distinct union is the costliest
        // command of all.
        let all_counters = needs.counters.len() == Counter::ALL.len();
        let fields: Vec<&str> = needs.counters.iter().map(|c| c.key()).collect();
        let mut pipe = redis::pipe();
        let mut commands = 0usize;
        for group in groups {
            if !fields.is_empty() {
                for key in group {
                    for bucket in buckets {
                        let hash = self.counters_key(&key.root, &key.agency, *bucket);
                        if all_counters {
                            pipe.hgetall(hash);
                        } else {
                            pipe.cmd("HMGET").arg(hash).arg(&fields);
                        }
                        commands += 1;
                    }
                }
            }
            if needs.distinct {
                let online: Vec<String> = group
                    .iter()
                    .flat_map(|key| buckets.iter().map(move |b| (key, *b)))
                    .map(|(key, bucket)| self.online_key(&key.root, &key.agency, bucket))
                    .collect();
                match online.as_slice() {
                    [] => pipe.cmd("ECHO").arg(0),
                    [one] => pipe.scard(one),
                    many => pipe
                        .cmd("EVAL")
                        .arg(UNION_SIZE_SCRIPT)
                        .arg(many.len())
                        .arg(many),
                };
                commands += 1;
            }
        }
        let replies: Vec<redis::Value> = if commands == 0 {
            Vec::new()
        } else {
            let mut connection = self.connection.clone();
            pipe.query_async(&mut connection).await?
        };
        let mut replies = replies.into_iter();
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            let mut total = Counters::default();
            if !fields.is_empty() {
                for _ in 0..group.len() * buckets.len() {
                    let reply = next_reply(&mut replies)?;
                    if all_counters {
                        let hash: HashMap<String, u64> = redis::from_redis_value(reply)?;
                        for (field, value) in hash {
                            if let Some(counter) = Counter::from_key(&field) {
                                total.increment(counter, value);
                            }
                        }
                    } else {
                        let values: Vec<Option<u64>> = redis::from_redis_value(reply)?;
                        for (counter, value) in needs.counters.iter().zip(values) {
                            total.increment(*counter, value.unwrap_or(0));
                        }
                    }
                }
            }
            if needs.distinct {
                total.procedures_with_online_dossiers =
                    redis::from_redis_value(next_reply(&mut replies)?)?;
            }
            out.push(total);
        }
        Ok(out)
    }

    async fn put_assessed(&self, scores: &[AssessedWrite]) -> Result<(), StoreError> {
        if scores.is_empty() {
            return Ok(());
        }
        // MULTI/EXEC: the scores of one call are stored together. HSET replaces a field, so
        // a retried report stores the same values again.
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
        let mut connection = self.connection.clone();
        let () = pipe.query_async(&mut connection).await?;
        Ok(())
    }

    async fn read_assessed(
        &self,
        agencies: &[AgencyKey],
        bucket: Bucket,
        profile: &str,
    ) -> Result<Vec<Vec<(String, u64)>>, StoreError> {
        if agencies.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in agencies {
            pipe.hgetall(self.assessed_key(key, bucket));
        }
        let mut connection = self.connection.clone();
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut connection).await?;
        let prefix = format!("{profile}/");
        hashes
            .into_iter()
            .map(|hash| {
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

/// The exact size of the union of the sets in KEYS, computed in Redis so the members never
/// cross the network. The KEYS of one agency share its tree's hash slot; a group that spans
/// trees (a merged province with its predecessors) needs a single Redis, not a cluster.
const UNION_SIZE_SCRIPT: &str = "return #redis.call('SUNION', unpack(KEYS))";

fn next_reply(
    replies: &mut impl Iterator<Item = redis::Value>,
) -> Result<redis::Value, StoreError> {
    replies
        .next()
        .ok_or_else(|| StoreError::Unexpected("fewer replies than commands".to_owned()))
}
