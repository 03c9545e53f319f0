#![doc = include_str!("../README.md")]

pub mod catalog;
pub mod engine;
pub mod error;
pub mod ids;
pub mod memory;
pub mod money;
pub mod pass;
pub mod ports;
pub mod reservation;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;

pub use catalog::{
    CancellationPolicy, DayInterval, GeoBox, GeoPoint, Lot, LotBuilder, OpeningHours, Operator, RateLine,
    RateTable, Spot, SpotAttributes, SpotFilter, SpotSize, Tier,
};
pub use engine::{
    Availability, Cancellation, Checkout, Engine, EngineBuilder, Held, HoldSpec, LotMatch, Quote, SpotChoice,
    SpotStatus, SweepReport,
};
pub use error::{BoxError, ConflictReason, Error, Result};
pub use ids::{LotId, OperatorId, ReservationId, SessionId, SpotId, UserId};
pub use jiff;
pub use money::{Currency, Money};
pub use ports::lock::{AdmissionLock, Claim, DynAdmissionLock, Granted, HeldClaim};
pub use ports::notifier::{DynNotifier, EventStream, MergedNotifier, Notifier};
pub use ports::payment::{
    DynPaymentGateway, IntentRequest, IntentStatus, PaymentEvent, PaymentEventKind, PaymentGateway,
    PaymentIntent, Refund,
};
pub use ports::store::{
    Capabilities, DynReservationStore, HoldLimits, HoldRequest, HoldTarget, IdempotencyClaim, NewRevocation,
    ReservationStore, SessionChange, Update, Written,
};
pub use reservation::{Event, EventKind, GateSession, PaymentRef, Reservation, ReservationState, StateSet};
pub use time::{Clock, DynClock, ManualClock, SystemClock, Window};
