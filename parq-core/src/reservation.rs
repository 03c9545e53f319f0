//! Reservations, their state machine, gate sessions and events.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{LotId, OperatorId, ReservationId, SessionId, SpotId, UserId};
use crate::money::Money;
use crate::time::Window;

/// Where a reservation is in its life.
///
/// ```text
/// held → pending_payment → confirmed → checked_in → completed
/// held | pending_payment → expired            (not paid in time)
/// held | pending_payment | confirmed → cancelled
/// confirmed → no_show                         (nobody came within the lot's grace)
/// expired → confirmed                         (a late payment, when the spot is still free)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum ReservationState {
    /// The spot is held for the driver until the hold's deadline.
    Held = 0,
    /// A payment was started; the hold's deadline still applies.
    PendingPayment = 1,
    /// Paid (authorised or captured); the spot is the driver's.
    Confirmed = 2,
    /// The driver entered.
    CheckedIn = 3,
    /// The driver left.
    Completed = 4,
    /// Not paid in time; the spot is free again.
    Expired = 5,
    /// Cancelled by the driver or the operator.
    Cancelled = 6,
    /// Nobody came; the spot was released.
    NoShow = 7,
}

impl ReservationState {
    /// Every state.
    pub const ALL: [ReservationState; 8] = [
        Self::Held,
        Self::PendingPayment,
        Self::Confirmed,
        Self::CheckedIn,
        Self::Completed,
        Self::Expired,
        Self::Cancelled,
        Self::NoShow,
    ];

    /// Whether a reservation in this state blocks its spot (DESIGN.md invariant 1). A hold's
    /// deadline also matters: see [`Reservation::is_live_at`].
    pub const fn is_live(self) -> bool {
        matches!(self, Self::Held | Self::PendingPayment | Self::Confirmed | Self::CheckedIn)
    }

    /// Whether the state is a hold that lapses at its deadline.
    pub const fn is_hold(self) -> bool {
        matches!(self, Self::Held | Self::PendingPayment)
    }

    /// The state's name in snake case, as in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::PendingPayment => "pending_payment",
            Self::Confirmed => "confirmed",
            Self::CheckedIn => "checked_in",
            Self::Completed => "completed",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::NoShow => "no_show",
        }
    }

    /// Parses the snake-case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the state machine allows `self → to`. A state may also stay as it is, for changes
    /// such as an extension, a capture or a refund; the end states `completed` and `no_show`
    /// never change.
    pub const fn can_become(self, to: ReservationState) -> bool {
        use ReservationState::*;
        matches!(
            (self, to),
            (Held, Held | PendingPayment | Confirmed | Expired | Cancelled)
                | (PendingPayment, PendingPayment | Held | Confirmed | Expired | Cancelled)
                | (Confirmed, Confirmed | CheckedIn | Cancelled | NoShow)
                | (CheckedIn, CheckedIn | Completed)
                | (Expired, Expired | Confirmed)
                | (Cancelled, Cancelled)
        )
    }
}

impl fmt::Display for ReservationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A small set of states, for "expected state" checks.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StateSet(u8);

impl StateSet {
    /// The empty set.
    pub const EMPTY: StateSet = StateSet(0);
    /// `held` and `pending_payment`.
    pub const HOLDS: StateSet = StateSet::of(&[ReservationState::Held, ReservationState::PendingPayment]);

    /// The set of the given states.
    pub const fn of(states: &[ReservationState]) -> StateSet {
        let mut bits = 0u8;
        let mut i = 0;
        while i < states.len() {
            bits |= 1 << states[i] as u8;
            i += 1;
        }
        StateSet(bits)
    }

    /// Whether `s` is in the set.
    pub const fn contains(self, s: ReservationState) -> bool {
        self.0 & (1 << s as u8) != 0
    }

    /// The raw bits (bit `n` for the state with discriminant `n`), for adapters that store them.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The states in the set.
    pub fn iter(self) -> impl Iterator<Item = ReservationState> {
        ReservationState::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl fmt::Debug for StateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// What ParQ knows of the payment for a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRef {
    /// The gateway's payment intent id.
    pub intent_id: String,
    /// Which checkout attempt created it (1, 2, …); part of the idempotency key.
    pub attempt: u32,
    /// The amount of the intent.
    pub amount: Money,
    /// Whether the amount was captured.
    pub captured: bool,
    /// Minor units to be refunded in all: what the driver gets back.
    pub refunded: i64,
    /// Minor units the provider confirmed refunded. While it is below `refunded`, the rest is
    /// owed and is asked for again, under the same idempotency key, until it is settled.
    #[serde(default)]
    pub refund_settled: i64,
}

/// The entitlement to a spot for a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Its id.
    pub id: ReservationId,
    /// The operator of the lot.
    pub operator: OperatorId,
    /// The lot.
    pub lot: LotId,
    /// The spot.
    pub spot: SpotId,
    /// The driver.
    pub user: UserId,
    /// The booked window `[start, end)`.
    pub window: Window,
    /// Where it is in its life.
    pub state: ReservationState,
    /// The fencing number: every hold gets a new, larger one per spot, and every change must
    /// present the current one.
    pub fence: u64,
    /// The quoted price, locked at hold time.
    pub price: Money,
    /// When an unpaid hold stops blocking the spot (meaningful while it is a hold).
    pub hold_expires_at: Timestamp,
    /// When the hold was made.
    pub created_at: Timestamp,
    /// The payment, once checkout began.
    pub payment: Option<Box<PaymentRef>>,
}

impl Reservation {
    /// Whether the reservation blocks its spot at `now`: a live state, and for a hold, a
    /// deadline still ahead (lazy expiry).
    pub fn is_live_at(&self, now: Timestamp) -> bool {
        self.state.is_live() && !(self.state.is_hold() && self.hold_expires_at <= now)
    }

    /// The state as readers see it at `now`: a hold past its deadline reads as `expired`.
    pub fn state_at(&self, now: Timestamp) -> ReservationState {
        if self.state.is_hold() && self.hold_expires_at <= now {
            ReservationState::Expired
        } else {
            self.state
        }
    }
}

/// One visit through a lot's gates for a reservation: entry, and later exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSession {
    /// The session's id.
    pub id: SessionId,
    /// The reservation it uses.
    pub reservation: ReservationId,
    /// When the driver entered.
    pub entered_at: Timestamp,
    /// The gate of entry.
    pub entry_gate: String,
    /// When the driver left, if they did.
    pub exited_at: Option<Timestamp>,
    /// The gate of exit.
    pub exit_gate: Option<String>,
    /// The id of the reading that let the driver in, so a repeated reading counts once.
    #[serde(default)]
    pub entry_scan: Option<String>,
    /// The id of the reading that let the driver out.
    #[serde(default)]
    pub exit_scan: Option<String>,
}

/// What happened to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A hold was made.
    Held,
    /// Checkout started a payment.
    PaymentStarted,
    /// A payment attempt failed; the hold continues.
    PaymentFailed,
    /// Paid: the reservation is confirmed.
    Confirmed,
    /// A late payment brought an expired reservation back.
    Reinstated,
    /// The payment was captured.
    Captured,
    /// Money went back to the driver.
    Refunded,
    /// The window changed.
    Extended,
    /// Not paid in time.
    Expired,
    /// Cancelled.
    Cancelled,
    /// The driver entered.
    CheckedIn,
    /// The driver left.
    CheckedOut,
    /// Nobody came.
    NoShow,
}

impl EventKind {
    /// What the change does, in words ("confirm", "check in", …), for error messages.
    pub const fn action(self) -> &'static str {
        match self {
            Self::Held => "hold",
            Self::PaymentStarted => "start payment",
            Self::PaymentFailed => "record a failed payment",
            Self::Confirmed => "confirm",
            Self::Reinstated => "reinstate",
            Self::Captured => "capture",
            Self::Refunded => "refund",
            Self::Extended => "extend",
            Self::Expired => "expire",
            Self::Cancelled => "cancel",
            Self::CheckedIn => "check in",
            Self::CheckedOut => "check out",
            Self::NoShow => "release as no-show",
        }
    }
}

/// A change to a reservation, numbered per lot. Live updates, webhooks and the outbox carry
/// events; a subscriber resumes from the last sequence number it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
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
    /// Its driver.
    pub user: UserId,
    /// Its window (after the change).
    pub window: Window,
    /// Its state after the change.
    pub state: ReservationState,
}

impl Event {
    /// The event describing `kind` happening to `r` (whose fields are after the change),
    /// numbered `seq`.
    pub fn of(r: &Reservation, kind: EventKind, seq: u64, at: Timestamp) -> Event {
        Event {
            lot: r.lot,
            seq,
            at,
            kind,
            reservation: r.id,
            spot: r.spot,
            user: r.user,
            window: r.window,
            state: r.state,
        }
    }
}
