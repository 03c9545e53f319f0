//! Helpers shared by the tests: a pool on the test Redis and a fresh key prefix per test.
#![allow(dead_code, missing_docs)]

use std::sync::Arc;

use parq_core::jiff::{SignedDuration, Timestamp};
use parq_core::{Claim, LotId, ReservationId, SpotId, Window};
use parq_redis::RedisPool;

pub const URL_VAR: &str = "PARQ_TEST_REDIS_URL";

/// The Redis under test: `PARQ_TEST_REDIS_URL`, by default `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A pool on `url`, checked with a PING; panics with a message naming the variable to set.
pub async fn pool_on(url: &str, size: u32) -> RedisPool {
    let manager = parq_redis::RedisManager::new(url)
        .unwrap_or_else(|e| panic!("{URL_VAR}={url} is not a Redis URL: {e}"));
    let pool = parq_redis::pool::builder(size, std::time::Duration::from_secs(2))
        .build(manager)
        .await
        .unwrap_or_else(|e| panic!("cannot reach Redis at {url}: {e}; start it or set {URL_VAR}"));
    let reached = async {
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        redis::cmd("PING").query_async::<String>(&mut *conn).await.map_err(|e| e.to_string())
    };
    if let Err(e) = reached.await {
        panic!("cannot reach Redis at {url}: {e}; start it or set {URL_VAR}");
    }
    pool
}

use parq_redis::redis;

/// A pool on the test Redis.
pub async fn pool() -> RedisPool {
    pool_on(&redis_url(), 64).await
}

/// A fresh key prefix, so tests never see one another's keys.
pub fn prefix() -> String {
    format!("t-{}", uuid::Uuid::now_v7())
}

/// Deletes every key under `prefix` (what a test leaves behind).
pub async fn cleanup(pool: &RedisPool, prefix: &str) {
    let Ok(mut conn) = pool.get().await else { return };
    let pattern = format!("parq:{{{prefix}*");
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut *conn)
            .await
        else {
            return;
        };
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("UNLINK").arg(&keys).query_async(&mut *conn).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

pub fn t0() -> Timestamp {
    parq_core::testing::epoch()
}

/// The window from `h` hours after [`t0`], lasting `len` hours.
pub fn hours(h: i64, len: i64) -> Window {
    Window::new(t0() + SignedDuration::from_hours(h), t0() + SignedDuration::from_hours(h + len)).unwrap()
}

pub fn claim(lot: LotId, candidates: &[SpotId], window: Window, token: ReservationId) -> Claim {
    Claim { lot, candidates: candidates.to_vec(), window, token, ttl: SignedDuration::from_mins(10) }
}

pub fn manual_clock() -> Arc<parq_core::ManualClock> {
    Arc::new(parq_core::ManualClock::new(t0()))
}

/// An adapter under test that deletes every key under its prefix when dropped, so the
/// conformance cases (which only get the port) leave nothing behind.
#[derive(Debug)]
pub struct Scoped<L> {
    pub inner: L,
    prefix: String,
}

impl<L> Scoped<L> {
    pub fn new(inner: L, prefix: String) -> Self {
        Self { inner, prefix }
    }
}

impl<L> Drop for Scoped<L> {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime: use a blocking connection of its own.
        let Ok(client) = redis::Client::open(redis_url()) else { return };
        let Ok(mut conn) = client.get_connection() else { return };
        let pattern = format!("parq:{{{}*", self.prefix);
        let mut cursor: u64 = 0;
        loop {
            let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn)
            else {
                return;
            };
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("UNLINK").arg(&keys).query(&mut conn);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

#[async_trait::async_trait]
impl<L: parq_core::AdmissionLock> parq_core::AdmissionLock for Scoped<L> {
    async fn claim(&self, claim: &Claim) -> parq_core::Result<parq_core::Granted> {
        self.inner.claim(claim).await
    }
    async fn retain(
        &self,
        lot: LotId,
        spot: SpotId,
        token: ReservationId,
        until: Option<Timestamp>,
    ) -> parq_core::Result<bool> {
        self.inner.retain(lot, spot, token, until).await
    }
    async fn release(&self, lot: LotId, spot: SpotId, token: ReservationId) -> parq_core::Result<bool> {
        self.inner.release(lot, spot, token).await
    }
    async fn rebuild(&self, lot: LotId, claims: &[parq_core::HeldClaim]) -> parq_core::Result<()> {
        self.inner.rebuild(lot, claims).await
    }
}

/// What the lock conformance macro calls for `RedisLock`: a lock under a fresh prefix, on the
/// system clock.
pub async fn make_redis_lock() -> Arc<parq_core::DynAdmissionLock> {
    let prefix = prefix();
    let lock = parq_redis::RedisLock::new(pool().await, &prefix).expect("a lock");
    Arc::new(Scoped::new(lock, prefix))
}

/// What the lock conformance macro calls for `FailoverLock`: a failover lock whose Redis was
/// rebuilt (from an empty store) and is trusted, under a fresh prefix. No checker runs in the
/// background, and a slow answer is not held against Redis, so it stays warm for the case.
pub async fn make_failover_lock() -> Arc<parq_core::DynAdmissionLock> {
    use parq_redis::{FailoverLock, Health, HealthConfig, RedisHealth, RedisLock};
    let prefix = prefix();
    let pool = pool().await;
    let lock = RedisLock::new(pool.clone(), &prefix).expect("a lock");
    let patient = HealthConfig {
        interval: std::time::Duration::from_millis(250),
        timeout: std::time::Duration::from_secs(5),
        slow: std::time::Duration::from_secs(5),
    };
    let health = RedisHealth::new(pool, &prefix, patient).expect("a checker");
    let failover = FailoverLock::new(lock, health.clone());
    failover.rebuild_from(&parq_core::memory::MemoryStore::new(), &[]).await.expect("a rebuild");
    assert_eq!(health.state(), Health::Warm, "trusted after the rebuild");
    Arc::new(Scoped::new(failover, prefix))
}

/// What the notifier conformance macro calls: a `RedisNotifier` under a fresh prefix.
pub async fn make_redis_notifier() -> Arc<parq_core::DynNotifier> {
    let client =
        redis::Client::open(redis_url()).unwrap_or_else(|e| panic!("{URL_VAR} is not a Redis URL: {e}"));
    let notifier = parq_redis::RedisNotifier::new(pool().await, client, &prefix(), Default::default())
        .expect("a notifier");
    Arc::new(notifier)
}
