//! The counter store as aggregate sees it: every call in a span (`store.apply`,
//! `store.read`, `store.put_assessed`, `store.keep_publication`, ...; a child of the gRPC call it serves, so a batch's trace shows its Redis
//! round trips) and timed in `govpulse_store_seconds{op}`. A wrapper, so that the store
//! crate stays free of telemetry and every call is measured in one place.

use std::{future::Future, sync::Arc, time::Instant};

use async_trait::async_trait;
use govpulse_core::{AgencyId, Bucket, Counter, Counters, Needs, ProcedureId, freshness::Activity};
use govpulse_runtime::prometheus::{STORE_ERRORS, STORE_SECONDS};
use govpulse_store::{
    AgencyKey, Applied, AssessedWrite, ChangeNotice, CounterStore, EventWrite, RejectedWrite,
    StoreError,
};
use time::{Date, OffsetDateTime};
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

#[async_trait]
impl CounterStore for Instrumented {
    async fn apply_with_rejected(
        &self,
        events: &[EventWrite],
        rejected: &[RejectedWrite],
    ) -> Result<Vec<Applied>, StoreError> {
        // Named `apply` as before rejections were counted with the batch: one series.
        let span = info_span!(
            "store.apply",
            events = events.len(),
            rejected_agencies = rejected.len(),
            error = tracing::field::Empty
        );
        measured(
            "apply",
            span,
            self.inner.apply_with_rejected(events, rejected),
        )
        .await
    }

    async fn read(
        &self,
        groups: &[Vec<AgencyKey>],
        buckets: &[Bucket],
        needs: &Needs,
    ) -> Result<Vec<Counters>, StoreError> {
        let span = info_span!(
            "store.read",
            agencies = groups.iter().map(Vec::len).sum::<usize>(),
            buckets = buckets.len(),
            counters = needs.counters.len(),
            distinct = needs.distinct,
            error = tracing::field::Empty
        );
        measured("read", span, self.inner.read(groups, buckets, needs)).await
    }

    async fn read_children(
        &self,
        parent: &AgencyKey,
        children: &[AgencyId],
        buckets: &[Bucket],
        counters: &[Counter],
    ) -> Result<Vec<Counters>, StoreError> {
        let span = info_span!(
            "store.read_children",
            children = children.len(),
            buckets = buckets.len(),
            counters = counters.len(),
            error = tracing::field::Empty
        );
        measured(
            "read_children",
            span,
            self.inner
                .read_children(parent, children, buckets, counters),
        )
        .await
    }

    async fn read_procedures(
        &self,
        group: &[AgencyKey],
        buckets: &[Bucket],
        counters: &[Counter],
    ) -> Result<Vec<(ProcedureId, Counters)>, StoreError> {
        let span = info_span!(
            "store.read_procedures",
            agencies = group.len(),
            buckets = buckets.len(),
            counters = counters.len(),
            error = tracing::field::Empty
        );
        measured(
            "read_procedures",
            span,
            self.inner.read_procedures(group, buckets, counters),
        )
        .await
    }

    async fn read_activity(
        &self,
        agencies: &[AgencyKey],
        days: &[Date],
    ) -> Result<Vec<Activity>, StoreError> {
        let span = info_span!(
            "store.read_activity",
            agencies = agencies.len(),
            days = days.len(),
            error = tracing::field::Empty
        );
        measured(
            "read_activity",
            span,
            self.inner.read_activity(agencies, days),
        )
        .await
    }

    async fn put_assessed(&self, scores: &[AssessedWrite]) -> Result<(), StoreError> {
        let span = info_span!(
            "store.put_assessed",
            scores = scores.len(),
            error = tracing::field::Empty
        );
        measured("put_assessed", span, self.inner.put_assessed(scores)).await
    }

    async fn read_assessed(
        &self,
        agencies: &[AgencyKey],
        bucket: Bucket,
        profile: &str,
    ) -> Result<Vec<Vec<(String, u64)>>, StoreError> {
        let span = info_span!(
            "store.read_assessed",
            agencies = agencies.len(),
            profile,
            error = tracing::field::Empty
        );
        measured(
            "read_assessed",
            span,
            self.inner.read_assessed(agencies, bucket, profile),
        )
        .await
    }

    async fn keep_publication(
        &self,
        id: &str,
        published_at: OffsetDateTime,
        publication: &[u8],
        summary: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let span = info_span!(
            "store.keep_publication",
            publication_id = id,
            bytes = publication.len(),
            error = tracing::field::Empty
        );
        measured(
            "keep_publication",
            span,
            self.inner
                .keep_publication(id, published_at, publication, summary),
        )
        .await
    }

    async fn publication(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let span = info_span!(
            "store.publication",
            publication_id = id,
            error = tracing::field::Empty
        );
        measured("publication", span, self.inner.publication(id)).await
    }

    async fn publications(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, usize), StoreError> {
        let span = info_span!(
            "store.publications",
            offset,
            limit,
            error = tracing::field::Empty
        );
        measured("publications", span, self.inner.publications(offset, limit)).await
    }

    async fn publish_change(&self, notice: &ChangeNotice) -> Result<(), StoreError> {
        let span = info_span!(
            "store.publish_change",
            agencies = notice.agencies.len(),
            error = tracing::field::Empty
        );
        measured("publish_change", span, self.inner.publish_change(notice)).await
    }

    // Once per process, at start-up: timed like the others (it waits for Redis to confirm).
    async fn subscribe_changes(&self) -> Result<broadcast::Receiver<ChangeNotice>, StoreError> {
        let span = info_span!("store.subscribe_changes", error = tracing::field::Empty);
        measured("subscribe_changes", span, self.inner.subscribe_changes()).await
    }
}
