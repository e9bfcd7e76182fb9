//! The counter store as aggregate sees it: every call in a span (`store.apply`,
//! `store.read`, `store.put_assessed`, `store.keep_publication`, ...; a child of the gRPC call it serves, so a batch's trace shows its Redis
//! round trips) and timed in `govpulse_store_seconds{op}`. A wrapper, so that the store
//! crate stays free of telemetry and every call is measured in one place.

use std::{future::Future, sync::Arc, time::Instant};

use async_trait::async_trait;
use govpulse_core::{Counters, ProcedureId, freshness::Activity};
use govpulse_runtime::prometheus::{STORE_ERRORS, STORE_SECONDS};
use govpulse_store::{
    AgencyKey, Applied, AssessedRead, AssessedWrite, CacheUse, ChangeNotice, ChildrenRead,
    CounterStore, EventWrite, GroupsRead, NewPublication, ProceduresRead, RejectedWrite,
    StoreError,
};
use time::Date;
use tokio::sync::broadcast;
use tracing::{Instrument, Span, info_span};

/// A store whose calls are traced and timed.
#[derive(Debug)]
pub struct Instrumented {
    inner: Arc<dyn CounterStore>,
}

impl Instrumented {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn CounterStore>) -> Arc<dyn CounterStore> {
        Arc::new(Self { inner })
    }
}

/// Runs one store call inside `span`, recording its duration and whether it failed.
async fn measured<T>(
    op: &'static str,
    span: Span,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = call.instrument(span.clone()).await;
    metrics::histogram!(STORE_SECONDS, "op" => op).record(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        metrics::counter!(STORE_ERRORS, "op" => op).increment(1);
        span.record("error", tracing::field::display(e));
    }
    result
}

/// The store call `call`, named `op`, [`measured`] in a span `store.<op>` holding `fields`
/// (and the error, recorded when the call fails).
macro_rules! traced {
    ($op:literal, $call:expr $(, $($field:tt)+)?) => {
        measured(
            $op,
            info_span!(
                concat!("store.", $op),
                $($($field)+,)?
                error = tracing::field::Empty
            ),
            $call,
        )
        .await
    };
}

#[async_trait]
impl CounterStore for Instrumented {
    async fn apply_with_rejected(
        &self,
        events: &[EventWrite],
        rejected: &[RejectedWrite],
    ) -> Result<Vec<Applied>, StoreError> {
        // Named `apply` as before rejections were counted with the batch: one series.
        traced!(
            "apply",
            self.inner.apply_with_rejected(events, rejected),
            events = events.len(),
            rejected_agencies = rejected.len()
        )
    }

    async fn read(&self, read: GroupsRead<'_>) -> Result<Vec<Counters>, StoreError> {
        traced!(
            "read",
            self.inner.read(read),
            agencies = read.groups.iter().map(Vec::len).sum::<usize>(),
            buckets = read.buckets.len(),
            counters = read.needs.counters.len(),
            distinct = read.needs.distinct
        )
    }

    async fn read_children(&self, read: ChildrenRead<'_>) -> Result<Vec<Counters>, StoreError> {
        traced!(
            "read_children",
            self.inner.read_children(read),
            children = read.of.children.len(),
            buckets = read.buckets.len(),
            counters = read.counters.len()
        )
    }

    async fn read_procedures(
        &self,
        read: ProceduresRead<'_>,
    ) -> Result<Vec<(ProcedureId, Counters)>, StoreError> {
        traced!(
            "read_procedures",
            self.inner.read_procedures(read),
            agencies = read.of.len(),
            buckets = read.buckets.len(),
            counters = read.counters.len()
        )
    }

    async fn read_activity(
        &self,
        agencies: &[AgencyKey],
        days: &[Date],
    ) -> Result<Vec<Activity>, StoreError> {
        traced!(
            "read_activity",
            self.inner.read_activity(agencies, days),
            agencies = agencies.len(),
            days = days.len()
        )
    }

    async fn put_assessed(&self, scores: &[AssessedWrite]) -> Result<(), StoreError> {
        traced!(
            "put_assessed",
            self.inner.put_assessed(scores),
            scores = scores.len()
        )
    }

    async fn read_assessed(
        &self,
        read: AssessedRead<'_>,
    ) -> Result<Vec<Vec<(String, u64)>>, StoreError> {
        traced!(
            "read_assessed",
            self.inner.read_assessed(read),
            agencies = read.agencies.len(),
            profile = read.profile
        )
    }

    async fn keep_publication(
        &self,
        publication: NewPublication<'_>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        traced!(
            "keep_publication",
            self.inner.keep_publication(publication),
            publication_id = publication.id,
            bytes = publication.body.len()
        )
    }

    async fn publication(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        traced!(
            "publication",
            self.inner.publication(id),
            publication_id = id
        )
    }

    async fn publications(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, usize), StoreError> {
        traced!(
            "publications",
            self.inner.publications(offset, limit),
            offset,
            limit
        )
    }

    async fn publish_change(&self, notice: &ChangeNotice) -> Result<(), StoreError> {
        traced!(
            "publish_change",
            self.inner.publish_change(notice),
            agencies = notice.agencies.len()
        )
    }

    // Once per process, at start-up: timed like the others (it waits for Redis to confirm).
    async fn subscribe_changes(&self) -> Result<broadcast::Receiver<ChangeNotice>, StoreError> {
        traced!("subscribe_changes", self.inner.subscribe_changes())
    }

    fn write_cache_use(&self) -> Option<CacheUse> {
        self.inner.write_cache_use()
    }
}
