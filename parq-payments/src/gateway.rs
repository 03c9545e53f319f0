//! [`StripeGateway`]: the [`PaymentGateway`] port over Stripe's PaymentIntents.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use parq_core::{
    Currency, Error, IntentRequest, IntentStatus, Money, PaymentEvent, PaymentGateway, PaymentIntent, Refund,
    ReservationId, Result,
};
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_core::PaymentIntentCaptureMethod;
use stripe_core::payment_intent::{
    CancelPaymentIntent, CapturePaymentIntent, CreatePaymentIntent, RetrievePaymentIntent,
};
use stripe_core::refund::CreateRefund;

use crate::config::{StripeConfig, redacted};
use crate::error::{classify, unexpected};

/// Backoff before the first retry; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// A [`PaymentGateway`] over Stripe.
///
/// - [`create_intent`](PaymentGateway::create_intent) creates a PaymentIntent with
///   `capture_method=manual` and metadata `reservation` and `attempt`: the driver's card is
///   authorised when they pay, and money moves only on [`capture`](PaymentGateway::capture),
///   which the engine calls once the reservation is confirmed.
/// - Every mutating request carries the idempotency key the engine passes; a request that
///   fails in a retryable way is sent again with the same key, so Stripe replays the first
///   outcome instead of acting twice.
/// - Responses are read for the fields ParQ needs only, so other API versions and Stripe
///   emulators work.
/// - [`parse_webhook`](PaymentGateway::parse_webhook) verifies Stripe's signature scheme
///   against the caller's clock; see [`webhook`](crate::webhook).
pub struct StripeGateway {
    client: Client,
    webhook_secret: Vec<u8>,
    timeout: Duration,
    max_retries: u32,
    send_description: bool,
}

impl fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeGateway")
            .field("webhook_secret", &redacted(&String::from_utf8_lossy(&self.webhook_secret)))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("send_description", &self.send_description)
            .finish_non_exhaustive()
    }
}

impl StripeGateway {
    /// A gateway with its own client, built from `config`.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `stripe`) when the key or the API base cannot be used.
    pub fn new(config: StripeConfig) -> Result<Self> {
        // Stripe's client asks rustls for the process's default crypto provider. When a build
        // holds two providers (ring here, aws-lc-rs for a crate beside it), rustls cannot pick
        // one and panics; make ring the default unless the application chose one already.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut builder = ClientBuilder::new(config.secret_key.clone()).timeout(config.timeout).app_info(
            "parq",
            Some(env!("CARGO_PKG_VERSION").to_owned()),
            None,
        );
        if let Some(base) = &config.api_base {
            // async-stripe appends `v1/…` to the base.
            let base = if base.ends_with('/') { base.clone() } else { format!("{base}/") };
            builder = builder.url(base);
        }
        let client = builder.build().map_err(|e| Error::invalid("stripe", e.to_string()))?;
        Ok(Self::with_client(client, &config))
    }

    /// A gateway over the caller's `client`, with the rest of `config` (its key and API base
    /// are the client's business).
    pub fn with_client(client: Client, config: &StripeConfig) -> Self {
        Self {
            client,
            webhook_secret: config.webhook_secret.as_bytes().to_vec(),
            timeout: config.timeout,
            max_retries: config.max_retries,
            send_description: config.send_description,
        }
    }

    /// The Stripe client, for calls this gateway does not make.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends `request` (rebuilt for each attempt) and reads the answer as `T`, retrying
    /// retryable failures with the same idempotency key.
    async fn send<R, T>(&self, op: &'static str, target: &str, request: &R, key: Option<&str>) -> Result<T>
    where
        R: StripeRequest + Sync,
        T: miniserde::Deserialize + Send,
    {
        let idempotency = key
            .map(IdempotencyKey::new)
            .transpose()
            .map_err(|e| Error::invalid("idempotency_key", e.to_string()))?;
        let mut retries = 0;
        loop {
            let strategy = idempotency.clone().map_or(RequestStrategy::Once, RequestStrategy::Idempotent);
            let sent = request
                .build()
                .customize::<T>()
                .request_strategy(strategy)
                .timeout(self.timeout)
                .send(&self.client)
                .await;
            match sent {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    let err = classify(op, target, key, e);
                    if !err.is_retryable() || retries >= self.max_retries {
                        return Err(err);
                    }
                    let wait = FIRST_BACKOFF * 2u32.pow(retries);
                    retries += 1;
                    tracing::debug!(op, target, retries, ?wait, error = %err, "retrying Stripe request with the same key");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// After a refused capture or cancel: the intent when it is in `wanted` already,
    /// otherwise the refusal.
    async fn settled_or(
        &self,
        intent_id: &str,
        wanted: IntentStatus,
        refusal: Error,
    ) -> Result<PaymentIntent> {
        match self.fetch(intent_id).await? {
            intent if intent.status == wanted => Ok(intent),
            intent => {
                tracing::debug!(intent_id, status = ?intent.status, error = %refusal, "Stripe refused the change");
                Err(refusal)
            }
        }
    }

    async fn fetch(&self, intent_id: &str) -> Result<PaymentIntent> {
        let wire: WireIntent =
            self.send("retrieve", intent_id, &RetrievePaymentIntent::new(intent_id), None).await?;
        wire.into_intent("retrieve")
    }
}

#[async_trait]
impl PaymentGateway for StripeGateway {
    fn provider(&self) -> &'static str {
        "stripe"
    }

    async fn create_intent(&self, request: &IntentRequest) -> Result<PaymentIntent> {
        if request.amount.minor <= 0 {
            return Err(Error::invalid("amount", "a payment intent needs a positive amount"));
        }
        let metadata = HashMap::from([
            ("reservation".to_owned(), request.reservation.to_string()),
            ("attempt".to_owned(), request.attempt.to_string()),
        ]);
        let Ok(currency) =
            request.amount.currency.as_str().to_ascii_lowercase().parse::<stripe_types::Currency>();
        let mut create = CreatePaymentIntent::new(request.amount.minor, currency)
            .capture_method(PaymentIntentCaptureMethod::Manual)
            .metadata(metadata);
        if self.send_description && !request.description.is_empty() {
            create = create.description(request.description.clone());
        }
        let target = format!("for reservation {}", request.reservation);
        let wire: WireIntent =
            self.send("create_intent", &target, &create, Some(&request.idempotency_key)).await?;
        let intent = wire.into_intent("create_intent")?;
        if intent.amount != request.amount {
            // Only possible when a key was reused for another amount and the server replayed.
            return Err(Error::IdempotencyMismatch { key: request.idempotency_key.clone() });
        }
        Ok(intent)
    }

    async fn capture(&self, intent_id: &str, idempotency_key: &str) -> Result<PaymentIntent> {
        let sent: Result<WireIntent> = self
            .send("capture", intent_id, &CapturePaymentIntent::new(intent_id), Some(idempotency_key))
            .await;
        match sent {
            // An answer that did not capture (an emulator may answer a voided intent so) is
            // not a capture: money moved only when the intent says so.
            Ok(wire) => settled(wire.into_intent("capture")?, IntentStatus::Succeeded, "capture"),
            // Refused because it is captured already (under another key): capturing is
            // idempotent for the engine.
            Err(e) if refused(&e) => self.settled_or(intent_id, IntentStatus::Succeeded, e).await,
            Err(e) => Err(e),
        }
    }

    async fn cancel(&self, intent_id: &str, idempotency_key: &str) -> Result<PaymentIntent> {
        let sent: Result<WireIntent> =
            self.send("cancel", intent_id, &CancelPaymentIntent::new(intent_id), Some(idempotency_key)).await;
        match sent {
            Ok(wire) => settled(wire.into_intent("cancel")?, IntentStatus::Canceled, "cancel"),
            // Refused because it is voided already: cancelling is idempotent for the engine.
            Err(e) if refused(&e) => self.settled_or(intent_id, IntentStatus::Canceled, e).await,
            Err(e) => Err(e),
        }
    }

    async fn refund(
        &self,
        intent_id: &str,
        reservation: ReservationId,
        amount: Money,
        idempotency_key: &str,
    ) -> Result<Refund> {
        if amount.minor <= 0 {
            return Err(Error::invalid("amount", "a refund needs a positive amount"));
        }
        // Stripe refunds in the charge's currency whatever is asked, and an uncaptured intent
        // is voided, not refunded: check both first. An intent's metadata never changes, so
        // the reservation it names is checked here once, before any money moves.
        let intent = self.fetch(intent_id).await?;
        if intent.reservation != Some(reservation) {
            return Err(Error::invalid(
                "reservation",
                format!("{intent_id} does not pay for reservation {reservation}: not refunded"),
            ));
        }
        if intent.status != IntentStatus::Succeeded {
            return Err(Error::invalid(
                "intent",
                format!(
                    "{intent_id} is {:?}: only captured money is refunded (cancel to void)",
                    intent.status
                ),
            ));
        }
        if amount.minor > intent.amount.minor {
            return Err(Error::invalid(
                "amount",
                format!("{amount} is more than {intent_id} captured ({})", intent.amount),
            ));
        }
        if intent.amount.currency != amount.currency {
            return Err(Error::invalid(
                "amount",
                format!("{intent_id} is in {}, not {}", intent.amount.currency, amount.currency),
            ));
        }
        let metadata = HashMap::from([("reservation".to_owned(), reservation.to_string())]);
        let create = CreateRefund::new().payment_intent(intent_id).amount(amount.minor).metadata(metadata);
        let wire: WireRefund = self.send("refund", intent_id, &create, Some(idempotency_key)).await?;
        let currency = currency("refund", &wire.currency)?;
        Ok(Refund { id: wire.id, amount: Money::new(wire.amount, currency) })
    }

    async fn retrieve(&self, intent_id: &str) -> Result<PaymentIntent> {
        self.fetch(intent_id).await
    }

    fn parse_webhook(&self, payload: &[u8], signature: &str, now: Timestamp) -> Result<PaymentEvent> {
        crate::webhook::parse(payload, signature, &self.webhook_secret, now)
    }
}

/// The fields of a PaymentIntent that ParQ reads.
#[derive(miniserde::Deserialize)]
struct WireIntent {
    id: String,
    status: String,
    amount: i64,
    currency: String,
    client_secret: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
}

impl WireIntent {
    fn into_intent(self, op: &'static str) -> Result<PaymentIntent> {
        let status = match self.status.as_str() {
            "requires_payment_method" => IntentStatus::RequiresPaymentMethod,
            "requires_confirmation" => IntentStatus::RequiresConfirmation,
            "requires_action" => IntentStatus::RequiresAction,
            "processing" => IntentStatus::Processing,
            "requires_capture" => IntentStatus::RequiresCapture,
            "succeeded" => IntentStatus::Succeeded,
            "canceled" => IntentStatus::Canceled,
            other => return Err(unexpected(op, "payment intent status", other)),
        };
        Ok(PaymentIntent {
            status,
            amount: Money::new(self.amount, currency(op, &self.currency)?),
            client_secret: self.client_secret,
            reservation: self.metadata.and_then(|m| m.get("reservation").and_then(|r| r.parse().ok())),
            id: self.id,
        })
    }
}

/// The fields of a Refund that ParQ reads.
#[derive(miniserde::Deserialize)]
struct WireRefund {
    id: String,
    amount: i64,
    currency: String,
}

/// The intent, when a capture or cancel left it in `wanted`; otherwise a refusal.
fn settled(intent: PaymentIntent, wanted: IntentStatus, op: &str) -> Result<PaymentIntent> {
    if intent.status == wanted {
        return Ok(intent);
    }
    Err(Error::invalid(
        "intent",
        format!("{op} left {} in status {:?}, not {wanted:?}", intent.id, intent.status),
    ))
}

/// Whether Stripe refused a request for the intent's state (not a transport failure, not a
/// missing intent).
fn refused(e: &Error) -> bool {
    matches!(e, Error::Invalid { .. } | Error::Backend { .. })
}

fn currency(op: &'static str, code: &str) -> Result<Currency> {
    Currency::new(code).map_err(|_| unexpected(op, "currency", code))
}
