//! Rate limits: one bucket per client address, per user and per API key.
//!
//! [`Limits`] checks them on Redis when `limits_url` names one, so every replica shares each
//! bucket (one atomic script per check, on Redis's clock), and in this process's own
//! [`Limiter`]s otherwise. When Redis does not answer within a short timeout, the check falls
//! back to the process's buckets at once (requests are never held up by the limits), Redis is
//! left alone for a moment, then tried again: the limits go back to Redis as soon as it
//! answers. `/readyz` says which buckets are in use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parq_redis::{Rate, RedisRateLimiter};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A family of token buckets that refill at `rate` per second up to `burst` tokens, in
/// shards by key so that callers rarely wait on each other.
#[derive(Debug)]
pub struct Limiter {
    rate: f64,
    burst: f64,
    shards: Box<[Mutex<HashMap<String, Bucket>>]>,
    hasher: std::hash::RandomState,
}

/// Most buckets a shard keeps before full ones are forgotten.
const MAX_BUCKETS: usize = 100_000 / SHARDS;
const SHARDS: usize = 16;

impl Limiter {
    /// `rate` requests per second, bursts of `burst`.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// Takes a token from `key`'s bucket, or says how long until one is there.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        use std::hash::BuildHasher;
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % self.shards.len()];
        let mut buckets = shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < burst);
        }
        let b = match buckets.get_mut(key) {
            Some(b) => b,
            None => buckets.entry(key.to_owned()).or_insert(Bucket { tokens: self.burst, last: now }),
        };
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }
}

/// Which limit a check is against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Per client address (`rate_ip`).
    Ip,
    /// Per user (`rate_user`).
    User,
    /// Per API key (`rate_key`).
    Key,
}

/// How long Redis is left alone after it failed a check, before the next check tries it.
const RETRY_REDIS_AFTER: Duration = Duration::from_secs(1);

/// The server's rate limits: on Redis when configured, else (and while Redis is away) in this
/// process. See the [module docs](self).
#[derive(Debug)]
pub struct Limits {
    ip: (Limiter, Rate),
    user: (Limiter, Rate),
    key: (Limiter, Rate),
    shared: Option<Shared>,
}

#[derive(Debug)]
struct Shared {
    redis: RedisRateLimiter,
    /// Whether the last check on Redis failed (the limits are per process meanwhile).
    down: AtomicBool,
    /// When Redis may be tried again, in milliseconds since `epoch`.
    retry_at_ms: AtomicU64,
    epoch: Instant,
    /// Why the last check on Redis failed.
    error: Mutex<Option<String>>,
}

/// What `/readyz` says of the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsHealth {
    /// `redis` when shared, `memory` when per process by configuration.
    pub adapter: &'static str,
    /// Whether the configured buckets answer.
    pub up: bool,
    /// Whether the checks fall back to this process's buckets (Redis does not answer).
    pub fallback: bool,
    /// Why Redis does not answer.
    pub error: Option<String>,
}

impl Limits {
    /// Limits of `ip`, `user` and `key` requests per second, each bucket holding `burst_secs`
    /// seconds of requests; shared through `redis` when given.
    pub fn new(ip: u32, user: u32, key: u32, burst_secs: u32, redis: Option<RedisRateLimiter>) -> Self {
        let make = |rate: u32| {
            let burst = rate.saturating_mul(burst_secs).max(1);
            (Limiter::new(rate, burst), Rate { per_second: rate.max(1), burst })
        };
        Self {
            ip: make(ip),
            user: make(user),
            key: make(key),
            shared: redis.map(|redis| Shared {
                redis,
                down: AtomicBool::new(false),
                retry_at_ms: AtomicU64::new(0),
                epoch: Instant::now(),
                error: Mutex::new(None),
            }),
        }
    }

    /// Takes one request from `bucket`'s limit of `kind`, or says how long until there is room.
    pub async fn check(&self, kind: Kind, bucket: &str) -> Result<(), Duration> {
        let (local, rate) = match kind {
            Kind::Ip => &self.ip,
            Kind::User => &self.user,
            Kind::Key => &self.key,
        };
        if let Some(shared) = &self.shared {
            let now_ms = shared.epoch.elapsed().as_millis() as u64;
            let retry_ms = now_ms + RETRY_REDIS_AFTER.as_millis() as u64;
            let retry_at = shared.retry_at_ms.load(Ordering::Relaxed);
            // While Redis is away, one check a moment tries it again; the others do not wait.
            let ask = !shared.down.load(Ordering::Relaxed)
                || (now_ms >= retry_at
                    && shared
                        .retry_at_ms
                        .compare_exchange(retry_at, retry_ms, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok());
            if ask {
                match shared.redis.check(bucket, *rate).await {
                    Ok(decision) => {
                        if shared.down.swap(false, Ordering::Relaxed) {
                            tracing::warn!("rate limits are shared through Redis again");
                            *shared.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                        }
                        return decision;
                    }
                    Err(e) => {
                        shared.retry_at_ms.store(retry_ms, Ordering::Relaxed);
                        if !shared.down.swap(true, Ordering::Relaxed) {
                            tracing::warn!(error = %e, "Redis does not answer: rate limits are per replica until it does");
                        }
                        *shared.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                            Some(e.to_string());
                    }
                }
            }
        }
        local.check(bucket)
    }

    /// Whether the limits are shared, and whether they fall back to this process's buckets.
    pub fn health(&self) -> LimitsHealth {
        match &self.shared {
            None => LimitsHealth { adapter: "memory", up: true, fallback: false, error: None },
            Some(s) => {
                let down = s.down.load(Ordering::Relaxed);
                LimitsHealth {
                    adapter: "redis",
                    up: !down,
                    fallback: down,
                    error: s.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
                }
            }
        }
    }

    /// Asks Redis once (a check of a bucket of its own), so that `/readyz` reports a Redis that
    /// came back even when no request came meanwhile. Nothing without Redis.
    pub async fn probe(&self) {
        if let Some(shared) = self.shared.as_ref().filter(|s| s.down.load(Ordering::Relaxed)) {
            shared.retry_at_ms.store(0, Ordering::Relaxed);
            let _ = self.check(Kind::Ip, "probe:readiness").await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_and_refills() {
        let l = Limiter::new(2, 3);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check_at("a", t).is_ok());
        }
        let wait = l.check_at("a", t).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        assert!(l.check_at("b", t).is_ok(), "buckets are per key");
        assert!(l.check_at("a", t + Duration::from_millis(500)).is_ok());
    }
}

#[cfg(test)]
mod limits_tests {
    use super::*;

    #[tokio::test]
    async fn each_kind_has_its_own_rate_and_buckets_in_memory() {
        let l = Limits::new(3, 2, 1, 2, None);
        for (kind, bucket, burst) in
            [(Kind::Ip, "ip:a", 6), (Kind::User, "user:a", 4), (Kind::Key, "key:a", 2)]
        {
            for i in 0..burst {
                assert!(l.check(kind, bucket).await.is_ok(), "{kind:?} {i}");
            }
            assert!(l.check(kind, bucket).await.is_err(), "{kind:?} past its burst");
            assert!(l.check(kind, &format!("{bucket}2")).await.is_ok(), "{kind:?}: another bucket");
        }
        assert_eq!(l.health(), LimitsHealth { adapter: "memory", up: true, fallback: false, error: None });
    }
}
