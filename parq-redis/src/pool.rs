//! The connection pool: bb8 over multiplexed connections that are tested on checkout only
//! after a failure.
//!
//! A multiplexed connection never reconnects by itself: once Redis restarts, every connection
//! the pool holds is dead. Testing each checkout with a `PING` would cost a round trip on
//! every command; never testing leaves one dead connection per pool slot to be found by a
//! failing command, one at a time (with 32 slots, the admission lock stayed cold for seconds
//! after Redis came back). Here every connection remembers how many failures the pool had seen
//! when it was last known good; a checkout tests it only when a failure happened since, and a
//! connection whose command failed as dead is discarded when it returns to the pool. So after
//! a restart the first caller that finds a dead connection makes every other one prove itself
//! once (or be replaced), and the pool is healthy again within that caller's next checkout.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bb8_redis::bb8;
use parq_core::{Error, Result};
use redis::aio::MultiplexedConnection;
use redis::{Client, IntoConnectionInfo, RedisError};

/// A pool of Redis connections as [`RedisLock`](crate::RedisLock),
/// [`RedisHealth`](crate::RedisHealth) and [`RedisNotifier`](crate::RedisNotifier) take it.
pub type RedisPool = bb8::Pool<RedisManager>;

/// Makes and checks the pool's connections (see the [module docs](self)).
#[derive(Clone)]
pub struct RedisManager {
    client: Client,
    failures: Arc<AtomicU64>,
    probe_timeout: Duration,
}

impl fmt::Debug for RedisManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisManager")
            .field("failures", &self.failures.load(Ordering::Relaxed))
            .field("probe_timeout", &self.probe_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisManager {
    /// A manager for the Redis at `info` (a `redis://` or `rediss://` URL, or connection info).
    pub fn new(info: impl IntoConnectionInfo) -> redis::RedisResult<Self> {
        Ok(Self::from_client(Client::open(info)?))
    }

    /// A manager over a client made by the caller (for TLS settings, say).
    pub fn from_client(client: Client) -> Self {
        Self { client, failures: Arc::default(), probe_timeout: Duration::from_millis(500) }
    }

    /// How long the test of a suspect connection may take before it is discarded (500 ms by
    /// default).
    pub fn with_probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// The client connections are made from.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The failures seen so far by connections of this manager.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// A pooled connection: derefs to the multiplexed connection.
pub struct RedisConn {
    conn: MultiplexedConnection,
    /// The pool's failure count when this connection was last known good.
    good_at: u64,
    broken: bool,
    failures: Arc<AtomicU64>,
}

impl fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConn").field("good_at", &self.good_at).field("broken", &self.broken).finish()
    }
}

impl RedisConn {
    /// Records that a command on this connection failed with `e`. When the failure says the
    /// connection itself is gone, the connection is discarded on its return to the pool and
    /// every other connection of the pool is tested at its next checkout.
    pub fn saw(&mut self, e: &RedisError) {
        if is_dead(e) {
            self.broken = true;
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Makes every connection of the pool prove itself (one `PING`) at its next checkout, as
    /// after a failure, without discarding this one.
    pub fn suspect_pool(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a command on it failed as dead.
    pub fn is_broken(&self) -> bool {
        self.broken
    }
}

/// Whether `e` means the connection is gone (as opposed to a refused command).
pub(crate) fn is_dead(e: &RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error() || e.is_connection_refusal() || e.is_timeout()
}

impl Deref for RedisConn {
    type Target = MultiplexedConnection;

    fn deref(&self) -> &MultiplexedConnection {
        &self.conn
    }
}

impl DerefMut for RedisConn {
    fn deref_mut(&mut self) -> &mut MultiplexedConnection {
        &mut self.conn
    }
}

impl redis::aio::ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        self.conn.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        self.conn.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

impl bb8::ManageConnection for RedisManager {
    type Connection = RedisConn;
    type Error = RedisError;

    async fn connect(&self) -> Result<RedisConn, RedisError> {
        let good_at = self.failures.load(Ordering::Relaxed);
        let conn = self.client.get_multiplexed_async_connection().await?;
        Ok(RedisConn { conn, good_at, broken: false, failures: self.failures.clone() })
    }

    async fn is_valid(&self, conn: &mut RedisConn) -> Result<(), RedisError> {
        let failures = self.failures.load(Ordering::Relaxed);
        if conn.broken {
            return Err(RedisError::from((redis::ErrorKind::Io, "the connection failed")));
        }
        if conn.good_at >= failures {
            return Ok(());
        }
        match tokio::time::timeout(self.probe_timeout, redis::cmd("PING").query_async::<()>(&mut conn.conn))
            .await
        {
            Ok(Ok(())) => {
                conn.good_at = failures;
                Ok(())
            }
            Ok(Err(e)) => {
                conn.broken = true;
                Err(e)
            }
            Err(_) => {
                conn.broken = true;
                Err(RedisError::from((redis::ErrorKind::Io, "no answer to PING in time")))
            }
        }
    }

    fn has_broken(&self, conn: &mut RedisConn) -> bool {
        conn.broken
    }
}

/// A pool of at most `max_size` connections to the Redis at `url`, tested on checkout only
/// after a failure, waiting at most `connect_timeout` for a connection.
pub fn pool(url: &str, max_size: u32, connect_timeout: Duration) -> Result<RedisPool> {
    let manager = RedisManager::new(url)
        .map_err(|e| Error::invalid("redis_url", format!("is not a usable Redis URL: {:?}", e.kind())))?;
    Ok(builder(max_size, connect_timeout).build_unchecked(manager))
}

/// The pool settings [`pool`] uses, for a manager of the caller's.
pub fn builder(max_size: u32, connect_timeout: Duration) -> bb8::Builder<RedisManager> {
    bb8::Pool::builder()
        .max_size(max_size)
        // Free: a connection is only probed after a failure (see `RedisManager::is_valid`).
        .test_on_check_out(true)
        .connection_timeout(connect_timeout)
        .retry_connection(false)
}
