//! Redis connections that are never shared between two requests' commands in flight, and
//! never reused after a command that did not finish.
//!
//! In March 2023 a chat service showed users other users' conversation titles and payment
//! details: a request was cancelled after its command had been sent to Redis but before the
//! reply was read, the connection went back to the pool with that reply still unread, and the
//! *next* request on the connection read it as its own answer. The rule here removes that
//! failure by construction: a connection is leased to one command at a time, and the lease
//! returns it to the pool only when the command completed with a reply. A command that timed
//! out, failed, or whose future was dropped (client disconnect, request timeout, shutdown)
//! leaves the lease un-returned, and dropping it closes the connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, Pipeline};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("invalid Redis URL")]
    Url,
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Counters an operator (and the tests) can read.
#[derive(Debug, Default)]
pub struct PoolStats {
    opened: AtomicU64,
    reused: AtomicU64,
    discarded: AtomicU64,
    timeouts: AtomicU64,
    errors: AtomicU64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct PoolStatsSnapshot {
    /// Connections opened.
    pub opened_total: u64,
    /// Commands served by a connection that had completed its previous command.
    pub reused_total: u64,
    /// Connections closed because their command timed out, failed or was cancelled.
    pub discarded_total: u64,
    pub timeouts_total: u64,
    pub errors_total: u64,
}

impl PoolStats {
    pub fn snapshot(&self) -> PoolStatsSnapshot {
        PoolStatsSnapshot {
            opened_total: self.opened.load(Ordering::Relaxed),
            reused_total: self.reused.load(Ordering::Relaxed),
            discarded_total: self.discarded.load(Ordering::Relaxed),
            timeouts_total: self.timeouts.load(Ordering::Relaxed),
            errors_total: self.errors.load(Ordering::Relaxed),
        }
    }
}

pub struct RedisPool {
    client: Client,
    idle: std::sync::Mutex<Vec<MultiplexedConnection>>,
    permits: Arc<Semaphore>,
    timeout: Duration,
    stats: Arc<PoolStats>,
}

/// One connection, lent to one command. Returned to the pool only by [`Lease::release`].
struct Lease<'a> {
    conn: Option<MultiplexedConnection>,
    pool: &'a RedisPool,
    _permit: OwnedSemaphorePermit,
}

impl Lease<'_> {
    fn release(mut self) {
        if let Some(conn) = self.conn.take()
            && let Ok(mut idle) = self.pool.idle.lock()
        {
            idle.push(conn);
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.conn.take().is_some() {
            // Dropping the last handle ends the connection's driver task and closes the socket;
            // whatever reply may still arrive on it is read by nobody.
            self.pool.stats.discarded.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl RedisPool {
    /// No connection is opened until the first command.
    pub fn new(url: &str, timeout: Duration, size: usize) -> Result<Self, PoolError> {
        let client = Client::open(url).map_err(|_| PoolError::Url)?;
        Ok(RedisPool {
            client,
            idle: std::sync::Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
            timeout,
            stats: Arc::new(PoolStats::default()),
        })
    }

    pub fn stats(&self) -> PoolStatsSnapshot {
        self.stats.snapshot()
    }

    /// Idle connections ready for reuse.
    pub fn idle(&self) -> usize {
        self.idle.lock().map(|i| i.len()).unwrap_or(0)
    }

    async fn lease(&self) -> Result<Lease<'_>, PoolError> {
        let permit = tokio::time::timeout(self.timeout, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| PoolError::Timeout(self.timeout))?
            .map_err(|_| PoolError::Timeout(self.timeout))?;
        let idle = self.idle.lock().ok().and_then(|mut i| i.pop());
        let conn = match idle {
            Some(c) => {
                self.stats.reused.fetch_add(1, Ordering::Relaxed);
                c
            }
            None => {
                // Opening may take a few round trips (HELLO, CLIENT SETINFO): allow more than
                // one command's time.
                let open_timeout = self.timeout.saturating_mul(4).max(Duration::from_secs(1));
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(open_timeout))
                    .set_response_timeout(None);
                let conn = tokio::time::timeout(
                    open_timeout,
                    self.client
                        .get_multiplexed_async_connection_with_config(&config),
                )
                .await
                .map_err(|_| PoolError::Timeout(open_timeout))??;
                self.stats.opened.fetch_add(1, Ordering::Relaxed);
                conn
            }
        };
        Ok(Lease {
            conn: Some(conn),
            pool: self,
            _permit: permit,
        })
    }

    fn failed(&self, e: &PoolError) {
        match e {
            PoolError::Timeout(_) => self.stats.timeouts.fetch_add(1, Ordering::Relaxed),
            _ => self.stats.errors.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Runs a pipeline (use `.atomic()` for MULTI/EXEC) on a leased connection.
    pub async fn pipeline<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, PoolError> {
        let result = async {
            let mut lease = self.lease().await?;
            let Some(conn) = lease.conn.as_mut() else {
                return Err(PoolError::Timeout(self.timeout));
            };
            let value = tokio::time::timeout(self.timeout, pipe.query_async::<T>(conn))
                .await
                .map_err(|_| PoolError::Timeout(self.timeout))??;
            lease.release();
            Ok(value)
        }
        .await;
        if let Err(e) = &result {
            self.failed(e);
        }
        result
    }

    /// Runs one command on a leased connection.
    pub async fn cmd<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, PoolError> {
        let mut pipe = redis::pipe();
        pipe.add_command(cmd.clone());
        let (value,): (T,) = self.pipeline(&pipe).await?;
        Ok(value)
    }

    pub async fn ping(&self) -> Result<(), PoolError> {
        let pong: String = self.cmd(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(PoolError::Redis(redis::RedisError::from((
                redis::ErrorKind::Io,
                "unexpected PING reply",
            ))))
        }
    }
}
