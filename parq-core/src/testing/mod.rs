//! The conformance suites every adapter runs, one per port, and helpers for tests.
//!
//! An adapter crate runs its port's suite with one line, giving an async expression that makes
//! a fresh, empty instance (a new schema, a new key prefix) for each test:
//!
//! ```text
//! parq_core::store_conformance!(async { Arc::new(MemoryStore::new()) as Arc<DynReservationStore> });
//! parq_core::lock_conformance!(async { Arc::new(MemoryLock::new(clock)) as Arc<DynAdmissionLock> });
//! parq_core::notifier_conformance!(async { Arc::new(BroadcastNotifier::default()) as Arc<DynNotifier> });
//! parq_core::gateway_conformance!(async { Arc::new(TestGatewayHarness::new()) as Arc<dyn GatewayHarness> });
//! ```
//!
//! Each case becomes its own named `#[tokio::test]`, so the test output lists every case per
//! adapter and a failure names the case. Cases choose their expectations by
//! [`Capabilities`](crate::Capabilities), never by backend name. A store that is `shared` or
//! `durable` gives the suite a [`StoreSubject`] with a way to open a second handle on the same
//! data ([`StoreSubject::with_reopen`]); the cases that check those capabilities use it.
//!
//! Each port's cases are listed once, in a `__*_cases!` macro next to the `*_conformance!`
//! macro that expands them; a unit test compares each list with the `pub async fn` items of the
//! case module, so a case cannot be written and forgotten (and a listed case that does not
//! exist does not compile).

pub mod cases;
pub mod gateway;
pub mod lock;
pub mod notifier;
pub mod store;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
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
        reentry: crate::pass::ReentryPolicy::NotAllowed,
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

/// A store under test, with what the capability-picked cases need besides it.
///
/// The store macro accepts an expression that yields either an `Arc<DynReservationStore>` or a
/// `StoreSubject`; a store whose [`Capabilities`](crate::Capabilities) say `shared` or `durable`
/// must give a subject [`with_reopen`](Self::with_reopen), or the cases of those capabilities
/// fail.
pub struct StoreSubject {
    /// The store.
    pub store: Arc<DynReservationStore>,
    reopen: Option<Reopen>,
}

type Reopen = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Arc<DynReservationStore>> + Send>> + Send + Sync>;

impl StoreSubject {
    /// The store alone: no second handle.
    pub fn new(store: Arc<DynReservationStore>) -> Self {
        Self { store, reopen: None }
    }

    /// With `reopen`, which opens another handle on the same data, as another process or the
    /// same one after a restart would (for PostgreSQL: a new pool on the same schema).
    pub fn with_reopen<F, Fut>(mut self, reopen: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Arc<DynReservationStore>> + Send + 'static,
    {
        self.reopen = Some(Box::new(move || Box::pin(reopen())));
        self
    }

    /// Another handle on the same data.
    ///
    /// # Panics
    /// When the subject was made without [`with_reopen`](Self::with_reopen): a store that
    /// declares `shared` or `durable` must give the suite a way to check it.
    pub async fn reopen(&self) -> Arc<DynReservationStore> {
        match &self.reopen {
            Some(f) => f().await,
            None => panic!(
                "the store declares {:?} but its conformance subject has no second handle: \
                 give the suite a StoreSubject::with_reopen",
                self.store.capabilities()
            ),
        }
    }
}

impl fmt::Debug for StoreSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSubject")
            .field("store", &self.store)
            .field("reopen", &self.reopen.is_some())
            .finish()
    }
}

impl From<Arc<DynReservationStore>> for StoreSubject {
    fn from(store: Arc<DynReservationStore>) -> Self {
        Self::new(store)
    }
}

impl From<StoreSubject> for Arc<DynReservationStore> {
    fn from(subject: StoreSubject) -> Self {
        subject.store
    }
}

/// Not part of the API: expands a list of cases, either as one `#[tokio::test]` each
/// (`tests [module path] make;`), each calling the case with `make.await` converted with
/// `Into`, or as the list of their names (`names [module path];`).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance {
    (tests $module:tt $make:expr; $($case:ident),* $(,)?) => {
        $($crate::__conformance! { @test $module $make; $case })*
    };
    (names $module:tt; $($case:ident),* $(,)?) => {{
        $(let _ = $crate::__conformance! { @path $module $case };)*
        &[$(::core::stringify!($case)),*]
    }};
    (@test [$($module:tt)*] $make:expr; $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            let subject = $make.await;
            $($module)*::$case(::core::convert::Into::into(subject)).await;
        }
    };
    (@path [$($module:tt)*] $case:ident) => {
        $($module)*::$case
    };
}

/// Not part of the API: the store cases that go through the engine ([`cases`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_engine_cases {
    ($mode:ident $($make:expr)?) => {
        $crate::__conformance! { $mode [$crate::testing::cases] $($make)?;
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
            cancel_revokes_the_pass_in_the_store,
            lot_reentry_policy_decides_a_second_entry,
            offline_scans_are_recorded_once,
            watch_resumes_from_a_sequence_number,
        }
    };
}

/// Not part of the API: the store cases that call the port directly ([`store`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_port_cases {
    ($mode:ident $($make:expr)?) => {
        $crate::__conformance! { $mode [$crate::testing::store] $($make)?;
            port_hold_inserts_with_a_fence_and_an_event,
            port_hold_fence_follows_the_lock_fence,
            port_hold_refuses_overlaps_half_open,
            port_hold_picks_the_first_free_candidate,
            port_hold_retires_lapsed_overlaps,
            port_hold_checks_per_user_limits,
            port_update_refuses_a_stale_fence,
            port_update_refuses_a_wrong_state,
            port_update_moves_through_the_state_machine,
            port_update_checks_the_window_it_moves_to,
            port_update_reinstates_only_when_free,
            port_update_bump_fence_takes_the_spots_next_fence,
            port_update_race_one_winner,
            port_idempotency_claim_replays_and_mismatches,
            port_idempotency_failed_request_records_nothing,
            port_events_numbered_per_lot_with_the_write,
            port_events_resume_by_capability,
            port_sessions_open_and_close,
            port_queries_for_the_sweeper,
            port_shared_handles_see_one_another,
            port_durable_writes_survive_a_reopen,
            port_revocations_numbered_with_the_update,
            port_revocations_race_distinct_consecutive,
            port_revocations_seen_from_a_reopened_handle,
            port_scan_records_are_kept_once,
        }
    };
}

/// Expands one `#[tokio::test]` per store conformance case (the engine-level ones of
/// [`cases`] and the port-level ones of [`store`]), each calling `$make`: an async expression
/// that returns a fresh store, as an `Arc<DynReservationStore>` or a [`StoreSubject`]. The
/// calling crate needs `tokio` with the `macros` and `rt-multi-thread` features among its
/// dev-dependencies.
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::__store_engine_cases!(tests $make);
        $crate::__store_port_cases!(tests $make);
    };
}

/// Not part of the API: the admission-lock cases ([`lock`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __lock_cases {
    ($mode:ident $($make:expr)?) => {
        $crate::__conformance! { $mode [$crate::testing::lock] $($make)?;
            lock_claims_conflict_and_repeat,
            lock_pooled_claims_take_the_first_free,
            lock_retain_and_release_check_the_token,
            lock_rebuild_replaces_claims_and_raises_fences,
            lock_race_64_claimants_one_grant,
        }
    };
}

/// Expands one `#[tokio::test]` per admission-lock case, each calling `$make` (an async
/// expression returning a fresh `Arc<DynAdmissionLock>` that reads the system clock).
#[macro_export]
macro_rules! lock_conformance {
    ($make:expr) => {
        $crate::__lock_cases!(tests $make);
    };
}

/// Not part of the API: the notifier cases ([`notifier`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __notifier_cases {
    ($mode:ident $($make:expr)?) => {
        $crate::__conformance! { $mode [$crate::testing::notifier] $($make)?;
            notifier_delivers_in_order_per_lot,
            notifier_later_subscribers_see_later_events,
            notifier_every_subscriber_gets_every_event,
        }
    };
}

/// Expands one `#[tokio::test]` per notifier case, each calling `$make` (an async expression
/// returning a fresh `Arc<DynNotifier>`).
#[macro_export]
macro_rules! notifier_conformance {
    ($make:expr) => {
        $crate::__notifier_cases!(tests $make);
    };
}

/// Not part of the API: the payment-gateway cases ([`gateway`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __gateway_cases {
    ($mode:ident $($make:expr)?) => {
        $crate::__conformance! { $mode [$crate::testing::gateway] $($make)?;
            gateway_create_intent_is_idempotent_on_its_key,
            gateway_payment_authorises_and_capture_moves_money_once,
            gateway_cancel_voids_an_uncaptured_intent,
            gateway_refund_returns_captured_money_once,
            gateway_refund_only_what_was_captured,
            gateway_refund_reaches_only_its_reservations_intent,
            gateway_unknown_intent_is_not_found,
            gateway_webhook_verified_and_parsed,
            gateway_webhook_refused_when_not_genuine,
            gateway_webhook_foreign_events_are_ignorable,
        }
    };
}

/// Expands one `#[tokio::test]` per payment-gateway case, each calling `$make` (an async
/// expression returning a fresh `Arc<dyn GatewayHarness>`: the gateway with a way to act as
/// the driver and as the provider's webhook sender).
#[macro_export]
macro_rules! gateway_conformance {
    ($make:expr) => {
        $crate::__gateway_cases!(tests $make);
    };
}

#[cfg(test)]
mod lists {
    //! Every case function of a module is in its port's list, once.

    use std::collections::BTreeSet;

    /// The names of the module's `pub async fn` items (cases are exactly those).
    fn defined(source: &'static str) -> BTreeSet<&'static str> {
        source
            .lines()
            .filter_map(|l| l.strip_prefix("pub async fn "))
            .map(|rest| rest.split(['(', '<']).next().unwrap_or_default().trim())
            .collect()
    }

    fn listed(names: &[&'static str]) -> BTreeSet<&'static str> {
        let set: BTreeSet<&'static str> = names.iter().copied().collect();
        assert_eq!(set.len(), names.len(), "a case is listed twice: {names:?}");
        set
    }

    #[test]
    fn store_engine_cases_are_all_listed() {
        assert_eq!(listed(crate::__store_engine_cases!(names)), defined(include_str!("cases.rs")));
    }

    #[test]
    fn store_port_cases_are_all_listed() {
        assert_eq!(listed(crate::__store_port_cases!(names)), defined(include_str!("store.rs")));
    }

    #[test]
    fn lock_cases_are_all_listed() {
        assert_eq!(listed(crate::__lock_cases!(names)), defined(include_str!("lock.rs")));
    }

    #[test]
    fn notifier_cases_are_all_listed() {
        assert_eq!(listed(crate::__notifier_cases!(names)), defined(include_str!("notifier.rs")));
    }

    #[test]
    fn gateway_cases_are_all_listed() {
        assert_eq!(listed(crate::__gateway_cases!(names)), defined(include_str!("gateway.rs")));
    }

    #[test]
    fn the_reader_finds_cases() {
        let src = "pub async fn a(x: u8) {}\n    pub async fn nested() {}\npub async fn b<T>(t: T) {}\nasync fn c() {}\n";
        assert_eq!(defined(src), BTreeSet::from(["a", "b"]));
    }
}
