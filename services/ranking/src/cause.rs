//! Why a live ranking recomputes: the change notices folded into one recomputation by the
//! debounce. Its span joins the trace of the first notice's batch (ingest → aggregate →
//! Redis → this recomputation) and links to the batches of the others, so every batch's
//! trace leads to the recomputation that published it; the lag from the first notice to
//! the end of the recomputation is `govpulse_ranking_lag_seconds`.

use govpulse_runtime::prometheus::RANKING_LAG_SECONDS;
use govpulse_runtime::telemetry;
use opentelemetry::trace::SpanContext;
use tokio::time::Instant;
use tracing::Span;

use crate::query::{Measure, Query, Scope};

/// At most this many folded notices are linked; a burst of batches links its first ones.
const MAX_LINKS: usize = 32;

/// The notices waiting for the next recomputation.
#[derive(Debug, Default)]
pub struct Cause {
    first_at: Option<Instant>,
    notices: usize,
    parent: Option<SpanContext>,
    links: Vec<SpanContext>,
}

impl Cause {
    /// A relevant notice arrived now, sent for the batch `traceparent` names (if traced).
    pub fn note(&mut self, traceparent: &str) {
        self.first_at.get_or_insert_with(Instant::now);
        self.notices += 1;
        let Some(context) = telemetry::span_context(traceparent) else {
            return;
        };
        if self.parent.is_none() {
            self.parent = Some(context);
        } else if self.links.len() < MAX_LINKS {
            self.links.push(context);
        }
    }

    /// The span of the recomputation these notices cause (a root span after a refresh tick
    /// with no notice).
    pub fn span(&self, query: &Query) -> Span {
        let (metric, index) = match &query.measure {
            Measure::Metric(metric) => (metric.name(), ""),
            Measure::Index(profile) => ("", profile.name.as_str()),
        };
        // A block's ranking names its block; an agency's units name their parent.
        let (block, parent) = match &query.scope {
            Scope::Block(block) => (Some(block), ""),
            Scope::Children(parent) => (None, parent.as_str()),
        };
        let span = tracing::info_span!(
            "ranking.recompute",
            metric,
            index,
            block = block.map(tracing::field::debug),
            parent,
            period = %query.period,
            notices = self.notices,
        );
        telemetry::adopt(&span, self.parent.as_ref(), &self.links);
        span
    }

    /// The recomputation is over (published when it changed the ranking).
    pub fn finished(self) {
        if let Some(first_at) = self.first_at {
            metrics::histogram!(RANKING_LAG_SECONDS).record(first_at.elapsed().as_secs_f64());
        }
    }
}
