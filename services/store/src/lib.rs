//! The counter store: where counts live. One trait, [`CounterStore`], with a Redis
//! implementation (the deployment) and an in-memory one (the embedded demo and unit tests),
//! both held to one conformance suite (`conformance`, with the `testing` feature, as are the
//! Redis servers tests start, `testing`).
//!
//! The key schema is documented in `docs/ARCHITECTURE.md` and in the `redis_store` module
//! (`services/store/src/redis_store.rs`).

use async_trait::async_trait;
use govpulse_core::{AgencyId, Bucket, Counter, Counters, Needs, ProcedureId, freshness::Activity};
use time::{Date, OffsetDateTime};
use tokio::sync::broadcast;

mod bucket;
#[cfg(feature = "testing")]
pub mod conformance;
mod counter_record;
mod exclusive;
mod memory;
mod notices;
mod ordinals;
mod publications;
mod redis_store;
mod spread;
#[cfg(feature = "testing")]
pub mod testing;
mod tree_write;
mod write_cache;

pub use govpulse_core::notice::ChangeNotice;
pub use memory::MemoryStore;
pub use notices::NOTICE_BACKLOG;
pub use redis_store::{DEFAULT_WRITE_CACHE_BYTES, RedisStore, RedisStoreConfig};

pub use govpulse_core::counting::{Applied, EventWrite, RejectedWrite};

/// An agency to read, with the top-level agency of its tree (which names its keys).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgencyKey {
    /// The top-level agency.
    pub root: AgencyId,
    /// The agency.
    pub agency: AgencyId,
}

/// One assessed score to store: the points an assessor gave an agency for one criterion of
/// a composite index profile, for one calendar period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssessedWrite {
    /// The agency, with its tree.
    pub key: AgencyKey,
    /// The calendar period assessed (a day, month, quarter or year).
    pub bucket: Bucket,
    /// The profile's name.
    pub profile: String,
    /// The criterion's name within the profile.
    pub criterion: String,
    /// The points, in hundredths (3875 for 38.75).
    pub hundredths: u64,
}

/// A read of groups of agencies ([`CounterStore::read`]).
#[derive(Debug, Clone, Copy)]
pub struct GroupsRead<'a> {
    /// The groups, each answered in this order: usually one agency; a merged province is a
    /// group of itself and its predecessors.
    pub groups: &'a [Vec<AgencyKey>],
    /// The buckets summed.
    pub buckets: &'a [Bucket],
    /// The counters read (the others read as zero) and whether the distinct count is.
    pub needs: &'a Needs,
}

/// A read of `counters` summed over `buckets` for the agencies `of` names: a parent's
/// children ([`ChildrenRead`]) or one group's procedures ([`ProceduresRead`]).
#[derive(Debug, Clone, Copy)]
pub struct SumsRead<'a, Of> {
    /// Whose counts.
    pub of: Of,
    /// The buckets summed.
    pub buckets: &'a [Bucket],
    /// The counters read; the others read as zero.
    pub counters: &'a [Counter],
}

/// A parent and those of its children to read, each answered in this order.
#[derive(Debug, Clone, Copy)]
pub struct Children<'a> {
    /// The parent, with its tree.
    pub parent: &'a AgencyKey,
    /// The children.
    pub children: &'a [AgencyId],
}

/// A read of children from their parent's roll-up of them ([`CounterStore::read_children`]).
pub type ChildrenRead<'a> = SumsRead<'a, Children<'a>>;

/// A read of one group (an agency and those it absorbed) per procedure
/// ([`CounterStore::read_procedures`]).
pub type ProceduresRead<'a> = SumsRead<'a, &'a [AgencyKey]>;

/// A read of assessed scores ([`CounterStore::read_assessed`]).
#[derive(Debug, Clone, Copy)]
pub struct AssessedRead<'a> {
    /// The agencies, each answered in this order.
    pub agencies: &'a [AgencyKey],
    /// The calendar period assessed.
    pub bucket: Bucket,
    /// The composite index profile's name.
    pub profile: &'a str,
}

/// A publication to keep ([`CounterStore::keep_publication`]): bytes the store never decodes.
#[derive(Debug, Clone, Copy)]
pub struct NewPublication<'a> {
    /// The id it is kept under.
    pub id: &'a str,
    /// When it was published: the order of the list.
    pub published_at: OffsetDateTime,
    /// The publication, as ranking encoded it.
    pub body: &'a [u8],
    /// Its summary: what a list of publications shows.
    pub summary: &'a [u8],
}

/// A store failure. Nothing is known to be applied when `apply` fails; the caller reports
/// the batch as failed and the sender retries with the same event ids.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis reply: {0}")]
    Reply(#[from] redis::ParsingError),
    #[error("redis answered {0}")]
    Unexpected(String),
}

/// Counts events exactly once and reads counters summed over buckets.
#[async_trait]
pub trait CounterStore: Send + Sync + std::fmt::Debug + 'static {
    /// Counts each event whose (agency, event id) was not counted before, whatever day it
    /// claims, for every agency of its chain, in the day, month, quarter and year of its day,
    /// by the rules of [`govpulse_core::counting::plan`]; returns one [`Applied`] per event, in
    /// order: a resend of what was counted is a duplicate, other content under a counted id
    /// a conflict, neither counted.
    ///
    /// All events of one tree (same root) are applied atomically: either all of them are
    /// recorded or none is, and writers applying batches of one tree at once (aggregate
    /// replicas) apply them as some order of the batches would.
    ///
    /// [`CounterStore::apply_with_rejected`] without rejections.
    async fn apply(&self, events: &[EventWrite]) -> Result<Vec<Applied>, StoreError> {
        self.apply_with_rejected(events, &[]).await
    }

    /// [`CounterStore::apply`], and counts the batch's events `rejected` as invalid for every
    /// agency of their chains on the Vietnam day they were rejected (read back by
    /// [`CounterStore::read_activity`]), in the same atomic write as the events of their tree
    /// (a tree with rejections only is one small write of its own). A batch without
    /// rejections costs what [`CounterStore::apply`] did before they were counted.
    async fn apply_with_rejected(
        &self,
        events: &[EventWrite],
        rejected: &[RejectedWrite],
    ) -> Result<Vec<Applied>, StoreError>;

    /// For each of `read.groups`, the counters `read.needs` names summed over the group's
    /// agencies and `read.buckets` (the others read as zero), and, when `read.needs.distinct`,
    /// the exact number of distinct procedures that received an online dossier in any of them.
    async fn read(&self, read: GroupsRead<'_>) -> Result<Vec<Counters>, StoreError>;

    /// For each of `read.of.children`, the `read.counters` summed over `read.buckets`, as
    /// counted for it under `read.of.parent` (its own events and its units'): what
    /// [`CounterStore::read`] gives for the child alone, read from the parent's roll-up of its
    /// children. The cost grows with the buckets and counters, not with the number of children
    /// (one command per bucket and counter on Redis), which is what makes a query over 10,000
    /// units cheap.
    async fn read_children(&self, read: ChildrenRead<'_>) -> Result<Vec<Counters>, StoreError>;

    /// The `read.counters` of one group of agencies (an agency and those it absorbed) summed
    /// over `read.buckets`, per procedure: every procedure with a dossier counted for the
    /// group in any of the buckets (its units' included), once, in procedure order. What
    /// [`CounterStore::read`] gives for the group, broken down by procedure; the cost grows
    /// with the buckets and the procedures that have data in them.
    async fn read_procedures(
        &self,
        read: ProceduresRead<'_>,
    ) -> Result<Vec<(ProcedureId, Counters)>, StoreError>;

    /// For each agency, the latest events counted for it (its own and its units') and how
    /// many were accepted (by Vietnam day of acceptance) and rejected (by day of rejection)
    /// for it on each of `days` (each kept for the
    /// [`govpulse_core::freshness::ARRIVAL_DAYS`] up to its last): what says whether its
    /// figures are current, and how clean the data it sends is.
    async fn read_activity(
        &self,
        agencies: &[AgencyKey],
        days: &[Date],
    ) -> Result<Vec<Activity>, StoreError>;

    /// Stores assessed scores. A score for an (agency, period, profile, criterion) that was
    /// stored before replaces it, so reporting the same scores again changes nothing.
    /// The scores of one call are stored together or not at all.
    async fn put_assessed(&self, scores: &[AssessedWrite]) -> Result<(), StoreError>;

    /// For each of `read.agencies`, the assessed points stored for `read.profile` and the
    /// period `read.bucket`, as (criterion, hundredths) sorted by criterion; empty when none
    /// was reported.
    async fn read_assessed(
        &self,
        read: AssessedRead<'_>,
    ) -> Result<Vec<Vec<(String, u64)>>, StoreError>;

    /// Keeps `publication` (its body and its list summary) under its id unless something is
    /// kept under that id already: `None` when this call kept it (its caller has the bytes),
    /// else the bytes kept before. Never overwrites: a publication, its summary and its
    /// `published_at` are kept together or not at all, and never changed nor deleted, so
    /// writers keeping one id at once (aggregate replicas) all answer the same bytes and
    /// exactly one of them kept them. The bytes are opaque: never decoded.
    async fn keep_publication(
        &self,
        publication: NewPublication<'_>,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// The publication kept under `id`, if any.
    async fn publication(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// `limit` summaries, newest first (by `published_at` to the millisecond; ties: id
    /// ascending), after passing over `offset`; and how many are kept in all.
    async fn publications(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, usize), StoreError>;

    /// Tells every subscriber of this store's backend (every aggregate replica sharing it,
    /// this one included) that something was counted. At most once: see
    /// [`CounterStore::subscribe_changes`].
    async fn publish_change(&self, notice: &ChangeNotice) -> Result<(), StoreError>;

    /// Subscribes to the notices published on this store's backend by any process, returning
    /// once the subscription is active: a notice published after that reaches the receiver,
    /// unless the connection to the backend drops, in which case the receiver gets
    /// [`ChangeNotice::anything`] once subscribed again. A receiver more than
    /// [`NOTICE_BACKLOG`] notices behind lags (and must assume anything changed).
    async fn subscribe_changes(&self) -> Result<broadcast::Receiver<ChangeNotice>, StoreError>;

    /// What the writer's cache of what it read and wrote answered since the store was opened,
    /// and what it holds; `None` for a store without one (`MemoryStore`).
    fn write_cache_use(&self) -> Option<CacheUse> {
        None
    }
}

/// What a cache answered (keys found in it, and keys read from the backend instead), and
/// what it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUse {
    /// Keys the cache answered.
    pub hits: u64,
    /// Keys read from the backend.
    pub misses: u64,
    /// The bytes it holds, as counted against its budget.
    pub bytes: u64,
}
