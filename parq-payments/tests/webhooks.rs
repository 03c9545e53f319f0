//! Webhook deliveries signed by Stripe's own Python library (`stripe.WebhookSignature`).

mod support;

use parq_core::{
    Error, EventKind, PaymentEventKind, PaymentGateway, ReservationId, ReservationState, UserId,
};
use parq_payments::webhook::is_ignorable;
use serde_json::json;
use support::{LocalStripe, WEBHOOK_SECRET, delivery, engine_with, event, stripe_python_signature};

fn intent_object(reservation: ReservationId) -> serde_json::Value {
    json!({
        "id": "pi_3Pwebhook", "object": "payment_intent", "amount": 800, "currency": "eur",
        "capture_method": "manual", "status": "requires_capture",
        "metadata": { "reservation": reservation.to_string(), "attempt": "1" }
    })
}

/// Accepted: a delivery signed by stripe-python, with the signature among others (as while
/// a secret is rolled). Refused: tampered, wrongly signed, stale, from the future, unsigned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_genuine_fresh_deliveries_are_accepted() {
    let gw = support::gateway_at("http://127.0.0.1:9", 0);
    let now = jiff::Timestamp::from_second(1_900_000_000).unwrap();
    let t = now.as_second();
    let r = ReservationId::new();
    let body = event("evt_genuine", "payment_intent.amount_capturable_updated", t, intent_object(r));
    let header = stripe_python_signature(&body, WEBHOOK_SECRET, t);

    let ev = gw.parse_webhook(&body, &header, now).unwrap();
    assert_eq!(ev.id, "evt_genuine");
    assert_eq!(ev.intent_id, "pi_3Pwebhook");
    assert_eq!(ev.reservation, r);
    assert_eq!(ev.kind, PaymentEventKind::Authorized);

    // async-stripe's own signer agrees.
    let lib_header = stripe_webhook::Webhook::generate_test_header(
        std::str::from_utf8(&body).unwrap(),
        WEBHOOK_SECRET,
        Some(t),
    );
    assert_eq!(lib_header, header);
    gw.parse_webhook(&body, &lib_header, now).unwrap();

    // Several v1 signatures, one of them good.
    let other = stripe_python_signature(&body, "whsec_previous", t);
    let (_, other_v1) = other.split_once(",v1=").unwrap();
    let (_, good_v1) = header.split_once(",v1=").unwrap();
    gw.parse_webhook(&body, &format!("t={t},v1={other_v1},v1={good_v1}"), now).unwrap();
    // Within the tolerance either way.
    gw.parse_webhook(&body, &header, now + jiff::SignedDuration::from_secs(300)).unwrap();
    gw.parse_webhook(&body, &header, now - jiff::SignedDuration::from_secs(300)).unwrap();

    let mut tampered = body.clone();
    let at = tampered.windows(3).position(|w| w == b"800").unwrap();
    tampered[at] = b'1';
    let stale_t = t - 301;
    let stale_body =
        event("evt_stale", "payment_intent.amount_capturable_updated", stale_t, intent_object(r));
    let future_t = t + 301;
    let refused = [
        ("tampered", tampered.clone(), header.clone()),
        ("wrong secret", body.clone(), other.clone()),
        ("stale", stale_body.clone(), stripe_python_signature(&stale_body, WEBHOOK_SECRET, stale_t)),
        ("future", body.clone(), stripe_python_signature(&body, WEBHOOK_SECRET, future_t)),
        ("timestamp swapped", body.clone(), header.replace(&format!("t={t}"), &format!("t={}", t - 1))),
        ("no v1", body.clone(), format!("t={t}")),
        ("v0 only", body.clone(), header.replace("v1=", "v0=")),
        ("empty", body.clone(), String::new()),
    ];
    for (what, body, header) in refused {
        let err = gw.parse_webhook(&body, &header, now).unwrap_err();
        assert!(matches!(err, Error::Invalid { field: "signature", .. }), "{what}: {err}");
        assert!(!is_ignorable(&err), "{what}");
    }

    // Genuine, but not for ParQ: acknowledge and ignore.
    for body in [
        event("evt_other_type", "customer.created", t, json!({ "id": "cus_1", "object": "customer" })),
        event(
            "evt_foreign",
            "payment_intent.succeeded",
            t,
            json!({ "id": "pi_foreign", "object": "payment_intent", "metadata": { "order": "42" } }),
        ),
    ] {
        let header = stripe_python_signature(&body, WEBHOOK_SECRET, t);
        let err = gw.parse_webhook(&body, &header, now).unwrap_err();
        assert!(is_ignorable(&err), "{err}");
    }

    // charge.refunded carries the total refunded so far.
    let charge = json!({
        "id": "ch_1", "object": "charge", "amount": 800, "amount_refunded": 300, "currency": "eur",
        "payment_intent": "pi_3Pwebhook", "metadata": { "reservation": r.to_string() }, "refunded": false
    });
    let body = event("evt_refunded", "charge.refunded", t, charge);
    let header = stripe_python_signature(&body, WEBHOOK_SECRET, t);
    let ev = gw.parse_webhook(&body, &header, now).unwrap();
    assert_eq!(
        ev.kind,
        PaymentEventKind::Refunded { amount: parq_core::Money::new(300, parq_core::Currency::EUR) }
    );
    assert_eq!(ev.intent_id, "pi_3Pwebhook");
}

/// The same event delivered twice (Stripe retries until it gets a 2xx) confirms and
/// captures once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_delivery_changes_state_once() {
    let ls = LocalStripe::start().await;
    let (fx, engine) = engine_with(ls.gateway()).await;
    let user = UserId::new();
    let held = engine.hold(&fx.named(user, 0, fx.window(5, 1)), None).await.unwrap();
    let checkout = engine.checkout(held.id, user).await.unwrap();
    ls.pay(&checkout.intent.id, "pm_card_visa").await;
    let (body, sig) = delivery(
        &ls,
        "evt_twice",
        "payment_intent.amount_capturable_updated",
        &checkout.intent.id,
        engine.now().as_second(),
    )
    .await;

    let first = engine.handle_webhook(&body, &sig).await.unwrap();
    let second = engine.handle_webhook(&body, &sig).await.unwrap();
    assert_eq!(first.state, ReservationState::Confirmed);
    assert_eq!(second.state, ReservationState::Confirmed);
    assert_eq!(second.fence, first.fence, "the second delivery wrote nothing");

    // And `succeeded`, which Stripe sends after our capture, changes nothing either.
    let (body, sig) = delivery(
        &ls,
        "evt_succeeded",
        "payment_intent.succeeded",
        &checkout.intent.id,
        engine.now().as_second(),
    )
    .await;
    let third = engine.handle_webhook(&body, &sig).await.unwrap();
    assert_eq!(third.fence, first.fence);

    let events = engine.store().events(held.lot, 0, 100).await.unwrap();
    let count = |k: EventKind| events.iter().filter(|e| e.reservation == held.id && e.kind == k).count();
    assert_eq!((count(EventKind::Confirmed), count(EventKind::Captured)), (1, 1), "{events:#?}");
    let pi = ls.intent(&checkout.intent.id).await;
    assert_eq!(pi["status"], "succeeded");
    assert_eq!(ls.intents_of(held.id).await.len(), 1);
}
