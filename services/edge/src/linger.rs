//! Lingering close: a caller refused before its body was read (no credential, a body over the
//! limit, a call over the in-flight cap) gets its answer, not a reset.
//!
//! Over HTTP/1.1, a server that closes a TCP connection with unread bytes in its receive
//! buffer makes the kernel send a reset, which discards whatever of the answer was not yet
//! sent, and a client still writing its body reports "broken pipe" instead of the 401 on its
//! way. Over HTTP/2, a stream whose body is dropped unread is reset, and a client still
//! sending reports a stream error. nginx's `lingering_close` is the usual cure: after
//! answering, read and discard what the client still sends, for a bounded time and amount,
//! then close. Here a request body dropped before its end is handed to a task that reads at
//! most [`LINGER_BYTES`] more of it for at most [`LINGER_FOR`], discarding each frame as it
//! comes, and at most [`LINGER_AT_ONCE`] bodies linger at a time in a process: a lingering
//! HTTP/1.1 connection keeps its read buffer (hyper grows it to about 400 KiB while a body
//! streams in), so 200 refused callers lingering at once held 85 MiB; capped, they hold at
//! most about 13 MiB, and a body refused while the cap is full is dropped as before (its
//! caller may see a reset). A refused caller costs a bounded time of a connection or stream
//! it already holds (both capped by `limits.rs`).

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tonic::{body::Body as TonicBody, codegen::http};

/// The most a refused caller's body is read after it was answered.
pub const LINGER_BYTES: u64 = 1024 * 1024;
/// The longest a refused caller's body is read after it was answered.
pub const LINGER_FOR: Duration = Duration::from_secs(2);
/// The most bodies lingering at once in a process.
pub const LINGER_AT_ONCE: usize = 32;

/// Permits to linger, one per body lingering.
static LINGERING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(LINGER_AT_ONCE);

/// Gives each request a body that lingers when dropped unread.
#[derive(Debug, Clone)]
pub struct Linger<S> {
    inner: S,
}

impl<S> Linger<S> {
    /// Around `inner`; as a layer, `tower::layer::layer_fn(Linger::new)`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S> tower::Service<http::Request<TonicBody>> for Linger<S>
where
    S: tower::Service<http::Request<TonicBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<TonicBody>) -> Self::Future {
        self.inner
            .call(request.map(|body| TonicBody::new(LingeringBody(Some(body)))))
    }
}

/// A request body that, dropped before its end, is drained in the background.
#[derive(Debug)]
struct LingeringBody(Option<TonicBody>);

impl Body for LingeringBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let Some(body) = self.0.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = std::task::ready!(Pin::new(body).poll_frame(cx));
        if frame.is_none() {
            // Read to its end: nothing to drain when dropped.
            self.0 = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for LingeringBody {
    fn drop(&mut self) {
        let Some(body) = self.0.take() else { return };
        if body.is_end_stream() {
            return;
        }
        // Dropped outside a runtime (a test, shutdown): nothing left to answer.
        hand_off(body, &LINGERING);
    }
}

/// Drains `body` in a task of its own if one of `permits` is free; else drops it.
fn hand_off(body: TonicBody, permits: &'static tokio::sync::Semaphore) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    // The cap full: dropped unread, as without lingering.
    let Ok(permit) = permits.try_acquire() else {
        return;
    };
    runtime.spawn(async move {
        drain(body).await;
        drop(permit);
    });
}

/// Reads and discards at most [`LINGER_BYTES`] of `body` for at most [`LINGER_FOR`]; the
/// bytes read.
async fn drain(mut body: TonicBody) -> u64 {
    let mut read = 0u64;
    let reading = async {
        while read <= LINGER_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len() as u64),
                Some(Err(_)) | None => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_FOR, reading).await;
    read
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;
    use tokio_stream::wrappers::ReceiverStream;

    const CHUNK: usize = 64 * 1024;

    /// A body fed through a channel, as hyper feeds a request's body from its connection.
    fn fed() -> (tokio::sync::mpsc::Sender<bytes::Bytes>, TonicBody) {
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(1);
        let frames = tokio_stream::StreamExt::map(ReceiverStream::new(rx), |data| {
            Ok::<_, tonic::Status>(Frame::data(data))
        });
        (tx, TonicBody::new(StreamBody::new(frames)))
    }

    #[tokio::test]
    async fn a_body_dropped_unread_is_read_up_to_the_bound_then_let_go() {
        let (tx, body) = fed();
        drop(LingeringBody(Some(body)));
        let mut sent = 0u64;
        let feeding = async {
            while tx.send(bytes::Bytes::from(vec![0u8; CHUNK])).await.is_ok() {
                sent += CHUNK as u64;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), feeding)
            .await
            .expect("the drain lets the body go");
        // Read up to the bound; one more chunk may wait in the channel when it stops.
        assert!(
            (LINGER_BYTES..=LINGER_BYTES + 2 * CHUNK as u64).contains(&sent),
            "{sent} bytes taken"
        );
    }

    #[tokio::test]
    async fn past_the_cap_a_body_is_dropped_unread() {
        static CAP: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
        let (first_tx, first) = fed();
        hand_off(first, &CAP);
        // The first holds the only permit while it lingers (its sender stays open).
        let (second_tx, second) = fed();
        hand_off(second, &CAP);
        assert!(second_tx.is_closed(), "the second body was let go at once");
        assert!(!first_tx.is_closed(), "the first still lingers");
        drop(first_tx);
        // The first's drain ends with its body, and gives its permit back.
        let permit = tokio::time::timeout(Duration::from_secs(30), CAP.acquire())
            .await
            .expect("the permit comes back");
        drop(permit);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_let_go_after_the_linger_time() {
        let (tx, body) = fed();
        let started = tokio::time::Instant::now();
        assert_eq!(drain(body).await, 0);
        assert_eq!(started.elapsed(), LINGER_FOR);
        drop(tx);
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_is_not_drained_when_dropped() {
        let (tx, body) = fed();
        tx.send(bytes::Bytes::from_static(b"{}"))
            .await
            .expect("sent");
        drop(tx);
        let mut body = LingeringBody(Some(body));
        let mut read = 0;
        while let Some(frame) = body.frame().await {
            read += frame.expect("a frame").into_data().map_or(0, |d| d.len());
        }
        assert_eq!(read, 2);
        assert!(body.is_end_stream());
        assert!(body.0.is_none(), "nothing left to hand to a drain");
    }
}
