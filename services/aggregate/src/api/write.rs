//! The write handlers: decode, count through the store (with the batch's rejected events,
//! ingest's and aggregate's own), tell the watchers.

use std::{collections::BTreeSet, sync::Arc};

use foldhash::{HashSet, HashSetExt};

use govpulse_core::{AgencyId, counting::Content, freshness::blamed, period::vietnam_day};
use govpulse_edge::assessed::decode_assessed;
use govpulse_edge::convert::{
    Invalid, InvalidField, Outcomes, accepted, conflict, duplicate, notice_to_proto,
    other_procedure, rejected, rejections_from_proto, repeated, uncorrectable,
};
use govpulse_edge::{Counted, decode_counted};
use govpulse_proto::aggregate::{
    AgencyRejections, ApplyAssessedScoresRequest, ApplyAssessedScoresResponse, ApplyEventsRequest,
    ApplyEventsResponse,
};
use govpulse_proto::wire::{ApplyEventsWire, EventView, read_events};
use govpulse_store::{Applied, AssessedWrite, ChangeNotice, EventWrite};
use time::{Date, OffsetDateTime};
use tonic::Status;
use tracing::{Instrument, warn};

use super::{AggregateApi, MAX_APPLY_BATCH};
use crate::Error;

impl AggregateApi {
    /// Applies a batch: the body of ApplyEvents.
    pub async fn apply(&self, request: ApplyEventsRequest) -> Result<ApplyEventsResponse, Error> {
        let events = request.events.into_iter().map(EventView::from).collect();
        self.apply_views(events, &request.rejected_upstream).await
    }

    /// [`AggregateApi::apply`] of a batch whose events are their bytes: each is read in
    /// place (the service's route for ApplyEvents). Bytes that do not decode refuse the call
    /// whole, before anything is counted.
    pub async fn apply_encoded(
        &self,
        request: ApplyEventsWire,
    ) -> Result<ApplyEventsResponse, Status> {
        let events = read_events(&request.events)?;
        Ok(self.apply_views(events, &request.rejected_upstream).await?)
    }

    /// The body of both: checks each event, counts the valid ones (with the rejections) and
    /// answers one outcome per event, recorded in the service's metrics.
    async fn apply_views(
        &self,
        events: Vec<EventView<'_>>,
        rejected_upstream: &[AgencyRejections],
    ) -> Result<ApplyEventsResponse, Error> {
        if events.len() > MAX_APPLY_BATCH {
            return Err(Error::invalid(
                "events",
                format!(
                    "has {} events; the limit is {MAX_APPLY_BATCH}",
                    events.len()
                ),
            ));
        }
        let mut rejections =
            rejections_from_proto(&self.catalog, rejected_upstream, MAX_APPLY_BATCH)
                .map_err(Invalid::from)?;
        // Aggregate's own rejections count against the agency an event names, when the
        // catalog knows it: its caller (ingest) forwards only events their sender may send.
        let mut blame = |named: Option<&AgencyId>| {
            if let Some(agency) = blamed(named, |_| true) {
                rejections.add(agency, 1);
            }
        };
        let now = OffsetDateTime::now_utc();
        let mut outcomes = Outcomes::with_capacity(events.len());
        let mut writes = Vec::with_capacity(events.len());
        let mut positions = Vec::with_capacity(events.len());
        let mut last_until: Option<(Date, OffsetDateTime)> = None;
        for (i, event) in events.into_iter().enumerate() {
            match decode_counted(Some(i), event, &self.catalog, &self.policy, now) {
                Ok(Counted {
                    event,
                    provision,
                    chain,
                    day,
                }) => {
                    let stage = event.stage_event();
                    // Once per day of the batch: its events share a few days.
                    let remember_until = match last_until {
                        Some((at, until)) if at == day => until,
                        _ => {
                            let until = self.policy.remember_until(day);
                            last_until = Some((day, until));
                            until
                        }
                    };
                    writes.push(EventWrite {
                        content: Content::of(&event),
                        delta: event.delta(provision),
                        chain,
                        event_id: event.event_id,
                        agency: event.agency,
                        procedure: event.procedure,
                        day,
                        occurred_at: event.occurred_at,
                        accepted_at: now,
                        remember_until,
                        dossier: event.dossier,
                        stage,
                        corrects: event.corrects,
                    });
                    positions.push(i);
                    outcomes.later();
                }
                Err(violation) => {
                    blame(violation.agency.as_ref());
                    outcomes.decided(rejected(violation));
                }
            }
        }
        let rejected_writes = rejections.writes(&self.catalog, now);
        let applied = if writes.is_empty() && rejected_writes.is_empty() {
            Vec::new()
        } else {
            self.store
                .apply_with_rejected(&writes, &rejected_writes)
                .await?
        };
        // Hashed, sorted once at the end, and each chain added once per run of events that
        // share it (the catalog hands out one chain per agency): an ordered set compared the
        // agencies' text for each agency of each accepted event's chain, about 650
        // instructions per event of the unit mix.
        let mut agencies: HashSet<&AgencyId> = HashSet::new();
        let mut last_chain: Option<&Arc<[AgencyId]>> = None;
        let mut days = BTreeSet::new();
        let mut any_day = false;
        let counted = positions
            .iter()
            .zip(&writes)
            .zip(&applied)
            .map(|((position, write), result)| match result {
                Applied::Accepted => {
                    if !last_chain.is_some_and(|last| Arc::ptr_eq(last, &write.chain)) {
                        agencies.extend(write.chain.iter());
                        last_chain = Some(&write.chain);
                    }
                    days.insert(write.day);
                    // A correction also moves the day of the event it corrects, which only
                    // the store knew: the notice says "any day".
                    any_day |= write.corrects.is_some();
                    accepted()
                }
                Applied::Duplicate => duplicate(),
                Applied::Conflict { fields } => conflict(*position, fields),
                Applied::Repeated { stage } => repeated(*position, *stage, &write.dossier),
                Applied::OtherProcedure => other_procedure(*position, &write.dossier),
                Applied::Uncorrectable(why) => uncorrectable(*position, *why, write),
            })
            .collect();
        let store_said = |wrong: String| {
            Error::Store(govpulse_store::StoreError::Unexpected(format!(
                "the store answered {wrong}"
            )))
        };
        outcomes.fill(counted).map_err(store_said)?;
        // Rejections move their agencies' data quality (and the alerts on it) as of today.
        for write in &rejected_writes {
            agencies.extend(write.chain.iter());
            days.insert(vietnam_day(write.rejected_at));
        }
        if any_day {
            days.clear();
        }
        if !agencies.is_empty() {
            let mut agencies: Vec<AgencyId> = agencies.into_iter().cloned().collect();
            agencies.sort_unstable();
            self.notify(agencies, days.into_iter().collect());
        }
        let outcomes = outcomes.finish().map_err(store_said)?;
        govpulse_runtime::prometheus::record_outcomes("aggregate", &outcomes);
        Ok(ApplyEventsResponse { outcomes })
    }

    /// Tells this replica's subscribers now, and the other replicas through the store.
    fn notify(&self, agencies: Vec<AgencyId>, days: Vec<Date>) {
        let notice = ChangeNotice {
            origin: self.origin.clone(),
            agencies: agencies.into(),
            days: days.into(),
            // The ApplyEvents call's span: the recomputations this notice causes, on any
            // replica's rankings, join its trace.
            traceparent: govpulse_runtime::telemetry::current_traceparent().into(),
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

    pub(super) fn broadcast(&self, notice: ChangeNotice) {
        // Numbering and sending under one lock keeps sequence numbers in sending order
        // when several batches finish at once.
        let mut sequence = self
            .sequence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *sequence += 1;
        // No subscriber is not an error: nobody is watching.
        let _ = self.changes.send(notice_to_proto(*sequence, &notice));
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
                    .map_err(Invalid::from)
            })
            .collect::<Result<_, _>>()?;
        if writes.is_empty() {
            return Ok(ApplyAssessedScoresResponse { stored: 0 });
        }
        self.store.put_assessed(&writes).await?;
        // Live rankings of these agencies' blocks recompute, as after counted events.
        let agencies: BTreeSet<AgencyId> = writes
            .iter()
            .flat_map(|w| self.catalog.chain(&w.key.agency))
            .cloned()
            .collect();
        self.notify(agencies.into_iter().collect(), Vec::new());
        Ok(ApplyAssessedScoresResponse {
            stored: u32::try_from(writes.len()).unwrap_or(u32::MAX),
        })
    }
}
