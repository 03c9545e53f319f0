//! The admission lock: a fast path in front of the store.

use std::fmt::Debug;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use crate::error::Result;
use crate::ids::{LotId, ReservationId, SpotId};
use crate::time::Window;

/// A claim on a spot (or the first free of several) for a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The lot (its id scopes the keys, so a lot lives in one cluster slot).
    pub lot: LotId,
    /// The spot of a named hold, or the candidates of a pooled hold in order of preference.
    pub candidates: Vec<SpotId>,
    /// The window.
    pub window: Window,
    /// Who claims: the reservation id to be.
    pub token: ReservationId,
    /// How long the claim lasts unless retained.
    pub ttl: SignedDuration,
}

/// A granted claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// The spot the claim holds.
    pub spot: SpotId,
    /// The fencing number issued for it: larger than every number issued before for the spot.
    pub fence: u64,
}

/// A claim as rebuilt from the store after the lock lost its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldClaim {
    /// The spot.
    pub spot: SpotId,
    /// The window.
    pub window: Window,
    /// The reservation.
    pub token: ReservationId,
    /// Until when it holds; `None` for a confirmed reservation (until its window ends).
    pub until: Option<Timestamp>,
    /// Its fencing number.
    pub fence: u64,
}

/// Claims (spot, window) for one claimant at a time, so most losers of a race are turned away
/// before the store is touched. Advisory only: the store stays the arbiter.
///
/// # Contract
/// - [`claim`](Self::claim) is atomic: it forgets lapsed claims on the candidates, then grants
///   the first candidate with no live claim overlapping the half-open window, with a TTL and a
///   fencing number larger than any issued before for that spot. No free candidate:
///   [`Conflict`](crate::Error::Conflict) with reason `Claimed`. Claiming again with the same
///   token for the same spot and window returns the same grant (idempotent).
/// - [`retain`](Self::retain) and [`release`](Self::release) act only when the token matches;
///   otherwise they do nothing and return `false`.
/// - An unreachable lock returns a retryable [`Unavailable`](crate::Error::Unavailable); the
///   engine then goes straight to the store.
#[async_trait]
pub trait AdmissionLock: Send + Sync + Debug + 'static {
    /// Claims a candidate for the window.
    async fn claim(&self, claim: &Claim) -> Result<Granted>;
    /// Keeps a granted claim until `until` (a hold's deadline), or with `None` until its window
    /// ends (a confirmed reservation). Returns whether the token held the claim.
    async fn retain(
        &self,
        lot: LotId,
        spot: SpotId,
        token: ReservationId,
        until: Option<Timestamp>,
    ) -> Result<bool>;
    /// Drops a claim. Returns whether the token held it.
    async fn release(&self, lot: LotId, spot: SpotId, token: ReservationId) -> Result<bool>;
    /// Replaces the lock's view of a lot with claims rebuilt from the store, and raises every
    /// spot's fencing counter to at least the given fences.
    async fn rebuild(&self, lot: LotId, claims: &[HeldClaim]) -> Result<()>;
}

/// `dyn AdmissionLock`.
pub type DynAdmissionLock = dyn AdmissionLock;
