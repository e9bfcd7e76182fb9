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

pub use govpulse_core::notice::ChangeNotice;
pub use memory::MemoryStore;
pub use notices::NOTICE_BACKLOG;
pub use redis_store::{RedisStore, RedisStoreConfig};

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

    /// For each group of agencies, the counters `needs` names summed over the agencies and
    /// `buckets` (the others read as zero), and, when `needs.distinct`, the exact number of
    /// distinct procedures that received an online dossier in any of them. A group is usually
    /// one agency; a merged province is read as a group of itself and its predecessors.
    async fn read(
        &self,
        groups: &[Vec<AgencyKey>],
        buckets: &[Bucket],
        needs: &Needs,
    ) -> Result<Vec<Counters>, StoreError>;

    /// For each of `children`, the `counters` summed over `buckets`, as counted for it under
    /// `parent` (its own events and its units'): what [`CounterStore::read`] gives for the
    /// child alone, read from the parent's roll-up of its children. The cost grows with the
    /// buckets and counters, not with the number of children (one command per bucket and
    /// counter on Redis), which is what makes a query over 10,000 units cheap.
    async fn read_children(
        &self,
        parent: &AgencyKey,
        children: &[AgencyId],
        buckets: &[Bucket],
        counters: &[Counter],
    ) -> Result<Vec<Counters>, StoreError>;

    /// The `counters` of one group of agencies (an agency and those it absorbed) summed over
    /// `buckets`, per procedure: every procedure with a dossier counted for the group in any
    /// of the buckets (its units' included), once, in procedure order. What
    /// [`CounterStore::read`] gives for the group, broken down by procedure; the cost grows
    /// with the buckets and the procedures that have data in them.
    async fn read_procedures(
        &self,
        group: &[AgencyKey],
        buckets: &[Bucket],
        counters: &[Counter],
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

    /// For each agency, the assessed points stored for `profile` and the period `bucket`,
    /// as (criterion, hundredths) sorted by criterion; empty when none was reported.
    async fn read_assessed(
        &self,
        agencies: &[AgencyKey],
        bucket: Bucket,
        profile: &str,
    ) -> Result<Vec<Vec<(String, u64)>>, StoreError>;

    /// Keeps `publication` (and its list `summary`) under `id` unless something is kept under
    /// `id` already: `None` when this call kept it (its caller has the bytes), else the bytes
    /// kept before. Never overwrites: a publication, its summary and its
    /// `published_at` are kept together or not at all, and never changed nor deleted, so
    /// writers keeping one id at once (aggregate replicas) all answer the same bytes and
    /// exactly one of them kept them. The bytes are opaque: never decoded.
    async fn keep_publication(
        &self,
        id: &str,
        published_at: OffsetDateTime,
        publication: &[u8],
        summary: &[u8],
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
}
