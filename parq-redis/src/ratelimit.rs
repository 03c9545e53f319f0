//! `RedisRateLimiter`: rate limits that every replica shares, one Lua script per check.

use std::sync::LazyLock;
use std::time::Duration;

use parq_core::{Error, Result};
use redis::Script;

use crate::error::{Failure, pooled};
use crate::keys::Keys;
use crate::pool::RedisPool;

static RATE_LIMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/rate_limit.lua")));

/// How long one check waits for Redis by default: a rate limit must never slow a request
/// down, so a slow Redis counts as an unreachable one.
pub const RATE_LIMIT_TIMEOUT: Duration = Duration::from_millis(100);

/// A rate: `per_second` requests a second, with bursts of up to `burst` requests at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per second (at least 1).
    pub per_second: u32,
    /// Requests that may arrive at once (at least 1).
    pub burst: u32,
}

impl Rate {
    /// Microseconds between two requests at this rate.
    fn interval_us(self) -> u64 {
        (1_000_000 / u64::from(self.per_second.max(1))).max(1)
    }
}

/// Rate limits shared by every replica through Redis: a bucket per name (`ip:…`, `user:…`,
/// `key:…`), checked with one `EVALSHA` of `lua/rate_limit.lua`.
///
/// The script is GCRA (the generic cell rate algorithm): a bucket is one key holding its
/// theoretical arrival time, read and moved atomically, on Redis's clock (`TIME`), so replicas
/// with skewed clocks agree and the sum of the requests every replica lets through stays
/// within the limit. Keys are `parq:{<prefix>:rl:<bucket>}`: each bucket is its own hash tag,
/// so the buckets spread over a Redis Cluster's slots and each script call touches one slot.
/// A key expires as soon as its bucket is full again.
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    pool: RedisPool,
    keys: Keys,
    timeout: Duration,
}

impl RedisRateLimiter {
    /// A limiter on `pool` under the key prefix `prefix` (no braces or whitespace), waiting at
    /// most [`RATE_LIMIT_TIMEOUT`] for Redis.
    pub fn new(pool: RedisPool, prefix: &str) -> Result<Self> {
        Ok(Self { pool, keys: Keys::new(prefix)?, timeout: RATE_LIMIT_TIMEOUT })
    }

    /// How long one check waits for Redis before it fails with a retryable
    /// [`Unavailable`](Error::Unavailable).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// The key of `bucket`'s state.
    pub fn key(&self, bucket: &str) -> String {
        // Braces would end the hash tag early: they cannot be in a bucket's name.
        let bucket: String = bucket.chars().map(|c| if matches!(c, '{' | '}') { '_' } else { c }).collect();
        format!("parq:{{{}:rl:{bucket}}}", self.keys.prefix())
    }

    /// Takes one request from `bucket` at `rate`: `Ok(Ok(()))` when it is allowed,
    /// `Ok(Err(wait))` when it is not (with how long until it would be), `Err` when Redis
    /// cannot be asked (unreachable, slower than the timeout).
    pub async fn check(&self, bucket: &str, rate: Rate) -> Result<std::result::Result<(), Duration>> {
        let key = self.key(bucket);
        let (interval, burst) = (rate.interval_us(), rate.burst.max(1));
        let reply: Vec<i64> = pooled(&self.pool, self.timeout, async |conn| {
            RATE_LIMIT.key(&key).arg(interval).arg(burst).invoke_async(conn).await
        })
        .await?;
        match reply.as_slice() {
            [1, _] => Ok(Ok(())),
            [0, wait] => Ok(Err(Duration::from_micros(u64::try_from(*wait).unwrap_or(0).max(1)))),
            other => Err(Error::from(Failure::Reply(format!("rate_limit returned {other:?}")))),
        }
    }

    /// Loads the script into Redis (`SCRIPT LOAD`). Optional: a check whose script Redis does
    /// not know loads it and retries once.
    pub async fn load_scripts(&self) -> Result<()> {
        pooled(&self.pool, self.timeout, async |conn| RATE_LIMIT.prepare_invoke().load_async(conn).await)
            .await?;
        Ok(())
    }
}
