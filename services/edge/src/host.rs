//! What the three services bind and serve the same way: the main port, the plaintext health
//! port, the `/metrics` listener, the edge (TLS and limits) and the token that stops the
//! service's own tasks. A service builds its API around a [`Host`] and hands it its routes;
//! [`Server`] is the lifecycle the three share: built and bound, then serving until told to
//! stop.

use std::{future::Future, net::SocketAddr, num::NonZeroUsize, path::Path, sync::Arc};

use tokio_util::sync::CancellationToken;
use tonic::{server::NamedService, service::Routes};

use govpulse_core::Catalog;
use govpulse_proto::catalog::catalog_service_server::CatalogServiceServer;
use govpulse_runtime::{
    catalog_files,
    index_file::{self, LiveProfiles},
    prometheus::{self, MetricsListener},
    tls::TlsArgs,
};

use crate::{
    StartError,
    catalog_service::CatalogApi,
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
    /// (its cgroup's quota included), as the manifests run every service (docs/OPERATIONS.md,
    /// section 4, "Threads").
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

/// A service of govpulse (ingest, aggregate, ranking) as its [`Server`] runs it.
pub trait Service: Sized + Send + 'static {
    /// Its configuration, from flags and the environment.
    type Config;
    /// Its gRPC service's name (the catalog service beside it is the server's).
    const NAME: &'static str;

    /// With `catalog` loaded: loads its own settings files, connects what it calls, and
    /// binds.
    fn build_with(
        config: Self::Config,
        catalog: Arc<Catalog>,
    ) -> impl Future<Output = Result<Server<Self>, StartError>> + Send;

    /// Starts what runs beside its calls (file watchers, change relays; each ends when
    /// `stopping` is cancelled) and gives the routes it serves.
    fn start(self, stopping: CancellationToken) -> Routes;

    /// The folder of catalog files `config` names; the built-in catalog when none.
    fn catalog_dir(config: &Self::Config) -> Option<&Path>;

    /// What `config` says of the host (read before the runtime starts: its threads).
    fn host_args(config: &Self::Config) -> &HostArgs;
}

/// A service built and bound, ready to serve: `Server::build(config)`, then `run_until`.
/// Every service serves the catalog beside its own API, and follows the composite index
/// profiles file.
#[derive(Debug)]
pub struct Server<S> {
    host: Host,
    catalog: Arc<Catalog>,
    profiles: LiveProfiles,
    service: S,
}

impl<S: Service> Server<S> {
    /// Loads the catalog, then the rest of what the service needs; connects what it calls,
    /// and binds ([`Service::build_with`]).
    pub async fn build(config: S::Config) -> Result<Self, StartError> {
        let catalog = Arc::new(catalog_files::load(S::catalog_dir(&config))?);
        S::build_with(config, catalog).await
    }

    /// With `catalog` loaded already (one for the services of one process): the rest of
    /// what the service needs; connects what it calls, and binds.
    pub async fn build_with(config: S::Config, catalog: Arc<Catalog>) -> Result<Self, StartError> {
        S::build_with(config, catalog).await
    }

    /// `service` bound to `host`'s listeners, over `catalog` and `profiles`.
    pub fn new(host: Host, catalog: Arc<Catalog>, profiles: LiveProfiles, service: S) -> Self {
        Self {
            host,
            catalog,
            profiles,
            service,
        }
    }

    /// Its listeners (read their addresses: port 0 picks a free one).
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The service, to call in process (benchmarks measure the server side with it).
    pub fn service(&self) -> &S {
        &self.service
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let stopping = self.host.stopping();
        tokio::spawn(
            self.profiles
                .watch(index_file::RELOAD_EVERY, stopping.clone()),
        );
        let routes = self
            .service
            .start(stopping)
            .add_service(CatalogApi::server(self.catalog));
        let served = [S::NAME, CatalogServiceServer::<CatalogApi>::NAME];
        Ok(self.host.serve(routes, &served, shutdown).await?)
    }
}
