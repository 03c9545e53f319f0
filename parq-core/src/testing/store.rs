//! The [`ReservationStore`](crate::ReservationStore) conformance cases that call the port
//! directly, without the engine: what every store must do on its own, as its contract says.
//! Each takes a fresh, empty store ([`StoreSubject`]).

use std::collections::HashSet;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::{StoreSubject, epoch, sample_lot};
use crate::catalog::{GeoPoint, Lot, Operator, Spot};
use crate::error::{ConflictReason, Error};
use crate::ids::{LotId, OperatorId, ReservationId, SessionId, SpotId, UserId};
use crate::money::Money;
use crate::pass::{
    Decision, Direction, Refusal, RevocationDelta, RevocationReason, ScanConflict, ScanRecord,
};
use crate::ports::store::{
    DynReservationStore, HoldLimits, HoldRequest, HoldTarget, IdempotencyClaim, NewRevocation, SessionChange,
    Update, Written,
};
use crate::reservation::{
    Event, EventKind, GateSession, PaymentRef, Reservation, ReservationState as S, StateSet,
};
use crate::time::Window;

type Store = Arc<DynReservationStore>;

/// An operator and a four-spot lot (see [`sample_lot`]), put through the port.
struct Place {
    lot: Lot,
    spots: Vec<Spot>,
}

impl Place {
    async fn new(store: &Store) -> Place {
        let operator =
            Operator { id: OperatorId::new(), name: "Port Parking".into(), max_holds_per_user: None };
        store.put_operator(&operator).await.expect("put operator");
        Self::in_operator(store, operator.id, "Port").await
    }

    async fn in_operator(store: &Store, operator: OperatorId, name: &str) -> Place {
        let (lot, spots) = sample_lot(operator, name, GeoPoint { lat: 35.1725, lon: 33.3617 });
        store.put_lot(&lot).await.expect("put lot");
        for s in &spots {
            store.put_spot(s).await.expect("put spot");
        }
        Place { lot, spots }
    }

    /// A hold of `user` on spot `i` for `window`, made at `now`, lapsing ten minutes later.
    fn reservation(&self, user: UserId, i: usize, window: Window, now: Timestamp) -> Reservation {
        Reservation {
            id: ReservationId::new(),
            operator: self.lot.operator,
            lot: self.lot.id,
            spot: self.spots[i].id,
            user,
            window,
            state: S::Held,
            fence: 0,
            price: Money::new(200, self.lot.rates.currency),
            hold_expires_at: now + SignedDuration::from_mins(10),
            created_at: now,
            payment: None,
        }
    }

    /// The request to hold `r` on its spot.
    fn named(&self, r: Reservation) -> HoldRequest {
        let target = HoldTarget::Spot(r.spot);
        HoldRequest {
            reservation: r,
            target,
            limits: HoldLimits::default(),
            lock_fence: None,
            idempotency: None,
        }
    }

    /// Holds spot `i` for `window` at `now`.
    async fn hold(&self, store: &Store, user: UserId, i: usize, window: Window, now: Timestamp) -> Written {
        store.hold(self.named(self.reservation(user, i, window, now)), now).await.expect("hold")
    }
}

/// `mins` minutes after the epoch.
fn at(mins: i64) -> Timestamp {
    epoch() + SignedDuration::from_mins(mins)
}

/// The window from `h` hours after the epoch, lasting `len` hours.
fn win(h: i64, len: i64) -> Window {
    Window::new(epoch() + SignedDuration::from_hours(h), epoch() + SignedDuration::from_hours(h + len))
        .expect("positive window")
}

fn claim(scope: &str, key: &str, fingerprint: u8) -> IdempotencyClaim {
    IdempotencyClaim { scope: scope.into(), key: key.into(), fingerprint: [fingerprint; 32] }
}

fn payment(r: &Reservation, captured: bool) -> PaymentRef {
    PaymentRef {
        intent_id: format!("pi_{}", r.id),
        attempt: 1,
        amount: r.price,
        captured,
        refunded: 0,
        refund_settled: 0,
    }
}

fn taken<T: std::fmt::Debug>(r: crate::Result<T>, spot: SpotId, what: &str) {
    match r {
        Err(Error::Conflict { reason: ConflictReason::SpotTaken { spot: s } }) if s == spot => {}
        other => panic!("{what}: expected SpotTaken on {spot}, got {other:?}"),
    }
}

async fn kinds(store: &Store, lot: LotId) -> Vec<(u64, EventKind, ReservationId)> {
    store.events(lot, 0, 10_000).await.unwrap().into_iter().map(|e| (e.seq, e.kind, e.reservation)).collect()
}

/// Moves `r` to `to` (from its stored state), recording `kind`.
async fn step(store: &Store, r: &Reservation, to: S, kind: EventKind, now: Timestamp) -> Reservation {
    store.update(Update::new(r, StateSet::of(&[r.state]), to, kind), now).await.expect("update").reservation
}

/// Holds and confirms spot `i` for `window` at `now`.
async fn confirmed(
    store: &Store,
    p: &Place,
    user: UserId,
    i: usize,
    window: Window,
    now: Timestamp,
) -> Reservation {
    let r = p.hold(store, user, i, window, now).await.reservation;
    let mut u = Update::new(&r, StateSet::HOLDS, S::Confirmed, EventKind::Confirmed);
    u.payment = Some(payment(&r, true));
    store.update(u, now).await.expect("confirm").reservation
}

/// A hold is stored as given, on its spot, with a fencing number and a `held` event numbered
/// 1, in the same step; it reads back through every query. A hold not in state `held`, on an
/// unknown spot or lot is refused and writes nothing.
pub async fn port_hold_inserts_with_a_fence_and_an_event(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let user = UserId::new();
    let now = epoch();
    let r = p.reservation(user, 0, win(1, 2), now);
    let w = store.hold(p.named(r.clone()), now).await.unwrap();
    assert!(!w.replayed);
    assert!(w.reservation.fence > 0, "a hold gets a fencing number");
    assert_eq!(w.reservation, Reservation { fence: w.reservation.fence, ..r }, "stored as given");
    assert_eq!(w.events, vec![Event::of(&w.reservation, EventKind::Held, 1, now)]);
    assert_eq!(store.get(w.reservation.id).await.unwrap(), w.reservation);
    assert_eq!(store.events(p.lot.id, 0, 10).await.unwrap(), w.events, "the event is stored with the write");
    assert_eq!(store.last_seq(p.lot.id).await.unwrap(), 1);
    assert_eq!(store.live_in_lot(p.lot.id, &win(0, 5), now).await.unwrap(), vec![w.reservation.clone()]);
    assert!(store.live_in_lot(p.lot.id, &win(3, 1), now).await.unwrap().is_empty(), "[start, end)");
    assert_eq!(store.by_user(user, 10).await.unwrap(), vec![w.reservation.clone()]);
    assert!(store.sessions(w.reservation.id).await.unwrap().is_empty());

    let mut not_held = p.reservation(user, 1, win(1, 1), now);
    not_held.state = S::Confirmed;
    assert!(matches!(store.hold(p.named(not_held), now).await, Err(Error::Invalid { .. })));
    let mut unknown_spot = p.named(p.reservation(user, 1, win(1, 1), now));
    unknown_spot.target = HoldTarget::Spot(SpotId::new());
    assert!(matches!(store.hold(unknown_spot, now).await, Err(Error::NotFound { .. })));
    let mut unknown_lot = p.reservation(user, 1, win(1, 1), now);
    unknown_lot.lot = LotId::new();
    assert!(matches!(store.hold(p.named(unknown_lot), now).await, Err(Error::NotFound { .. })));
    assert_eq!(store.last_seq(p.lot.id).await.unwrap(), 1, "refused holds write nothing");
    assert!(matches!(store.get(ReservationId::new()).await, Err(Error::NotFound { .. })));
}

/// The stored fence is `max(last fence of the spot + 1, the lock's fence)`, per spot.
pub async fn port_hold_fence_follows_the_lock_fence(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let now = epoch();
    let with_lock = |i: usize, w: Window, fence: Option<u64>| {
        let mut req = p.named(p.reservation(UserId::new(), i, w, now));
        req.lock_fence = fence;
        req
    };
    let a = store.hold(with_lock(0, win(1, 1), Some(41)), now).await.unwrap().reservation;
    assert_eq!(a.fence, 41, "the lock's larger fence is taken");
    let b = store.hold(with_lock(0, win(2, 1), None), now).await.unwrap().reservation;
    assert_eq!(b.fence, 42, "the spot's last fence + 1");
    let c = store.hold(with_lock(0, win(3, 1), Some(5)), now).await.unwrap().reservation;
    assert_eq!(c.fence, 43, "a stale lock fence never lowers the store's");
    let other = store.hold(with_lock(1, win(1, 1), None), now).await.unwrap().reservation;
    assert!(other.fence < 41, "fences are per spot: {}", other.fence);
}

/// Overlapping windows on one spot conflict, whichever way they overlap; back-to-back windows
/// and other spots do not; refused holds write nothing.
pub async fn port_hold_refuses_overlaps_half_open(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let now = epoch();
    p.hold(&store, UserId::new(), 0, win(2, 2), now).await;
    for (h, len) in [(2, 2), (1, 2), (3, 1), (1, 4), (3, 3)] {
        let r = store.hold(p.named(p.reservation(UserId::new(), 0, win(h, len), now)), now).await;
        taken(r, p.spots[0].id, &format!("+{h}h/{len}h"));
    }
    p.hold(&store, UserId::new(), 0, win(1, 1), now).await;
    p.hold(&store, UserId::new(), 0, win(4, 1), now).await;
    p.hold(&store, UserId::new(), 1, win(2, 2), now).await;
    assert_eq!(store.live_in_lot(p.lot.id, &win(0, 12), now).await.unwrap().len(), 4);
    assert_eq!(store.last_seq(p.lot.id).await.unwrap(), 4, "only the four holds wrote events");
}

/// A pooled hold takes the first free candidate in the order given; with none free it is
/// `NoFreeSpot`; an unknown candidate is `NotFound` when no earlier one is free.
pub async fn port_hold_picks_the_first_free_candidate(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let now = epoch();
    let w = win(1, 1);
    p.hold(&store, UserId::new(), 1, w, now).await;
    let pooled = |order: Vec<SpotId>| {
        let mut req = p.named(p.reservation(UserId::new(), 0, w, now));
        req.target = HoldTarget::AnyOf(order);
        req
    };
    let order = vec![p.spots[1].id, p.spots[2].id, p.spots[0].id];
    let first = store.hold(pooled(order.clone()), now).await.unwrap().reservation;
    assert_eq!(first.spot, p.spots[2].id, "the first free candidate, in order");
    assert_eq!(store.get(first.id).await.unwrap().spot, first.spot, "stored on the spot it took");
    let second = store.hold(pooled(order.clone()), now).await.unwrap().reservation;
    assert_eq!(second.spot, p.spots[0].id);
    match store.hold(pooled(order), now).await {
        Err(Error::Conflict { reason: ConflictReason::NoFreeSpot }) => {}
        other => panic!("expected NoFreeSpot, got {other:?}"),
    }
    let third = store.hold(pooled(vec![p.spots[3].id, SpotId::new()]), now).await.unwrap().reservation;
    assert_eq!(third.spot, p.spots[3].id, "a free candidate before an unknown one is taken");
    assert!(matches!(
        store.hold(pooled(vec![SpotId::new(), p.spots[3].id]), now).await,
        Err(Error::NotFound { .. })
    ));
}

/// A hold whose deadline passed stops blocking at its deadline (lazy expiry); the next hold
/// that overlaps it retires it (`expired`, with its event) in the same step; lapsed holds that
/// do not overlap are left as they are.
pub async fn port_hold_retires_lapsed_overlaps(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let a = p.hold(&store, UserId::new(), 0, win(1, 1), at(0)).await.reservation;
    let c = p.hold(&store, UserId::new(), 1, win(1, 1), at(0)).await.reservation;
    let late = p.reservation(UserId::new(), 0, win(1, 1), at(9));
    taken(store.hold(p.named(late), at(9)).await, p.spots[0].id, "a minute before the deadline");
    assert!(
        store.live_in_lot(p.lot.id, &win(1, 1), at(10)).await.unwrap().is_empty(),
        "lapsed at its deadline"
    );
    let b = store.hold(p.named(p.reservation(UserId::new(), 0, win(1, 1), at(10))), at(10)).await.unwrap();
    assert_eq!(
        b.events.iter().map(|e| (e.seq, e.kind, e.reservation)).collect::<Vec<_>>(),
        vec![(3, EventKind::Expired, a.id), (4, EventKind::Held, b.reservation.id)]
    );
    assert_eq!(b.events[0].state, S::Expired);
    assert_eq!(store.get(a.id).await.unwrap().state, S::Expired, "retired");
    assert!(b.reservation.fence > a.fence);
    let d = p.hold(&store, UserId::new(), 1, win(5, 1), at(10)).await;
    assert_eq!(d.events.len(), 1, "a lapsed hold that does not overlap is not retired");
    assert_eq!(store.get(c.id).await.unwrap().state, S::Held, "stored as it was; it reads as expired");
}

/// Per-user limits count the user's live holds in the lot and across the operator's lots,
/// atomically with the insert.
pub async fn port_hold_checks_per_user_limits(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let other = Place::in_operator(&store, p.lot.operator, "Other").await;
    let user = UserId::new();
    let now = epoch();
    let limited = |p: &Place, user: UserId, i: usize, w: Window, now: Timestamp, limits: HoldLimits| {
        let mut req = p.named(p.reservation(user, i, w, now));
        req.limits = limits;
        req
    };
    let per_lot = HoldLimits { per_lot: Some(2), per_operator: None };
    for i in 0..2 {
        store.hold(limited(&p, user, i, win(1, 1), now, per_lot), now).await.unwrap();
    }
    assert!(matches!(
        store.hold(limited(&p, user, 2, win(1, 1), now, per_lot), now).await,
        Err(Error::LimitExceeded { .. })
    ));
    store.hold(limited(&p, UserId::new(), 2, win(1, 1), now, per_lot), now).await.expect("another driver");
    store.hold(limited(&other, user, 0, win(1, 1), now, per_lot), now).await.expect("another lot");
    let per_operator = HoldLimits { per_lot: None, per_operator: Some(3) };
    assert!(matches!(
        store.hold(limited(&other, user, 1, win(1, 1), now, per_operator), now).await,
        Err(Error::LimitExceeded { .. })
    ));
    let later = now + SignedDuration::from_mins(10);
    store
        .hold(limited(&p, user, 3, win(1, 1), later, per_lot), later)
        .await
        .expect("lapsed holds no longer count");
}

/// An update presenting another fencing number than the stored one is refused with both
/// numbers, and changes nothing.
pub async fn port_update_refuses_a_stale_fence(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let now = epoch();
    let r = p.hold(&store, UserId::new(), 0, win(1, 1), now).await.reservation;
    for presented in [r.fence - 1, r.fence + 1] {
        let mut u = Update::new(&r, StateSet::HOLDS, S::PendingPayment, EventKind::PaymentStarted);
        u.fence = presented;
        match store.update(u, now).await {
            Err(Error::StaleFence { id, presented: p, current }) => {
                assert_eq!((id, p, current), (r.id, presented, r.fence))
            }
            other => panic!("expected a stale fence, got {other:?}"),
        }
    }
    assert_eq!(store.get(r.id).await.unwrap(), r, "nothing changed");
    assert_eq!(store.last_seq(p.lot.id).await.unwrap(), 1, "no event");
}

/// An update whose expected states do not hold the state read at `now`, or that the state
/// machine forbids, is refused and changes nothing; an expected hold that lapsed is
/// `HoldExpired`; an unknown reservation is `NotFound`.
pub async fn port_update_refuses_a_wrong_state(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let r = p.hold(&store, UserId::new(), 0, win(1, 1), at(0)).await.reservation;
    let u = Update::new(&r, StateSet::of(&[S::Confirmed]), S::CheckedIn, EventKind::CheckedIn);
    match store.update(u, at(0)).await {
        Err(Error::InvalidTransition { id, from, .. }) => assert_eq!((id, from), (r.id, S::Held)),
        other => panic!("expected InvalidTransition, got {other:?}"),
    }
    let forbidden = Update::new(&r, StateSet::HOLDS, S::Completed, EventKind::CheckedOut);
    assert!(matches!(store.update(forbidden, at(0)).await, Err(Error::InvalidTransition { .. })));
    let confirm = Update::new(&r, StateSet::HOLDS, S::Confirmed, EventKind::Confirmed);
    assert!(
        matches!(store.update(confirm.clone(), at(10)).await, Err(Error::HoldExpired { id }) if id == r.id)
    );
    let mut missing = confirm;
    missing.id = ReservationId::new();
    assert!(matches!(store.update(missing, at(0)).await, Err(Error::NotFound { .. })));
    assert_eq!(store.get(r.id).await.unwrap(), r, "nothing changed");
    assert_eq!(store.last_seq(p.lot.id).await.unwrap(), 1, "no event");
}

/// Updates move a reservation through the state machine, each writing its fields and its event
/// in one step; a confirmed reservation blocks its spot past the hold's deadline, and a
/// completed one frees it.
pub async fn port_update_moves_through_the_state_machine(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let now = epoch();
    let mut r = p.hold(&store, UserId::new(), 0, win(1, 2), now).await.reservation;
    let mut start = Update::new(&r, StateSet::of(&[S::Held]), S::PendingPayment, EventKind::PaymentStarted);
    start.payment = Some(payment(&r, false));
    start.hold_expires_at = Some(now + SignedDuration::from_mins(15));
    let w = store.update(start, now).await.unwrap();
    assert!(!w.replayed);
    assert_eq!((w.reservation.state, w.reservation.fence), (S::PendingPayment, r.fence), "no new fence");
    assert_eq!(w.reservation.payment.as_deref(), Some(&payment(&r, false)));
    assert_eq!(w.reservation.hold_expires_at, now + SignedDuration::from_mins(15));
    assert_eq!(w.events, vec![Event::of(&w.reservation, EventKind::PaymentStarted, 2, now)]);
    r = w.reservation;
    let later = now + SignedDuration::from_mins(12);
    let mut confirm = Update::new(&r, StateSet::HOLDS, S::Confirmed, EventKind::Confirmed);
    confirm.payment = Some(payment(&r, true));
    r = store.update(confirm, later).await.expect("the new deadline holds").reservation;
    assert_eq!(r.state, S::Confirmed);
    assert!(r.payment.as_ref().unwrap().captured);
    let past = now + SignedDuration::from_mins(60);
    let probe = p.reservation(UserId::new(), 0, win(2, 1), past);
    taken(store.hold(p.named(probe), past).await, p.spots[0].id, "a confirmed reservation blocks");
    r = step(&store, &r, S::CheckedIn, EventKind::CheckedIn, past).await;
    r = step(&store, &r, S::Completed, EventKind::CheckedOut, past).await;
    assert_eq!(store.get(r.id).await.unwrap(), r);
    assert!(
        store.live_in_lot(p.lot.id, &win(1, 2), past).await.unwrap().is_empty(),
        "completed frees the spot"
    );
    assert_eq!(
        kinds(&store, p.lot.id).await.into_iter().map(|(seq, k, _)| (seq, k)).collect::<Vec<_>>(),
        vec![
            (1, EventKind::Held),
            (2, EventKind::PaymentStarted),
            (3, EventKind::Confirmed),
            (4, EventKind::CheckedIn),
            (5, EventKind::CheckedOut)
        ]
    );
}

/// An update that moves a live reservation to another window checks that window like a hold,
/// leaving the reservation itself out.
pub async fn port_update_checks_the_window_it_moves_to(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let now = epoch();
    let a = p.hold(&store, UserId::new(), 0, win(1, 1), now).await.reservation;
    p.hold(&store, UserId::new(), 0, win(3, 1), now).await;
    let extend = |w: Window| {
        let mut u = Update::new(&a, StateSet::HOLDS, S::Held, EventKind::Extended);
        u.window = Some(w);
        u.price = Some(Money::new(400, a.price.currency));
        u
    };
    taken(store.update(extend(win(1, 3)), now).await, p.spots[0].id, "into the next booking");
    assert_eq!(store.get(a.id).await.unwrap(), a, "nothing changed");
    let w = store.update(extend(win(1, 2)), now).await.expect("up to the next booking, over itself");
    assert_eq!((w.reservation.window, w.reservation.price.minor), (win(1, 2), 400));
    assert_eq!(w.events.last().map(|e| (e.kind, e.window)), Some((EventKind::Extended, win(1, 2))));
    let probe = p.reservation(UserId::new(), 0, win(2, 1), now);
    taken(store.hold(p.named(probe), now).await, p.spots[0].id, "the moved window blocks");
    assert_eq!(store.live_in_lot(p.lot.id, &win(2, 1), now).await.unwrap().len(), 1);
}

/// A reservation that is not live (an expired hold) may become live again only while its
/// window is free on its spot.
pub async fn port_update_reinstates_only_when_free(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let a = p.hold(&store, UserId::new(), 0, win(1, 1), at(0)).await.reservation;
    let c = p.hold(&store, UserId::new(), 1, win(1, 1), at(0)).await.reservation;
    p.hold(&store, UserId::new(), 0, win(1, 1), at(12)).await;
    let reinstate = |r: &Reservation| {
        let mut u = Update::new(r, StateSet::of(&[S::Expired]), S::Confirmed, EventKind::Reinstated);
        u.bump_fence = true;
        u.payment = Some(payment(r, true));
        u
    };
    let a_now = store.get(a.id).await.unwrap();
    taken(store.update(reinstate(&a_now), at(12)).await, p.spots[0].id, "the spot went to another");
    assert_eq!(store.get(a.id).await.unwrap().state, S::Expired);
    let back = store.update(reinstate(&c), at(12)).await.expect("a lapsed hold whose spot is free");
    assert_eq!(back.reservation.state, S::Confirmed);
    assert!(back.reservation.fence > c.fence, "reinstatement takes a new fence");
    assert_eq!(back.events.last().map(|e| e.kind), Some(EventKind::Reinstated));
    let probe = p.reservation(UserId::new(), 1, win(1, 1), at(12));
    taken(store.hold(p.named(probe), at(12)).await, p.spots[1].id, "the reinstated reservation blocks");
}

/// `bump_fence` gives the reservation the spot's next fencing number (larger than any on the
/// spot), after which the old number is stale; later holds go on from it.
pub async fn port_update_bump_fence_takes_the_spots_next_fence(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let now = epoch();
    let a = p.hold(&store, UserId::new(), 0, win(1, 1), now).await.reservation;
    let b = p.hold(&store, UserId::new(), 0, win(3, 1), now).await.reservation;
    assert!(b.fence > a.fence);
    let mut u = Update::new(&a, StateSet::HOLDS, S::Held, EventKind::Extended);
    u.bump_fence = true;
    let bumped = store.update(u, now).await.unwrap().reservation;
    assert!(bumped.fence > b.fence, "{} must exceed every fence on the spot ({})", bumped.fence, b.fence);
    let old = Update::new(&a, StateSet::HOLDS, S::PendingPayment, EventKind::PaymentStarted);
    assert!(matches!(store.update(old, now).await, Err(Error::StaleFence { .. })));
    let c = p.hold(&store, UserId::new(), 0, win(5, 1), now).await.reservation;
    assert!(c.fence > bumped.fence);
    let mut unbumped = Update::new(&b, StateSet::HOLDS, S::Held, EventKind::Extended);
    unbumped.window = Some(win(3, 2));
    assert_eq!(store.update(unbumped, now).await.unwrap().reservation.fence, b.fence, "no bump, same fence");
}

/// Concurrent updates presenting the same fence and state: exactly one wins (compare and set),
/// the others are refused, and one event is written.
pub async fn port_update_race_one_winner(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let now = epoch();
    let r = p.hold(&store, UserId::new(), 0, win(1, 1), now).await.reservation;
    for bump in [false, true] {
        let current = store.get(r.id).await.unwrap();
        let (from, to) =
            if bump { (S::PendingPayment, S::PendingPayment) } else { (S::Held, S::PendingPayment) };
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                let mut u = Update::new(&current, StateSet::of(&[from]), to, EventKind::PaymentStarted);
                u.bump_fence = bump;
                tokio::spawn(async move { store.update(u, now).await })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => wins += 1,
                Err(Error::InvalidTransition { .. }) if !bump => {}
                Err(Error::StaleFence { .. }) if bump => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(wins, 1, "exactly one of 16 updates wins (bump_fence: {bump})");
    }
    assert_eq!(store.last_seq(p.lot.id).await.unwrap(), 3, "one event per winning update");
}

/// A repeated idempotency key with the same fingerprint answers with the recorded reservation
/// as it is now, writing nothing; with another fingerprint it is `IdempotencyMismatch`; keys
/// are scoped. The same holds for updates.
pub async fn port_idempotency_claim_replays_and_mismatches(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let now = epoch();
    let keyed = |i: usize, c: IdempotencyClaim| {
        let mut req = p.named(p.reservation(UserId::new(), i, win(1, 1), now));
        req.idempotency = Some(c);
        req
    };
    let first = store.hold(keyed(0, claim("user:a", "k1", 1)), now).await.unwrap();
    assert!(!first.replayed);
    let retry = keyed(1, claim("user:a", "k1", 1));
    let retried_id = retry.reservation.id;
    let again = store.hold(retry, now).await.unwrap();
    assert!(again.replayed && again.events.is_empty());
    assert_eq!(again.reservation, first.reservation);
    assert!(matches!(store.get(retried_id).await, Err(Error::NotFound { .. })), "the retry inserted nothing");
    match store.hold(keyed(1, claim("user:a", "k1", 2)), now).await {
        Err(Error::IdempotencyMismatch { key }) => assert_eq!(key, "k1"),
        other => panic!("expected a mismatch, got {other:?}"),
    }
    let theirs = store.hold(keyed(1, claim("user:b", "k1", 1)), now).await.unwrap();
    assert!(!theirs.replayed, "another scope's key is its own");

    let r = first.reservation;
    let mut u = Update::new(&r, StateSet::of(&[S::Held]), S::PendingPayment, EventKind::PaymentStarted);
    u.idempotency = Some(claim("user:a", "u1", 3));
    let moved = store.update(u.clone(), now).await.unwrap();
    assert!(!moved.replayed);
    let replayed = store.update(u.clone(), now).await.expect("a retry after the state moved on is replayed");
    assert!(replayed.replayed && replayed.events.is_empty());
    assert_eq!(replayed.reservation, moved.reservation);
    let mut other = u;
    other.idempotency = Some(claim("user:a", "u1", 4));
    assert!(matches!(store.update(other, now).await, Err(Error::IdempotencyMismatch { .. })));
    let hold_again = store.hold(keyed(2, claim("user:a", "k1", 1)), now).await.unwrap();
    assert_eq!(hold_again.reservation, moved.reservation, "a replay returns the reservation as it is now");
    assert_eq!(store.last_seq(p.lot.id).await.unwrap(), 3, "replays and mismatches write nothing");
}

/// A request that fails records nothing under its key: the same key then succeeds.
pub async fn port_idempotency_failed_request_records_nothing(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let now = epoch();
    p.hold(&store, UserId::new(), 0, win(1, 1), now).await;
    let keyed = |i: usize| {
        let mut req = p.named(p.reservation(UserId::new(), i, win(1, 1), now));
        req.idempotency = Some(claim("user:a", "k", 1));
        req
    };
    taken(store.hold(keyed(0), now).await, p.spots[0].id, "the taken spot");
    let w = store.hold(keyed(1), now).await.expect("the key is free after a failure");
    assert!(!w.replayed);
    let r = w.reservation;
    let mut stale = Update::new(&r, StateSet::HOLDS, S::PendingPayment, EventKind::PaymentStarted);
    stale.fence = r.fence + 1;
    stale.idempotency = Some(claim("user:a", "u", 2));
    assert!(matches!(store.update(stale.clone(), now).await, Err(Error::StaleFence { .. })));
    stale.fence = r.fence;
    let w = store.update(stale, now).await.expect("the key is free after a failure");
    assert!(!w.replayed);
    assert_eq!(w.reservation.state, S::PendingPayment);
}

/// Every write returns the events it recorded, numbered per lot from 1 without gaps, exactly as
/// the store then reads them back, from any point; unknown lots are `NotFound`.
pub async fn port_events_numbered_per_lot_with_the_write(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let other = Place::in_operator(&store, p.lot.operator, "Other").await;
    assert_eq!(store.last_seq(p.lot.id).await.unwrap(), 0);
    assert!(store.events(p.lot.id, 0, 10).await.unwrap().is_empty());
    let mut written = Vec::new();
    for i in 0..3 {
        let w = p.hold(&store, UserId::new(), i, win(1, 1), at(0)).await;
        written.extend(w.events);
        let r = w.reservation;
        let cancel = Update::new(&r, StateSet::HOLDS, S::Cancelled, EventKind::Cancelled);
        written.extend(store.update(cancel, at(1)).await.unwrap().events);
    }
    let lapsing = p.hold(&store, UserId::new(), 3, win(2, 1), at(1)).await;
    written.extend(lapsing.events);
    written.extend(p.hold(&store, UserId::new(), 3, win(2, 1), at(20)).await.events);
    assert_eq!(written.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=9).collect::<Vec<u64>>());
    assert_eq!(store.events(p.lot.id, 0, 100).await.unwrap(), written, "read back as written");
    assert_eq!(store.events(p.lot.id, 4, 3).await.unwrap(), written[4..7]);
    assert!(store.events(p.lot.id, 9, 10).await.unwrap().is_empty());
    assert_eq!(store.last_seq(p.lot.id).await.unwrap(), 9);
    let o = other.hold(&store, UserId::new(), 0, win(1, 1), at(0)).await;
    assert_eq!(o.events[0].seq, 1, "each lot has its own sequence");
    assert_eq!(store.last_seq(other.lot.id).await.unwrap(), 1);
    assert_eq!(store.last_seq(p.lot.id).await.unwrap(), 9);
    assert!(matches!(store.events(LotId::new(), 0, 10).await, Err(Error::NotFound { .. })));
    assert!(matches!(store.last_seq(LotId::new()).await, Err(Error::NotFound { .. })));
}

/// How far back a resume may go is the `full_event_log` capability: a store with the full log
/// returns every event from 1; one without returns a gapless tail that ends at the latest
/// event. Either way, reading after any retained event resumes right after it.
pub async fn port_events_resume_by_capability(s: StoreSubject) {
    let store = s.store;
    let full = store.capabilities().full_event_log;
    let p = Place::new(&store).await;
    for h in 0..40 {
        p.hold(&store, UserId::new(), (h % 4) as usize, win(h, 1), epoch()).await;
    }
    let last = store.last_seq(p.lot.id).await.unwrap();
    assert_eq!(last, 40);
    let all = store.events(p.lot.id, 0, 1000).await.unwrap();
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    let first = *seqs.first().expect("at least the latest event is kept");
    assert_eq!(seqs, (first..=last).collect::<Vec<u64>>(), "a gapless tail ending at the latest event");
    if full {
        assert_eq!(first, 1, "a store with the full log keeps every event");
    }
    for after in [first - 1, first + (last - first) / 2, last - 1] {
        let page = store.events(p.lot.id, after, 5).await.unwrap();
        assert_eq!(page.first().map(|e| e.seq), Some(after + 1), "resumes right after {after}");
    }
}

/// Gate sessions open and close with updates, in the same step; closing needs an open session.
pub async fn port_sessions_open_and_close(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let now = epoch();
    let r = confirmed(&store, &p, UserId::new(), 0, win(1, 2), now).await;
    let entered = now + SignedDuration::from_mins(55);
    let session = GateSession {
        id: SessionId::new(),
        reservation: r.id,
        entered_at: entered,
        entry_gate: "north".into(),
        exited_at: None,
        exit_gate: None,
        entry_scan: Some("scan-1".into()),
        exit_scan: None,
    };
    let mut enter = Update::new(&r, StateSet::of(&[S::Confirmed]), S::CheckedIn, EventKind::CheckedIn);
    enter.session = Some(SessionChange::Enter(session.clone()));
    let inside = store.update(enter, entered).await.unwrap().reservation;
    assert_eq!(store.sessions(r.id).await.unwrap(), vec![session.clone()]);
    let left = entered + SignedDuration::from_mins(70);
    let mut exit = Update::new(&inside, StateSet::of(&[S::CheckedIn]), S::Completed, EventKind::CheckedOut);
    exit.session = Some(SessionChange::Exit { at: left, gate: "south".into(), scan: Some("scan-2".into()) });
    store.update(exit, left).await.unwrap();
    let closed = GateSession {
        exited_at: Some(left),
        exit_gate: Some("south".into()),
        exit_scan: Some("scan-2".into()),
        ..session
    };
    assert_eq!(store.sessions(r.id).await.unwrap(), vec![closed]);

    let other = confirmed(&store, &p, UserId::new(), 1, win(1, 2), now).await;
    let inside = step(&store, &other, S::CheckedIn, EventKind::CheckedIn, entered).await;
    let mut exit = Update::new(&inside, StateSet::of(&[S::CheckedIn]), S::Completed, EventKind::CheckedOut);
    exit.session = Some(SessionChange::Exit { at: left, gate: "south".into(), scan: None });
    assert!(matches!(store.update(exit, left).await, Err(Error::Invalid { .. })), "no open session");
    assert_eq!(store.get(other.id).await.unwrap().state, S::CheckedIn, "nothing changed");
    assert!(matches!(store.sessions(ReservationId::new()).await, Err(Error::NotFound { .. })));
}

/// `lapsed_holds` lists stored holds past their deadline, oldest deadline first, at most the
/// limit; `unclaimed_before` lists confirmed, never checked-in reservations that started
/// before the cutoff.
pub async fn port_queries_for_the_sweeper(s: StoreSubject) {
    let store = s.store;
    let p = Place::new(&store).await;
    let a = p.hold(&store, UserId::new(), 0, win(1, 1), at(0)).await.reservation;
    let b = p.hold(&store, UserId::new(), 1, win(1, 1), at(2)).await.reservation;
    let c = confirmed(&store, &p, UserId::new(), 2, win(1, 1), at(0)).await;
    let d = confirmed(&store, &p, UserId::new(), 3, win(1, 1), at(0)).await;
    step(&store, &d, S::CheckedIn, EventKind::CheckedIn, at(61)).await;
    let ids = |v: Vec<Reservation>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert!(store.lapsed_holds(at(9), 10).await.unwrap().is_empty());
    assert_eq!(ids(store.lapsed_holds(at(11), 10).await.unwrap()), vec![a.id]);
    assert_eq!(ids(store.lapsed_holds(at(12), 10).await.unwrap()), vec![a.id, b.id], "oldest deadline first");
    assert_eq!(ids(store.lapsed_holds(at(12), 1).await.unwrap()), vec![a.id], "at most the limit");
    assert!(store.unclaimed_before(at(60), 10).await.unwrap().is_empty(), "not started yet");
    assert_eq!(
        ids(store.unclaimed_before(at(61), 10).await.unwrap()),
        vec![c.id],
        "confirmed, never checked in"
    );
}

/// A `shared` store: two handles on the same data (two processes) see each other's writes,
/// race for one spot with one winner, number one lot's events as one sequence, and share
/// idempotency records.
pub async fn port_shared_handles_see_one_another(s: StoreSubject) {
    if !s.store.capabilities().shared {
        eprintln!("not shared: nothing to check");
        return;
    }
    let (a, b) = (s.store.clone(), s.reopen().await);
    let p = Place::new(&a).await;
    assert_eq!(b.lot(p.lot.id).await.unwrap(), p.lot);
    let now = epoch();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let req = p.named(p.reservation(UserId::new(), 0, win(1 + (i % 3), 3), now));
            tokio::spawn(async move { store.hold(req, now).await })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(w) => won.push(w.reservation),
            Err(Error::Conflict { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won.len(), 1, "one winner across both handles");
    assert_eq!(b.get(won[0].id).await.unwrap(), won[0]);
    let x = p.hold(&a, UserId::new(), 1, win(1, 1), now).await;
    let y = p.hold(&b, UserId::new(), 2, win(1, 1), now).await;
    assert_eq!((x.events[0].seq, y.events[0].seq), (2, 3), "one sequence per lot");
    let mut req = p.named(p.reservation(UserId::new(), 3, win(1, 1), now));
    req.idempotency = Some(claim("user:s", "k", 1));
    let first = a.hold(req.clone(), now).await.unwrap();
    req.reservation.id = ReservationId::new();
    let again = b.hold(req, now).await.unwrap();
    assert!(again.replayed && again.reservation.id == first.reservation.id, "idempotency records are shared");
}

/// A `durable` store: what was written is there for a new handle (a restarted process):
/// reservations, events, idempotency records and fencing counters.
pub async fn port_durable_writes_survive_a_reopen(s: StoreSubject) {
    if !s.store.capabilities().durable {
        eprintln!("not durable: nothing to check");
        return;
    }
    let store = s.store.clone();
    let p = Place::new(&store).await;
    let now = epoch();
    let mut req = p.named(p.reservation(UserId::new(), 0, win(1, 2), now));
    req.idempotency = Some(claim("user:d", "k", 1));
    let held = store.hold(req.clone(), now).await.unwrap().reservation;
    let mut u = Update::new(&held, StateSet::HOLDS, S::Confirmed, EventKind::Confirmed);
    u.payment = Some(payment(&held, true));
    let kept = store.update(u, now).await.unwrap().reservation;
    let events = store.events(p.lot.id, 0, 100).await.unwrap();

    let reopened = s.reopen().await;
    assert_eq!(reopened.operator(p.lot.operator).await.unwrap().id, p.lot.operator);
    assert_eq!(reopened.spots(p.lot.id).await.unwrap(), p.spots);
    assert_eq!(reopened.get(kept.id).await.unwrap(), kept, "the confirmed reservation survives");
    assert_eq!(reopened.events(p.lot.id, 0, 100).await.unwrap(), events);
    assert_eq!(reopened.last_seq(p.lot.id).await.unwrap(), 2);
    req.reservation.id = ReservationId::new();
    let again = reopened.hold(req, now).await.unwrap();
    assert!(again.replayed && again.reservation == kept, "the idempotency record survives");
    let later = at(60 * 24);
    let probe = p.reservation(UserId::new(), 0, win(2, 1), later);
    taken(reopened.hold(p.named(probe), later).await, p.spots[0].id, "it still blocks its spot");
    let next = p.hold(&reopened, UserId::new(), 0, win(5, 1), later).await.reservation;
    assert!(next.fence > kept.fence, "the fencing counter survives");
    let spots: HashSet<SpotId> =
        reopened.live_in_lot(p.lot.id, &win(0, 12), later).await.unwrap().iter().map(|r| r.spot).collect();
    assert_eq!(spots, HashSet::from([p.spots[0].id]));
}

/// Cancels `r` (confirmed) at `now`, revoking its passes in the same step.
async fn cancel_revoking(store: &Store, r: &Reservation, now: Timestamp) -> crate::Result<Written> {
    let mut u = Update::new(r, StateSet::of(&[S::Confirmed]), S::Cancelled, EventKind::Cancelled);
    u.revoke = Some(NewRevocation { pass: None, reason: RevocationReason::Cancelled });
    store.update(u, now).await
}

fn versions(d: &RevocationDelta) -> Vec<u64> {
    d.revocations.iter().map(|r| r.version).collect()
}

/// Revocations are written with the update that asks for them and numbered 1, 2, 3, … without
/// gaps; a failed update records none; `revocations(after)` returns exactly what follows
/// `after` (pages cut by `limit` end at `to`), and `revocations_of` a reservation's own.
pub async fn port_revocations_numbered_with_the_update(s: StoreSubject) {
    let store = s.store.clone();
    let p = Place::new(&store).await;
    let now = epoch();
    let empty = store.revocations(0, 100).await.unwrap();
    assert_eq!((empty.from, empty.to, empty.revocations.len()), (0, 0, 0), "an empty store is at version 0");
    let mut cancelled = Vec::new();
    for i in 0..3 {
        let r = confirmed(&store, &p, UserId::new(), i, win(1, 2), now).await;
        let w = cancel_revoking(&store, &r, at(i as i64)).await.unwrap();
        assert_eq!(w.reservation.state, S::Cancelled);
        cancelled.push(w.reservation);
    }
    // A cancellation refused (stale fence) revokes nothing; an update without `revoke` neither.
    let other = confirmed(&store, &p, UserId::new(), 3, win(1, 2), now).await;
    let mut stale = other.clone();
    stale.fence += 7;
    assert!(matches!(cancel_revoking(&store, &stale, now).await, Err(Error::StaleFence { .. })));
    step(&store, &other, S::CheckedIn, EventKind::CheckedIn, now).await;

    let all = store.revocations(0, 100).await.unwrap();
    assert_eq!((all.from, all.to, versions(&all)), (0, 3, vec![1, 2, 3]));
    for (i, (rev, r)) in all.revocations.iter().zip(&cancelled).enumerate() {
        assert_eq!(rev.reservation, r.id);
        assert_eq!((rev.pass, rev.reason), (None, RevocationReason::Cancelled));
        assert_eq!(rev.at.as_second(), at(i as i64).as_second(), "made at the update's time");
    }
    let mut local = crate::pass::RevocationList::new();
    assert_eq!(local.apply(&all).unwrap(), 3, "a gate applies the delta as it is");
    let rest = store.revocations(1, 100).await.unwrap();
    assert_eq!((rest.from, rest.to, versions(&rest)), (1, 3, vec![2, 3]), "exactly what follows");
    let page = store.revocations(0, 2).await.unwrap();
    assert_eq!((page.from, page.to, versions(&page)), (0, 2, vec![1, 2]), "a page ends at its last");
    let none = store.revocations(3, 100).await.unwrap();
    assert_eq!((none.from, none.to, none.revocations.len()), (3, 3, 0));
    let ahead = store.revocations(99, 100).await.unwrap();
    assert_eq!((ahead.from, ahead.to, ahead.revocations.len()), (3, 3, 0), "a gate ahead is told the latest");
    let of = store.revocations_of(cancelled[1].id).await.unwrap();
    assert_eq!(of, vec![all.revocations[1]]);
    assert!(store.revocations_of(other.id).await.unwrap().is_empty());
    assert!(store.revocations_of(ReservationId::new()).await.unwrap().is_empty());
}

/// Cancellations racing (on one spot's neighbours and across spots) get distinct, consecutive
/// versions: 1 ..= n, each reservation once.
pub async fn port_revocations_race_distinct_consecutive(s: StoreSubject) {
    let store = s.store.clone();
    let p = Place::new(&store).await;
    let now = epoch();
    let n = 24;
    let mut rs = Vec::new();
    for i in 0..n {
        rs.push(confirmed(&store, &p, UserId::new(), i % 4, win(2 * (i as i64 / 4), 2), now).await);
    }
    // Through a second handle too when the store is shared: one counter for every process.
    let other = if s.store.capabilities().shared { s.reopen().await } else { store.clone() };
    let tasks: Vec<_> = rs
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, r)| {
            let store = if i % 2 == 0 { store.clone() } else { other.clone() };
            tokio::spawn(async move { cancel_revoking(&store, &r, now).await.map(|w| w.reservation.id) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("cancel");
    }
    let all = store.revocations(0, 1000).await.unwrap();
    assert_eq!(versions(&all), (1..=n as u64).collect::<Vec<_>>(), "distinct and consecutive");
    assert_eq!(all.to, n as u64);
    let ids: HashSet<ReservationId> = all.revocations.iter().map(|r| r.reservation).collect();
    assert_eq!(ids, rs.iter().map(|r| r.id).collect::<HashSet<_>>(), "each cancellation once");
}

/// A `shared` or `durable` store: another handle (another replica, or the process restarted)
/// sees the revocations, continues their numbering, and finds the recorded gate readings.
pub async fn port_revocations_seen_from_a_reopened_handle(s: StoreSubject) {
    let caps = s.store.capabilities();
    if !caps.shared && !caps.durable {
        eprintln!("neither shared nor durable: nothing to check");
        return;
    }
    let store = s.store.clone();
    let p = Place::new(&store).await;
    let now = epoch();
    let a = confirmed(&store, &p, UserId::new(), 0, win(1, 2), now).await;
    cancel_revoking(&store, &a, now).await.unwrap();
    let rec = scan_record(&p, "gate-7:0001", Some(a.id));
    assert_eq!(store.record_scan(&rec).await.unwrap(), rec);
    let before = store.revocations(0, 100).await.unwrap();

    let reopened = s.reopen().await;
    assert_eq!(reopened.revocations(0, 100).await.unwrap(), before, "the same answer from another handle");
    assert_eq!(reopened.revocations_of(a.id).await.unwrap(), before.revocations);
    let b = confirmed(&reopened, &p, UserId::new(), 1, win(1, 2), now).await;
    cancel_revoking(&reopened, &b, now).await.unwrap();
    let after = store.revocations(1, 100).await.unwrap();
    assert_eq!((versions(&after), after.revocations[0].reservation), (vec![2], b.id), "one numbering");
    assert_eq!(reopened.scan_record(p.lot.id, "gate-7:0001").await.unwrap(), Some(rec));
}

fn scan_record(p: &Place, scan_id: &str, reservation: Option<ReservationId>) -> ScanRecord {
    ScanRecord {
        scan_id: scan_id.into(),
        lot: p.lot.id,
        gate: "north".into(),
        direction: Direction::Entry,
        at: at(5),
        reservation,
        gate_decision: Decision::Allow,
        decision: Decision::Refuse(Refusal::Revoked),
        applied: false,
        conflict: Some(ScanConflict::AllowedButRefused),
        recorded_at: at(90),
    }
}

/// A gate reading is recorded once per `(lot, scan id)`: recording it again returns the first
/// record unchanged; the same id in another lot is another reading; an unknown lot is
/// `NotFound`.
pub async fn port_scan_records_are_kept_once(s: StoreSubject) {
    let store = s.store.clone();
    let p = Place::new(&store).await;
    let q = Place::in_operator(&store, p.lot.operator, "Other").await;
    assert_eq!(store.scan_record(p.lot.id, "s-1").await.unwrap(), None);
    let first = scan_record(&p, "s-1", None);
    assert_eq!(store.record_scan(&first).await.unwrap(), first);
    let mut second = first.clone();
    second.decision = Decision::Allow;
    second.conflict = None;
    second.recorded_at = at(200);
    assert_eq!(store.record_scan(&second).await.unwrap(), first, "the first record stands");
    assert_eq!(store.scan_record(p.lot.id, "s-1").await.unwrap(), Some(first.clone()));
    let elsewhere = scan_record(&q, "s-1", None);
    assert_eq!(store.record_scan(&elsewhere).await.unwrap(), elsewhere, "ids are per lot");
    let mut lost = first.clone();
    lost.lot = LotId::new();
    assert!(matches!(store.record_scan(&lost).await, Err(Error::NotFound { .. })));
    // Many uploads of one reading at once: one record.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let mut r = scan_record(&p, "s-race", None);
            r.recorded_at = at(300 + i);
            tokio::spawn(async move { store.record_scan(&r).await.unwrap() })
        })
        .collect();
    let mut seen = HashSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap().recorded_at);
    }
    assert_eq!(seen.len(), 1, "every concurrent upload gets the one record");
}
