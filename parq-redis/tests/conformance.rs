//! The conformance suites of parq-core against the Redis adapters: `RedisLock` and
//! `FailoverLock` (trusted, after a rebuild) run the admission-lock cases, `RedisNotifier` the
//! notifier cases, each under its own key prefix on the Redis named by `PARQ_TEST_REDIS_URL`.

mod common;

mod redis_lock {
    parq_core::lock_conformance!(super::common::make_redis_lock());
}

mod failover_lock {
    parq_core::lock_conformance!(super::common::make_failover_lock());
}

mod redis_notifier {
    parq_core::notifier_conformance!(super::common::make_redis_notifier());
}
