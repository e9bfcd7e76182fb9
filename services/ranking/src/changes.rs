//! Follows aggregate's change notices (WatchChanges) and passes them on to the live
//! rankings, reconnecting with backoff whenever the stream breaks.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use govpulse_core::notice::ChangeNotice;
use govpulse_edge::convert::notice_from_proto;
use govpulse_proto::aggregate::{
    WatchChangesRequest, aggregate_service_client::AggregateServiceClient,
};
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tracing::{info, warn};

/// Runs until `stopping` is cancelled, sending a [`ChangeNotice`] per change notice.
pub async fn follow(
    mut aggregate: AggregateServiceClient<Channel>,
    notices: broadcast::Sender<ChangeNotice>,
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
            let _ = notices.send(ChangeNotice::anything());
            delays = backoff();
            while let Some(notice) = stream.next().await {
                let _ = notices.send(notice_from_proto(notice?));
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
