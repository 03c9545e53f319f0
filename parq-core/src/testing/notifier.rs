//! The [`Notifier`](crate::Notifier) conformance cases. Each takes a fresh notifier.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use jiff::SignedDuration;

use super::epoch;
use crate::ids::{LotId, ReservationId, SpotId, UserId};
use crate::ports::notifier::DynNotifier;
use crate::reservation::{Event, EventKind, ReservationState};
use crate::time::Window;

type Notifier = Arc<DynNotifier>;

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
pub async fn notifier_delivers_in_order_per_lot(notifier: Notifier) {
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
pub async fn notifier_later_subscribers_see_later_events(notifier: Notifier) {
    let lot = LotId::new();
    notifier.publish(&[event(lot, 1)]).await.unwrap();
    let mut s = notifier.subscribe(Some(lot)).await.unwrap();
    notifier.publish(&[event(lot, 2)]).await.unwrap();
    assert_eq!(next(&mut s).await.seq, 2);
}

/// Every subscriber of a lot gets every event, unchanged; publishing nothing is allowed and
/// delivers nothing; a subscriber of another lot hears nothing of this one.
pub async fn notifier_every_subscriber_gets_every_event(notifier: Notifier) {
    let (lot, other) = (LotId::new(), LotId::new());
    let mut subs = Vec::new();
    for _ in 0..3 {
        subs.push(notifier.subscribe(Some(lot)).await.unwrap());
    }
    let mut elsewhere = notifier.subscribe(Some(other)).await.unwrap();
    notifier.publish(&[]).await.expect("publishing nothing");
    let events: Vec<Event> = (1..=5).map(|seq| event(lot, seq)).collect();
    notifier.publish(&events).await.unwrap();
    notifier.publish(&[event(other, 1)]).await.unwrap();
    for s in &mut subs {
        for e in &events {
            assert_eq!(&next(s).await, e, "each subscriber gets the event as published");
        }
    }
    let e = next(&mut elsewhere).await;
    assert_eq!((e.lot, e.seq), (other, 1), "the other lot's subscriber hears only its lot");
}
