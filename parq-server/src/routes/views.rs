//! The JSON shapes of the API that are not parq-core's own types.

use jiff::Timestamp;
use parq_core::{
    LotId, Money, PaymentIntent, Reservation, ReservationId, ReservationState, SpotFilter, SpotId, SpotSize,
    Window,
};
use serde::{Deserialize, Serialize};

use crate::accounts::{Account, Role};

/// A reservation as its driver sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ReservationView {
    /// Id.
    pub id: ReservationId,
    /// Lot.
    pub lot_id: LotId,
    /// Spot.
    pub spot_id: SpotId,
    /// State (a hold past its deadline reads `expired`).
    pub state: ReservationState,
    /// Window.
    pub window: Window,
    /// Price.
    pub price: Money,
    /// Until when an unpaid hold blocks the spot.
    pub hold_expires_at: Timestamp,
    /// Made at.
    pub created_at: Timestamp,
    /// The payment, once started.
    pub payment: Option<PaymentView>,
}

/// A reservation's payment.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentView {
    /// The provider's intent.
    pub intent_id: String,
    /// Amount.
    pub amount: Money,
    /// Whether the money was taken.
    pub captured: bool,
    /// How much went back.
    pub refunded: Money,
}

impl From<Reservation> for ReservationView {
    fn from(r: Reservation) -> Self {
        Self {
            id: r.id,
            lot_id: r.lot,
            spot_id: r.spot,
            state: r.state,
            window: r.window,
            price: r.price,
            hold_expires_at: r.hold_expires_at,
            created_at: r.created_at,
            payment: r.payment.map(|p| PaymentView {
                intent_id: p.intent_id,
                amount: p.amount,
                captured: p.captured,
                refunded: Money::new(p.refunded, p.amount.currency),
            }),
        }
    }
}

/// A hold request: a named spot, or any spot of the lot with the filter's attributes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    /// The lot.
    pub lot_id: LotId,
    /// First instant.
    pub start: Timestamp,
    /// First instant after.
    pub end: Timestamp,
    /// A named spot.
    #[serde(default)]
    pub spot_id: Option<SpotId>,
    /// Attributes a pooled spot must have.
    #[serde(default)]
    pub filter: Option<SpotFilter>,
}

/// A started payment.
#[derive(Debug, Clone, Serialize)]
pub struct CheckoutView {
    /// The reservation, awaiting payment.
    pub reservation: ReservationView,
    /// The intent to pay.
    pub intent: PaymentIntent,
    /// With the test gateway: where to play the driver paying.
    pub test_pay_url: Option<String>,
}

/// A cancellation.
#[derive(Debug, Clone, Serialize)]
pub struct CancellationView {
    /// The reservation, cancelled.
    pub reservation: ReservationView,
    /// What went back to the driver.
    pub refunded: Money,
}

/// An extension.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// The new end.
    pub end: Timestamp,
}

/// An account as its owner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    /// Id.
    pub id: parq_core::UserId,
    /// Email.
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

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id,
            email: a.email.clone(),
            role: a.role,
            mfa_enabled: a.mfa_enabled(),
            recovery_codes_left: a.recovery_codes.len(),
            created_at: a.created_at,
        }
    }
}

/// Query of a window.
#[derive(Debug, Clone, Deserialize)]
pub struct WindowQuery {
    /// First instant (RFC 3339).
    pub start: Timestamp,
    /// First instant after (RFC 3339).
    pub end: Timestamp,
}

/// Query of a search.
#[derive(Debug, Clone, Deserialize)]
pub struct SearchQuery {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Radius in metres (default 2000).
    pub radius_m: Option<f64>,
    /// First instant.
    pub start: Timestamp,
    /// First instant after.
    pub end: Timestamp,
    /// Only EV spots.
    #[serde(default)]
    pub ev: bool,
    /// Only accessible spots.
    #[serde(default)]
    pub accessible: bool,
    /// Smallest size.
    pub min_size: Option<SpotSize>,
}
