//! The payment flows through the engine and the real gateway, against localstripe.

mod support;

use parq_core::{EventKind, IntentStatus, Money, ReservationState, UserId};
use support::{LocalStripe, delivery, engine_with};

/// Hold, check out, the driver pays, Stripe says so, the engine confirms and only then
/// captures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_then_confirm_then_capture() {
    let ls = LocalStripe::start().await;
    let (fx, engine) = engine_with(ls.gateway()).await;
    let user = UserId::new();
    let held = engine.hold(&fx.named(user, 0, fx.window(24, 2)), None).await.unwrap();
    let checkout = engine.checkout(held.id, user).await.unwrap();
    assert_eq!(checkout.reservation.state, ReservationState::PendingPayment);
    let intent_id = checkout.intent.id.clone();
    assert!(intent_id.starts_with("pi_"), "{intent_id}");
    assert!(checkout.intent.client_secret.is_some(), "the app needs the client secret");
    assert_eq!(checkout.intent.reservation, Some(held.id));

    // As Stripe holds it: manual capture, the reservation and the attempt in the metadata.
    let pi = ls.intent(&intent_id).await;
    assert_eq!(pi["capture_method"], "manual");
    assert_eq!(pi["amount"], held.price.minor);
    assert_eq!(pi["currency"], "eur");
    assert_eq!(pi["metadata"]["reservation"], held.id.to_string());
    assert_eq!(pi["metadata"]["attempt"], "1");
    assert_eq!(pi["status"], "requires_payment_method");

    // The driver's app confirms with a test card: authorised, nothing captured yet.
    let (status, paid) = ls.pay(&intent_id, "pm_card_visa").await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["status"], "requires_capture");
    assert_eq!(engine.gateway().retrieve(&intent_id).await.unwrap().status, IntentStatus::RequiresCapture);

    // Stripe's webhook: the engine confirms, then captures.
    let (body, sig) = delivery(
        &ls,
        "evt_authorized_1",
        "payment_intent.amount_capturable_updated",
        &intent_id,
        engine.now().as_second(),
    )
    .await;
    let confirmed = engine.handle_webhook(&body, &sig).await.unwrap();
    assert_eq!(confirmed.state, ReservationState::Confirmed);
    let payment = confirmed.payment.as_deref().expect("payment recorded");
    assert!(payment.captured, "captured once confirmed");
    assert_eq!(payment.intent_id, intent_id);
    let pi = ls.intent(&intent_id).await;
    assert_eq!(pi["status"], "succeeded", "{pi}");
    assert_eq!(pi["charges"]["data"][0]["captured"], true);
    assert_eq!(ls.intents_of(held.id).await.len(), 1);
}

/// A declined card: the driver's app hears it from Stripe, the engine from the
/// `payment_failed` webhook; the reservation goes back to `held` and the next checkout is a
/// new attempt with a new key, hence a new intent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_card_leaves_the_hold_payable() {
    let ls = LocalStripe::start().await;
    let (fx, engine) = engine_with(ls.gateway()).await;
    let user = UserId::new();
    let held = engine.hold(&fx.named(user, 1, fx.window(24, 1)), None).await.unwrap();
    let first = engine.checkout(held.id, user).await.unwrap();

    let (status, body) = ls.pay(&first.intent.id, "pm_card_chargeCustomerFail").await;
    assert_eq!(status, 402, "declined: {body}");
    assert_eq!(body["error"]["code"], "card_declined");
    let pi = ls.intent(&first.intent.id).await;
    assert_eq!(pi["status"], "requires_payment_method");

    let (body, sig) = delivery(
        &ls,
        "evt_failed_1",
        "payment_intent.payment_failed",
        &first.intent.id,
        engine.now().as_second(),
    )
    .await;
    let event = engine.gateway().parse_webhook(&body, &sig, engine.now()).unwrap();
    assert_eq!(event.kind, parq_core::PaymentEventKind::Failed { reason: "card_declined".into() });
    let back = engine.handle_webhook(&body, &sig).await.unwrap();
    assert_eq!(back.state, ReservationState::Held);

    let second = engine.checkout(held.id, user).await.unwrap();
    assert_ne!(second.intent.id, first.intent.id, "a new attempt is a new intent");
    let intents = ls.intents_of(held.id).await;
    assert_eq!(intents.len(), 2);
    let mut attempts: Vec<_> =
        intents.iter().map(|pi| pi["metadata"]["attempt"].as_str().unwrap().to_owned()).collect();
    attempts.sort();
    assert_eq!(attempts, ["1", "2"]);

    let (status, paid) = ls.pay(&second.intent.id, "pm_card_visa").await;
    assert_eq!((status, paid["status"].as_str()), (200, Some("requires_capture")));
    let (body, sig) = delivery(
        &ls,
        "evt_authorized_2",
        "payment_intent.amount_capturable_updated",
        &second.intent.id,
        engine.now().as_second(),
    )
    .await;
    let confirmed = engine.handle_webhook(&body, &sig).await.unwrap();
    assert_eq!(confirmed.state, ReservationState::Confirmed);
    assert_eq!(ls.intent(&second.intent.id).await["status"], "succeeded");
}

/// The authorisation lands, but the reservation cannot be confirmed any more (its hold
/// lapsed and another driver took the spot): the engine voids the authorisation, so no money
/// moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_that_cannot_confirm_is_voided() {
    let ls = LocalStripe::start().await;
    let (fx, engine) = engine_with(ls.gateway()).await;
    let (slow, fast) = (UserId::new(), UserId::new());
    let window = fx.window(24, 2);
    let held = engine.hold(&fx.named(slow, 2, window), None).await.unwrap();
    let checkout = engine.checkout(held.id, slow).await.unwrap();
    let (status, paid) = ls.pay(&checkout.intent.id, "pm_card_visa").await;
    assert_eq!((status, paid["status"].as_str()), (200, Some("requires_capture")));

    // The webhook is late: the hold lapses and the spot goes to someone else.
    fx.advance_mins(11);
    let other = engine.hold(&fx.named(fast, 2, window), None).await.unwrap();

    let (body, sig) = delivery(
        &ls,
        "evt_late_auth",
        "payment_intent.amount_capturable_updated",
        &checkout.intent.id,
        engine.now().as_second(),
    )
    .await;
    let after = engine.handle_webhook(&body, &sig).await.unwrap();
    assert_eq!(after.state, ReservationState::Expired);
    let pi = ls.intent(&checkout.intent.id).await;
    assert_eq!(pi["status"], "canceled", "the authorisation is voided: {pi}");
    assert_eq!(pi["charges"]["data"][0]["captured"], false, "nothing was captured");
    assert!(ls.refunds_of(&checkout.intent.id).await.is_empty(), "a void, not a refund");
    assert_eq!(
        engine.get(other.id).await.unwrap().state,
        ReservationState::Held,
        "the other driver keeps the spot"
    );
}

/// Partial refunds: operator goodwill, then a cancellation under the lot's late policy (half
/// back); each is a refund in Stripe, and they never exceed what was captured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_refunds() {
    let ls = LocalStripe::start().await;
    let (fx, engine) = engine_with(ls.gateway()).await;
    let user = UserId::new();
    // Starts in one hour: inside the lot's two hours, so a cancellation refunds half.
    let held = engine.hold(&fx.named(user, 3, fx.window(1, 4)), None).await.unwrap();
    let checkout = engine.checkout(held.id, user).await.unwrap();
    ls.pay(&checkout.intent.id, "pm_card_visa").await;
    let (body, sig) = delivery(
        &ls,
        "evt_auth_refunds",
        "payment_intent.amount_capturable_updated",
        &checkout.intent.id,
        engine.now().as_second(),
    )
    .await;
    let confirmed = engine.handle_webhook(&body, &sig).await.unwrap();
    assert_eq!(confirmed.state, ReservationState::Confirmed);
    let price = confirmed.price;
    assert_eq!(price.minor, 800);

    let goodwill = engine.refund(held.id, Money::new(100, price.currency)).await.unwrap();
    assert!(goodwill.id.starts_with("re_"), "{goodwill:?}");
    assert_eq!(goodwill.amount, Money::new(100, price.currency));
    let refunds = ls.refunds_of(&checkout.intent.id).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["amount"], 100);

    let cancelled = engine.cancel(held.id, user).await.unwrap();
    assert_eq!(cancelled.reservation.state, ReservationState::Cancelled);
    assert_eq!(
        cancelled.refunded,
        Money::new(500, price.currency),
        "in all: the goodwill 1.00, then half of the price by the late policy"
    );
    let mut amounts: Vec<i64> =
        ls.refunds_of(&checkout.intent.id).await.iter().map(|r| r["amount"].as_i64().unwrap()).collect();
    amounts.sort_unstable();
    assert_eq!(amounts, [100, 400]);
    assert_eq!(ls.intent(&checkout.intent.id).await["status"], "succeeded", "captured, partly refunded");

    // The gateway refuses a refund in another currency before asking Stripe.
    let err = engine
        .gateway()
        .refund(&checkout.intent.id, held.id, Money::new(1, parq_core::Currency::USD), "parq:test:usd")
        .await
        .unwrap_err();
    assert!(matches!(err, parq_core::Error::Invalid { field: "amount", .. }), "{err}");
    let events = engine.store().events(held.lot, 0, 100).await.unwrap();
    assert_eq!(
        events.iter().filter(|e| e.reservation == held.id && e.kind == EventKind::Captured).count(),
        1,
        "captured once"
    );
}
