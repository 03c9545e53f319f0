//! The simulated payment gateway with its books where the replicas share them.
//!
//! `parq_core::memory::TestGateway` keeps its intents, refunds and idempotency keys in one
//! process's memory: right for `--memory` and for tests, wrong as soon as two replicas (or one
//! replica and its restart) serve the same reservations. [`SharedTestGateway`] is the same
//! simulated provider with its books in the store's database: PostgreSQL tables in the store's
//! schema ([`PgBook`], server migration 0003) or tables in the SQLite file ([`SqliteBook`],
//! server SQLite migration 0004).
//!
//! Both variants share parq-core's state machine ([`SimIntent`]): how an intent is paid,
//! captured, voided and refunded is written once, so they cannot drift apart, and both run the
//! gateway conformance suite. What a book adds is atomicity across processes: each call is one
//! transaction that takes the idempotency key (an advisory lock on PostgreSQL, the write lock
//! on SQLite), replays it when it was used, and otherwise locks the intent, applies the
//! transition, and writes the intent, the refund or event it made and the key together. Ids are
//! random (`pi_test_<hex>`, `evt_test_<hex>`, `re_test_<hex>`), never per-process counters.
//!
//! The webhook signing secret is shared too: `webhook_secret` when it is configured, otherwise
//! one made by the first replica and kept in the book, so a delivery signed by one replica
//! verifies on every other.

use std::fmt::Debug;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use parq_core::memory::{
    SimIntent, cancel_fingerprint, capture_fingerprint, parse_delivery, random_id, refund_fingerprint,
    sign_delivery, sign_foreign_delivery,
};
use parq_core::{
    Error, IntentRequest, IntentStatus, Money, PaymentEvent, PaymentEventKind, PaymentGateway, PaymentIntent,
    Refund, ReservationId, Result,
};
use parq_postgres::deadpool_postgres::Pool;
use parq_postgres::{db_error, ident};
use parq_sqlite::rusqlite::{self, OptionalExtension, TransactionBehavior};

use crate::sqlite::SqliteDb;

/// What a transition wrote besides the intent.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    /// A refund: its id and amount.
    pub refund: Option<(String, Money)>,
    /// A webhook event the provider sends.
    pub event: Option<PaymentEvent>,
}

/// A change to one intent, as a transition of [`SimIntent`] makes it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The intent after the call.
    pub intent: SimIntent,
    /// Whether it is new.
    pub created: bool,
    /// The call's response, replayed for a repeated key.
    pub response: String,
    /// What else it wrote.
    pub effects: Effects,
}

/// A transition: given the intent (`None` when it does not exist), the change to write, or
/// the refusal (then nothing is written).
pub type Transition = Box<dyn FnOnce(Option<SimIntent>) -> Result<Change> + Send>;

/// The outcome of a keyed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyed {
    /// The key was used before: its fingerprint and response; nothing ran.
    Replayed {
        /// The fingerprint the key was first used with.
        fingerprint: String,
        /// What it answered.
        response: String,
    },
    /// The transition ran and its change was written: the response.
    Done(String),
}

/// Where a [`SharedTestGateway`] keeps its books.
///
/// # Contract
/// [`call`](Self::call) is atomic across processes: for one key, exactly one call runs its
/// transition and every other replays it; calls on one intent run one after another.
#[async_trait]
pub trait GatewayBook: Send + Sync + Debug + 'static {
    /// Under `key` (when given): replays it when it was recorded, otherwise runs `transition`
    /// on intent `intent_id` (`None`: a new one) and writes its change and the key together.
    async fn call(
        &self,
        key: Option<&str>,
        fingerprint: &str,
        intent_id: Option<&str>,
        transition: Transition,
    ) -> Result<Keyed>;
    /// The intent, when it exists.
    async fn intent(&self, id: &str) -> Result<Option<SimIntent>>;
    /// The webhook secret kept in the book; `proposed` becomes it when there is none yet.
    async fn secret(&self, proposed: &str) -> Result<String>;
    /// The book's name in `/readyz` (`test-postgres`, `test-sqlite`).
    fn name(&self) -> &'static str;
}

/// The simulated gateway over a shared [`GatewayBook`].
#[derive(Debug)]
pub struct SharedTestGateway {
    book: Arc<dyn GatewayBook>,
    configured: Option<Vec<u8>>,
    secret: OnceLock<Vec<u8>>,
    tolerance: SignedDuration,
}

impl SharedTestGateway {
    /// A gateway over `book`, signing webhooks with `secret` when given, otherwise with the one
    /// kept in the book (loaded by [`prepare`](Self::prepare)).
    pub fn new(book: Arc<dyn GatewayBook>, secret: Option<Vec<u8>>) -> Self {
        let cell = OnceLock::new();
        if let Some(s) = &secret {
            let _ = cell.set(s.clone());
        }
        Self { book, configured: secret, secret: cell, tolerance: SignedDuration::from_mins(5) }
    }

    /// The book's name (`test-postgres`, `test-sqlite`).
    pub fn name(&self) -> &'static str {
        self.book.name()
    }

    /// Loads the shared webhook secret (making it when this is the first replica). Idempotent.
    pub async fn prepare(&self) -> Result<()> {
        if self.secret.get().is_some() || self.configured.is_some() {
            return Ok(());
        }
        let proposed = format!("whsec_{}", uuid::Uuid::new_v4().simple());
        let secret = self.book.secret(&proposed).await?;
        let _ = self.secret.set(secret.into_bytes());
        Ok(())
    }

    async fn key(&self) -> Result<&[u8]> {
        self.prepare().await?;
        self.loaded()
    }

    fn loaded(&self) -> Result<&[u8]> {
        self.secret.get().map(Vec::as_slice).ok_or_else(|| {
            Error::unavailable("the simulated gateway's webhook secret is not loaded yet", None)
        })
    }

    /// The driver pays the intent: authorised, or with `capture` captured at once; `decline`
    /// (a reason) fails the attempt instead. Returns the webhook event the provider sends,
    /// also kept in the book.
    pub async fn pay(&self, intent_id: &str, capture: bool, decline: Option<String>) -> Result<PaymentEvent> {
        let transition: Transition = Box::new(move |current| {
            let mut intent = current.ok_or_else(|| Error::not_found("intent"))?;
            let kind = intent.pay(capture, decline)?;
            let event = intent.event(kind)?;
            let response =
                serde_json::to_string(&event).map_err(|e| Error::invalid("event", e.to_string()))?;
            Ok(Change {
                intent,
                created: false,
                response,
                effects: Effects { refund: None, event: Some(event) },
            })
        });
        match self
            .book
            .call(None, "pay", Some(intent_id), transition)
            .await
            .map_err(|e| named(e, intent_id))?
        {
            Keyed::Done(response) | Keyed::Replayed { response, .. } => {
                serde_json::from_str(&response).map_err(|e| Error::invalid("event", e.to_string()))
            }
        }
    }

    /// A delivery of `event` signed at `at`: the body and the signature header value.
    pub async fn sign(&self, event: &PaymentEvent, at: Timestamp) -> Result<(Vec<u8>, String)> {
        Ok(sign_delivery(self.key().await?, event, at))
    }

    /// A signed delivery of an event ParQ does not act on.
    pub async fn sign_foreign(&self, id: &str, at: Timestamp) -> Result<(Vec<u8>, String)> {
        Ok(sign_foreign_delivery(self.key().await?, id, at))
    }

    /// Captured and refunded minor units of an intent.
    pub async fn money(&self, intent_id: &str) -> Result<Option<(i64, i64)>> {
        Ok(self.book.intent(intent_id).await?.map(|r| (r.captured, r.refunded)))
    }

    async fn keyed(
        &self,
        key: &str,
        fingerprint: String,
        intent_id: Option<&str>,
        transition: Transition,
    ) -> Result<String> {
        match self.book.call(Some(key), &fingerprint, intent_id, transition).await {
            Ok(Keyed::Done(response)) => Ok(response),
            Ok(Keyed::Replayed { fingerprint: fp, response }) if fp == fingerprint => Ok(response),
            Ok(Keyed::Replayed { .. }) => Err(Error::IdempotencyMismatch { key: key.to_owned() }),
            Err(e) => Err(match intent_id {
                Some(id) => named(e, id),
                None => e,
            }),
        }
    }

    /// Runs `step` on an existing intent under `key`; the response is the intent id.
    async fn mutate(
        &self,
        intent_id: &str,
        key: &str,
        fingerprint: String,
        step: fn(&mut SimIntent) -> Result<()>,
    ) -> Result<PaymentIntent> {
        let id = intent_id.to_owned();
        let transition: Transition = Box::new(move |current| {
            let mut intent = current.ok_or_else(|| Error::not_found("intent"))?;
            step(&mut intent)?;
            Ok(Change { intent, created: false, response: id, effects: Effects::default() })
        });
        self.keyed(key, fingerprint, Some(intent_id), transition).await?;
        self.retrieve(intent_id).await
    }
}

/// Names the intent in a "not found" error.
fn named(e: Error, intent_id: &str) -> Error {
    match e {
        Error::NotFound { .. } => Error::not_found(format!("intent {intent_id}")),
        other => other,
    }
}

#[async_trait]
impl PaymentGateway for SharedTestGateway {
    fn provider(&self) -> &'static str {
        "test"
    }

    async fn create_intent(&self, req: &IntentRequest) -> Result<PaymentIntent> {
        let created = SimIntent::create(req);
        let transition: Transition = Box::new(move |_| {
            let response = created.intent.id.clone();
            Ok(Change { intent: created, created: true, response, effects: Effects::default() })
        });
        let id =
            self.keyed(&req.idempotency_key, SimIntent::create_fingerprint(req), None, transition).await?;
        self.retrieve(&id).await
    }

    async fn capture(&self, intent_id: &str, key: &str) -> Result<PaymentIntent> {
        self.mutate(intent_id, key, capture_fingerprint(intent_id), SimIntent::capture).await
    }

    async fn cancel(&self, intent_id: &str, key: &str) -> Result<PaymentIntent> {
        self.mutate(intent_id, key, cancel_fingerprint(intent_id), SimIntent::cancel).await
    }

    async fn refund(
        &self,
        intent_id: &str,
        reservation: ReservationId,
        amount: Money,
        key: &str,
    ) -> Result<Refund> {
        let transition: Transition = Box::new(move |current| {
            let mut intent = current.ok_or_else(|| Error::not_found("intent"))?;
            intent.refund(reservation, amount)?;
            let id = random_id("re_test");
            let kind = PaymentEventKind::Refunded { amount: Money::new(intent.refunded, amount.currency) };
            let event = intent.event(kind)?;
            Ok(Change {
                intent,
                created: false,
                response: id.clone(),
                effects: Effects { refund: Some((id, amount)), event: Some(event) },
            })
        });
        let fingerprint = refund_fingerprint(intent_id, reservation, amount);
        let id = self.keyed(key, fingerprint, Some(intent_id), transition).await?;
        Ok(Refund { id, amount })
    }

    async fn retrieve(&self, intent_id: &str) -> Result<PaymentIntent> {
        self.book
            .intent(intent_id)
            .await?
            .map(|r| r.intent)
            .ok_or_else(|| Error::not_found(format!("intent {intent_id}")))
    }

    fn parse_webhook(&self, payload: &[u8], signature: &str, now: Timestamp) -> Result<PaymentEvent> {
        parse_delivery(self.loaded()?, self.tolerance, payload, signature, now)
    }
}

fn status_text(s: IntentStatus) -> String {
    match serde_json::to_value(s) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{s:?}"),
    }
}

fn status_of(text: &str) -> Result<IntentStatus> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        Error::invalid("status", format!("unknown intent status {text:?} in the gateway's book"))
    })
}

fn kind_text(kind: &PaymentEventKind) -> &'static str {
    match kind {
        PaymentEventKind::Authorized => "authorized",
        PaymentEventKind::Succeeded => "succeeded",
        PaymentEventKind::Failed { .. } => "failed",
        PaymentEventKind::Canceled => "canceled",
        PaymentEventKind::Refunded { .. } => "refunded",
    }
}

struct Row {
    id: String,
    reservation: Option<uuid::Uuid>,
    status: String,
    amount: i64,
    currency: String,
    client_secret: Option<String>,
    captured: i64,
    refunded: i64,
}

impl Row {
    fn into_intent(self) -> Result<SimIntent> {
        let currency = parq_core::Currency::new(&self.currency)
            .map_err(|_| Error::invalid("currency", format!("unknown currency {:?}", self.currency)))?;
        Ok(SimIntent {
            intent: PaymentIntent {
                id: self.id,
                status: status_of(&self.status)?,
                amount: Money::new(self.amount, currency),
                client_secret: self.client_secret,
                reservation: self.reservation.map(ReservationId::from_uuid),
            },
            captured: self.captured,
            refunded: self.refunded,
        })
    }
}

const COLUMNS: &str = "id, reservation, status, amount, currency, client_secret, captured, refunded";

/// The books in PostgreSQL, in the store's schema (`test_gateway_*` tables, made by
/// `parq migrate`).
#[derive(Debug, Clone)]
pub struct PgBook {
    pool: Pool,
    q: String,
}

impl PgBook {
    /// The books in `schema`, reached through `pool`.
    pub fn new(pool: Pool, schema: &str) -> Self {
        Self { pool, q: ident(schema) }
    }
}

fn pg_row(r: &parq_postgres::tokio_postgres::Row) -> Result<SimIntent> {
    Row {
        id: r.get(0),
        reservation: r.get(1),
        status: r.get(2),
        amount: r.get(3),
        currency: r.get(4),
        client_secret: r.get(5),
        captured: r.get(6),
        refunded: r.get(7),
    }
    .into_intent()
}

#[async_trait]
impl GatewayBook for PgBook {
    async fn call(
        &self,
        key: Option<&str>,
        fingerprint: &str,
        intent_id: Option<&str>,
        transition: Transition,
    ) -> Result<Keyed> {
        let q = &self.q;
        let mut c = self.pool.get().await.map_err(db_error)?;
        let tx = c.transaction().await.map_err(db_error)?;
        if let Some(key) = key {
            // One caller per key at a time, across replicas; the lock ends with the transaction.
            tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7357))", &[&key])
                .await
                .map_err(db_error)?;
            let used = tx
                .query_opt(
                    &format!("SELECT fingerprint, response FROM {q}.test_gateway_keys WHERE key = $1"),
                    &[&key],
                )
                .await
                .map_err(db_error)?;
            if let Some(row) = used {
                return Ok(Keyed::Replayed { fingerprint: row.get(0), response: row.get(1) });
            }
        }
        let current = match intent_id {
            Some(id) => tx
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM {q}.test_gateway_intents WHERE id = $1 FOR UPDATE"),
                    &[&id],
                )
                .await
                .map_err(db_error)?
                .map(|r| pg_row(&r))
                .transpose()?,
            None => None,
        };
        let change = transition(current)?;
        let i = &change.intent;
        let reservation = i.intent.reservation.map(|r| *r.as_uuid());
        let status = status_text(i.intent.status);
        if change.created {
            tx.execute(
                &format!(
                    "INSERT INTO {q}.test_gateway_intents ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ),
                &[
                    &i.intent.id,
                    &reservation,
                    &status,
                    &i.intent.amount.minor,
                    &i.intent.amount.currency.as_str(),
                    &i.intent.client_secret,
                    &i.captured,
                    &i.refunded,
                ],
            )
            .await
            .map_err(db_error)?;
        } else {
            tx.execute(
                &format!(
                    "UPDATE {q}.test_gateway_intents SET status = $2, captured = $3, refunded = $4, \
                     updated_at = now() WHERE id = $1"
                ),
                &[&i.intent.id, &status, &i.captured, &i.refunded],
            )
            .await
            .map_err(db_error)?;
        }
        if let Some((id, amount)) = &change.effects.refund {
            tx.execute(
                &format!(
                    "INSERT INTO {q}.test_gateway_refunds (id, intent_id, reservation, amount, currency, \
                     idempotency_key) VALUES ($1, $2, $3, $4, $5, $6)"
                ),
                &[
                    id,
                    &i.intent.id,
                    &reservation,
                    &amount.minor,
                    &amount.currency.as_str(),
                    &key.unwrap_or_default(),
                ],
            )
            .await
            .map_err(db_error)?;
        }
        if let Some(ev) = &change.effects.event {
            let body = serde_json::to_value(ev).map_err(|e| Error::invalid("event", e.to_string()))?;
            tx.execute(
                &format!(
                    "INSERT INTO {q}.test_gateway_events (id, intent_id, reservation, kind, event) \
                     VALUES ($1, $2, $3, $4, $5::text::jsonb)"
                ),
                &[&ev.id, &ev.intent_id, ev.reservation.as_uuid(), &kind_text(&ev.kind), &body.to_string()],
            )
            .await
            .map_err(db_error)?;
        }
        if let Some(key) = key {
            tx.execute(
                &format!(
                    "INSERT INTO {q}.test_gateway_keys (key, fingerprint, response) VALUES ($1, $2, $3)"
                ),
                &[&key, &fingerprint, &change.response],
            )
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(Keyed::Done(change.response))
    }

    async fn intent(&self, id: &str) -> Result<Option<SimIntent>> {
        let q = &self.q;
        let c = self.pool.get().await.map_err(db_error)?;
        c.query_opt(&format!("SELECT {COLUMNS} FROM {q}.test_gateway_intents WHERE id = $1"), &[&id])
            .await
            .map_err(db_error)?
            .map(|r| pg_row(&r))
            .transpose()
    }

    async fn secret(&self, proposed: &str) -> Result<String> {
        let q = &self.q;
        let c = self.pool.get().await.map_err(db_error)?;
        c.execute(
            &format!(
                "INSERT INTO {q}.test_gateway_secret (id, secret) VALUES (1, $1) ON CONFLICT DO NOTHING"
            ),
            &[&proposed],
        )
        .await
        .map_err(db_error)?;
        let row = c
            .query_one(&format!("SELECT secret FROM {q}.test_gateway_secret WHERE id = 1"), &[])
            .await
            .map_err(db_error)?;
        Ok(row.get(0))
    }

    fn name(&self) -> &'static str {
        "test-postgres"
    }
}

/// The books in the SQLite file (`test_gateway_*` tables), next to the store's.
#[derive(Debug, Clone)]
pub struct SqliteBook {
    db: Arc<SqliteDb>,
}

impl SqliteBook {
    /// The books in `db`'s file.
    pub fn new(db: Arc<SqliteDb>) -> Self {
        Self { db }
    }
}

fn lite_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let reservation: Option<String> = r.get(1)?;
    Ok(Row {
        id: r.get(0)?,
        reservation: reservation.and_then(|s| s.parse().ok()),
        status: r.get(2)?,
        amount: r.get(3)?,
        currency: r.get(4)?,
        client_secret: r.get(5)?,
        captured: r.get(6)?,
        refunded: r.get(7)?,
    })
}

/// A refusal of the transition, carried out of the blocking closure.
enum LiteOutcome {
    Keyed(Keyed),
    Refused(Error),
}

#[async_trait]
impl GatewayBook for SqliteBook {
    async fn call(
        &self,
        key: Option<&str>,
        fingerprint: &str,
        intent_id: Option<&str>,
        transition: Transition,
    ) -> Result<Keyed> {
        let key = key.map(str::to_owned);
        let fingerprint = fingerprint.to_owned();
        let intent_id = intent_id.map(str::to_owned);
        let out = self
            .db
            .run(move |conn| {
                // The write lock first: one writer at a time across processes.
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if let Some(key) = &key {
                    let used = tx
                        .query_row(
                            "SELECT fingerprint, response FROM test_gateway_keys WHERE key = ?1",
                            [key],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .optional()?;
                    if let Some((fingerprint, response)) = used {
                        return Ok(LiteOutcome::Keyed(Keyed::Replayed { fingerprint, response }));
                    }
                }
                let current = match &intent_id {
                    Some(id) => tx
                        .query_row(
                            &format!("SELECT {COLUMNS} FROM test_gateway_intents WHERE id = ?1"),
                            [id],
                            lite_row,
                        )
                        .optional()?,
                    None => None,
                };
                let current = match current.map(Row::into_intent).transpose() {
                    Ok(c) => c,
                    Err(e) => return Ok(LiteOutcome::Refused(e)),
                };
                let change = match transition(current) {
                    Ok(c) => c,
                    Err(e) => return Ok(LiteOutcome::Refused(e)),
                };
                let i = &change.intent;
                let reservation = i.intent.reservation.map(|r| r.to_string());
                let status = status_text(i.intent.status);
                if change.created {
                    tx.execute(
                        &format!(
                            "INSERT INTO test_gateway_intents ({COLUMNS}, created_at, updated_at) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, {NOW}, {NOW})"
                        ),
                        rusqlite::params![
                            i.intent.id,
                            reservation,
                            status,
                            i.intent.amount.minor,
                            i.intent.amount.currency.as_str(),
                            i.intent.client_secret,
                            i.captured,
                            i.refunded
                        ],
                    )?;
                } else {
                    tx.execute(
                        &format!(
                            "UPDATE test_gateway_intents SET status = ?2, captured = ?3, refunded = ?4, \
                             updated_at = {NOW} WHERE id = ?1"
                        ),
                        rusqlite::params![i.intent.id, status, i.captured, i.refunded],
                    )?;
                }
                if let Some((id, amount)) = &change.effects.refund {
                    tx.execute(
                        &format!(
                            "INSERT INTO test_gateway_refunds (id, intent_id, reservation, amount, currency, \
                             idempotency_key, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW})"
                        ),
                        rusqlite::params![
                            id,
                            i.intent.id,
                            reservation,
                            amount.minor,
                            amount.currency.as_str(),
                            key.clone().unwrap_or_default()
                        ],
                    )?;
                }
                if let Some(ev) = &change.effects.event {
                    let body = serde_json::to_string(ev).unwrap_or_default();
                    tx.execute(
                        &format!(
                            "INSERT INTO test_gateway_events (id, intent_id, reservation, kind, event, created_at) \
                             VALUES (?1, ?2, ?3, ?4, ?5, {NOW})"
                        ),
                        rusqlite::params![
                            ev.id,
                            ev.intent_id,
                            ev.reservation.to_string(),
                            kind_text(&ev.kind),
                            body
                        ],
                    )?;
                }
                if let Some(key) = &key {
                    tx.execute(
                        &format!(
                            "INSERT INTO test_gateway_keys (key, fingerprint, response, created_at) \
                             VALUES (?1, ?2, ?3, {NOW})"
                        ),
                        rusqlite::params![key, fingerprint, change.response],
                    )?;
                }
                tx.commit()?;
                Ok(LiteOutcome::Keyed(Keyed::Done(change.response)))
            })
            .await?;
        match out {
            LiteOutcome::Keyed(k) => Ok(k),
            LiteOutcome::Refused(e) => Err(e),
        }
    }

    async fn intent(&self, id: &str) -> Result<Option<SimIntent>> {
        let id = id.to_owned();
        let row = self
            .db
            .run(move |conn| {
                conn.query_row(
                    &format!("SELECT {COLUMNS} FROM test_gateway_intents WHERE id = ?1"),
                    [id],
                    lite_row,
                )
                .optional()
            })
            .await?;
        row.map(Row::into_intent).transpose()
    }

    async fn secret(&self, proposed: &str) -> Result<String> {
        let proposed = proposed.to_owned();
        self.db
            .run(move |conn| {
                conn.execute(
                    "INSERT OR IGNORE INTO test_gateway_secret (id, secret) VALUES (1, ?1)",
                    [proposed],
                )?;
                conn.query_row("SELECT secret FROM test_gateway_secret WHERE id = 1", [], |r| r.get(0))
            })
            .await
    }

    fn name(&self) -> &'static str {
        "test-sqlite"
    }
}

/// SQLite's "now" as the server's other tables write it.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
