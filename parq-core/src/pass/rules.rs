//! The one rules engine for gates: whether a scan opens the barrier, and if not, why.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ids::LotId;
use crate::pass::Entitlement;
use crate::reservation::ReservationState;

/// Which way the vehicle is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum Direction {
    /// Into the lot.
    Entry,
    /// Out of the lot.
    Exit,
}

/// Identifies one reading of a credential by a gate's reader, so that a reading delivered
/// twice (a reader's retry, a double read) counts once.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScanId(pub [u8; 16]);

impl ScanId {
    /// A fresh random id for a new reading.
    pub fn random() -> Result<Self> {
        let mut id = [0u8; 16];
        crate::pass::keys::fill_random(&mut id)?;
        Ok(Self(id))
    }
}

impl fmt::Debug for ScanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScanId({})", uuid::Uuid::from_bytes(self.0).simple())
    }
}

/// A credential presented at a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Scan {
    /// Entry or exit.
    pub direction: Direction,
    /// The lot the gate belongs to.
    pub lot: LotId,
    /// When the credential was read.
    pub at: Timestamp,
    /// The reading's id, when the reader gives one; a reading that was already allowed is
    /// refused as [`Refusal::Replayed`] when delivered again.
    #[serde(default)]
    pub id: Option<ScanId>,
}

impl Scan {
    /// A scan at an entry gate of `lot`.
    pub fn entry(lot: LotId, at: Timestamp) -> Self {
        Self { direction: Direction::Entry, lot, at, id: None }
    }

    /// A scan at an exit gate of `lot`.
    pub fn exit(lot: LotId, at: Timestamp) -> Self {
        Self { direction: Direction::Exit, lot, at, id: None }
    }

    /// The same scan, identified by `id`.
    pub fn with_id(self, id: ScanId) -> Self {
        Self { id: Some(id), ..self }
    }
}

/// Where the vehicle of a reservation is, as far as the decider knows (the gate's own memory
/// offline, the reservation's sessions online).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// It has not entered with this reservation.
    #[default]
    NotEntered,
    /// It entered and has not left.
    Inside,
    /// It entered and left.
    Left,
}

/// Whether a reservation may enter again after leaving, inside its window and grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum ReentryPolicy {
    /// One entry per reservation.
    #[default]
    NotAllowed,
    /// Entries after an exit are allowed while the pass is valid.
    Allowed,
}

/// Everything [`decide`] needs to know besides the scan.
///
/// Build it with [`ScanContext::new`] and set what the caller knows; a field left at its
/// default asserts nothing (not revoked, not entered, state unknown, no re-entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanContext {
    /// What the credential (a verified pass, or a plate resolved to a reservation) entitles to.
    pub entitlement: Entitlement,
    /// The lot's grace: how long before its window and after its end an entry is allowed.
    /// Negative values count as zero.
    pub grace: SignedDuration,
    /// Whether the credential is revoked.
    pub revoked: bool,
    /// Where the vehicle is.
    pub presence: Presence,
    /// The reservation's state, when known (online). `None` offline.
    pub reservation_state: Option<ReservationState>,
    /// The lot's re-entry rule.
    pub reentry: ReentryPolicy,
    /// Whether this very reading was already allowed (same [`ScanId`], or an equivalent
    /// idempotency record online).
    pub replayed: bool,
}

impl ScanContext {
    /// A context for `entitlement` in a lot with `grace`, knowing nothing else yet.
    pub fn new(entitlement: Entitlement, grace: SignedDuration) -> Self {
        Self {
            entitlement,
            grace,
            revoked: false,
            presence: Presence::NotEntered,
            reservation_state: None,
            reentry: ReentryPolicy::NotAllowed,
            replayed: false,
        }
    }
}

/// Why a gate stays closed. Serialised in snake case (`wrong_lot`, `too_early`, …), as gate
/// apps and the API show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum Refusal {
    /// Not a pass: unreadable, malformed, altered, or its signature does not match.
    Invalid,
    /// Signed with a key this gate does not trust (unknown or retired).
    UnknownKey,
    /// Cancelled, or replaced by a newer pass.
    Revoked,
    /// For another lot.
    WrongLot,
    /// Before the window's start minus the lot's grace.
    TooEarly,
    /// After the window's end plus the lot's grace (or the reservation was a no-show).
    Expired,
    /// An entry while the reservation's vehicle is already inside.
    AlreadyInside,
    /// An exit for a vehicle that is not inside.
    NotInside,
    /// The reservation is not paid (still held, awaiting payment, or lapsed unpaid).
    NotPaid,
    /// A second entry where the lot allows one entry per reservation.
    ReentryNotAllowed,
    /// The same reading was already allowed; it counts once.
    Replayed,
}

impl Refusal {
    /// The snake-case code, as serialised.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::UnknownKey => "unknown_key",
            Self::Revoked => "revoked",
            Self::WrongLot => "wrong_lot",
            Self::TooEarly => "too_early",
            Self::Expired => "expired",
            Self::AlreadyInside => "already_inside",
            Self::NotInside => "not_inside",
            Self::NotPaid => "not_paid",
            Self::ReentryNotAllowed => "reentry_not_allowed",
            Self::Replayed => "replayed",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of a scan. Serialised as `{"decision": "allow"}` or
/// `{"decision": "refuse", "reason": "expired"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "decision", content = "reason", rename_all = "snake_case")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum Decision {
    /// Open the barrier.
    Allow,
    /// Keep it closed, for this reason.
    Refuse(Refusal),
}

impl Decision {
    /// Whether the barrier opens.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow)
    }

    /// The refusal, if refused.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::Allow => None,
            Self::Refuse(r) => Some(*r),
        }
    }
}

impl From<Refusal> for Decision {
    fn from(r: Refusal) -> Self {
        Self::Refuse(r)
    }
}

/// Decides a scan. Offline gates ([`GateVerifier`](crate::pass::GateVerifier)) and the online
/// check-in call this same function; only where the context comes from differs.
///
/// The rules, checked in this order (the first that fails gives the reason):
///
/// * both directions: a reading already allowed is [`Replayed`](Refusal::Replayed); a
///   credential for another lot is [`WrongLot`](Refusal::WrongLot);
/// * exit: allowed when the vehicle is inside, otherwise [`NotInside`](Refusal::NotInside).
///   Revocation, payment and time do not keep a vehicle in: overstays are settled by the
///   engine, not by the barrier;
/// * entry: a revoked credential or a cancelled reservation is [`Revoked`](Refusal::Revoked);
///   a reservation that is held, awaiting payment or lapsed unpaid is
///   [`NotPaid`](Refusal::NotPaid); a no-show is [`Expired`](Refusal::Expired); then the
///   time must lie in `[start − grace, end + grace)`, else [`TooEarly`](Refusal::TooEarly)
///   or [`Expired`](Refusal::Expired); then a vehicle inside is
///   [`AlreadyInside`](Refusal::AlreadyInside), and one that left may enter again only when
///   the lot allows it ([`ReentryNotAllowed`](Refusal::ReentryNotAllowed)).
pub fn decide(scan: &Scan, ctx: &ScanContext) -> Decision {
    match check(scan, ctx) {
        Ok(()) => Decision::Allow,
        Err(r) => Decision::Refuse(r),
    }
}

fn check(scan: &Scan, ctx: &ScanContext) -> Result<(), Refusal> {
    let e = &ctx.entitlement;
    if ctx.replayed {
        return Err(Refusal::Replayed);
    }
    if scan.lot != e.lot {
        return Err(Refusal::WrongLot);
    }
    if scan.direction == Direction::Exit {
        return if ctx.presence == Presence::Inside { Ok(()) } else { Err(Refusal::NotInside) };
    }
    if ctx.revoked {
        return Err(Refusal::Revoked);
    }
    match ctx.reservation_state {
        None
        | Some(ReservationState::Confirmed | ReservationState::CheckedIn | ReservationState::Completed) => {}
        Some(ReservationState::Cancelled) => return Err(Refusal::Revoked),
        Some(ReservationState::NoShow) => return Err(Refusal::Expired),
        Some(ReservationState::Held | ReservationState::PendingPayment | ReservationState::Expired) => {
            return Err(Refusal::NotPaid);
        }
    }
    let grace = ctx.grace.max(SignedDuration::ZERO);
    let opens = e.window.start().checked_sub(grace).unwrap_or(Timestamp::MIN);
    let closes = entry_closes(e, grace);
    if scan.at < opens {
        return Err(Refusal::TooEarly);
    }
    if scan.at >= closes {
        return Err(Refusal::Expired);
    }
    match (ctx.presence, ctx.reentry) {
        (Presence::NotEntered, _) | (Presence::Left, ReentryPolicy::Allowed) => Ok(()),
        (Presence::Inside, _) => Err(Refusal::AlreadyInside),
        (Presence::Left, ReentryPolicy::NotAllowed) => Err(Refusal::ReentryNotAllowed),
    }
}

/// The last instant (exclusive) at which `e` may enter with `grace`.
pub(crate) fn entry_closes(e: &Entitlement, grace: SignedDuration) -> Timestamp {
    e.window.end().checked_add(grace.max(SignedDuration::ZERO)).unwrap_or(Timestamp::MAX)
}
