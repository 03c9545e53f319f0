#![doc = include_str!("../README.md")]

mod error;
mod failover;
mod health;
mod keys;
mod lock;
mod notifier;
pub mod pool;
mod ratelimit;

pub use bb8_redis;
pub use redis;

pub use failover::FailoverLock;
pub use health::{Health, HealthConfig, RebuildTicket, RedisHealth};
pub use lock::{DEFAULT_TIMEOUT, RedisLock};
pub use notifier::{NotifierConfig, RedisNotifier};
pub use pool::{RedisConn, RedisManager, RedisPool};
pub use ratelimit::{RATE_LIMIT_TIMEOUT, Rate, RedisRateLimiter};
