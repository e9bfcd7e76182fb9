//! Live rankings, computed once per change and shared by every subscriber of the same query.
//!
//! Each watched query has one task that recomputes the ranking when aggregate reports a
//! change (debounced), when one of its agencies turns stale ([`Freshness::stale_at`]), and
//! every `refresh` in any case (a safety net for notices missed across replicas or
//! reconnects). It publishes the latest ranking through a `watch`
//! channel: a subscriber that reads slowly simply sees the newest state when it reads next,
//! so its backlog never grows and it never slows the others. The task ends when its last
//! subscriber leaves.
//!
//! It also keeps the last states it published ([`History`], bounded by states and rows) so
//! that a client reconnecting with the revision of the last state it applied resumes with
//! the changes since that state instead of a snapshot.
//!
//! Live rankings are bounded whatever queries come: a query's rows to show (top or bottom
//! N) are a view each subscriber takes of one computed ranking, so `top=1`, `top=2`, ... share
//! one; a replica runs at most `max_live` of them, making room by ending one that lingers
//! with no subscriber, and refuses a new one with RESOURCE_EXHAUSTED when none does; a
//! lingering one does not recompute (it catches up as soon as a subscriber comes back).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use govpulse_core::{
    Catalog, Period,
    freshness::Freshness,
    notice::ChangeNotice,
    ranking::{Rules, Selection, diff},
};
use govpulse_proto::{
    aggregate::aggregate_service_client::AggregateServiceClient, ranking::WatchRankingResponse,
};
use time::OffsetDateTime;
use tokio::{
    sync::{Notify, broadcast, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tracing::{Instrument, debug, warn};

use crate::{
    cause::Cause,
    compute::{Ranking, compute},
    error::Error,
    publications::Latest,
    query::{Measure, Query},
    resume::{self, Digest, HISTORY_ROWS, HISTORY_STATES, History, Start},
};

/// How many new live rankings compute their first state at once (see `Inner::starting`).
const STARTING_AT_ONCE: usize = 1;

/// A ranking with the revision it was published under.
#[derive(Debug)]
pub struct Published {
    /// Grows with every published change and names this state of this query
    /// ([`resume::next_revision`]): the publication time in milliseconds in the high bits,
    /// a digest of the query and the ranking in the low bits.
    pub revision: u64,
    /// The ranking.
    pub ranking: Ranking,
    /// The revision of the state published just before (0 for the first).
    pub previous_revision: u64,
    /// The changes message from that state to this one, per view (the rows a query
    /// shows), made by the first subscriber of the view that needs it and cloned for the
    /// others: a change is computed once per view, not once per subscriber.
    changes_from_previous: Mutex<HashMap<Selection, Option<WatchRankingResponse>>>,
}

impl Published {
    /// The changes message of `view` from the previous state to this one, made by `make`
    /// the first time a subscriber of that view asks.
    pub fn changes_from_previous(
        &self,
        view: Selection,
        make: impl FnOnce() -> Option<WatchRankingResponse>,
    ) -> Option<WatchRankingResponse> {
        let mut made = self
            .changes_from_previous
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        made.entry(view).or_insert_with(make).clone()
    }
}

impl Published {
    /// The state after the one published as `previous` (0: none), under its revision.
    fn next(query: &Query, ranking: Ranking, previous: u64) -> Arc<Self> {
        Arc::new(Self {
            revision: resume::next_revision(previous, now_ms(), digest(query, &ranking)),
            ranking,
            previous_revision: previous,
            changes_from_previous: Mutex::default(),
        })
    }
}

/// How the live rankings are run: their timing, the ranking rules, and how many at once.
#[derive(Debug, Clone, Copy)]
pub struct HubSettings {
    /// How long to gather change notices before recomputing.
    pub debounce: Duration,
    /// How often to recompute without a notice.
    pub refresh: Duration,
    /// How long a live ranking goes on after its last subscriber left, so that a client
    /// that reconnects meanwhile can resume from its history.
    pub linger: Duration,
    /// The ranking rules (the minimum volume to be ranked).
    pub rules: Rules,
    /// The most live rankings this replica runs at once.
    pub max_live: usize,
}

/// The live rankings of one ranking replica.
#[derive(Debug, Clone)]
pub struct Hubs {
    inner: Arc<Inner>,
}

/// A state that streams follow and resume from (a live ranking, the alerts): its newest
/// version on a `watch` channel, and the versions before it that a client may resume from.
/// Publishing and subscribing both hold the history's lock, so a subscriber's resume
/// decision and the state it starts from are always consistent.
#[derive(Debug)]
pub(crate) struct Resumable<T> {
    sender: watch::Sender<Arc<T>>,
    history: Mutex<History<T>>,
}

impl<T> Resumable<T> {
    /// `first`, `rows` long, as the first state, under `revision`.
    pub(crate) fn new(revision: u64, first: Arc<T>, rows: usize) -> Self {
        let mut history = History::new(HISTORY_STATES, HISTORY_ROWS);
        history.push(revision, first.clone(), rows);
        Self {
            sender: watch::channel(first).0,
            history: Mutex::new(history),
        }
    }

    /// The channel of the newest state, to see who follows it.
    pub(crate) fn sender(&self) -> &watch::Sender<Arc<T>> {
        &self.sender
    }

    /// The newest state.
    pub(crate) fn current(&self) -> Arc<T> {
        self.sender.borrow().clone()
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History<T>> {
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new follower, resuming from `resume_revision` if the history still keeps it (0: a
    /// snapshot): its receiver (the current state marked as seen), the current state, and
    /// how its stream starts.
    pub(crate) fn subscribe(
        &self,
        resume_revision: u64,
    ) -> (watch::Receiver<Arc<T>>, Arc<T>, Start<T>) {
        let history = self.history();
        let mut updates = self.sender.subscribe();
        let current = updates.borrow_and_update().clone();
        let start = resume::start(&history, resume_revision);
        (updates, current, start)
    }

    /// Publishes the state `next` makes of the current one, if it makes one (none: nothing
    /// changed), with its revision and how many rows it holds; `next` runs under the
    /// history's lock, so that the comparison and the publication are one step.
    pub(crate) fn publish(&self, next: impl FnOnce(&Arc<T>) -> Option<(u64, Arc<T>, usize)>) {
        let mut history = self.history();
        let Some((revision, state, rows)) = next(&self.current()) else {
            return;
        };
        history.push(revision, state.clone(), rows);
        self.sender.send_replace(state);
    }
}

/// One live ranking: its states ([`Resumable`]) and the task that computes them.
#[derive(Debug)]
struct Live {
    states: Resumable<Published>,
    /// Ends its task (when another query needs its place).
    ended: CancellationToken,
    /// Asks its task to recompute now (a subscriber came back to a lingering ranking).
    poke: Notify,
}

impl Live {
    /// A live ranking whose first state is `ranking`.
    fn start(query: &Query, ranking: Ranking) -> Self {
        let first = Published::next(query, ranking, 0);
        Self {
            states: Resumable::new(first.revision, first.clone(), first.ranking.rows.len()),
            ended: CancellationToken::new(),
            poke: Notify::new(),
        }
    }

    /// Whether nobody watches it (it lingers).
    fn lingers(&self) -> bool {
        self.states.sender().receiver_count() == 0
    }

    /// Publishes a new state under the next revision.
    /// Publishes `ranking` under the next revision when it differs from the current state in
    /// what subscribers are shown; the comparison and the publication under one lock, since
    /// a subscriber coming back to a lingering ranking publishes too.
    fn publish_if_changed(&self, query: &Query, ranking: Ranking) {
        self.states.publish(|current| {
            let changed = current.ranking.ranked_count != ranking.ranked_count
                || current.ranking.period != ranking.period
                || current.ranking.publication != ranking.publication
                || !diff(&current.ranking.rows, &ranking.rows).is_empty();
            if !changed {
                return None;
            }
            let published = Published::next(query, ranking, current.revision);
            let rows = published.ranking.rows.len();
            Some((published.revision, published, rows))
        });
    }

    /// A new subscriber: its receiver (the current state marked as seen), the current
    /// state and how its stream starts.
    fn subscribe(&self, resume_revision: u64) -> Subscription {
        let (updates, current, start) = self.states.subscribe(resume_revision);
        Subscription {
            updates,
            current,
            start,
        }
    }
}

/// What a new WatchRanking stream starts from.
#[derive(Debug)]
pub struct Subscription {
    /// The live ranking's newest states, the current one already seen.
    pub updates: watch::Receiver<Arc<Published>>,
    /// The state the stream shows first.
    pub current: Arc<Published>,
    /// Snapshot, resume or reset.
    pub start: Start<Published>,
}

#[derive(Debug)]
struct Inner {
    live: Mutex<HashMap<Query, Arc<Live>>>,
    aggregate: AggregateServiceClient<Channel>,
    catalog: Arc<Catalog>,
    notices: broadcast::Sender<ChangeNotice>,
    settings: HubSettings,
    /// The latest publication of each ranking, which rows are marked revised against.
    latest: Latest,
    /// New live rankings computing their first state at once: a caller opening query after
    /// query waits its turn here, so that it never takes more than this share of the
    /// replica's and aggregate's work from the rankings already running and GetRanking.
    starting: tokio::sync::Semaphore,
    /// Cancelled when the replica stops: every live ranking ends with it.
    stopping: CancellationToken,
}

/// After aggregate's clock says so: a moment of [`Freshness::stale_at`] reached on this
/// replica's clock is looked at this much later. A larger disagreement between the clocks
/// leaves it to the refresh tick.
const STALE_MARGIN: Duration = Duration::from_millis(50);

/// The instant at which one of `ranking`'s rows turns stale unless its agency reports.
fn next_staleness(ranking: &Ranking) -> Option<Instant> {
    let now = OffsetDateTime::now_utc();
    let at = Freshness::next_change(ranking.rows.iter().map(|r| &r.freshness), now)?;
    Some(Instant::now() + Duration::try_from(at - now).unwrap_or_default() + STALE_MARGIN)
}

fn now_ms() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// A digest of the query and everything a subscriber is shown of its ranking, equal on
/// every replica for equal states.
fn digest(query: &Query, ranking: &Ranking) -> u64 {
    let measure = match &query.measure {
        Measure::Metric(metric) => format!("metric:{}", metric.name()),
        Measure::Index(profile) => format!("index:{}", profile.name),
    };
    let mut d = Digest::default()
        .text(&measure)
        .text(&format!("{:?}", query.scope))
        .text(&query.period)
        .text(&format!("{:?}", query.selection))
        .text(&ranking.period.first_day)
        .text(&ranking.period.last_day)
        .number(u64::from(ranking.ranked_count))
        .text(
            ranking
                .publication
                .as_ref()
                .map_or("", |p| p.summary.publication_id.as_str()),
        );
    for row in &ranking.rows {
        d = d
            .text(row.agency.as_ref())
            .number(u64::from(row.rank))
            .number(row.rate.map_or(u64::MAX, |r| r.numerator()))
            .number(row.rate.map_or(0, |r| r.denominator()))
            .number(u64::from(row.below_minimum))
            .number(row.previous_rank.map_or(u64::MAX, u64::from))
            .number(u64::from(row.revised));
        if let Some(score) = &row.score {
            // Total, points per indicator, grade, completeness: all shown.
            d = d.text(&format!("{score:?}"));
        }
    }
    d.finish()
}

impl Hubs {
    /// The ranking of `query` now, its rows marked revised against its latest publication.
    pub async fn compute(&self, query: &Query) -> Result<Ranking, Error> {
        let mut ranking = compute(
            &self.inner.aggregate,
            &self.inner.catalog,
            query,
            self.inner.settings.rules,
        )
        .await?;
        self.inner.latest.mark(query, &mut ranking).await;
        Ok(ranking)
    }

    /// The latest publications this replica knows.
    pub fn latest(&self) -> &Latest {
        &self.inner.latest
    }

    /// Live rankings fed by `notices`, each ending when `stopping` is cancelled.
    pub fn new(
        aggregate: AggregateServiceClient<Channel>,
        catalog: Arc<Catalog>,
        notices: broadcast::Sender<ChangeNotice>,
        latest: Latest,
        settings: HubSettings,
        stopping: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                live: Mutex::default(),
                aggregate,
                catalog,
                notices,
                settings: HubSettings {
                    max_live: settings.max_live.max(1),
                    ..settings
                },
                latest,
                starting: tokio::sync::Semaphore::new(STARTING_AT_ONCE),
                stopping,
            }),
        }
    }

    /// Makes room for one more live ranking in `live`: nothing to do under the cap; over it,
    /// the one that lingers with no subscriber is ended; with none, RESOURCE_EXHAUSTED.
    fn make_room(&self, live: &mut HashMap<Query, Arc<Live>>) -> Result<(), Error> {
        if live.len() < self.inner.settings.max_live {
            return Ok(());
        }
        let lingering = live
            .iter()
            .find(|(_, l)| l.lingers())
            .map(|(q, _)| q.clone());
        match lingering {
            Some(query) => {
                if let Some(evicted) = live.remove(&query) {
                    evicted.ended.cancel();
                    metrics::gauge!(govpulse_runtime::prometheus::LIVE_RANKINGS)
                        .set(live.len() as f64);
                    debug!(?query, "live ranking ended to make room");
                }
                Ok(())
            }
            None => {
                govpulse_edge::refusals::refused("live_ranking_cap", "replica");
                Err(Error::Exhausted(format!(
                    "this ranking replica runs {} live rankings already (--max-live-rankings), each watched; watch one of them, or ask GetRanking",
                    self.inner.settings.max_live
                )))
            }
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<Query, Arc<Live>>> {
        self.inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The aggregate service the live rankings read from.
    pub fn aggregate(&self) -> &AggregateServiceClient<Channel> {
        &self.inner.aggregate
    }

    /// The catalog the live rankings rank.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.inner.catalog
    }

    /// The ranking rules (minimum volume) of this replica.
    pub fn rules(&self) -> Rules {
        self.inner.settings.rules
    }

    /// Subscribes to a query's live ranking (every row: a subscriber shows its view of it,
    /// [`Query::live`]), starting it if nobody watches it yet, and decides whether the stream
    /// can resume from `resume_revision` (0: not resuming).
    pub async fn subscribe(
        &self,
        query: &Query,
        resume_revision: u64,
    ) -> Result<Subscription, Error> {
        let lingering = {
            let mut live = self.live();
            match live.get(query) {
                Some(existing) if existing.lingers() => Some(existing.clone()),
                Some(existing) => return Ok(existing.subscribe(resume_revision)),
                None => {
                    // Refused before the first computation costs anything.
                    self.make_room(&mut live)?;
                    None
                }
            }
        };
        if let Some(existing) = lingering {
            // A lingering ranking was not kept current: it catches up before this subscriber
            // sees it, so a client resuming gets what changed while it was away.
            let ranking = self.compute(query).await?;
            existing.publish_if_changed(query, ranking);
            let subscription = {
                let live = self.live();
                live.get(query)
                    .filter(|current| Arc::ptr_eq(current, &existing))
                    .map(|_| existing.subscribe(resume_revision))
            };
            return match subscription {
                Some(subscription) => {
                    // Its task recomputes on notices again now that it is watched.
                    existing.poke.notify_one();
                    Ok(subscription)
                }
                // Ended meanwhile to make room for another: this one starts anew.
                None => Box::pin(self.subscribe(query, resume_revision)).await,
            };
        }
        let _turn = self
            .inner
            .starting
            .acquire()
            .await
            .map_err(|_| Error::ShuttingDown)?;
        // Another subscriber may have started it while this one waited its turn.
        if let Some(existing) = self.live().get(query) {
            return Ok(existing.subscribe(resume_revision));
        }
        let ranking = self.compute(query).await?;
        let mut live = self.live();
        // Another subscriber may have started it while we computed.
        if let Some(existing) = live.get(query) {
            return Ok(existing.subscribe(resume_revision));
        }
        self.make_room(&mut live)?;
        let started = Arc::new(Live::start(query, ranking));
        let subscription = started.subscribe(resume_revision);
        live.insert(query.clone(), started.clone());
        metrics::gauge!(govpulse_runtime::prometheus::LIVE_RANKINGS).set(live.len() as f64);
        let notices = self.inner.notices.subscribe();
        tokio::spawn(self.clone().run(query.clone(), started, notices));
        debug!(?query, "live ranking started");
        Ok(subscription)
    }

    /// Recomputes one query's ranking on notices and on the refresh tick, until nobody
    /// watches it.
    async fn run(
        self,
        query: Query,
        live: Arc<Live>,
        mut notices: broadcast::Receiver<ChangeNotice>,
    ) {
        let sender = live.states.sender();
        let settings = self.inner.settings;
        let mut refresh =
            tokio::time::interval_at(Instant::now() + settings.refresh, settings.refresh);
        let mut due: Option<Instant> = None;
        let mut cause = Cause::default();
        // Since when nobody watches: the ranking lingers (and keeps its history current)
        // so that a client that reconnects soon can resume.
        let mut idle_since: Option<Instant> = None;
        // The days of the last computation: a notice of other days cannot change it (until
        // it is computed, every notice may).
        let mut days: Option<Period> = None;
        // When a shown agency turns stale if nothing arrives: the ranking is computed again
        // then, so its subscribers see the flag without waiting for the refresh tick.
        let mut turns_stale = next_staleness(&live.states.current().ranking);
        let far = || Instant::now() + Duration::from_secs(3600);
        loop {
            let recompute_at = due.unwrap_or_else(far);
            let idle_until = idle_since.map_or_else(far, |since| since + settings.linger);
            let recompute = tokio::select! {
                () = live.ended.cancelled() => return,
                // The replica stops: what aggregate would answer now, nobody would see.
                () = self.inner.stopping.cancelled() => return,
                // A subscriber came back to a lingering ranking: catch up now.
                () = live.poke.notified() => true,
                notice = notices.recv() => {
                    let (relevant, traceparent) = match notice {
                        Ok(notice) => (notice.is_anything() || (notice.agencies.iter().any(|a| {
                            query.scope.is_touched_by(&self.inner.catalog, a)
                        }) && days.as_ref().is_none_or(|d| notice.affects(d))), notice.traceparent),
                        Err(broadcast::error::RecvError::Lagged(_)) => (true, Arc::from("")),
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    // A lingering ranking is not kept current: nobody sees it until a
                    // subscriber comes back, and then it recomputes at once.
                    if relevant && due.is_none() && idle_since.is_none() {
                        due = Some(Instant::now() + settings.debounce);
                    }
                    if relevant {
                        cause.note(&traceparent);
                    }
                    continue;
                }
                () = tokio::time::sleep_until(recompute_at), if due.is_some() => true,
                () = tokio::time::sleep_until(turns_stale.unwrap_or_else(far)),
                    if turns_stale.is_some() && idle_since.is_none() => {
                    turns_stale = None;
                    true
                }
                _ = refresh.tick() => true,
                () = sender.closed(), if idle_since.is_none() => false,
                () = tokio::time::sleep_until(idle_until), if idle_since.is_some() => false,
            };
            {
                // Checked under the map's lock, which subscribe() also takes, so a new
                // subscriber either finds this hub before it ends or starts a new one.
                let mut all = self.live();
                if live.ended.is_cancelled() {
                    // Ended to make room: its place may already be another's.
                    return;
                }
                if sender.receiver_count() == 0 {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= settings.linger {
                        all.remove(&query);
                        metrics::gauge!(govpulse_runtime::prometheus::LIVE_RANKINGS)
                            .set(all.len() as f64);
                        debug!(?query, "live ranking stopped: no subscribers");
                        return;
                    }
                } else {
                    idle_since = None;
                }
            }
            if !recompute || (idle_since.is_some() && due.is_none()) {
                continue;
            }
            due = None;
            let cause = std::mem::take(&mut cause);
            let span = cause.span(&query);
            match self.compute(&query).instrument(span).await {
                Ok(ranking) => {
                    days = Some(ranking.days.clone());
                    turns_stale = next_staleness(&ranking);
                    live.publish_if_changed(&query, ranking);
                }
                // Cut short by the replica's stop (aggregate may be stopping too): expected.
                Err(error) if self.inner.stopping.is_cancelled() => {
                    debug!(%error, "ranking recomputation cut short: the replica stops");
                    return;
                }
                // The last good ranking stays published; the refresh tick retries.
                Err(error) => warn!(%error, "ranking recomputation failed"),
            }
            cause.finished();
        }
    }
}
