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
//!
//! [`RedisManager::open`] reads the URLs ParQ accepts: `redis://` (one server), `rediss://`
//! (one server over TLS, with the CA and client certificate of [`TlsFiles`]) and
//! `redis+cluster://host:port[,host:port…]` (Redis Cluster: each pooled connection is a
//! cluster connection that follows the slots, reconnects to the nodes and retries on
//! `MOVED`/`ASK`). The lock's keys carry one hash tag per lot, so every script runs on one
//! slot.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bb8_redis::bb8;
use parq_core::{Error, Result};
use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, IntoConnectionInfo, RedisError};

/// A pool of Redis connections as [`RedisLock`](crate::RedisLock),
/// [`RedisHealth`](crate::RedisHealth) and [`RedisNotifier`](crate::RedisNotifier) take it.
pub type RedisPool = bb8::Pool<RedisManager>;

/// Makes and checks the pool's connections (see the [module docs](self)).
#[derive(Clone)]
pub struct RedisManager {
    /// The server's client; for a cluster, one client per seed node.
    clients: Vec<Client>,
    cluster: Option<ClusterClient>,
    failures: Arc<AtomicU64>,
    probe_timeout: Duration,
}

/// The PEM files of TLS to Redis (`rediss://`): the CA that signed the server's certificate
/// (else Mozilla's root certificates, `webpki-roots`), and a client certificate with its key for a server that
/// requires one (`tls-auth-clients yes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate(s).
    pub ca: Option<PathBuf>,
    /// The client certificate (chain).
    pub cert: Option<PathBuf>,
    /// The client certificate's private key.
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }

    fn certificates(&self) -> Result<redis::TlsCertificates> {
        let read = |what: &'static str, path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| Error::invalid(what, format!("cannot read {}: {e}", path.display())))
        };
        let client_tls = match (&self.cert, &self.key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read("redis_cert_file", cert)?,
                client_key: read("redis_key_file", key)?,
            }),
            _ => {
                return Err(Error::invalid(
                    "redis_cert_file",
                    "a client certificate needs its key: give both files or neither",
                ));
            }
        };
        let root_cert = self.ca.as_ref().map(|ca| read("redis_ca_file", ca)).transpose()?;
        Ok(redis::TlsCertificates { client_tls, root_cert })
    }
}

/// Makes rustls use the *ring* provider for Redis's TLS connections, unless the process chose
/// one already (the redis crate builds its rustls configuration with the process default).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The seed nodes of a `redis+cluster://[user:password@]host:port[,host:port…]` URL, as
/// `redis://` URLs (with the credentials), or `None` for another scheme.
pub fn cluster_nodes(url: &str) -> Option<Result<Vec<String>>> {
    let rest = url.strip_prefix("redis+cluster://")?;
    let rest = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{auth}{h}"))
        .collect();
    if nodes.is_empty() {
        return Some(Err(Error::invalid(
            "redis_url",
            "redis+cluster:// needs at least one node, as in redis+cluster://10.0.0.1:7000,10.0.0.2:7000",
        )));
    }
    Some(Ok(nodes))
}

fn url_error(e: &RedisError) -> Error {
    // The detail may quote the URL, which may hold a password: only the kind is said.
    Error::invalid("redis_url", format!("is not a usable Redis URL: {:?}", e.kind()))
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
        let info = info.into_connection_info()?;
        if matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
            install_crypto_provider();
        }
        Ok(Self::from_client(Client::open(info)?))
    }

    /// A manager over a client made by the caller (for TLS settings, say).
    pub fn from_client(client: Client) -> Self {
        Self {
            clients: vec![client],
            cluster: None,
            failures: Arc::default(),
            probe_timeout: Duration::from_millis(500),
        }
    }

    /// A manager over a Redis Cluster client made by the caller; `nodes` are clients of its
    /// seed nodes (for pub/sub subscriptions, which need a plain connection to one node).
    pub fn from_cluster(cluster: ClusterClient, nodes: Vec<Client>) -> Self {
        Self {
            clients: nodes,
            cluster: Some(cluster),
            failures: Arc::default(),
            probe_timeout: Duration::from_millis(500),
        }
    }

    /// A manager for `url`: `redis://`, `rediss://` (TLS per `tls`; without a CA file, the
    /// Mozilla's root certificates) or `redis+cluster://host:port[,host:port…]`. Connects to nothing.
    /// Errors never repeat the URL.
    pub fn open(url: &str, tls: &TlsFiles) -> Result<Self> {
        if let Some(nodes) = cluster_nodes(url) {
            let nodes = nodes?;
            let clients = nodes
                .iter()
                .map(|n| Client::open(n.as_str()).map_err(|e| url_error(&e)))
                .collect::<Result<Vec<_>>>()?;
            let cluster = ClusterClient::builder(nodes)
                // A request that finds a node away is retried a little (a failover, a MOVED),
                // not for seconds: the caller's timeout and the store's failover take over.
                .retries(2)
                .min_retry_wait(20)
                .max_retry_wait(200)
                .connection_timeout(Duration::from_secs(2))
                .build()
                .map_err(|e| url_error(&e))?;
            return Ok(Self::from_cluster(cluster, clients));
        }
        if url.starts_with("rediss://") {
            install_crypto_provider();
            if !tls.is_empty() {
                let info = url.into_connection_info().map_err(|e| url_error(&e))?;
                let client = Client::build_with_tls(info, tls.certificates()?).map_err(|e| {
                    Error::invalid("redis_ca_file", format!("the TLS files cannot be used: {e}"))
                })?;
                return Ok(Self::from_client(client));
            }
        }
        Self::new(url).map_err(|e| url_error(&e))
    }

    /// How long the test of a suspect connection may take before it is discarded (500 ms by
    /// default).
    pub fn with_probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// The client connections are made from (for a cluster, the first seed node's).
    pub fn client(&self) -> &Client {
        &self.clients[0]
    }

    /// The clients of the server, or of each seed node of a cluster: what
    /// [`RedisNotifier::on_nodes`](crate::RedisNotifier::on_nodes) subscribes with.
    pub fn node_clients(&self) -> &[Client] {
        &self.clients
    }

    /// The cluster client, when this is a Redis Cluster.
    pub fn cluster_client(&self) -> Option<&ClusterClient> {
        self.cluster.as_ref()
    }

    /// The failures seen so far by connections of this manager.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// A connection to one Redis, or to a Redis Cluster: either way multiplexed, and a
/// [`ConnectionLike`](redis::aio::ConnectionLike) to run commands, pipelines and scripts on.
#[derive(Clone)]
pub enum Connection {
    /// One server.
    Single(MultiplexedConnection),
    /// A cluster: commands go to the node of their key's slot.
    Cluster(ClusterConnection),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "Connection::Single",
            Self::Cluster(_) => "Connection::Cluster",
        })
    }
}

impl Connection {
    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A pooled connection: derefs to the [`Connection`].
pub struct RedisConn {
    conn: Connection,
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
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl DerefMut for RedisConn {
    fn deref_mut(&mut self) -> &mut Connection {
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
        let conn = match &self.cluster {
            Some(cluster) => Connection::Cluster(cluster.get_async_connection().await?),
            None => Connection::Single(self.clients[0].get_multiplexed_async_connection().await?),
        };
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
    let manager = RedisManager::new(url).map_err(|e| url_error(&e))?;
    Ok(builder(max_size, connect_timeout).build_unchecked(manager))
}

/// As [`pool`], for any URL [`RedisManager::open`] reads (TLS, Redis Cluster). Connects to
/// nothing until a connection is needed.
pub fn open(url: &str, tls: &TlsFiles, max_size: u32, connect_timeout: Duration) -> Result<RedisPool> {
    Ok(builder(max_size, connect_timeout).build_unchecked(RedisManager::open(url, tls)?))
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
