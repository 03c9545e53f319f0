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
