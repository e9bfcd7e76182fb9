//! The in-memory store: the embedded default for `govpulse demo` and a reference for the
//! conformance suite. It counts by the same plan as the Redis store
//! ([`govpulse_core::counting::plan`]); one mutex makes every batch atomic.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::Mutex,
};

use async_trait::async_trait;
use govpulse_core::{
    AgencyId, Bucket, Counters, DossierId, EventId, Needs, ProcedureId,
    backlog::Dossier,
    counting::{Batch, Remembered, plan},
    freshness::{Activity, Arrivals, Seen},
};
use time::{Date, OffsetDateTime};

use crate::{
    AgencyKey, Applied, AssessedRead, AssessedWrite, ChangeNotice, ChildrenRead, CounterStore,
    EventWrite, GroupsRead, NewPublication, ProceduresRead, RejectedWrite, StoreError,
    notices::LocalNotices, publications::order_score,
};

/// `agency`'s arrivals, none yet if it had none.
fn arrivals_of<'a>(
    arrivals: &'a mut HashMap<AgencyId, Arrivals>,
    agency: &AgencyId,
) -> &'a mut Arrivals {
    arrivals.entry(agency.clone()).or_default()
}

/// Adds a plan's sums to `counters`, never below zero.
fn add_sums(counters: &mut Counters, sums: &govpulse_core::counting::CounterSums) {
    for (counter, n) in sums.nonzero() {
        if counters.add_signed(counter, n).is_none() {
            debug_assert!(false, "{counter:?} taken below zero");
            counters.add_signed(counter, -(counters.get(counter) as i64));
        }
    }
}

/// How many batches pass between sweeps of expired event ids.
const SWEEP_EVERY: u64 = 1024;

#[derive(Debug, Default)]
struct Inner {
    /// Per reporting agency and dossier: its stages counted and the backlog's days, and until
    /// when it is remembered once it is not open.
    dossiers: HashMap<(AgencyId, DossierId), (Dossier, OffsetDateTime)>,
    /// Per agency and event id counted: what it says and counts, and until when it is
    /// remembered.
    seen: HashMap<(AgencyId, EventId), (Remembered, OffsetDateTime)>,
    counters: HashMap<(AgencyId, Bucket), Counters>,
    /// Per agency and bucket: each procedure's counters.
    procedures: HashMap<(AgencyId, Bucket), BTreeMap<ProcedureId, Counters>>,
    /// Per agency and bucket: how many online receptions each procedure provided online had
    /// (a procedure leaves when corrections take its last one back).
    online: HashMap<(AgencyId, Bucket), HashMap<ProcedureId, u64>>,
    /// Per agency and assessed period: (profile, criterion) → hundredths.
    assessed: HashMap<(AgencyId, Bucket), BTreeMap<(String, String), u64>>,
    /// Per agency: the latest events counted for it.
    last_seen: HashMap<AgencyId, Seen>,
    /// Per agency: events accepted per Vietnam day of acceptance and rejected per day of
    /// rejection, the last few weeks.
    arrivals: HashMap<AgencyId, Arrivals>,
    batches: u64,
    /// Kept publications: id → (publication, summary).
    publications: HashMap<String, (Vec<u8>, Vec<u8>)>,
    /// The kept publications' ids, newest first: ([`order_score`] of `published_at`, id),
    /// ordered as the Redis store lists them.
    publication_order: BTreeSet<(i64, String)>,
}

/// Counters in this process's memory; gone when it exits.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Change notices, heard by every subscriber of this store (the replicas of an
    /// in-process deployment share it).
    notices: LocalNotices,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied batch visible to
        // anyone but the panicking call, which failed; the data is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl CounterStore for MemoryStore {
    async fn publish_change(&self, notice: &ChangeNotice) -> Result<(), StoreError> {
        self.notices.publish(notice);
        Ok(())
    }

    async fn subscribe_changes(
        &self,
    ) -> Result<tokio::sync::broadcast::Receiver<ChangeNotice>, StoreError> {
        Ok(self.notices.subscribe())
    }

    async fn keep_publication(
        &self,
        publication: NewPublication<'_>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let id = publication.id;
        let mut inner = self.lock();
        if let Some((kept, _)) = inner.publications.get(id) {
            return Ok(Some(kept.clone()));
        }
        inner.publications.insert(
            id.to_owned(),
            (publication.body.to_vec(), publication.summary.to_vec()),
        );
        inner
            .publication_order
            .insert((order_score(publication.published_at), id.to_owned()));
        Ok(None)
    }

    async fn publication(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .lock()
            .publications
            .get(id)
            .map(|(publication, _)| publication.clone()))
    }

    async fn publications(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, usize), StoreError> {
        let inner = self.lock();
        let summaries = inner
            .publication_order
            .iter()
            .skip(offset)
            .take(limit)
            .filter_map(|(_, id)| inner.publications.get(id))
            .map(|(_, summary)| summary.clone())
            .collect();
        Ok((summaries, inner.publication_order.len()))
    }

    async fn apply_with_rejected(
        &self,
        events: &[EventWrite],
        rejected: &[RejectedWrite],
    ) -> Result<Vec<Applied>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut inner = self.lock();
        inner.batches += 1;
        if inner.batches.is_multiple_of(SWEEP_EVERY) {
            inner.seen.retain(|_, (_, until)| *until > now);
            inner
                .dossiers
                .retain(|_, (state, until)| state.is_open() || *until > now);
        }
        let plan = {
            let inner = &*inner;
            plan(
                &Batch::new(events),
                rejected,
                |agency, event_id, _| {
                    inner
                        .seen
                        .get(&(agency.clone(), event_id.clone()))
                        .filter(|(_, until)| *until > now)
                        .map(|(remembered, _)| *remembered)
                },
                |agency, dossier, _| {
                    inner
                        .dossiers
                        .get(&(agency.clone(), dossier.clone()))
                        .map(|(state, _)| *state)
                },
            )
        };
        for write in &plan.ids {
            let kept = inner
                .seen
                .entry((write.agency.clone(), write.event_id.clone()))
                .or_insert((write.remembered, write.remember_until));
            *kept = (write.remembered, kept.1.max(write.remember_until));
        }
        for write in &plan.dossiers {
            let kept = inner
                .dossiers
                .entry((write.agency.clone(), write.dossier.clone()))
                .or_insert((write.state, write.remember_until));
            *kept = (write.state, kept.1.max(write.remember_until));
        }
        // The plan never takes back more than was counted (a correction takes back what its
        // event counts): a count that would go below zero is left at zero.
        for ((agency, bucket), sums) in &plan.counters {
            let counters = inner
                .counters
                .entry(((*agency).clone(), *bucket))
                .or_default();
            add_sums(counters, sums);
        }
        for ((agency, day), procedures) in &plan.procedures {
            for bucket in Bucket::containing(*day) {
                let kept = inner
                    .procedures
                    .entry(((*agency).clone(), bucket))
                    .or_default();
                for (procedure, sums) in procedures {
                    let counters = kept.entry((*procedure).clone()).or_default();
                    add_sums(counters, sums);
                    if counters.is_zero() {
                        kept.remove(*procedure);
                    }
                }
            }
        }
        for ((agency, bucket, procedure), n) in &plan.online {
            let kept = inner
                .online
                .entry(((*agency).clone(), *bucket))
                .or_default();
            let count = kept.entry((*procedure).clone()).or_default();
            *count = count.saturating_add_signed(*n);
            if *count == 0 {
                kept.remove(*procedure);
            }
        }
        for (agency, seen) in &plan.seen {
            let kept = inner.last_seen.entry((*agency).clone()).or_default();
            *kept = kept.latest(*seen);
        }
        for ((agency, day), n) in &plan.arrivals {
            arrivals_of(&mut inner.arrivals, agency)
                .accepted
                .add(*day, *n);
        }
        for ((agency, day), n) in &plan.rejected {
            arrivals_of(&mut inner.arrivals, agency)
                .rejected
                .add(*day, *n);
        }
        Ok(plan.outcomes)
    }

    async fn read_activity(
        &self,
        agencies: &[AgencyKey],
        days: &[Date],
    ) -> Result<Vec<Activity>, StoreError> {
        let inner = self.lock();
        Ok(agencies
            .iter()
            .map(|key| {
                let arrivals = inner.arrivals.get(&key.agency).copied().unwrap_or_default();
                Activity {
                    seen: inner
                        .last_seen
                        .get(&key.agency)
                        .copied()
                        .unwrap_or_default(),
                    days: days.iter().map(|day| arrivals.on(*day)).collect(),
                }
            })
            .collect())
    }

    async fn read(&self, read: GroupsRead<'_>) -> Result<Vec<Counters>, StoreError> {
        let (groups, buckets, needs) = (read.groups, read.buckets, read.needs);
        let inner = self.lock();
        Ok(groups
            .iter()
            .map(|group| {
                let mut total = Counters::default();
                let mut online: HashSet<&ProcedureId> = HashSet::new();
                for key in group {
                    for bucket in buckets {
                        let slot = (key.agency.clone(), *bucket);
                        if let Some(counters) = inner.counters.get(&slot) {
                            for counter in &needs.counters {
                                total.increment(*counter, counters.get(*counter));
                            }
                        }
                        if needs.distinct {
                            online
                                .extend(inner.online.get(&slot).into_iter().flat_map(|o| o.keys()));
                        }
                    }
                }
                total.procedures_with_online_dossiers = online.len() as u64;
                total
            })
            .collect())
    }

    async fn read_procedures(
        &self,
        read: ProceduresRead<'_>,
    ) -> Result<Vec<(ProcedureId, Counters)>, StoreError> {
        let (group, buckets, counters) = (read.of, read.buckets, read.counters);
        let inner = self.lock();
        let mut totals: BTreeMap<ProcedureId, Counters> = BTreeMap::new();
        for key in group {
            for bucket in buckets {
                let slot = (key.agency.clone(), *bucket);
                for (procedure, kept) in inner.procedures.get(&slot).into_iter().flatten() {
                    let total = totals.entry(procedure.clone()).or_default();
                    for counter in counters {
                        total.increment(*counter, kept.get(*counter));
                    }
                }
            }
        }
        Ok(totals.into_iter().collect())
    }

    async fn read_children(&self, read: ChildrenRead<'_>) -> Result<Vec<Counters>, StoreError> {
        // Counts live per agency here; a child's are the same whoever asks.
        let groups: Vec<Vec<AgencyKey>> = read
            .of
            .children
            .iter()
            .map(|child| {
                vec![AgencyKey {
                    root: read.of.parent.root.clone(),
                    agency: child.clone(),
                }]
            })
            .collect();
        let needs = Needs {
            counters: read.counters.to_vec(),
            distinct: false,
        };
        self.read(GroupsRead {
            groups: &groups,
            buckets: read.buckets,
            needs: &needs,
        })
        .await
    }

    async fn put_assessed(&self, scores: &[AssessedWrite]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for score in scores {
            inner
                .assessed
                .entry((score.key.agency.clone(), score.bucket))
                .or_default()
                .insert(
                    (score.profile.clone(), score.criterion.clone()),
                    score.hundredths,
                );
        }
        Ok(())
    }

    async fn read_assessed(
        &self,
        read: AssessedRead<'_>,
    ) -> Result<Vec<Vec<(String, u64)>>, StoreError> {
        let (agencies, bucket, profile) = (read.agencies, read.bucket, read.profile);
        let inner = self.lock();
        Ok(agencies
            .iter()
            .map(|key| {
                inner
                    .assessed
                    .get(&(key.agency.clone(), bucket))
                    .into_iter()
                    .flatten()
                    .filter(|((p, _), _)| p == profile)
                    .map(|((_, criterion), points)| (criterion.clone(), *points))
                    .collect()
            })
            .collect())
    }
}
