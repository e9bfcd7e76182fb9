//! Live rankings, computed once per change and shared by every subscriber of the same query.
//!
//! Each watched query has one task that recomputes the ranking when aggregate reports a
//! change (debounced), and every `refresh` in any case (a safety net for notices missed
//! across replicas or reconnects). It publishes the latest ranking through a `watch`
//! channel: a subscriber that reads slowly simply sees the newest state when it reads next,
//! so its backlog never grows and it never slows the others. The task ends when its last
//! subscriber leaves.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use govpulse_core::{
    Catalog,
    ranking::{Rules, diff},
};
use govpulse_proto::aggregate::aggregate_service_client::AggregateServiceClient;
use time::OffsetDateTime;
use tokio::{
    sync::{broadcast, watch},
    time::Instant,
};
use tonic::{Status, transport::Channel};
use tracing::{Instrument, debug, warn};

use crate::{
    cause::Cause,
    changes::Notice,
    compute::{Ranking, compute},
    query::Query,
};

/// A ranking with the revision it was published under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Grows with every published change; never reused, even across restarts, because it
    /// is at least the publication time in milliseconds since the Unix epoch.
    pub revision: u64,
    /// The ranking.
    pub ranking: Ranking,
}

/// Timing of the live rankings.
#[derive(Debug, Clone, Copy)]
pub struct HubTiming {
    /// How long to gather change notices before recomputing.
    pub debounce: Duration,
    /// How often to recompute without a notice.
    pub refresh: Duration,
}

/// The live rankings of one ranking replica.
#[derive(Debug, Clone)]
pub struct Hubs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    live: Mutex<HashMap<Query, Arc<watch::Sender<Arc<Published>>>>>,
    aggregate: AggregateServiceClient<Channel>,
    catalog: Arc<Catalog>,
    notices: broadcast::Sender<Notice>,
    timing: HubTiming,
    rules: Rules,
}

fn next_revision(previous: u64) -> u64 {
    let now_ms =
        u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    now_ms.max(previous + 1)
}

impl Hubs {
    /// Live rankings fed by `notices`.
    pub fn new(
        aggregate: AggregateServiceClient<Channel>,
        catalog: Arc<Catalog>,
        notices: broadcast::Sender<Notice>,
        timing: HubTiming,
        rules: Rules,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                live: Mutex::default(),
                aggregate,
                catalog,
                notices,
                timing,
                rules,
            }),
        }
    }

    fn live(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Query, Arc<watch::Sender<Arc<Published>>>>> {
        self.inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The ranking rules (minimum volume) of this replica.
    pub fn rules(&self) -> Rules {
        self.inner.rules
    }

    /// Subscribes to a query's live ranking, starting it if nobody watches it yet.
    pub async fn subscribe(
        &self,
        query: &Query,
    ) -> Result<watch::Receiver<Arc<Published>>, Status> {
        if let Some(sender) = self.live().get(query) {
            return Ok(sender.subscribe());
        }
        let ranking = compute(
            &self.inner.aggregate,
            &self.inner.catalog,
            query,
            self.inner.rules,
        )
        .await?;
        let mut live = self.live();
        // Another subscriber may have started it while we computed.
        if let Some(sender) = live.get(query) {
            return Ok(sender.subscribe());
        }
        let published = Arc::new(Published {
            revision: next_revision(0),
            ranking,
        });
        let (sender, receiver) = watch::channel(published);
        let sender = Arc::new(sender);
        live.insert(query.clone(), sender.clone());
        let notices = self.inner.notices.subscribe();
        tokio::spawn(self.clone().run(query.clone(), sender, notices));
        debug!(?query, "live ranking started");
        Ok(receiver)
    }

    /// Recomputes one query's ranking on notices and on the refresh tick, until nobody
    /// watches it.
    async fn run(
        self,
        query: Query,
        sender: Arc<watch::Sender<Arc<Published>>>,
        mut notices: broadcast::Receiver<Notice>,
    ) {
        let timing = self.inner.timing;
        let mut refresh = tokio::time::interval_at(Instant::now() + timing.refresh, timing.refresh);
        let mut due: Option<Instant> = None;
        let mut cause = Cause::default();
        loop {
            let recompute_at = due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                notice = notices.recv() => {
                    let (relevant, traceparent) = match notice {
                        Ok(Notice { agencies: Some(agencies), traceparent }) => (agencies.iter().any(|a| {
                            self.inner.catalog.agency_by_str(a).is_some_and(|a| a.block == query.block)
                        }), traceparent),
                        Ok(Notice { agencies: None, traceparent }) => (true, traceparent),
                        Err(broadcast::error::RecvError::Lagged(_)) => (true, String::new()),
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if relevant && due.is_none() {
                        due = Some(Instant::now() + timing.debounce);
                    }
                    if relevant {
                        cause.note(&traceparent);
                    }
                    continue;
                }
                () = tokio::time::sleep_until(recompute_at), if due.is_some() => {}
                _ = refresh.tick() => {}
                () = sender.closed() => {}
            }
            due = None;
            {
                // Checked under the map's lock, which subscribe() also takes, so a new
                // subscriber either finds this hub before it ends or starts a new one.
                let mut live = self.live();
                if sender.receiver_count() == 0 {
                    live.remove(&query);
                    debug!(?query, "live ranking stopped: no subscribers");
                    return;
                }
            }
            let cause = std::mem::take(&mut cause);
            let span = cause.span(&query);
            match compute(
                &self.inner.aggregate,
                &self.inner.catalog,
                &query,
                self.inner.rules,
            )
            .instrument(span)
            .await
            {
                Ok(ranking) => {
                    sender.send_if_modified(|current| {
                        let changed = current.ranking.ranked_count != ranking.ranked_count
                            || current.ranking.period != ranking.period
                            || !diff(&current.ranking.rows, &ranking.rows).is_empty();
                        if changed {
                            *current = Arc::new(Published {
                                revision: next_revision(current.revision),
                                ranking,
                            });
                        }
                        changed
                    });
                }
                // The last good ranking stays published; the refresh tick retries.
                Err(status) => {
                    warn!(code = ?status.code(), message = status.message(), "ranking recomputation failed")
                }
            }
            cause.finished();
        }
    }
}
