//! The [`AdmissionLock`](crate::AdmissionLock) conformance cases. Each takes a fresh lock that
//! reads the system clock (lapsing is each adapter's own test, as it depends on the adapter's
//! clock).

use std::collections::HashSet;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::error::{ConflictReason, Error};
use crate::ids::{LotId, ReservationId, SpotId};
use crate::ports::lock::{Claim, DynAdmissionLock, Granted, HeldClaim};
use crate::time::Window;

type Lock = Arc<DynAdmissionLock>;

/// Claims whose deadlines are far enough ahead that no case waits for one to lapse.
fn claim(lot: LotId, spots: &[SpotId], window: Window) -> Claim {
    claim_as(lot, spots, window, ReservationId::new())
}

fn claim_as(lot: LotId, spots: &[SpotId], window: Window, token: ReservationId) -> Claim {
    Claim { lot, candidates: spots.to_vec(), window, token, ttl: SignedDuration::from_hours(1) }
}

fn window(h: i64, len: i64) -> Window {
    // Relative to now, so a lock that reads its own clock treats the windows as current.
    let base = Timestamp::now().as_second() / 3600 * 3600;
    let start = Timestamp::from_second(base + h * 3600).expect("in range");
    Window::new(start, start + SignedDuration::from_hours(len)).expect("positive")
}

fn claimed<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::Conflict { reason: ConflictReason::Claimed }) => {}
        other => panic!("{what}: expected a Claimed conflict, got {other:?}"),
    }
}

/// Overlapping claims on a spot conflict (on either side, inside, around); back-to-back
/// windows on both sides and other spots and lots do not; the same token claiming the same
/// window again gets the same grant, and the same token is refused another overlapping window;
/// fences grow per spot.
pub async fn lock_claims_conflict_and_repeat(lock: Lock) {
    let (lot, a, b) = (LotId::new(), SpotId::new(), SpotId::new());
    let first = claim(lot, &[a], window(2, 2));
    let g1 = lock.claim(&first).await.unwrap();
    assert_eq!(g1.spot, a);
    assert!(g1.fence > 0, "fences start above zero");
    assert_eq!(lock.claim(&first).await.unwrap(), g1, "the same token is granted the same claim");
    for (h, len) in [(2, 2), (1, 2), (3, 2), (1, 4), (3, 1)] {
        claimed(lock.claim(&claim(lot, &[a], window(h, len))).await, &format!("+{h}h/{len}h"));
    }
    claimed(
        lock.claim(&claim_as(lot, &[a], window(2, 3), first.token)).await,
        "the same token for another overlapping window",
    );
    let after = lock.claim(&claim(lot, &[a], window(4, 1))).await.expect("back to back after");
    let before = lock.claim(&claim(lot, &[a], window(1, 1))).await.expect("back to back before");
    assert!(after.fence > g1.fence && before.fence > after.fence, "fences grow per spot");
    lock.claim(&claim(lot, &[b], window(2, 2))).await.expect("another spot");
    lock.claim(&claim(LotId::new(), &[a], window(2, 2))).await.expect("another lot");
}

/// A pooled claim takes the first free candidate, in order; a race for the rest takes each
/// remaining candidate once; another window is free on every candidate again.
pub async fn lock_pooled_claims_take_the_first_free(lock: Lock) {
    let lot = LotId::new();
    let spots: Vec<SpotId> = (0..4).map(|_| SpotId::new()).collect();
    let w = window(1, 1);
    let mut first = Vec::new();
    for _ in 0..2 {
        first.push(lock.claim(&claim(lot, &spots, w)).await.unwrap());
    }
    assert_eq!(first.iter().map(|g| g.spot).collect::<Vec<_>>(), spots[..2], "in order of preference");
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (lock, spots) = (lock.clone(), spots.clone());
            tokio::spawn(async move { lock.claim(&claim(lot, &spots, w)).await })
        })
        .collect();
    let mut won = HashSet::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(g) => assert!(won.insert(g.spot), "one claim per spot"),
            Err(e) => claimed(Err::<(), _>(e), "a loser of the pooled race"),
        }
    }
    assert_eq!(won, HashSet::from([spots[2], spots[3]]));
    claimed(lock.claim(&claim(lot, &spots, w)).await, "every candidate is taken");
    let g = lock.claim(&claim(lot, &spots, window(2, 1))).await.unwrap();
    assert_eq!(g.spot, spots[0], "another window is free on the first candidate");
    assert!(g.fence > first[0].fence);
}

/// Retain and release act only for the token that holds the claim, and a claim is released
/// once.
pub async fn lock_retain_and_release_check_the_token(lock: Lock) {
    let (lot, spot) = (LotId::new(), SpotId::new());
    let c = claim(lot, &[spot], window(1, 1));
    lock.claim(&c).await.unwrap();
    let stranger = ReservationId::new();
    assert!(!lock.release(lot, spot, stranger).await.unwrap(), "a wrong token releases nothing");
    assert!(!lock.retain(lot, spot, stranger, None).await.unwrap(), "a wrong token retains nothing");
    claimed(lock.claim(&claim(lot, &[spot], window(1, 1))).await, "still claimed");
    assert!(lock.retain(lot, spot, c.token, None).await.unwrap(), "kept until the window ends");
    assert!(
        lock.retain(lot, spot, c.token, Some(Timestamp::now() + SignedDuration::from_hours(2)))
            .await
            .unwrap()
    );
    assert!(lock.release(lot, spot, c.token).await.unwrap());
    assert!(!lock.release(lot, spot, c.token).await.unwrap(), "released once");
    assert!(!lock.retain(lot, spot, c.token, None).await.unwrap(), "a released claim is not retained");
    lock.claim(&claim(lot, &[spot], window(1, 1))).await.expect("free after release");
}

/// A rebuild replaces the lot's claims (the rebuilt ones keep their tokens), and never lets a
/// spot's fences go backwards, whether the spot is rebuilt or not; an empty rebuild clears the
/// lot.
pub async fn lock_rebuild_replaces_claims_and_raises_fences(lock: Lock) {
    let (lot, a, b, c) = (LotId::new(), SpotId::new(), SpotId::new(), SpotId::new());
    let ga = lock.claim(&claim(lot, &[a], window(1, 1))).await.unwrap();
    let gc = lock.claim(&claim(lot, &[c], window(1, 1))).await.unwrap();
    let (held, confirmed) = (ReservationId::new(), ReservationId::new());
    let rebuilt = [
        HeldClaim {
            spot: b,
            window: window(1, 1),
            token: held,
            until: Some(Timestamp::now() + SignedDuration::from_mins(30)),
            fence: 41,
        },
        HeldClaim { spot: a, window: window(3, 2), token: confirmed, until: None, fence: ga.fence + 6 },
    ];
    lock.rebuild(lot, &rebuilt).await.unwrap();
    let a2 = lock.claim(&claim(lot, &[a], window(1, 1))).await.expect("the old claim on a was dropped");
    assert!(a2.fence > ga.fence + 6, "a's counter was raised to the rebuilt fence");
    let c2 = lock.claim(&claim(lot, &[c], window(1, 1))).await.expect("the old claim on c was dropped");
    assert!(c2.fence > gc.fence, "c's counter is never lowered");
    claimed(lock.claim(&claim(lot, &[b], window(1, 1))).await, "the rebuilt hold on b");
    claimed(lock.claim(&claim(lot, &[a], window(4, 1))).await, "the rebuilt confirmed claim on a");
    let g = lock.claim(&claim(lot, &[b], window(2, 1))).await.unwrap();
    assert!(g.fence > 41, "fence {} must exceed the rebuilt 41", g.fence);
    assert!(lock.release(lot, b, held).await.unwrap(), "the rebuilt claim keeps its token");
    assert!(lock.retain(lot, a, confirmed, None).await.unwrap());
    lock.rebuild(lot, &[]).await.unwrap();
    let g = lock.claim(&claim(lot, &[a], window(4, 1))).await.expect("an empty rebuild clears the lot");
    assert!(g.fence > a2.fence, "fences stay");
}

/// 64 claimants race for one spot and window: exactly one is granted, every other is turned
/// away as `Claimed`.
pub async fn lock_race_64_claimants_one_grant(lock: Lock) {
    let (lot, spot) = (LotId::new(), SpotId::new());
    let w = window(1, 2);
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (lock, barrier) = (lock.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                lock.claim(&claim(lot, &[spot], w)).await
            })
        })
        .collect();
    let mut granted: Vec<Granted> = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(g) => granted.push(g),
            Err(e) => claimed(Err::<(), _>(e), "a loser of the race"),
        }
    }
    assert_eq!(granted.len(), 1, "exactly one grant: {granted:?}");
}
