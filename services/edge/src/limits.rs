//! What one caller may hold of a server, whoever it is: connections (in all and per remote
//! address), time (a new connection must send a request within the header timeout, and a
//! connection with no call in flight is closed after the idle timeout), and calls being
//! handled at once (beyond them, RESOURCE_EXHAUSTED or 503 with Retry-After at once, as
//! Envoy's overload manager and the Kubernetes API server's max-in-flight do). Each request
//! is also bounded by tonic's request timeout and HTTP/2 stream cap (`server.rs`).
//!
//! Two halves meet through the connection's remote address: [`LimitedIncoming`] accepts
//! connections and closes the ones over a cap or idle too long; [`InFlightLayer`] sees the
//! calls and tells each connection when it has one in flight.

use std::{
    collections::HashMap,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::task::AtomicWaker;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    time::{Instant, Sleep},
};
use tokio_stream::Stream;
use tonic::{
    codegen::http,
    transport::server::{Connected, TcpConnectInfo},
};
use tracing::warn;

/// The limits, from flags or the environment; the same for every service.
#[derive(Debug, Clone, clap::Args)]
pub struct EdgeLimits {
    /// Connections held open at once; a connection over it is closed as soon as it is
    /// accepted.
    #[arg(long, env = "GOVPULSE_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Connections held open at once from one remote address.
    #[arg(long, env = "GOVPULSE_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256)]
    pub max_connections_per_address: usize,
    /// A new connection must start its first call within this many milliseconds (TLS
    /// handshake included), or it is closed.
    #[arg(long, env = "GOVPULSE_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// A connection with no call in flight for this many milliseconds is closed.
    #[arg(long, env = "GOVPULSE_IDLE_TIMEOUT_MS", default_value_t = 120_000)]
    pub idle_timeout_ms: u64,
    /// A call (its body read, its handling) must finish within this many milliseconds, or
    /// it ends with CANCELLED; a stream ends when its client or the service ends it.
    #[arg(long, env = "GOVPULSE_REQUEST_TIMEOUT_MS", default_value_t = 60_000)]
    pub request_timeout_ms: u64,
    /// HTTP/2 streams (calls) one connection may have open at once.
    #[arg(long, env = "GOVPULSE_MAX_STREAMS_PER_CONNECTION", default_value_t = 128)]
    pub max_streams_per_connection: u32,
    /// Calls being handled at once by the server (a stream counts until its response
    /// starts); beyond it a call is refused at once with RESOURCE_EXHAUSTED (503 with
    /// Retry-After over HTTP).
    #[arg(long, env = "GOVPULSE_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
}

impl Default for EdgeLimits {
    /// The flags' defaults.
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_connections_per_address: 256,
            header_timeout_ms: 10_000,
            idle_timeout_ms: 120_000,
            request_timeout_ms: 60_000,
            max_streams_per_connection: 128,
            max_in_flight: 1024,
        }
    }
}

impl EdgeLimits {
    fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms.max(1))
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(1))
    }

    /// tonic's per-call timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }
}

/// What one connection is doing, shared by its IO and its calls.
#[derive(Debug)]
struct Activity {
    /// Calls of this connection whose response has not ended.
    in_flight: AtomicUsize,
    /// When the connection last had no call in flight, and whether it ever had one.
    since: Mutex<(Instant, bool)>,
    /// The connection's pending read, woken when its last call ends so that it starts
    /// counting its idle time.
    reader: AtomicWaker,
}

impl Activity {
    fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.since_now(true);
    }

    fn ended(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.since_now(true);
        self.reader.wake();
    }

    fn since_now(&self, served: bool) {
        let mut since = self
            .since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *since = (Instant::now(), since.1 || served);
    }

    /// When the connection is to be closed if nothing starts meanwhile; `None` while a call
    /// is in flight.
    fn deadline(&self, limits: &EdgeLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let (since, served) = *self
            .since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(
            since
                + if served {
                    limits.idle_timeout()
                } else {
                    limits.header_timeout()
                },
        )
    }
}

/// The open connections, by remote address; shared by a server's incoming stream and its
/// layer.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    inner: Arc<Mutex<Registry>>,
}

#[derive(Debug, Default)]
struct Registry {
    by_peer: HashMap<SocketAddr, Arc<Activity>>,
    per_address: HashMap<IpAddr, usize>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a new connection from `peer`, or `None` when a cap is reached.
    fn admit(&self, peer: SocketAddr, limits: &EdgeLimits) -> Option<Admitted> {
        let mut registry = self.lock();
        let from_address = registry.per_address.get(&peer.ip()).copied().unwrap_or(0);
        if registry.by_peer.len() >= limits.max_connections
            || from_address >= limits.max_connections_per_address
        {
            return None;
        }
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            since: Mutex::new((Instant::now(), false)),
            reader: AtomicWaker::new(),
        });
        registry.by_peer.insert(peer, activity.clone());
        *registry.per_address.entry(peer.ip()).or_default() += 1;
        Some(Admitted {
            connections: self.clone(),
            peer,
            activity,
        })
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.lock().by_peer.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn activity(&self, peer: SocketAddr) -> Option<Arc<Activity>> {
        self.lock().by_peer.get(&peer).cloned()
    }
}

/// A connection's place in the registry, given back when the connection closes.
#[derive(Debug)]
struct Admitted {
    connections: Connections,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut registry = self.connections.lock();
        registry.by_peer.remove(&self.peer);
        if let Some(n) = registry.per_address.get_mut(&self.peer.ip()) {
            *n -= 1;
            if *n == 0 {
                registry.per_address.remove(&self.peer.ip());
            }
        }
    }
}

/// Accepts connections on `listener` within the caps; the connections it yields close
/// themselves when idle too long.
pub fn limited_incoming(
    listener: TcpListener,
    limits: EdgeLimits,
    connections: Connections,
) -> impl Stream<Item = io::Result<Limited>> + Send + 'static {
    futures::stream::unfold(
        (listener, limits, connections),
        |(listener, limits, connections)| async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        // Over a cap: closed at once (dropped), so the client learns it now.
                        let Some(admitted) = connections.admit(peer, &limits) else {
                            crate::refusals::refused("connection_cap", &peer.ip().to_string());
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        let limited = Limited {
                            stream,
                            admitted,
                            limits: limits.clone(),
                            timer: None,
                        };
                        return Some((Ok(limited), (listener, limits, connections)));
                    }
                    Err(error) => {
                        // Out of file descriptors, or a connection reset before it was
                        // accepted: wait a little rather than spin, and go on.
                        warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        },
    )
}

/// An accepted connection that errors out once it has been idle past its deadline, which
/// makes the server close it.
#[derive(Debug)]
pub struct Limited {
    stream: TcpStream,
    admitted: Admitted,
    limits: EdgeLimits,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Limited {
    /// Errors when the connection has been idle past its deadline; otherwise arranges to be
    /// woken at the deadline, to look again.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.admitted.activity.reader.register(cx.waker());
        loop {
            let Some(deadline) = self.admitted.activity.deadline(&self.limits) else {
                // A call in flight: nothing to time out until it ends (its end wakes the
                // connection's reads, which come back here).
                self.timer = None;
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle past its timeout",
                ));
            }
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            match timer.as_mut().poll(cx) {
                Poll::Pending => return Ok(()),
                // The deadline passed while we looked: look again.
                Poll::Ready(()) => {}
            }
        }
    }
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Err(error) = this.check_idle(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for Limited {
    // The TCP connection's own information, so that calls see their peer's address and,
    // over TLS, its verified certificates as with tonic's own listener.
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

/// The remote address of a request's connection, plain or TLS.
fn peer<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    crate::auth::remote_addr(request.extensions())
}

/// Adds [`InFlight`] to a service.
#[derive(Debug, Clone)]
pub struct InFlightLayer {
    connections: Connections,
    server: Arc<tokio::sync::Semaphore>,
    limit: usize,
}

impl InFlightLayer {
    /// Tells `connections` about their calls, and lets at most `limits.max_in_flight` be
    /// handled at once.
    pub fn new(connections: Connections, limits: &EdgeLimits) -> Self {
        Self {
            connections,
            server: Arc::new(tokio::sync::Semaphore::new(limits.max_in_flight.max(1))),
            limit: limits.max_in_flight.max(1),
        }
    }
}

impl<S> tower::Layer<S> for InFlightLayer {
    type Service = InFlight<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlight {
            inner,
            layer: self.clone(),
        }
    }
}

/// Marks each call in flight on its connection until its response ends, and refuses calls
/// over the server's cap.
#[derive(Debug, Clone)]
pub struct InFlight<S> {
    inner: S,
    layer: InFlightLayer,
}

/// Ends a connection's call when dropped.
#[derive(Debug)]
struct CallGuard(Option<Arc<Activity>>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(activity) = self.0.take() {
            activity.ended();
        }
    }
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for InFlight<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let activity = peer(&request).and_then(|p| self.layer.connections.activity(p));
        if let Some(activity) = &activity {
            activity.started();
        }
        let call = CallGuard(activity);
        let Ok(permit) = self.layer.server.clone().try_acquire_owned() else {
            let limit = self.layer.limit;
            crate::refusals::refused(
                "in_flight_cap",
                &peer(&request).map_or_else(|| "unknown".to_owned(), |p| p.ip().to_string()),
            );
            let response = overloaded(&request, limit);
            return Box::pin(async move {
                drop(call);
                Ok(response)
            });
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            // Handling is over once the response starts; a stream's body may go on.
            drop(permit);
            Ok(response?.map(|body| holding(body, call)))
        })
    }
}

/// RESOURCE_EXHAUSTED for a gRPC call, 503 with Retry-After otherwise.
fn overloaded<B>(request: &http::Request<B>, limit: usize) -> http::Response<tonic::body::Body> {
    let message = format!(
        "the server is handling {limit} calls already (--max-in-flight); retry in a second"
    );
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        let mut response = tonic::Status::resource_exhausted(message).into_http();
        response
            .headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("1"));
        return response;
    }
    let mut response =
        crate::http_json::status_response(&tonic::Status::resource_exhausted(message));
    *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    response.map(tonic::body::Body::new)
}

/// `body`, holding its call's place on the connection until it ends or is dropped.
fn holding<B>(body: B, call: CallGuard) -> tonic::body::Body
where
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tonic::body::Body::new(body.map_frame(move |frame| {
        let _place = &call;
        frame
    }))
}
