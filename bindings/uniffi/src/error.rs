//! The one error type the bindings throw, kept apart from `parq_core::Error` and
//! `parq_client::ClientError` and converted from them at the edge.
//!
//! Kotlin sees it as `ParqException` (a sealed class, one subclass per variant), Swift as the
//! `ParqError` enum (`Error`). Every failure a caller can cause — bad input, a pass that is not
//! one, a server that answers nonsense — is one of these variants, never a crash.

use std::time::Duration;

use parq_client::ClientError;
use parq_core::pass::PassError;

use crate::types::{Refusal, ReservationState};

/// Why a hold or change conflicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum ConflictReason {
    /// A live reservation on this spot overlaps the window.
    SpotTaken,
    /// No spot matching the request is free for the window.
    NoFreeSpot,
    /// The lot is blacked out for part of the window.
    Blackout,
    /// Another driver is claiming this spot right now.
    Claimed,
    /// A reason this version of the bindings does not know.
    Other,
}

/// What is wrong with a pass's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum PassFault {
    /// Not a pass at all: not base45, the wrong length, an unknown format version, or a
    /// window that cannot be.
    Malformed,
    /// Signed with a key id that is not among the trusted public keys.
    UnknownKey,
    /// The signature does not match: the text was altered, or signed by another key.
    BadSignature,
}

/// What went wrong, in terms a caller can act on. Thrown as `ParqException` in Kotlin and as
/// `ParqError` in Swift.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ParqError {
    /// The spot (or every matching spot) is taken, a blackout covers the window, or another
    /// driver is claiming the spot.
    #[error("conflict: {detail}")]
    Conflict {
        /// Why.
        reason: ConflictReason,
        /// The taken spot, when known.
        spot_id: Option<String>,
        /// In words.
        detail: String,
    },
    /// It does not exist, or is not the caller's to see.
    #[error("not found: {detail}")]
    NotFound {
        /// In words.
        detail: String,
    },
    /// Not allowed in the reservation's current state.
    #[error("invalid transition: {detail}")]
    InvalidTransition {
        /// The reservation, when known.
        reservation_id: Option<String>,
        /// Its current state, when known.
        state: Option<ReservationState>,
        /// What was attempted, when known.
        action: Option<String>,
        /// In words.
        detail: String,
    },
    /// The hold's deadline passed.
    #[error("hold expired: {detail}")]
    HoldExpired {
        /// The reservation whose hold expired, when known.
        reservation_id: Option<String>,
        /// In words.
        detail: String,
    },
    /// The reservation changed meanwhile: read it again.
    #[error("stale: {detail}")]
    StaleFence {
        /// The reservation, when known.
        reservation_id: Option<String>,
        /// In words.
        detail: String,
    },
    /// A limit was reached: concurrent holds, maximum stay, …
    #[error("limit exceeded: {detail}")]
    LimitExceeded {
        /// In words.
        detail: String,
    },
    /// An idempotency key was reused with a different request.
    #[error("idempotency key reused with a different request: {detail}")]
    IdempotencyMismatch {
        /// In words.
        detail: String,
    },
    /// The payment was declined.
    #[error("payment declined: {detail}")]
    PaymentDeclined {
        /// In words.
        detail: String,
    },
    /// The server or one of its backends is unavailable.
    #[error("unavailable: {detail}")]
    Unavailable {
        /// Whether the same request may succeed later.
        retryable: bool,
        /// How long the server asked to wait, in milliseconds.
        retry_after_ms: Option<u64>,
        /// In words.
        detail: String,
    },
    /// Too many requests: wait `retry_after_ms` and try again.
    #[error("rate limited: {detail}")]
    RateLimited {
        /// How long the server asked to wait, in milliseconds.
        retry_after_ms: Option<u64>,
        /// In words.
        detail: String,
    },
    /// The request breaks a rule, or an argument cannot be read (an id that is not a UUID,
    /// JSON that is not what it should be, a time out of range, …).
    #[error("invalid {field}: {detail}")]
    Invalid {
        /// The offending field or argument.
        field: String,
        /// In words.
        detail: String,
    },
    /// The server could not read the request.
    #[error("bad request: {detail}")]
    BadRequest {
        /// The offending field, when the server named it.
        field: Option<String>,
        /// In words.
        detail: String,
    },
    /// Not logged in, a wrong password or code, an expired session, or a missing key.
    #[error("unauthorized: {detail}")]
    Unauthorized {
        /// In words.
        detail: String,
    },
    /// The account has two-factor authentication: log in again with a TOTP code.
    #[error("a second factor is required: {detail}")]
    MfaRequired {
        /// In words.
        detail: String,
    },
    /// The caller may not do this.
    #[error("forbidden: {detail}")]
    Forbidden {
        /// In words.
        detail: String,
    },
    /// A gate refused a check-in or check-out.
    #[error("scan refused: {detail}")]
    ScanRefused {
        /// The rule's reason, when known.
        reason: Option<Refusal>,
        /// In words.
        detail: String,
    },
    /// The email address is registered already: log in instead.
    #[error("email taken: {detail}")]
    EmailTaken {
        /// In words.
        detail: String,
    },
    /// Any other problem the server reported.
    #[error("server error {code} ({status}): {detail}")]
    Server {
        /// The server's stable problem code.
        code: String,
        /// The HTTP status.
        status: u16,
        /// In words.
        detail: String,
    },
    /// No answer: refused, reset, timed out, TLS, a live connection that closed.
    #[error("transport: {detail}")]
    Transport {
        /// In words.
        detail: String,
    },
    /// The server answered something the API does not promise.
    #[error("malformed response (HTTP {status}): {reason}")]
    MalformedResponse {
        /// The HTTP status of the answer (0 for a live-update message).
        status: u16,
        /// What was wrong with it.
        reason: String,
        /// The beginning of the body.
        body: String,
    },
    /// A pass's text is not a valid pass signed by a trusted key.
    #[error("invalid pass: {detail}")]
    InvalidPass {
        /// What is wrong with it.
        fault: PassFault,
        /// The key id the pass names, when it could be read.
        key_id: Option<u32>,
        /// In words.
        detail: String,
    },
    /// A bug in the bindings or a failure of the process itself (no runtime, a panic caught at
    /// the boundary). Please report it.
    #[error("unexpected: {detail}")]
    Unexpected {
        /// In words.
        detail: String,
    },
}

impl ParqError {
    /// An [`ParqError::Invalid`] for `field`.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        Self::Invalid { field: field.to_owned(), detail: detail.into() }
    }

    /// Whether the same request may succeed when tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Transport { .. } | Self::RateLimited { .. } | Self::Unavailable { retryable: true, .. }
        )
    }
}

fn ms(d: Option<Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn conflict_reason(r: &parq_core::ConflictReason) -> (ConflictReason, Option<String>) {
    match r {
        parq_core::ConflictReason::SpotTaken { spot } => (ConflictReason::SpotTaken, Some(spot.to_string())),
        parq_core::ConflictReason::NoFreeSpot => (ConflictReason::NoFreeSpot, None),
        parq_core::ConflictReason::Blackout => (ConflictReason::Blackout, None),
        parq_core::ConflictReason::Claimed => (ConflictReason::Claimed, None),
        _ => (ConflictReason::Other, None),
    }
}

impl From<parq_core::Error> for ParqError {
    fn from(e: parq_core::Error) -> Self {
        use parq_core::Error as E;
        let detail = e.to_string();
        match e {
            E::Conflict { reason } => {
                let (reason, spot_id) = conflict_reason(&reason);
                Self::Conflict { reason, spot_id, detail }
            }
            E::NotFound { .. } => Self::NotFound { detail },
            E::InvalidTransition { id, from, action } => Self::InvalidTransition {
                reservation_id: Some(id.to_string()),
                state: Some(from.into()),
                action: Some(action.to_owned()),
                detail,
            },
            E::HoldExpired { id } => Self::HoldExpired { reservation_id: Some(id.to_string()), detail },
            E::StaleFence { id, .. } => Self::StaleFence { reservation_id: Some(id.to_string()), detail },
            E::LimitExceeded { .. } => Self::LimitExceeded { detail },
            E::IdempotencyMismatch { .. } => Self::IdempotencyMismatch { detail },
            E::PaymentDeclined { .. } => Self::PaymentDeclined { detail },
            E::Unavailable { retryable, .. } => Self::Unavailable { retryable, retry_after_ms: None, detail },
            E::Invalid { field, message } => Self::Invalid { field: field.to_owned(), detail: message },
            E::ScanRefused { reason } => Self::ScanRefused { reason: Some(reason.into()), detail },
            E::Forbidden { message } => Self::Forbidden { detail: message },
            E::Backend { .. } => Self::Unavailable { retryable: false, retry_after_ms: None, detail },
            _ => Self::Unexpected { detail },
        }
    }
}

impl From<PassError> for ParqError {
    fn from(e: PassError) -> Self {
        let detail = e.to_string();
        match e {
            PassError::UnknownKey { key } => {
                Self::InvalidPass { fault: PassFault::UnknownKey, key_id: Some(key.0), detail }
            }
            PassError::BadSignature => {
                Self::InvalidPass { fault: PassFault::BadSignature, key_id: None, detail }
            }
            PassError::RevocationGap { .. } | PassError::MalformedDelta => {
                Self::invalid("revocations", detail)
            }
            _ => Self::InvalidPass { fault: PassFault::Malformed, key_id: None, detail },
        }
    }
}

impl From<ClientError> for ParqError {
    fn from(e: ClientError) -> Self {
        let detail = e.problem().map_or_else(|| e.to_string(), |p| p.detail.clone());
        let retry_after_ms = ms(e.retry_after());
        match e {
            ClientError::Conflict { reason, .. } => {
                let (reason, spot_id) = match reason {
                    parq_client::ConflictReason::SpotTaken { spot } => {
                        (ConflictReason::SpotTaken, spot.map(|s| s.to_string()))
                    }
                    parq_client::ConflictReason::NoFreeSpot => (ConflictReason::NoFreeSpot, None),
                    parq_client::ConflictReason::Blackout => (ConflictReason::Blackout, None),
                    parq_client::ConflictReason::Claimed => (ConflictReason::Claimed, None),
                    _ => (ConflictReason::Other, None),
                };
                Self::Conflict { reason, spot_id, detail }
            }
            ClientError::NotFound { .. } => Self::NotFound { detail },
            ClientError::InvalidTransition { reservation, state, action, .. } => Self::InvalidTransition {
                reservation_id: reservation.map(|r| r.to_string()),
                state: state.map(Into::into),
                action,
                detail,
            },
            ClientError::HoldExpired { reservation, .. } => {
                Self::HoldExpired { reservation_id: reservation.map(|r| r.to_string()), detail }
            }
            ClientError::StaleFence { reservation, .. } => {
                Self::StaleFence { reservation_id: reservation.map(|r| r.to_string()), detail }
            }
            ClientError::LimitExceeded { .. } => Self::LimitExceeded { detail },
            ClientError::IdempotencyMismatch { .. } => Self::IdempotencyMismatch { detail },
            ClientError::PaymentDeclined { .. } => Self::PaymentDeclined { detail },
            ClientError::Unavailable { retryable, .. } => {
                Self::Unavailable { retryable, retry_after_ms, detail }
            }
            ClientError::Invalid { field, .. } => {
                Self::Invalid { field: field.unwrap_or_else(|| "request".to_owned()), detail }
            }
            ClientError::BadRequest { field, .. } => Self::BadRequest { field, detail },
            ClientError::Unauthorized { .. } => Self::Unauthorized { detail },
            ClientError::MfaRequired { .. } => Self::MfaRequired { detail },
            ClientError::Forbidden { .. } => Self::Forbidden { detail },
            ClientError::ScanRefused { reason, .. } => {
                let reason = reason.as_deref().and_then(Refusal::from_code);
                Self::ScanRefused { reason, detail }
            }
            ClientError::EmailTaken { .. } => Self::EmailTaken { detail },
            ClientError::RateLimited { .. } => Self::RateLimited { retry_after_ms, detail },
            ClientError::Transport { message, .. } => Self::Transport { detail: message },
            ClientError::MalformedResponse { status, reason, body } => {
                Self::MalformedResponse { status, reason, body }
            }
            ClientError::InvalidArgument { what, message } => {
                Self::Invalid { field: what.to_owned(), detail: message }
            }
            // `Server`, and any variant newer than these bindings.
            other => {
                let (code, status) = other
                    .problem()
                    .map_or_else(|| (other.code().to_owned(), 0), |p| (p.code.clone(), p.status));
                Self::Server { code, status, detail }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use parq_client::Problem;
    use parq_core::pass::{KeyId, KeySeed, PassKeyring, PublicKeys};

    use super::*;

    fn problem(json: serde_json::Value) -> Problem {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_servers_problems_keep_their_members() {
        let spot = uuid::Uuid::now_v7().to_string();
        let e: ParqError = ClientError::from_problem(
            problem(serde_json::json!({
                "code": "conflict", "status": 409, "detail": "taken", "reason": "spot_taken", "spot_id": spot,
            })),
            409,
            None,
        )
        .into();
        assert_eq!(
            e,
            ParqError::Conflict {
                reason: ConflictReason::SpotTaken,
                spot_id: Some(spot),
                detail: "taken".into()
            }
        );
        let e: ParqError = ClientError::from_problem(
            problem(serde_json::json!({ "code": "rate_limited", "detail": "slow down" })),
            429,
            Some(Duration::from_millis(1500)),
        )
        .into();
        assert_eq!(e, ParqError::RateLimited { retry_after_ms: Some(1500), detail: "slow down".into() });
        assert!(e.is_retryable());
        let e: ParqError = ClientError::from_problem(
            problem(serde_json::json!({ "code": "brand_new", "detail": "?" })),
            418,
            None,
        )
        .into();
        assert_eq!(e, ParqError::Server { code: "brand_new".into(), status: 418, detail: "?".into() });
    }

    #[test]
    fn pass_errors_say_what_is_wrong() {
        let ring = PassKeyring::new(KeyId(3), KeySeed::from_bytes([5; 32]));
        let e = parq_core::pass::Entitlement {
            reservation: parq_core::ReservationId::new(),
            lot: parq_core::LotId::new(),
            spot: parq_core::SpotId::new(),
            window: parq_core::Window::new(
                jiff::Timestamp::from_second(1_900_000_000).unwrap(),
                jiff::Timestamp::from_second(1_900_003_600).unwrap(),
            )
            .unwrap(),
        };
        let text = ring.issue(e).unwrap().into_text();
        let unknown: ParqError = PublicKeys::new().verify(&text).unwrap_err().into();
        assert!(matches!(
            unknown,
            ParqError::InvalidPass { fault: PassFault::UnknownKey, key_id: Some(3), .. }
        ));
        let truncated: ParqError = ring.public_keys().verify(&text[..text.len() - 5]).unwrap_err().into();
        assert!(
            matches!(truncated, ParqError::InvalidPass { fault: PassFault::Malformed, .. }),
            "{truncated:?}"
        );
        let core: ParqError = parq_core::Error::invalid("window", "bad").into();
        assert_eq!(core, ParqError::invalid("window", "bad"));
    }
}
