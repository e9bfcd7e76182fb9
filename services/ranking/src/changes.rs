//! Follows aggregate's change notices (WatchChanges) and passes them on to the live
//! rankings, reconnecting with backoff whenever the stream breaks.

use std::time::Duration;

use govpulse_core::notice::ChangeNotice;
use govpulse_edge::convert::notice_from_proto;
use govpulse_proto::aggregate::{
    WatchChangesRequest, aggregate_service_client::AggregateServiceClient,
};
use govpulse_runtime::client::ReconnectDelays;
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
    let mut delays = ReconnectDelays::new(Duration::from_millis(100));
    loop {
        let attempt = async {
            let mut stream = aggregate
                .watch_changes(WatchChangesRequest {})
                .await?
                .into_inner();
            info!("following aggregate's change notices");
            // Anything may have changed while we were not listening.
            let _ = notices.send(ChangeNotice::anything());
            delays.reset();
            while let Some(notice) = stream.next().await {
                let _ = notices.send(notice_from_proto(notice?));
            }
            Ok::<(), tonic::Status>(())
        };
        let result = tokio::select! {
            () = stopping.cancelled() => return,
            result = attempt => result,
        };
        let delay = delays.next_delay();
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
