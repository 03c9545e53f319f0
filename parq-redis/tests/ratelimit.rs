//! `RedisRateLimiter` on the Redis of `PARQ_TEST_REDIS_URL`: a bucket lets a burst through,
//! refills at its rate on Redis's clock, is shared by every limiter on the prefix, and fails as
//! unavailable when Redis does not answer.

mod common;

use std::time::Duration;

use parq_redis::redis;
use parq_redis::{Rate, RedisRateLimiter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_lets_its_burst_through_then_refills_at_its_rate() {
    let pool = common::pool().await;
    let prefix = common::prefix();
    let limiter = RedisRateLimiter::new(pool.clone(), &prefix).unwrap();
    limiter.load_scripts().await.unwrap();
    let rate = Rate { per_second: 10, burst: 5 };
    for i in 0..5 {
        assert_eq!(limiter.check("ip:203.0.113.1", rate).await.unwrap(), Ok(()), "request {i}");
    }
    let wait = limiter.check("ip:203.0.113.1", rate).await.unwrap().unwrap_err();
    assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "{wait:?}");
    assert_eq!(limiter.check("ip:203.0.113.2", rate).await.unwrap(), Ok(()), "buckets are per name");
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    assert_eq!(limiter.check("ip:203.0.113.1", rate).await.unwrap(), Ok(()), "one more after the wait");
    assert!(limiter.check("ip:203.0.113.1", rate).await.unwrap().is_err(), "and only one");

    // The key carries its own hash tag, and lives as long as the bucket is not full.
    let key = limiter.key("ip:203.0.113.1");
    assert_eq!(key, format!("parq:{{{prefix}:rl:ip:203.0.113.1}}"));
    assert_eq!(limiter.key("user:{x}"), format!("parq:{{{prefix}:rl:user:_x_}}"), "no brace breaks the tag");
    let mut conn = pool.get().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut *conn).await.unwrap();
    assert!(ttl > 0 && ttl <= 600, "{ttl}");
    drop(conn);
    common::cleanup(&pool, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limiters_on_one_prefix_share_each_bucket_and_not_across_prefixes() {
    let pool = common::pool().await;
    let (p1, p2) = (common::prefix(), common::prefix());
    let a = RedisRateLimiter::new(pool.clone(), &p1).unwrap();
    let b = RedisRateLimiter::new(common::pool().await, &p1).unwrap();
    let other = RedisRateLimiter::new(pool.clone(), &p2).unwrap();
    let rate = Rate { per_second: 1, burst: 20 };
    let started = std::time::Instant::now();
    let mut allowed = 0;
    for i in 0..40 {
        let l = if i % 2 == 0 { &a } else { &b };
        if l.check("user:u1", rate).await.unwrap().is_ok() {
            allowed += 1;
        }
    }
    // 20 at once, and no more than refilled meanwhile (one a second).
    let refill = started.elapsed().as_secs() + 1;
    assert!(allowed >= 20 && allowed <= 20 + refill, "{allowed} allowed");
    assert_eq!(other.check("user:u1", rate).await.unwrap(), Ok(()), "another prefix, another bucket");
    common::cleanup(&pool, &p1).await;
    common::cleanup(&pool, &p2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_a_retryable_unavailable() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let pool =
        parq_redis::pool::pool(&format!("redis://127.0.0.1:{port}"), 4, Duration::from_secs(2)).unwrap();
    let limiter = RedisRateLimiter::new(pool, "nowhere").unwrap().with_timeout(Duration::from_millis(200));
    let e = limiter.check("ip:1", Rate { per_second: 1, burst: 1 }).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(RedisRateLimiter::new(common::pool().await, "bad{prefix").is_err());
}
