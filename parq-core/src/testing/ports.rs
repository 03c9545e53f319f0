//! Conformance cases for the admission lock and the notifier. Each takes a fresh instance.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use jiff::{SignedDuration, Timestamp};

use super::epoch;
use crate::error::{ConflictReason, Error};
use crate::ids::{LotId, ReservationId, SpotId, UserId};
use crate::ports::lock::{Claim, DynAdmissionLock, HeldClaim};
use crate::ports::notifier::DynNotifier;
use crate::reservation::{Event, EventKind, ReservationState};
use crate::time::Window;

type Lock = Arc<DynAdmissionLock>;

/// Claims whose deadlines are far enough ahead that no case waits for one to lapse (lapsing
/// is each adapter's own test, as it depends on the adapter's clock).
fn claim(lot: LotId, spots: &[SpotId], window: Window) -> Claim {
    Claim {
        lot,
        candidates: spots.to_vec(),
        window,
        token: ReservationId::new(),
        ttl: SignedDuration::from_hours(1),
    }
}

fn window(h: i64, len: i64) -> Window {
    // Relative to now, so a lock that reads its own clock treats the windows as current.
    let base = Timestamp::now().as_second() / 3600 * 3600;
    let start = Timestamp::from_second(base + h * 3600).expect("in range");
    Window::new(start, start + SignedDuration::from_hours(len)).expect("positive")
}

/// Overlapping claims on a spot conflict; back-to-back windows and other spots do not; the
/// same token claiming again gets the same grant; fences grow per spot.
pub async fn lock_claims_conflict_and_repeat(lock: Lock) {
    let (lot, a, b) = (LotId::new(), SpotId::new(), SpotId::new());
    let first = claim(lot, &[a], window(1, 2));
    let g1 = lock.claim(&first).await.unwrap();
    assert_eq!(g1.spot, a);
    assert_eq!(lock.claim(&first).await.unwrap(), g1, "the same token is granted the same claim");
    match lock.claim(&claim(lot, &[a], window(2, 2))).await {
        Err(Error::Conflict { reason: ConflictReason::Claimed }) => {}
        other => panic!("expected Claimed, got {other:?}"),
    }
    let g2 = lock.claim(&claim(lot, &[a], window(3, 1))).await.expect("back to back");
    assert!(g2.fence > g1.fence, "fences grow per spot");
    lock.claim(&claim(lot, &[b], window(1, 2))).await.expect("another spot");
    lock.claim(&claim(LotId::new(), &[a], window(1, 2))).await.expect("another lot");
}

/// A pooled claim takes the first free candidate, in order.
pub async fn lock_pooled_claims_take_the_first_free(lock: Lock) {
    let lot = LotId::new();
    let spots: Vec<SpotId> = (0..3).map(|_| SpotId::new()).collect();
    let w = window(1, 1);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(lock.claim(&claim(lot, &spots, w)).await.unwrap().spot);
    }
    assert_eq!(got, spots, "in order of preference");
    assert!(matches!(lock.claim(&claim(lot, &spots, w)).await, Err(Error::Conflict { .. })));
}

/// Retain and release act only for the token that holds the claim.
pub async fn lock_retain_and_release_check_the_token(lock: Lock) {
    let (lot, spot) = (LotId::new(), SpotId::new());
    let c = claim(lot, &[spot], window(1, 1));
    lock.claim(&c).await.unwrap();
    let stranger = ReservationId::new();
    assert!(!lock.release(lot, spot, stranger).await.unwrap());
    assert!(!lock.retain(lot, spot, stranger, None).await.unwrap());
    assert!(matches!(lock.claim(&claim(lot, &[spot], window(1, 1))).await, Err(Error::Conflict { .. })));
    assert!(lock.retain(lot, spot, c.token, None).await.unwrap(), "kept until the window ends");
    assert!(lock.release(lot, spot, c.token).await.unwrap());
    lock.claim(&claim(lot, &[spot], window(1, 1))).await.expect("free after release");
}

/// A rebuild replaces the lot's claims and never lets fences go backwards.
pub async fn lock_rebuild_replaces_claims_and_raises_fences(lock: Lock) {
    let (lot, a, b) = (LotId::new(), SpotId::new(), SpotId::new());
    lock.claim(&claim(lot, &[a], window(1, 1))).await.unwrap();
    let kept =
        HeldClaim { spot: b, window: window(1, 1), token: ReservationId::new(), until: None, fence: 41 };
    lock.rebuild(lot, std::slice::from_ref(&kept)).await.unwrap();
    lock.claim(&claim(lot, &[a], window(1, 1))).await.expect("the old claim on a was dropped");
    assert!(matches!(lock.claim(&claim(lot, &[b], window(1, 1))).await, Err(Error::Conflict { .. })));
    let g = lock.claim(&claim(lot, &[b], window(2, 1))).await.unwrap();
    assert!(g.fence > 41, "fence {} must exceed the rebuilt 41", g.fence);
}

/// 64 claimants race for one spot and window: exactly one is granted.
pub async fn lock_race_64_claimants_one_grant(lock: Lock) {
    let (lot, spot) = (LotId::new(), SpotId::new());
    let w = window(1, 2);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let lock = lock.clone();
            tokio::spawn(async move { lock.claim(&claim(lot, &[spot], w)).await })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => granted += 1,
            Err(Error::Conflict { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(granted, 1);
}

fn event(lot: LotId, seq: u64) -> Event {
    let w = Window::new(epoch(), epoch() + SignedDuration::from_hours(1)).expect("positive");
    Event {
        lot,
        seq,
        at: epoch(),
        kind: EventKind::Held,
        reservation: ReservationId::new(),
        spot: SpotId::new(),
        user: UserId::new(),
        window: w,
        state: ReservationState::Held,
    }
}

async fn next(s: &mut crate::EventStream) -> Event {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("an event arrives in time")
        .expect("the stream stays open")
        .expect("no error")
}

/// Subscribers of a lot get its events in order, and only its; a subscriber of every lot gets
/// all of them.
pub async fn notifier_delivers_in_order_per_lot(notifier: Arc<DynNotifier>) {
    let (a, b) = (LotId::new(), LotId::new());
    let mut only_a = notifier.subscribe(Some(a)).await.unwrap();
    let mut all = notifier.subscribe(None).await.unwrap();
    let events = vec![event(a, 1), event(b, 1), event(a, 2), event(a, 3)];
    notifier.publish(&events[..2]).await.unwrap();
    notifier.publish(&events[2..]).await.unwrap();
    for seq in 1..=3 {
        let e = next(&mut only_a).await;
        assert_eq!((e.lot, e.seq), (a, seq));
    }
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next(&mut all).await);
    }
    assert_eq!(seen, events);
    let lots: HashSet<LotId> = seen.iter().map(|e| e.lot).collect();
    assert_eq!(lots.len(), 2);
}

/// Publishing with nobody listening succeeds; a later subscriber sees only later events.
pub async fn notifier_later_subscribers_see_later_events(notifier: Arc<DynNotifier>) {
    let lot = LotId::new();
    notifier.publish(&[event(lot, 1)]).await.unwrap();
    let mut s = notifier.subscribe(Some(lot)).await.unwrap();
    notifier.publish(&[event(lot, 2)]).await.unwrap();
    assert_eq!(next(&mut s).await.seq, 2);
}

/// Expands one `#[tokio::test]` per admission-lock case, each calling `$make` (an async
/// expression returning a fresh `Arc<DynAdmissionLock>`).
#[macro_export]
macro_rules! lock_conformance {
    ($make:expr) => {
        $crate::lock_conformance!(@cases $make;
            lock_claims_conflict_and_repeat,
            lock_pooled_claims_take_the_first_free,
            lock_retain_and_release_check_the_token,
            lock_rebuild_replaces_claims_and_raises_fences,
            lock_race_64_claimants_one_grant,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::testing::ports::$case($make.await).await;
            }
        )*
    };
}

/// Expands one `#[tokio::test]` per notifier case, each calling `$make` (an async expression
/// returning a fresh `Arc<DynNotifier>`).
#[macro_export]
macro_rules! notifier_conformance {
    ($make:expr) => {
        $crate::notifier_conformance!(@cases $make;
            notifier_delivers_in_order_per_lot,
            notifier_later_subscribers_see_later_events,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::testing::ports::$case($make.await).await;
            }
        )*
    };
}
