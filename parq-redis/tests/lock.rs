//! `RedisLock` against a running Redis, beyond the `AdmissionLock` conformance suite (which
//! `tests/conformance.rs` runs): its exact fence numbering, its clock (TTL expiry with a manual
//! clock and with a real wait, Redis's own key expiry), agreement with `MemoryLock` step by
//! step, and an unreachable Redis.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use parq_core::jiff::SignedDuration;
use parq_core::memory::MemoryLock;
use parq_core::{
    AdmissionLock, Clock, ConflictReason, Error, HeldClaim, LotId, ReservationId, SpotId, SystemClock,
};
use parq_redis::RedisLock;
use parq_redis::redis;

async fn lock() -> (RedisLock, Arc<parq_core::ManualClock>, String) {
    let prefix = prefix();
    let clock = manual_clock();
    let lock = RedisLock::new(pool().await, &prefix).unwrap().with_clock(clock.clone());
    (lock, clock, prefix)
}

fn is_claimed(e: &Error) -> bool {
    matches!(e, Error::Conflict { reason: ConflictReason::Claimed })
}

#[tokio::test]
async fn claim_conflict_and_back_to_back_windows() {
    let (lock, _clock, prefix) = lock().await;
    let (lot, a) = (LotId::new(), SpotId::new());
    let (t1, t2) = (ReservationId::new(), ReservationId::new());

    let g = lock.claim(&claim(lot, &[a], hours(1, 1), t1)).await.unwrap();
    assert_eq!((g.spot, g.fence), (a, 1));
    let e = lock.claim(&claim(lot, &[a], hours(1, 1), t2)).await.unwrap_err();
    assert!(is_claimed(&e), "{e:?}");
    // Overlapping on either side, or inside: refused.
    for w in [hours(0, 2), hours(1, 2), hours(0, 3)] {
        assert!(is_claimed(&lock.claim(&claim(lot, &[a], w, t2)).await.unwrap_err()), "{w}");
    }
    // Back to back on both sides: granted, with ever larger fences.
    let after = lock.claim(&claim(lot, &[a], hours(2, 1), t2)).await.unwrap();
    let before = lock.claim(&claim(lot, &[a], hours(0, 1), ReservationId::new())).await.unwrap();
    assert_eq!((after.fence, before.fence), (2, 3));
    // Another spot and another lot are independent.
    let other = SpotId::new();
    assert_eq!(lock.claim(&claim(lot, &[other], hours(1, 1), t2)).await.unwrap().fence, 1);
    assert_eq!(lock.claim(&claim(LotId::new(), &[a], hours(1, 1), t2)).await.unwrap().fence, 1);
    cleanup(lock.pool(), &prefix).await;
}

#[tokio::test]
async fn same_token_same_window_gets_the_same_grant() {
    let (lock, clock, prefix) = lock().await;
    let (lot, a, b) = (LotId::new(), SpotId::new(), SpotId::new());
    let t = ReservationId::new();
    let first = lock.claim(&claim(lot, &[a, b], hours(1, 1), t)).await.unwrap();
    clock.advance(SignedDuration::from_mins(5));
    let again = lock.claim(&claim(lot, &[a, b], hours(1, 1), t)).await.unwrap();
    assert_eq!(first, again);
    // No fence was spent on the retry.
    let next = lock.claim(&claim(lot, &[a], hours(5, 1), ReservationId::new())).await.unwrap();
    assert_eq!(next.fence, first.fence + 1);
    // The same token for another, overlapping window is not the same claim.
    assert!(is_claimed(&lock.claim(&claim(lot, &[a], hours(1, 2), t)).await.unwrap_err()));
    cleanup(lock.pool(), &prefix).await;
}

#[tokio::test]
async fn retain_and_release_act_only_for_the_token() {
    let (lock, clock, prefix) = lock().await;
    let (lot, a) = (LotId::new(), SpotId::new());
    let (mine, other) = (ReservationId::new(), ReservationId::new());
    lock.claim(&claim(lot, &[a], hours(1, 1), mine)).await.unwrap();

    assert!(!lock.release(lot, a, other).await.unwrap(), "a wrong token releases nothing");
    assert!(!lock.retain(lot, a, other, None).await.unwrap(), "a wrong token retains nothing");
    assert!(is_claimed(&lock.claim(&claim(lot, &[a], hours(1, 1), other)).await.unwrap_err()));

    // Retained until a later deadline: still held after the claim's own TTL.
    assert!(lock.retain(lot, a, mine, Some(t0() + SignedDuration::from_mins(30))).await.unwrap());
    clock.advance(SignedDuration::from_mins(20));
    assert!(is_claimed(&lock.claim(&claim(lot, &[a], hours(1, 1), other)).await.unwrap_err()));
    clock.advance(SignedDuration::from_mins(10));
    let g = lock.claim(&claim(lot, &[a], hours(1, 1), other)).await.unwrap();
    assert_eq!(g.fence, 2, "the lapsed claim was pruned and a new fence issued");

    // Confirmed: held until the window ends, whatever the TTL said.
    assert!(lock.retain(lot, a, other, None).await.unwrap());
    clock.advance(SignedDuration::from_mins(89)); // 08:59, the window is [09:00, 10:00)
    assert!(is_claimed(&lock.claim(&claim(lot, &[a], hours(1, 1), mine)).await.unwrap_err()));
    clock.set(t0() + SignedDuration::from_hours(2));
    assert!(lock.claim(&claim(lot, &[a], hours(1, 1), mine)).await.is_ok(), "free once the window ended");

    // Released by its token: free at once.
    let t3 = ReservationId::new();
    lock.claim(&claim(lot, &[a], hours(4, 1), t3)).await.unwrap();
    assert!(lock.release(lot, a, t3).await.unwrap());
    assert!(!lock.release(lot, a, t3).await.unwrap(), "released once");
    assert!(lock.claim(&claim(lot, &[a], hours(4, 1), ReservationId::new())).await.is_ok());
    cleanup(lock.pool(), &prefix).await;
}

#[tokio::test]
async fn rebuild_replaces_claims_and_raises_fences() {
    let (lock, _clock, prefix) = lock().await;
    let (lot, a, b, c) = (LotId::new(), SpotId::new(), SpotId::new(), SpotId::new());
    let (old_a, old_b) = (ReservationId::new(), ReservationId::new());
    lock.claim(&claim(lot, &[a], hours(1, 1), old_a)).await.unwrap();
    lock.claim(&claim(lot, &[b], hours(1, 1), old_b)).await.unwrap();
    let (held, confirmed) = (ReservationId::new(), ReservationId::new());
    let rebuilt = [
        HeldClaim {
            spot: c,
            window: hours(1, 1),
            token: held,
            until: Some(t0() + SignedDuration::from_mins(10)),
            fence: 41,
        },
        HeldClaim { spot: a, window: hours(3, 2), token: confirmed, until: None, fence: 7 },
    ];
    lock.rebuild(lot, &rebuilt).await.unwrap();

    // The old claims are gone (spots a and b are free for [09:00, 10:00)).
    let ga = lock.claim(&claim(lot, &[a], hours(1, 1), ReservationId::new())).await.unwrap();
    assert_eq!(ga.fence, 8, "a's counter was raised to the rebuilt fence");
    let gb = lock.claim(&claim(lot, &[b], hours(1, 1), ReservationId::new())).await.unwrap();
    assert_eq!(gb.fence, 2, "b's counter is never lowered");
    // The rebuilt ones hold, and keep their tokens.
    assert!(is_claimed(&lock.claim(&claim(lot, &[c], hours(1, 1), ReservationId::new())).await.unwrap_err()));
    assert!(is_claimed(&lock.claim(&claim(lot, &[a], hours(4, 1), ReservationId::new())).await.unwrap_err()));
    let g = lock.claim(&claim(lot, &[c], hours(2, 1), ReservationId::new())).await.unwrap();
    assert_eq!(g.fence, 42);
    assert!(lock.release(lot, c, held).await.unwrap());
    assert!(lock.retain(lot, a, confirmed, None).await.unwrap());
    // An empty rebuild clears the lot, fences stay.
    lock.rebuild(lot, &[]).await.unwrap();
    let g = lock.claim(&claim(lot, &[a], hours(4, 1), ReservationId::new())).await.unwrap();
    assert_eq!(g.fence, 9);
    cleanup(lock.pool(), &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_200_tasks_for_one_spot_one_winner() {
    let (lock, _clock, prefix) = lock().await;
    let lock = Arc::new(lock);
    let (lot, a) = (LotId::new(), SpotId::new());
    let barrier = Arc::new(tokio::sync::Barrier::new(200));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (lock, barrier) = (lock.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                lock.claim(&claim(lot, &[a], hours(1, 1), ReservationId::new())).await
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(g) => won.push(g),
            Err(e) => assert!(is_claimed(&e), "every loser is turned away as Claimed: {e:?}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one winner: {won:?}");
    assert_eq!(won[0].fence, 1);
    cleanup(lock.pool(), &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pooled_claims_take_each_candidate_once() {
    let (lock, _clock, prefix) = lock().await;
    let lock = Arc::new(lock);
    let lot = LotId::new();
    let spots: Vec<SpotId> = (0..4).map(|_| SpotId::new()).collect();
    // In order of preference.
    let g = lock.claim(&claim(lot, &spots, hours(1, 1), ReservationId::new())).await.unwrap();
    assert_eq!(g.spot, spots[0]);
    let g = lock.claim(&claim(lot, &spots, hours(1, 1), ReservationId::new())).await.unwrap();
    assert_eq!(g.spot, spots[1]);
    // A race for the rest: two winners, on the two remaining spots.
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (lock, spots) = (lock.clone(), spots.clone());
            tokio::spawn(
                async move { lock.claim(&claim(lot, &spots, hours(1, 1), ReservationId::new())).await },
            )
        })
        .collect();
    let mut won = HashSet::new();
    for t in tasks {
        if let Ok(g) = t.await.unwrap() {
            assert!(won.insert(g.spot), "one claim per spot");
        }
    }
    assert_eq!(won, HashSet::from([spots[2], spots[3]]));
    // Another window is free on every spot.
    let g = lock.claim(&claim(lot, &spots, hours(2, 1), ReservationId::new())).await.unwrap();
    assert_eq!((g.spot, g.fence), (spots[0], 2));
    cleanup(lock.pool(), &prefix).await;
}

#[tokio::test]
async fn ttl_expiry_is_real() {
    // The system clock and a real wait: a claim lapses after its TTL, Redis forgets it after.
    let prefix = prefix();
    let pool = pool().await;
    let lock = RedisLock::new(pool.clone(), &prefix).unwrap().with_clock(Arc::new(SystemClock));
    let (lot, a) = (LotId::new(), SpotId::new());
    let start = parq_core::jiff::Timestamp::now() + SignedDuration::from_hours(1);
    let window = parq_core::Window::starting_at(start, SignedDuration::from_hours(1)).unwrap();
    let mut first = claim(lot, &[a], window, ReservationId::new());
    first.ttl = SignedDuration::from_millis(300);
    let g1 = lock.claim(&first).await.unwrap();
    let mut second = claim(lot, &[a], window, ReservationId::new());
    assert!(is_claimed(&lock.claim(&second).await.unwrap_err()));

    // Redis itself expires the spot's keys a minute after the last deadline.
    let mut conn = pool.get().await.unwrap();
    let key = format!("parq:{{{prefix}:{lot}}}:lock:spot:{a}:claims");
    let pttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut *conn).await.unwrap();
    assert!((59_000..=60_300).contains(&pttl), "PTTL {pttl}");
    drop(conn);

    tokio::time::sleep(Duration::from_millis(400)).await;
    second.ttl = SignedDuration::from_secs(30);
    let g2 = lock.claim(&second).await.unwrap();
    assert_eq!(g2.spot, a);
    assert!(g2.fence > g1.fence, "the new claimant gets a larger fence");
    assert!(!lock.retain(lot, a, first.token, None).await.unwrap(), "the lapsed claim was pruned");
    cleanup(&pool, &prefix).await;
}

/// Random operations on `MemoryLock` (the reference) and `RedisLock` with one manual clock:
/// every answer, fences included, must be the same.
#[tokio::test]
async fn agrees_with_the_memory_lock() {
    let (redis_lock, clock, prefix) = lock().await;
    let memory = MemoryLock::new(clock.clone());
    let lots = [LotId::new(), LotId::new()];
    let spots: Vec<SpotId> = (0..3).map(|_| SpotId::new()).collect();
    // A token is a reservation to be: it always claims one window (the lock keeps one claim
    // per token and spot).
    let tokens: Vec<(ReservationId, parq_core::Window)> =
        (0..6).map(|i| (ReservationId::new(), hours(i % 4, 1 + i / 4))).collect();
    // A small deterministic generator (xorshift), so a failure replays.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for step in 0..1500 {
        let lot = lots[next(2) as usize];
        let spot = spots[next(3) as usize];
        let (token, window) = tokens[next(6) as usize];
        match next(10) {
            0..=4 => {
                let mut c = claim(lot, &spots[..1 + next(3) as usize], window, token);
                c.ttl = SignedDuration::from_mins(1 + next(20) as i64);
                let (m, r) = (memory.claim(&c).await, redis_lock.claim(&c).await);
                match (&m, &r) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "step {step}: claim {c:?}"),
                    (Err(a), Err(b)) => assert!(is_claimed(a) && is_claimed(b), "step {step}: {a:?} {b:?}"),
                    _ => panic!("step {step}: claim {c:?}: memory {m:?}, redis {r:?}"),
                }
            }
            5 | 6 => {
                let until = match next(3) {
                    0 => None,
                    _ => Some(clock.now() + SignedDuration::from_mins(next(40) as i64)),
                };
                let (m, r) = (
                    memory.retain(lot, spot, token, until).await.unwrap(),
                    redis_lock.retain(lot, spot, token, until).await.unwrap(),
                );
                assert_eq!(m, r, "step {step}: retain");
            }
            7 => {
                let (m, r) = (
                    memory.release(lot, spot, token).await.unwrap(),
                    redis_lock.release(lot, spot, token).await.unwrap(),
                );
                assert_eq!(m, r, "step {step}: release");
            }
            _ => clock.advance(SignedDuration::from_mins(next(8) as i64)),
        }
    }
    cleanup(redis_lock.pool(), &prefix).await;
}

#[tokio::test]
async fn an_unreachable_redis_is_a_retryable_unavailable() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let pool =
        parq_redis::pool::pool(&format!("redis://127.0.0.1:{port}"), 4, Duration::from_millis(200)).unwrap();
    let lock = RedisLock::new(pool, "t-unreachable").unwrap();
    let e = lock
        .claim(&claim(LotId::new(), &[SpotId::new()], hours(1, 1), ReservationId::new()))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
}
