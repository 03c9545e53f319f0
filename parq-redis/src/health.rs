//! `RedisHealth`: is Redis reachable, fast, and holding state rebuilt from the store?

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use parq_core::{Error, Result};
use tokio::sync::watch;

use crate::error::pooled;
use crate::keys::Keys;
use crate::pool::RedisPool;

/// What the health checker last saw of Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// No answer within the timeout (or a connection error). Also the state before the first
    /// check.
    Down,
    /// It answers, but slower than the threshold: route around it.
    Slow,
    /// It answers, but its state was not rebuilt from the store since it (re)started or since
    /// this process last lost it: rebuild, then [`RedisHealth::mark_warm`].
    Cold,
    /// It answers in time and holds rebuilt state: the admission lock may be trusted.
    Warm,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Down => "down",
            Self::Slow => "slow",
            Self::Cold => "cold",
            Self::Warm => "warm",
        })
    }
}

/// Timing of the health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Time between checks of the background task.
    pub interval: Duration,
    /// A check with no answer in this time reports [`Health::Down`].
    pub timeout: Duration,
    /// A check answered slower than this reports [`Health::Slow`].
    pub slow: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(250),
            timeout: Duration::from_millis(500),
            slow: Duration::from_millis(50),
        }
    }
}

/// Proof that a rebuild started, given to [`RedisHealth::mark_warm`] when it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "give it to mark_warm once the rebuild is done"]
pub struct RebuildTicket {
    id: String,
}

#[derive(Debug, Default)]
struct Probe {
    conn: Option<crate::pool::RedisConn>,
    /// The epoch marker this process trusts (the last one it saw while Redis was reachable).
    trusted: Option<String>,
    /// Redis was away since `trusted` was seen: holds went around it, so the marker no longer
    /// vouches for its state until a new one is written.
    lost: bool,
}

#[derive(Debug)]
struct Inner {
    pool: RedisPool,
    keys: Keys,
    config: HealthConfig,
    tx: watch::Sender<Health>,
    /// The last round trip, in microseconds (`u64::MAX` before the first answer).
    latency_us: AtomicU64,
    probe: tokio::sync::Mutex<Probe>,
    reported: Mutex<Option<Instant>>,
}

/// Watches Redis with a `PING` and a read of an epoch marker key (`parq:{<prefix>}:epoch`).
///
/// - No answer within [`HealthConfig::timeout`], or a connection error: [`Health::Down`].
/// - No marker, a marker of a rebuild still running, or the marker this process trusted before
///   it lost Redis: [`Health::Cold`]. A Redis that restarted empty has no marker; one that
///   came back from a pause still has it, but holds went around it meanwhile. The caller then
///   rebuilds the lock from the store ([`FailoverLock::rebuild_from`](crate::FailoverLock::rebuild_from)
///   does it all), between [`begin_rebuild`](Self::begin_rebuild) and
///   [`mark_warm`](Self::mark_warm).
/// - An answer slower than [`HealthConfig::slow`]: [`Health::Slow`] (no rebuild is needed
///   after it: the lock's state is advisory, and the store decides).
/// - Otherwise [`Health::Warm`]. A marker written by another replica's rebuild is trusted.
///
/// The state is published on a `watch` channel ([`subscribe`](Self::subscribe)) and read for
/// free with [`state`](Self::state). Cheap to clone; clones share the state.
#[derive(Debug, Clone)]
pub struct RedisHealth {
    inner: Arc<Inner>,
}

impl RedisHealth {
    /// A checker of the Redis behind `pool`, for the key prefix `prefix`. It starts
    /// [`Health::Down`]; run [`check`](Self::check) or [`spawn`](Self::spawn).
    pub fn new(pool: RedisPool, prefix: &str, config: HealthConfig) -> Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                keys: Keys::new(prefix)?,
                config,
                tx: watch::Sender::new(Health::Down),
                latency_us: AtomicU64::new(u64::MAX),
                probe: tokio::sync::Mutex::default(),
                reported: Mutex::default(),
            }),
        })
    }

    /// The state now (no I/O).
    pub fn state(&self) -> Health {
        *self.inner.tx.borrow()
    }

    /// Changes of the state.
    pub fn subscribe(&self) -> watch::Receiver<Health> {
        self.inner.tx.subscribe()
    }

    /// The round trip of the last answered check.
    pub fn latency(&self) -> Option<Duration> {
        match self.inner.latency_us.load(Ordering::Relaxed) {
            u64::MAX => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// The timing in use.
    pub fn config(&self) -> HealthConfig {
        self.inner.config
    }

    fn set(&self, h: Health) {
        self.inner.tx.send_if_modified(|s| std::mem::replace(s, h) != h);
    }

    /// Reports that a call to Redis just failed as unreachable: the state becomes
    /// [`Health::Down`] at once (and Redis must be rebuilt before it is trusted again), without
    /// waiting for the next check.
    pub fn report_unreachable(&self) {
        *self.inner.reported.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        self.set(Health::Down);
    }

    /// Checks Redis once, publishes and returns the state.
    pub async fn check(&self) -> Health {
        let inner = &self.inner;
        let mut probe = inner.probe.lock().await;
        if inner.reported.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take().is_some() {
            probe.lost = true;
        }
        let started = Instant::now();
        let answer = tokio::time::timeout(inner.config.timeout, async {
            if probe.conn.is_none() {
                probe.conn = Some(inner.pool.dedicated_connection().await?);
            }
            let conn = probe.conn.as_mut().expect("set above");
            if conn.is_cluster() {
                // Every master answers (the pipeline below reaches only the marker's).
                redis::cmd("PING").query_async::<()>(&mut **conn).await?;
            }
            let (_, marker): (String, Option<String>) =
                redis::pipe().cmd("PING").cmd("GET").arg(inner.keys.epoch()).query_async(conn).await?;
            Ok::<_, redis::RedisError>(marker)
        })
        .await;
        let state = match answer {
            Ok(Ok(marker)) => {
                let rtt = started.elapsed();
                inner.latency_us.store(rtt.as_micros().min(u64::MAX as u128 - 1) as u64, Ordering::Relaxed);
                match marker {
                    Some(m) if m.starts_with("warm:") => {
                        if probe.trusted.as_deref() != Some(m.as_str()) {
                            // A rebuild since we last looked (ours or another replica's).
                            probe.trusted = Some(m);
                            probe.lost = false;
                        }
                        if probe.lost {
                            Health::Cold
                        } else if rtt > inner.config.slow {
                            Health::Slow
                        } else {
                            Health::Warm
                        }
                    }
                    _ => Health::Cold,
                }
            }
            Ok(Err(e)) => {
                // Said once per outage: a refused certificate or password shows in the logs.
                if self.state() != Health::Down {
                    tracing::warn!(error = %e, "redis health check failed");
                } else {
                    tracing::debug!(error = %e, "redis health check failed");
                }
                if let Some(conn) = probe.conn.as_mut() {
                    conn.suspect_pool();
                }
                probe.conn = None;
                probe.lost = true;
                Health::Down
            }
            Err(_) => {
                // A connection that timed out may deliver the late answer to the next check.
                if let Some(conn) = probe.conn.as_mut() {
                    conn.suspect_pool();
                }
                probe.conn = None;
                probe.lost = true;
                Health::Down
            }
        };
        self.set(state);
        state
    }

    /// Runs [`check`](Self::check) every [`HealthConfig::interval`] on the tokio runtime, until
    /// every clone of this checker is dropped.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let interval = self.inner.config.interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                RedisHealth { inner }.check().await;
            }
        })
    }

    /// Starts a rebuild: writes a "rebuilding" marker (every replica then sees Redis
    /// [`Health::Cold`] until a rebuild finishes) and returns the ticket for
    /// [`mark_warm`](Self::mark_warm).
    pub async fn begin_rebuild(&self) -> Result<RebuildTicket> {
        let id = uuid::Uuid::now_v7().to_string();
        self.set_marker(|cmd| {
            cmd.cmd("SET").arg(self.inner.keys.epoch()).arg(format!("rebuilding:{id}")).ignore();
        })
        .await?;
        Ok(RebuildTicket { id })
    }

    /// Marks Redis warm after a rebuild that started with `ticket`. Fails (and Redis stays cold)
    /// when Redis restarted or another rebuild started since: rebuild again.
    pub async fn mark_warm(&self, ticket: RebuildTicket) -> Result<()> {
        static FINISH: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(include_str!("../lua/mark_warm.lua")));
        let warm = format!("warm:{}", ticket.id);
        let mut inv = FINISH.prepare_invoke();
        inv.key(self.inner.keys.epoch()).arg(format!("rebuilding:{}", ticket.id)).arg(&warm);
        let done: i64 =
            pooled(&self.inner.pool, self.inner.config.timeout, async |conn| inv.invoke_async(conn).await)
                .await?;
        if done != 1 {
            return Err(Error::unavailable("redis restarted or another rebuild began; rebuild again", None));
        }
        {
            let mut probe = self.inner.probe.lock().await;
            probe.trusted = Some(warm);
            probe.lost = false;
        }
        self.check().await;
        Ok(())
    }

    async fn set_marker(&self, f: impl FnOnce(&mut redis::Pipeline)) -> Result<()> {
        let mut pipe = redis::pipe();
        f(&mut pipe);
        pooled(&self.inner.pool, self.inner.config.timeout, async |conn| pipe.query_async::<()>(conn).await)
            .await?;
        Ok(())
    }
}
