//! The in-memory store: the embedded default for `govpulse demo` and a reference for the
//! conformance suite. One mutex makes every batch atomic, as the Redis script does.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Mutex,
};

use async_trait::async_trait;
use govpulse_core::{
    AgencyId, Bucket, Counter, Counters, DossierChange, DossierId, EventId, Needs, ProcedureId,
    backlog::{self, DossierState, DueEvent},
    period::vietnam_day,
};
use time::{Date, OffsetDateTime};

use crate::{
    AgencyKey, Applied, AssessedWrite, ChangeNotice, CounterStore, EventWrite, StoreError,
    notices::LocalNotices,
};

/// How many batches pass between sweeps of expired event ids.
const SWEEP_EVERY: u64 = 1024;

#[derive(Debug, Default)]
struct Inner {
    /// Per reporting agency and dossier: what the backlog knows of it.
    dossiers: HashMap<(AgencyId, DossierId), DossierState>,
    /// Per agency of the chain: open dossiers (reporting agency, dossier) → due time.
    open: HashMap<AgencyId, HashMap<(AgencyId, DossierId), OffsetDateTime>>,
    seen: HashMap<(AgencyId, Date), (OffsetDateTime, HashSet<EventId>)>,
    counters: HashMap<(AgencyId, Bucket), Counters>,
    online: HashMap<(AgencyId, Bucket), HashSet<ProcedureId>>,
    /// Per agency and assessed period: (profile, criterion) → hundredths.
    assessed: HashMap<(AgencyId, Bucket), BTreeMap<(String, String), u64>>,
    batches: u64,
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

    async fn apply(&self, events: &[EventWrite]) -> Result<Vec<Applied>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut inner = self.lock();
        inner.batches += 1;
        if inner.batches.is_multiple_of(SWEEP_EVERY) {
            inner.seen.retain(|_, (until, _)| *until > now);
        }
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let (until, ids) = inner
                .seen
                .entry((event.agency.clone(), event.day))
                .or_insert_with(|| (event.remember_until, HashSet::new()));
            *until = (*until).max(event.remember_until);
            if !ids.insert(event.event_id.clone()) {
                outcomes.push(Applied::Duplicate);
                continue;
            }
            for agency in &event.chain {
                for bucket in Bucket::containing(event.day) {
                    let counters = inner.counters.entry((agency.clone(), bucket)).or_default();
                    for counter in &event.delta.increments {
                        counters.increment(*counter, 1);
                    }
                    if let Some(procedure) = &event.delta.online_procedure {
                        inner
                            .online
                            .entry((agency.clone(), bucket))
                            .or_default()
                            .insert(procedure.clone());
                    }
                }
            }
            if let Some(change) = &event.dossier {
                let (dossier, due, due_event) = match change {
                    DossierChange::Open { dossier, due } => (
                        dossier,
                        Some(*due),
                        DueEvent::Received {
                            due_day: vietnam_day(*due),
                        },
                    ),
                    DossierChange::Close { dossier } => {
                        (dossier, None, DueEvent::Resolved { day: event.day })
                    }
                };
                let slot = (event.agency.clone(), dossier.clone());
                let step = backlog::step(inner.dossiers.get(&slot).copied(), due_event);
                if let Some(state) = step.state {
                    inner.dossiers.insert(slot.clone(), state);
                }
                for agency in &event.chain {
                    let open = inner.open.entry(agency.clone()).or_default();
                    match due {
                        Some(due) if step.open => {
                            open.insert(slot.clone(), due);
                        }
                        _ if step.close => {
                            open.remove(&slot);
                        }
                        _ => {}
                    }
                    for (counter, day) in [
                        (Counter::DueOpened, step.due),
                        (Counter::DueClosed, step.due_closed),
                    ] {
                        for bucket in day.into_iter().flat_map(Bucket::containing) {
                            inner
                                .counters
                                .entry((agency.clone(), bucket))
                                .or_default()
                                .increment(counter, 1);
                        }
                    }
                }
            }
            outcomes.push(Applied::Accepted);
        }
        Ok(outcomes)
    }

    async fn open_past_due(
        &self,
        agencies: &[AgencyKey],
        now: OffsetDateTime,
    ) -> Result<Vec<u64>, StoreError> {
        let inner = self.lock();
        Ok(agencies
            .iter()
            .map(|key| {
                inner.open.get(&key.agency).map_or(0, |open| {
                    open.values().filter(|due| **due < now).count() as u64
                })
            })
            .collect())
    }

    async fn read(
        &self,
        groups: &[Vec<AgencyKey>],
        buckets: &[Bucket],
        needs: &Needs,
    ) -> Result<Vec<Counters>, StoreError> {
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
                            online.extend(inner.online.get(&slot).into_iter().flatten());
                        }
                    }
                }
                total.procedures_with_online_dossiers = online.len() as u64;
                total
            })
            .collect())
    }

    async fn read_children(
        &self,
        parent: &AgencyKey,
        children: &[AgencyId],
        buckets: &[Bucket],
        counters: &[Counter],
    ) -> Result<Vec<Counters>, StoreError> {
        // Counts live per agency here; a child's are the same whoever asks.
        let groups: Vec<Vec<AgencyKey>> = children
            .iter()
            .map(|child| {
                vec![AgencyKey {
                    root: parent.root.clone(),
                    agency: child.clone(),
                }]
            })
            .collect();
        let needs = Needs {
            counters: counters.to_vec(),
            distinct: false,
        };
        self.read(&groups, buckets, &needs).await
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
        agencies: &[AgencyKey],
        bucket: Bucket,
        profile: &str,
    ) -> Result<Vec<Vec<(String, u64)>>, StoreError> {
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
