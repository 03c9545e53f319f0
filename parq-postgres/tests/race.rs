//! Races over real connections, checked afterwards with SQL on the store's own tables.

mod common;

use std::sync::Arc;
use std::time::SystemTime;

use common::TestStore;
use parq_core::testing::Fixture;
use parq_core::{ConflictReason, DynReservationStore, Error, HoldSpec, SpotChoice, SpotFilter, UserId};
use tokio::sync::{Barrier, Mutex};

/// The races open many connections; one at a time keeps them under the server's limit.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Opens `n` connections so the race starts with all of them ready.
async fn warm(store: &TestStore, n: usize) {
    let pool = store.store.pool();
    let held: Vec<_> = futures_util::future::join_all((0..n).map(|_| pool.get())).await;
    assert!(held.iter().all(Result::is_ok), "could not open {n} connections");
}

const LIVE: &str = "('held', 'pending_payment', 'confirmed', 'checked_in')";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_connections_hold_one_spot_and_one_wins() {
    let _serial = SERIAL.lock().await;
    const RACERS: usize = 64;
    let db = TestStore::new(RACERS).await;
    warm(&db, RACERS).await;
    let f = Fixture::new(db.clone() as Arc<DynReservationStore>).await;
    let window = f.window(2, 2);
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let (f, barrier) = (f.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                f.engine.hold(&f.named(UserId::new(), 0, window), None).await
            })
        })
        .collect();
    let (mut wins, mut conflicts) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(Error::Conflict { reason: ConflictReason::SpotTaken { spot } }) if spot == f.spots[0].id => {
                conflicts += 1
            }
            Err(e) => panic!("a racer failed with {e:?} instead of a conflict"),
        }
    }
    assert_eq!((wins, conflicts), (1, RACERS - 1));

    let sql = common::connect(db.schema()).await;
    let s = db.schema();
    let row = sql
        .query_one(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE state IN {LIVE}) FROM \"{s}\".reservations \
                 WHERE spot_id = $1"
            ),
            &[&f.spots[0].id.0],
        )
        .await
        .unwrap();
    let (all, live): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!((all, live), (1, 1), "losers left no rows; exactly one live reservation");
    let events: i64 = sql
        .query_one(&format!("SELECT count(*) FROM \"{s}\".events WHERE lot_id = $1"), &[&f.lot.id.0])
        .await
        .unwrap()
        .get(0);
    assert_eq!(events, 1, "one held event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_pooled_race_never_overlaps() {
    let _serial = SERIAL.lock().await;
    const CONNECTIONS: usize = 32;
    const TASKS: usize = 256;
    let db = TestStore::new(CONNECTIONS).await;
    warm(&db, CONNECTIONS).await;
    let f = Fixture::new(db.clone() as Arc<DynReservationStore>).await;
    let barrier = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (f, barrier) = (f.clone(), barrier.clone());
            // Four spots, windows that overlap in many ways.
            let window = f.window(1 + (i % 5) as i64, 1 + (i % 3) as i64);
            tokio::spawn(async move {
                barrier.wait().await;
                let spec = HoldSpec {
                    user: UserId::new(),
                    lot: f.lot.id,
                    choice: SpotChoice::Any { filter: SpotFilter::default() },
                    window,
                };
                f.engine.hold(&spec, None).await
            })
        })
        .collect();
    let (mut wins, mut refused) = (0i64, Vec::new());
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(Error::Conflict { reason: ConflictReason::NoFreeSpot }) => {
                refused.push(f.window(1 + (i % 5) as i64, 1 + (i % 3) as i64))
            }
            Err(e) => panic!("a racer failed with {e:?} instead of a conflict"),
        }
    }
    assert!(wins >= 4, "at least every spot was taken once ({wins} wins)");

    let sql = common::connect(db.schema()).await;
    let s = db.schema();
    let overlaps: i64 = sql
        .query_one(
            &format!(
                "SELECT count(*) FROM \"{s}\".reservations a JOIN \"{s}\".reservations b \
                 ON a.spot_id = b.spot_id AND a.id < b.id AND a.during && b.during \
                 WHERE a.state IN {LIVE} AND b.state IN {LIVE}"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(overlaps, 0, "no two live reservations of a spot overlap");
    let live: i64 = sql
        .query_one(&format!("SELECT count(*) FROM \"{s}\".reservations WHERE state IN {LIVE}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, wins, "every win, and nothing else, is stored");
    // Nothing is cancelled and the clock stands still, so a request turned away must still find
    // every spot taken: a pooled hold never gives up while a spot is free for it.
    let (starts, ends): (Vec<SystemTime>, Vec<SystemTime>) = refused
        .iter()
        .map(|w| (SystemTime::try_from(w.start()).unwrap(), SystemTime::try_from(w.end()).unwrap()))
        .unzip();
    let spots: Vec<uuid::Uuid> = f.spots.iter().map(|s| s.id.0).collect();
    let free_but_refused: i64 = sql
        .query_one(
            &format!(
                "SELECT count(*) FROM unnest($1::timestamptz[], $2::timestamptz[]) AS w(s, e), \
                 unnest($3::uuid[]) AS spot(id) \
                 WHERE NOT EXISTS (SELECT 1 FROM \"{s}\".reservations r WHERE r.spot_id = spot.id \
                 AND r.state IN {LIVE} AND r.during && tstzrange(w.s, w.e, '[)'))"
            ),
            &[&starts, &ends, &spots],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(free_but_refused, 0, "a refused request had a free spot");
}
