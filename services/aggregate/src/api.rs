//! `govpulse.aggregate.v1.AggregateService`: decode, call the store and the core, encode.
//! The writes (ApplyEvents, ApplyAssessedScores, change notices) are in `write`, the reads
//! (GetMetrics, GetBlockMetrics, GetBlockSnapshot) in `read`, GetProcedureMetrics in
//! `procedures`, the kept publications (KeepPublication, GetKeptPublication,
//! ListKeptPublications) in `publications`; this module holds the state
//! and the gRPC surface.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
};

use govpulse_core::{AcceptancePolicy, AgencyId, Catalog, freshness::FreshnessPolicy};
use govpulse_proto::aggregate::{
    ApplyAssessedScoresRequest, ApplyAssessedScoresResponse, ApplyEventsRequest,
    ApplyEventsResponse, GetBlockMetricsRequest, GetBlockMetricsResponse, GetBlockSnapshotRequest,
    GetBlockSnapshotResponse, GetKeptPublicationRequest, GetKeptPublicationResponse,
    GetMetricsRequest, GetMetricsResponse, GetProcedureMetricsRequest, GetProcedureMetricsResponse,
    KeepPublicationRequest, KeepPublicationResponse, ListKeptPublicationsRequest,
    ListKeptPublicationsResponse, WatchChangesRequest, WatchChangesResponse,
    aggregate_service_server::AggregateService,
};
use govpulse_proto::wire::ApplyEventsWire;
use govpulse_runtime::index_file::LiveProfiles;
use govpulse_runtime::targets_file::LiveTargets;
use govpulse_store::{AgencyKey, ChangeNotice, CounterStore};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio_stream::{
    Stream, StreamExt, wrappers::BroadcastStream, wrappers::errors::BroadcastStreamRecvError,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::debug;

mod gauges;
mod procedures;
mod publications;
mod read;
mod write;

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
    /// When a silent agency's figures are flagged stale.
    freshness: FreshnessPolicy,
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
            freshness: FreshnessPolicy::default(),
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
                Ok(notice) if notice.origin == self.origin => {}
                Ok(notice) => self.broadcast(notice),
                // Missed some: anything may have changed.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.broadcast(ChangeNotice::anything());
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// The same service, flagging agencies stale after `freshness`'s silence (two hours
    /// until set).
    pub fn with_freshness(mut self, freshness: FreshnessPolicy) -> Self {
        self.freshness = freshness;
        self
    }

    /// The same service, checking assessed scores against `profiles` (none until set).
    pub fn with_profiles(mut self, profiles: LiveProfiles) -> Self {
        self.profiles = profiles;
        self
    }

    fn key(&self, agency: &AgencyId) -> AgencyKey {
        let root = self.catalog.root(agency).unwrap_or(agency).clone();
        AgencyKey {
            root,
            agency: agency.clone(),
        }
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

impl AggregateApi {
    /// ApplyEvents with the call's events kept as their bytes, each read in place: the
    /// service's route for the rpc (ingest forwards the bytes its callers sent).
    pub async fn apply_events_encoded(
        &self,
        request: Request<ApplyEventsWire>,
    ) -> Result<Response<ApplyEventsResponse>, Status> {
        Ok(Response::new(
            self.apply_encoded(request.into_inner()).await?,
        ))
    }

    /// WatchChanges' stream: every change notice from now on (an empty one, "anything may
    /// have changed", where the subscriber fell behind), until the service stops.
    fn change_stream(&self) -> ChangeStream {
        debug!("change subscriber joined");
        let subscriber = govpulse_runtime::prometheus::Subscriber::open("changes");
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
        Box::pin(futures::StreamExt::take_until(notices, async move {
            stopping.cancelled().await
        }))
    }
}

/// Implements the generated `AggregateService`: each rpc listed answers with the method of
/// [`AggregateApi`] named beside it, given the request's message (its error mapped to a
/// status by [`crate::Error`]'s conversion); WatchChanges with [`AggregateApi::change_stream`].
macro_rules! aggregate_service {
    ($($rpc:ident($request:ty) -> $response:ty = $method:ident;)*) => {
        #[tonic::async_trait]
        impl AggregateService for AggregateApi {
            $(
                async fn $rpc(
                    &self,
                    request: Request<$request>,
                ) -> Result<Response<$response>, Status> {
                    Ok(Response::new(self.$method(request.into_inner()).await?))
                }
            )*

            type WatchChangesStream = ChangeStream;

            async fn watch_changes(
                &self,
                _request: Request<WatchChangesRequest>,
            ) -> Result<Response<ChangeStream>, Status> {
                Ok(Response::new(self.change_stream()))
            }
        }
    };
}

aggregate_service! {
    // The service's route serves this rpc with `apply_events_encoded`; this is the generated
    // server's entry, for a server built without that route.
    apply_events(ApplyEventsRequest) -> ApplyEventsResponse = apply;
    get_metrics(GetMetricsRequest) -> GetMetricsResponse = metrics;
    get_block_metrics(GetBlockMetricsRequest) -> GetBlockMetricsResponse = block_metrics;
    get_procedure_metrics(GetProcedureMetricsRequest) -> GetProcedureMetricsResponse =
        procedure_metrics;
    get_block_snapshot(GetBlockSnapshotRequest) -> GetBlockSnapshotResponse = block_snapshot;
    apply_assessed_scores(ApplyAssessedScoresRequest) -> ApplyAssessedScoresResponse =
        apply_assessed;
    keep_publication(KeepPublicationRequest) -> KeepPublicationResponse = keep;
    get_kept_publication(GetKeptPublicationRequest) -> GetKeptPublicationResponse =
        kept_publication;
    list_kept_publications(ListKeptPublicationsRequest) -> ListKeptPublicationsResponse =
        kept_publications;
}
