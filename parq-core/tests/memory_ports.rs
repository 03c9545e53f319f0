//! The admission-lock, notifier and payment-gateway conformance cases against the in-memory
//! adapters.

use std::sync::Arc;

use parq_core::memory::{BroadcastNotifier, MemoryLock};
use parq_core::testing::gateway::{GatewayHarness, TestGatewayHarness};
use parq_core::{DynAdmissionLock, DynNotifier, SystemClock};

mod memory_lock {
    use super::*;
    parq_core::lock_conformance!(async {
        Arc::new(MemoryLock::new(Arc::new(SystemClock))) as Arc<DynAdmissionLock>
    });
}

mod broadcast_notifier {
    use super::*;
    parq_core::notifier_conformance!(async { Arc::new(BroadcastNotifier::default()) as Arc<DynNotifier> });
}

mod test_gateway {
    use super::*;
    parq_core::gateway_conformance!(async { Arc::new(TestGatewayHarness::new()) as Arc<dyn GatewayHarness> });
}

mod engine_with_lock {
    //! The engine with `MemoryLock` in front of `MemoryStore`: losers are turned away by the
    //! lock, and the store's data still shows exactly one winner.

    use std::sync::Arc;

    use jiff::SignedDuration;
    use parq_core::memory::{MemoryLock, MemoryStore};
    use parq_core::testing::Fixture;
    use parq_core::{
        AdmissionLock, Claim, DynAdmissionLock, DynReservationStore, Error, ReservationId, UserId,
    };

    async fn fixture() -> (Fixture, Arc<MemoryLock>) {
        let mut made = None;
        let f = Fixture::with_lock(Arc::new(MemoryStore::new()) as Arc<DynReservationStore>, |clock| {
            let lock = Arc::new(MemoryLock::new(clock));
            made = Some(lock.clone());
            Some(lock as Arc<DynAdmissionLock>)
        })
        .await;
        (f, made.expect("the lock was made"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn race_through_the_lock_has_one_winner_in_the_store() {
        let (f, _) = fixture().await;
        let w = f.window(1, 2);
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let f = f.clone();
                tokio::spawn(async move { f.engine.hold(&f.named(UserId::new(), 0, w), None).await })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => wins += 1,
                Err(Error::Conflict { .. }) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(wins, 1);
        assert_eq!(f.store.live_in_lot(f.lot.id, &w, f.clock.now_ts()).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_lapsed_claim_frees_the_spot_with_a_larger_fence() {
        let (f, lock) = fixture().await;
        let w = f.window(1, 1);
        let first = f.engine.hold(&f.named(UserId::new(), 0, w), None).await.unwrap();
        // The lock keeps the claim until the hold's deadline.
        let probe = Claim {
            lot: f.lot.id,
            candidates: vec![f.spots[0].id],
            window: w,
            token: ReservationId::new(),
            ttl: SignedDuration::from_mins(1),
        };
        assert!(matches!(lock.claim(&probe).await, Err(Error::Conflict { .. })));
        f.advance_mins(10);
        let second = f.engine.hold(&f.named(UserId::new(), 0, w), None).await.unwrap();
        assert!(second.fence > first.fence);
    }

    #[tokio::test]
    async fn a_retried_hold_with_its_key_replays_through_the_lock() {
        let (f, _) = fixture().await;
        let spec = f.named(UserId::new(), 1, f.window(2, 1));
        let a = f.engine.hold(&spec, Some("k")).await.unwrap();
        let b = f.engine.hold(&spec, Some("k")).await.unwrap();
        assert_eq!(a.id, b.id);
    }

    #[tokio::test]
    async fn a_lock_that_lost_its_state_cannot_double_book() {
        let (f, lock) = fixture().await;
        let w = f.window(1, 1);
        f.engine.hold(&f.named(UserId::new(), 0, w), None).await.unwrap();
        // The lock forgets everything (a restart): the store still refuses the overlap.
        lock.rebuild(f.lot.id, &[]).await.unwrap();
        assert!(matches!(
            f.engine.hold(&f.named(UserId::new(), 0, w), None).await,
            Err(Error::Conflict { .. })
        ));
        assert_eq!(f.store.live_in_lot(f.lot.id, &w, f.clock.now_ts()).await.unwrap().len(), 1);
    }
}

mod merged_notifier {
    //! A merged notifier hears every notifier it merges.
    use std::time::Duration;

    use futures_util::StreamExt;
    use parq_core::{
        Event, EventKind, LotId, MergedNotifier, Notifier, ReservationId, ReservationState, SpotId,
    };
    use parq_core::{UserId, Window};

    use super::*;

    fn event(lot: LotId, seq: u64) -> Event {
        let at = parq_core::testing::epoch();
        Event {
            lot,
            seq,
            at,
            kind: EventKind::Held,
            reservation: ReservationId::new(),
            spot: SpotId::new(),
            user: UserId::new(),
            window: Window::new(at, at + parq_core::jiff::SignedDuration::from_hours(1)).unwrap(),
            state: ReservationState::Held,
        }
    }

    async fn next(s: &mut parq_core::EventStream) -> u64 {
        tokio::time::timeout(Duration::from_secs(5), s.next()).await.unwrap().unwrap().unwrap().seq
    }

    #[tokio::test]
    async fn hears_every_notifier_it_merges() {
        let (a, b) = (Arc::new(BroadcastNotifier::default()), Arc::new(BroadcastNotifier::default()));
        let merged = MergedNotifier::new(vec![a.clone() as Arc<DynNotifier>, b.clone() as Arc<DynNotifier>]);
        let lot = LotId::new();
        let mut s = merged.subscribe(Some(lot)).await.unwrap();
        a.publish(&[event(lot, 1)]).await.unwrap();
        assert_eq!(next(&mut s).await, 1);
        b.publish(&[event(lot, 2)]).await.unwrap();
        assert_eq!(next(&mut s).await, 2);
        merged.publish(&[event(lot, 3)]).await.unwrap();
        let mut got = vec![next(&mut s).await, next(&mut s).await];
        got.sort_unstable();
        assert_eq!(got, vec![3, 3], "published through both, heard once from each");
    }
}
