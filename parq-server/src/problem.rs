//! Errors as `application/problem+json` ([RFC 9457](https://www.rfc-editor.org/rfc/rfc9457)).
//!
//! Every problem has a stable `type` URI, `https://parq.dev/problems/<code>`, where `<code>` is
//! [`parq_core::Error::code`] for errors of the engine and one of the server's own codes
//! (`bad_request`, `unauthorized`, `rate_limited`, …) for the rest. The `status` of a code never
//! changes; `detail` says what went wrong in words meant for the caller.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parq_core::{ConflictReason, Error};
use serde::Serialize;
use serde_json::{Map, Value};

/// The base of every problem type URI.
pub const TYPE_BASE: &str = "https://parq.dev/problems/";

/// The media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem: the body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// `https://parq.dev/problems/<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short, fixed summary of the problem type.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The stable code (the last segment of `type`).
    pub code: &'static str,
    /// Extension members (`field`, `reason`, `retryable`, …).
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
    /// Seconds after which a retry may succeed (sent as `Retry-After` too).
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

impl Problem {
    /// A problem of `code` (which fixes the status and title) with `detail`.
    pub fn new(code: &'static str, detail: impl Into<String>) -> Self {
        let (status, title) = describe(code);
        Self {
            type_uri: format!("{TYPE_BASE}{code}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            code,
            extensions: Map::new(),
            retry_after: None,
        }
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// Sets `Retry-After`.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// `400 bad_request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new("bad_request", detail)
    }

    /// `401 unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new("unauthorized", detail)
    }

    /// `403 forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new("forbidden", detail)
    }

    /// `404 not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new("not_found", detail)
    }
}

/// Every problem code the server answers with, with its status and title. The first block is
/// the engine's ([`parq_core::Error::code`]); the second is the server's own.
pub const CODES: &[(&str, u16, &str)] = &[
    ("conflict", 409, "The spot is not available"),
    ("not_found", 404, "Not found"),
    ("invalid_transition", 409, "Not allowed in the reservation's current state"),
    ("hold_expired", 410, "The hold has expired"),
    ("stale_fence", 409, "The reservation changed meanwhile"),
    ("limit_exceeded", 422, "A limit was reached"),
    ("idempotency_mismatch", 422, "Idempotency key reused with a different request"),
    ("payment_declined", 402, "The payment was declined"),
    ("unavailable", 503, "Temporarily unavailable"),
    ("invalid", 422, "The request breaks a rule"),
    ("scan_refused", 403, "The gate stays closed"),
    ("forbidden", 403, "Forbidden"),
    ("backend", 503, "A backend failed"),
    // The server's own.
    ("bad_request", 400, "Malformed request"),
    ("idempotency_key_required", 400, "An Idempotency-Key header is required"),
    ("idempotency_in_progress", 409, "A request with this idempotency key is in progress"),
    ("unauthorized", 401, "Authentication required"),
    ("mfa_required", 401, "A second factor is required"),
    ("email_taken", 409, "The email address is already registered"),
    ("method_not_allowed", 405, "Method not allowed"),
    ("payload_too_large", 413, "The request body is too large"),
    ("unsupported_media_type", 415, "Unsupported media type"),
    ("rate_limited", 429, "Too many requests"),
    ("not_acceptable", 406, "Not acceptable"),
    ("internal", 500, "Internal error"),
];

fn describe(code: &str) -> (StatusCode, &'static str) {
    CODES
        .iter()
        .find(|(c, ..)| *c == code)
        .map(|(_, s, t)| (StatusCode::from_u16(*s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), *t))
        .unwrap_or((StatusCode::INTERNAL_SERVER_ERROR, "Internal error"))
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        let code = e.code();
        let detail = e.to_string();
        let p = Problem::new(code, detail);
        match e {
            Error::Conflict { reason } => {
                let p = p.with(
                    "reason",
                    match reason {
                        ConflictReason::SpotTaken { .. } => "spot_taken",
                        ConflictReason::NoFreeSpot => "no_free_spot",
                        ConflictReason::Blackout => "blackout",
                        ConflictReason::Claimed => "claimed",
                        _ => "other",
                    },
                );
                match reason {
                    ConflictReason::SpotTaken { spot } => p.with("spot_id", spot.to_string()),
                    _ => p,
                }
            }
            Error::InvalidTransition { id, from, action } => {
                p.with("reservation_id", id.to_string()).with("state", from.as_str()).with("action", action)
            }
            Error::HoldExpired { id } => p.with("reservation_id", id.to_string()),
            Error::StaleFence { id, .. } => p.with("reservation_id", id.to_string()),
            Error::Invalid { field, .. } => p.with("field", field),
            Error::ScanRefused { reason } => p.with("reason", reason.as_str()),
            Error::Unavailable { retryable, source, .. } => {
                if let Some(source) = source {
                    tracing::warn!(error = %source, "backend unavailable");
                }
                let p = p.with("retryable", retryable);
                if retryable { p.retry_after(Duration::from_secs(1)) } else { p }
            }
            Error::Backend { backend, source } => {
                tracing::error!(backend, error = %source, "backend error");
                Problem::new("backend", format!("the {backend} backend failed; try again later"))
                    .with("backend", backend)
            }
            _ => p,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        let status = self.status();
        if let Some(trace_id) = crate::middleware::current_trace_id() {
            self.extensions.entry("trace_id").or_insert(Value::String(trace_id));
        }
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                h.insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, Problem>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_status_and_a_type_uri() {
        let mut seen = std::collections::HashSet::new();
        for (code, status, _) in CODES {
            assert!(seen.insert(*code), "{code} listed twice");
            let p = Problem::new(code, "x");
            assert_eq!(p.status, *status);
            assert_eq!(p.type_uri, format!("https://parq.dev/problems/{code}"));
        }
    }
}
