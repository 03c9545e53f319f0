//! `TestGateway`: simulated payments that tests and the demo can script.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::money::Money;
use crate::ports::payment::{
    IGNORED_EVENT, IntentRequest, IntentStatus, PaymentEvent, PaymentEventKind, PaymentGateway,
    PaymentIntent, Refund,
};

/// A gateway operation that a script can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GatewayOp {
    /// [`PaymentGateway::create_intent`].
    Create,
    /// [`TestGateway::pay`]: the driver's payment.
    Pay,
    /// [`PaymentGateway::capture`].
    Capture,
    /// [`PaymentGateway::cancel`].
    Cancel,
    /// [`PaymentGateway::refund`].
    Refund,
    /// [`PaymentGateway::retrieve`].
    Retrieve,
}

/// How a scripted operation fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The card is declined.
    Decline(String),
    /// No answer in time (retryable; for mutating calls the provider did nothing).
    Timeout,
}

#[derive(Debug)]
struct IntentRec {
    intent: PaymentIntent,
    captured: i64,
    refunded: i64,
}

#[derive(Debug, Default)]
struct State {
    intents: HashMap<String, IntentRec>,
    keys: HashMap<String, (String, String)>,
    script: HashMap<GatewayOp, VecDeque<Failure>>,
    calls: HashMap<GatewayOp, u64>,
    next: u64,
}

/// A simulated [`PaymentGateway`] with the semantics of a real one: idempotency keys, manual
/// capture, voids, partial refunds, signed webhooks with a timestamp tolerance. Tests script it
/// ([`fail_next`](Self::fail_next)) and act as the driver ([`pay`](Self::pay)); the events it
/// returns can be delivered late, twice, or not at all.
#[derive(Debug)]
pub struct TestGateway {
    secret: Vec<u8>,
    tolerance: SignedDuration,
    state: Mutex<State>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    created: i64,
    event: serde_json::Value,
}

/// The event types of [`PaymentEventKind`], as they are tagged in a delivery.
const EVENT_TYPES: [&str; 5] = ["authorized", "succeeded", "failed", "canceled", "refunded"];

impl TestGateway {
    /// A gateway whose webhooks are signed with `secret`, with a 5-minute tolerance.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self { secret: secret.into(), tolerance: SignedDuration::from_mins(5), state: Mutex::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the next call of `op` fail with `failure` (calls queue up in order).
    pub fn fail_next(&self, op: GatewayOp, failure: Failure) {
        self.state().script.entry(op).or_default().push_back(failure);
    }

    /// How many times `op` was called (including failed calls).
    pub fn calls(&self, op: GatewayOp) -> u64 {
        self.state().calls.get(&op).copied().unwrap_or(0)
    }

    /// Forgets every idempotency key, as a provider does after its retention period (Stripe:
    /// 24 hours), so tests can show that ParQ itself never repeats a money movement.
    pub fn forget_idempotency_keys(&self) {
        self.state().keys.clear();
    }

    /// How many intents exist.
    pub fn intent_count(&self) -> usize {
        self.state().intents.len()
    }

    /// Captured and refunded minor units of an intent.
    pub fn money(&self, intent_id: &str) -> Option<(i64, i64)> {
        self.state().intents.get(intent_id).map(|r| (r.captured, r.refunded))
    }

    fn begin(st: &mut State, op: GatewayOp) -> Result<()> {
        *st.calls.entry(op).or_default() += 1;
        match st.script.get_mut(&op).and_then(VecDeque::pop_front) {
            None => Ok(()),
            Some(Failure::Decline(reason)) => Err(Error::PaymentDeclined { reason }),
            Some(Failure::Timeout) => Err(Error::unavailable("payment provider timed out", None)),
        }
    }

    fn event(st: &mut State, rec: &IntentRec, kind: PaymentEventKind) -> Result<PaymentEvent> {
        st.next += 1;
        Ok(PaymentEvent {
            id: format!("evt_test_{}", st.next),
            intent_id: rec.intent.id.clone(),
            reservation: rec.intent.reservation.ok_or_else(|| Error::invalid("intent", "no reservation"))?,
            kind,
        })
    }

    /// The driver pays the intent: it becomes authorised (or, with `capture`, captured at once,
    /// like a provider without manual capture). Returns the webhook event the provider would
    /// send; a scripted decline returns a `failed` event instead and leaves the intent payable.
    pub fn pay(&self, intent_id: &str, capture: bool) -> Result<PaymentEvent> {
        let mut st = self.state();
        let outcome = Self::begin(&mut st, GatewayOp::Pay);
        let rec =
            st.intents.remove(intent_id).ok_or_else(|| Error::not_found(format!("intent {intent_id}")))?;
        let mut rec = rec;
        let kind = match outcome {
            Err(Error::PaymentDeclined { reason }) => PaymentEventKind::Failed { reason },
            Err(e) => {
                st.intents.insert(intent_id.to_owned(), rec);
                return Err(e);
            }
            Ok(()) if rec.intent.status != IntentStatus::RequiresPaymentMethod => {
                st.intents.insert(intent_id.to_owned(), rec);
                return Err(Error::invalid("intent", "already paid or cancelled"));
            }
            Ok(()) if capture => {
                rec.intent.status = IntentStatus::Succeeded;
                rec.captured = rec.intent.amount.minor;
                PaymentEventKind::Succeeded
            }
            Ok(()) => {
                rec.intent.status = IntentStatus::RequiresCapture;
                PaymentEventKind::Authorized
            }
        };
        let ev = Self::event(&mut st, &rec, kind);
        st.intents.insert(intent_id.to_owned(), rec);
        ev
    }

    /// A webhook delivery of `event` as the provider would send it at `at`: the body and the
    /// signature header value.
    pub fn sign(&self, event: &PaymentEvent, at: Timestamp) -> (Vec<u8>, String) {
        let event = serde_json::to_value(event).expect("events serialise");
        let body =
            serde_json::to_vec(&Envelope { created: at.as_second(), event }).expect("events serialise");
        let sig = self.signature(&body, at);
        (body, sig)
    }

    /// A delivery of an event that the provider sends but ParQ does not act on (here, a
    /// `customer_created` event), signed at `at`: [`parse_webhook`](PaymentGateway::parse_webhook)
    /// answers it with an [ignorable](crate::ports::payment::is_ignorable) error.
    pub fn sign_foreign(&self, id: &str, at: Timestamp) -> (Vec<u8>, String) {
        let event = serde_json::json!({ "id": id, "type": "customer_created" });
        let body =
            serde_json::to_vec(&Envelope { created: at.as_second(), event }).expect("events serialise");
        let sig = self.signature(&body, at);
        (body, sig)
    }

    /// The signature header value for `payload` sent at `at`.
    pub fn signature(&self, payload: &[u8], at: Timestamp) -> String {
        format!("t={},v1={}", at.as_second(), hmac_hex(&self.secret, at.as_second(), payload))
    }

    fn keyed<F>(&self, key: &str, fingerprint: String, op: GatewayOp, f: F) -> Result<String>
    where
        F: FnOnce(&mut State) -> Result<String>,
    {
        let mut st = self.state();
        if let Some((fp, response)) = st.keys.get(key).cloned() {
            if fp != fingerprint {
                return Err(Error::IdempotencyMismatch { key: key.to_owned() });
            }
            *st.calls.entry(op).or_default() += 1;
            return Ok(response);
        }
        Self::begin(&mut st, op)?;
        let response = f(&mut st)?;
        st.keys.insert(key.to_owned(), (fingerprint, response.clone()));
        Ok(response)
    }

    fn intent(&self, id: &str) -> Result<PaymentIntent> {
        self.state()
            .intents
            .get(id)
            .map(|r| r.intent.clone())
            .ok_or_else(|| Error::not_found(format!("intent {id}")))
    }
}

fn hmac_hex(secret: &[u8], t: i64, body: &[u8]) -> String {
    // HMAC-SHA256 over "t.body".
    let mut key = [0u8; 64];
    if secret.len() > 64 {
        key[..32].copy_from_slice(&Sha256::digest(secret));
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    let pad = |b: u8| key.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    let inner =
        Sha256::new().chain_update(pad(0x36)).chain_update(format!("{t}.")).chain_update(body).finalize();
    let outer = Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl PaymentGateway for TestGateway {
    fn provider(&self) -> &'static str {
        "test"
    }

    async fn create_intent(&self, req: &IntentRequest) -> Result<PaymentIntent> {
        let fp = format!("{}:{}:{}", req.reservation, req.amount.minor, req.amount.currency);
        let id = self.keyed(&req.idempotency_key, fp, GatewayOp::Create, |st| {
            st.next += 1;
            let id = format!("pi_test_{}", st.next);
            let intent = PaymentIntent {
                id: id.clone(),
                status: IntentStatus::RequiresPaymentMethod,
                amount: req.amount,
                client_secret: Some(format!("{id}_secret")),
                reservation: Some(req.reservation),
            };
            st.intents.insert(id.clone(), IntentRec { intent, captured: 0, refunded: 0 });
            Ok(id)
        })?;
        self.intent(&id)
    }

    async fn capture(&self, intent_id: &str, key: &str) -> Result<PaymentIntent> {
        self.keyed(key, format!("capture:{intent_id}"), GatewayOp::Capture, |st| {
            let rec = st
                .intents
                .get_mut(intent_id)
                .ok_or_else(|| Error::not_found(format!("intent {intent_id}")))?;
            match rec.intent.status {
                IntentStatus::RequiresCapture => {
                    rec.intent.status = IntentStatus::Succeeded;
                    rec.captured = rec.intent.amount.minor;
                    Ok(intent_id.to_owned())
                }
                IntentStatus::Succeeded => Ok(intent_id.to_owned()),
                s => Err(Error::invalid("intent", format!("cannot capture an intent in status {s:?}"))),
            }
        })?;
        self.intent(intent_id)
    }

    async fn cancel(&self, intent_id: &str, key: &str) -> Result<PaymentIntent> {
        self.keyed(key, format!("cancel:{intent_id}"), GatewayOp::Cancel, |st| {
            let rec = st
                .intents
                .get_mut(intent_id)
                .ok_or_else(|| Error::not_found(format!("intent {intent_id}")))?;
            match rec.intent.status {
                IntentStatus::Succeeded => {
                    Err(Error::invalid("intent", "a captured intent is refunded, not cancelled"))
                }
                _ => {
                    rec.intent.status = IntentStatus::Canceled;
                    Ok(intent_id.to_owned())
                }
            }
        })?;
        self.intent(intent_id)
    }

    async fn refund(&self, intent_id: &str, amount: Money, key: &str) -> Result<Refund> {
        let id =
            self.keyed(key, format!("refund:{intent_id}:{}", amount.minor), GatewayOp::Refund, |st| {
                let rec = st
                    .intents
                    .get_mut(intent_id)
                    .ok_or_else(|| Error::not_found(format!("intent {intent_id}")))?;
                if amount.currency != rec.intent.amount.currency || amount.minor <= 0 {
                    return Err(Error::invalid("amount", "must be positive, in the intent's currency"));
                }
                if rec.refunded + amount.minor > rec.captured {
                    return Err(Error::invalid("amount", "more than was captured"));
                }
                rec.refunded += amount.minor;
                st.next += 1;
                Ok(format!("re_test_{}", st.next))
            })?;
        Ok(Refund { id, amount })
    }

    async fn retrieve(&self, intent_id: &str) -> Result<PaymentIntent> {
        Self::begin(&mut self.state(), GatewayOp::Retrieve)?;
        self.intent(intent_id)
    }

    fn parse_webhook(&self, payload: &[u8], signature: &str, now: Timestamp) -> Result<PaymentEvent> {
        let bad = |m: &str| Error::invalid("signature", m.to_owned());
        let mut t = None;
        let mut v1 = Vec::new();
        for part in signature.split(',') {
            match part.trim().split_once('=') {
                Some(("t", v)) => t = v.parse::<i64>().ok(),
                Some(("v1", v)) => v1.push(v),
                _ => {}
            }
        }
        let t = t.ok_or_else(|| bad("missing timestamp"))?;
        let expected = hmac_hex(&self.secret, t, payload);
        // Compare without early exit.
        if !v1.iter().any(|s| {
            s.len() == expected.len() && s.bytes().zip(expected.bytes()).fold(0, |a, (x, y)| a | (x ^ y)) == 0
        }) {
            return Err(bad("no valid signature"));
        }
        let age = now.as_second().saturating_sub(t).abs();
        if age > self.tolerance.as_secs() {
            return Err(bad("timestamp outside the tolerance"));
        }
        let env: Envelope =
            serde_json::from_slice(payload).map_err(|e| Error::invalid("payload", e.to_string()))?;
        match env.event.get("type").and_then(serde_json::Value::as_str) {
            Some(kind) if !EVENT_TYPES.contains(&kind) => {
                return Err(Error::invalid(
                    IGNORED_EVENT,
                    format!("event type {kind} is not one ParQ acts on"),
                ));
            }
            _ => {}
        }
        serde_json::from_value(env.event).map_err(|e| Error::invalid("payload", e.to_string()))
    }
}
