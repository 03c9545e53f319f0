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
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, SchemaFormat, Type};

/// The base of every problem type URI.
pub const TYPE_BASE: &str = "https://parq.dev/problems/";

/// The media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

macro_rules! problem_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $status:ident, $title:literal;)*) => {
        /// Every problem the server answers with. A code fixes the problem's `type`
        /// (`https://parq.dev/problems/<code>`), its HTTP status and its title; the first block
        /// are the engine's ([`parq_core::Error::code`]), the rest the server's own.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ProblemCode {
            $($(#[$doc])* $variant,)*
        }

        impl ProblemCode {
            /// Every code, in the order above.
            pub const ALL: &[ProblemCode] = &[$(Self::$variant,)*];

            /// The code as it appears in `code` and at the end of `type`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }

            /// The HTTP status of every problem of this code.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(Self::$variant => StatusCode::$status,)*
                }
            }

            /// A short, fixed summary of the problem type.
            pub const fn title(self) -> &'static str {
                match self {
                    $(Self::$variant => $title,)*
                }
            }
        }
    };
}

problem_codes! {
    /// The spot (or every matching spot) is taken, or the lot is closed, for the window.
    Conflict = "conflict", CONFLICT, "The spot is not available";
    /// The thing asked for does not exist, or is not the caller's.
    NotFound = "not_found", NOT_FOUND, "Not found";
    /// The reservation's state does not allow the action.
    InvalidTransition = "invalid_transition", CONFLICT, "Not allowed in the reservation's current state";
    /// The hold lapsed before it was paid.
    HoldExpired = "hold_expired", GONE, "The hold has expired";
    /// The reservation changed while the request was under way.
    StaleFence = "stale_fence", CONFLICT, "The reservation changed meanwhile";
    /// A limit of the lot or the operator was reached.
    LimitExceeded = "limit_exceeded", UNPROCESSABLE_ENTITY, "A limit was reached";
    /// The idempotency key came with a different request before.
    IdempotencyMismatch = "idempotency_mismatch", UNPROCESSABLE_ENTITY, "Idempotency key reused with a different request";
    /// The payment provider declined.
    PaymentDeclined = "payment_declined", PAYMENT_REQUIRED, "The payment was declined";
    /// A backend is unavailable for now.
    Unavailable = "unavailable", SERVICE_UNAVAILABLE, "Temporarily unavailable";
    /// A value breaks a rule; `field` names it.
    Invalid = "invalid", UNPROCESSABLE_ENTITY, "The request breaks a rule";
    /// The gate stays closed; `reason` says why.
    ScanRefused = "scan_refused", FORBIDDEN, "The gate stays closed";
    /// The caller may not do this.
    Forbidden = "forbidden", FORBIDDEN, "Forbidden";
    /// A backend failed; its error is in the server's logs.
    Backend = "backend", SERVICE_UNAVAILABLE, "A backend failed";
    /// The request is malformed (syntax, a missing header, a bad path or query).
    BadRequest = "bad_request", BAD_REQUEST, "Malformed request";
    /// An unsafe request came without its `Idempotency-Key`.
    IdempotencyKeyRequired = "idempotency_key_required", BAD_REQUEST, "An Idempotency-Key header is required";
    /// The first request with this idempotency key has not finished.
    IdempotencyInProgress = "idempotency_in_progress", CONFLICT, "A request with this idempotency key is in progress";
    /// No valid credentials, or wrong ones.
    Unauthorized = "unauthorized", UNAUTHORIZED, "Authentication required";
    /// The account needs its second factor to log in.
    MfaRequired = "mfa_required", UNAUTHORIZED, "A second factor is required";
    /// Registration with an email address that has an account.
    EmailTaken = "email_taken", CONFLICT, "The email address is already registered";
    /// The route does not take the request's method.
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED, "Method not allowed";
    /// The body is larger than the server takes.
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE, "The request body is too large";
    /// The body is not of a media type the route takes.
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "Unsupported media type";
    /// Too many requests; `Retry-After` says when to try again.
    RateLimited = "rate_limited", TOO_MANY_REQUESTS, "Too many requests";
    /// Too many failed logins of the account or from the client's address: every login is
    /// refused, even with the right password, until `Retry-After` has passed.
    LoginLocked = "login_locked", TOO_MANY_REQUESTS, "Too many failed logins";
    /// The route cannot answer in a media type the request accepts.
    NotAcceptable = "not_acceptable", NOT_ACCEPTABLE, "Not acceptable";
    /// The server failed; the failure is in its logs.
    Internal = "internal", INTERNAL_SERVER_ERROR, "Internal error";
}

impl ProblemCode {
    /// The code of an error of the engine. A code the server does not know (a variant added to
    /// [`parq_core::Error`] without a problem type) is answered as `internal`, and logged.
    pub fn of(e: &Error) -> Self {
        let code = e.code();
        Self::parse(code).unwrap_or_else(|| {
            tracing::error!(code, error = %e, "an engine error without a problem type");
            Self::Internal
        })
    }

    /// The code named `code`.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == code)
    }

    /// `https://parq.dev/problems/<code>`.
    pub fn type_uri(self) -> String {
        format!("{TYPE_BASE}{}", self.as_str())
    }

    /// The codes answered with `status`.
    pub fn with_status(status: StatusCode) -> impl Iterator<Item = ProblemCode> {
        Self::ALL.iter().copied().filter(move |c| c.status() == status)
    }
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for ProblemCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ProblemCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for ProblemCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl utoipa::PartialSchema for ProblemCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Self::ALL.iter().map(|c| c.as_str())))
            .description(Some("The stable code of a problem: the last segment of its `type`."))
            .into()
    }
}

impl utoipa::ToSchema for ProblemCode {}

/// The `type` of a problem: `https://parq.dev/problems/<code>`, one per [`ProblemCode`].
fn type_uri_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("uri".into())))
        .enum_values(Some(ProblemCode::ALL.iter().map(|c| c.type_uri())))
        .description(Some("`https://parq.dev/problems/<code>`."))
        .build()
}

/// A problem: the body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(description = "RFC 9457 problem details. `type` is https://parq.dev/problems/<code>; other \
                        members (`field`, `reason`, `retryable`, `trace_id`, …) say more.")]
pub struct Problem {
    /// `https://parq.dev/problems/<code>`.
    #[serde(rename = "type")]
    #[schema(schema_with = type_uri_schema)]
    pub type_uri: String,
    /// A short, fixed summary of the problem type.
    #[schema(value_type = String)]
    pub title: &'static str,
    /// The HTTP status.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The stable code (the last segment of `type`).
    pub code: ProblemCode,
    /// Extension members (`field`, `reason`, `retryable`, …).
    #[serde(flatten)]
    #[schema(value_type = ProblemExtensions)]
    pub extensions: Map<String, Value>,
    /// Seconds after which a retry may succeed (sent as `Retry-After` too).
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

/// The extension members a problem may carry, each only where it applies.
// Schema only: a problem keeps them in `Problem::extensions`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ProblemExtensions {
    /// The field (or header) that is wrong.
    field: Option<String>,
    /// Why: a conflict's (`spot_taken`, `no_free_spot`, `blackout`, `claimed`) or a refused
    /// scan's.
    reason: Option<String>,
    /// The spot that is taken.
    spot_id: Option<parq_core::SpotId>,
    /// The reservation concerned.
    reservation_id: Option<parq_core::ReservationId>,
    /// The reservation's state, when it does not allow the action.
    #[schema(value_type = Option<parq_core::ReservationState>)]
    state: Option<String>,
    /// The action the state does not allow.
    action: Option<String>,
    /// Whether trying again later may succeed.
    retryable: Option<bool>,
    /// The backend that failed.
    backend: Option<String>,
    /// The request's trace id (W3C trace context), to find it in the logs.
    trace_id: Option<String>,
}

/// A route's answer of a problem: `(status = NOT_FOUND, response = Problem)` in its
/// `#[utoipa::path]`. The API document gives each such answer its status's codes
/// ([`crate::openapi`]).
impl<'r> utoipa::ToResponse<'r> for Problem {
    fn response() -> (&'r str, RefOr<utoipa::openapi::Response>) {
        let content = utoipa::openapi::ContentBuilder::new()
            .schema(Some(utoipa::openapi::Ref::from_schema_name(<Problem as ToSchema>::name())))
            .build();
        let response = utoipa::openapi::ResponseBuilder::new()
            .description("A problem (RFC 9457)")
            .content(PROBLEM_JSON, content)
            .build();
        ("Problem", response.into())
    }
}

/// The documented answer of a problem of `status`: `application/problem+json`, described by
/// the codes of that status, with `Retry-After` where a retry may succeed.
pub fn response_for(status: StatusCode) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, ResponseBuilder};
    let codes: Vec<&str> = ProblemCode::with_status(status).map(ProblemCode::as_str).collect();
    let description =
        if codes.is_empty() { "A problem".to_owned() } else { format!("Problem: {}", codes.join(", ")) };
    let content =
        ContentBuilder::new().schema(Some(Ref::from_schema_name(<Problem as ToSchema>::name()))).build();
    let mut response = ResponseBuilder::new().description(description).content(PROBLEM_JSON, content);
    let retry = ProblemCode::with_status(status).any(|c| {
        matches!(
            c,
            ProblemCode::RateLimited
                | ProblemCode::LoginLocked
                | ProblemCode::Unavailable
                | ProblemCode::IdempotencyInProgress
        )
    });
    if retry {
        let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1));
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(seconds)
                .description(Some("Seconds to wait before trying again."))
                .build(),
        );
    }
    response.build()
}

/// The problems of a route that reads a JSON body (`ApiJson`): `400` (not JSON), `413` (too
/// large), `415` (not sent as JSON) and `422` (JSON of the wrong shape). In a route's
/// `#[utoipa::path(responses(...))]`.
pub struct JsonBody;

impl utoipa::IntoResponses for JsonBody {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        [
            StatusCode::BAD_REQUEST,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            StatusCode::UNPROCESSABLE_ENTITY,
        ]
        .into_iter()
        .map(|status| (status.as_str().to_owned(), <Problem as utoipa::ToResponse<'_>>::response().1))
        .collect()
    }
}

impl Problem {
    /// A problem of `code` (which fixes the status and title) with `detail`.
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self {
            type_uri: code.type_uri(),
            title: code.title(),
            status: code.status().as_u16(),
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
        Self::new(ProblemCode::BadRequest, detail)
    }

    /// `401 unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::Unauthorized, detail)
    }

    /// `403 forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::Forbidden, detail)
    }

    /// `404 not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::NotFound, detail)
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        let p = Problem::new(ProblemCode::of(&e), e.to_string());
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
                Problem::new(ProblemCode::Backend, format!("the {backend} backend failed; try again later"))
                    .with("backend", backend)
            }
            _ => p,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        let status = self.status();
        if let Some(trace_id) = crate::http::current_trace_id() {
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
    fn codes_are_unique_and_name_their_type() {
        let mut seen = std::collections::HashSet::new();
        for &code in ProblemCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} listed twice");
            assert_eq!(ProblemCode::parse(code.as_str()), Some(code));
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            let p = Problem::new(code, "x");
            assert_eq!(p.status(), code.status());
            assert_eq!(p.type_uri, format!("https://parq.dev/problems/{code}"));
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{code}");
        }
    }

    #[test]
    fn every_engine_error_has_its_own_problem_type() {
        for e in Error::one_of_each() {
            let code = e.code();
            let typed = ProblemCode::parse(code).unwrap_or_else(|| panic!("{code} has no problem type"));
            assert_eq!(ProblemCode::of(&e), typed);
            let p = Problem::from(e);
            assert_eq!(p.code, typed);
            assert_eq!(p.type_uri, format!("https://parq.dev/problems/{code}"));
            let status = p.status();
            assert!(
                status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE,
                "{code}: {status}"
            );
            assert_ne!(typed, ProblemCode::Internal);
        }
    }
}
