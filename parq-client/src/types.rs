//! The API's JSON shapes that are not parq-core's own types. Where the server sends a core type
//! as it is ([`Quote`](parq_core::Quote), [`Availability`](parq_core::Availability),
//! [`LotMatch`](parq_core::LotMatch), [`Lot`], [`Spot`], [`PaymentIntent`],
//! [`Decision`](parq_core::pass::Decision), [`RevocationDelta`](parq_core::pass::RevocationDelta),
//! [`Event`](parq_core::Event), …) the client returns that type.
//!
//! Unknown members are ignored, so a newer server does not break an older client; a missing
//! or mistyped member is a [`ClientError::MalformedResponse`](crate::ClientError).

use jiff::Timestamp;
use parq_core::pass::KeyId;
use parq_core::{
    EventKind, Lot, LotId, Money, PaymentIntent, ReservationId, ReservationState, Spot, SpotId, UserId,
    Window,
};
use serde::{Deserialize, Serialize};

/// A reservation as its driver sees it (the server's view: without the operator, the driver
/// and the fencing number of [`parq_core::Reservation`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Id.
    pub id: ReservationId,
    /// Lot.
    pub lot_id: LotId,
    /// Spot.
    pub spot_id: SpotId,
    /// State (a hold past its deadline reads `expired`).
    pub state: ReservationState,
    /// The booked window `[start, end)`.
    pub window: Window,
    /// The price, locked at hold time.
    pub price: Money,
    /// Until when an unpaid hold blocks the spot.
    pub hold_expires_at: Timestamp,
    /// When the hold was made.
    pub created_at: Timestamp,
    /// The payment, once checkout began.
    #[serde(default)]
    pub payment: Option<Payment>,
}

/// A reservation's payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The provider's intent.
    pub intent_id: String,
    /// Amount.
    pub amount: Money,
    /// Whether the money was taken.
    pub captured: bool,
    /// How much went back.
    pub refunded: Money,
}

/// A started payment: the reservation awaiting it and the intent to pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// The reservation, `pending_payment`.
    pub reservation: Reservation,
    /// The provider's intent.
    pub intent: PaymentIntent,
    /// With the test gateway: where to play the driver paying
    /// ([`Client::pay_test_intent`](crate::Client::pay_test_intent)).
    #[serde(default)]
    pub test_pay_url: Option<String>,
}

/// A cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    /// The reservation, `cancelled` (or `expired` for a released hold).
    pub reservation: Reservation,
    /// What went back to the driver.
    pub refunded: Money,
}

/// What the test gateway did when the driver "paid".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestPayment {
    /// The (simulated) provider's event id.
    pub event_id: String,
    /// `succeeded`, `authorized` or `failed`.
    pub outcome: String,
    /// The reservation after the webhook was applied.
    pub reservation: Reservation,
}

/// An account's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// Searches, holds, pays, cancels its own reservations.
    Driver,
    /// Manages one operator's lots.
    Operator,
    /// Scans passes at one operator's gates.
    Gate,
}

/// An account as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Id.
    pub id: UserId,
    /// Email, normalised (trimmed, lower case).
    pub email: String,
    /// Role.
    pub role: Role,
    /// Whether login asks for a TOTP code.
    pub mfa_enabled: bool,
    /// Unused recovery codes left.
    pub recovery_codes_left: usize,
    /// Made at.
    pub created_at: Timestamp,
}

/// A session from [`Client::login`](crate::Client::login).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The bearer token (secret).
    pub token: String,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// Whose it is.
    pub user: Account,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("token", &"<secret>")
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .finish()
    }
}

/// A lot and its spots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LotDetails {
    /// The lot.
    pub lot: Lot,
    /// Its spots.
    pub spots: Vec<Spot>,
}

/// A reservation's signed pass, as text for a QR code, with what it grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassInfo {
    /// The pass (base45), what the QR code holds and a gate reads.
    pub text: String,
    /// The signing key's id.
    pub key_id: KeyId,
    /// The reservation.
    pub reservation_id: ReservationId,
    /// The lot it opens.
    pub lot_id: LotId,
    /// The spot.
    pub spot_id: SpotId,
    /// The window it is valid for (plus the lot's grace).
    pub window: Window,
}

/// The image formats of a pass's QR code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PassImage {
    /// `image/svg+xml`.
    Svg,
    /// `image/png`.
    Png,
}

impl PassImage {
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Self::Svg => "pass.svg",
            Self::Png => "pass.png",
        }
    }

    pub(crate) fn media_type(self) -> &'static str {
        match self {
            Self::Svg => "image/svg+xml",
            Self::Png => "image/png",
        }
    }
}

/// A change on a lot, as its room sees it: a [`parq_core::Event`] without the driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotEvent {
    /// The lot.
    pub lot: LotId,
    /// Per-lot sequence number, from 1, without gaps.
    pub seq: u64,
    /// When the change happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// The reservation.
    pub reservation: ReservationId,
    /// Its spot.
    pub spot: SpotId,
    /// Its window (after the change).
    pub window: Window,
    /// Its state after the change.
    pub state: ReservationState,
}

/// A TOTP seed to put in an authenticator app.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpEnrolment {
    /// The seed, base32 (secret).
    pub secret: String,
    /// `otpauth://totp/…`, for a QR code.
    pub otpauth_uri: String,
    /// `SHA1`.
    pub algorithm: String,
    /// Digits per code.
    pub digits: u32,
    /// Seconds per code.
    pub period: u32,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolment")
            .field("secret", &"<secret>")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .finish()
    }
}
