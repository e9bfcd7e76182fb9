//! The gRPC server lifecycle every service shares: bind first (port 0 works), serve the
//! service with health (`grpc.health.v1`) and reflection (v1 and v1alpha, so that grpcurl
//! works), accept gRPC-Web and HTTP/1.1 on the same port, optionally health alone on a
//! plaintext port for kubelet's probes, and on shutdown report NOT_SERVING, end open streams
//! and drain.

use std::{future::Future, net::SocketAddr, time::Duration};

use govpulse_runtime::BindError;
use tokio::net::TcpListener;

use crate::{
    StartError,
    host::{Server, Service},
    limits::{Connections, EdgeLimits, InFlightLayer, limited_incoming},
};

/// The largest header block a call may send (HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`).
const MAX_HEADER_BYTES: u32 = 64 * 1024;
use tokio_util::sync::CancellationToken;
use tonic::{
    service::Routes,
    transport::{ServerTlsConfig, server::TcpIncoming},
};
use tonic_health::ServingStatus;
use tower::layer::layer_fn;
use tracing::{info, warn};

/// Why a server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Binds `addr`; with port 0 the system picks a free port (read it from `local_addr`).
pub async fn bind(addr: SocketAddr) -> Result<Bound, ServeError> {
    let (listener, local) = govpulse_runtime::listen(addr).await?;
    Ok(Bound { listener, local })
}

/// Binds `addr` when there is one: the optional listeners (the health port).
pub async fn bind_optional(addr: Option<SocketAddr>) -> Result<Option<Bound>, ServeError> {
    match addr {
        Some(addr) => Ok(Some(bind(addr).await?)),
        None => Ok(None),
    }
}

/// A bound listener and the address it actually listens on (the port chosen for port 0).
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
    local: SocketAddr,
}

impl Bound {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Resolves when the process receives SIGTERM (Kubernetes' stop signal) or SIGINT (Ctrl-C).
///
/// The SIGTERM handler is installed when this is called, not when the future is first
/// polled: call it before binding, so that a SIGTERM that arrives as soon as the service
/// is reachable is a clean stop rather than the default, immediate exit.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        #[cfg(unix)]
        match terminate {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => info!(signal = "SIGTERM", "stop requested"),
                    _ = tokio::signal::ctrl_c() => info!(signal = "SIGINT", "stop requested"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A service binary's whole life, the same for every service: its configuration from flags
/// and the environment, its runtime with the configured worker threads (by default one per
/// CPU the process may use, its cgroup's quota included), logs and traces installed as
/// `name`, the stop signal watched before the server binds (see [`shutdown_signal`]), then
/// serving until it comes, and the spans still buffered exported once serving has ended. A
/// server that cannot be built returns its error at once.
pub fn serve_process<S>(name: &'static str) -> Result<(), StartError>
where
    S: Service,
    S::Config: clap::Parser,
{
    let config = <S::Config as clap::Parser>::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = S::host_args(&config).worker_threads {
        runtime.worker_threads(threads.get());
    }
    let runtime = runtime.enable_all().build().map_err(StartError::Runtime)?;
    runtime.block_on(async {
        let telemetry = govpulse_runtime::telemetry::init(name);
        // Before binding: a SIGTERM as soon as the port is reachable is a clean stop.
        let stop = shutdown_signal();
        let served = async { Server::<S>::build(config).await?.run_until(stop).await }.await;
        telemetry.shutdown().await;
        served
    })
}

/// How a server meets its callers: TLS (or plaintext) and the limits on what each may hold.
#[derive(Debug, Clone, Default)]
pub struct Edge {
    /// TLS, or `None` for plaintext.
    pub tls: Option<ServerTlsConfig>,
    /// Connections, time and calls in flight (`limits.rs`).
    pub limits: EdgeLimits,
}

/// `serve` over TLS when `edge.tls` is given (rustls; with a client CA, mutual TLS whose
/// verified certificates the handlers read with `Request::peer_certs`), plaintext when `None`,
/// within `edge.limits`: connections over a cap are closed as they are accepted, idle ones
/// after their timeout, calls over the in-flight cap refused at once, each call bounded by
/// the request timeout and each connection by its HTTP/2 stream cap.
///
/// With `health_port`, that listener serves `grpc.health.v1` and nothing else, in plaintext,
/// because kubelet's gRPC probes cannot speak TLS. It answers from the same statuses as the
/// main port, so it turns NOT_SERVING at shutdown with it and keeps answering during the
/// drain; it closes once the main port has drained.
pub async fn serve_tls(
    bound: Bound,
    health_port: Option<Bound>,
    routes: Routes,
    served: &[&'static str],
    edge: Edge,
    shutdown: impl Future<Output = ()> + Send + 'static,
    stopping: CancellationToken,
) -> Result<(), ServeError> {
    let Edge { tls, limits } = edge;
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in served {
        reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    // Reflection lists exactly what this server serves, not every service of the protos.
    let reflection = || {
        served.iter().chain(&["grpc.health.v1.Health"]).fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(govpulse_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
            |builder, name| builder.with_service_name(*name),
        )
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let health_only = Routes::new(health.clone());
    let routes = routes
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    let served: Vec<&'static str> = served.to_vec();
    let on_shutdown = async move {
        shutdown.await;
        info!("shutting down: reporting not serving and draining in-flight calls");
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for name in served {
            reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        stopping.cancel();
    };
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let health_port = health_port.map(|port| tokio::spawn(serve_health(port, health_only)));
    let connections = Connections::default();
    let drained = builder
        // HTTP/1.1 beside HTTP/2 on the same port: browsers speak gRPC-Web over either, and
        // agencies without a gRPC stack post JSON over plain HTTP/1.1 (docs/INTEGRATION.md).
        .accept_http1(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(limits.max_streams_per_connection)
        // A call's headers are a few hundred bytes; hyper's own bound is 16 MiB.
        .http2_max_header_list_size(MAX_HEADER_BYTES)
        .timeout(limits.request_timeout())
        // One span per call, the caller's child when it sent a traceparent.
        .trace_fn(govpulse_runtime::telemetry::request_span)
        .layer(layer_fn(
            govpulse_runtime::grpc_metrics::RequestMetrics::new,
        ))
        // A caller refused before its body was read gets the answer, not a reset.
        .layer(layer_fn(crate::linger::Linger::new))
        // gRPC-Web (binary and text) translated to gRPC for every service; other requests
        // (gRPC, and the JSON routes over HTTP/1.1) pass through untouched.
        .layer(layer_fn(crate::grpc_web::GrpcWeb::new))
        // Inside gRPC-Web's translation, so that a refusal reaches a browser as gRPC-Web.
        .layer(InFlightLayer::new(connections.clone(), &limits))
        .add_routes(routes)
        // TCP_NODELAY is set as each connection is accepted: without it every small response
        // waits ~40 ms (Nagle's algorithm against the client's delayed ACK).
        .serve_with_incoming_shutdown(
            limited_incoming(bound.listener, limits, connections),
            on_shutdown,
        )
        .await;
    if let Some(task) = health_port {
        // Dropping the health server closes its listener and asks its connections to close;
        // awaiting the aborted task makes sure the port is closed before this returns.
        task.abort();
        let _ = task.await;
    }
    drained?;
    info!("stopped");
    Ok(())
}

/// Serves `health` alone, in plaintext, on `port`, until the task running it is aborted.
///
/// No graceful stop of its own: a client holding a `Watch` stream open would hold it forever,
/// and the health port must never delay the process's exit.
async fn serve_health(port: Bound, health: Routes) {
    info!(addr = %port.local_addr(), "health port listening (plaintext, grpc.health.v1 only)");
    let served = tonic::transport::Server::builder()
        .add_routes(health)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(port.listener).with_nodelay(Some(true)),
            std::future::pending(),
        )
        .await;
    if let Err(error) = served {
        warn!(%error, "health port stopped");
    }
}
