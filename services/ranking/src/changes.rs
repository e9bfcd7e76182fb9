//! Follows aggregate's change notices (WatchChanges) and passes them on to the live
//! rankings, reconnecting with backoff whenever the stream breaks.

use std::{collections::HashSet, sync::Arc, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};
use govpulse_proto::aggregate::{
    WatchChangesRequest, aggregate_service_client::AggregateServiceClient,
};
use time::{Date, macros::format_description};
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tracing::{info, warn};

/// Something was counted. `agencies` is `None` when anything may have changed (after a
/// reconnect, or when this follower fell behind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The agencies whose counters changed, ancestors included.
    pub agencies: Option<Arc<HashSet<String>>>,
    /// The Vietnam days whose counters changed; `None` when not known (any day).
    pub days: Option<Arc<Vec<Date>>>,
    /// The W3C traceparent of the batch that caused it; empty when unknown.
    pub traceparent: String,
}

/// The days of a notice; `None` when it lists none or one cannot be read (any day).
fn days(days: &[String]) -> Option<Arc<Vec<Date>>> {
    let format = format_description!("[year]-[month]-[day]");
    let parsed: Option<Vec<Date>> = days.iter().map(|d| Date::parse(d, format).ok()).collect();
    parsed.filter(|d| !d.is_empty()).map(Arc::new)
}

/// Runs until `stopping` is cancelled, sending a [`Notice`] per change notice.
pub async fn follow(
    mut aggregate: AggregateServiceClient<Channel>,
    notices: broadcast::Sender<Notice>,
    stopping: CancellationToken,
) {
    let backoff = || {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .without_max_times()
            .build()
    };
    let mut delays = backoff();
    loop {
        let attempt = async {
            let mut stream = aggregate
                .watch_changes(WatchChangesRequest {})
                .await?
                .into_inner();
            info!("following aggregate's change notices");
            // Anything may have changed while we were not listening.
            let _ = notices.send(Notice {
                agencies: None,
                days: None,
                traceparent: String::new(),
            });
            delays = backoff();
            while let Some(notice) = stream.next().await {
                let notice = notice?;
                let agencies = (!notice.agency_ids.is_empty())
                    .then(|| Arc::new(notice.agency_ids.into_iter().collect()));
                let _ = notices.send(Notice {
                    agencies,
                    days: days(&notice.days),
                    traceparent: notice.traceparent,
                });
            }
            Ok::<(), tonic::Status>(())
        };
        let result = tokio::select! {
            () = stopping.cancelled() => return,
            result = attempt => result,
        };
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        match result {
            Ok(()) => warn!(retry_in = ?delay, "aggregate ended the change stream"),
            Err(status) => {
                warn!(code = ?status.code(), message = status.message(), retry_in = ?delay, "change stream failed")
            }
        }
        tokio::select! {
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn notice_days_are_read_as_vietnam_days() {
        let read = days(&["2026-08-15".to_owned(), "2026-01-02".to_owned()]);
        assert_eq!(
            read.as_deref().map(Vec::as_slice),
            Some([date!(2026 - 08 - 15), date!(2026 - 01 - 02)].as_slice())
        );
    }

    #[test]
    fn a_notice_without_readable_days_may_concern_any_day() {
        assert_eq!(days(&[]), None);
        assert_eq!(days(&["2026-08-15".to_owned(), "15/08".to_owned()]), None);
    }
}
