//! Backends terminated in the middle of a write leave nothing behind, and a retry with the same
//! idempotency key finishes the write once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestStore;
use futures_util::StreamExt;
use parq_core::testing::Fixture;
use parq_core::{DynReservationStore, Engine, EventKind, UserId};
use parq_postgres::PgNotifier;
use parq_postgres::tokio_postgres::Client;

/// The pid of the store's backend that waits on a lock, once it does.
async fn waiting_backend(sql: &Client, app: &str) -> i32 {
    for _ in 0..200 {
        let row = sql
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock' \
                 AND pid <> pg_backend_pid()",
                &[&app],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the write never blocked");
}

async fn count(sql: &Client, query: &str) -> i64 {
    sql.query_one(query, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_hold_leaves_nothing_and_the_retry_lands_once() {
    let db = TestStore::new(4).await;
    let f = Fixture::new(db.clone() as Arc<DynReservationStore>).await;
    let s = db.schema().to_owned();
    // The checking connection has another application name, so it is never the victim.
    let blocker = common::connect("parq_fault_blocker").await;
    let spec = f.named(UserId::new(), 0, f.window(2, 2));

    // Lock the lot's row: the hold claims its idempotency key, locks the spot, inserts the
    // reservation and then waits on the lot (its foreign key).
    blocker.batch_execute("BEGIN").await.unwrap();
    blocker
        .execute(&format!("SELECT 1 FROM \"{s}\".lots WHERE id = $1 FOR UPDATE"), &[&f.lot.id.0])
        .await
        .unwrap();
    let engine = f.engine.clone();
    let first = {
        let spec = spec.clone();
        tokio::spawn(async move { engine.hold(&spec, Some("retry-me")).await })
    };
    let victim = waiting_backend(&blocker, &s).await;
    let killed: bool = blocker.query_one("SELECT pg_terminate_backend($1)", &[&victim]).await.unwrap().get(0);
    assert!(killed);
    let err = first.await.unwrap().expect_err("the hold's backend was terminated");
    assert!(err.is_retryable(), "a lost connection is retryable: {err:?}");
    blocker.batch_execute("ROLLBACK").await.unwrap();

    let tables = ["reservations", "events", "idempotency"];
    for t in tables {
        assert_eq!(count(&blocker, &format!("SELECT count(*) FROM \"{s}\".{t}")).await, 0, "{t} is empty");
    }
    let counters = format!(
        "SELECT (SELECT last_seq FROM \"{s}\".lots) + (SELECT sum(last_fence) FROM \"{s}\".spots)::bigint"
    );
    assert_eq!(count(&blocker, &counters).await, 0, "no sequence number or fence was spent");

    // The caller retries with the same key: the hold happens once, and again replays it.
    let r = f.engine.hold(&spec, Some("retry-me")).await.expect("the retry succeeds");
    let again = f.engine.hold(&spec, Some("retry-me")).await.expect("a second retry replays");
    assert_eq!(again.id, r.id);
    for t in tables {
        assert_eq!(count(&blocker, &format!("SELECT count(*) FROM \"{s}\".{t}")).await, 1, "one row in {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_confirm_leaves_the_hold_and_the_retry_confirms_once() {
    let db = TestStore::new(4).await;
    let f = Fixture::new(db.clone() as Arc<DynReservationStore>).await;
    let s = db.schema().to_owned();
    let blocker = common::connect("parq_fault_blocker").await;
    let r = f.engine.hold(&f.named(UserId::new(), 1, f.window(3, 1)), None).await.unwrap();
    let checkout = f.engine.checkout(r.id, r.user).await.unwrap();
    let paid = f.gateway.pay(&checkout.intent.id, true).unwrap();
    let webhook = f.gateway.sign(&paid, f.clock.now_ts());

    // Lock the spot's row: the confirm claims the webhook's id and then waits for the spot.
    blocker.batch_execute("BEGIN").await.unwrap();
    blocker
        .execute(&format!("SELECT 1 FROM \"{s}\".spots WHERE id = $1 FOR UPDATE"), &[&r.spot.0])
        .await
        .unwrap();
    let engine = f.engine.clone();
    let first = {
        let webhook = webhook.clone();
        tokio::spawn(async move { engine.handle_webhook(&webhook.0, &webhook.1).await })
    };
    let victim = waiting_backend(&blocker, &s).await;
    blocker.execute("SELECT pg_terminate_backend($1)", &[&victim]).await.unwrap();
    let err = first.await.unwrap().expect_err("the confirm's backend was terminated");
    assert!(err.is_retryable(), "a lost connection is retryable: {err:?}");
    blocker.batch_execute("ROLLBACK").await.unwrap();

    let state: String = blocker
        .query_one(&format!("SELECT state FROM \"{s}\".reservations WHERE id = $1"), &[&r.id.0])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "pending_payment", "the interrupted confirm changed nothing");

    // The gateway redelivers the webhook: it confirms once, and a third delivery is a replay.
    f.engine.handle_webhook(&webhook.0, &webhook.1).await.expect("the redelivery confirms");
    f.engine.handle_webhook(&webhook.0, &webhook.1).await.expect("a duplicate is accepted");
    let confirmed: i64 =
        count(&blocker, &format!("SELECT count(*) FROM \"{s}\".events WHERE kind = 'confirmed'")).await;
    assert_eq!(confirmed, 1, "one confirmation event");
    assert_eq!(f.store.get(r.id).await.unwrap().state, parq_core::ReservationState::Confirmed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_stopped_before_numbering_keeps_its_write_and_the_relay_numbers_its_event() {
    let db = TestStore::new(4).await;
    let f = Fixture::new(db.clone() as Arc<DynReservationStore>).await;
    let s = db.schema().to_owned();
    let blocker = common::connect("parq_fault_blocker").await;
    let listener_app = format!("{s}_listen");
    let notifier = PgNotifier::connect(common::config(&listener_app), db.store.channel()).await.unwrap();
    let mut live = parq_core::Notifier::subscribe(&notifier, Some(f.lot.id)).await.unwrap();

    // The hold commits; its events are numbered next, under the lot's row: hold that row.
    blocker.batch_execute("BEGIN").await.unwrap();
    let engine = f.engine.clone();
    let spec = f.named(UserId::new(), 0, f.window(2, 1));
    // The foreign key of the insert only shares the lot's row; the counter update needs it.
    blocker
        .execute(&format!("SELECT 1 FROM \"{s}\".lots WHERE id = $1 FOR NO KEY UPDATE"), &[&f.lot.id.0])
        .await
        .unwrap();
    let first = tokio::spawn(async move { engine.hold(&spec, None).await });
    let victim = waiting_backend(&blocker, &s).await;
    blocker.execute("SELECT pg_terminate_backend($1)", &[&victim]).await.unwrap();
    let r = first.await.unwrap().expect("the hold committed before the numbering was cut off");
    blocker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(f.store.get(r.id).await.unwrap().id, r.id, "the hold is stored");
    let q = format!("SELECT count(*) FROM \"{s}\".event_queue");
    assert_eq!(count(&blocker, &q).await, 1, "its event waits in the queue");
    assert!(f.store.events(f.lot.id, 0, 10).await.unwrap().is_empty(), "unnumbered, so not yet readable");

    // The relay takes what was queued before its previous pass, numbers and announces it.
    assert_eq!(db.store.relay(None).await.unwrap(), 0, "a first pass leaves fresh events to their writers");
    assert_eq!(db.store.relay(None).await.unwrap(), 1);
    let events = f.store.events(f.lot.id, 0, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| (e.seq, e.kind, e.reservation)).collect::<Vec<_>>(),
        [(1, EventKind::Held, r.id)]
    );
    assert_eq!(count(&blocker, &q).await, 0, "the queue is empty");
    let heard = tokio::time::timeout(Duration::from_secs(10), live.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((heard.seq, heard.reservation), (1, r.id), "listeners hear the relayed event");

    // The next write of the lot continues the sequence.
    let next = f.engine.hold(&f.named(UserId::new(), 1, f.window(2, 1)), None).await.unwrap();
    let events = f.store.events(f.lot.id, 1, 10).await.unwrap();
    assert_eq!(events.iter().map(|e| (e.seq, e.reservation)).collect::<Vec<_>>(), [(2, next.id)]);
}

async fn next(w: &mut parq_core::EventStream) -> parq_core::Result<parq_core::Event> {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("an event in time")
        .expect("an open stream")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifier_reconnects_and_watch_misses_nothing() {
    let db = TestStore::new(4).await;
    let listener_app = format!("{}_listen", db.schema());
    let notifier = PgNotifier::connect(common::config(&listener_app), db.store.channel()).await.unwrap();
    let f = Fixture::new(db.clone() as Arc<DynReservationStore>).await;
    let engine = Engine::builder(db.clone() as Arc<DynReservationStore>, f.gateway.clone())
        .clock(f.clock.clone())
        .notifier(Arc::new(notifier))
        .build();
    let mut watch = engine.watch(f.lot.id, 0).await.unwrap();
    engine.hold(&f.named(UserId::new(), 0, f.window(1, 1)), None).await.unwrap();
    let e = next(&mut watch).await.unwrap();
    assert_eq!((e.seq, e.kind), (1, EventKind::Held));

    let admin = common::connect("parq_fault_admin").await;
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&listener_app],
        )
        .await
        .unwrap();
    // Events committed while the listener is away still arrive, in order, once.
    engine.hold(&f.named(UserId::new(), 1, f.window(1, 1)), None).await.unwrap();
    engine.hold(&f.named(UserId::new(), 2, f.window(1, 1)), None).await.unwrap();
    assert_eq!(next(&mut watch).await.unwrap().seq, 2);
    assert_eq!(next(&mut watch).await.unwrap().seq, 3);
    // And after the reconnection, live delivery resumes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    engine.hold(&f.named(UserId::new(), 3, f.window(1, 1)), None).await.unwrap();
    assert_eq!(next(&mut watch).await.unwrap().seq, 4);
}
