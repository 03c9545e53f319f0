//! The engine over `MemoryStore` with `RedisLock` and `RedisNotifier`: fences, events.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use parq_core::jiff::SignedDuration;
use parq_core::memory::MemoryStore;
use parq_core::testing::Fixture;
use parq_core::{
    AdmissionLock, DynReservationStore, Engine, Error, EventKind, Notifier, ReservationState as S, StateSet,
    Update, UserId,
};
use parq_redis::{NotifierConfig, RedisLock, RedisNotifier};

async fn fixture() -> Fixture {
    Fixture::new(Arc::new(MemoryStore::new()) as Arc<DynReservationStore>).await
}

fn engine_with(f: &Fixture, lock: RedisLock) -> Engine {
    Engine::builder(f.store.clone(), f.gateway.clone())
        .clock(f.clock.clone())
        .lock(Arc::new(lock.with_clock(f.clock.clone())))
        .build()
}

#[tokio::test]
async fn a_stale_lock_fence_never_lowers_the_stores_fence() {
    let f = fixture().await;
    let pool = pool().await;
    let (p1, p2) = (prefix(), prefix());
    let engine = engine_with(&f, RedisLock::new(pool.clone(), &p1).unwrap());
    let spot = 0;
    let w = f.window(2, 1);

    // Three holds on one spot through the lock, each lapsing: the store's fence climbs to 3.
    let mut last = 0;
    for _ in 0..3 {
        let r = engine.hold(&f.named(UserId::new(), spot, w), None).await.unwrap();
        assert!(r.fence > last);
        last = r.fence;
        f.advance_mins(11);
    }
    assert_eq!(last, 3);

    // A Redis that lost everything (a fresh prefix: its counters restart at 1) issues fence 1;
    // the store still assigns more than its own last fence.
    let fresh = RedisLock::new(pool.clone(), &p2).unwrap().with_clock(f.clock.clone());
    let engine2 = engine_with(&f, fresh.clone());
    let r = engine2.hold(&f.named(UserId::new(), spot, w), None).await.unwrap();
    assert_eq!(r.state, S::Held);
    assert!(r.fence > last, "store fence {} must exceed {last}", r.fence);
    // The lock's own number for that claim was lower, and is now stale.
    let probe = fresh
        .claim(&claim(f.lot.id, &[f.spots[spot].id], w, r.id))
        .await
        .expect("the same token and window get the same grant");
    assert!(probe.fence < r.fence);

    // A transition presenting the lock's (old) fence is refused; the current one passes.
    let mut u = Update::new(&r, StateSet::of(&[S::Held]), S::Cancelled, EventKind::Cancelled);
    u.fence = probe.fence;
    match f.store.update(u, engine2.now()).await {
        Err(Error::StaleFence { presented, current, .. }) => {
            assert_eq!((presented, current), (probe.fence, r.fence))
        }
        other => panic!("expected StaleFence, got {other:?}"),
    }
    // After an extension (which bumps the fence), the fence read before it is stale too.
    let extended = engine2.extend(r.id, r.user, w.end() + SignedDuration::from_hours(1)).await.unwrap();
    assert!(extended.fence > r.fence);
    let u = Update::new(&r, StateSet::of(&[S::Held]), S::Cancelled, EventKind::Cancelled);
    assert!(matches!(f.store.update(u, engine2.now()).await, Err(Error::StaleFence { .. })));
    cleanup(&pool, &p1).await;
    cleanup(&pool, &p2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losers_are_turned_away_by_the_lock_and_the_store_agrees() {
    let f = fixture().await;
    let pool = pool().await;
    let p = prefix();
    let engine = engine_with(&f, RedisLock::new(pool.clone(), &p).unwrap());
    let w = f.window(3, 2);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (engine, spec) = (engine.clone(), f.named(UserId::new(), 1, w));
            tokio::spawn(async move { engine.hold(&spec, None).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert!(e.is_conflict(), "{e:?}"),
        }
    }
    assert_eq!(won, 1);
    let live = f.store.live_in_lot(f.lot.id, &w, engine.now()).await.unwrap();
    assert_eq!(live.len(), 1);
    cleanup(&pool, &p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_cross_processes_and_watch_sees_them_all() {
    let f = fixture().await;
    let pool = pool().await;
    let p = prefix();
    let client = parq_redis::redis::Client::open(redis_url()).unwrap();
    let notifier =
        Arc::new(RedisNotifier::new(pool.clone(), client.clone(), &p, NotifierConfig::default()).unwrap());
    // Two "processes": each engine has its own notifier instance on the same Redis.
    let other = Arc::new(RedisNotifier::new(pool.clone(), client, &p, NotifierConfig::default()).unwrap());
    let publisher = Engine::builder(f.store.clone(), f.gateway.clone())
        .clock(f.clock.clone())
        .notifier(notifier.clone())
        .build();
    let watcher = Engine::builder(f.store.clone(), f.gateway.clone())
        .clock(f.clock.clone())
        .notifier(other.clone())
        .build();

    let mut every_lot = other.subscribe(None).await.unwrap();
    let mut watch = watcher.watch(f.lot.id, 0).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(publisher.hold(&f.named(UserId::new(), i, f.window(1, 1)), None).await.unwrap().id);
    }
    publisher.cancel(ids[0], f.store.get(ids[0]).await.unwrap().user).await.unwrap();
    for seq in 1..=5u64 {
        let e = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(e.seq, seq);
        let live =
            tokio::time::timeout(Duration::from_secs(5), every_lot.next()).await.unwrap().unwrap().unwrap();
        assert_eq!((live.lot, live.seq), (f.lot.id, seq));
    }
    // Another lot's events are not on this lot's channel.
    let (lot2, spots2) = parq_core::testing::sample_lot(f.operator.id, "North", f.lot.location);
    publisher.put_lot(&lot2).await.unwrap();
    for s in &spots2 {
        publisher.put_spot(s).await.unwrap();
    }
    let spec = parq_core::HoldSpec {
        user: UserId::new(),
        lot: lot2.id,
        choice: parq_core::SpotChoice::Spot { spot: spots2[0].id },
        window: f.window(1, 1),
    };
    publisher.hold(&spec, None).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), every_lot.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((e.lot, e.seq), (lot2.id, 1));
    assert!(tokio::time::timeout(Duration::from_millis(200), watch.next()).await.is_err());
    cleanup(&pool, &p).await;
}
