//! The [`PaymentGateway`](crate::PaymentGateway) conformance cases. Each takes a fresh
//! [`GatewayHarness`]: the gateway, with a way to act as the driver (who pays) and as the
//! provider (who signs webhooks and keeps the books), which each adapter's tests supply.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use crate::error::Error;
use crate::ids::ReservationId;
use crate::memory::TestGateway;
use crate::money::{Currency, Money};
use crate::ports::payment::{
    DynPaymentGateway, IntentRequest, IntentStatus, PaymentEvent, PaymentEventKind, PaymentIntent,
    is_ignorable,
};

/// What the gateway cases need besides the gateway.
#[async_trait]
pub trait GatewayHarness: Send + Sync + Debug + 'static {
    /// The gateway under test.
    fn gateway(&self) -> &DynPaymentGateway;
    /// The driver pays `intent` with a card that works, as the provider's client library would:
    /// afterwards the intent is authorised (`requires_capture`), nothing is captured.
    async fn pay(&self, intent: &PaymentIntent);
    /// The provider's books for an intent: minor units captured and refunded in all.
    async fn money(&self, intent_id: &str) -> (i64, i64);
    /// A webhook delivery, signed as the provider signs it at `at`, with event id `event_id`,
    /// saying that `intent` was authorised: the body and the signature header value.
    async fn authorised_delivery(
        &self,
        intent: &PaymentIntent,
        event_id: &str,
        at: Timestamp,
    ) -> (Vec<u8>, String);
    /// A delivery, genuinely signed at `at`, of an event that the provider sends but ParQ does
    /// not act on.
    async fn foreign_delivery(&self, event_id: &str, at: Timestamp) -> (Vec<u8>, String);
    /// Whether the provider refuses refunds beyond what is left of a capture after earlier
    /// refunds. Stripe does; an emulator may not, and the gateway cannot check it without
    /// breaking the replay of a refund under its key.
    fn provider_limits_refund_totals(&self) -> bool;
}

type Harness = Arc<dyn GatewayHarness>;

/// The [`GatewayHarness`] of [`TestGateway`].
#[derive(Debug)]
pub struct TestGatewayHarness {
    gateway: TestGateway,
}

impl TestGatewayHarness {
    /// A harness over a fresh test gateway.
    pub fn new() -> Self {
        Self { gateway: TestGateway::new(b"whsec_gateway_conformance".to_vec()) }
    }
}

impl Default for TestGatewayHarness {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl GatewayHarness for TestGatewayHarness {
    fn gateway(&self) -> &DynPaymentGateway {
        &self.gateway
    }

    async fn pay(&self, intent: &PaymentIntent) {
        let ev = self.gateway.pay(&intent.id, false).expect("the driver pays");
        assert_eq!(ev.kind, PaymentEventKind::Authorized);
    }

    async fn money(&self, intent_id: &str) -> (i64, i64) {
        self.gateway.money(intent_id).unwrap_or((0, 0))
    }

    async fn authorised_delivery(
        &self,
        intent: &PaymentIntent,
        event_id: &str,
        at: Timestamp,
    ) -> (Vec<u8>, String) {
        let event = PaymentEvent {
            id: event_id.to_owned(),
            intent_id: intent.id.clone(),
            reservation: intent.reservation.expect("the intent names its reservation"),
            kind: PaymentEventKind::Authorized,
        };
        self.gateway.sign(&event, at)
    }

    async fn foreign_delivery(&self, event_id: &str, at: Timestamp) -> (Vec<u8>, String) {
        self.gateway.sign_foreign(event_id, at)
    }

    fn provider_limits_refund_totals(&self) -> bool {
        true
    }
}

fn request(reservation: ReservationId, attempt: u32, minor: i64) -> IntentRequest {
    IntentRequest {
        reservation,
        attempt,
        amount: Money::new(minor, Currency::EUR),
        idempotency_key: format!("parq:{reservation}:intent:{attempt}"),
        description: "Parking A-1".into(),
    }
}

/// A fresh reservation's first intent, paid by the driver and captured.
async fn captured(h: &Harness, minor: i64) -> PaymentIntent {
    let intent = h.gateway().create_intent(&request(ReservationId::new(), 1, minor)).await.unwrap();
    h.pay(&intent).await;
    let done = h.gateway().capture(&intent.id, &format!("parq:{}:capture", intent.id)).await.unwrap();
    assert_eq!(done.status, IntentStatus::Succeeded);
    done
}

/// The reservation an intent pays for.
fn of(intent: &PaymentIntent) -> ReservationId {
    intent.reservation.expect("the intent names its reservation")
}

fn refused<T: Debug>(r: crate::Result<T>, what: &str) -> Error {
    match r {
        Ok(v) => panic!("{what}: expected a refusal, got {v:?}"),
        Err(e) => {
            assert!(!e.is_retryable(), "{what}: a refusal is not retryable: {e:?}");
            e
        }
    }
}

/// An intent is created authorise-only, with the reservation in its metadata; the same key and
/// request return the same intent; a new attempt (a new key) makes a new one; the same key for
/// another amount is `IdempotencyMismatch`.
pub async fn gateway_create_intent_is_idempotent_on_its_key(h: Harness) {
    let g = h.gateway();
    let r = ReservationId::new();
    let first = g.create_intent(&request(r, 1, 600)).await.unwrap();
    assert!(!first.id.is_empty());
    assert_eq!(first.status, IntentStatus::RequiresPaymentMethod);
    assert_eq!(first.amount, Money::new(600, Currency::EUR));
    assert_eq!(first.reservation, Some(r));
    let again = g.create_intent(&request(r, 1, 600)).await.unwrap();
    assert_eq!(again.id, first.id, "the same key returns the same intent");
    assert_eq!(g.retrieve(&first.id).await.unwrap().id, first.id);
    let second = g.create_intent(&request(r, 2, 600)).await.unwrap();
    assert_ne!(second.id, first.id, "a new attempt is a new intent");
    match g.create_intent(&request(r, 1, 700)).await {
        Err(Error::IdempotencyMismatch { key }) => assert_eq!(key, format!("parq:{r}:intent:1")),
        other => panic!("expected IdempotencyMismatch, got {other:?}"),
    }
    assert_eq!(h.money(&first.id).await, (0, 0), "creating moves no money");
}

/// Paying authorises only; capturing moves the money, once, however often it is asked for,
/// under its key or another.
pub async fn gateway_payment_authorises_and_capture_moves_money_once(h: Harness) {
    let g = h.gateway();
    let intent = g.create_intent(&request(ReservationId::new(), 1, 800)).await.unwrap();
    h.pay(&intent).await;
    assert_eq!(g.retrieve(&intent.id).await.unwrap().status, IntentStatus::RequiresCapture);
    assert_eq!(h.money(&intent.id).await, (0, 0), "authorised, not captured");
    let done = g.capture(&intent.id, "parq:k:capture").await.unwrap();
    assert_eq!((done.id.as_str(), done.status), (intent.id.as_str(), IntentStatus::Succeeded));
    assert_eq!(h.money(&intent.id).await, (800, 0));
    assert_eq!(g.capture(&intent.id, "parq:k:capture").await.unwrap().status, IntentStatus::Succeeded);
    assert_eq!(g.capture(&intent.id, "parq:k:capture-2").await.unwrap().status, IntentStatus::Succeeded);
    assert_eq!(h.money(&intent.id).await, (800, 0), "captured once");
    assert_eq!(g.retrieve(&intent.id).await.unwrap().status, IntentStatus::Succeeded);
}

/// Cancelling voids an uncaptured intent (unpaid or authorised), idempotently; a voided intent
/// cannot be captured, and a captured one is refunded, not cancelled.
pub async fn gateway_cancel_voids_an_uncaptured_intent(h: Harness) {
    let g = h.gateway();
    let unpaid = g.create_intent(&request(ReservationId::new(), 1, 500)).await.unwrap();
    assert_eq!(g.cancel(&unpaid.id, "parq:u:cancel").await.unwrap().status, IntentStatus::Canceled);
    assert_eq!(g.cancel(&unpaid.id, "parq:u:cancel-2").await.unwrap().status, IntentStatus::Canceled);
    let authorised = g.create_intent(&request(ReservationId::new(), 1, 500)).await.unwrap();
    h.pay(&authorised).await;
    assert_eq!(g.cancel(&authorised.id, "parq:a:cancel").await.unwrap().status, IntentStatus::Canceled);
    assert_eq!(h.money(&authorised.id).await, (0, 0), "a void moves no money");
    refused(g.capture(&authorised.id, "parq:a:capture").await, "capturing a voided intent");
    assert_eq!(g.retrieve(&authorised.id).await.unwrap().status, IntentStatus::Canceled);
    let done = captured(&h, 500).await;
    refused(g.cancel(&done.id, "parq:c:cancel").await, "cancelling a captured intent");
    assert_eq!(g.retrieve(&done.id).await.unwrap().status, IntentStatus::Succeeded);
    assert_eq!(h.money(&done.id).await, (500, 0));
}

/// A refund returns captured money, once per key; refunds add up.
pub async fn gateway_refund_returns_captured_money_once(h: Harness) {
    let g = h.gateway();
    let done = captured(&h, 800).await;
    let eur = |m| Money::new(m, Currency::EUR);
    let first = g.refund(&done.id, of(&done), eur(100), "parq:r:refund-1").await.unwrap();
    assert_eq!(first.amount, eur(100));
    let again = g.refund(&done.id, of(&done), eur(100), "parq:r:refund-1").await.unwrap();
    assert_eq!(again.id, first.id, "the same key is the same refund");
    assert_eq!(h.money(&done.id).await, (800, 100), "refunded once");
    let second = g.refund(&done.id, of(&done), eur(300), "parq:r:refund-2").await.unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(h.money(&done.id).await, (800, 400), "refunds add up");
}

/// Only captured money is refunded: not an authorisation, not beyond the capture, not in
/// another currency, not a non-positive amount; a refused refund moves nothing.
pub async fn gateway_refund_only_what_was_captured(h: Harness) {
    let g = h.gateway();
    let eur = |m| Money::new(m, Currency::EUR);
    let authorised = g.create_intent(&request(ReservationId::new(), 1, 500)).await.unwrap();
    h.pay(&authorised).await;
    refused(
        g.refund(&authorised.id, of(&authorised), eur(100), "parq:x:refund").await,
        "refunding an authorisation",
    );
    assert_eq!(h.money(&authorised.id).await, (0, 0));
    let done = captured(&h, 500).await;
    refused(
        g.refund(&done.id, of(&done), eur(501), "parq:y:refund-more").await,
        "refunding more than captured",
    );
    let e = refused(
        g.refund(&done.id, of(&done), Money::new(100, Currency::USD), "parq:y:refund-usd").await,
        "usd",
    );
    assert!(matches!(e, Error::Invalid { field: "amount", .. }), "{e:?}");
    let e = refused(g.refund(&done.id, of(&done), eur(0), "parq:y:refund-zero").await, "nothing");
    assert!(matches!(e, Error::Invalid { field: "amount", .. }), "{e:?}");
    assert_eq!(h.money(&done.id).await, (500, 0), "refused refunds move nothing");
    g.refund(&done.id, of(&done), eur(500), "parq:y:refund-all").await.expect("all of it");
    if h.provider_limits_refund_totals() {
        refused(
            g.refund(&done.id, of(&done), eur(1), "parq:y:refund-more-2").await,
            "refunding past everything",
        );
    }
    assert_eq!(h.money(&done.id).await, (500, 500));
}

/// A refund reaches only the intent of the reservation it names: for another reservation's
/// intent it is refused (`Invalid`, field `reservation`) and moves nothing, even under a key
/// that refunded before; retried under its key, the right refund is made once.
pub async fn gateway_refund_reaches_only_its_reservations_intent(h: Harness) {
    let g = h.gateway();
    let eur = |m| Money::new(m, Currency::EUR);
    let mine = captured(&h, 700).await;
    let theirs = captured(&h, 900).await;
    assert_ne!(mine.id, theirs.id);
    assert_ne!(of(&mine), of(&theirs));
    let key = format!("parq:{}:refund:0:300", of(&theirs));
    let e = refused(g.refund(&mine.id, of(&theirs), eur(300), &key).await, "another reservation's refund");
    assert!(matches!(e, Error::Invalid { field: "reservation", .. }), "{e:?}");
    assert_eq!(h.money(&mine.id).await, (700, 0), "a refused refund moves nothing");
    let done = g.refund(&theirs.id, of(&theirs), eur(300), &key).await.expect("their own refund");
    assert_eq!(done.amount, eur(300));
    for _ in 0..3 {
        let again = g.refund(&theirs.id, of(&theirs), eur(300), &key).await.expect("a retried refund");
        assert_eq!(again.id, done.id, "a retry is the same refund");
    }
    refused(g.refund(&mine.id, of(&theirs), eur(300), &key).await, "the key of a refund, on another intent");
    assert_eq!(h.money(&theirs.id).await, (900, 300), "refunded once");
    assert_eq!(h.money(&mine.id).await, (700, 0), "the other payment is untouched");
    let ids: std::collections::HashSet<_> =
        [mine.id.as_str(), theirs.id.as_str(), done.id.as_str()].into_iter().collect();
    assert_eq!(ids.len(), 3);
}

/// An intent the provider does not know is `NotFound`, whatever is asked of it.
pub async fn gateway_unknown_intent_is_not_found(h: Harness) {
    let g = h.gateway();
    let id = "pi_unknown_to_the_provider";
    let nf = |e: Error, what: &str| assert!(matches!(e, Error::NotFound { .. }), "{what}: {e:?}");
    nf(g.retrieve(id).await.unwrap_err(), "retrieve");
    nf(g.capture(id, "parq:n:capture").await.unwrap_err(), "capture");
    nf(g.cancel(id, "parq:n:cancel").await.unwrap_err(), "cancel");
    let refund = g.refund(id, ReservationId::new(), Money::new(100, Currency::EUR), "parq:n:refund").await;
    nf(refund.unwrap_err(), "refund");
}

/// A genuine delivery within the tolerance (either way) is verified and parsed into the event
/// it describes, as often as it is delivered (the gateway does not deduplicate).
pub async fn gateway_webhook_verified_and_parsed(h: Harness) {
    let g = h.gateway();
    let r = ReservationId::new();
    let intent = g.create_intent(&request(r, 1, 800)).await.unwrap();
    h.pay(&intent).await;
    let at = Timestamp::now();
    let (body, sig) = h.authorised_delivery(&intent, "evt_conformance_1", at).await;
    let ev = g.parse_webhook(&body, &sig, at).unwrap();
    assert_eq!(ev.id, "evt_conformance_1");
    assert_eq!(ev.intent_id, intent.id);
    assert_eq!(ev.reservation, r);
    assert_eq!(ev.kind, PaymentEventKind::Authorized);
    assert_eq!(g.parse_webhook(&body, &sig, at).unwrap(), ev, "parsed again, the same event");
    for skew in [SignedDuration::from_mins(4), -SignedDuration::from_mins(4)] {
        assert_eq!(g.parse_webhook(&body, &sig, at + skew).unwrap(), ev, "within the tolerance ({skew})");
    }
}

/// Deliveries that cannot be trusted are refused as `Invalid` with field `signature`, and are
/// not ignorable: a changed body, a missing or another delivery's signature, a stale or
/// future timestamp.
pub async fn gateway_webhook_refused_when_not_genuine(h: Harness) {
    let g = h.gateway();
    let intent = g.create_intent(&request(ReservationId::new(), 1, 800)).await.unwrap();
    h.pay(&intent).await;
    let at = Timestamp::now();
    let (body, sig) = h.authorised_delivery(&intent, "evt_conformance_2", at).await;
    let (other_body, other_sig) = h.authorised_delivery(&intent, "evt_conformance_3", at).await;
    assert_ne!(other_body, body);
    let mut tampered = body.clone();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'1' { b'2' } else { b'1' };
    let hour = SignedDuration::from_hours(1);
    for (what, body, sig, now) in [
        ("a changed body", tampered, sig.clone(), at),
        ("no signature", body.clone(), String::new(), at),
        ("another delivery's signature", body.clone(), other_sig, at),
        ("stale", body.clone(), sig.clone(), at + hour),
        ("from the future", body.clone(), sig.clone(), at - hour),
    ] {
        match g.parse_webhook(&body, &sig, now) {
            Err(e @ Error::Invalid { field: "signature", .. }) => assert!(!is_ignorable(&e), "{what}"),
            other => panic!("{what}: expected an invalid signature, got {other:?}"),
        }
    }
    g.parse_webhook(&other_body, &h.authorised_delivery(&intent, "evt_conformance_3", at).await.1, at)
        .expect("the other delivery is genuine");
}

/// A genuine delivery of an event ParQ does not act on is refused as ignorable: the receiver
/// acknowledges it and does nothing.
pub async fn gateway_webhook_foreign_events_are_ignorable(h: Harness) {
    let g = h.gateway();
    let at = Timestamp::now();
    let (body, sig) = h.foreign_delivery("evt_conformance_foreign", at).await;
    match g.parse_webhook(&body, &sig, at) {
        Err(e) => assert!(is_ignorable(&e), "expected an ignorable error, got {e:?}"),
        Ok(ev) => panic!("a foreign event was parsed as {ev:?}"),
    }
    let mut tampered = body;
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'1' { b'2' } else { b'1' };
    match g.parse_webhook(&tampered, &sig, at) {
        Err(e @ Error::Invalid { field: "signature", .. }) => assert!(!is_ignorable(&e)),
        other => panic!("a changed foreign delivery must be refused, got {other:?}"),
    }
}
