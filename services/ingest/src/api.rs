//! `govpulse.ingest.v1.IngestService`: authenticate the caller, hold it to its agency's
//! rate, validate each event and check it is the caller's to send, forward the valid ones to
//! aggregate with how many were rejected per agency (its data quality), answer with one
//! outcome per event.

use std::{net::SocketAddr, pin::Pin, sync::Arc};

use govpulse_core::{
    AcceptancePolicy, Catalog,
    freshness::{Rejections, blamed},
};
use govpulse_edge::assessed::decode_assessed;
use govpulse_edge::auth::{Authenticator, Principal, RECHECK_EVERY, Role, StreamCredential, audit};
use govpulse_edge::convert::{Invalid, InvalidField, Outcomes, rejected, rejections_to_proto};
use govpulse_edge::decode::{check_event, encode_event};
use govpulse_proto::{
    aggregate::ApplyAssessedScoresRequest,
    event::AssessedScore,
    ingest::{ReportAssessedScoresRequest, ReportAssessedScoresResponse},
};
use govpulse_proto::{
    aggregate::{ApplyEventsResponse, aggregate_service_client::AggregateServiceClient},
    codec::GovpulseCodec,
    event::{EventOutcome, OutcomeStatus},
    ingest::{
        StreamEventsRequest, StreamEventsResponse, SubmitEventsRequest, SubmitEventsResponse,
        ingest_service_server::IngestService,
    },
    wire::{APPLY_EVENTS, ApplyEventsWire, EventView, SubmitEventsWire, read_events},
};
use govpulse_runtime::index_file::LiveProfiles;
use prost::{Message, bytes::Bytes};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tokio_util::sync::CancellationToken;
use tonic::{
    Request, Response, Status, Streaming, codegen::http::uri::PathAndQuery, transport::Channel,
};
use tracing::{Instrument, debug, warn};

use crate::{Error, limits::AgencyLimiter};

/// How many acknowledgements a StreamEvents call may have waiting for the client to read
/// them. Bounded so a client that sends but never reads is slowed down (its next batch
/// waits) instead of growing the server's memory.
const ACK_BACKLOG: usize = 16;

/// The outcomes of one batch, with their tallies.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// One per event, in order.
    pub outcomes: Vec<EventOutcome>,
    /// ACCEPTED count.
    pub accepted: u32,
    /// DUPLICATE count.
    pub duplicate: u32,
    /// REJECTED count.
    pub rejected: u32,
    /// CONFLICT count.
    pub conflict: u32,
}

impl BatchOutcome {
    fn new(outcomes: Vec<EventOutcome>) -> Self {
        let count = |status: OutcomeStatus| {
            u32::try_from(
                outcomes
                    .iter()
                    .filter(|o| o.status == status as i32)
                    .count(),
            )
            .unwrap_or(u32::MAX)
        };
        let (accepted, duplicate, rejected, conflict) = (
            count(OutcomeStatus::Accepted),
            count(OutcomeStatus::Duplicate),
            count(OutcomeStatus::Rejected),
            count(OutcomeStatus::Conflict),
        );
        Self {
            outcomes,
            accepted,
            duplicate,
            rejected,
            conflict,
        }
    }
}

/// The service's state: shared, cheap to clone.
#[derive(Debug, Clone)]
pub struct IngestApi {
    catalog: Arc<Catalog>,
    aggregate: AggregateServiceClient<Channel>,
    /// The same connection, for the calls sent as bytes (`apply_events`).
    channel: Channel,
    policy: AcceptancePolicy,
    max_batch: usize,
    profiles: LiveProfiles,
    stopping: CancellationToken,
    auth: Authenticator,
    limiter: Arc<AgencyLimiter>,
}

/// Who sent a call, and from where (for the audit log).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated credential.
    pub principal: Principal,
    /// The peer's address.
    pub peer: Option<SocketAddr>,
}

impl IngestApi {
    /// The service, forwarding to aggregate over `channel`; `auth` decides who callers are,
    /// `limiter` holds each agency to its rate.
    pub fn new(
        catalog: Arc<Catalog>,
        channel: Channel,
        policy: AcceptancePolicy,
        max_batch: usize,
        stopping: CancellationToken,
        auth: Authenticator,
        limiter: Arc<AgencyLimiter>,
    ) -> Self {
        Self {
            catalog,
            aggregate: AggregateServiceClient::new(channel.clone()),
            channel,
            policy,
            max_batch,
            profiles: LiveProfiles::fixed(govpulse_core::index::Profiles::default()),
            stopping,
            auth,
            limiter,
        }
    }

    /// The same service, checking assessed scores against `profiles` (none until set).
    pub fn with_profiles(mut self, profiles: LiveProfiles) -> Self {
        self.profiles = profiles;
        self
    }

    /// Refuses a call carrying more than one batch may hold (`count` of `field`): the whole
    /// call, before any of it is handled; the caller splits its `call` (batch, report).
    fn within_batch(&self, field: &'static str, count: usize, call: &str) -> Result<(), Error> {
        if count > self.max_batch {
            return Err(Error::invalid(
                field,
                format!(
                    "has {count} {field}; the limit is {}: split the {call}",
                    self.max_batch
                ),
            ));
        }
        Ok(())
    }

    /// Checks every assessed score and has aggregate store them, all or nothing: the body
    /// of ReportAssessedScores. Returns how many were stored.
    pub async fn report_assessed(&self, scores: Vec<AssessedScore>) -> Result<u32, Error> {
        self.within_batch("scores", scores.len(), "report")?;
        let today = govpulse_core::period::vietnam_day(OffsetDateTime::now_utc());
        let profiles = self.profiles.get();
        for (i, score) in scores.iter().enumerate() {
            decode_assessed(i, score, &self.catalog, &profiles, today).map_err(Invalid::from)?;
        }
        if scores.is_empty() {
            return Ok(0);
        }
        let response = self
            .aggregate
            .clone()
            .apply_assessed_scores(govpulse_runtime::telemetry::traced(
                ApplyAssessedScoresRequest { scores },
            ))
            .await
            .map_err(|status| match status.code() {
                tonic::Code::InvalidArgument => Error::Refused(status),
                _ => Error::Aggregate(status),
            })?;
        Ok(response.into_inner().stored)
    }

    /// The caller of `request`: a valid credential holding the reporter role.
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Error> {
        self.authorize(request, Role::Reporter)
    }

    /// The caller of `request` if its credential is valid (else UNAUTHENTICATED) and holds
    /// `role` (else PERMISSION_DENIED); both refusals are audited. Every rpc starts here:
    /// event submission needs `Role::Reporter`, `ReportAssessedScores` `Role::Assessor`,
    /// catalog, target and index-profile changes `Role::Admin`.
    pub fn authorize<T>(&self, request: &Request<T>, role: Role) -> Result<Caller, Error> {
        let principal = self.auth.authorize(request, role)?;
        Ok(Caller {
            principal,
            peer: request.remote_addr(),
        })
    }

    /// Authenticates a call from its headers and connection alone, before its body is read or
    /// decoded, and keeps the principal in its extensions for [`IngestApi::authorize`]: a
    /// caller without a valid credential is refused having cost a header's worth of work,
    /// whatever body it sends. The gRPC routes' interceptor and the JSON routes' middleware.
    pub fn authenticate_first(
        &self,
        headers: &tonic::codegen::http::HeaderMap,
        extensions: &mut tonic::codegen::http::Extensions,
    ) -> Result<(), Status> {
        let principal = self.auth.authenticate_parts(headers, extensions)?;
        extensions.insert(principal);
        Ok(())
    }

    /// Takes a batch of `events` from the caller's agency's rate.
    fn take_rate(&self, caller: &Caller, events: usize) -> Result<(), Error> {
        let agency = caller.principal.agency_name();
        self.limiter.take(&agency, events).map_err(|retry_after| {
            audit(
                "rate_limited",
                &agency,
                caller.peer,
                &format!("{events} events over the agency's rate; retry in {retry_after:?}"),
            );
            Error::RateLimited {
                agency,
                retry_after,
            }
        })
    }

    /// Validates a batch from `caller`, has aggregate count the valid events that are the
    /// caller's to send and the invalid ones per agency ([`blamed`]: only agencies of the
    /// catalog the caller may send for), and merges the outcomes.
    ///
    /// `encoded` holds the events' bytes as the caller sent them (SubmitEvents keeps them):
    /// the valid ones are forwarded as they came. Without them (a stream, the JSON routes)
    /// each valid event is encoded again to be forwarded.
    pub async fn process(
        &self,
        caller: &Caller,
        events: Vec<EventView<'_>>,
        encoded: Option<&[Bytes]>,
    ) -> Result<BatchOutcome, Error> {
        self.within_batch("events", events.len(), "batch")?;
        let now = OffsetDateTime::now_utc();
        let mut outcomes = Outcomes::with_capacity(events.len());
        let mut valid = Vec::with_capacity(events.len());
        let mut denied = Vec::new();
        let mut rejections = Rejections::default();
        for (i, event) in events.into_iter().enumerate() {
            // Checked, not decoded: a valid event is forwarded as it came, so its ids are
            // never copied out of the request.
            match check_event(Some(i), event, &self.catalog, &self.policy, now) {
                Ok(checked)
                    if !caller
                        .principal
                        .may_report_for(&self.catalog, checked.agency()) =>
                {
                    // Refused like an invalid event: REJECTED on its agency_id, never counted,
                    // not even against the agency it names (which did not send it).
                    let reason = format!(
                        "permission denied: a credential of agency {} may send events of {} and its units, not of {}",
                        caller.principal.agency_name(),
                        caller.principal.agency_name(),
                        checked.agency()
                    );
                    denied.push(checked.agency().to_string());
                    outcomes.decided(EventOutcome {
                        status: OutcomeStatus::Rejected.into(),
                        field: format!("events[{i}].agency_id"),
                        reason,
                    });
                }
                Ok(checked) => {
                    valid.push(match encoded.and_then(|bytes| bytes.get(i)) {
                        // A reference to the call's body, not a copy.
                        Some(bytes) => bytes.clone(),
                        None => Bytes::from(encode_event(checked.into_event()).encode_to_vec()),
                    });
                    outcomes.later();
                }
                Err(violation) => {
                    debug!(field = %violation.field, reason = %violation.reason, "event rejected");
                    let may_send =
                        |agency: &_| caller.principal.may_report_for(&self.catalog, agency);
                    if let Some(agency) = blamed(violation.agency.as_ref(), may_send) {
                        rejections.add(agency, 1);
                    }
                    outcomes.decided(rejected(violation));
                }
            }
        }
        if let Some(first) = denied.first() {
            audit(
                "scope_denied",
                &caller.principal.agency_name(),
                caller.peer,
                &format!(
                    "{} events of agencies outside its scope, first {first}",
                    denied.len()
                ),
            );
        }
        // The rejections travel with the valid events, counted in the same write; alone when
        // every event was rejected.
        let request = ApplyEventsWire {
            events: valid,
            rejected_upstream: rejections_to_proto(&rejections),
        };
        if !request.events.is_empty() {
            let response = self.apply_events(request).await.map_err(Error::Aggregate)?;
            outcomes.fill(response.outcomes).map_err(|wrong| {
                Error::Aggregate(Status::internal(format!("aggregate answered {wrong}")))
            })?;
        } else if !request.rejected_upstream.is_empty() {
            // Every outcome is known already: a failure to count the rejections is logged,
            // not answered (a resend would only be rejected again).
            let counted = self.apply_events(request).await;
            if let Err(status) = counted {
                warn!(
                    agency = %caller.principal.agency_name(),
                    code = ?status.code(),
                    error = %status.message(),
                    "rejected events not counted in the data quality"
                );
            }
        }
        // Every event has its outcome; one without is a bug, never a shorter answer.
        let outcomes = outcomes
            .finish()
            .map_err(|e| Error::Aggregate(Status::internal(e)))?;
        govpulse_runtime::prometheus::record_outcomes("ingest", &outcomes);
        Ok(BatchOutcome::new(outcomes))
    }

    /// Has aggregate count a batch (`AggregateService.ApplyEvents`), its events sent as the
    /// bytes they are.
    async fn apply_events(&self, request: ApplyEventsWire) -> Result<ApplyEventsResponse, Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("aggregate is not reachable: {e}")))?;
        let response = grpc
            .unary(
                govpulse_runtime::telemetry::traced(request),
                PathAndQuery::from_static(APPLY_EVENTS),
                GovpulseCodec::<ApplyEventsWire, ApplyEventsResponse>::default(),
            )
            .await?;
        Ok(response.into_inner())
    }

    /// SubmitEvents with the call's events kept as their bytes: each is read in place and
    /// the valid ones are forwarded as they came (the service's route for the rpc).
    pub async fn submit_encoded(
        &self,
        request: Request<SubmitEventsWire>,
    ) -> Result<Response<SubmitEventsResponse>, Status> {
        let caller = self.caller(&request)?;
        let encoded = request.into_inner().events;
        // Every event is read before any is counted.
        let events = read_events(&encoded)?;
        self.submit(&caller, events, Some(&encoded)).await
    }

    /// The body of SubmitEvents, however its events were read.
    async fn submit(
        &self,
        caller: &Caller,
        events: Vec<EventView<'_>>,
        encoded: Option<&[Bytes]>,
    ) -> Result<Response<SubmitEventsResponse>, Status> {
        if events.len() <= self.max_batch {
            self.take_rate(caller, events.len())?;
        }
        let result = self.process(caller, events, encoded).await?;
        Ok(Response::new(SubmitEventsResponse {
            outcomes: result.outcomes,
            accepted: result.accepted,
            duplicate: result.duplicate,
            rejected: result.rejected,
            conflict: result.conflict,
        }))
    }

    /// Every event of an unacceptable batch rejected for the same reason, for StreamEvents,
    /// where one bad batch must not end the stream.
    fn reject_all(count: usize, status: &Status) -> BatchOutcome {
        let outcome = EventOutcome {
            status: OutcomeStatus::Rejected.into(),
            field: "events".to_owned(),
            reason: status.message().to_owned(),
        };
        let outcomes = vec![outcome; count];
        govpulse_runtime::prometheus::record_outcomes("ingest", &outcomes);
        BatchOutcome::new(outcomes)
    }
}

type AckStream = Pin<Box<dyn Stream<Item = Result<StreamEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for IngestApi {
    async fn submit_events(
        &self,
        request: Request<SubmitEventsRequest>,
    ) -> Result<Response<SubmitEventsResponse>, Status> {
        // The service's route serves this rpc with `submit_encoded`; this is the generated
        // server's entry, for a server built without that route.
        let caller = self.caller(&request)?;
        let events = request.into_inner().events;
        let events = events.into_iter().map(EventView::from).collect();
        self.submit(&caller, events, None).await
    }

    async fn report_assessed_scores(
        &self,
        request: Request<ReportAssessedScoresRequest>,
    ) -> Result<Response<ReportAssessedScoresResponse>, Status> {
        // Assessors score agencies other than their own (an inspection body scores every
        // province), so the role is the whole check: no per-agency scope.
        self.authorize(&request, Role::Assessor)?;
        let stored = self.report_assessed(request.into_inner().scores).await?;
        Ok(Response::new(ReportAssessedScoresResponse { stored }))
    }

    type StreamEventsStream = AckStream;

    async fn stream_events(
        &self,
        request: Request<Streaming<StreamEventsRequest>>,
    ) -> Result<Response<AckStream>, Status> {
        let caller = self.caller(&request)?;
        let credential = StreamCredential::of(&self.auth, &request);
        let agency = caller.principal.agency_name();
        // Held by the stream's task: the place is freed when the stream ends.
        let slot = self.limiter.open_stream(&agency).map_err(|limit| {
            audit(
                "rate_limited",
                &agency,
                caller.peer,
                &format!("already {limit} open event streams"),
            );
            Status::from(Error::TooManyStreams { agency, limit })
        })?;
        let mut batches = request.into_inner();
        let (acks, out) = mpsc::channel(ACK_BACKLOG);
        let api = self.clone();
        // Each batch gets its own span under the call's, so a batch's trace does not wait
        // for the end of a stream that may last hours to show its steps.
        let call = tracing::Span::current();
        tokio::spawn(async move {
            let _slot = slot;
            let mut recheck = tokio::time::interval(RECHECK_EVERY);
            loop {
                let batch = tokio::select! {
                    // On shutdown, stop taking batches; every batch taken was acknowledged.
                    () = api.stopping.cancelled() => break,
                    // A token revoked (or expired) while the stream is open ends it, idle or not.
                    _ = recheck.tick() => match credential.still_valid() {
                        Ok(()) => continue,
                        Err(status) => {
                            let _ = acks.send(Err(status)).await;
                            break;
                        }
                    },
                    batch = batches.next() => batch,
                };
                let batch = match batch {
                    None => break,
                    Some(Ok(batch)) => batch,
                    Some(Err(status)) => {
                        debug!(code = ?status.code(), "event stream ended by the client");
                        break;
                    }
                };
                // Nothing sent with a credential that no longer holds is counted.
                if let Err(status) = credential.still_valid() {
                    let _ = acks.send(Err(status)).await;
                    break;
                }
                let count = batch.events.len();
                // A stream over its agency's rate is slowed down, not refused: its next
                // batch waits for the bucket (other agencies' buckets are untouched).
                if count <= api.max_batch {
                    while let Err(Error::RateLimited {
                        retry_after: wait, ..
                    }) = api.take_rate(&caller, count)
                    {
                        tokio::select! {
                            () = api.stopping.cancelled() => return,
                            () = tokio::time::sleep(wait) => {}
                        }
                    }
                }
                let span =
                    tracing::info_span!(parent: &call, "ingest.stream_batch", events = count);
                let events = batch.events.into_iter().map(EventView::from).collect();
                let ack = match api.process(&caller, events, None).instrument(span).await {
                    Ok(result) => Ok(result),
                    Err(e @ Error::InvalidArgument(_)) => {
                        Ok(Self::reject_all(count, &Status::from(e)))
                    }
                    Err(e) => Err(Status::from(e)),
                };
                let failed = ack.is_err();
                let message = ack.map(|r| StreamEventsResponse {
                    batch_id: batch.batch_id,
                    outcomes: r.outcomes,
                    accepted: r.accepted,
                    duplicate: r.duplicate,
                    rejected: r.rejected,
                    conflict: r.conflict,
                });
                // A failed send means the client went away: stop.
                if acks.send(message).await.is_err() || failed {
                    break;
                }
            }
            debug!("event stream closed");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }
}
