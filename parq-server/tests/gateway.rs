//! The simulated payment gateway with its books where replicas share them: the gateway
//! conformance suite on PostgreSQL and on SQLite, two gateways on one book, a restart on
//! SQLite, and two `parq` replicas on one PostgreSQL taking payments and cancellations from
//! drivers whose every request goes to either replica. Needs the PostgreSQL of
//! `PARQ_TEST_PG_URL` and the Redis of `PARQ_TEST_REDIS_URL`; fails when they are unreachable.

mod common;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use common::production::{self, Backing};
use jiff::Timestamp;
use parq_core::testing::gateway::GatewayHarness;
use parq_core::{
    Currency, DynPaymentGateway, Error, IntentRequest, IntentStatus, Money, PaymentEvent, PaymentEventKind,
    PaymentGateway, PaymentIntent, ReservationId,
};
use parq_server::gateway::{GatewayBook, PgBook, SharedTestGateway, SqliteBook};
use parq_server::sqlite::SqliteDb;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// What keeps a harness's schema or file alive (and removes it when dropped).
enum Keep {
    Pg(Backing),
    Lite(tempfile::TempDir),
}

impl fmt::Debug for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keep::Pg(b) => write!(f, "schema {}", b.schema),
            Keep::Lite(d) => write!(f, "file in {}", d.path().display()),
        }
    }
}

/// The simulated gateway over a shared book, with what the suite needs to act as the driver
/// and the provider.
#[derive(Debug)]
struct Shared {
    gateway: SharedTestGateway,
    _keep: Keep,
}

#[async_trait]
impl GatewayHarness for Shared {
    fn gateway(&self) -> &DynPaymentGateway {
        &self.gateway
    }

    async fn pay(&self, intent: &PaymentIntent) {
        let ev = self.gateway.pay(&intent.id, false, None).await.expect("the driver pays");
        assert_eq!(ev.kind, PaymentEventKind::Authorized);
    }

    async fn money(&self, intent_id: &str) -> (i64, i64) {
        self.gateway.money(intent_id).await.expect("the book answers").unwrap_or((0, 0))
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
        self.gateway.sign(&event, at).await.expect("signed")
    }

    async fn foreign_delivery(&self, event_id: &str, at: Timestamp) -> (Vec<u8>, String) {
        self.gateway.sign_foreign(event_id, at).await.expect("signed")
    }

    fn provider_limits_refund_totals(&self) -> bool {
        true
    }
}

/// A fresh schema with the server's migrations, and its pool.
async fn pg_book() -> (Backing, Arc<dyn GatewayBook>) {
    let b = Backing::new().await;
    let config = b.config();
    b.migrate(&config).await;
    let url = parq_server::backends::postgres::parse_url("store_url", &b.pg, None).unwrap();
    let pool = parq_server::backends::postgres::pool(url, 4).unwrap();
    let book: Arc<dyn GatewayBook> = Arc::new(PgBook::new(pool, &b.schema));
    (b, book)
}

async fn opened(book: Arc<dyn GatewayBook>) -> SharedTestGateway {
    let g = SharedTestGateway::new(book, None);
    g.prepare().await.expect("the webhook secret is loaded");
    g
}

async fn pg_harness() -> Arc<dyn GatewayHarness> {
    let (b, book) = pg_book().await;
    Arc::new(Shared { gateway: opened(book).await, _keep: Keep::Pg(b) })
}

/// The server's connections to the SQLite file at `path`, made (with the store's tables) as
/// `parq serve` makes it.
async fn lite_db(path: std::path::PathBuf) -> Arc<SqliteDb> {
    parq_sqlite::SqliteStore::open_async(path.clone(), parq_sqlite::SqliteOptions::default())
        .await
        .expect("the store's file opens");
    Arc::new(SqliteDb::open_async(path).await.expect("the server's tables open"))
}

async fn lite_book() -> (tempfile::TempDir, Arc<dyn GatewayBook>) {
    let dir = tempfile::tempdir().unwrap();
    let db = lite_db(dir.path().join("parq.db")).await;
    (dir, Arc::new(SqliteBook::new(db)))
}

async fn lite_harness() -> Arc<dyn GatewayHarness> {
    let (dir, book) = lite_book().await;
    Arc::new(Shared { gateway: opened(book).await, _keep: Keep::Lite(dir) })
}

mod on_postgres {
    use super::*;
    parq_core::gateway_conformance!(pg_harness());
}

mod on_sqlite {
    use super::*;
    parq_core::gateway_conformance!(lite_harness());
}

fn request(reservation: ReservationId, attempt: u32, minor: i64) -> IntentRequest {
    IntentRequest {
        reservation,
        attempt,
        amount: Money::new(minor, Currency::EUR),
        idempotency_key: format!("parq:{reservation}:intent:{attempt}"),
        description: "Parking E-05".into(),
    }
}

/// Two gateways on one book (two replicas): what one creates the other sees, pays, captures
/// and refunds; keys used on one replay on the other; ids never collide; a delivery signed by
/// one verifies on the other.
async fn two_gateways_share_one_book(book: Arc<dyn GatewayBook>) {
    let a = opened(book.clone()).await;
    let b = opened(book).await;
    let (ga, gb): (&DynPaymentGateway, &DynPaymentGateway) = (&a, &b);
    let mut ids = std::collections::HashSet::new();
    let mut intents = Vec::new();
    for i in 0..20 {
        let g = if i % 2 == 0 { ga } else { gb };
        let intent = g.create_intent(&request(ReservationId::new(), 1, 500)).await.unwrap();
        assert!(intent.id.starts_with("pi_test_") && intent.id.len() > 20, "{}", intent.id);
        assert!(ids.insert(intent.id.clone()), "ids never repeat: {}", intent.id);
        intents.push(intent);
    }
    let r = ReservationId::new();
    let first = ga.create_intent(&request(r, 1, 800)).await.unwrap();
    assert_eq!(gb.create_intent(&request(r, 1, 800)).await.unwrap().id, first.id, "the key replays");
    match gb.create_intent(&request(r, 1, 900)).await {
        Err(Error::IdempotencyMismatch { .. }) => {}
        other => panic!("the same key for another amount is refused on the other replica: {other:?}"),
    }
    let ev = b.pay(&first.id, false, None).await.unwrap();
    let (body, sig) = a.sign(&ev, Timestamp::now()).await.unwrap();
    assert_eq!(gb.parse_webhook(&body, &sig, Timestamp::now()).unwrap(), ev, "verified on the other replica");
    assert_eq!(ga.retrieve(&first.id).await.unwrap().status, IntentStatus::RequiresCapture);
    ga.capture(&first.id, &format!("parq:{r}:capture:{}", first.id)).await.unwrap();
    let key = format!("parq:{r}:refund:0:300");
    let eur = Money::new(300, Currency::EUR);
    let refunds = futures_util::future::join_all((0..6).map(|i| {
        let g = if i % 2 == 0 { ga } else { gb };
        g.refund(&first.id, r, eur, &key)
    }))
    .await;
    let refund_ids: std::collections::HashSet<_> = refunds.into_iter().map(|x| x.unwrap().id).collect();
    assert_eq!(refund_ids.len(), 1, "six concurrent calls with one key on two replicas: one refund");
    assert_eq!(b.money(&first.id).await.unwrap(), Some((800, 300)));
    let e = gb.refund(&intents[0].id, r, eur, "parq:other:refund").await.unwrap_err();
    assert!(matches!(e, Error::Invalid { field: "reservation", .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_book_on_postgres() {
    let (_b, book) = pg_book().await;
    two_gateways_share_one_book(book).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_book_on_sqlite() {
    let (_dir, book) = lite_book().await;
    two_gateways_share_one_book(book).await;
}

/// On SQLite the books survive a restart: the intent, its money and its keys, and the webhook
/// secret (a delivery signed before the restart verifies after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_books_survive_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parq.db");
    let r = ReservationId::new();
    let (intent, body, sig) = {
        let db = lite_db(path.clone()).await;
        let g = opened(Arc::new(SqliteBook::new(db))).await;
        let intent = g.create_intent(&request(r, 1, 600)).await.unwrap();
        let ev = g.pay(&intent.id, true, None).await.unwrap();
        let (body, sig) = g.sign(&ev, Timestamp::now()).await.unwrap();
        g.refund(&intent.id, r, Money::new(100, Currency::EUR), "parq:restart:refund").await.unwrap();
        (intent, body, sig)
    };
    let db = lite_db(path).await;
    let g = opened(Arc::new(SqliteBook::new(db))).await;
    assert_eq!(g.retrieve(&intent.id).await.unwrap().status, IntentStatus::Succeeded);
    assert_eq!(g.money(&intent.id).await.unwrap(), Some((600, 100)));
    assert_eq!(g.create_intent(&request(r, 1, 600)).await.unwrap().id, intent.id, "the key is kept");
    g.refund(&intent.id, r, Money::new(100, Currency::EUR), "parq:restart:refund").await.unwrap();
    assert_eq!(
        g.money(&intent.id).await.unwrap(),
        Some((600, 100)),
        "a retry after the restart refunds nothing"
    );
    assert!(g.parse_webhook(&body, &sig, Timestamp::now()).is_ok(), "the secret is kept");
}

const DRIVERS: usize = 64;
const OPERATOR_KEY: &str = "pqk_gateway_operator_key_0123456789abcdef";

/// A random index below `n`.
fn any(n: usize) -> usize {
    usize::from(uuid::Uuid::new_v4().as_bytes()[0]) % n
}

/// What one driver did, for the checks at the end.
#[derive(Debug)]
struct Outcome {
    reservation: String,
    price: i64,
    cancelled: bool,
    refunded: i64,
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut req = http.post(format!("{url}{path}")).header("idempotency-key", common::key()).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("answered");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn ok(http: &reqwest::Client, url: &str, path: &str, token: Option<&str>, body: Value) -> Value {
    let (status, v) = post(http, url, path, token, body).await;
    assert!(status.is_success(), "POST {path} on {url}: {status} {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_take_every_payment_and_refund_each_to_its_own() {
    let b = Backing::new().await;
    let env = b.env();
    let migrated = production::migrate(&env);
    assert!(migrated.contains("server: applied 0003 test_gateway"), "{migrated}");
    let mut env_a = env.clone();
    env_a.push(("PARQ_DEMO".into(), "true".into()));
    env_a.push(("PARQ_OPERATOR_KEY".into(), OPERATOR_KEY.into()));
    let a = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &env_a);
    let mut env_b = env.clone();
    env_b.push(("PARQ_DEMO".into(), "false".into()));
    let pb = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &env_b);
    let urls = [a.url.clone(), pb.url.clone()];
    let http = reqwest::Client::new();
    for u in &urls {
        let ready = production::until_warm(&http, u).await;
        assert_eq!(ready["backends"]["gateway"]["adapter"], "test-postgres", "{ready}");
        assert_eq!(ready["backends"]["gateway"]["up"], true, "{ready}");
    }
    // The webhook secret both replicas sign and verify with, kept in the gateway's books.
    let sql = b.sql().await;
    let q = format!("\"{}\"", b.schema);
    let secrets = sql.query(&format!("SELECT secret FROM {q}.test_gateway_secret"), &[]).await.unwrap();
    assert_eq!(secrets.len(), 1, "one secret for every replica");
    let secret: String = secrets[0].get(0);

    let lot = parq_server::demo::lot_id("Eleftheria Square Car Park, Nicosia").to_string();
    let gate = Arc::new(Semaphore::new(8));
    let mut drivers = tokio::task::JoinSet::new();
    for i in 0..DRIVERS {
        let (http, urls, gate, lot, secret) =
            (http.clone(), urls.clone(), gate.clone(), lot.clone(), secret.clone());
        drivers.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let at = |_: &str| urls[any(2)].clone();
            let email = format!("payer{i}@example.cy");
            let creds = json!({ "email": email, "password": "a long enough password" });
            ok(&http, &at("register"), "/api/v1/auth/register", None, creds.clone()).await;
            let token = ok(&http, &at("login"), "/api/v1/auth/login", None, creds).await["token"]
                .as_str()
                .unwrap()
                .to_owned();
            let t = Some(token.as_str());
            // Every eighth driver parks within the hour (a late cancellation refunds half);
            // the others tomorrow, ten drivers per two-hour window (the lot has twelve spots).
            let cancels = i % 4 == 0;
            let soon = i % 8 == 0;
            let (start, end) =
                if soon { common::window(1, 2) } else { common::window(24 + 2 * (i / 10) as i64, 2) };
            let held = ok(
                &http,
                &at("hold"),
                "/api/v1/holds",
                t,
                json!({ "lot_id": lot, "start": start, "end": end }),
            )
            .await;
            let id = held["id"].as_str().unwrap().to_owned();
            let price = held["price"]["minor"].as_i64().unwrap();
            let mut checkout =
                ok(&http, &at("checkout"), &format!("/api/v1/reservations/{id}/checkout"), t, json!({}))
                    .await;
            if i % 5 == 1 {
                // Declined on one replica; a new attempt (a new intent) on another.
                let url = checkout["test_pay_url"].as_str().unwrap().to_owned();
                let declined = ok(&http, &at("pay"), &url, t, json!({ "decline": "card_declined" })).await;
                assert_eq!(declined["outcome"], "failed", "{declined}");
                assert_eq!(declined["reservation"]["state"], "held", "{declined}");
                let again =
                    ok(&http, &at("checkout"), &format!("/api/v1/reservations/{id}/checkout"), t, json!({}))
                        .await;
                assert_ne!(again["intent"]["id"], checkout["intent"]["id"], "a new attempt, a new intent");
                checkout = again;
            }
            let intent = checkout["intent"]["id"].as_str().unwrap().to_owned();
            let url = checkout["test_pay_url"].as_str().unwrap().to_owned();
            let capture = i % 3 != 2;
            let paid = ok(&http, &at("pay"), &url, t, json!({ "capture": capture })).await;
            assert_eq!(paid["outcome"], if capture { "succeeded" } else { "authorized" }, "{paid}");
            assert_eq!(paid["reservation"]["state"], "confirmed", "{paid}");
            // The provider delivers the same event again, to the other replica: applied once.
            let event = PaymentEvent {
                id: paid["event_id"].as_str().unwrap().to_owned(),
                intent_id: intent.clone(),
                reservation: id.parse().unwrap(),
                kind: if capture { PaymentEventKind::Succeeded } else { PaymentEventKind::Authorized },
            };
            let (body, sig) = parq_core::memory::sign_delivery(secret.as_bytes(), &event, Timestamp::now());
            let r = http
                .post(format!("{}/api/v1/webhooks/test", at("webhook")))
                .header("parq-signature", sig)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert_eq!(status, StatusCode::OK, "a redelivery on either replica: {v}");
            assert_eq!(v["reservation"]["state"], "confirmed", "{v}");
            assert_eq!(v["reservation"]["payment"]["captured"], true, "{v}");
            let mut refunded = 0;
            if cancels {
                let path = format!("/api/v1/reservations/{id}/cancel");
                let done = ok(&http, &at("cancel"), &path, t, json!({})).await;
                assert_eq!(done["reservation"]["state"], "cancelled", "{done}");
                refunded = done["refunded"]["minor"].as_i64().unwrap();
                let expected = if soon { price / 2 } else { price };
                assert_eq!(refunded, expected, "refunded by the policy: {done}");
                // Cancelled again on either replica: the same answer, no second refund.
                let again = ok(&http, &at("cancel"), &path, t, json!({})).await;
                assert_eq!(again["refunded"]["minor"], refunded, "{again}");
            }
            let seen = http
                .get(format!("{}/api/v1/reservations/{id}", at("get")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap();
            assert_eq!(seen["state"], if cancels { "cancelled" } else { "confirmed" }, "{seen}");
            Outcome { reservation: id, price, cancelled: cancels, refunded }
        });
    }
    let outcomes = drivers.join_all().await;
    assert_eq!(outcomes.len(), DRIVERS);
    assert!(outcomes.iter().filter(|o| o.cancelled).count() >= DRIVERS / 4);

    // The store and the gateway's books agree, reservation by reservation.
    let rows = sql
        .query(
            &format!(
                "SELECT r.id::text, r.state, r.payment->>'intent_id', (r.payment->>'captured')::bool, \
                        (r.payment->'amount'->>'minor')::bigint, (r.payment->>'refunded')::bigint, \
                        (r.payment->>'refund_settled')::bigint, \
                        i.reservation::text, i.status, i.amount, i.captured, i.refunded, \
                        (SELECT coalesce(sum(f.amount), 0)::bigint FROM {q}.test_gateway_refunds f \
                          WHERE f.intent_id = i.id AND f.reservation = r.id) \
                 FROM {q}.reservations r LEFT JOIN {q}.test_gateway_intents i ON i.id = r.payment->>'intent_id'"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), DRIVERS);
    let mut store_net = 0;
    for row in &rows {
        let id: String = row.get(0);
        let o = outcomes.iter().find(|o| o.reservation == id).expect("a driver's reservation");
        let state: String = row.get(1);
        assert_eq!(state, if o.cancelled { "cancelled" } else { "confirmed" }, "{id}");
        let intent: Option<String> = row.get(2);
        assert!(intent.is_some(), "{id} names its intent");
        let (captured, amount, refunded, settled): (bool, i64, i64, i64) =
            (row.get(3), row.get(4), row.get(5), row.get(6));
        assert!(captured, "{id} captured");
        assert_eq!((amount, refunded, settled), (o.price, o.refunded, o.refunded), "{id}");
        let of: Option<String> = row.get(7);
        assert_eq!(of.as_deref(), Some(id.as_str()), "the intent of {id} is made for {id}");
        let (status, i_amount, i_captured, i_refunded, refunds): (String, i64, i64, i64, i64) =
            (row.get(8), row.get(9), row.get(10), row.get(11), row.get(12));
        assert_eq!(status, "succeeded", "{id}");
        assert_eq!((i_amount, i_captured, i_refunded), (o.price, o.price, o.refunded), "{id}");
        assert_eq!(refunds, o.refunded, "every refund of {id}'s intent is {id}'s");
        store_net += amount - refunded;
    }
    let totals = sql
        .query_one(
            &format!(
                "SELECT (SELECT coalesce(sum(captured), 0)::bigint FROM {q}.test_gateway_intents), \
                        (SELECT coalesce(sum(amount), 0)::bigint FROM {q}.test_gateway_refunds), \
                        (SELECT count(*) FROM {q}.test_gateway_refunds f JOIN {q}.test_gateway_intents i \
                           ON i.id = f.intent_id WHERE i.reservation IS DISTINCT FROM f.reservation), \
                        (SELECT count(*) FROM {q}.test_gateway_intents WHERE status NOT IN ('succeeded', 'canceled'))"
            ),
            &[],
        )
        .await
        .unwrap();
    let (captures, refunds, strays, open): (i64, i64, i64, i64) =
        (totals.get(0), totals.get(1), totals.get(2), totals.get(3));
    assert_eq!(captures - refunds, store_net, "captures − refunds = what the store's reservations kept");
    assert_eq!(strays, 0, "no refund reached another reservation's intent");
    assert_eq!(open, 0, "every declined attempt's intent was voided");
    let expected_refunds: i64 = outcomes.iter().map(|o| o.refunded).sum();
    assert_eq!(refunds, expected_refunds);
    drop((a, pb));
}

/// A server on an SQLite file pays through the simulated gateway, stops, starts again on the
/// file, and refunds the payment then: the gateway's books survived the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_taken_before_a_restart_is_refunded_after_it_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let config = parq_server::Config {
        store_url: format!("sqlite://{}", dir.path().join("parq.db").display()),
        demo: Some(true),
        ..common::config()
    };
    let s = common::start_with(config.clone()).await;
    let ready = common::expect(s.get("/readyz", None).await, StatusCode::OK).await;
    assert_eq!(ready["backends"]["gateway"]["adapter"], "test-sqlite", "{ready}");
    let token = s.driver("restart@example.cy").await;
    let lot = parq_server::demo::lot_id("Eleftheria Square Car Park, Nicosia").to_string();
    let (start, end) = common::window(24, 2);
    let held = common::expect(
        s.post("/api/v1/holds", Some(&token), json!({ "lot_id": lot, "start": start, "end": end })).await,
        StatusCode::CREATED,
    )
    .await;
    let id = held["id"].as_str().unwrap().to_owned();
    let price = held["price"]["minor"].as_i64().unwrap();
    let checkout = common::expect(
        s.post(&format!("/api/v1/reservations/{id}/checkout"), Some(&token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    let intent = checkout["intent"]["id"].as_str().unwrap().to_owned();
    let pay = checkout["test_pay_url"].as_str().unwrap().to_owned();
    let paid = common::expect(s.post(&pay, Some(&token), json!({})).await, StatusCode::OK).await;
    assert_eq!(paid["reservation"]["state"], "confirmed", "{paid}");
    s.running.shutdown().await;

    let s = common::start_with(config).await;
    let token = s.login("restart@example.cy", "a long enough password").await;
    let cancelled = common::expect(
        s.post(&format!("/api/v1/reservations/{id}/cancel"), Some(&token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cancelled["refunded"]["minor"], price, "{cancelled}");
    let gw = s.running.app.state().test_gateway.clone().unwrap();
    assert_eq!(gw.money(&intent).await.unwrap(), Some((price, price)), "captured before, refunded after");
    s.running.shutdown().await;
}

/// On PostgreSQL the per-process simulated gateway is used only when asked for, and `/readyz`
/// says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_process_gateway_on_postgres_only_when_allowed() {
    let b = Backing::new().await;
    let config = b.config();
    b.migrate(&config).await;
    for (allow, adapter) in [(false, "test-postgres"), (true, "test-local")] {
        let s = common::start_with(parq_server::Config { allow_local_test_gateway: allow, ..config.clone() })
            .await;
        let ready = production::until_warm(&s.http, &s.base).await;
        assert_eq!(ready["backends"]["gateway"]["adapter"], adapter, "{ready}");
        s.running.shutdown().await;
    }
}
