//! `govpulse.aggregate.v1.AggregateService`: decode, call the store and the core, encode.

use std::{
    collections::BTreeSet,
    pin::Pin,
    sync::{Arc, Mutex},
};

use govpulse_common::{
    convert::{
        accepted, agency_to_proto, counters_to_proto, duplicate, period_to_proto, rate_to_proto,
        rejected,
    },
    decode_event,
};
use govpulse_core::{
    AcceptancePolicy, AgencyId, Block, Catalog, Counters, Metric, Period, period::vietnam_day,
};
use govpulse_proto::aggregate::{
    AgencyCounters, ApplyEventsRequest, ApplyEventsResponse, GetAgencyMetricsRequest,
    GetAgencyMetricsResponse, GetBlockSnapshotRequest, GetBlockSnapshotResponse, MetricValue,
    WatchChangesRequest, WatchChangesResponse, aggregate_service_server::AggregateService,
};
use govpulse_store::{AgencyKey, Applied, CounterStore, EventWrite};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio_stream::{
    Stream, StreamExt, wrappers::BroadcastStream, wrappers::errors::BroadcastStreamRecvError,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::debug;

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
    changes: broadcast::Sender<WatchChangesResponse>,
    sequence: Arc<Mutex<u64>>,
    stopping: CancellationToken,
}

impl AggregateApi {
    /// The service over a catalog and a store.
    pub fn new(
        catalog: Arc<Catalog>,
        store: Arc<dyn CounterStore>,
        policy: AcceptancePolicy,
        stopping: CancellationToken,
    ) -> Self {
        let (changes, _) = broadcast::channel(CHANGE_BACKLOG);
        Self {
            catalog,
            store,
            policy,
            changes,
            sequence: Arc::default(),
            stopping,
        }
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

    async fn apply(&self, request: ApplyEventsRequest) -> Result<ApplyEventsResponse, Error> {
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
        let mut outcomes = Vec::with_capacity(request.events.len());
        let mut writes = Vec::with_capacity(request.events.len());
        let mut positions = Vec::with_capacity(request.events.len());
        for (i, event) in request.events.iter().enumerate() {
            match decode_event(
                &format!("events[{i}]"),
                event,
                &self.catalog,
                &self.policy,
                now,
            ) {
                Ok(event) => {
                    // decode_event checked that the procedure exists and the agency too.
                    let provision = self
                        .catalog
                        .procedure(&event.procedure)
                        .map(|p| p.provision);
                    let Some(provision) = provision else { continue };
                    let day = event.day();
                    writes.push(EventWrite {
                        delta: event.delta(provision),
                        chain: self.catalog.chain(&event.agency).to_vec(),
                        event_id: event.event_id,
                        agency: event.agency,
                        day,
                        remember_until: self.policy.remember_until(day),
                    });
                    positions.push(i);
                    outcomes.push(None);
                }
                Err(violation) => outcomes.push(Some(rejected(violation))),
            }
        }
        let applied = if writes.is_empty() {
            Vec::new()
        } else {
            self.store.apply(&writes).await?
        };
        let mut agencies = BTreeSet::new();
        let mut days = BTreeSet::new();
        for ((position, write), result) in positions.iter().zip(&writes).zip(&applied) {
            outcomes[*position] = Some(match result {
                Applied::Accepted => {
                    agencies.extend(write.chain.iter().map(ToString::to_string));
                    days.insert(write.day.to_string());
                    accepted()
                }
                Applied::Duplicate => duplicate(),
            });
        }
        if !agencies.is_empty() {
            self.notify(agencies.into_iter().collect(), days.into_iter().collect());
        }
        let outcomes = outcomes
            .into_iter()
            .map(|o| {
                o.ok_or_else(|| {
                    Error::Store(govpulse_store::StoreError::Unexpected(
                        "an event got no outcome".into(),
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ApplyEventsResponse { outcomes })
    }

    fn notify(&self, agency_ids: Vec<String>, days: Vec<String>) {
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
            agency_ids,
            days,
        });
    }

    async fn read(&self, agencies: &[AgencyId], period: &Period) -> Result<Vec<Counters>, Error> {
        let keys: Vec<AgencyKey> = agencies.iter().map(|a| self.key(a)).collect();
        Ok(self.store.read(&keys, &period.cover()).await?)
    }

    async fn agency_metrics(
        &self,
        request: GetAgencyMetricsRequest,
    ) -> Result<GetAgencyMetricsResponse, Error> {
        let agency = self
            .catalog
            .agency_by_str(&request.agency_id)
            .ok_or_else(|| {
                Error::invalid(
                    "agency_id",
                    format!("unknown agency {:?}", request.agency_id),
                )
            })?;
        let period = self.period(&request.period)?;
        let counters = self
            .read(std::slice::from_ref(&agency.id), &period)
            .await?
            .remove(0);
        let facts = self.catalog.provision_facts(&agency.id);
        let metrics = Metric::ALL
            .into_iter()
            .map(|m| MetricValue {
                metric: m.name().to_owned(),
                rate: m.rate(&counters, &facts).map(rate_to_proto),
            })
            .collect();
        Ok(GetAgencyMetricsResponse {
            agency: Some(agency_to_proto(agency)),
            period: Some(period_to_proto(&period)),
            counters: Some(counters_to_proto(&counters)),
            metrics,
        })
    }

    async fn block_snapshot(
        &self,
        request: GetBlockSnapshotRequest,
    ) -> Result<GetBlockSnapshotResponse, Error> {
        let block: Block =
            govpulse_common::convert::block_from_proto(request.block).ok_or_else(|| {
                Error::invalid("block", "is required: BLOCK_MINISTRY or BLOCK_PROVINCE")
            })?;
        let period = self.period(&request.period)?;
        let members: Vec<AgencyId> = self
            .catalog
            .block_members(block)
            .map(|a| a.id.clone())
            .collect();
        let counters = self.read(&members, &period).await?;
        let agencies = members
            .iter()
            .zip(&counters)
            .map(|(id, c)| AgencyCounters {
                agency_id: id.to_string(),
                counters: Some(counters_to_proto(c)),
            })
            .collect();
        Ok(GetBlockSnapshotResponse {
            period: Some(period_to_proto(&period)),
            agencies,
        })
    }
}

type ChangeStream = Pin<Box<dyn Stream<Item = Result<WatchChangesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregateService for AggregateApi {
    async fn apply_events(
        &self,
        request: Request<ApplyEventsRequest>,
    ) -> Result<Response<ApplyEventsResponse>, Status> {
        Ok(Response::new(self.apply(request.into_inner()).await?))
    }

    async fn get_agency_metrics(
        &self,
        request: Request<GetAgencyMetricsRequest>,
    ) -> Result<Response<GetAgencyMetricsResponse>, Status> {
        Ok(Response::new(
            self.agency_metrics(request.into_inner()).await?,
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

    type WatchChangesStream = ChangeStream;

    async fn watch_changes(
        &self,
        _request: Request<WatchChangesRequest>,
    ) -> Result<Response<ChangeStream>, Status> {
        debug!("change subscriber joined");
        let notices = BroadcastStream::new(self.changes.subscribe()).map(|notice| match notice {
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
