//! Group commit: writes queued together share one transaction, each answered on its own; and
//! every acknowledged write is there for the next process that opens the file.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Place, TestDir};
use parq_core::{ConflictReason, Error, IdempotencyClaim, ReservationStore};
use parq_sqlite::rusqlite::Connection;
use parq_sqlite::{SqliteOptions, SqliteStore};

fn claim(key: &str, fingerprint: u8) -> IdempotencyClaim {
    IdempotencyClaim { scope: "user:g".into(), key: key.into(), fingerprint: [fingerprint; 32] }
}

/// Waits until at least `n` writes are queued behind the blocked writer.
async fn queued(store: &SqliteStore, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.queued_writes() < n {
        assert!(Instant::now() < deadline, "only {} of {n} writes were queued", store.queued_writes());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// While another connection holds the file's write lock, holds pile up in the queue; when it
/// lets go they are carried out in one transaction. A hold that conflicts with an earlier one
/// of the same batch fails alone, a repeated idempotency key in the batch replays, a refused
/// hold's key stays free, and everything acknowledged is in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_answers_each_write_on_its_own() {
    let dir = TestDir::new();
    let store =
        SqliteStore::open_with(dir.db(), SqliteOptions::default().busy_timeout(Duration::from_secs(120)))
            .expect("open");
    let p = Place::new(&store).await;
    let before = store.writer_stats();

    let blocker = Connection::open(dir.db()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    // The writer takes the first write and waits for the lock; the others queue behind it.
    let store = Arc::new(store);
    let send = |req: parq_core::HoldRequest| {
        let store = store.clone();
        tokio::spawn(async move { store.hold(req, common::now()).await })
    };
    let first = send(p.request(3, 20, 1));
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Twenty distinct holds on spots 0-2, hours 1..=7 (no two collide)...
    let mut plain = Vec::new();
    for k in 0..20 {
        plain.push(send(p.request(k % 3, 1 + (k / 3) as i64, 1)));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    // ...a hold of the first one's window (spot 0, hour 1), carrying a key...
    let mut conflicting = p.request(0, 1, 1);
    conflicting.idempotency = Some(claim("refused", 1));
    let conflicting = send(conflicting);
    // ...and the same keyed request twice.
    let mut keyed = p.request(1, 30, 1);
    keyed.idempotency = Some(claim("k", 7));
    let keyed_id = keyed.reservation.id;
    let mut again = keyed.clone();
    again.reservation.id = parq_core::ReservationId::new();
    let keyed = send(keyed);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = send(again);
    // 23 are queued unless the writer took one of them along with the first; give any
    // straggler a moment to join.
    queued(&store, 22).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    blocker.execute_batch("COMMIT").unwrap();

    let first = first.await.unwrap().expect("the write taken before the others");
    let mut acknowledged = vec![first.reservation.clone()];
    for t in plain {
        acknowledged.push(t.await.unwrap().expect("a hold that collides with nothing").reservation);
    }
    match conflicting.await.unwrap() {
        Err(Error::Conflict { reason: ConflictReason::SpotTaken { spot } }) => {
            assert_eq!(spot, p.spots[0].id)
        }
        other => panic!("expected the overlapping hold to be refused, got {other:?}"),
    }
    let keyed = keyed.await.unwrap().expect("the keyed hold");
    let again = again.await.unwrap().expect("the repeated key");
    assert!(!keyed.replayed && keyed.reservation.id == keyed_id);
    assert!(again.replayed && again.reservation == keyed.reservation, "replayed within the batch");
    acknowledged.push(keyed.reservation);

    let stats = store.writer_stats();
    let transactions = stats.transactions - before.transactions;
    assert!(transactions <= 3, "24 writes in {transactions} transactions");
    assert!(stats.largest_batch >= 20, "the queued writes shared a transaction: {stats:?}");
    assert_eq!(stats.writes - before.writes, 24);

    // The refused hold wrote nothing and left its key free.
    let mut retry = p.request(2, 40, 1);
    retry.idempotency = Some(claim("refused", 1));
    assert!(!store.hold(retry, common::now()).await.unwrap().replayed);

    // Events: one per successful hold (22) and the retry, numbered without gaps.
    let events = store.events(p.lot.id, 0, 1000).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=23).collect::<Vec<u64>>());
    let store = Arc::into_inner(store).expect("the tasks are done");
    drop(store);

    let reopened = SqliteStore::open(dir.db()).expect("reopen");
    for r in &acknowledged {
        assert_eq!(&reopened.get(r.id).await.unwrap(), r, "every acknowledged hold is in the file");
    }
}

/// 64 tasks hold concurrently; after the store is closed, a new one on the file has every
/// hold that was acknowledged, as it was acknowledged, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reopened_store_has_every_acknowledged_hold() {
    let dir = TestDir::new();
    let store = Arc::new(SqliteStore::open(dir.db()).expect("open"));
    let p = Place::new(&*store).await;
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let (store, p) = (store.clone(), p.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for k in 0..10 {
                    // Task t takes spot t % 4 at hours no other task of that spot uses.
                    let h = ((t / 4) * 10 + k) as i64;
                    let w = store.hold(p.request(t % 4, h, 1), common::now()).await.expect("no collision");
                    acked.push(w.reservation);
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let stats = store.writer_stats();
    assert!(stats.transactions < stats.writes, "some holds shared a transaction: {stats:?}");
    drop(Arc::into_inner(store).expect("the tasks are done"));

    let reopened = SqliteStore::open(dir.db()).expect("reopen");
    for r in &acked {
        assert_eq!(&reopened.get(r.id).await.unwrap(), r);
    }
    let c = Connection::open(dir.db()).unwrap();
    let stored: i64 = c.query_row("SELECT count(*) FROM reservations", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, 640);
    let fences: HashSet<(String, i64)> = c
        .prepare("SELECT spot_id, fence FROM reservations")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(fences.len(), 640, "fencing numbers are unique per spot");
    assert_eq!(reopened.last_seq(p.lot.id).await.unwrap(), 640);
}

/// A write that finds the database full fails alone with `Unavailable` and writes nothing; the
/// writer goes on answering, and everything acknowledged before is in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_database_refuses_writes_and_keeps_what_it_acknowledged() {
    let dir = TestDir::new();
    let store =
        Arc::new(SqliteStore::open_with(dir.db(), SqliteOptions::default().max_pages(60)).expect("open"));
    let p = Place::new(&*store).await;
    let mut acked = Vec::new();
    let mut full = None;
    for h in 0..100_000 {
        match store.hold(p.request((h % 4) as usize, h, 1), common::now()).await {
            Ok(w) => acked.push(w.reservation),
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    match full {
        Some(Error::Unavailable { retryable: false, message, .. }) => {
            assert!(message.contains("full"), "{message}")
        }
        other => panic!("expected the database to fill up, got {other:?}"),
    }
    assert!(acked.len() > 10, "some holds fit: {}", acked.len());
    // Concurrent writes into the full file: each is refused on its own, none hangs.
    let tasks: Vec<_> = (0..16)
        .map(|k| {
            let (store, p) = (store.clone(), p.clone());
            tokio::spawn(
                async move { store.hold(p.request(k % 4, 200_000 + k as i64, 1), common::now()).await },
            )
        })
        .collect();
    for t in tasks {
        match t.await.unwrap() {
            Err(Error::Unavailable { retryable: false, .. }) => {}
            Ok(w) => acked.push(w.reservation),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(store.get(acked[0].id).await.unwrap(), acked[0], "reads go on");
    drop(Arc::into_inner(store).expect("the tasks are done"));

    let reopened = SqliteStore::open(dir.db()).expect("reopen without the limit");
    for r in &acked {
        assert_eq!(&reopened.get(r.id).await.unwrap(), r);
    }
    let c = Connection::open(dir.db()).unwrap();
    let (rows, events, max_seq): (i64, i64, i64) = c
        .query_row(
            "SELECT (SELECT count(*) FROM reservations), (SELECT count(*) FROM events), (SELECT max(seq) FROM events)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (rows, events, max_seq),
        (acked.len() as i64, acked.len() as i64, acked.len() as i64),
        "nothing refused was written"
    );
    reopened.hold(p.request(0, 300_000, 1), common::now()).await.expect("room again without the limit");
}
