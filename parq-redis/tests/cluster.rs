//! Redis Cluster (`redis+cluster://`), against three masters the test starts on its own ports
//! and stops by pid: the lock's and the notifier's conformance cases, the keys of many lots
//! spread over every master, a race for one spot through an engine on the running PostgreSQL
//! with exactly one winner in the store's table, and a killed master: the failover lock then
//! routes around Redis to the store, with no double booking.

mod common;
mod servers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parq_core::testing::{self, Fixture};
use parq_core::{AdmissionLock, DynReservationStore, Engine, LotId, ReservationId, SpotId, UserId};
use parq_postgres::PgStore;
use parq_postgres::deadpool_postgres::{Manager, Pool};
use parq_postgres::tokio_postgres::{Config, NoTls};
use parq_redis::pool::{self, TlsFiles};
use parq_redis::{
    FailoverLock, Health, HealthConfig, RedisHealth, RedisLock, RedisManager, RedisNotifier, RedisPool,
};
use servers::Cluster;

fn cluster_pool(cluster: &Cluster) -> (RedisPool, Vec<parq_redis::redis::Client>) {
    let manager = RedisManager::open(&cluster.url(), &TlsFiles::default()).unwrap();
    assert!(manager.cluster_client().is_some(), "redis+cluster:// makes a cluster manager");
    let nodes = manager.node_clients().to_vec();
    assert_eq!(nodes.len(), 3);
    (pool::builder(8, Duration::from_secs(2)).build_unchecked(manager), nodes)
}

async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lock_and_the_notifier_pass_their_suites_on_a_cluster() {
    let cluster = Cluster::start();
    let (pool, nodes) = cluster_pool(&cluster);

    let lock = || async {
        Arc::new(RedisLock::new(pool.clone(), &common::prefix()).unwrap()) as Arc<parq_core::DynAdmissionLock>
    };
    testing::lock::lock_claims_conflict_and_repeat(lock().await).await;
    testing::lock::lock_pooled_claims_take_the_first_free(lock().await).await;
    testing::lock::lock_retain_and_release_check_the_token(lock().await).await;
    testing::lock::lock_rebuild_replaces_claims_and_raises_fences(lock().await).await;
    testing::lock::lock_race_64_claimants_one_grant(lock().await).await;

    // The failover lock, trusted after a rebuild: its marker and the lots' keys live on
    // different slots.
    let failover = || async {
        let prefix = common::prefix();
        let patient = HealthConfig {
            interval: Duration::from_millis(250),
            timeout: Duration::from_secs(5),
            slow: Duration::from_secs(5),
        };
        let health = RedisHealth::new(pool.clone(), &prefix, patient).unwrap();
        let f = FailoverLock::new(RedisLock::new(pool.clone(), &prefix).unwrap(), health.clone());
        f.rebuild_from(&parq_core::memory::MemoryStore::new(), &[]).await.unwrap();
        assert_eq!(health.state(), Health::Warm);
        Arc::new(f) as Arc<parq_core::DynAdmissionLock>
    };
    testing::lock::lock_claims_conflict_and_repeat(failover().await).await;
    testing::lock::lock_race_64_claimants_one_grant(failover().await).await;
    testing::lock::lock_rebuild_replaces_claims_and_raises_fences(failover().await).await;

    let notifier = || {
        Arc::new(
            RedisNotifier::on_nodes(pool.clone(), nodes.clone(), &common::prefix(), Default::default())
                .unwrap(),
        ) as Arc<parq_core::DynNotifier>
    };
    testing::notifier::notifier_delivers_in_order_per_lot(notifier()).await;
    testing::notifier::notifier_later_subscribers_see_later_events(notifier()).await;
    testing::notifier::notifier_every_subscriber_gets_every_event(notifier()).await;

    // Lots hash to different slots: claims on many lots land on every master.
    let lock = RedisLock::new(pool.clone(), &common::prefix()).unwrap();
    for _ in 0..30 {
        let c = common::claim(LotId::new(), &[SpotId::new()], common::hours(1, 1), ReservationId::new());
        lock.claim(&c).await.unwrap();
    }
    let keys = cluster.keys_per_node();
    assert!(keys.iter().all(|k| *k > 0), "every master holds some lots' keys: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_winner_per_spot_on_a_cluster_and_the_store_decides_when_a_master_dies() {
    let url = std::env::var("PARQ_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let config: Config = url.parse().expect("PARQ_TEST_PG_URL is a PostgreSQL URL");
    let schema = format!("parq_t_{}", uuid::Uuid::now_v7().simple());
    let pg = Pool::builder(Manager::new(config.clone(), NoTls)).max_size(16).build().unwrap();
    let store = PgStore::new(pg, schema.clone());
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {url} ({e}); set PARQ_TEST_PG_URL"));
    let store: Arc<DynReservationStore> = Arc::new(store);

    let mut cluster = Cluster::start();
    let (pool, _) = cluster_pool(&cluster);
    let f = Fixture::new(store.clone()).await;
    let prefix = common::prefix();
    let health_config = HealthConfig {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(300),
        slow: Duration::from_millis(250),
    };
    let health = RedisHealth::new(pool.clone(), &prefix, health_config).unwrap();
    let lock = RedisLock::new(pool.clone(), &prefix)
        .unwrap()
        .with_clock(f.clock.clone())
        .with_timeout(Duration::from_millis(300));
    let failover = Arc::new(FailoverLock::new(lock.clone(), health.clone()));
    failover.rebuild_from(&*store, &[f.lot.id]).await.unwrap();
    let checker = health.spawn();
    until("the cluster to be warm", Duration::from_secs(10), || health.state() == Health::Warm).await;
    let engine = Engine::builder(store.clone(), f.gateway.clone())
        .clock(f.clock.clone())
        .lock(failover.clone())
        .build();

    // 32 drivers race for one spot and hour: one wins, through the lock.
    let race = |spot: usize, h: i64| {
        let (engine, f) = (engine.clone(), f.clone());
        async move {
            let window = f.window(h, 1);
            let tries: Vec<_> = (0..32)
                .map(|_| {
                    let (engine, f) = (engine.clone(), f.clone());
                    tokio::spawn(
                        async move { engine.hold(&f.named(UserId::new(), spot, window), None).await },
                    )
                })
                .collect();
            let mut won = Vec::new();
            for t in tries {
                match t.await.unwrap() {
                    Ok(r) => won.push(r.id),
                    Err(e) => assert!(e.is_conflict(), "a loser is refused as a conflict: {e:?}"),
                }
            }
            won
        }
    };
    let first = race(0, 10).await;
    assert_eq!(first.len(), 1, "one winner with the cluster up");
    // The lock saw the race: a new claim on that hour is refused by Redis itself.
    let probe = common::claim(f.lot.id, &[f.spots[0].id], f.window(10, 1), ReservationId::new());
    assert!(lock.claim(&probe).await.unwrap_err().is_conflict());

    // Kill the master that holds the lot's keys.
    let owner = cluster.owner_of(&format!("parq:{{{prefix}:{}}}:lock:fences", f.lot.id));
    cluster.nodes[owner].kill();
    let second = race(1, 20).await;
    assert_eq!(second.len(), 1, "one winner with the lot's master dead: the store decides");
    until("the lock to stop trusting the cluster", Duration::from_secs(10), || {
        health.state() != Health::Warm
    })
    .await;
    let third = race(1, 20).await;
    assert!(third.is_empty(), "the hour is taken, whatever Redis says");
    let fourth = race(2, 30).await;
    assert_eq!(fourth.len(), 1);
    assert_ne!(health.state(), Health::Warm, "a cluster missing a master is not trusted");

    // The store's own table: exactly the three winners, no overlap on a spot.
    let (client, conn) = config.connect(NoTls).await.unwrap();
    tokio::spawn(conn);
    let live: Vec<uuid::Uuid> = client
        .query(
            &format!(
                "SELECT id FROM {schema}.reservations
                  WHERE state IN ('held','pending_payment','confirmed','checked_in') ORDER BY id"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut winners: Vec<uuid::Uuid> =
        first.iter().chain(&second).chain(&fourth).map(|id| *id.as_uuid()).collect();
    winners.sort();
    assert_eq!(live, winners, "the table holds exactly the winners");
    let overlaps: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM {schema}.reservations a JOIN {schema}.reservations b
                   ON a.spot_id = b.spot_id AND a.id < b.id AND a.during && b.during
                 WHERE a.state IN ('held','pending_payment','confirmed','checked_in')
                   AND b.state IN ('held','pending_payment','confirmed','checked_in')"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(overlaps, 0, "no double booking in PostgreSQL's table");
    checker.abort();
    client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
}
