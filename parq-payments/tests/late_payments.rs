//! Payments that land late, and the reconciler, through the engine and the real gateway.

mod support;

use jiff::SignedDuration;
use parq_core::{EventKind, Money, ReservationState, UserId};
use parq_payments::{ReconcileReport, reconcile};
use support::{LocalStripe, Proxy, delivery, engine_with};

/// The hold lapses before the payment's webhook arrives. When the spot is still free, the
/// reservation is reinstated and the payment captured; when another driver took it, the
/// money goes back: an authorisation is voided, and a payment that was already captured (in
/// the Dashboard, or by another integration on the account) is refunded in full — visible in
/// Stripe as a refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_payment_is_reinstated_when_free_and_refunded_when_taken() {
    let ls = LocalStripe::start().await;
    // Through the idempotency proxy: a redelivered webhook gives the money back again with the
    // same key, and only Stripe's replay of that key keeps it to one refund.
    let proxy = Proxy::start(&ls).await;
    let (fx, engine) = engine_with(proxy.gateway(2)).await;
    let (a, b, c) = (UserId::new(), UserId::new(), UserId::new());
    let free_window = fx.window(24, 2);
    let taken_window = fx.window(30, 2);

    // Reinstated: nobody took spot 0 meanwhile.
    let lucky = engine.hold(&fx.named(a, 0, free_window), None).await.unwrap();
    let lucky_pay = engine.checkout(lucky.id, a).await.unwrap();
    // Refunded: spot 1 goes to someone else after the hold lapses.
    let unlucky = engine.hold(&fx.named(b, 1, taken_window), None).await.unwrap();
    let unlucky_pay = engine.checkout(unlucky.id, b).await.unwrap();
    for pi in [&lucky_pay.intent.id, &unlucky_pay.intent.id] {
        let (status, paid) = ls.pay(pi, "pm_card_visa").await;
        assert_eq!((status, paid["status"].as_str()), (200, Some("requires_capture")), "{paid}");
    }
    // Captured outside ParQ before anyone told the engine.
    let (status, captured) =
        ls.call("POST", &format!("/v1/payment_intents/{}/capture", unlucky_pay.intent.id), &[]).await;
    assert_eq!((status, captured["status"].as_str()), (200, Some("succeeded")), "{captured}");

    fx.advance_mins(15);
    assert_eq!(engine.get(lucky.id).await.unwrap().state_at(engine.now()), ReservationState::Expired);
    let winner = engine.hold(&fx.named(c, 1, taken_window), None).await.unwrap();

    let now = engine.now().as_second();
    let (body, sig) =
        delivery(&ls, "evt_late_ok", "payment_intent.amount_capturable_updated", &lucky_pay.intent.id, now)
            .await;
    let reinstated = engine.handle_webhook(&body, &sig).await.unwrap();
    assert_eq!(reinstated.state, ReservationState::Confirmed);
    assert!(reinstated.payment.as_deref().unwrap().captured);
    assert_eq!(ls.intent(&lucky_pay.intent.id).await["status"], "succeeded");
    assert!(ls.refunds_of(&lucky_pay.intent.id).await.is_empty());
    let events = engine.store().events(lucky.lot, 0, 200).await.unwrap();
    assert!(events.iter().any(|e| e.reservation == lucky.id && e.kind == EventKind::Reinstated));

    let (body, sig) =
        delivery(&ls, "evt_late_taken", "payment_intent.succeeded", &unlucky_pay.intent.id, now).await;
    let given_back = engine.handle_webhook(&body, &sig).await.unwrap();
    assert_eq!(given_back.state, ReservationState::Expired);
    let refunds = ls.refunds_of(&unlucky_pay.intent.id).await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0]["amount"], unlucky.price.minor, "refunded in full");
    assert_eq!(refunds[0]["status"], "succeeded");
    let p = given_back.payment.as_deref().unwrap();
    assert_eq!(Money::new(p.refunded, p.amount.currency), unlucky.price);
    assert_eq!(
        engine.get(winner.id).await.unwrap().state,
        ReservationState::Held,
        "the winner keeps the spot"
    );

    // Delivered again: the reservation records the refund, so it is not even asked again
    // (a provider forgets idempotency keys after a day; webhooks are retried for days).
    engine.handle_webhook(&body, &sig).await.unwrap();
    assert_eq!(ls.refunds_of(&unlucky_pay.intent.id).await.len(), 1);
    let refund_keys: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST" && s.path == "/v1/refunds")
        .map(|s| s.idempotency_key.expect("keyed"))
        .collect();
    assert_eq!(refund_keys.len(), 1, "{refund_keys:?}");
}

/// The webhooks never come. The reconciler asks Stripe about reservations pending for long
/// enough: a paid one is confirmed and captured, one whose intent was cancelled goes back to
/// `held`, an unpaid one is left alone until its hold lapses, when the sweep expires it and
/// voids its intent. A second pass changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciler_resolves_pending_payments() {
    let ls = LocalStripe::start().await;
    let (fx, engine) = engine_with(ls.gateway()).await;
    let w = fx.window(24, 1);
    let users: Vec<UserId> = (0..4).map(|_| UserId::new()).collect();

    let mut pending = Vec::new();
    for (i, user) in users.iter().enumerate().take(3) {
        let r = engine.hold(&fx.named(*user, i, w), None).await.unwrap();
        let c = engine.checkout(r.id, *user).await.unwrap();
        pending.push((r, c.intent.id));
    }
    let (paid, paid_pi) = &pending[0];
    let (abandoned, abandoned_pi) = &pending[1];
    let (unpaid, unpaid_pi) = &pending[2];
    ls.pay(paid_pi, "pm_card_visa").await;
    let (status, _) = ls.call("POST", &format!("/v1/payment_intents/{abandoned_pi}/cancel"), &[]).await;
    assert_eq!(status, 200);

    fx.advance_mins(3);
    // Too young to ask about.
    let young = engine.hold(&fx.named(users[3], 3, w), None).await.unwrap();
    let young_pi = engine.checkout(young.id, users[3]).await.unwrap().intent.id;
    ls.pay(&young_pi, "pm_card_visa").await;

    let report = reconcile(&engine, SignedDuration::from_mins(2)).await.unwrap();
    assert_eq!(
        report,
        ReconcileReport { confirmed: 1, reverted: 1, unpaid: 1, expired: 0, settled: 0, failed: 0 },
        "{report:?}"
    );
    let state = |id| {
        let engine = engine.clone();
        async move { engine.get(id).await.unwrap().state }
    };
    assert_eq!(state(paid.id).await, ReservationState::Confirmed);
    assert_eq!(ls.intent(paid_pi).await["status"], "succeeded");
    assert_eq!(state(abandoned.id).await, ReservationState::Held);
    assert_eq!(state(unpaid.id).await, ReservationState::PendingPayment);
    assert_eq!(state(young.id).await, ReservationState::PendingPayment);
    assert_eq!(ls.intent(&young_pi).await["status"], "requires_capture", "not touched yet");

    // Past the holds' deadline: the sweep asks Stripe, confirms the young paid one, expires
    // the unpaid and the abandoned ones (voiding the unpaid one's intent).
    fx.advance_mins(10);
    let report = reconcile(&engine, SignedDuration::from_mins(2)).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.confirmed, 1, "{report:?}");
    assert_eq!(state(young.id).await, ReservationState::Confirmed);
    assert_eq!(ls.intent(&young_pi).await["status"], "succeeded");
    assert_eq!(state(unpaid.id).await, ReservationState::Expired);
    assert_eq!(ls.intent(unpaid_pi).await["status"], "canceled", "voided so it cannot be paid later");
    assert_eq!(state(abandoned.id).await, ReservationState::Expired);

    let again = reconcile(&engine, SignedDuration::from_mins(2)).await.unwrap();
    assert_eq!(again, ReconcileReport::default());
    for (r, _) in &pending {
        assert_eq!(ls.intents_of(r.id).await.len(), 1);
    }
}
