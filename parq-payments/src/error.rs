//! How Stripe's failures become ParQ's [`Error`].

use parq_core::Error;
use stripe::{ApiErrorsCode, ApiErrorsType, StripeError};

/// What went wrong talking to Stripe, kept as the typed source of the core [`Error`] so a
/// caller can walk the chain (`std::error::Error::source`) down to async-stripe's
/// [`StripeError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StripeGatewayError {
    /// A request failed; `source` is the client's error, with Stripe's error object for API
    /// errors.
    #[error("Stripe request {op} failed")]
    Request {
        /// The operation (`create_intent`, `capture`, …).
        op: &'static str,
        /// The HTTP status, for errors Stripe answered.
        status: Option<u16>,
        /// The client's error.
        #[source]
        source: StripeError,
    },
    /// Stripe answered with a value this adapter does not know.
    #[error("Stripe answered {op} with an unexpected {what}: {value:?}")]
    Unexpected {
        /// The operation.
        op: &'static str,
        /// Which value.
        what: &'static str,
        /// What was received.
        value: String,
    },
}

/// The message async-stripe gives when an error response is not Stripe's JSON (a load
/// balancer's or proxy's HTML page); the status is lost with it.
const UNREADABLE_ERROR_BODY: &str = "error deserializing Stripe error";

/// Converts a failed request of `op` on `target` (an intent id, for messages), sent with
/// `idempotency_key`, into the core error.
pub(crate) fn classify(
    op: &'static str,
    target: &str,
    idempotency_key: Option<&str>,
    err: StripeError,
) -> Error {
    let unavailable =
        |message: String, retryable: bool, status: Option<u16>, source: StripeError| Error::Unavailable {
            message,
            retryable,
            source: Some(Box::new(StripeGatewayError::Request { op, status, source })),
        };
    match err {
        StripeError::Stripe(api, status) => {
            let code = api.code.as_ref().map(ApiErrorsCode::as_str);
            let message = api.message.clone().unwrap_or_else(|| format!("HTTP {status}"));
            match (&api.type_, code, status) {
                (ApiErrorsType::CardError, ..) | (_, _, 402) => Error::PaymentDeclined {
                    reason: api.decline_code.clone().or_else(|| code.map(str::to_owned)).unwrap_or(message),
                },
                // Same key with other parameters: the caller reused a key for another request.
                (ApiErrorsType::IdempotencyError, ..) => {
                    Error::IdempotencyMismatch { key: idempotency_key.unwrap_or_default().to_owned() }
                }
                // The same key is in flight in another request: its outcome will be replayed.
                (_, Some("idempotency_key_in_use" | "lock_timeout"), _) => unavailable(
                    format!("Stripe is still processing another {op} request with the same idempotency key"),
                    true,
                    Some(status),
                    StripeError::Stripe(api, status),
                ),
                (_, _, 409) => {
                    Error::IdempotencyMismatch { key: idempotency_key.unwrap_or_default().to_owned() }
                }
                (_, Some("resource_missing"), _) | (_, _, 404) => {
                    Error::not_found(format!("Stripe payment intent {target}"))
                }
                (_, Some("payment_intent_unexpected_state"), _) => Error::invalid("intent", message),
                (_, Some("charge_already_refunded" | "amount_too_large"), _) => {
                    Error::invalid("amount", message)
                }
                (_, _, 429) => unavailable(
                    format!("Stripe rate-limited {op}"),
                    true,
                    Some(status),
                    StripeError::Stripe(api, status),
                ),
                (_, _, s) if s >= 500 => unavailable(
                    format!("Stripe failed {op} (HTTP {s})"),
                    true,
                    Some(status),
                    StripeError::Stripe(api, status),
                ),
                (_, _, 401 | 403) => unavailable(
                    format!("Stripe refused the API key for {op} (HTTP {status}): check the secret key"),
                    false,
                    Some(status),
                    StripeError::Stripe(api, status),
                ),
                _ => Error::Backend {
                    backend: "stripe",
                    source: Box::new(StripeGatewayError::Request {
                        op,
                        status: Some(status),
                        source: StripeError::Stripe(api, status),
                    }),
                },
            }
        }
        e @ StripeError::Timeout => unavailable(format!("Stripe did not answer {op} in time"), true, None, e),
        e @ StripeError::ClientError(_) => {
            unavailable(format!("cannot reach Stripe for {op}"), true, None, e)
        }
        StripeError::JSONDeserialize(m) if m == UNREADABLE_ERROR_BODY => unavailable(
            format!("Stripe (or a proxy in front of it) answered {op} with an error that is not Stripe's"),
            true,
            None,
            StripeError::JSONDeserialize(m),
        ),
        e => Error::Backend {
            backend: "stripe",
            source: Box::new(StripeGatewayError::Request { op, status: None, source: e }),
        },
    }
}

/// An [`Error::Backend`] for an answer this adapter cannot use.
pub(crate) fn unexpected(op: &'static str, what: &'static str, value: impl Into<String>) -> Error {
    Error::Backend {
        backend: "stripe",
        source: Box::new(StripeGatewayError::Unexpected { op, what, value: value.into() }),
    }
}
