//! The payment gateway.

use std::fmt::Debug;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ids::ReservationId;
use crate::money::Money;

/// A request for a payment intent (authorise now, capture on confirmation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentRequest {
    /// The reservation it pays for (sent to the provider as metadata).
    pub reservation: ReservationId,
    /// The checkout attempt, from 1.
    pub attempt: u32,
    /// How much.
    pub amount: Money,
    /// Derived from the reservation and the attempt: a retried request never creates a second
    /// intent, and a new attempt is not refused as a reused key.
    pub idempotency_key: String,
    /// Shown on the driver's statement.
    pub description: String,
}

/// The provider's state of an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum IntentStatus {
    /// Waiting for the driver to pay.
    RequiresPaymentMethod,
    /// Waiting for confirmation.
    RequiresConfirmation,
    /// Waiting for the driver (3-D Secure, …).
    RequiresAction,
    /// The provider is working on it.
    Processing,
    /// Authorised; may be captured.
    RequiresCapture,
    /// Captured.
    Succeeded,
    /// Voided or abandoned.
    Canceled,
}

/// A payment intent as the provider sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct PaymentIntent {
    /// The provider's id.
    pub id: String,
    /// Its state.
    pub status: IntentStatus,
    /// Its amount.
    pub amount: Money,
    /// The secret a client needs to pay it (absent for providers without one).
    pub client_secret: Option<String>,
    /// The reservation from its metadata.
    pub reservation: Option<ReservationId>,
}

/// A refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// The provider's id.
    pub id: String,
    /// How much went back.
    pub amount: Money,
}

/// What a webhook said happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentEventKind {
    /// Authorised, not yet captured.
    Authorized,
    /// Captured (also what a provider without manual capture sends on payment).
    Succeeded,
    /// The attempt failed; the driver may try again.
    Failed {
        /// The provider's reason.
        reason: String,
    },
    /// The intent was voided.
    Canceled,
    /// Money was refunded.
    Refunded {
        /// How much, in total so far.
        amount: Money,
    },
}

/// A verified webhook event from the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEvent {
    /// The provider's event id (deduplication key).
    pub id: String,
    /// The intent.
    pub intent_id: String,
    /// The reservation, from the intent's metadata.
    pub reservation: ReservationId,
    /// What happened.
    #[serde(flatten)]
    pub kind: PaymentEventKind,
}

/// Talks to a payment provider.
///
/// # Contract
/// - Every mutating call carries an idempotency key; the same key with the same request has the
///   effect of one call, so the engine may retry freely.
/// - [`create_intent`](Self::create_intent) authorises only; money moves on
///   [`capture`](Self::capture). [`cancel`](Self::cancel) voids an uncaptured intent;
///   [`refund`](Self::refund) returns captured money (full or partial).
/// - A refund names the reservation it is for, and reaches only the intent made for that
///   reservation (its metadata): for any other intent it is refused as
///   [`Invalid`](crate::Error::Invalid) with field `reservation`, and nothing moves. The
///   engine derives every key from the reservation, so no refund is ever sent on the strength of
///   an intent id alone.
/// - A declined card is [`PaymentDeclined`](crate::Error::PaymentDeclined); timeouts and 5xx
///   are retryable [`Unavailable`](crate::Error::Unavailable); an unknown intent is
///   [`NotFound`](crate::Error::NotFound).
/// - [`parse_webhook`](Self::parse_webhook) verifies the signature and its timestamp tolerance
///   against `now` and fails with [`Invalid`](crate::Error::Invalid) (field `signature` or
///   `payload`) on anything it cannot trust. A genuine delivery that ParQ does not act on (an
///   event type it does not handle, a payment it did not create) fails with field
///   [`IGNORED_EVENT`], which [`is_ignorable`] recognises: the receiver acknowledges it and
///   does nothing. It does not deduplicate; the engine does.
#[async_trait]
pub trait PaymentGateway: Send + Sync + Debug + 'static {
    /// The provider's name, used to scope webhook deduplication (`stripe`, `test`).
    fn provider(&self) -> &'static str;
    /// Creates (or, with the same key, returns) an intent.
    async fn create_intent(&self, request: &IntentRequest) -> Result<PaymentIntent>;
    /// Captures an authorised intent.
    async fn capture(&self, intent_id: &str, idempotency_key: &str) -> Result<PaymentIntent>;
    /// Voids an uncaptured intent.
    async fn cancel(&self, intent_id: &str, idempotency_key: &str) -> Result<PaymentIntent>;
    /// Refunds `amount` of a captured intent, which must be the one made for `reservation`.
    async fn refund(
        &self,
        intent_id: &str,
        reservation: ReservationId,
        amount: Money,
        idempotency_key: &str,
    ) -> Result<Refund>;
    /// The intent as the provider sees it now.
    async fn retrieve(&self, intent_id: &str) -> Result<PaymentIntent>;
    /// Verifies and parses a webhook delivery.
    fn parse_webhook(&self, payload: &[u8], signature: &str, now: Timestamp) -> Result<PaymentEvent>;
}

/// The `field` of the [`Invalid`](crate::Error::Invalid) error that
/// [`PaymentGateway::parse_webhook`] returns for a genuine delivery that ParQ does not act on.
pub const IGNORED_EVENT: &str = "event";

/// Whether `err` (from [`PaymentGateway::parse_webhook`] or
/// [`Engine::handle_webhook`](crate::Engine::handle_webhook)) means "verified, but not for
/// ParQ": acknowledge the delivery and do nothing. Bad signatures and payloads are not
/// ignorable.
pub fn is_ignorable(err: &crate::Error) -> bool {
    matches!(err, crate::Error::Invalid { field, .. } if *field == IGNORED_EVENT)
}

/// `dyn PaymentGateway`.
pub type DynPaymentGateway = dyn PaymentGateway;
