//! `govpulse.ranking.v1.RankingService`: parse the query, compute or subscribe, encode.

use std::{pin::Pin, sync::Arc, time::Duration};

use govpulse_runtime::client::{forwarded, upstream_status};
use govpulse_runtime::index_file::LiveProfiles;
use std::{collections::HashMap, sync::Mutex};

use govpulse_core::{
    Catalog,
    ranking::{Selection, diff, select},
};
use govpulse_edge::auth::{Authenticator, RECHECK_EVERY, Role, StreamCredential};
use govpulse_edge::convert::moment_to_proto;
use govpulse_proto::{
    aggregate::{
        GetBlockMetricsRequest, GetBlockMetricsResponse, GetMetricsRequest, GetMetricsResponse,
        GetProcedureMetricsRequest, GetProcedureMetricsResponse,
        aggregate_service_client::AggregateServiceClient,
    },
    ranking::{
        AlertChanges, AlertsSnapshot, AlertsSnapshotComplete, GetAlertsRequest, GetAlertsResponse,
        GetPublicationRequest, GetPublicationResponse, GetRankingRequest, GetRankingResponse,
        GetRevisionsRequest, GetRevisionsResponse, Heartbeat, ListPublicationsRequest,
        ListPublicationsResponse, PublishRequest, PublishResponse, RankingChanges, RankingSnapshot,
        Reset, ResetReason as PbResetReason, RowChange, SnapshotComplete, WatchAlertsRequest,
        WatchAlertsResponse, WatchRankingRequest, WatchRankingResponse,
        ranking_service_server::RankingService, watch_ranking_response::Event,
    },
};
use tokio::sync::{mpsc, watch};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, transport::Channel};
use tracing::debug;

use crate::{
    alerts::{self, Alerts, AlertsState, alert_to_proto},
    compute::{Ranking, ranking_to_proto, row_to_proto},
    error::Error,
    hub::{Hubs, Published, Subscription},
    publications::{self, Sources},
    query::Query,
    resume::{ResetReason, Start},
};

/// How many messages may wait for a slow WatchRanking subscriber. Small on purpose: while
/// it is full the subscriber's task waits, and the ranking it sends next is the newest one.
const STREAM_BACKLOG: usize = 4;

/// Snapshot rows per message.
const SNAPSHOT_CHUNK: usize = 200;

/// The service's state: shared, cheap to clone.
#[derive(Debug, Clone)]
pub struct RankingApi {
    catalog: Arc<Catalog>,
    aggregate: AggregateServiceClient<Channel>,
    hubs: Hubs,
    /// The alerts of this replica.
    alerts: Alerts,
    heartbeat: Duration,
    stopping: CancellationToken,
    profiles: LiveProfiles,
    /// Who may read, when reading is not public: a live ranking's stream checks its caller's
    /// token again while it lasts.
    readers: Option<Authenticator>,
    /// Open WatchRanking streams per caller, and how many one may hold.
    watchers: Arc<Mutex<HashMap<String, usize>>>,
    max_watches: usize,
    /// Who may publish: callers with the `publisher` role (every caller on a development
    /// server that allows anonymous calls; no caller where no credential can be checked).
    publishers: Arc<Authenticator>,
}

/// A caller's place among the open WatchRanking streams, given back when its stream ends.
#[derive(Debug)]
struct Watching {
    watchers: Arc<Mutex<HashMap<String, usize>>>,
    caller: String,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut watchers = self
            .watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = watchers.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                watchers.remove(&self.caller);
            }
        }
    }
}

/// Who a WatchRanking caller is, for its cap: its token (by a digest: the secret is not
/// kept), or its remote address where reading needs none.
fn caller_of<T>(request: &Request<T>) -> String {
    match request.metadata().get("authorization") {
        Some(token) => format!(
            "token {}",
            &govpulse_edge::auth::token_hash(token.to_str().unwrap_or_default())[..16]
        ),
        None => request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string()),
    }
}

impl RankingApi {
    /// Forwards a read to aggregate with `call`, carrying the caller's deadline and trace
    /// context, so the public edge gives exactly the figures aggregate computes; a deadline
    /// that passes upstream is DEADLINE_EXCEEDED, not tonic's CANCELLED.
    async fn forward<Req, Resp, Fut>(
        &self,
        request: Request<Req>,
        call: impl FnOnce(AggregateServiceClient<Channel>, Request<Req>) -> Fut,
    ) -> Result<Response<Resp>, Status>
    where
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let (metadata, _, message) = request.into_parts();
        let upstream = forwarded(&metadata, message);
        let had_deadline = upstream.metadata().contains_key("grpc-timeout");
        let response = call(self.aggregate.clone(), upstream)
            .await
            .map_err(|status| upstream_status(status, had_deadline))?;
        Ok(Response::new(response.into_inner()))
    }

    /// The service over the live rankings (and their catalog and aggregate client) and the
    /// alerts, a stream's heartbeat every `heartbeat`, ending its streams when `stopping`.
    pub fn new(
        hubs: Hubs,
        alerts: Alerts,
        heartbeat: Duration,
        stopping: CancellationToken,
    ) -> Self {
        let catalog = hubs.catalog().clone();
        Self {
            catalog: catalog.clone(),
            aggregate: hubs.aggregate().clone(),
            hubs,
            alerts,
            heartbeat,
            stopping,
            profiles: LiveProfiles::fixed(govpulse_core::index::Profiles::default()),
            readers: None,
            watchers: Arc::default(),
            max_watches: usize::MAX,
            publishers: Arc::new(Authenticator::new(catalog, None, false)),
        }
    }

    /// The same service, letting callers `publishers` accepts with the `publisher` role publish.
    pub fn with_publishers(mut self, publishers: Arc<Authenticator>) -> Self {
        self.publishers = publishers;
        self
    }

    /// What publications read from.
    fn sources(&self) -> Sources<'_> {
        Sources {
            aggregate: &self.aggregate,
            catalog: &self.catalog,
            profiles: self.profiles.get(),
            rules: self.hubs.rules(),
        }
    }

    /// The same service, checking the tokens of live rankings' callers again with `readers`
    /// while their streams last (when reading is not public), and holding each caller to
    /// `max_watches` open streams.
    pub fn with_watchers(mut self, readers: Option<Authenticator>, max_watches: usize) -> Self {
        self.readers = readers;
        self.max_watches = max_watches.max(1);
        self
    }

    /// A new live stream's place under its caller's cap (or RESOURCE_EXHAUSTED), and its
    /// credential to check again while it lasts (when reading is not public).
    fn place<T>(&self, request: &Request<T>) -> Result<Place, Error> {
        let watching = self.watching(caller_of(request))?;
        let credential = self
            .readers
            .as_ref()
            .map(|readers| StreamCredential::of(readers, request));
        Ok(Place {
            watching,
            credential,
        })
    }

    /// A place for one more stream of `caller`, or RESOURCE_EXHAUSTED past its cap.
    fn watching(&self, caller: String) -> Result<Watching, Error> {
        let mut watchers = self
            .watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = watchers.entry(caller.clone()).or_default();
        if *open >= self.max_watches {
            govpulse_edge::refusals::refused("watch_cap", &caller);
            return Err(Error::Exhausted(format!(
                "this caller holds {} live rankings open already (--max-watches-per-caller); close one first",
                self.max_watches
            )));
        }
        *open += 1;
        Ok(Watching {
            watchers: self.watchers.clone(),
            caller,
        })
    }

    /// The same service, ranking by the composite indexes of `profiles` (none until set).
    pub fn with_profiles(mut self, profiles: LiveProfiles) -> Self {
        self.profiles = profiles;
        self
    }

    fn snapshot_messages(
        &self,
        published: &Published,
        view: Selection,
    ) -> Vec<WatchRankingResponse> {
        let revision = published.revision;
        let Ranking {
            period,
            rows,
            ranked_count,
            min_volume,
            max_score,
            provisional,
            publication,
            ..
        } = &published.ranking;
        let rows = select(rows, view);
        let mut messages: Vec<WatchRankingResponse> = rows
            .chunks(SNAPSHOT_CHUNK)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|r| row_to_proto(&self.catalog, r))
                    .collect()
            })
            .chain(rows.is_empty().then(Vec::new))
            .map(|rows| WatchRankingResponse {
                revision,
                event: Some(Event::Snapshot(RankingSnapshot {
                    rows,
                    period: Some(period.clone()),
                    ranked_count: *ranked_count,
                    min_volume: *min_volume,
                    max_score: max_score.clone(),
                    provisional: *provisional,
                    publication: publication.as_ref().map(|p| p.summary.clone()),
                })),
            })
            .collect();
        messages.push(WatchRankingResponse {
            revision,
            event: Some(Event::SnapshotComplete(SnapshotComplete {})),
        });
        messages
    }

    /// The first messages of a stream: a snapshot; or, when resuming, the changes from the
    /// client's state to the current one; or a reset followed by a snapshot.
    fn opening_messages(
        &self,
        start: Start<Published>,
        requested: u64,
        current: &Published,
        view: Selection,
    ) -> Vec<WatchRankingResponse> {
        first_messages(
            "ranking",
            start,
            requested,
            || self.snapshot_messages(current, view),
            |base| {
                self.changes_message(&base, current, view)
                    .unwrap_or_else(|| WatchRankingResponse {
                        revision: current.revision,
                        event: Some(Event::Changes(RankingChanges {
                            changes: Vec::new(),
                            ranked_count: current.ranking.ranked_count,
                            publication: None,
                        })),
                    })
            },
            |reset| WatchRankingResponse {
                revision: current.revision,
                event: Some(Event::Reset(reset)),
            },
        )
    }

    fn changes_message(
        &self,
        shown: &Published,
        now: &Published,
        view: Selection,
    ) -> Option<WatchRankingResponse> {
        let changes: Vec<RowChange> = diff(
            select(&shown.ranking.rows, view),
            select(&now.ranking.rows, view),
        )
        .into_iter()
        .map(|change| RowChange {
            row: Some(match &change.now {
                Some(row) => row_to_proto(&self.catalog, row),
                None => govpulse_proto::ranking::RankingRow {
                    agency_id: change.agency.to_string(),
                    agency_name: self
                        .catalog
                        .agency(&change.agency)
                        .map(|a| a.name.clone())
                        .unwrap_or_default(),
                    ..Default::default()
                },
            }),
            previous_rank: change.previous_rank.unwrap_or(0),
            left: change.now.is_none(),
        })
        .collect();
        let publication = (shown.ranking.publication != now.ranking.publication)
            .then(|| now.ranking.publication.as_ref().map(|p| p.summary.clone()))
            .flatten();
        if changes.is_empty()
            && shown.ranking.ranked_count == now.ranking.ranked_count
            && publication.is_none()
        {
            return None;
        }
        Some(WatchRankingResponse {
            revision: now.revision,
            event: Some(Event::Changes(RankingChanges {
                changes,
                ranked_count: now.ranking.ranked_count,
                publication,
            })),
        })
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchRankingResponse, Status>> + Send>>;
type AlertsStream = Pin<Box<dyn Stream<Item = Result<WatchAlertsResponse, Status>> + Send>>;

/// A live stream's place under its caller's cap, and the credential checked again while it
/// lasts.
struct Place {
    watching: Watching,
    credential: Option<StreamCredential>,
}

impl Place {
    /// The stream about to start here: its first messages, and the states it follows from
    /// the one shown.
    fn live<S, M>(
        self,
        opening: Vec<M>,
        updates: watch::Receiver<Arc<S>>,
        shown: Arc<S>,
    ) -> Live<S, M> {
        Live {
            place: self,
            opening,
            updates,
            shown,
        }
    }
}

/// A live stream about to start (`Place::live`).
struct Live<S, M> {
    place: Place,
    opening: Vec<M>,
    updates: watch::Receiver<Arc<S>>,
    shown: Arc<S>,
}

impl RankingApi {
    /// Runs a live stream (WatchRanking, WatchAlerts): its opening messages, then a message
    /// of `changes` for each new state (the newest whatever came between: a slow reader
    /// skips states instead of queueing them), a `heartbeat` when nothing changed for a
    /// while; it ends when the client leaves, its token is revoked, or the replica stops.
    fn spawn_live<S, M>(
        &self,
        stream: &'static str,
        live: Live<S, M>,
        changes: impl Fn(&Arc<S>, &Arc<S>) -> Option<M> + Send + 'static,
        heartbeat: impl Fn(&S) -> M + Send + 'static,
    ) -> ReceiverStream<Result<M, Status>>
    where
        S: Send + Sync + 'static,
        M: Send + 'static,
    {
        let Live {
            place: Place {
                watching,
                credential,
            },
            opening,
            mut updates,
            mut shown,
        } = live;
        let (out, receiver) = mpsc::channel(STREAM_BACKLOG);
        let (stopping, every) = (self.stopping.clone(), self.heartbeat);
        tokio::spawn(async move {
            let _subscriber = govpulse_runtime::prometheus::Subscriber::open(stream);
            let _watching = watching;
            let mut recheck = tokio::time::interval(RECHECK_EVERY);
            for message in opening {
                if out.send(Ok(message)).await.is_err() {
                    return;
                }
            }
            let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                let message = tokio::select! {
                    () = stopping.cancelled() => {
                        let _ = out.send(Err(Error::ShuttingDown.into())).await;
                        return;
                    }
                    // The client left: let go of the live state now, not at the next send,
                    // so that its linger (and end) starts when the last subscriber really left.
                    () = out.closed() => {
                        debug!(stream, "subscriber left");
                        return;
                    }
                    // A token revoked (or expired) while the stream is open ends it.
                    _ = recheck.tick() => match credential.as_ref().map(StreamCredential::still_valid) {
                        Some(Err(status)) => {
                            let _ = out.send(Err(status)).await;
                            return;
                        }
                        _ => continue,
                    },
                    changed = updates.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let now = updates.borrow_and_update().clone();
                        let message = changes(&shown, &now);
                        shown = now;
                        match message {
                            Some(message) => {
                                beat.reset();
                                message
                            }
                            None => continue,
                        }
                    }
                    _ = beat.tick() => heartbeat(&shown),
                };
                if out.send(Ok(message)).await.is_err() {
                    debug!(stream, "subscriber left");
                    return;
                }
            }
        });
        ReceiverStream::new(receiver)
    }

    /// The first messages of a WatchAlerts stream, as WatchRanking's.
    fn alerts_opening(
        &self,
        start: Start<AlertsState>,
        requested: u64,
        current: &AlertsState,
    ) -> Vec<WatchAlertsResponse> {
        use govpulse_proto::ranking::watch_alerts_response::Event as AlertEvent;
        // As a live ranking's: at most SNAPSHOT_CHUNK alerts a message, the rules' status
        // in each, at least one message.
        let snapshot = || {
            let alerts: Vec<_> = current
                .book
                .alerts()
                .map(|a| alert_to_proto(&self.catalog, a))
                .collect();
            alerts
                .chunks(SNAPSHOT_CHUNK)
                .map(<[_]>::to_vec)
                .chain(alerts.is_empty().then(Vec::new))
                .map(|alerts| WatchAlertsResponse {
                    revision: current.revision,
                    event: Some(AlertEvent::Snapshot(AlertsSnapshot {
                        alerts,
                        rules: Some(current.rules.to_proto()),
                    })),
                })
                .chain(std::iter::once(WatchAlertsResponse {
                    revision: current.revision,
                    event: Some(AlertEvent::SnapshotComplete(AlertsSnapshotComplete {})),
                }))
                .collect::<Vec<_>>()
        };
        first_messages(
            "alerts",
            start,
            requested,
            snapshot,
            |base| {
                alerts::changes_message(&self.catalog, &base, current).unwrap_or(
                    WatchAlertsResponse {
                        revision: current.revision,
                        event: Some(AlertEvent::Changes(AlertChanges::default())),
                    },
                )
            },
            |reset| WatchAlertsResponse {
                revision: current.revision,
                event: Some(AlertEvent::Reset(reset)),
            },
        )
    }
}

/// The first messages of a live stream (WatchRanking, WatchAlerts) from its `start`: a
/// `snapshot`; when resuming, the message `resumed` makes of the changes from the client's
/// state (always one, even with nothing changed: it tells the client it resumed); or a
/// `Reset` saying why the `requested` revision cannot be resumed (made a message by
/// `reset`, and logged under `stream`'s name), followed by a snapshot.
fn first_messages<S, M>(
    stream: &'static str,
    start: Start<S>,
    requested: u64,
    snapshot: impl FnOnce() -> Vec<M>,
    resumed: impl FnOnce(Arc<S>) -> M,
    reset: impl FnOnce(Reset) -> M,
) -> Vec<M> {
    match start {
        Start::Snapshot => snapshot(),
        Start::ResumeFrom(base) => vec![resumed(base)],
        Start::Reset(reason) => {
            debug!(stream, requested, ?reason, "subscriber cannot resume");
            let reset = reset(Reset {
                reason: reset_reason(reason).into(),
                requested_revision: requested,
            });
            std::iter::once(reset).chain(snapshot()).collect()
        }
    }
}

/// The protobuf value of why a stream cannot resume.
fn reset_reason(reason: ResetReason) -> PbResetReason {
    match reason {
        ResetReason::TooOld => PbResetReason::RevisionTooOld,
        ResetReason::Unknown => PbResetReason::RevisionUnknown,
    }
}

/// Service methods that hand their request to aggregate's method of the same name through
/// `RankingApi::forward`, one line each. Written out as `#[tonic::async_trait]` writes an
/// `async fn` (a boxed future living as long as `&self`), because that attribute does not
/// look inside a macro.
macro_rules! forward {
    ($($method:ident($request:ty) -> $response:ty;)*) => {$(
        fn $method<'life0, 'async_trait>(
            &'life0 self,
            request: Request<$request>,
        ) -> Pin<Box<dyn Future<Output = Result<Response<$response>, Status>> + Send + 'async_trait>>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(self.forward(request, |mut aggregate, upstream| async move {
                aggregate.$method(upstream).await
            }))
        }
    )*};
}

#[tonic::async_trait]
impl RankingService for RankingApi {
    type WatchRankingStream = WatchStream;
    type WatchAlertsStream = AlertsStream;

    async fn get_ranking(
        &self,
        request: Request<GetRankingRequest>,
    ) -> Result<Response<GetRankingResponse>, Status> {
        let query = Query::parse(
            request.into_inner().query,
            &self.profiles.get(),
            &self.catalog,
        )?;
        let ranking = self.hubs.compute(&query).await?;
        Ok(Response::new(ranking_to_proto(&self.catalog, ranking)))
    }

    // The metric reads are aggregate's: forwarded unchanged (see `RankingApi::forward`).
    forward! {
        get_metrics(GetMetricsRequest) -> GetMetricsResponse;
        get_block_metrics(GetBlockMetricsRequest) -> GetBlockMetricsResponse;
        get_procedure_metrics(GetProcedureMetricsRequest) -> GetProcedureMetricsResponse;
    }

    async fn watch_ranking(
        &self,
        request: Request<WatchRankingRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let place = self.place(&request)?;
        let request = request.into_inner();
        let query = Query::parse(request.query, &self.profiles.get(), &self.catalog)?;
        let requested = request.resume_revision;
        // Every top or bottom N of a query is a view of one live ranking of every row.
        let view = query.selection;
        let Subscription {
            updates,
            current,
            start,
        } = self.hubs.subscribe(&query.live(), requested).await?;
        let opening = self.opening_messages(start, requested, &current, view);
        let api = self.clone();
        let stream = self.spawn_live(
            "ranking",
            place.live(opening, updates, current),
            move |shown: &Arc<Published>, now: &Arc<Published>| {
                if now.previous_revision == shown.revision {
                    // Most subscribers keep up: those of one view send the same message.
                    now.changes_from_previous(view, || api.changes_message(shown, now, view))
                } else {
                    api.changes_message(shown, now, view)
                }
            },
            |shown: &Published| WatchRankingResponse {
                revision: shown.revision,
                event: Some(Event::Heartbeat(Heartbeat {})),
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_alerts(
        &self,
        _request: Request<GetAlertsRequest>,
    ) -> Result<Response<GetAlertsResponse>, Status> {
        let current = self.alerts.current();
        Ok(Response::new(GetAlertsResponse {
            alerts: current
                .book
                .alerts()
                .map(|a| alert_to_proto(&self.catalog, a))
                .collect(),
            rules: Some(current.rules.to_proto()),
            evaluated_at: moment_to_proto(self.alerts.evaluated_at()),
        }))
    }

    async fn watch_alerts(
        &self,
        request: Request<WatchAlertsRequest>,
    ) -> Result<Response<AlertsStream>, Status> {
        let place = self.place(&request)?;
        let WatchAlertsRequest {
            resume_revision: requested,
        } = request.into_inner();
        let (updates, current, start) = self.alerts.subscribe(requested);
        let opening = self.alerts_opening(start, requested, &current);
        let catalog = self.catalog.clone();
        let stream = self.spawn_live(
            "alerts",
            place.live(opening, updates, current),
            move |shown: &Arc<AlertsState>, now: &Arc<AlertsState>| {
                alerts::changes_message(&catalog, shown, now)
            },
            |shown: &AlertsState| WatchAlertsResponse {
                revision: shown.revision,
                event: Some(
                    govpulse_proto::ranking::watch_alerts_response::Event::Heartbeat(Heartbeat {}),
                ),
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let principal = self
            .publishers
            .authorize(&request, Role::Publisher)
            .map_err(Error::from)?;
        let response = publications::publish(
            &self.sources(),
            request.into_inner(),
            principal.agency_name(),
        )
        .await?;
        if let Some(publication) = &response.publication {
            self.hubs.latest().note(publication).await;
        }
        Ok(Response::new(response))
    }

    async fn get_publication(
        &self,
        request: Request<GetPublicationRequest>,
    ) -> Result<Response<GetPublicationResponse>, Status> {
        let id = request.into_inner().publication_id;
        let publication = publications::get(&self.aggregate, &id).await?;
        Ok(Response::new(GetPublicationResponse {
            publication: Some(publication),
        }))
    }

    async fn list_publications(
        &self,
        request: Request<ListPublicationsRequest>,
    ) -> Result<Response<ListPublicationsResponse>, Status> {
        let page = request.into_inner();
        Ok(Response::new(
            publications::list(&self.aggregate, page.offset, page.limit).await?,
        ))
    }

    async fn get_revisions(
        &self,
        request: Request<GetRevisionsRequest>,
    ) -> Result<Response<GetRevisionsResponse>, Status> {
        let id = request.into_inner().publication_id;
        Ok(Response::new(
            publications::revisions(&self.sources(), &id).await?,
        ))
    }
}
