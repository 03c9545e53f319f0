//! What can go wrong: the server's problems as typed errors, the network, and answers that are
//! not what the API promises.

use std::error::Error as StdError;
use std::time::Duration;

use parq_core::{ReservationId, ReservationState, SpotId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A boxed error source, kept typed so callers can walk the chain.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The base of every problem type URI the server sends.
pub const TYPE_BASE: &str = "https://parq.dev/problems/";

/// An `application/problem+json` body ([RFC 9457](https://www.rfc-editor.org/rfc/rfc9457)),
/// as the server sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// `https://parq.dev/problems/<code>` (`about:blank` when the server sent no problem).
    #[serde(rename = "type", default = "about_blank")]
    pub type_uri: String,
    /// A short, fixed summary of the problem type.
    #[serde(default)]
    pub title: String,
    /// The HTTP status.
    #[serde(default)]
    pub status: u16,
    /// What went wrong this time, in words meant for the caller.
    #[serde(default)]
    pub detail: String,
    /// The stable code: the last segment of `type`.
    #[serde(default)]
    pub code: String,
    /// The request's trace id, to quote when reporting a problem.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The other members (`field`, `reason`, `retryable`, `reservation_id`, …).
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

fn about_blank() -> String {
    "about:blank".to_owned()
}

impl Problem {
    /// A problem made up by the client for an answer that carried none.
    pub(crate) fn synthetic(code: &str, status: u16, detail: impl Into<String>) -> Self {
        Self {
            type_uri: about_blank(),
            title: String::new(),
            status,
            detail: detail.into(),
            code: code.to_owned(),
            trace_id: None,
            extensions: Map::new(),
        }
    }

    /// An extension member as text.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.extensions.get(key).and_then(Value::as_str)
    }

    /// Fills `code` from `type` when the server left it out.
    pub(crate) fn normalize(mut self, status: u16) -> Self {
        if self.code.is_empty() {
            self.code = self.type_uri.strip_prefix(TYPE_BASE).unwrap_or("").to_owned();
        }
        if self.status == 0 {
            self.status = status;
        }
        self
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.detail)
    }
}

/// Why a hold or a change conflicts, as the server's `reason` says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConflictReason {
    /// A live reservation on this spot overlaps the window.
    SpotTaken {
        /// The spot, when the server named it.
        spot: Option<SpotId>,
    },
    /// No spot matching the request is free for the window.
    NoFreeSpot,
    /// The lot is blacked out for part of the window.
    Blackout,
    /// Another driver is claiming this spot right now.
    Claimed,
    /// A reason this client does not know.
    Other(String),
}

/// What went wrong, in terms a caller can act on.
///
/// The server's problems map one to one onto the codes of [`parq_core::Error::code`] (and the
/// server's own, such as `unauthorized`); every variant that comes from the server keeps the
/// [`Problem`] it sent. [`ClientError::code`] gives the stable code, and
/// [`ClientError::is_retryable`] whether trying the same request again may help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// `409 conflict`: the spot (or every matching spot) is taken, or a blackout covers it.
    #[error("conflict: {}", .problem.detail)]
    Conflict {
        /// Why.
        reason: ConflictReason,
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `404 not_found`: it does not exist, or is not the caller's to see.
    #[error("not found: {}", .problem.detail)]
    NotFound {
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `409 invalid_transition`: not allowed in the reservation's current state.
    #[error("invalid transition: {}", .problem.detail)]
    InvalidTransition {
        /// The reservation.
        reservation: Option<ReservationId>,
        /// Its current state.
        state: Option<ReservationState>,
        /// What was attempted.
        action: Option<String>,
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `410 hold_expired`: the hold's deadline passed.
    #[error("hold expired: {}", .problem.detail)]
    HoldExpired {
        /// The reservation whose hold expired.
        reservation: Option<ReservationId>,
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `409 stale_fence`: the reservation changed meanwhile; read it again.
    #[error("stale: {}", .problem.detail)]
    StaleFence {
        /// The reservation.
        reservation: Option<ReservationId>,
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `422 limit_exceeded`: concurrent holds, maximum stay, lots per connection, …
    #[error("limit exceeded: {}", .problem.detail)]
    LimitExceeded {
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `422 idempotency_mismatch`: an idempotency key reused with a different request.
    #[error("idempotency key reused with a different request: {}", .problem.detail)]
    IdempotencyMismatch {
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `402 payment_declined`.
    #[error("payment declined: {}", .problem.detail)]
    PaymentDeclined {
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `503 unavailable` / `backend`, or a `502`/`503`/`504` from something in between.
    #[error("unavailable: {}", .problem.detail)]
    Unavailable {
        /// Whether a retry may succeed.
        retryable: bool,
        /// How long the server asked to wait (`Retry-After`).
        retry_after: Option<Duration>,
        /// The server's problem (a made-up `about:blank` one when the answer had none).
        problem: Box<Problem>,
    },
    /// `422 invalid`: the request breaks a rule (window, hours, attributes, email, password, …).
    #[error("invalid {}: {}", .field.as_deref().unwrap_or("request"), .problem.detail)]
    Invalid {
        /// The offending field, when the server named it.
        field: Option<String>,
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `400 bad_request` and its kin (`idempotency_key_required`, `unsupported_media_type`,
    /// `payload_too_large`): the server could not read the request.
    #[error("bad request: {}", .problem.detail)]
    BadRequest {
        /// The offending field, when the server named it.
        field: Option<String>,
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `401 unauthorized`: not logged in, a wrong password, or an expired session.
    #[error("unauthorized: {}", .problem.detail)]
    Unauthorized {
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `401 mfa_required`: log in again with a TOTP code.
    #[error("a second factor is required: {}", .problem.detail)]
    MfaRequired {
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `403 forbidden`: the caller may not do this (a driver's token at a gate, …).
    #[error("forbidden: {}", .problem.detail)]
    Forbidden {
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `403 scan_refused`: a gate refused a scan.
    #[error("scan refused: {}", .problem.detail)]
    ScanRefused {
        /// The refusal's code (`expired`, `wrong_lot`, …).
        reason: Option<String>,
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `409 email_taken`: the address is registered already; log in instead.
    #[error("email taken: {}", .problem.detail)]
    EmailTaken {
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// `429 rate_limited`.
    #[error("rate limited: {}", .problem.detail)]
    RateLimited {
        /// How long the server asked to wait (`Retry-After`).
        retry_after: Option<Duration>,
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// Any other problem (`internal`, `idempotency_in_progress`, `method_not_allowed`, a code
    /// newer than this client, …).
    #[error("server error {}: {}", .problem.status, .problem.detail)]
    Server {
        /// The server's problem.
        problem: Box<Problem>,
    },
    /// The request did not get an answer: connection refused or dropped, a timeout, TLS, a
    /// live connection that closed.
    #[error("transport: {message}")]
    Transport {
        /// What happened.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The server answered something the API does not promise: not JSON, the wrong shape, an
    /// error without a problem body, a wrong content type.
    #[error("malformed response (HTTP {status}): {reason}")]
    MalformedResponse {
        /// The HTTP status of the answer (0 for a live-update message).
        status: u16,
        /// What was wrong with it.
        reason: String,
        /// The beginning of the body, for the logs.
        body: String,
    },
    /// The client was asked for something it cannot send (a base URL that is not HTTP, a
    /// header value with control characters, …).
    #[error("invalid argument {what}: {message}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl ClientError {
    /// The stable code: the server's problem code (the codes of [`parq_core::Error::code`] and
    /// the server's own), or `transport`, `malformed_response` and `invalid_argument` for the
    /// client's own errors.
    pub fn code(&self) -> &str {
        match self {
            Self::Transport { .. } => "transport",
            Self::MalformedResponse { .. } => "malformed_response",
            Self::InvalidArgument { .. } => "invalid_argument",
            other => other.problem().map_or("unknown", |p| p.code.as_str()),
        }
    }

    /// The server's problem, for errors that come from the server.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Conflict { problem, .. }
            | Self::NotFound { problem }
            | Self::InvalidTransition { problem, .. }
            | Self::HoldExpired { problem, .. }
            | Self::StaleFence { problem, .. }
            | Self::LimitExceeded { problem }
            | Self::IdempotencyMismatch { problem }
            | Self::PaymentDeclined { problem }
            | Self::Unavailable { problem, .. }
            | Self::Invalid { problem, .. }
            | Self::BadRequest { problem, .. }
            | Self::Unauthorized { problem }
            | Self::MfaRequired { problem }
            | Self::Forbidden { problem }
            | Self::ScanRefused { problem, .. }
            | Self::EmailTaken { problem }
            | Self::RateLimited { problem, .. }
            | Self::Server { problem } => Some(problem),
            Self::Transport { .. } | Self::MalformedResponse { .. } | Self::InvalidArgument { .. } => None,
        }
    }

    /// The HTTP status of the server's answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::MalformedResponse { status, .. } if *status != 0 => Some(*status),
            other => other.problem().map(|p| p.status).filter(|s| *s != 0),
        }
    }

    /// Whether trying the same request again (with the same idempotency key) may succeed: a
    /// transport error, a retryable `unavailable`, `rate_limited`, or a request with the same
    /// key still running on the server.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::RateLimited { .. } => true,
            Self::Unavailable { retryable, .. } => *retryable,
            Self::Server { problem } => problem.code == "idempotency_in_progress",
            _ => false,
        }
    }

    /// How long the server asked the caller to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } | Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn transport(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Transport { message: message.into(), source: Some(source.into()) }
    }

    pub(crate) fn malformed(status: u16, reason: impl Into<String>, body: &[u8]) -> Self {
        Self::MalformedResponse { status, reason: reason.into(), body: snippet(body) }
    }

    /// The error for a problem the server sent with `status` (and `Retry-After`).
    pub fn from_problem(problem: Problem, status: u16, retry_after: Option<Duration>) -> Self {
        let problem = Box::new(problem.normalize(status));
        let field = problem.str("field").map(str::to_owned);
        let reservation = problem.str("reservation_id").and_then(|s| s.parse().ok()).map(ReservationId);
        match problem.code.as_str() {
            "conflict" => {
                let reason = match problem.str("reason") {
                    Some("spot_taken") => ConflictReason::SpotTaken {
                        spot: problem.str("spot_id").and_then(|s| s.parse().ok()).map(SpotId),
                    },
                    Some("no_free_spot") => ConflictReason::NoFreeSpot,
                    Some("blackout") => ConflictReason::Blackout,
                    Some("claimed") => ConflictReason::Claimed,
                    other => ConflictReason::Other(other.unwrap_or("").to_owned()),
                };
                Self::Conflict { reason, problem }
            }
            "not_found" => Self::NotFound { problem },
            "invalid_transition" => {
                let state = problem
                    .extensions
                    .get("state")
                    .and_then(|v| serde_json::from_value::<ReservationState>(v.clone()).ok());
                let action = problem.str("action").map(str::to_owned);
                Self::InvalidTransition { reservation, state, action, problem }
            }
            "hold_expired" => Self::HoldExpired { reservation, problem },
            "stale_fence" => Self::StaleFence { reservation, problem },
            "limit_exceeded" => Self::LimitExceeded { problem },
            "idempotency_mismatch" => Self::IdempotencyMismatch { problem },
            "payment_declined" => Self::PaymentDeclined { problem },
            "unavailable" | "backend" => {
                let retryable = problem.extensions.get("retryable").and_then(Value::as_bool).unwrap_or(true);
                Self::Unavailable { retryable, retry_after, problem }
            }
            "invalid" => Self::Invalid { field, problem },
            "bad_request" | "idempotency_key_required" | "unsupported_media_type" | "payload_too_large" => {
                Self::BadRequest { field, problem }
            }
            "unauthorized" => Self::Unauthorized { problem },
            "mfa_required" => Self::MfaRequired { problem },
            "forbidden" => Self::Forbidden { problem },
            "scan_refused" => {
                let reason = problem.str("reason").map(str::to_owned);
                Self::ScanRefused { reason, problem }
            }
            "email_taken" => Self::EmailTaken { problem },
            "rate_limited" => Self::RateLimited { retry_after, problem },
            _ => Self::Server { problem },
        }
    }

    /// The error for an error status whose body is not a problem: well-known statuses keep
    /// their meaning, anything else is a malformed answer.
    pub(crate) fn from_status(status: u16, retry_after: Option<Duration>, why: &str, body: &[u8]) -> Self {
        let detail = format!("HTTP {status} without a problem body ({why})");
        let p = |code: &str| Box::new(Problem::synthetic(code, status, detail.clone()));
        match status {
            401 => Self::Unauthorized { problem: p("unauthorized") },
            403 => Self::Forbidden { problem: p("forbidden") },
            404 => Self::NotFound { problem: p("not_found") },
            429 => Self::RateLimited { retry_after, problem: p("rate_limited") },
            502..=504 => Self::Unavailable { retryable: true, retry_after, problem: p("unavailable") },
            _ => Self::malformed(status, format!("an error status without a problem body ({why})"), body),
        }
    }
}

/// The first bytes of a body, as text, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    const MAX: usize = 512;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]).into_owned();
    if body.len() > MAX { format!("{text}…") } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(json: Value) -> Problem {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn codes_become_variants_with_their_members() {
        let spot = uuid::Uuid::now_v7();
        let e = ClientError::from_problem(
            problem(serde_json::json!({
                "type": "https://parq.dev/problems/conflict", "title": "t", "status": 409,
                "detail": "d", "code": "conflict", "reason": "spot_taken", "spot_id": spot.to_string(),
            })),
            409,
            None,
        );
        assert!(
            matches!(&e, ClientError::Conflict { reason: ConflictReason::SpotTaken { spot: Some(s) }, .. } if s.0 == spot)
        );
        assert_eq!(e.code(), "conflict");
        assert_eq!(e.status(), Some(409));
        assert!(!e.is_retryable());

        // A problem without `code` still has one, from its type.
        let e = ClientError::from_problem(
            problem(serde_json::json!({ "type": "https://parq.dev/problems/invalid", "field": "window" })),
            422,
            None,
        );
        assert!(matches!(&e, ClientError::Invalid { field: Some(f), .. } if f == "window"), "{e:?}");
        assert_eq!(e.status(), Some(422));

        let e = ClientError::from_problem(
            problem(serde_json::json!({ "code": "unavailable", "retryable": false })),
            503,
            None,
        );
        assert!(!e.is_retryable());
        let e = ClientError::from_problem(
            problem(serde_json::json!({ "code": "rate_limited" })),
            429,
            Some(Duration::from_secs(2)),
        );
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        let e = ClientError::from_problem(problem(serde_json::json!({ "code": "brand_new" })), 418, None);
        assert!(matches!(e, ClientError::Server { .. }));
        assert_eq!(e.code(), "brand_new");
    }

    #[test]
    fn statuses_without_a_problem() {
        assert!(matches!(
            ClientError::from_status(502, None, "text/html", b"<html>"),
            ClientError::Unavailable { retryable: true, .. }
        ));
        let e = ClientError::from_status(500, None, "text/plain", b"oops");
        assert!(matches!(&e, ClientError::MalformedResponse { status: 500, body, .. } if body == "oops"));
        assert_eq!(e.code(), "malformed_response");
    }
}
