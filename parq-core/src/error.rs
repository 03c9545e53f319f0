//! The one error type of ParQ. Every adapter converts its own errors into it.

use std::error::Error as StdError;

use crate::ids::{ReservationId, SpotId};
use crate::reservation::ReservationState;

/// A boxed error source, kept typed so callers can walk the chain.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Result with ParQ's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spot (or every matching spot) is taken for an overlapping window, or a blackout covers it.
    #[error("conflict: {reason}")]
    Conflict {
        /// Why the request conflicts.
        reason: ConflictReason,
    },
    /// The thing asked for does not exist (or is not visible to the caller).
    #[error("{what} not found")]
    NotFound {
        /// What was looked up, e.g. `reservation res_…`.
        what: String,
    },
    /// The reservation is not in a state that allows this operation.
    #[error("reservation {id:?} is {from}, cannot {action}")]
    InvalidTransition {
        /// The reservation.
        id: ReservationId,
        /// Its current state.
        from: ReservationState,
        /// What was attempted.
        action: &'static str,
    },
    /// The hold's deadline passed before the operation.
    #[error("hold {id:?} expired")]
    HoldExpired {
        /// The reservation whose hold expired.
        id: ReservationId,
    },
    /// A fencing number older than the reservation's current one was presented.
    #[error("stale fencing number {presented} for {id:?} (current {current})")]
    StaleFence {
        /// The reservation.
        id: ReservationId,
        /// The number the caller presented.
        presented: u64,
        /// The reservation's current number.
        current: u64,
    },
    /// A limit was reached: concurrent holds per user, maximum stay, …
    #[error("limit exceeded: {limit}")]
    LimitExceeded {
        /// Which limit, in words.
        limit: String,
    },
    /// The same idempotency key was used with a different request.
    #[error("idempotency key {key:?} was used with a different request")]
    IdempotencyMismatch {
        /// The key.
        key: String,
    },
    /// The payment provider declined the payment.
    #[error("payment declined: {reason}")]
    PaymentDeclined {
        /// The provider's reason.
        reason: String,
    },
    /// A backend or dependency is unavailable; `retryable` says whether trying again may help.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What is unavailable.
        message: String,
        /// Whether a retry may succeed.
        retryable: bool,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The request is malformed or breaks a rule of the lot (window, hours, attributes, …).
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A gate refused a scan, with the rule's reason.
    #[error("scan refused: {reason}")]
    ScanRefused {
        /// Why.
        reason: crate::pass::Refusal,
    },
    /// The caller may not do this.
    #[error("forbidden: {message}")]
    Forbidden {
        /// Why.
        message: String,
    },
    /// A backend failed in a way that is not one of the above.
    #[error("{backend} backend error")]
    Backend {
        /// Which backend (`postgres`, `redis`, `stripe`, …).
        backend: &'static str,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
}

/// Why a hold or change conflicts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConflictReason {
    /// A live reservation on this spot overlaps the window.
    SpotTaken {
        /// The spot.
        spot: SpotId,
    },
    /// No spot matching the request is free for the window.
    NoFreeSpot,
    /// The lot is blacked out for part of the window.
    Blackout,
    /// The admission lock is held by another claimant.
    Claimed,
}

impl std::fmt::Display for ConflictReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SpotTaken { spot } => write!(f, "spot {spot} is taken for an overlapping window"),
            Self::NoFreeSpot => f.write_str("no matching spot is free for the window"),
            Self::Blackout => f.write_str("the lot is closed (blackout) during the window"),
            Self::Claimed => f.write_str("another driver is claiming this spot right now"),
        }
    }
}

impl Error {
    /// An [`Error::Invalid`] for `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { field, message: message.into() }
    }

    /// An [`Error::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    /// A [`Error::Conflict`] because `spot` is taken.
    pub fn spot_taken(spot: SpotId) -> Self {
        Self::Conflict { reason: ConflictReason::SpotTaken { spot } }
    }

    /// A backend error with its typed source.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend { backend, source: source.into() }
    }

    /// An [`Error::Unavailable`] that a retry may fix.
    pub fn unavailable(message: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::Unavailable { message: message.into(), retryable: true, source }
    }

    /// Whether trying the same operation again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { retryable: true, .. })
    }

    /// Whether this is a [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// One error of each variant, for tests of code that must handle every variant (the
    /// server's problem types, the bindings' exceptions): a variant added to [`Error`] does not
    /// compile until it has an example here.
    pub fn one_of_each() -> Vec<Error> {
        let id = ReservationId::from_uuid(uuid::Uuid::nil());
        let all = vec![
            Self::spot_taken(SpotId::from_uuid(uuid::Uuid::nil())),
            Self::not_found("lot 0"),
            Self::InvalidTransition { id, from: ReservationState::Cancelled, action: "extend" },
            Self::HoldExpired { id },
            Self::StaleFence { id, presented: 1, current: 2 },
            Self::LimitExceeded { limit: "maximum stay".into() },
            Self::IdempotencyMismatch { key: "k".into() },
            Self::PaymentDeclined { reason: "insufficient_funds".into() },
            Self::unavailable("maintenance", None),
            Self::invalid("window", "must be in the future"),
            Self::ScanRefused { reason: crate::pass::Refusal::Expired },
            Self::Forbidden { message: "not yours".into() },
            Self::backend("store", "connection reset"),
        ];
        for e in &all {
            // No wildcard: a new variant stops the build here until it is listed above.
            match e {
                Self::Conflict { .. }
                | Self::NotFound { .. }
                | Self::InvalidTransition { .. }
                | Self::HoldExpired { .. }
                | Self::StaleFence { .. }
                | Self::LimitExceeded { .. }
                | Self::IdempotencyMismatch { .. }
                | Self::PaymentDeclined { .. }
                | Self::Unavailable { .. }
                | Self::Invalid { .. }
                | Self::ScanRefused { .. }
                | Self::Forbidden { .. }
                | Self::Backend { .. } => {}
            }
        }
        all
    }

    /// A stable, machine-readable code for the variant (used for problem types and bindings).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Conflict { .. } => "conflict",
            Self::NotFound { .. } => "not_found",
            Self::InvalidTransition { .. } => "invalid_transition",
            Self::HoldExpired { .. } => "hold_expired",
            Self::StaleFence { .. } => "stale_fence",
            Self::LimitExceeded { .. } => "limit_exceeded",
            Self::IdempotencyMismatch { .. } => "idempotency_mismatch",
            Self::PaymentDeclined { .. } => "payment_declined",
            Self::Unavailable { .. } => "unavailable",
            Self::Invalid { .. } => "invalid",
            Self::ScanRefused { .. } => "scan_refused",
            Self::Forbidden { .. } => "forbidden",
            Self::Backend { .. } => "backend",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_each_has_every_code_once() {
        let codes: Vec<&str> = Error::one_of_each().iter().map(Error::code).collect();
        let unique: std::collections::BTreeSet<&str> = codes.iter().copied().collect();
        assert_eq!(unique.len(), codes.len(), "a variant listed twice: {codes:?}");
    }
}
