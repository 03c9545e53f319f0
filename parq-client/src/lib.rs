#![doc = include_str!("../README.md")]

pub mod client;
pub mod error;
pub mod live;
pub mod types;

pub use client::{Client, ClientBuilder, IDEMPOTENCY_KEY, RetryPolicy, new_idempotency_key};
pub use error::{ClientError, ConflictReason, Problem};
pub use live::{LiveBuilder, LiveEvent, LiveHandle, LiveUpdates};
pub use types::{
    Account, Cancellation, Checkout, LotDetails, LotEvent, PassImage, PassInfo, Payment, Reservation, Role,
    Session, TestPayment, TotpEnrolment,
};

// The domain types the API shares with the engine.
pub use parq_core;
pub use parq_core::pass::{Decision, Direction, PublicKeys, Refusal, RevocationDelta};
pub use parq_core::{
    Availability, Event, EventKind, Lot, LotId, LotMatch, Money, PaymentIntent, Quote, ReservationId,
    ReservationState, Spot, SpotChoice, SpotFilter, SpotId, SpotSize, UserId, Window,
};
pub use reqwest::Url;
