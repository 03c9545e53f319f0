//! Several operating-system processes on one database file. Each test re-runs this test
//! executable as its children, telling them with `PARQ_SQLITE_CHILD` what to do; a child
//! reports on its standard output, one line per fact, and the parent then checks the file's
//! own data with plain SQL.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Place, TestDir};
use parq_core::{Error, ReservationStore};
use parq_sqlite::SqliteStore;
use parq_sqlite::rusqlite::Connection;

const CHILD: &str = "PARQ_SQLITE_CHILD";

/// What a child is told, through its environment.
struct Orders {
    db: PathBuf,
    place: Place,
    /// Which child this is (0, 1).
    index: usize,
    /// When to start, in milliseconds since the Unix epoch, so the children race.
    start_at: u64,
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Starts this executable running only `test`, as a child with `role`.
fn spawn(test: &str, role: &str, db: &Path, place: &Place, index: usize, start_at: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, role)
        .env("PARQ_SQLITE_DB", db)
        .env("PARQ_SQLITE_PLACE", serde_json::to_string(&(&place.lot, &place.spots)).unwrap())
        .env("PARQ_SQLITE_INDEX", index.to_string())
        .env("PARQ_SQLITE_START_AT", start_at.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-run the test executable")
}

fn orders() -> Orders {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set for a child"));
    let (lot, spots) = serde_json::from_str(&var("PARQ_SQLITE_PLACE")).unwrap();
    Orders {
        db: var("PARQ_SQLITE_DB").into(),
        place: Place { lot, spots },
        index: var("PARQ_SQLITE_INDEX").parse().unwrap(),
        start_at: var("PARQ_SQLITE_START_AT").parse().unwrap(),
    }
}

async fn wait_until(start_at: u64) {
    let now = unix_ms();
    if start_at > now {
        tokio::time::sleep(Duration::from_millis(start_at - now)).await;
    }
}

/// What follows `prefix` in a line a child printed (the test harness may have printed the
/// test's name before it on the same line).
fn after<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.find(prefix).map(|i| &line[i + prefix.len()..])
}

/// The lines of what a child printed, to its end.
fn lines(out: impl BufRead) -> Vec<String> {
    out.lines().map(Result::unwrap).collect()
}

fn query_strings(c: &Connection, sql: &str, p: impl parq_sqlite::rusqlite::Params) -> Vec<String> {
    c.prepare(sql).unwrap().query_map(p, |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

const RACERS: usize = 32;
const OWN_HOLDS: usize = 50;

/// The child of the race: 32 tasks hold overlapping windows of spot 0, while 50 holds of its
/// own go to spot 1. Prints `WON <id>` for each race it won, `ACK <id>` for each own hold.
async fn race_child() {
    let o = orders();
    let store = Arc::new(SqliteStore::open(&o.db).expect("the child opens the file"));
    let p = Arc::new(o.place);
    wait_until(o.start_at).await;
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let (store, p) = (store.clone(), p.clone());
            tokio::spawn(async move { store.hold(p.request(0, 1 + (i % 3) as i64, 3), common::now()).await })
        })
        .collect();
    let own: Vec<_> = (0..OWN_HOLDS)
        .map(|i| {
            let (store, p) = (store.clone(), p.clone());
            let h = (o.index * 1000 + i) as i64;
            tokio::spawn(async move { store.hold(p.request(1, h, 1), common::now()).await })
        })
        .collect();
    for t in racers {
        match t.await.unwrap() {
            Ok(w) => println!("WON {}", w.reservation.id),
            Err(Error::Conflict { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    for t in own {
        println!("ACK {}", t.await.unwrap().expect("an own hold collides with nothing").reservation.id);
    }
}

/// Two processes race for one spot through their own stores on one file: exactly one hold
/// wins across both, every other hold of theirs is stored, and the file's events and fencing
/// numbers are one sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_race_for_one_spot() {
    if std::env::var(CHILD).as_deref() == Ok("race") {
        return race_child().await;
    }
    let dir = TestDir::new();
    let store = SqliteStore::open(dir.db()).expect("open");
    let p = Place::new(&store).await;
    drop(store);

    let start_at = unix_ms() + 1500;
    let mut children: Vec<Child> = (0..2)
        .map(|i| spawn("two_processes_race_for_one_spot", "race", &dir.db(), &p, i, start_at))
        .collect();
    let mut won = Vec::new();
    let mut acked = Vec::new();
    for child in &mut children {
        let printed = lines(BufReader::new(child.stdout.take().unwrap()));
        assert!(child.wait().unwrap().success(), "a child failed");
        won.extend(printed.iter().filter_map(|l| after(l, "WON ")).map(str::to_owned));
        acked.extend(printed.iter().filter_map(|l| after(l, "ACK ")).map(str::to_owned));
    }
    assert_eq!(won.len(), 1, "one winner across both processes: {won:?}");
    assert_eq!(acked.len(), 2 * OWN_HOLDS);

    let c = Connection::open(dir.db()).unwrap();
    let spot = |i: usize| p.spots[i].id.0.hyphenated().to_string();
    let live_on_0 = query_strings(
        &c,
        "SELECT id FROM reservations WHERE spot_id = ?1 \
         AND state IN ('held', 'pending_payment', 'confirmed', 'checked_in')",
        [spot(0)],
    );
    assert_eq!(live_on_0, won, "the file holds the winner and only it");
    let on_1: HashSet<String> =
        query_strings(&c, "SELECT id FROM reservations WHERE spot_id = ?1", [spot(1)]).into_iter().collect();
    assert_eq!(on_1, acked.iter().cloned().collect::<HashSet<_>>(), "every acknowledged hold is stored");
    let (n, min, max): (i64, i64, i64) = c
        .query_row(
            "SELECT count(*), min(seq), max(seq) FROM events WHERE lot_id = ?1",
            [p.lot.id.0.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((n, min, max), (101, 1, 101), "one gapless event sequence for the lot");
    let (fences, distinct, top, last): (i64, i64, i64, i64) = c
        .query_row(
            "SELECT count(fence), count(DISTINCT fence), max(fence), \
             (SELECT last_fence FROM spots WHERE id = ?1) FROM reservations WHERE spot_id = ?1",
            [spot(1)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((fences, distinct), (100, 100), "fencing numbers are unique on the spot");
    assert_eq!(top, last, "the spot's counter is its largest fence");
}

/// The child of the crash: holds distinct windows in a loop from 16 tasks, printing `ACK <id>`
/// for each acknowledged one, until it is killed.
async fn crash_child() {
    let o = orders();
    let store = Arc::new(SqliteStore::open(&o.db).expect("the child opens the file"));
    let p = Arc::new(o.place);
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let (store, p) = (store.clone(), p.clone());
            tokio::spawn(async move {
                // Bounded: the parent kills the child long before the end.
                for k in 0..5_000 {
                    let h = (t * 5_000 + k) as i64;
                    let w = store.hold(p.request(t % 4, h, 1), common::now()).await.expect("no collision");
                    println!("ACK {}", w.reservation.id);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// A process killed (SIGKILL) while it holds loses none of the holds it had acknowledged: the
/// next store on the file finds each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_process_loses_no_acknowledged_hold() {
    if std::env::var(CHILD).as_deref() == Ok("crash") {
        return crash_child().await;
    }
    let dir = TestDir::new();
    let store = SqliteStore::open(dir.db()).expect("open");
    let p = Place::new(&store).await;
    drop(store);

    let mut child = spawn("a_killed_process_loses_no_acknowledged_hold", "crash", &dir.db(), &p, 0, 0);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut line = String::new();
    while acked.len() < 300 {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child stopped early");
        if let Some(id) = after(line.trim_end(), "ACK ") {
            acked.push(id.to_owned());
        }
    }
    child.kill().expect("SIGKILL the child");
    child.wait().unwrap();
    // What it printed before it died is still in the pipe.
    acked.extend(lines(out).iter().filter_map(|l| after(l, "ACK ")).map(str::to_owned));

    let store = SqliteStore::open(dir.db()).expect("open after the crash");
    for id in &acked {
        let id: parq_core::ReservationId = id.parse().unwrap();
        assert_eq!(
            store.get(id).await.unwrap().state,
            parq_core::ReservationState::Held,
            "acknowledged {id}"
        );
    }
    let c = Connection::open(dir.db()).unwrap();
    let stored: i64 = c.query_row("SELECT count(*) FROM reservations", [], |r| r.get(0)).unwrap();
    assert!(stored as usize >= acked.len());
    let (n, max): (i64, i64) =
        c.query_row("SELECT count(*), max(seq) FROM events", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!((n, max), (stored, stored), "one event per stored hold, without gaps");
}
