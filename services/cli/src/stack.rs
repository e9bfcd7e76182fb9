//! The three services in one process, wired to each other over real gRPC on loopback: the
//! single-machine deployment behind `govpulse serve` and `govpulse demo`.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use anyhow::Context;
use govpulse_store::{CounterStore, MemoryStore, RedisStore, RedisStoreConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where the stack listens and what it counts into.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// The address every service binds.
    pub host: IpAddr,
    /// Preferred ports of ingest, aggregate and ranking; a port in use falls back to a free one.
    pub ports: [u16; 3],
    /// A `redis://` URL, or `None` for the in-memory store.
    pub redis: Option<String>,
    /// Key prefix in Redis.
    pub key_prefix: String,
    /// Ranking's minimum volume (0 ranks every agency with data).
    pub min_volume: u64,
    /// Where to serve Prometheus metrics, if anywhere. One listener shows all three services
    /// (they share the process's recorder), told apart by their `service` label.
    pub metrics_listen: Option<SocketAddr>,
}

/// The running services.
#[derive(Debug)]
pub struct Stack {
    /// ingest's address.
    pub ingest: SocketAddr,
    /// aggregate's address.
    pub aggregate: SocketAddr,
    /// ranking's address.
    pub ranking: SocketAddr,
    /// The `/metrics` listener's address, when configured.
    pub metrics: Option<SocketAddr>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

async fn bindable(host: IpAddr, port: u16) -> SocketAddr {
    let preferred = SocketAddr::new(host, port);
    match tokio::net::TcpListener::bind(preferred).await {
        Ok(_) => preferred,
        Err(_) => SocketAddr::new(host, 0),
    }
}

impl Stack {
    /// Starts aggregate, then ingest and ranking pointed at it.
    pub async fn start(config: StackConfig) -> anyhow::Result<Stack> {
        let catalog = Arc::new(govpulse_common::catalog_files::built_in()?);
        let store: Arc<dyn CounterStore> = match &config.redis {
            None => Arc::new(MemoryStore::new()),
            Some(url) => Arc::new(
                RedisStore::connect(RedisStoreConfig {
                    url: url.clone(),
                    prefix: config.key_prefix.clone(),
                })
                .await
                .with_context(|| "cannot connect to redis")?,
            ),
        };
        let [ingest_port, aggregate_port, ranking_port] = config.ports;
        let aggregate_config = govpulse_aggregate::Config {
            metrics_listen: config.metrics_listen,
            ..govpulse_aggregate::Config::new(bindable(config.host, aggregate_port).await)
                .development()
        };
        let aggregate =
            govpulse_aggregate::Server::build_with(aggregate_config, catalog.clone(), store)
                .await?;
        let aggregate_addr = aggregate.local_addr();
        let metrics = aggregate.metrics_addr();
        let aggregate_url = format!("http://{}", loopback(aggregate_addr));
        // The demo stack is development: plaintext and no credentials (docs/SECURITY.md).
        let ingest_config = govpulse_ingest::Config::new(
            bindable(config.host, ingest_port).await,
            aggregate_url.clone(),
        )
        .development();
        let ingest = govpulse_ingest::Server::build_with(ingest_config, catalog.clone()).await?;
        let ranking_config = govpulse_ranking::Config {
            min_volume: config.min_volume,
            ..govpulse_ranking::Config::new(
                bindable(config.host, ranking_port).await,
                aggregate_url,
            )
            .development()
        };
        let ranking = govpulse_ranking::Server::build_with(ranking_config, catalog).await?;

        let stop = CancellationToken::new();
        let (ingest_addr, ranking_addr) = (ingest.local_addr(), ranking.local_addr());
        let tasks = vec![
            spawn(
                "aggregate",
                aggregate.run_until(stop.clone().cancelled_owned()),
            ),
            spawn("ingest", ingest.run_until(stop.clone().cancelled_owned())),
            spawn("ranking", ranking.run_until(stop.clone().cancelled_owned())),
        ];
        Ok(Stack {
            ingest: ingest_addr,
            aggregate: aggregate_addr,
            ranking: ranking_addr,
            metrics,
            stop,
            tasks,
        })
    }

    /// A URL clients can dial for `addr` (a wildcard address becomes loopback).
    pub fn url(addr: SocketAddr) -> String {
        format!("http://{}", loopback(addr))
    }

    /// Stops every service and waits for them to drain.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

fn spawn<E: std::fmt::Display>(
    name: &'static str,
    run: impl Future<Output = Result<(), E>> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = run.await {
            tracing::error!(service = name, error = %e, "service stopped with an error");
        }
    })
}

fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::from([127, 0, 0, 1]), addr.port())
    } else {
        addr
    }
}
