//! Stripe webhooks: the `Stripe-Signature` scheme and the events ParQ acts on.
//!
//! A delivery is trusted when one of the header's `v1` signatures is the HMAC-SHA256, keyed
//! with the endpoint's signing secret, of `"{t}.{payload}"`, and `t` lies within
//! [`TOLERANCE_SECS`] of the caller's clock. Only then is the payload read, and only the few
//! fields ParQ needs, so an endpoint on another API version than this crate's still works.

use std::collections::HashMap;

use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use parq_core::{Currency, Error, Money, PaymentEvent, PaymentEventKind, ReservationId, Result};
use serde::Deserialize;
use sha2_digest11::Sha256;

/// How far a delivery's timestamp may be from the clock, either way (Stripe's default).
pub const TOLERANCE_SECS: i64 = 300;

/// The `field` of the [`Error::Invalid`] returned for a verified delivery that ParQ does not
/// act on: an event type it does not handle, or a payment it did not create. A webhook
/// endpoint answers these with a 2xx (Stripe would otherwise retry them for days) and ignores
/// them; [`is_ignorable`] tests for it. Both are the payment port's own
/// ([`parq_core::ports::payment`]), so every gateway marks such deliveries alike.
pub use parq_core::ports::payment::{IGNORED_EVENT, is_ignorable};

/// The event types ParQ acts on, and what each becomes.
pub const HANDLED_EVENTS: [&str; 5] = [
    "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "charge.refunded",
];

/// Checks the `Stripe-Signature` header value `header` of `payload` against `secret` and the
/// clock `now`.
///
/// # Errors
/// [`Error::Invalid`] with field `signature`: no timestamp, no `v1` signature, no matching
/// signature, or a timestamp outside the tolerance.
pub fn verify_signature(payload: &[u8], header: &str, secret: &[u8], now: Timestamp) -> Result<()> {
    let bad = |m: String| Error::invalid("signature", m);
    let mut t = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", v)) => {
                t = Some(v.parse::<i64>().map_err(|_| bad(format!("timestamp {v:?} is not a number")))?);
            }
            Some(("v1", v)) => candidates.push(v),
            // Other schemes (`v0` is Stripe's test-mode scheme) are not trusted.
            _ => {}
        }
    }
    let t = t.ok_or_else(|| bad("no timestamp (t=) in the Stripe-Signature header".into()))?;
    if candidates.is_empty() {
        return Err(bad("no v1 signature in the Stripe-Signature header".into()));
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .map_err(|_| bad("the webhook secret cannot key an HMAC".into()))?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    // `verify_slice` compares in constant time; any one valid signature is enough (Stripe
    // signs with every active secret while one is rolled). Stripe writes signatures in
    // lower-case hex (its libraries compare the text): another spelling of the same bytes is
    // an altered header, refused.
    let lower_hex = |c: &str| c.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let valid = candidates
        .iter()
        .any(|c| lower_hex(c) && hex::decode(c).is_ok_and(|sig| mac.clone().verify_slice(&sig).is_ok()));
    if !valid {
        return Err(bad("no v1 signature matches the payload and the webhook secret".into()));
    }
    // `t` is any signed number: its distance from the clock must not overflow.
    let age = i128::from(now.as_second()) - i128::from(t);
    if age.abs() > i128::from(TOLERANCE_SECS) {
        return Err(bad(format!(
            "timestamp {t} is {age} s from now, outside the {TOLERANCE_SECS} s tolerance (replayed or clock skew)"
        )));
    }
    Ok(())
}

/// Verifies a delivery and turns it into a core event.
///
/// # Errors
/// Field `signature` for an untrusted delivery, `payload` for a malformed one, and
/// [`IGNORED_EVENT`] for a verified event ParQ does not act on.
pub fn parse(payload: &[u8], header: &str, secret: &[u8], now: Timestamp) -> Result<PaymentEvent> {
    verify_signature(payload, header, secret, now)?;
    let event: WireEvent = serde_json::from_slice(payload)
        .map_err(|e| Error::invalid("payload", format!("not a Stripe event: {e}")))?;
    let object = event.data.object;
    let (intent_id, metadata, kind) = match event.kind.as_str() {
        "payment_intent.amount_capturable_updated"
        | "payment_intent.succeeded"
        | "payment_intent.payment_failed"
        | "payment_intent.canceled" => {
            let intent: WireIntent = serde_json::from_value(object)
                .map_err(|e| Error::invalid("payload", format!("{}: {e}", event.kind)))?;
            let kind = match event.kind.as_str() {
                "payment_intent.amount_capturable_updated" => PaymentEventKind::Authorized,
                "payment_intent.succeeded" => PaymentEventKind::Succeeded,
                "payment_intent.payment_failed" => PaymentEventKind::Failed {
                    reason: intent.last_payment_error.map_or_else(
                        || "the payment failed".to_owned(),
                        |e| e.decline_code.or(e.code).or(e.message).unwrap_or_else(|| "declined".into()),
                    ),
                },
                _ => PaymentEventKind::Canceled,
            };
            (intent.id, intent.metadata, kind)
        }
        "charge.refunded" => {
            let charge: WireCharge = serde_json::from_value(object)
                .map_err(|e| Error::invalid("payload", format!("charge.refunded: {e}")))?;
            let currency = Currency::new(&charge.currency).map_err(|_| {
                Error::invalid("payload", format!("charge.refunded: unknown currency {:?}", charge.currency))
            })?;
            let intent = charge.payment_intent.ok_or_else(|| {
                Error::invalid(
                    IGNORED_EVENT,
                    format!("charge {} was not made through a payment intent", charge.id),
                )
            })?;
            let kind = PaymentEventKind::Refunded { amount: Money::new(charge.amount_refunded, currency) };
            (intent, charge.metadata, kind)
        }
        other => {
            return Err(Error::invalid(
                IGNORED_EVENT,
                format!("event type {other} is not one ParQ acts on (acknowledge and ignore it)"),
            ));
        }
    };
    let reservation = metadata.get("reservation").ok_or_else(|| {
        Error::invalid(
            IGNORED_EVENT,
            format!("{} of {intent_id} has no reservation metadata: not a ParQ payment", event.id),
        )
    })?;
    let reservation: ReservationId = reservation.parse().map_err(|_| {
        Error::invalid("payload", format!("{}: reservation metadata {reservation:?} is not an id", event.id))
    })?;
    Ok(PaymentEvent { id: event.id, intent_id, reservation, kind })
}

#[derive(Deserialize)]
struct WireEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: WireEventData,
}

#[derive(Deserialize)]
struct WireEventData {
    object: serde_json::Value,
}

#[derive(Deserialize)]
struct WireIntent {
    id: String,
    #[serde(default)]
    metadata: HashMap<String, String>,
    #[serde(default)]
    last_payment_error: Option<WireLastError>,
}

#[derive(Deserialize)]
struct WireLastError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct WireCharge {
    id: String,
    #[serde(default)]
    payment_intent: Option<String>,
    amount_refunded: i64,
    currency: String,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_unit";

    fn sign(payload: &[u8], t: i64, secret: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(payload);
        hex::encode(mac.finalize().into_bytes())
    }

    fn event(kind: &str, object: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "id": "evt_1", "object": "event", "type": kind, "data": { "object": object }
        }))
        .unwrap()
    }

    #[test]
    fn header_forms() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let t = now.as_second();
        let body = b"{}";
        let good = sign(body, t, SECRET);
        let other = sign(body, t, b"whsec_other");
        for header in [
            format!("t={t},v1={good}"),
            format!("t={t}, v1={other}, v1={good}"),
            format!("v0=abc,t={t},v1=zz-not-hex,v1={good}"),
        ] {
            verify_signature(body, &header, SECRET, now).unwrap_or_else(|e| panic!("{header}: {e}"));
        }
        for header in [
            format!("v1={good}"),
            format!("t={t}"),
            format!("t={t},v0={good}"),
            format!("t={t},v1={other}"),
            format!("t=soon,v1={good}"),
            String::new(),
        ] {
            let err = verify_signature(body, &header, SECRET, now).unwrap_err();
            assert!(matches!(err, Error::Invalid { field: "signature", .. }), "{header}: {err}");
        }
        // The tolerance is inclusive and symmetric.
        for (offset, ok) in [(-301, false), (-300, true), (0, true), (300, true), (301, false)] {
            let ts = t + offset;
            let header = format!("t={ts},v1={}", sign(body, ts, SECRET));
            assert_eq!(verify_signature(body, &header, SECRET, now).is_ok(), ok, "offset {offset}");
        }
    }

    #[test]
    fn one_spelling_and_any_timestamp() {
        // Found by fuzzing: the same signature in upper-case hex was accepted, so a delivery
        // altered in its header still verified. Stripe signs in lower-case hex and its
        // libraries compare the text.
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let t = now.as_second();
        let body = b"{}";
        let good = sign(body, t, SECRET);
        assert!(good.bytes().any(|b| b.is_ascii_lowercase()), "the test needs a letter in the signature");
        let header = format!("t={t},v1={}", good.to_uppercase());
        let err = verify_signature(body, &header, SECRET, now).unwrap_err();
        assert!(matches!(err, Error::Invalid { field: "signature", .. }), "{header}: {err}");
        // A correctly signed timestamp far from the clock is refused, not an overflow.
        for ts in [i64::MIN, i64::MIN + 1, -1, i64::MAX] {
            let header = format!("t={ts},v1={}", sign(body, ts, SECRET));
            let err = verify_signature(body, &header, SECRET, now).unwrap_err();
            assert!(matches!(err, Error::Invalid { field: "signature", .. }), "{header}: {err}");
        }
    }

    #[test]
    fn maps_event_types() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let r = ReservationId::new();
        let pi = serde_json::json!({
            "id": "pi_1", "object": "payment_intent", "metadata": { "reservation": r.to_string() },
            "last_payment_error": { "code": "card_declined", "decline_code": "insufficient_funds" }
        });
        let cases = [
            ("payment_intent.amount_capturable_updated", PaymentEventKind::Authorized),
            ("payment_intent.succeeded", PaymentEventKind::Succeeded),
            (
                "payment_intent.payment_failed",
                PaymentEventKind::Failed { reason: "insufficient_funds".into() },
            ),
            ("payment_intent.canceled", PaymentEventKind::Canceled),
        ];
        for (kind, expected) in cases {
            let body = event(kind, pi.clone());
            let header = format!("t={},v1={}", now.as_second(), sign(&body, now.as_second(), SECRET));
            let ev = parse(&body, &header, SECRET, now).unwrap();
            assert_eq!((ev.id.as_str(), ev.intent_id.as_str(), ev.reservation), ("evt_1", "pi_1", r));
            assert_eq!(ev.kind, expected, "{kind}");
        }
        let charge = serde_json::json!({
            "id": "ch_1", "object": "charge", "payment_intent": "pi_1", "amount": 800,
            "amount_refunded": 300, "currency": "eur", "metadata": { "reservation": r.to_string() }
        });
        let body = event("charge.refunded", charge);
        let header = format!("t={},v1={}", now.as_second(), sign(&body, now.as_second(), SECRET));
        let ev = parse(&body, &header, SECRET, now).unwrap();
        assert_eq!(ev.kind, PaymentEventKind::Refunded { amount: Money::new(300, Currency::EUR) });

        // Verified but not ParQ's business: ignorable, not an attack.
        for body in [
            event("customer.created", serde_json::json!({ "id": "cus_1" })),
            event("payment_intent.succeeded", serde_json::json!({ "id": "pi_2", "metadata": {} })),
        ] {
            let header = format!("t={},v1={}", now.as_second(), sign(&body, now.as_second(), SECRET));
            let err = parse(&body, &header, SECRET, now).unwrap_err();
            assert!(is_ignorable(&err), "{err}");
        }
        // Signed garbage is a bad payload, not ignorable.
        let body = b"not json".to_vec();
        let header = format!("t={},v1={}", now.as_second(), sign(&body, now.as_second(), SECRET));
        let err = parse(&body, &header, SECRET, now).unwrap_err();
        assert!(matches!(err, Error::Invalid { field: "payload", .. }) && !is_ignorable(&err), "{err}");
    }
}
