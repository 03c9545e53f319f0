//! `TestGateway`: simulated payments that tests and the demo can script.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ids::ReservationId;
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

/// One simulated intent and its books: the state machine that every variant of the simulated
/// gateway shares (this in-memory one, and those that keep their books in a database), so they
/// cannot drift apart. Each transition changes the record only when it succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimIntent {
    /// The intent as the provider shows it.
    pub intent: PaymentIntent,
    /// Minor units captured.
    pub captured: i64,
    /// Minor units refunded in all.
    pub refunded: i64,
}

impl SimIntent {
    /// A new intent for `req`, waiting for the driver to pay, under a fresh random id
    /// (`pi_test_<32 hex digits>`): ids never repeat, whichever process makes them.
    pub fn create(req: &IntentRequest) -> Self {
        let id = random_id("pi_test");
        let intent = PaymentIntent {
            id: id.clone(),
            status: IntentStatus::RequiresPaymentMethod,
            amount: req.amount,
            client_secret: Some(format!("{id}_secret")),
            reservation: Some(req.reservation),
        };
        Self { intent, captured: 0, refunded: 0 }
    }

    /// The fingerprint of a creation request: the same key for another request is refused.
    pub fn create_fingerprint(req: &IntentRequest) -> String {
        format!("{}:{}:{}", req.reservation, req.amount.minor, req.amount.currency)
    }

    /// The driver pays: authorised, or with `capture` captured at once; `decline` (a reason)
    /// fails the attempt and leaves the intent payable. Returns what the webhook will say.
    pub fn pay(&mut self, capture: bool, decline: Option<String>) -> Result<PaymentEventKind> {
        if let Some(reason) = decline {
            return Ok(PaymentEventKind::Failed { reason });
        }
        if self.intent.status != IntentStatus::RequiresPaymentMethod {
            return Err(Error::invalid("intent", "already paid or cancelled"));
        }
        if capture {
            self.intent.status = IntentStatus::Succeeded;
            self.captured = self.intent.amount.minor;
            Ok(PaymentEventKind::Succeeded)
        } else {
            self.intent.status = IntentStatus::RequiresCapture;
            Ok(PaymentEventKind::Authorized)
        }
    }

    /// Captures an authorised intent; a captured one stays as it is.
    pub fn capture(&mut self) -> Result<()> {
        match self.intent.status {
            IntentStatus::RequiresCapture => {
                self.intent.status = IntentStatus::Succeeded;
                self.captured = self.intent.amount.minor;
                Ok(())
            }
            IntentStatus::Succeeded => Ok(()),
            s => Err(Error::invalid("intent", format!("cannot capture an intent in status {s:?}"))),
        }
    }

    /// Voids an uncaptured intent.
    pub fn cancel(&mut self) -> Result<()> {
        match self.intent.status {
            IntentStatus::Succeeded => {
                Err(Error::invalid("intent", "a captured intent is refunded, not cancelled"))
            }
            _ => {
                self.intent.status = IntentStatus::Canceled;
                Ok(())
            }
        }
    }

    /// Refunds `amount` of the capture, for `reservation`, which must be the one the intent
    /// was made for.
    pub fn refund(&mut self, reservation: ReservationId, amount: Money) -> Result<()> {
        if self.intent.reservation != Some(reservation) {
            return Err(Error::invalid(
                "reservation",
                format!("intent {} does not pay for reservation {reservation}", self.intent.id),
            ));
        }
        if amount.currency != self.intent.amount.currency || amount.minor <= 0 {
            return Err(Error::invalid("amount", "must be positive, in the intent's currency"));
        }
        if self.refunded + amount.minor > self.captured {
            return Err(Error::invalid("amount", "more than was captured"));
        }
        self.refunded += amount.minor;
        Ok(())
    }

    /// The webhook event saying `kind` happened to this intent, under a fresh random id.
    pub fn event(&self, kind: PaymentEventKind) -> Result<PaymentEvent> {
        Ok(PaymentEvent {
            id: random_id("evt_test"),
            intent_id: self.intent.id.clone(),
            reservation: self.intent.reservation.ok_or_else(|| Error::invalid("intent", "no reservation"))?,
            kind,
        })
    }
}

/// The fingerprint of a capture under an idempotency key.
pub fn capture_fingerprint(intent_id: &str) -> String {
    format!("capture:{intent_id}")
}

/// The fingerprint of a cancellation under an idempotency key.
pub fn cancel_fingerprint(intent_id: &str) -> String {
    format!("cancel:{intent_id}")
}

/// The fingerprint of a refund under an idempotency key.
pub fn refund_fingerprint(intent_id: &str, reservation: ReservationId, amount: Money) -> String {
    format!("refund:{intent_id}:{reservation}:{}:{}", amount.minor, amount.currency)
}

/// `<prefix>_<32 random hex digits>`: unique across processes and restarts, unlike a counter.
pub fn random_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

#[derive(Debug, Default)]
struct State {
    intents: HashMap<String, SimIntent>,
    keys: HashMap<String, (String, String)>,
    script: HashMap<GatewayOp, VecDeque<Failure>>,
    calls: HashMap<GatewayOp, u64>,
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

    /// The driver pays the intent: it becomes authorised (or, with `capture`, captured at once,
    /// like a provider without manual capture). Returns the webhook event the provider would
    /// send; a scripted decline returns a `failed` event instead and leaves the intent payable.
    pub fn pay(&self, intent_id: &str, capture: bool) -> Result<PaymentEvent> {
        self.pay_or_decline(intent_id, capture, None)
    }

    /// [`pay`](Self::pay), declined with `decline` (a reason) when it is given: the decline
    /// belongs to this call, not to whichever payment comes next as with
    /// [`fail_next`](Self::fail_next).
    pub fn pay_or_decline(
        &self,
        intent_id: &str,
        capture: bool,
        decline: Option<String>,
    ) -> Result<PaymentEvent> {
        let mut st = self.state();
        let decline = match Self::begin(&mut st, GatewayOp::Pay) {
            Ok(()) => decline,
            Err(Error::PaymentDeclined { reason }) => Some(reason),
            Err(e) => return Err(e),
        };
        let rec =
            st.intents.get_mut(intent_id).ok_or_else(|| Error::not_found(format!("intent {intent_id}")))?;
        let kind = rec.pay(capture, decline)?;
        rec.event(kind)
    }

    /// A webhook delivery of `event` as the provider would send it at `at`: the body and the
    /// signature header value.
    pub fn sign(&self, event: &PaymentEvent, at: Timestamp) -> (Vec<u8>, String) {
        sign_delivery(&self.secret, event, at)
    }

    /// A delivery of an event that the provider sends but ParQ does not act on (here, a
    /// `customer_created` event), signed at `at`: [`parse_webhook`](PaymentGateway::parse_webhook)
    /// answers it with an [ignorable](crate::ports::payment::is_ignorable) error.
    pub fn sign_foreign(&self, id: &str, at: Timestamp) -> (Vec<u8>, String) {
        sign_foreign_delivery(&self.secret, id, at)
    }

    /// The signature header value for `payload` sent at `at`.
    pub fn signature(&self, payload: &[u8], at: Timestamp) -> String {
        delivery_signature(&self.secret, payload, at)
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

    fn found<'a>(st: &'a mut State, intent_id: &str) -> Result<&'a mut SimIntent> {
        st.intents.get_mut(intent_id).ok_or_else(|| Error::not_found(format!("intent {intent_id}")))
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
        let id =
            self.keyed(&req.idempotency_key, SimIntent::create_fingerprint(req), GatewayOp::Create, |st| {
                let rec = SimIntent::create(req);
                let id = rec.intent.id.clone();
                st.intents.insert(id.clone(), rec);
                Ok(id)
            })?;
        self.intent(&id)
    }

    async fn capture(&self, intent_id: &str, key: &str) -> Result<PaymentIntent> {
        self.keyed(key, capture_fingerprint(intent_id), GatewayOp::Capture, |st| {
            Self::found(st, intent_id)?.capture().map(|()| intent_id.to_owned())
        })?;
        self.intent(intent_id)
    }

    async fn cancel(&self, intent_id: &str, key: &str) -> Result<PaymentIntent> {
        self.keyed(key, cancel_fingerprint(intent_id), GatewayOp::Cancel, |st| {
            Self::found(st, intent_id)?.cancel().map(|()| intent_id.to_owned())
        })?;
        self.intent(intent_id)
    }

    async fn refund(
        &self,
        intent_id: &str,
        reservation: ReservationId,
        amount: Money,
        key: &str,
    ) -> Result<Refund> {
        let fingerprint = refund_fingerprint(intent_id, reservation, amount);
        let id = self.keyed(key, fingerprint, GatewayOp::Refund, |st| {
            Self::found(st, intent_id)?.refund(reservation, amount)?;
            Ok(random_id("re_test"))
        })?;
        Ok(Refund { id, amount })
    }

    async fn retrieve(&self, intent_id: &str) -> Result<PaymentIntent> {
        Self::begin(&mut self.state(), GatewayOp::Retrieve)?;
        self.intent(intent_id)
    }

    fn parse_webhook(&self, payload: &[u8], signature: &str, now: Timestamp) -> Result<PaymentEvent> {
        parse_delivery(&self.secret, self.tolerance, payload, signature, now)
    }
}

/// A webhook delivery of `event` signed with `secret` at `at`, as every simulated gateway
/// sends it: the body and the signature header value.
pub fn sign_delivery(secret: &[u8], event: &PaymentEvent, at: Timestamp) -> (Vec<u8>, String) {
    let event = serde_json::to_value(event).expect("events serialise");
    let body = serde_json::to_vec(&Envelope { created: at.as_second(), event }).expect("events serialise");
    let sig = delivery_signature(secret, &body, at);
    (body, sig)
}

/// A delivery, signed with `secret` at `at`, of an event ParQ does not act on.
pub fn sign_foreign_delivery(secret: &[u8], id: &str, at: Timestamp) -> (Vec<u8>, String) {
    let event = serde_json::json!({ "id": id, "type": "customer_created" });
    let body = serde_json::to_vec(&Envelope { created: at.as_second(), event }).expect("events serialise");
    let sig = delivery_signature(secret, &body, at);
    (body, sig)
}

/// The signature header value (`t=<unix>,v1=<hmac-sha256>`) of `payload` sent at `at`.
pub fn delivery_signature(secret: &[u8], payload: &[u8], at: Timestamp) -> String {
    format!("t={},v1={}", at.as_second(), hmac_hex(secret, at.as_second(), payload))
}

/// Verifies a simulated gateway's delivery signed with `secret` (within `tolerance` of `now`)
/// and parses it, with the errors [`PaymentGateway::parse_webhook`] promises.
pub fn parse_delivery(
    secret: &[u8],
    tolerance: SignedDuration,
    payload: &[u8],
    signature: &str,
    now: Timestamp,
) -> Result<PaymentEvent> {
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
    let expected = hmac_hex(secret, t, payload);
    // Compare without early exit.
    if !v1.iter().any(|s| {
        s.len() == expected.len() && s.bytes().zip(expected.bytes()).fold(0, |a, (x, y)| a | (x ^ y)) == 0
    }) {
        return Err(bad("no valid signature"));
    }
    let age = now.as_second().saturating_sub(t).abs();
    if age > tolerance.as_secs() {
        return Err(bad("timestamp outside the tolerance"));
    }
    let env: Envelope =
        serde_json::from_slice(payload).map_err(|e| Error::invalid("payload", e.to_string()))?;
    match env.event.get("type").and_then(serde_json::Value::as_str) {
        Some(kind) if !EVENT_TYPES.contains(&kind) => {
            return Err(Error::invalid(IGNORED_EVENT, format!("event type {kind} is not one ParQ acts on")));
        }
        _ => {}
    }
    serde_json::from_value(env.event).map_err(|e| Error::invalid("payload", e.to_string()))
}
