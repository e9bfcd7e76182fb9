//! Connections to a single Redis each used by one writer at a time, for transactions.
//!
//! A batch is written with `WATCH` of its tree's version, the reads, then `MULTI` … `EXEC`
//! (`tree_write.rs`): Redis runs the writes only if nobody wrote the version since the
//! `WATCH`. A `WATCH` belongs to the connection it was sent on, so a connection that other
//! writers share (the multiplexed one reads use) cannot carry one: each writer leases a
//! connection of its own for the length of one attempt. A lease dropped before it is
//! released (an error, a cancelled call) closes its connection, which may hold a `WATCH` or
//! an unread reply; the next lease opens a fresh one.

use std::{sync::Mutex, time::Duration};

use redis::{AsyncConnectionConfig, Client, aio::MultiplexedConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::StoreError;

/// Writers leasing a connection at once; more wait for one to be released.
const MAX_LEASES: usize = 32;

/// The leasable connections.
pub(crate) struct Exclusive {
    client: Client,
    config: AsyncConnectionConfig,
    idle: Mutex<Vec<MultiplexedConnection>>,
    leases: Semaphore,
}

/// One writer's connection, until [`Lease::release`] gives it back.
pub(crate) struct Lease<'a> {
    pool: &'a Exclusive,
    /// The connection, used by this lease only.
    pub(crate) connection: MultiplexedConnection,
    _permit: SemaphorePermit<'a>,
}

impl Exclusive {
    /// Connections to the Redis `client` names, opened when first needed.
    pub(crate) fn new(client: Client, connect: Duration, response: Duration) -> Self {
        Exclusive {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(connect))
                .set_response_timeout(Some(response)),
            idle: Mutex::new(Vec::new()),
            leases: Semaphore::new(MAX_LEASES),
        }
    }

    /// An idle connection, or a new one.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>, StoreError> {
        self.lease_with(true).await
    }

    /// A new connection, after an idle one failed: the server went away (a restart, a
    /// failover), so every idle connection is dropped with it.
    pub(crate) async fn lease_new(&self) -> Result<Lease<'_>, StoreError> {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        self.lease_with(false).await
    }

    async fn lease_with(&self, reuse: bool) -> Result<Lease<'_>, StoreError> {
        let permit =
            self.leases.acquire().await.map_err(|_| {
                StoreError::Unexpected("the writers' connections are closed".into())
            })?;
        let idle = reuse
            .then(|| self.idle.lock().ok().and_then(|mut idle| idle.pop()))
            .flatten();
        let connection = match idle {
            Some(connection) => connection,
            None => {
                self.client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?
            }
        };
        Ok(Lease {
            pool: self,
            connection,
            _permit: permit,
        })
    }
}

impl Lease<'_> {
    /// Gives the connection back for the next writer: only after a whole exchange (no
    /// `WATCH` left, no reply pending).
    pub(crate) fn release(self) {
        if let Ok(mut idle) = self.pool.idle.lock() {
            idle.push(self.connection);
        }
    }
}
