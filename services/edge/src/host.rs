//! What the three services bind and serve the same way: the main port, the plaintext health
//! port, the `/metrics` listener, the edge (TLS and limits) and the token that stops the
//! service's own tasks. A service builds its API around a [`Host`] and hands it its routes.

use std::{future::Future, net::SocketAddr, num::NonZeroUsize};

use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use govpulse_runtime::{
    prometheus::{self, MetricsListener},
    tls::TlsArgs,
};

use crate::{
    limits::EdgeLimits,
    server::{self, Bound, Edge, ServeError},
};

/// The settings every service's host takes alike, flattened into each service's `Config`
/// (whose own `--listen` names the main port).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HostArgs {
    /// Address of the Prometheus `/metrics` listener; none when unset.
    #[arg(long, env = "GOVPULSE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Address of a plaintext listener that serves only `grpc.health.v1`, for kubelet's gRPC
    /// probes, which cannot speak TLS; none when unset.
    #[arg(long, env = "GOVPULSE_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,
    /// TLS of this server; with a client CA, callers present certificates (mutual TLS).
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Connections, time and calls in flight each caller may hold (docs/SECURITY.md).
    #[command(flatten)]
    pub edge: EdgeLimits,
    /// Threads that run the service's tasks; by default one per CPU the process may use
    /// (its cgroup's quota included). Aggregate does less work per event on one
    /// (docs/OPERATIONS.md, section 4, "Threads"): run more replicas rather than more threads.
    #[arg(long, env = "GOVPULSE_WORKER_THREADS")]
    pub worker_threads: Option<NonZeroUsize>,
}

impl HostArgs {
    /// The same settings, plaintext: for the demo and tests, never in production.
    pub fn plaintext(mut self) -> Self {
        self.tls.plaintext = true;
        self
    }

    /// The listeners, with `main` as the main port.
    pub fn listen(&self, main: SocketAddr) -> Listen {
        Listen {
            main,
            health: self.health_listen,
            metrics: self.metrics_listen,
        }
    }

    /// The edge: TLS as configured (an error says which setting is wrong) and the limits.
    pub fn edge(&self) -> Result<Edge, String> {
        Ok(Edge {
            tls: self.tls.server_config()?,
            limits: self.edge.clone(),
        })
    }
}

/// Where a service listens.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// The main port: the service, health, reflection, gRPC-Web and HTTP.
    pub main: SocketAddr,
    /// A plaintext port with health alone (for kubelet's probes), if any.
    pub health: Option<SocketAddr>,
    /// The `/metrics` listener, if any.
    pub metrics: Option<SocketAddr>,
}

/// A service's listeners, bound (port 0 works: read the addresses back), with its edge and
/// the token its background tasks stop on.
#[derive(Debug)]
pub struct Host {
    bound: Bound,
    health: Option<Bound>,
    metrics: Option<MetricsListener>,
    edge: Edge,
    stopping: CancellationToken,
}

impl Host {
    /// Binds every listener of `listen`.
    pub async fn bind(listen: Listen, edge: Edge) -> Result<Self, ServeError> {
        let bound = server::bind(listen.main).await?;
        let health = server::bind_optional(listen.health).await?;
        let metrics = match listen.metrics {
            Some(addr) => Some(prometheus::bind(addr).await?),
            None => None,
        };
        Ok(Self {
            bound,
            health,
            metrics,
            edge,
            stopping: CancellationToken::new(),
        })
    }

    /// The address of the main port.
    pub fn local_addr(&self) -> SocketAddr {
        self.bound.local_addr()
    }

    /// The address of the plaintext health port, when one was configured.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.as_ref().map(Bound::local_addr)
    }

    /// The address of the `/metrics` listener, when one was configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsListener::local_addr)
    }

    /// The token cancelled when the service starts to stop: its background tasks end on it.
    pub fn stopping(&self) -> CancellationToken {
        self.stopping.clone()
    }

    /// Serves `routes` (whose gRPC services are `served`, for health) and `/metrics` until
    /// `shutdown` resolves, then drains (`server::serve_tls`).
    pub async fn serve(
        self,
        routes: Routes,
        served: &[&'static str],
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        if let Some(metrics) = self.metrics {
            tokio::spawn(metrics.serve(self.stopping.clone()));
        }
        server::serve_tls(
            self.bound,
            self.health,
            routes,
            served,
            self.edge,
            shutdown,
            self.stopping,
        )
        .await
    }
}
