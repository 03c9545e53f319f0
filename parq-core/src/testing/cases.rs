//! The conformance cases. Each takes a fresh, empty store.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::StreamExt;
use jiff::SignedDuration;

use super::{Fixture, epoch, sample_lot};
use crate::catalog::{GeoBox, GeoPoint, Operator, SpotFilter};
use crate::engine::{HoldSpec, SpotChoice};
use crate::error::{ConflictReason, Error};
use crate::ids::{LotId, OperatorId, ReservationId, SpotId, UserId};
use crate::memory::GatewayOp;
use crate::money::Money;
use crate::pass::{
    Decision, Direction, GatePolicy, GateVerifier, OfflineScan, ReentryPolicy, Refusal, RevocationReason,
    Scan, ScanConflict,
};
use crate::ports::payment::PaymentGateway;
use crate::ports::store::{DynReservationStore, Update};
use crate::reservation::{EventKind, ReservationState as S, StateSet};

type Store = Arc<DynReservationStore>;

fn assert_conflict<T: std::fmt::Debug>(r: crate::Result<T>) {
    match r {
        Err(Error::Conflict { .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// Operators, lots and spots round-trip; unknown ones are `NotFound`.
pub async fn catalog_round_trip(store: Store) {
    let f = Fixture::new(store).await;
    assert_eq!(f.store.operator(f.operator.id).await.unwrap(), f.operator);
    assert_eq!(f.store.lot(f.lot.id).await.unwrap(), f.lot);
    let spots = f.store.spots(f.lot.id).await.unwrap();
    assert_eq!(spots, f.spots, "spots come back in label order, unchanged");
    let here = f.lot.location.bounding_box(500.0);
    assert_eq!(
        f.store.lots_in(&here).await.unwrap().iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![f.lot.id]
    );
    let elsewhere = GeoBox { min_lat: 0.0, max_lat: 1.0, min_lon: 0.0, max_lon: 1.0 };
    assert!(f.store.lots_in(&elsewhere).await.unwrap().is_empty());
    assert!(matches!(f.store.lot(LotId::new()).await, Err(Error::NotFound { .. })));
    assert!(matches!(f.store.operator(OperatorId::new()).await, Err(Error::NotFound { .. })));
    let mut orphan = f.spots[0].clone();
    orphan.id = SpotId::new();
    orphan.lot = LotId::new();
    assert!(matches!(f.store.put_spot(&orphan).await, Err(Error::NotFound { .. })));
    assert!(matches!(f.store.get(ReservationId::new()).await, Err(Error::NotFound { .. })));
    // Replacing a lot keeps it one lot.
    let mut renamed = f.lot.clone();
    renamed.name = "Central (renamed)".into();
    f.engine.put_lot(&renamed).await.unwrap();
    assert_eq!(f.store.lot(f.lot.id).await.unwrap().name, "Central (renamed)");
    assert_eq!(f.store.lots_in(&here).await.unwrap().len(), 1);
}

/// A hold on a named spot is stored as given, with a fence and a `held` event.
pub async fn hold_named_spot(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    let w = f.window(1, 2);
    let r = f.engine.hold(&f.named(user, 0, w), None).await.unwrap();
    assert_eq!((r.state, r.spot, r.user, r.window, r.lot), (S::Held, f.spots[0].id, user, w, f.lot.id));
    assert_eq!(r.price, Money::new(400, f.lot.rates.currency), "two started hours at 2.00");
    assert_eq!(r.hold_expires_at, epoch() + f.lot.hold_ttl);
    assert!(r.fence > 0);
    assert_eq!(f.store.get(r.id).await.unwrap(), r);
    let events = f.store.events(f.lot.id, 0, 100).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].seq, events[0].kind, events[0].reservation), (1, EventKind::Held, r.id));
    assert_eq!(f.store.live_in_lot(f.lot.id, &w, f.clock.now_ts()).await.unwrap(), vec![r.clone()]);
    assert_eq!(f.store.by_user(user, 10).await.unwrap(), vec![r]);
}

/// Overlapping windows on one spot conflict; back-to-back windows and other spots do not.
pub async fn overlapping_windows_conflict(store: Store) {
    let f = Fixture::new(store).await;
    let (a, b) = (UserId::new(), UserId::new());
    f.engine.hold(&f.named(a, 0, f.window(2, 2)), None).await.unwrap();
    for (h, len) in [(2, 2), (1, 2), (3, 1), (1, 4), (3, 3)] {
        match f.engine.hold(&f.named(b, 0, f.window(h, len)), None).await {
            Err(Error::Conflict { reason: ConflictReason::SpotTaken { spot } }) => {
                assert_eq!(spot, f.spots[0].id)
            }
            other => panic!("window +{h}h/{len}h should conflict, got {other:?}"),
        }
    }
    f.engine.hold(&f.named(b, 0, f.window(1, 1)), None).await.expect("ends where the other starts");
    f.engine.hold(&f.named(b, 0, f.window(4, 1)), None).await.expect("starts where the other ends");
    f.engine.hold(&f.named(b, 1, f.window(2, 2)), None).await.expect("another spot");
    let live = f.store.live_in_lot(f.lot.id, &f.window(0, 12), f.clock.now_ts()).await.unwrap();
    assert_eq!(live.len(), 4);
}

/// 64 tasks hold overlapping windows on one spot at once: exactly one wins, the others get
/// `Conflict`, and the store holds exactly one live reservation on the spot.
pub async fn race_64_tasks_one_winner(store: Store) {
    let f = Fixture::new(store).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let f = f.clone();
            // Every window covers hour 4, with different starts and lengths.
            let w = f.window(1 + (i % 3), 4 + (i % 2));
            tokio::spawn(async move { f.engine.hold(&f.named(UserId::new(), 0, w), None).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(Error::Conflict { .. }) => {}
            Err(e) => panic!("a racer failed with {e:?} instead of a conflict"),
        }
    }
    assert_eq!(wins, 1, "exactly one of 64 racers wins");
    let live = f.store.live_in_lot(f.lot.id, &f.window(0, 24), f.clock.now_ts()).await.unwrap();
    assert_eq!(live.len(), 1, "the store holds exactly one live reservation: {live:?}");
    let events = f.store.events(f.lot.id, 0, 1000).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == EventKind::Held).count(), 1);
}

/// A pooled hold takes the first free spot matching the filter, until none is left.
pub async fn pooled_hold_takes_matching_free_spots(store: Store) {
    let f = Fixture::new(store).await;
    let w = f.window(1, 1);
    let ev = HoldSpec {
        user: UserId::new(),
        lot: f.lot.id,
        choice: SpotChoice::Any { filter: SpotFilter { ev: true, ..Default::default() } },
        window: w,
    };
    let a = f.engine.hold(&ev, None).await.unwrap();
    let b = f.engine.hold(&HoldSpec { user: UserId::new(), ..ev.clone() }, None).await.unwrap();
    let got: HashSet<SpotId> = [a.spot, b.spot].into();
    assert_eq!(got, [f.spots[0].id, f.spots[1].id].into(), "the two EV spots");
    match f.engine.hold(&HoldSpec { user: UserId::new(), ..ev.clone() }, None).await {
        Err(Error::Conflict { reason: ConflictReason::NoFreeSpot }) => {}
        other => panic!("no EV spot is left, got {other:?}"),
    }
    let any = HoldSpec { choice: SpotChoice::Any { filter: SpotFilter::default() }, ..ev };
    let c = f.engine.hold(&any, None).await.unwrap();
    assert!(![a.spot, b.spot].contains(&c.spot));
}

/// 32 tasks race for any spot of a four-spot lot: four win, each on its own spot.
pub async fn pooled_race_fills_each_spot_once(store: Store) {
    let f = Fixture::new(store).await;
    let w = f.window(1, 3);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let f = f.clone();
            let spec = HoldSpec {
                user: UserId::new(),
                lot: f.lot.id,
                choice: SpotChoice::Any { filter: SpotFilter::default() },
                window: w,
            };
            tokio::spawn(async move { f.engine.hold(&spec, None).await })
        })
        .collect();
    let mut spots = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => spots.push(r.spot),
            Err(Error::Conflict { reason: ConflictReason::NoFreeSpot }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(spots.len(), 4);
    assert_eq!(spots.iter().collect::<HashSet<_>>().len(), 4, "each spot taken once");
    let live = f.store.live_in_lot(f.lot.id, &w, f.clock.now_ts()).await.unwrap();
    assert_eq!(live.len(), 4);
}

/// A hold past its deadline stops blocking at once (lazy expiry), and is retired by the next
/// hold that overlaps it.
pub async fn lapsed_hold_frees_the_spot(store: Store) {
    let f = Fixture::new(store).await;
    let w = f.window(1, 2);
    let first = f.engine.hold(&f.named(UserId::new(), 0, w), None).await.unwrap();
    f.advance_mins(9);
    assert_conflict(f.engine.hold(&f.named(UserId::new(), 0, w), None).await);
    f.advance_mins(1);
    assert_eq!(f.engine.get(first.id).await.unwrap().state, S::Expired, "reads as expired at its deadline");
    assert!(f.store.live_in_lot(f.lot.id, &w, f.clock.now_ts()).await.unwrap().is_empty());
    let second = f.engine.hold(&f.named(UserId::new(), 0, w), None).await.unwrap();
    assert!(second.fence > first.fence, "a later hold gets a larger fence");
    assert_eq!(f.store.get(first.id).await.unwrap().state, S::Expired, "retired by the overlapping hold");
    let kinds: Vec<_> = f
        .store
        .events(f.lot.id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.reservation))
        .collect();
    assert_eq!(
        kinds,
        vec![(EventKind::Held, first.id), (EventKind::Expired, first.id), (EventKind::Held, second.id)]
    );
}

/// The sweeper marks lapsed holds expired, once, and voids their unpaid intents.
pub async fn sweeper_expires_lapsed_holds(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    let a = f.engine.hold(&f.named(user, 0, f.window(1, 1)), None).await.unwrap();
    let b = f.engine.hold(&f.named(user, 1, f.window(1, 1)), None).await.unwrap();
    let paying = f.engine.checkout(b.id, user).await.unwrap();
    f.advance_mins(5);
    let c = f.engine.hold(&f.named(user, 2, f.window(1, 1)), None).await.unwrap();
    assert!(f.store.lapsed_holds(f.clock.now_ts(), 10).await.unwrap().is_empty());
    f.advance_mins(6);
    let lapsed: Vec<_> =
        f.store.lapsed_holds(f.clock.now_ts(), 10).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(lapsed.iter().collect::<HashSet<_>>(), [a.id, b.id].iter().collect());
    let report = f.engine.sweep(100).await.unwrap();
    assert_eq!(report.expired, 2);
    for id in [a.id, b.id] {
        assert_eq!(f.store.get(id).await.unwrap().state, S::Expired);
    }
    assert_eq!(f.store.get(c.id).await.unwrap().state, S::Held);
    let intent = f.gateway.retrieve(&paying.intent.id).await.unwrap();
    assert_eq!(intent.status, crate::IntentStatus::Canceled, "the unpaid intent was voided");
    assert_eq!(f.engine.sweep(100).await.unwrap().expired, 0, "nothing is expired twice");
    let expired_events = f
        .store
        .events(f.lot.id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Expired)
        .count();
    assert_eq!(expired_events, 2);
}

/// The same key and request return the same reservation; another request with the key is an
/// error; keys are scoped to the caller.
pub async fn idempotent_hold_replays(store: Store) {
    let f = Fixture::new(store).await;
    let (a, b) = (UserId::new(), UserId::new());
    let spec = f.named(a, 0, f.window(1, 1));
    let first = f.engine.hold(&spec, Some("key-1")).await.unwrap();
    let again = f.engine.hold(&spec, Some("key-1")).await.unwrap();
    assert_eq!(again.id, first.id);
    assert!(matches!(
        f.engine.hold(&f.named(a, 1, f.window(1, 1)), Some("key-1")).await,
        Err(Error::IdempotencyMismatch { .. })
    ));
    // Another user's identical key is their own.
    let theirs = f.engine.hold(&f.named(b, 1, f.window(1, 1)), Some("key-1")).await.unwrap();
    assert_ne!(theirs.id, first.id);
    // Concurrent retries of one request create one reservation.
    let spec = f.named(a, 2, f.window(3, 1));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (f, spec) = (f.clone(), spec.clone());
            tokio::spawn(async move { f.engine.hold(&spec, Some("key-2")).await })
        })
        .collect();
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().expect("every retry succeeds").id);
    }
    assert_eq!(ids.len(), 1, "one reservation for one key");
    let held = f
        .store
        .events(f.lot.id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Held)
        .count();
    assert_eq!(held, 3);
}

/// A change presenting an old fencing number is refused.
pub async fn stale_fence_is_refused(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    let r = f.engine.hold(&f.named(user, 0, f.window(1, 1)), None).await.unwrap();
    let mut stale = Update::new(&r, StateSet::HOLDS, S::PendingPayment, EventKind::PaymentStarted);
    stale.fence = r.fence - 1;
    assert!(matches!(f.store.update(stale, f.clock.now_ts()).await, Err(Error::StaleFence { .. })));
    let extended = f.engine.extend(r.id, user, f.window(1, 2).end()).await.unwrap();
    assert!(extended.fence > r.fence, "an extension takes a new fence");
    let old = Update::new(&r, StateSet::HOLDS, S::PendingPayment, EventKind::PaymentStarted);
    match f.store.update(old, f.clock.now_ts()).await {
        Err(Error::StaleFence { presented, current, .. }) => {
            assert_eq!((presented, current), (r.fence, extended.fence))
        }
        other => panic!("expected a stale fence, got {other:?}"),
    }
    assert_eq!(f.store.get(r.id).await.unwrap().state, S::Held, "nothing changed");
}

/// Updates are compare-and-set over the state machine.
pub async fn transitions_follow_the_state_machine(store: Store) {
    let f = Fixture::new(store).await;
    let now = || f.clock.now_ts();
    let r = f.engine.hold(&f.named(UserId::new(), 0, f.window(1, 1)), None).await.unwrap();
    let bad = Update::new(&r, StateSet::HOLDS, S::Completed, EventKind::CheckedOut);
    assert!(matches!(f.store.update(bad, now()).await, Err(Error::InvalidTransition { .. })));
    let wrong_expectation =
        Update::new(&r, StateSet::of(&[S::Confirmed]), S::CheckedIn, EventKind::CheckedIn);
    assert!(matches!(f.store.update(wrong_expectation, now()).await, Err(Error::InvalidTransition { .. })));
    let mut r = r;
    for (expect, to, kind) in [
        (S::Held, S::PendingPayment, EventKind::PaymentStarted),
        (S::PendingPayment, S::Confirmed, EventKind::Confirmed),
        (S::Confirmed, S::CheckedIn, EventKind::CheckedIn),
        (S::CheckedIn, S::Completed, EventKind::CheckedOut),
    ] {
        let w = f.store.update(Update::new(&r, StateSet::of(&[expect]), to, kind), now()).await.unwrap();
        assert_eq!(w.reservation.state, to);
        assert_eq!(w.events.last().map(|e| (e.kind, e.state)), Some((kind, to)));
        r = w.reservation;
    }
    // The spot is free again once the stay is over.
    assert!(f.store.live_in_lot(f.lot.id, &f.window(1, 1), now()).await.unwrap().is_empty());
    // A hold confirmed after its deadline is refused as expired.
    let late = f.engine.hold(&f.named(UserId::new(), 1, f.window(1, 1)), None).await.unwrap();
    f.advance_mins(11);
    let confirm = Update::new(&late, StateSet::HOLDS, S::Confirmed, EventKind::Confirmed);
    assert!(matches!(f.store.update(confirm, now()).await, Err(Error::HoldExpired { .. })));
}

/// Events of a lot are numbered from 1 without gaps, and read back from any point.
pub async fn events_are_numbered_without_gaps(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    assert_eq!(f.store.last_seq(f.lot.id).await.unwrap(), 0, "no event yet");
    for i in 0..4 {
        let r = f.engine.hold(&f.named(user, i, f.window(1, 1)), None).await.unwrap();
        f.engine.cancel(r.id, user).await.unwrap();
    }
    let all = f.store.events(f.lot.id, 0, 1000).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=8).collect::<Vec<u64>>());
    assert_eq!(f.store.last_seq(f.lot.id).await.unwrap(), 8, "the latest sequence number");
    assert!(matches!(f.store.last_seq(LotId::new()).await, Err(Error::NotFound { .. })));
    assert!(all.iter().all(|e| e.lot == f.lot.id));
    let tail = f.store.events(f.lot.id, 5, 2).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![6, 7]);
    assert!(f.store.events(f.lot.id, 8, 10).await.unwrap().is_empty());
    // Another lot has its own sequence.
    let (other, spots) = sample_lot(f.operator.id, "Other", f.lot.location);
    f.engine.put_lot(&other).await.unwrap();
    f.engine.put_spot(&spots[0]).await.unwrap();
    f.engine
        .hold(
            &HoldSpec {
                user,
                lot: other.id,
                choice: SpotChoice::Spot { spot: spots[0].id },
                window: f.window(1, 1),
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(f.store.events(other.id, 0, 10).await.unwrap()[0].seq, 1);
    assert_eq!(f.store.last_seq(other.id).await.unwrap(), 1);
    assert_eq!(f.store.last_seq(f.lot.id).await.unwrap(), 8);
}

/// A driver holds at most the lot's and the operator's limit of live holds.
pub async fn per_user_hold_limits(store: Store) {
    let f = Fixture::new(store).await;
    let mut lot = f.lot.clone();
    lot.max_holds_per_user = Some(2);
    f.engine.put_lot(&lot).await.unwrap();
    let user = UserId::new();
    let first = f.engine.hold(&f.named(user, 0, f.window(1, 1)), None).await.unwrap();
    f.engine.hold(&f.named(user, 1, f.window(1, 1)), None).await.unwrap();
    assert!(matches!(
        f.engine.hold(&f.named(user, 2, f.window(1, 1)), None).await,
        Err(Error::LimitExceeded { .. })
    ));
    f.engine
        .hold(&f.named(UserId::new(), 2, f.window(1, 1)), None)
        .await
        .expect("other drivers are not limited");
    f.engine.cancel(first.id, user).await.unwrap();
    f.engine.hold(&f.named(user, 3, f.window(1, 1)), None).await.expect("a released hold no longer counts");
    f.advance_mins(10);
    f.engine.hold(&f.named(user, 0, f.window(3, 1)), None).await.expect("lapsed holds no longer count");

    // The operator's limit counts across its lots.
    let op = Operator { max_holds_per_user: Some(1), ..f.operator.clone() };
    f.engine.put_operator(&op).await.unwrap();
    let (other, spots) = sample_lot(f.operator.id, "Other", f.lot.location);
    f.engine.put_lot(&other).await.unwrap();
    f.engine.put_spot(&spots[0]).await.unwrap();
    let driver = UserId::new();
    f.engine.hold(&f.named(driver, 1, f.window(5, 1)), None).await.unwrap();
    let elsewhere = HoldSpec {
        user: driver,
        lot: other.id,
        choice: SpotChoice::Spot { spot: spots[0].id },
        window: f.window(5, 1),
    };
    assert!(matches!(f.engine.hold(&elsewhere, None).await, Err(Error::LimitExceeded { .. })));
}

/// Checkout, payment and webhook confirm the reservation and capture once, however often the
/// event is delivered.
pub async fn payment_confirms_and_captures_once(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    let r = f.engine.hold(&f.named(user, 0, f.window(1, 2)), None).await.unwrap();
    let co = f.engine.checkout(r.id, user).await.unwrap();
    assert_eq!(co.reservation.state, S::PendingPayment);
    assert_eq!(co.intent.amount, r.price);
    let again = f.engine.checkout(r.id, user).await.unwrap();
    assert_eq!(again.intent.id, co.intent.id, "a repeated checkout returns the same intent");
    assert_eq!(f.gateway.intent_count(), 1);
    let ev = f.gateway.pay(&co.intent.id, false).unwrap();
    let (body, sig) = f.gateway.sign(&ev, f.clock.now_ts());
    let confirmed = f.engine.handle_webhook(&body, &sig).await.unwrap();
    assert_eq!(confirmed.state, S::Confirmed);
    assert!(confirmed.payment.as_ref().unwrap().captured);
    // Delivered again, and late.
    f.advance_mins(30);
    let (body, sig) = f.gateway.sign(&ev, f.clock.now_ts());
    assert_eq!(f.engine.handle_webhook(&body, &sig).await.unwrap().state, S::Confirmed);
    assert_eq!(f.gateway.money(&co.intent.id), Some((r.price.minor, 0)), "captured once, nothing refunded");
    let confirmed_events = f
        .store
        .events(f.lot.id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Confirmed)
        .count();
    assert_eq!(confirmed_events, 1);
    // A tampered delivery is refused.
    let (mut body, sig) = f.gateway.sign(&ev, f.clock.now_ts());
    body[10] ^= 1;
    assert!(matches!(f.engine.handle_webhook(&body, &sig).await, Err(Error::Invalid { .. })));
    // The confirmed spot stays taken after the hold's deadline.
    assert_conflict(f.engine.hold(&f.named(UserId::new(), 0, f.window(2, 1)), None).await);
}

/// A payment that lands after the hold expired brings the reservation back when the spot is
/// still free.
pub async fn late_payment_reinstates_when_free(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    let r = f.engine.hold(&f.named(user, 0, f.window(1, 1)), None).await.unwrap();
    let co = f.engine.checkout(r.id, user).await.unwrap();
    f.advance_mins(12);
    let ev = f.gateway.pay(&co.intent.id, false).unwrap();
    let back = f.engine.apply_payment(ev).await.unwrap();
    assert_eq!(back.state, S::Confirmed);
    assert!(back.fence > r.fence);
    assert_eq!(f.gateway.money(&co.intent.id), Some((r.price.minor, 0)));
    let kinds: Vec<_> = f.store.events(f.lot.id, 0, 100).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::Reinstated), "{kinds:?}");
}

/// A payment that lands after the hold expired and the spot went to someone else is given
/// back in full, and the other driver keeps the spot.
pub async fn late_payment_is_refunded_when_taken(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    let r = f.engine.hold(&f.named(user, 0, f.window(1, 1)), None).await.unwrap();
    let co = f.engine.checkout(r.id, user).await.unwrap();
    f.advance_mins(12);
    let other = f.engine.hold(&f.named(UserId::new(), 0, f.window(1, 1)), None).await.unwrap();
    let ev = f.gateway.pay(&co.intent.id, true).unwrap();
    let after = f.engine.apply_payment(ev.clone()).await.unwrap();
    assert_eq!(after.state, S::Expired);
    assert_eq!(f.gateway.money(&co.intent.id), Some((r.price.minor, r.price.minor)), "refunded in full");
    assert_eq!(f.engine.get(other.id).await.unwrap().state, S::Held);
    f.engine.apply_payment(ev.clone()).await.unwrap();
    assert_eq!(f.gateway.money(&co.intent.id), Some((r.price.minor, r.price.minor)), "never refunded twice");
    // Delivered again days later, when the provider no longer remembers the refund's key.
    f.gateway.forget_idempotency_keys();
    f.advance_mins(3 * 24 * 60);
    f.engine.apply_payment(ev).await.unwrap();
    assert_eq!(f.gateway.money(&co.intent.id), Some((r.price.minor, r.price.minor)), "still refunded once");
}

/// A declined payment returns the hold to `held`, and a new attempt gets a new intent.
pub async fn failed_payment_allows_another_attempt(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    let r = f.engine.hold(&f.named(user, 0, f.window(1, 1)), None).await.unwrap();
    let first = f.engine.checkout(r.id, user).await.unwrap();
    f.gateway.fail_next(GatewayOp::Pay, crate::memory::Failure::Decline("card_declined".into()));
    let failed = f.gateway.pay(&first.intent.id, false).unwrap();
    assert_eq!(f.engine.apply_payment(failed).await.unwrap().state, S::Held);
    let second = f.engine.checkout(r.id, user).await.unwrap();
    assert_ne!(second.intent.id, first.intent.id);
    assert_eq!(
        f.gateway.retrieve(&first.intent.id).await.unwrap().status,
        crate::IntentStatus::Canceled,
        "the failed attempt's intent is voided so it cannot be paid beside the new one"
    );
    assert_eq!(second.reservation.payment.as_ref().unwrap().attempt, 2);
    let ok = f.gateway.pay(&second.intent.id, false).unwrap();
    assert_eq!(f.engine.apply_payment(ok).await.unwrap().state, S::Confirmed);
}

/// Cancelling refunds by the lot's policy, once, even when repeated.
pub async fn cancel_refunds_by_policy(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    let book = |spot: usize, h: i64| {
        let f = f.clone();
        async move {
            let r = f.engine.hold(&f.named(user, spot, f.window(h, 2)), None).await.unwrap();
            let co = f.engine.checkout(r.id, user).await.unwrap();
            let ev = f.gateway.pay(&co.intent.id, false).unwrap();
            f.engine.apply_payment(ev).await.unwrap()
        }
    };
    let early = book(0, 5).await;
    let c = f.engine.cancel(early.id, user).await.unwrap();
    assert_eq!((c.reservation.state, c.refunded), (S::Cancelled, early.price), "full refund 5 h ahead");
    let again = f.engine.cancel(early.id, user).await.unwrap();
    assert_eq!(again.refunded, early.price);
    let intent = &early.payment.as_ref().unwrap().intent_id;
    assert_eq!(f.gateway.money(intent), Some((early.price.minor, early.price.minor)), "refunded once");
    assert!(
        f.engine.hold(&f.named(UserId::new(), 0, f.window(5, 2)), None).await.is_ok(),
        "the spot is free again"
    );

    // A hold cancelled after its payment was authorised, before the webhook: nothing is kept,
    // and the late webhook changes nothing.
    let r = f.engine.hold(&f.named(user, 2, f.window(6, 1)), None).await.unwrap();
    let co = f.engine.checkout(r.id, user).await.unwrap();
    let authorised = f.gateway.pay(&co.intent.id, false).unwrap();
    let c = f.engine.cancel(r.id, user).await.unwrap();
    assert_eq!(c.reservation.state, S::Cancelled);
    assert_eq!(f.gateway.money(&co.intent.id), Some((0, 0)), "voided, never captured");
    assert_eq!(f.engine.apply_payment(authorised).await.unwrap().state, S::Cancelled);
    assert_eq!(f.gateway.money(&co.intent.id), Some((0, 0)));

    // The policy's refund comes on top of a goodwill refund, never beyond what was paid.
    let kind = book(3, 8).await;
    f.engine.refund(kind.id, Money::new(100, kind.price.currency)).await.unwrap();
    let c = f.engine.cancel(kind.id, user).await.unwrap();
    assert_eq!(c.refunded, kind.price, "everything back, and not a cent more");
    let intent = &kind.payment.as_ref().unwrap().intent_id;
    assert_eq!(f.gateway.money(intent), Some((kind.price.minor, kind.price.minor)));
    f.gateway.forget_idempotency_keys();
    f.engine.cancel(kind.id, user).await.unwrap();
    assert_eq!(
        f.gateway.money(intent),
        Some((kind.price.minor, kind.price.minor)),
        "a repeated cancel adds nothing"
    );

    let late = book(1, 1).await;
    let c = f.engine.cancel(late.id, user).await.unwrap();
    assert_eq!(c.refunded, late.price.percent(50), "half back within two hours of the start");
    assert!(
        matches!(f.engine.cancel(late.id, UserId::new()).await, Err(Error::NotFound { .. })),
        "not someone else's"
    );
}

/// An extension fails when it would overlap the next booking, and succeeds up to it.
pub async fn extend_respects_the_next_booking(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    let r = f.engine.hold(&f.named(user, 0, f.window(1, 1)), None).await.unwrap();
    f.engine.hold(&f.named(UserId::new(), 0, f.window(3, 1)), None).await.unwrap();
    assert_conflict(f.engine.extend(r.id, user, f.window(1, 3).end()).await);
    let r2 = f.engine.extend(r.id, user, f.window(1, 2).end()).await.unwrap();
    assert_eq!(r2.window, f.window(1, 2));
    assert_eq!(r2.price.minor, 400, "re-priced for two hours");
    assert!(matches!(
        f.engine.extend(r.id, user, f.window(1, 100).end()).await,
        Err(Error::LimitExceeded { .. })
    ));
}

/// A confirmed reservation nobody claims within the grace is released.
pub async fn no_show_is_released(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    let r = f.engine.hold(&f.named(user, 0, f.window(1, 3)), None).await.unwrap();
    let co = f.engine.checkout(r.id, user).await.unwrap();
    f.engine.apply_payment(f.gateway.pay(&co.intent.id, false).unwrap()).await.unwrap();
    f.advance_mins(60 + 10);
    assert_eq!(f.engine.sweep(10).await.unwrap().no_shows, 0, "still within the grace");
    f.advance_mins(10);
    assert_eq!(f.engine.sweep(10).await.unwrap().no_shows, 1);
    assert_eq!(f.store.get(r.id).await.unwrap().state, S::NoShow);
    f.engine.hold(&f.named(UserId::new(), 0, f.window(2, 1)), None).await.expect("the spot is released");
    // Booked after its start: the grace counts from the booking.
    let now = f.clock.now_ts();
    let late =
        crate::Window::new(now - SignedDuration::from_mins(5), now + SignedDuration::from_mins(55)).unwrap();
    let r = f.engine.hold(&f.named(user, 1, late), None).await.unwrap();
    let co = f.engine.checkout(r.id, user).await.unwrap();
    f.engine.apply_payment(f.gateway.pay(&co.intent.id, false).unwrap()).await.unwrap();
    assert_eq!(f.engine.sweep(10).await.unwrap().no_shows, 0, "not released the moment it is booked");
    f.advance_mins(15);
    assert_eq!(f.engine.sweep(10).await.unwrap().no_shows, 1);
}

/// Availability counts free spots; search finds lots near a point, nearest first.
pub async fn availability_and_search(store: Store) {
    let f = Fixture::new(store).await;
    let w = f.window(1, 2);
    f.engine.hold(&f.named(UserId::new(), 0, w), None).await.unwrap();
    let a = f.engine.availability(f.lot.id, w).await.unwrap();
    assert_eq!((a.free, a.spots.len()), (3, 4));
    assert!(!a.spots.iter().find(|s| s.spot.id == f.spots[0].id).unwrap().free);
    assert_eq!(f.engine.availability(f.lot.id, f.window(3, 1)).await.unwrap().free, 4);
    let (far, far_spots) = sample_lot(f.operator.id, "Far", GeoPoint { lat: 35.18, lon: 33.37 });
    f.engine.put_lot(&far).await.unwrap();
    f.engine.put_spot(&far_spots[0]).await.unwrap();
    let near = GeoPoint { lat: 35.1726, lon: 33.3618 };
    let found = f.engine.search(near, 2_000.0, w, SpotFilter::default()).await.unwrap();
    assert_eq!(found.iter().map(|m| m.lot.id).collect::<Vec<_>>(), vec![f.lot.id, far.id]);
    assert_eq!(found[0].free, 3);
    let ev_only =
        f.engine.search(near, 2_000.0, w, SpotFilter { ev: true, ..Default::default() }).await.unwrap();
    assert_eq!(ev_only[0].free, 1);
    assert!(f.engine.search(near, 50.0, w, SpotFilter::default()).await.unwrap().len() == 1);
}

/// Entry and exit open and close a gate session; a retried scan counts once.
pub async fn gate_sessions_count_a_scan_once(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    let r = f.engine.hold(&f.named(user, 0, f.window(1, 2)), None).await.unwrap();
    let co = f.engine.checkout(r.id, user).await.unwrap();
    f.engine.apply_payment(f.gateway.pay(&co.intent.id, false).unwrap()).await.unwrap();
    let refused = |r: crate::Result<crate::Reservation>| match r {
        Err(Error::ScanRefused { reason }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(refused(f.engine.check_in(r.id, "north", "scan-1").await), Refusal::TooEarly);
    f.advance_mins(50);
    let inside = f.engine.check_in(r.id, "north", "scan-2").await.unwrap();
    assert_eq!(inside.state, S::CheckedIn);
    assert_eq!(
        refused(f.engine.check_in(r.id, "north", "scan-2").await),
        Refusal::Replayed,
        "a repeated reading"
    );
    assert_eq!(refused(f.engine.check_in(r.id, "north", "scan-3").await), Refusal::AlreadyInside);
    f.advance_mins(60);
    let out = f.engine.check_out(r.id, "south", "scan-4").await.unwrap();
    assert_eq!(out.state, S::Completed);
    let sessions = f.engine.sessions(r.id).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].entry_gate, "north");
    assert_eq!(sessions[0].exit_gate.as_deref(), Some("south"));
    assert_eq!(sessions[0].exited_at, Some(f.clock.now_ts()));
}

/// A watcher that resumes from a sequence number gets exactly what it missed, then live events.
pub async fn watch_resumes_from_a_sequence_number(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    for i in 0..3 {
        f.engine.hold(&f.named(user, i, f.window(1, 1)), None).await.unwrap();
    }
    let mut stream = f.engine.watch(f.lot.id, 1).await.unwrap();
    assert_eq!(next_event(&mut stream).await.seq, 2);
    assert_eq!(next_event(&mut stream).await.seq, 3);
    let live = f.engine.hold(&f.named(user, 3, f.window(1, 1)), None).await.unwrap();
    let e = next_event(&mut stream).await;
    assert_eq!((e.seq, e.reservation, e.kind), (4, live.id, EventKind::Held));
}

async fn next_event(s: &mut crate::EventStream) -> crate::Event {
    tokio::time::timeout(std::time::Duration::from_secs(10), s.next())
        .await
        .expect("an event arrives in time")
        .expect("the stream stays open")
        .expect("no error")
}

impl crate::time::ManualClock {
    /// The clock's current instant (a shorthand for tests).
    pub fn now_ts(&self) -> jiff::Timestamp {
        crate::time::Clock::now(self)
    }
}

/// Books, pays and returns a confirmed reservation of spot `i` for `window`.
async fn paid(f: &Fixture, user: UserId, i: usize, window: crate::Window) -> crate::Reservation {
    let r = f.engine.hold(&f.named(user, i, window), None).await.unwrap();
    let co = f.engine.checkout(r.id, user).await.unwrap();
    f.engine.apply_payment(f.gateway.pay(&co.intent.id, false).unwrap()).await.unwrap()
}

/// Cancelling revokes the reservation's passes in the store, with the cancellation: gates
/// syncing get the revocation, the online gate refuses the pass, and an offline gate that
/// applies the delta refuses it too.
pub async fn cancel_revokes_the_pass_in_the_store(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    let keep = paid(&f, user, 1, f.window(1, 2)).await;
    let r = paid(&f, user, 0, f.window(1, 2)).await;
    let pass = f.engine.issue_pass(r.id, user).await.unwrap();
    let before = f.engine.revocations_since(0, 100).await.unwrap();
    f.engine.cancel(r.id, user).await.unwrap();
    let delta = f.engine.revocations_since(before.to, 100).await.unwrap();
    assert_eq!(delta.revocations.len(), 1);
    let rev = delta.revocations[0];
    assert_eq!(
        (rev.version, rev.reservation, rev.reason),
        (before.to + 1, r.id, RevocationReason::Cancelled)
    );
    assert_eq!(f.store.revocations_of(r.id).await.unwrap(), vec![rev], "written by the store");
    f.engine.cancel(r.id, user).await.unwrap();
    assert_eq!(
        f.engine.revocations_since(before.to, 100).await.unwrap(),
        delta,
        "a repeated cancel adds none"
    );
    f.advance_mins(50);
    let d = f.engine.scan(pass.text(), f.lot.id, Direction::Entry, "north", None).await.unwrap();
    assert_eq!(d, Decision::Refuse(Refusal::Revoked));
    let gate = GateVerifier::new(f.engine.pass_keys(), GatePolicy::for_lot(&f.lot));
    gate.apply_revocations(&f.engine.revocations_since(0, 100).await.unwrap()).unwrap();
    let at = f.clock.now_ts();
    assert_eq!(gate.scan(pass.text(), &Scan::entry(f.lot.id, at)), Decision::Refuse(Refusal::Revoked));
    let other = f.engine.issue_pass(keep.id, user).await.unwrap();
    assert_eq!(gate.scan(other.text(), &Scan::entry(f.lot.id, at)), Decision::Allow, "only that one");
}

/// The lot's re-entry policy, stored with the lot, decides a second entry: refused where the
/// lot allows one entry (the exit completes the stay), allowed once the operator allows it.
pub async fn lot_reentry_policy_decides_a_second_entry(store: Store) {
    let f = Fixture::new(store).await;
    assert_eq!(f.lot.reentry, ReentryPolicy::NotAllowed);
    let user = UserId::new();
    let once = paid(&f, user, 0, f.window(1, 3)).await;
    let twice = paid(&f, user, 1, f.window(1, 3)).await;
    f.advance_mins(50);
    let refused = |r: crate::Result<crate::Reservation>| match r {
        Err(Error::ScanRefused { reason }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    };
    f.engine.check_in(once.id, "north", "a-1").await.unwrap();
    let out = f.engine.check_out(once.id, "north", "a-2").await.unwrap();
    assert_eq!(out.state, S::Completed, "one entry: leaving ends the stay");
    assert_eq!(refused(f.engine.check_in(once.id, "north", "a-3").await), Refusal::ReentryNotAllowed);

    let mut lot = f.lot.clone();
    lot.reentry = ReentryPolicy::Allowed;
    f.engine.put_lot(&lot).await.unwrap();
    assert_eq!(f.store.lot(lot.id).await.unwrap().reentry, ReentryPolicy::Allowed, "stored with the lot");
    f.engine.check_in(twice.id, "north", "b-1").await.unwrap();
    let out = f.engine.check_out(twice.id, "north", "b-2").await.unwrap();
    assert_eq!(out.state, S::CheckedIn, "the stay goes on until the window ends");
    f.advance_mins(30);
    let back = f.engine.check_in(twice.id, "north", "b-3").await.unwrap();
    assert_eq!(back.state, S::CheckedIn);
    assert_eq!(f.engine.sessions(twice.id).await.unwrap().len(), 2, "two visits");
}

/// Readings an offline gate acted on are recorded once, decided at the gate's time: a valid
/// entry is applied with the gate's time; a repeat returns the same record; a pass revoked
/// before the reading and let in anyway is a conflict, not applied.
pub async fn offline_scans_are_recorded_once(store: Store) {
    let f = Fixture::new(store).await;
    let user = UserId::new();
    let r = paid(&f, user, 0, f.window(1, 2)).await;
    let gone = paid(&f, user, 1, f.window(1, 2)).await;
    let pass = f.engine.issue_pass(r.id, user).await.unwrap();
    let gone_pass = f.engine.issue_pass(gone.id, user).await.unwrap();
    f.engine.cancel(gone.id, user).await.unwrap();
    let at_gate = epoch() + SignedDuration::from_mins(55);
    f.advance_mins(120);
    let scan = |id: &str, text: &str| OfflineScan {
        scan_id: id.into(),
        pass: text.into(),
        lot: f.lot.id,
        direction: Direction::Entry,
        gate: "north".into(),
        at: at_gate,
        gate_decision: Decision::Allow,
    };
    let first = f.engine.record_offline_scan(&scan("g1-0001", pass.text())).await.unwrap();
    assert_eq!((first.decision, first.applied, first.conflict), (Decision::Allow, true, None));
    assert_eq!(first.reservation, Some(r.id));
    let sessions = f.engine.sessions(r.id).await.unwrap();
    assert_eq!((sessions.len(), sessions[0].entered_at), (1, at_gate), "entered at the gate's time");
    let again = f.engine.record_offline_scan(&scan("g1-0001", pass.text())).await.unwrap();
    assert_eq!(again, first, "the same answer");
    assert_eq!(f.engine.sessions(r.id).await.unwrap().len(), 1, "recorded once");
    let revoked = f.engine.record_offline_scan(&scan("g1-0002", gone_pass.text())).await.unwrap();
    assert_eq!(revoked.decision, Decision::Refuse(Refusal::Revoked));
    assert_eq!((revoked.applied, revoked.conflict), (false, Some(ScanConflict::AllowedButRefused)));
    assert_eq!(f.store.scan_record(f.lot.id, "g1-0002").await.unwrap(), Some(revoked));
    let junk = f.engine.record_offline_scan(&scan("g1-0003", "not a pass")).await.unwrap();
    assert_eq!((junk.decision, junk.reservation), (Decision::Refuse(Refusal::Invalid), None));
}
