//! The conformance suite every [`ReservationStore`](crate::ReservationStore) runs, and helpers
//! for tests.
//!
//! An adapter crate runs the whole suite with one line, giving an async expression that makes
//! a fresh, empty store (a new schema, a new key prefix) for each test:
//!
//! ```text
//! parq_core::store_conformance!(async { Arc::new(MemoryStore::new()) as Arc<DynReservationStore> });
//! ```
//!
//! Each case becomes its own named `#[tokio::test]`, so a failure names the case. Cases choose
//! their expectations by [`Capabilities`](crate::Capabilities), never by backend name.

pub mod cases;
pub mod ports;

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::catalog::{
    CancellationPolicy, GeoPoint, Lot, OpeningHours, Operator, RateLine, RateTable, Spot, SpotAttributes,
    SpotSize,
};
use crate::engine::{Engine, HoldSpec, SpotChoice};
use crate::ids::{LotId, OperatorId, SpotId, UserId};
use crate::memory::TestGateway;
use crate::money::Currency;
use crate::ports::store::DynReservationStore;
use crate::time::{ManualClock, Window};

/// The instant every fixture's clock starts at: a Monday, 08:00 UTC.
pub fn epoch() -> Timestamp {
    "2030-01-07T08:00:00Z".parse().expect("valid instant")
}

/// A lot with four spots (`A-1`, `A-2` with EV chargers, `A-3`, `A-4`), 15-minute granularity,
/// 10-minute holds, 2.00 EUR per started hour capped at 15.00 per day, full refund until two
/// hours before the start and half after, 15 minutes of grace.
pub fn sample_lot(operator: OperatorId, name: &str, location: GeoPoint) -> (Lot, Vec<Spot>) {
    let lot = Lot {
        id: LotId::new(),
        operator,
        name: name.to_owned(),
        location,
        time_zone: "Asia/Nicosia".into(),
        granularity: SignedDuration::from_mins(15),
        hold_ttl: SignedDuration::from_mins(10),
        max_stay: SignedDuration::from_hours(72),
        grace: SignedDuration::from_mins(15),
        max_holds_per_user: None,
        rates: RateTable {
            currency: Currency::EUR,
            lines: vec![RateLine::Incrementing {
                after_minutes: 0,
                every_minutes: 60,
                amount: 200,
                until_minutes: None,
            }],
            daily_cap: Some(1500),
        },
        cancellation: CancellationPolicy {
            full_refund_before: SignedDuration::from_hours(2),
            late_refund_percent: 50,
        },
        opening_hours: OpeningHours::Always,
        blackouts: vec![],
    };
    let spots = (1..=4)
        .map(|i| Spot {
            id: SpotId::new(),
            lot: lot.id,
            label: format!("A-{i}"),
            attributes: SpotAttributes { ev: i <= 2, accessible: i == 4, size: SpotSize::Standard },
        })
        .collect();
    (lot, spots)
}

/// A store with an operator and one sample lot, an engine over it with a manual clock and a
/// test gateway.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The store under test.
    pub store: Arc<DynReservationStore>,
    /// The clock every deadline follows.
    pub clock: Arc<ManualClock>,
    /// The gateway, to act as the driver and script failures.
    pub gateway: Arc<TestGateway>,
    /// The engine.
    pub engine: Engine,
    /// The operator.
    pub operator: Operator,
    /// The lot.
    pub lot: Lot,
    /// Its spots, in label order.
    pub spots: Vec<Spot>,
}

impl Fixture {
    /// Sets up the fixture on `store` (which must be empty).
    pub async fn new(store: Arc<DynReservationStore>) -> Fixture {
        Self::with_lock(store, |_| None).await
    }

    /// Sets up the fixture on `store` with an admission lock in front of it, made from the
    /// fixture's clock.
    pub async fn with_lock(
        store: Arc<DynReservationStore>,
        lock: impl FnOnce(Arc<ManualClock>) -> Option<Arc<crate::DynAdmissionLock>>,
    ) -> Fixture {
        let clock = Arc::new(ManualClock::new(epoch()));
        let gateway = Arc::new(TestGateway::new(b"whsec_conformance".to_vec()));
        let mut builder = Engine::builder(store.clone(), gateway.clone()).clock(clock.clone());
        if let Some(lock) = lock(clock.clone()) {
            builder = builder.lock(lock);
        }
        let engine = builder.build();
        let operator =
            Operator { id: OperatorId::new(), name: "Conformance Parking".into(), max_holds_per_user: None };
        engine.put_operator(&operator).await.expect("put operator");
        let (lot, spots) = sample_lot(operator.id, "Central", GeoPoint { lat: 35.1725, lon: 33.3617 });
        engine.put_lot(&lot).await.expect("put lot");
        for s in &spots {
            engine.put_spot(s).await.expect("put spot");
        }
        Fixture { store, clock, gateway, engine, operator, lot, spots }
    }

    /// The window from `h` hours after the epoch, lasting `len` hours.
    pub fn window(&self, h: i64, len: i64) -> Window {
        Window::new(epoch() + SignedDuration::from_hours(h), epoch() + SignedDuration::from_hours(h + len))
            .expect("positive window")
    }

    /// A hold request for spot `i` (0-based) of the lot.
    pub fn named(&self, user: UserId, i: usize, window: Window) -> HoldSpec {
        HoldSpec { user, lot: self.lot.id, choice: SpotChoice::Spot { spot: self.spots[i].id }, window }
    }

    /// Moves the clock forward by `mins` minutes.
    pub fn advance_mins(&self, mins: i64) {
        self.clock.advance(SignedDuration::from_mins(mins));
    }
}

/// Expands one `#[tokio::test]` per conformance case, each calling `$make` (an async expression
/// that returns a fresh `Arc<DynReservationStore>`). The calling crate needs `tokio` with the
/// `macros` and `rt-multi-thread` features among its dev-dependencies.
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            catalog_round_trip,
            hold_named_spot,
            overlapping_windows_conflict,
            race_64_tasks_one_winner,
            pooled_hold_takes_matching_free_spots,
            pooled_race_fills_each_spot_once,
            lapsed_hold_frees_the_spot,
            sweeper_expires_lapsed_holds,
            idempotent_hold_replays,
            stale_fence_is_refused,
            transitions_follow_the_state_machine,
            events_are_numbered_without_gaps,
            per_user_hold_limits,
            payment_confirms_and_captures_once,
            late_payment_reinstates_when_free,
            late_payment_is_refunded_when_taken,
            failed_payment_allows_another_attempt,
            cancel_refunds_by_policy,
            extend_respects_the_next_booking,
            no_show_is_released,
            availability_and_search,
            gate_sessions_count_a_scan_once,
            watch_resumes_from_a_sequence_number,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let store = $make.await;
                $crate::testing::cases::$case(store).await;
            }
        )*
    };
}
