//! Idempotency keys and failures. localstripe ignores `Idempotency-Key`, so these tests put
//! a proxy in front of it that answers as Stripe does (replay the first outcome of a key)
//! and injects faults; the intents are counted in localstripe itself.

mod support;

use std::error::Error as _;
use std::time::Duration;

use parq_core::{Currency, Error, IntentRequest, Money, PaymentGateway, ReservationId};
use parq_payments::StripeGatewayError;
use parq_payments::stripe::StripeError;
use support::{Fault, LocalStripe, Proxy};

fn request(reservation: ReservationId, attempt: u32, minor: i64) -> IntentRequest {
    IntentRequest {
        reservation,
        attempt,
        amount: Money::new(minor, Currency::EUR),
        idempotency_key: format!("parq:{reservation}:intent:{attempt}"),
        description: "Parking A-1".into(),
    }
}

/// The client's error at the bottom of an error's source chain.
fn stripe_source(err: &Error) -> Option<&StripeError> {
    let mut source = err.source();
    while let Some(s) = source {
        if let Some(StripeGatewayError::Request { source, .. }) = s.downcast_ref::<StripeGatewayError>() {
            return Some(source);
        }
        source = s.source();
    }
    None
}

/// A retried create (by the caller, or by the gateway after a lost response) leaves one
/// intent; a new attempt gets a new key and a new intent; the same key for another amount
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_create_leaves_one_intent() {
    let ls = LocalStripe::start().await;
    let proxy = Proxy::start(&ls).await;
    let gw = proxy.gateway(2);
    let r = ReservationId::new();

    let first = gw.create_intent(&request(r, 1, 600)).await.unwrap();
    let again = gw.create_intent(&request(r, 1, 600)).await.unwrap();
    assert_eq!(again.id, first.id, "the same key returns the same intent");
    assert_eq!(ls.intents_of(r).await.len(), 1);

    // Stripe creates the intent but the answer is lost: the gateway retries with the same
    // key and gets the first outcome.
    let r2 = ReservationId::new();
    proxy.fail_next(Fault::LoseResponse);
    let created = gw.create_intent(&request(r2, 1, 600)).await.unwrap();
    let intents = ls.intents_of(r2).await;
    assert_eq!(intents.len(), 1, "one intent despite the retry: {intents:?}");
    assert_eq!(intents[0]["id"], created.id.as_str());
    let creates: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST" && s.path == "/v1/payment_intents")
        .map(|s| s.idempotency_key)
        .collect();
    let key2 = format!("parq:{r2}:intent:1");
    assert_eq!(
        creates.iter().filter(|k| k.as_deref() == Some(key2.as_str())).count(),
        2,
        "sent twice, same key"
    );
    assert!(creates.iter().all(Option::is_some), "every create carries a key: {creates:?}");

    // A new attempt is a new key, hence a new intent.
    let second = gw.create_intent(&request(r, 2, 600)).await.unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(ls.intents_of(r).await.len(), 2);

    // The same key for another request is the caller's bug.
    let err = gw.create_intent(&request(r, 1, 700)).await.unwrap_err();
    assert!(
        matches!(&err, Error::IdempotencyMismatch { key } if *key == format!("parq:{r}:intent:1")),
        "{err}"
    );
    assert_eq!(ls.intents_of(r).await.len(), 2);

    // Capture, cancel and refund carry the caller's key too.
    let (status, _) = ls.pay(&first.id, "pm_card_visa").await;
    assert_eq!(status, 200);
    gw.capture(&first.id, "parq:k:capture").await.unwrap();
    gw.refund(&first.id, r, Money::new(100, Currency::EUR), "parq:k:refund").await.unwrap();
    gw.cancel(&second.id, "parq:k:cancel").await.unwrap();
    let keyed: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST" && !s.path.starts_with("/v1/payment_intents?"))
        .filter_map(|s| Some((s.path.rsplit('/').next()?.to_owned(), s.idempotency_key?)))
        .collect();
    for (tail, key) in
        [("capture", "parq:k:capture"), ("refunds", "parq:k:refund"), ("cancel", "parq:k:cancel")]
    {
        assert!(keyed.iter().any(|(t, k)| t == tail && k == key), "{tail} with {key}: {keyed:?}");
    }
    // Retrying a capture or a refund with its key does nothing more.
    gw.capture(&first.id, "parq:k:capture").await.unwrap();
    gw.refund(&first.id, r, Money::new(100, Currency::EUR), "parq:k:refund").await.unwrap();
    assert_eq!(ls.refunds_of(&first.id).await.len(), 1);
    // Capturing again under another key, or voiding twice, is not an error either.
    assert_eq!(
        gw.capture(&first.id, "parq:k:capture-2").await.unwrap().status,
        parq_core::IntentStatus::Succeeded
    );
    assert_eq!(
        gw.cancel(&second.id, "parq:k:cancel-2").await.unwrap().status,
        parq_core::IntentStatus::Canceled
    );
}

/// Stripe's failures become the core errors a caller can act on, with typed sources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_map_to_core_errors() {
    let ls = LocalStripe::start().await;
    let proxy = Proxy::start(&ls).await;
    let once = proxy.gateway(0);
    let r = ReservationId::new();

    // 5xx: retryable; with retries, the next attempt (same key) goes through.
    proxy.fail_next(Fault::Answer(500, r#"{"error":{"type":"api_error","message":"boom"}}"#));
    let err = once.create_intent(&request(r, 1, 500)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(matches!(stripe_source(&err), Some(StripeError::Stripe(_, 500))), "{err:?}");
    proxy.fail_next(Fault::Answer(503, r#"{"error":{"type":"api_error"}}"#));
    let retrying = proxy.gateway(1);
    retrying.create_intent(&request(r, 1, 500)).await.unwrap();
    assert_eq!(ls.intents_of(r).await.len(), 1);

    // A proxy's HTML error page: retryable too.
    proxy.fail_next(Fault::Answer(502, "<html>Bad gateway</html>"));
    let err = once.retrieve("pi_whatever").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");

    // Rate limited.
    proxy.fail_next(Fault::Answer(429, r#"{"error":{"type":"invalid_request_error","code":"rate_limit"}}"#));
    assert!(once.retrieve("pi_whatever").await.unwrap_err().is_retryable());

    // A card error.
    proxy.fail_next(Fault::Answer(
        402,
        r#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds."}}"#,
    ));
    let err = once.create_intent(&request(ReservationId::new(), 1, 500)).await.unwrap_err();
    assert!(matches!(&err, Error::PaymentDeclined { reason } if reason == "insufficient_funds"), "{err}");

    // The same key still in flight: retry later. Another 409: a key reused.
    proxy.fail_next(Fault::Answer(
        409,
        r#"{"error":{"type":"invalid_request_error","code":"idempotency_key_in_use"}}"#,
    ));
    assert!(once.create_intent(&request(ReservationId::new(), 1, 500)).await.unwrap_err().is_retryable());
    proxy.fail_next(Fault::Answer(409, r#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters they were first used with."}}"#));
    let req = request(ReservationId::new(), 1, 500);
    let err = once.create_intent(&req).await.unwrap_err();
    assert!(matches!(&err, Error::IdempotencyMismatch { key } if *key == req.idempotency_key), "{err}");

    // An unknown intent (localstripe's own 404).
    let err = once.retrieve("pi_doesnotexist").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    // A bad key: not retryable.
    proxy.fail_next(Fault::Answer(
        401,
        r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}"#,
    ));
    let err = once.retrieve("pi_whatever").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { retryable: false, .. }), "{err}");

    // No answer in time: retryable, the client's Timeout at the bottom.
    let mut config = parq_payments::StripeConfig::new(support::SECRET_KEY, support::WEBHOOK_SECRET);
    config.api_base = Some(proxy.url.clone());
    config.timeout = Duration::from_millis(300);
    config.max_retries = 0;
    let impatient = parq_payments::StripeGateway::new(config).unwrap();
    proxy.fail_next(Fault::Stall(Duration::from_secs(2)));
    let err = impatient.create_intent(&request(ReservationId::new(), 1, 500)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(matches!(stripe_source(&err), Some(StripeError::Timeout)), "{err:?}");

    // Nobody listening.
    let dead = {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        support::gateway_at(&format!("http://127.0.0.1:{port}"), 0)
    };
    let err = dead.retrieve("pi_whatever").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(matches!(stripe_source(&err), Some(StripeError::ClientError(_))), "{err:?}");
}
