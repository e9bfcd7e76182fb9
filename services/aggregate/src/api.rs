//! `govpulse.aggregate.v1.AggregateService`: decode, call the store and the core, encode.

use std::{
    collections::BTreeSet,
    pin::Pin,
    sync::{Arc, Mutex},
};

use govpulse_common::{
    assessed::decode_assessed,
    convert::{
        Outcomes, accepted, agency_to_proto, conflict, counters_to_proto, duplicate,
        period_to_proto, rate_to_proto, rejected,
    },
    decode_event,
    index_file::LiveProfiles,
    targets_file::LiveTargets,
};
use govpulse_core::{
    AcceptancePolicy, AgencyId, Block, Catalog, Counter, Counters, Metric, Needs, Period,
    ProvisionFacts, Rate, ReadPlan, backlog,
    compare::Comparison,
    counting::Content,
    index::hundredths_text,
    period::vietnam_day,
    summary::{mean_text, summarize},
    targets::Verdict,
};
use govpulse_proto::aggregate::{
    AgencyCounters, AgencyMetric, ApplyEventsRequest, ApplyEventsResponse, Change,
    GetBlockMetricsRequest, GetBlockMetricsResponse, GetBlockSnapshotRequest,
    GetBlockSnapshotResponse, GetMetricsRequest, GetMetricsResponse, MetricReport, Summary,
    TargetStanding, WatchChangesRequest, WatchChangesResponse,
    aggregate_service_server::AggregateService, get_block_metrics_request::Scope,
};
use govpulse_proto::aggregate::{
    ApplyAssessedScoresRequest, ApplyAssessedScoresResponse, AssessedPoints,
};
use govpulse_store::{AgencyKey, Applied, AssessedWrite, ChangeNotice, CounterStore, EventWrite};
use time::{Date, OffsetDateTime};
use tokio::sync::broadcast;
use tokio_stream::{
    Stream, StreamExt, wrappers::BroadcastStream, wrappers::errors::BroadcastStreamRecvError,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{Instrument, debug, warn};

use crate::Error;

/// The largest batch aggregate applies in one call. Ingest enforces the public limit; this
/// one only bounds the work of a single call.
pub const MAX_APPLY_BATCH: usize = 10_000;

/// How many change notices a slow WatchChanges subscriber may fall behind before it is told
/// that anything may have changed (an empty notice) instead.
const CHANGE_BACKLOG: usize = 1024;

/// The service's state: shared, cheap to clone.
#[derive(Debug, Clone)]
pub struct AggregateApi {
    catalog: Arc<Catalog>,
    store: Arc<dyn CounterStore>,
    policy: AcceptancePolicy,
    targets: LiveTargets,
    profiles: LiveProfiles,
    changes: broadcast::Sender<WatchChangesResponse>,
    sequence: Arc<Mutex<u64>>,
    stopping: CancellationToken,
    /// This replica's id in the notices it publishes through the store, to skip its own
    /// when they come back.
    origin: Arc<str>,
}

impl AggregateApi {
    /// The service over a catalog and a store.
    pub fn new(
        catalog: Arc<Catalog>,
        store: Arc<dyn CounterStore>,
        policy: AcceptancePolicy,
        targets: LiveTargets,
        stopping: CancellationToken,
    ) -> Self {
        let (changes, _) = broadcast::channel(CHANGE_BACKLOG);
        Self {
            catalog,
            store,
            policy,
            targets,
            profiles: LiveProfiles::fixed(govpulse_core::index::Profiles::default()),
            changes,
            sequence: Arc::default(),
            stopping,
            origin: replica_id().into(),
        }
    }

    /// Passes on the notices other replicas publish through the store to this replica's
    /// WatchChanges subscribers, until stopped. Its own notices it sent directly.
    pub async fn relay_changes(
        self,
        mut notices: broadcast::Receiver<ChangeNotice>,
        stopping: CancellationToken,
    ) {
        loop {
            let notice = tokio::select! {
                () = stopping.cancelled() => return,
                notice = notices.recv() => notice,
            };
            match notice {
                Ok(notice) if *notice.origin == *self.origin => {}
                Ok(notice) => self.broadcast(notice),
                // Missed some: anything may have changed.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.broadcast(ChangeNotice::anything());
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// The same service, checking assessed scores against `profiles` (none until set).
    pub fn with_profiles(mut self, profiles: LiveProfiles) -> Self {
        self.profiles = profiles;
        self
    }

    /// Checks and stores assessed scores, all or nothing: the body of ApplyAssessedScores.
    pub async fn apply_assessed(
        &self,
        request: ApplyAssessedScoresRequest,
    ) -> Result<ApplyAssessedScoresResponse, Error> {
        if request.scores.len() > MAX_APPLY_BATCH {
            return Err(Error::invalid(
                "scores",
                format!(
                    "has {} scores; the limit is {MAX_APPLY_BATCH}",
                    request.scores.len()
                ),
            ));
        }
        let today = vietnam_day(OffsetDateTime::now_utc());
        let profiles = self.profiles.get();
        let writes: Vec<AssessedWrite> = request
            .scores
            .iter()
            .enumerate()
            .map(|(i, score)| {
                decode_assessed(i, score, &self.catalog, &profiles, today)
                    .map(|a| AssessedWrite {
                        key: self.key(&a.agency),
                        bucket: a.bucket,
                        profile: a.profile,
                        criterion: a.criterion,
                        hundredths: a.hundredths,
                    })
                    .map_err(Error::Violation)
            })
            .collect::<Result<_, _>>()?;
        if writes.is_empty() {
            return Ok(ApplyAssessedScoresResponse { stored: 0 });
        }
        self.store.put_assessed(&writes).await?;
        // Live rankings of these agencies' blocks recompute, as after counted events.
        let agencies: BTreeSet<String> = writes
            .iter()
            .flat_map(|w| self.catalog.chain(&w.key.agency))
            .map(ToString::to_string)
            .collect();
        self.notify(agencies.into_iter().collect(), Vec::new());
        Ok(ApplyAssessedScoresResponse {
            stored: u32::try_from(writes.len()).unwrap_or(u32::MAX),
        })
    }

    fn period(&self, raw: &str) -> Result<Period, Error> {
        Period::parse(raw, vietnam_day(OffsetDateTime::now_utc()))
            .map_err(|e| Error::invalid("period", e.to_string()))
    }

    fn key(&self, agency: &AgencyId) -> AgencyKey {
        let root = self.catalog.root(agency).unwrap_or(agency).clone();
        AgencyKey {
            root,
            agency: agency.clone(),
        }
    }

    /// Applies a batch: the body of ApplyEvents.
    pub async fn apply(&self, request: ApplyEventsRequest) -> Result<ApplyEventsResponse, Error> {
        if request.events.len() > MAX_APPLY_BATCH {
            return Err(Error::invalid(
                "events",
                format!(
                    "has {} events; the limit is {MAX_APPLY_BATCH}",
                    request.events.len()
                ),
            ));
        }
        let now = OffsetDateTime::now_utc();
        let mut outcomes = Outcomes::with_capacity(request.events.len());
        let mut writes = Vec::with_capacity(request.events.len());
        let mut positions = Vec::with_capacity(request.events.len());
        for (i, event) in request.events.into_iter().enumerate() {
            match decode_event(Some(i), event, &self.catalog, &self.policy, now) {
                Ok(event) => {
                    // decode_event checked that the procedure existed on the event's day;
                    // should that ever not hold, the event is refused, never dropped from
                    // the outcomes.
                    let day = event.day();
                    let Some(provision) = self
                        .catalog
                        .procedure(&event.procedure)
                        .and_then(|p| p.on(day))
                        .map(|span| span.provision)
                    else {
                        outcomes.decided(rejected(govpulse_common::Violation {
                            field: format!("events[{i}].procedure_id"),
                            reason: "unknown procedure".to_owned(),
                        }));
                        continue;
                    };
                    let dossier = event.dossier_change();
                    writes.push(EventWrite {
                        content: Content::of(&event),
                        delta: event.delta(provision),
                        chain: self.catalog.shared_chain(&event.agency),
                        event_id: event.event_id,
                        agency: event.agency,
                        day,
                        remember_until: self.policy.remember_until(day),
                        dossier,
                    });
                    positions.push(i);
                    outcomes.later();
                }
                Err(violation) => outcomes.decided(rejected(violation)),
            }
        }
        let applied = if writes.is_empty() {
            Vec::new()
        } else {
            self.store.apply(&writes).await?
        };
        let mut agencies: BTreeSet<&AgencyId> = BTreeSet::new();
        let mut days = BTreeSet::new();
        let counted = positions
            .iter()
            .zip(&writes)
            .zip(&applied)
            .map(|((position, write), result)| match result {
                Applied::Accepted => {
                    agencies.extend(write.chain.iter());
                    days.insert(write.day);
                    accepted()
                }
                Applied::Duplicate => duplicate(),
                Applied::Conflict { fields } => conflict(*position, fields),
            })
            .collect();
        let store_said = |wrong: String| {
            Error::Store(govpulse_store::StoreError::Unexpected(format!(
                "the store answered {wrong}"
            )))
        };
        outcomes.fill(counted).map_err(store_said)?;
        if !agencies.is_empty() {
            self.notify(
                agencies.into_iter().map(ToString::to_string).collect(),
                days.into_iter().map(|day| day.to_string()).collect(),
            );
        }
        let outcomes = outcomes.finish().map_err(store_said)?;
        Ok(ApplyEventsResponse { outcomes })
    }

    /// Tells this replica's subscribers now, and the other replicas through the store.
    fn notify(&self, agency_ids: Vec<String>, days: Vec<String>) {
        let notice = ChangeNotice {
            origin: self.origin.to_string(),
            agencies: agency_ids,
            days,
            // The ApplyEvents call's span: the recomputations this notice causes, on any
            // replica's rankings, join its trace.
            traceparent: govpulse_common::telemetry::current_traceparent(),
        };
        let store = self.store.clone();
        let shared = notice.clone();
        // Not awaited: the batch is counted whatever happens to its notice, which is at most
        // once anyway (readers refresh periodically).
        // In the batch's span, so its trace shows the publication too.
        tokio::spawn(
            async move {
                if let Err(e) = store.publish_change(&shared).await {
                    warn!(error = %e, "change notice not published to the other replicas");
                }
            }
            .instrument(tracing::Span::current()),
        );
        self.broadcast(notice);
    }

    fn broadcast(&self, notice: ChangeNotice) {
        // Numbering and sending under one lock keeps sequence numbers in sending order
        // when several batches finish at once.
        let mut sequence = self
            .sequence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *sequence += 1;
        // No subscriber is not an error: nobody is watching.
        let _ = self.changes.send(WatchChangesResponse {
            sequence: *sequence,
            agency_ids: notice.agencies,
            days: notice.days,
            traceparent: notice.traceparent,
        });
    }

    /// The agencies whose counts make up `agency` over `period`: itself, plus the agencies
    /// it absorbed after the period began and by `as_of`. One agency's report reads it as it
    /// is now (`Date::MAX`); a block reads its members as they were on the last day of the
    /// period asked for, and compares each, over any other period, with the same agencies,
    /// so that no dossier counts for two members.
    fn constituents(&self, agency: &AgencyId, period: &Period, as_of: Date) -> Vec<AgencyId> {
        self.catalog
            .constituents_within(agency, period.first_day(), as_of)
    }

    /// Each agency's counters over `period`, a merged agency summed with its predecessors.
    /// `parent` says the agencies are all children of that agency: their counters are then
    /// read from the parent's roll-up of its children when none of them absorbed another.
    async fn read(
        &self,
        agencies: &[AgencyId],
        parent: Option<&AgencyId>,
        period: &Period,
        as_of: Date,
        needs: &Needs,
    ) -> Result<Vec<Counters>, Error> {
        // Children that absorbed no other agency are read from their parent's roll-up, which
        // needs no per-agency keys: 10,000 units are not keyed, nor their constituents listed,
        // one by one.
        let parent = parent.filter(|_| {
            agencies.iter().all(|a| {
                !self.catalog.absorbed_any(a) || self.constituents(a, period, as_of).len() == 1
            })
        });
        let keyed = |constituents: &mut dyn Iterator<Item = Vec<AgencyId>>| {
            constituents
                .map(|group| group.iter().map(|c| self.key(c)).collect())
                .collect::<Vec<Vec<AgencyKey>>>()
        };
        let groups: Vec<Vec<AgencyKey>> = if parent.is_some() && !needs.distinct {
            Vec::new()
        } else {
            keyed(&mut agencies.iter().map(|a| self.constituents(a, period, as_of)))
        };
        let (by_event_day, by_due_day): (Vec<Counter>, Vec<Counter>) =
            needs.counters.iter().partition(|c| !c.by_due_day());
        let mut totals = vec![Counters::default(); agencies.len()];
        if !by_event_day.is_empty() {
            // No event can be dated after the day of now + the accepted skew, so the counters
            // may be read as larger buckets minus what lies outside the period.
            let last_possible = vietnam_day(OffsetDateTime::now_utc() + self.policy.future_skew);
            let plan = period.read_plan(last_possible);
            totals = self
                .read_plan(agencies, parent, &groups, &plan, &by_event_day)
                .await?;
        }
        if !by_due_day.is_empty() {
            // The dossiers open past due at the period's end: the due-day counters over every
            // day up to it (govpulse_core::backlog), for the agency and every agency it had
            // absorbed by then (their open dossiers passed to it). Due days run up to a year
            // ahead, so the plan may not assume that nothing lies after today.
            let last_possible =
                backlog::last_possible_due_day(&self.policy, OffsetDateTime::now_utc());
            let plan = backlog::prefix_plan(period.last_day(), last_possible);
            let absorbed = |a: &AgencyId| self.catalog.constituents_within(a, Date::MIN, as_of);
            let parent = parent.filter(|_| {
                agencies
                    .iter()
                    .all(|a| !self.catalog.absorbed_any(a) || absorbed(a).len() == 1)
            });
            let groups = if parent.is_some() {
                Vec::new()
            } else {
                keyed(&mut agencies.iter().map(absorbed))
            };
            let due = self
                .read_plan(agencies, parent, &groups, &plan, &by_due_day)
                .await?;
            for (total, due) in totals.iter_mut().zip(due) {
                total.open_past_due_at_end = due
                    .get(Counter::DueOpened)
                    .saturating_sub(due.get(Counter::DueClosed));
            }
        }
        if needs.distinct {
            // Distinct counts do not subtract: they are the union over buckets holding exactly
            // the period's data (the exact cover, or enclosing buckets whose other days are
            // all after the last day that can hold data).
            let distinct_only = Needs {
                counters: Vec::new(),
                distinct: true,
            };
            let last_possible = vietnam_day(OffsetDateTime::now_utc() + self.policy.future_skew);
            let distinct = self
                .store
                .read(&groups, &period.union_cover(last_possible), &distinct_only)
                .await?;
            for (total, d) in totals.iter_mut().zip(distinct) {
                total.procedures_with_online_dossiers = d.procedures_with_online_dossiers;
            }
        }
        Ok(totals)
    }

    /// `counters` summed over a read plan's added buckets minus its subtracted ones, per
    /// agency: from `parent`'s roll-up of its children `agencies` when a parent is given,
    /// else from each agency's `groups` (itself and the agencies it absorbed).
    async fn read_plan(
        &self,
        agencies: &[AgencyId],
        parent: Option<&AgencyId>,
        groups: &[Vec<AgencyKey>],
        plan: &ReadPlan,
        counters: &[Counter],
    ) -> Result<Vec<Counters>, Error> {
        let parent = parent.map(|p| self.key(p));
        let needs = Needs {
            counters: counters.to_vec(),
            distinct: false,
        };
        let mut totals = Vec::new();
        for (buckets, added) in [(&plan.add, true), (&plan.subtract, false)] {
            if buckets.is_empty() {
                if added {
                    totals = vec![Counters::default(); agencies.len()];
                }
                continue;
            }
            let read = match &parent {
                Some(parent) => {
                    self.store
                        .read_children(parent, agencies, buckets, counters)
                        .await?
                }
                None => self.store.read(groups, buckets, &needs).await?,
            };
            if added {
                totals = read;
            } else {
                for (total, outside) in totals.iter_mut().zip(&read) {
                    total.subtract(outside);
                }
            }
        }
        Ok(totals)
    }

    /// The agency's current backlog, with that of every agency it ever absorbed (their open
    /// dossiers passed to it): the dossiers open past due at the end of today, from the
    /// due-day counters (`govpulse_core::backlog`).
    async fn open_past_due(&self, agency: &AgencyId) -> Result<u64, Error> {
        let today = vietnam_day(OffsetDateTime::now_utc());
        let today = Period::from_days(today, today);
        let needs = Needs {
            counters: backlog::DUE_COUNTERS.to_vec(),
            distinct: false,
        };
        let counters = self
            .read(
                std::slice::from_ref(agency),
                None,
                &today,
                Date::MAX,
                &needs,
            )
            .await?;
        Ok(counters.first().map_or(0, |c| c.open_past_due_at_end))
    }

    /// The agencies an agency absorbed after the period began and by `as_of` (for the
    /// `merged_from` fields).
    fn merged_from(&self, agency: &AgencyId, period: &Period, as_of: Date) -> Vec<String> {
        if !self.catalog.absorbed_any(agency) {
            return Vec::new();
        }
        self.constituents(agency, period, as_of)
            .iter()
            .skip(1)
            .map(ToString::to_string)
            .collect()
    }

    fn agency(&self, field: &'static str, raw: &str) -> Result<&govpulse_core::Agency, Error> {
        self.catalog
            .agency_by_str(raw)
            .ok_or_else(|| Error::invalid(field, format!("unknown agency {raw:?}")))
    }

    fn verdict(
        &self,
        agency: &AgencyId,
        metric: Metric,
        period: &Period,
        rate: Option<Rate>,
    ) -> Option<Verdict> {
        self.targets.get().verdict(
            &self.catalog,
            agency,
            metric,
            period.last_day().year(),
            rate,
        )
    }

    /// One agency's report: the body of GetMetrics.
    pub async fn metrics(&self, request: GetMetricsRequest) -> Result<GetMetricsResponse, Error> {
        let agency = self.agency("agency_id", &request.agency_id)?;
        let period = self.period(&request.period)?;
        let metrics: Vec<Metric> = if request.metrics.is_empty() {
            Metric::ALL.to_vec()
        } else {
            request
                .metrics
                .iter()
                .map(|m| {
                    m.parse()
                        .map_err(|e: govpulse_core::metric::UnknownMetric| {
                            Error::invalid("metrics", e.to_string())
                        })
                })
                .collect::<Result<_, _>>()?
        };
        let base = self.base_period(&request.compare_to, &period)?;
        let (last_year, previous) = (period.same_period_last_year(), period.previous());
        let everything = &Needs::everything();
        let ids = std::slice::from_ref(&agency.id);
        // The agency as it is now: over any period, with every agency it absorbed since.
        let read = |p: &Period| {
            let p = p.clone();
            async move {
                let counters = self.read(ids, None, &p, Date::MAX, everything).await?[0];
                // Each period is measured against the catalog as it was on its own last day,
                // for the agencies counted with it.
                let facts = self.catalog.provision_facts_of(
                    &self.constituents(&agency.id, &p, Date::MAX),
                    p.last_day(),
                );
                Ok::<_, Error>((counters, facts))
            }
        };
        let (now, then, before) = (
            read(&period).await?,
            read(&last_year).await?,
            read(&previous).await?,
        );
        let based = match &base {
            Some(base) => Some(read(base).await?),
            None => None,
        };
        let metrics = metrics
            .into_iter()
            .map(|metric| {
                let value =
                    |(counters, facts): &(Counters, ProvisionFacts)| metric.rate(counters, facts);
                let (rate, last_year_rate, previous_rate) =
                    (value(&now), value(&then), value(&before));
                let base_rate = based.as_ref().and_then(value);
                MetricReport {
                    metric: metric.name().to_owned(),
                    rate: rate.map(rate_to_proto),
                    same_period_last_year: last_year_rate.map(rate_to_proto),
                    previous_period: previous_rate.map(rate_to_proto),
                    change_from_last_year: change(rate, last_year_rate),
                    change_from_previous_period: change(rate, previous_rate),
                    target: self
                        .verdict(&agency.id, metric, &period, rate)
                        .map(standing),
                    base: base_rate.map(rate_to_proto),
                    change_from_base: change(rate, base_rate),
                }
            })
            .collect();
        let now = now.0;
        Ok(GetMetricsResponse {
            agency: Some(agency_to_proto(agency)),
            period: Some(period_to_proto(&period)),
            same_period_last_year: Some(period_to_proto(&last_year)),
            previous_period: Some(period_to_proto(&previous)),
            counters: Some(counters_to_proto(&now)),
            metrics,
            merged_from: self.merged_from(&agency.id, &period, Date::MAX),
            open_past_due: self.open_past_due(&agency.id).await?,
            base_period: base.as_ref().map(period_to_proto),
        })
    }

    /// The earlier period `compare_to` names, if any: it must end before `period` begins.
    fn base_period(&self, compare_to: &str, period: &Period) -> Result<Option<Period>, Error> {
        if compare_to.trim().is_empty() {
            return Ok(None);
        }
        let base = Period::parse(compare_to, vietnam_day(OffsetDateTime::now_utc()))
            .map_err(|e| Error::invalid("compare_to", e.to_string()))?;
        if base.last_day() >= period.first_day() {
            return Err(Error::invalid(
                "compare_to",
                format!(
                    "{compare_to:?} ends on {}, not before the period begins on {}: compare with an earlier period",
                    base.last_day(),
                    period.first_day()
                ),
            ));
        }
        Ok(Some(base))
    }

    /// One metric over several agencies: the body of GetBlockMetrics.
    pub async fn block_metrics(
        &self,
        request: GetBlockMetricsRequest,
    ) -> Result<GetBlockMetricsResponse, Error> {
        let period = self.period(&request.period)?;
        let last_day = period.last_day();
        let mut parent_id = None;
        let members: Vec<&govpulse_core::Agency> = match request.scope {
            None => {
                return Err(Error::invalid(
                    "scope",
                    "one of block, parent_id or nation is required",
                ));
            }
            Some(Scope::Block(value)) => {
                let block = govpulse_common::convert::block_from_proto(value).ok_or_else(|| {
                    Error::invalid("block", "is required: BLOCK_MINISTRY or BLOCK_PROVINCE")
                })?;
                self.catalog.block_members_on(block, last_day).collect()
            }
            Some(Scope::ParentId(parent)) => {
                let parent = &self.agency("parent_id", &parent)?.id;
                parent_id = Some(parent.clone());
                self.catalog
                    .children(parent)
                    .into_iter()
                    .filter(|a| a.exists_on(last_day))
                    .collect()
            }
            Some(Scope::Nation(_)) => self
                .catalog
                .agencies()
                .filter(|a| a.parent.is_none() && a.exists_on(last_day))
                .collect(),
        };
        let metric: Metric =
            request
                .metric
                .parse()
                .map_err(|e: govpulse_core::metric::UnknownMetric| {
                    Error::invalid("metric", e.to_string())
                })?;
        let base = self.base_period(&request.compare_to, &period)?;
        let last_year = period.same_period_last_year();
        let ids: Vec<AgencyId> = members.iter().map(|a| a.id.clone()).collect();
        let needs = metric.needs();
        // Every period is read for the members as they were on the last day of the period
        // asked for: a member is compared with the sum of the agencies it had absorbed by
        // then, and an agency it had not absorbed yet is a member of its own.
        let parent = parent_id.as_ref();
        let read_base = async {
            match &base {
                Some(base) => self
                    .read(&ids, parent, base, last_day, &needs)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        // All periods at once: their round trips to Redis overlap.
        let (now, then, based) = futures::try_join!(
            self.read(&ids, parent, &period, last_day, &needs),
            self.read(&ids, parent, &last_year, last_day, &needs),
            read_base
        )?;
        // Each period is measured against the catalog as it was on its own last day, for
        // the agencies counted with the member. Most metrics do not look at the catalog's
        // facts: 10,000 units skip 20,000 lookups.
        let fractions = |counters: &[Counters], read: &Period| -> Vec<(u64, u64)> {
            members
                .iter()
                .zip(counters)
                .map(|(a, c)| {
                    let facts = if metric.uses_provision_facts() {
                        self.catalog.provision_facts_of(
                            &self.constituents(&a.id, read, last_day),
                            read.last_day(),
                        )
                    } else {
                        ProvisionFacts::default()
                    };
                    metric.fraction(c, &facts)
                })
                .collect()
        };
        let fractions_now = fractions(&now, &period);
        let fractions_then = fractions(&then, &last_year);
        let fractions_base = match (&based, &base) {
            (Some(counters), Some(base)) => Some(fractions(counters, base)),
            _ => None,
        };
        let rate = |(n, d): (u64, u64)| Rate::new(n, d);
        let verdicts: Vec<Option<Verdict>> = members
            .iter()
            .zip(&fractions_now)
            .map(|(a, now)| self.verdict(&a.id, metric, &period, rate(*now)))
            .collect();
        let agencies = members
            .iter()
            .enumerate()
            .map(|(i, agency)| {
                let value = rate(fractions_now[i]);
                let last_year_value = rate(fractions_then[i]);
                let base_value = fractions_base.as_ref().and_then(|f| rate(f[i]));
                AgencyMetric {
                    agency_id: agency.id.as_str().to_owned(),
                    agency_name: agency.name.clone(),
                    rate: value.map(rate_to_proto),
                    same_period_last_year: last_year_value.map(rate_to_proto),
                    change_from_last_year: change(value, last_year_value),
                    target: verdicts[i].clone().map(standing),
                    merged_from: self.merged_from(&agency.id, &period, last_day),
                    base: base_value.map(rate_to_proto),
                    change_from_base: change(value, base_value),
                }
            })
            .collect();
        // Targets are counted among the agencies with data: whether one without data meets
        // its target is unknown.
        let with_target = verdicts
            .iter()
            .flatten()
            .filter(|v| v.met.is_some())
            .count();
        let meeting = verdicts
            .iter()
            .flatten()
            .filter(|v| v.met == Some(true))
            .count();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let to_proto =
            |s: &govpulse_core::summary::Summary, with_target: usize, meeting: usize| Summary {
                pooled: s.pooled.map(rate_to_proto),
                mean_percent: s.mean_percent.map(mean_text).unwrap_or_default(),
                agencies: count(s.with_data + s.without_data),
                agencies_without_data: count(s.without_data),
                agencies_with_target: count(with_target),
                agencies_meeting_target: count(meeting),
            };
        let summary_now = summarize(fractions_now.iter().copied());
        let summary_then = summarize(fractions_then.iter().copied());
        let summary_base = fractions_base
            .as_ref()
            .map(|f| summarize(f.iter().copied()));
        Ok(GetBlockMetricsResponse {
            period: Some(period_to_proto(&period)),
            same_period_last_year: Some(period_to_proto(&last_year)),
            agencies,
            pooled_change_from_last_year: change(summary_now.pooled, summary_then.pooled),
            pooled_change_from_base: summary_base
                .as_ref()
                .and_then(|b| change(summary_now.pooled, b.pooled)),
            summary: Some(to_proto(&summary_now, with_target, meeting)),
            // Targets are per year; other periods' standings are not reported here.
            summary_same_period_last_year: Some(to_proto(&summary_then, 0, 0)),
            summary_base: summary_base.as_ref().map(|b| to_proto(b, 0, 0)),
            base_period: base.as_ref().map(period_to_proto),
        })
    }

    async fn block_snapshot(
        &self,
        request: GetBlockSnapshotRequest,
    ) -> Result<GetBlockSnapshotResponse, Error> {
        enum Scope {
            Block(Block),
            Children(AgencyId),
        }
        // The scope is checked before the period, so a request wrong in both names its scope.
        let scope = match request.parent_id.trim() {
            "" => Scope::Block(
                govpulse_common::convert::block_from_proto(request.block).ok_or_else(|| {
                    Error::invalid(
                        "block",
                        "is required (BLOCK_MINISTRY or BLOCK_PROVINCE) unless parent_id is set",
                    )
                })?,
            ),
            raw => Scope::Children(self.agency("parent_id", raw)?.id.clone()),
        };
        let period = self.period(&request.period)?;
        let (members, parent): (Vec<AgencyId>, Option<AgencyId>) = match scope {
            Scope::Block(block) => {
                let members = self
                    .catalog
                    .block_members_on(block, period.last_day())
                    .map(|a| a.id.clone())
                    .collect();
                (members, None)
            }
            Scope::Children(parent) => {
                let members = self
                    .catalog
                    .children(&parent)
                    .into_iter()
                    .filter(|a| a.exists_on(period.last_day()))
                    .map(|a| a.id.clone())
                    .collect();
                (members, Some(parent))
            }
        };
        let needs = match request.metric.as_str() {
            // A composite index reads what its measured indicators need: nothing for one
            // made only of assessed criteria.
            "" if !request.metrics.is_empty() || !request.assessed_profile.is_empty() => {
                snapshot_needs(&request.metrics)?
            }
            "" => Needs::everything(),
            name => name
                .parse::<Metric>()
                .map_err(|e: govpulse_core::metric::UnknownMetric| {
                    Error::invalid("metric", e.to_string())
                })?
                .needs(),
        };
        let counters = self
            .read(
                &members,
                parent.as_ref(),
                &period,
                period.last_day(),
                &needs,
            )
            .await?;
        let assessed = self
            .read_assessed(&members, &period, &request.assessed_profile)
            .await?;
        let agencies = members
            .iter()
            .zip(&counters)
            .zip(assessed)
            .map(|((id, c), assessed)| AgencyCounters {
                agency_id: id.to_string(),
                counters: Some(counters_to_proto(c)),
                merged_from: self.merged_from(id, &period, period.last_day()),
                assessed,
            })
            .collect();
        Ok(GetBlockSnapshotResponse {
            period: Some(period_to_proto(&period)),
            agencies,
        })
    }
}

impl AggregateApi {
    /// Each agency's own assessed scores for `profile` over `period`: none when no profile
    /// is asked for or the period is not a calendar period (scores are stored per calendar
    /// period).
    async fn read_assessed(
        &self,
        agencies: &[AgencyId],
        period: &Period,
        profile: &str,
    ) -> Result<Vec<Vec<AssessedPoints>>, Error> {
        let bucket = match (profile, period.as_bucket()) {
            ("", _) | (_, None) => return Ok(vec![Vec::new(); agencies.len()]),
            (_, Some(bucket)) => bucket,
        };
        let keys: Vec<AgencyKey> = agencies.iter().map(|a| self.key(a)).collect();
        Ok(self
            .store
            .read_assessed(&keys, bucket, profile)
            .await?
            .into_iter()
            .map(|points| {
                points
                    .into_iter()
                    .map(|(criterion, hundredths)| AssessedPoints {
                        criterion,
                        points: hundredths_text(hundredths),
                    })
                    .collect()
            })
            .collect())
    }
}

/// What a snapshot of several metrics reads: every counter any of them needs, and the
/// distinct count if one needs it.
fn snapshot_needs(metrics: &[String]) -> Result<Needs, Error> {
    let mut needs = Needs {
        counters: Vec::new(),
        distinct: false,
    };
    for name in metrics {
        let metric: Metric = name
            .parse()
            .map_err(|e: govpulse_core::metric::UnknownMetric| {
                Error::invalid("metrics", e.to_string())
            })?;
        let more = metric.needs();
        for counter in more.counters {
            if !needs.counters.contains(&counter) {
                needs.counters.push(counter);
            }
        }
        needs.distinct |= more.distinct;
    }
    Ok(needs)
}

/// A value against another, when both have data.
fn change(current: Option<Rate>, other: Option<Rate>) -> Option<Change> {
    let comparison = Comparison {
        current: current?,
        other: other?,
    };
    Some(Change {
        ratio: comparison
            .ratio()
            .map(|r| r.two_decimals())
            .unwrap_or_default(),
        points: comparison.change_points(),
    })
}

/// A target verdict as a message.
fn standing(verdict: Verdict) -> TargetStanding {
    TargetStanding {
        target_percent: verdict.target.percent(),
        applies_to: verdict.target.scope_text(),
        met: verdict.met,
        gap_points: verdict.gap_points.unwrap_or_default(),
    }
}

/// An id for this replica, different for every AggregateApi of every process.
fn replica_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp_nanos(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

type ChangeStream = Pin<Box<dyn Stream<Item = Result<WatchChangesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregateService for AggregateApi {
    async fn apply_events(
        &self,
        request: Request<ApplyEventsRequest>,
    ) -> Result<Response<ApplyEventsResponse>, Status> {
        let response = self.apply(request.into_inner()).await?;
        govpulse_common::prometheus::record_outcomes("aggregate", &response.outcomes);
        Ok(Response::new(response))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        Ok(Response::new(self.metrics(request.into_inner()).await?))
    }

    async fn get_block_metrics(
        &self,
        request: Request<GetBlockMetricsRequest>,
    ) -> Result<Response<GetBlockMetricsResponse>, Status> {
        Ok(Response::new(
            self.block_metrics(request.into_inner()).await?,
        ))
    }

    async fn get_block_snapshot(
        &self,
        request: Request<GetBlockSnapshotRequest>,
    ) -> Result<Response<GetBlockSnapshotResponse>, Status> {
        Ok(Response::new(
            self.block_snapshot(request.into_inner()).await?,
        ))
    }

    async fn apply_assessed_scores(
        &self,
        request: Request<ApplyAssessedScoresRequest>,
    ) -> Result<Response<ApplyAssessedScoresResponse>, Status> {
        Ok(Response::new(
            self.apply_assessed(request.into_inner()).await?,
        ))
    }

    type WatchChangesStream = ChangeStream;

    async fn watch_changes(
        &self,
        _request: Request<WatchChangesRequest>,
    ) -> Result<Response<ChangeStream>, Status> {
        debug!("change subscriber joined");
        let subscriber = govpulse_common::prometheus::Subscriber::open("changes");
        let notices = BroadcastStream::new(self.changes.subscribe()).map(move |notice| {
            // Counted as an open stream until the stream (and this closure) is dropped.
            let _ = &subscriber;
            notice
        });
        let notices = notices.map(|notice| match notice {
            Ok(notice) => Ok(notice),
            // Fell behind: say "anything may have changed" rather than replaying.
            Err(BroadcastStreamRecvError::Lagged(_)) => Ok(WatchChangesResponse::default()),
        });
        let stopping = self.stopping.clone();
        let stream =
            futures::StreamExt::take_until(notices, async move { stopping.cancelled().await });
        Ok(Response::new(Box::pin(stream)))
    }
}
