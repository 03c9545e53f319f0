//! Fault tests on a throwaway `redis-server` (never the shared one): paused mid-run, killed,
//! restarted empty — while clients keep holding through an engine with `FailoverLock` over the
//! store: `MemoryStore`, and `PgStore` on the running PostgreSQL (the production composition,
//! where PostgreSQL is the arbiter). Afterwards the store's data must show no overlap and no lost
//! hold (for PostgreSQL also checked with SQL on its own table), Redis must have been rebuilt
//! before it was trusted again, and a watcher must have seen every event.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use parq_core::jiff::SignedDuration;
use parq_core::memory::MemoryStore;
use parq_core::testing::Fixture;
use parq_core::{
    AdmissionLock, DynNotifier, DynReservationStore, Engine, Event, MergedNotifier, ReservationId,
    ReservationState, UserId, Window,
};
use parq_redis::{FailoverLock, Health, HealthConfig, NotifierConfig, RedisHealth, RedisLock, RedisNotifier};

/// A `redis-server` of our own on a spare port, without persistence.
struct Server {
    port: u16,
    child: Option<Child>,
    dir: std::path::PathBuf,
}

impl Server {
    fn start(port: u16) -> Server {
        let dir = std::env::temp_dir().join(format!("parq-redis-fault-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the fault tests");
        let server = Server { port, child: Some(child), dir };
        let client = parq_redis::redis::Client::open(server.url()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = client.get_connection()
                && parq_redis::redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return server;
            }
            assert!(Instant::now() < deadline, "redis-server on port {port} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap().success();
        assert!(ok, "kill -{sig} {pid}");
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A paused server must be continued to die cleanly.
            let _ = Command::new("kill").arg("-CONT").arg(c.id().to_string()).status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const PHASES: [&str; 5] = ["up", "paused", "continued", "killed", "restarted empty"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_go_on_through_a_paused_a_killed_and_an_emptied_redis() {
    through_faults(Arc::new(MemoryStore::new()) as Arc<DynReservationStore>, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_decides_through_a_paused_a_killed_and_an_emptied_redis() {
    use parq_postgres::PgStore;
    use parq_postgres::deadpool_postgres::{Manager, Pool};
    use parq_postgres::tokio_postgres::{Config, NoTls};

    let url = std::env::var("PARQ_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let config: Config = url.parse().expect("PARQ_TEST_PG_URL is a PostgreSQL URL");
    let schema = format!("parq_t_{}", uuid::Uuid::now_v7().simple());
    let pool = Pool::builder(Manager::new(config.clone(), NoTls)).max_size(16).build().unwrap();
    let store = PgStore::new(pool, schema.clone());
    store.migrate().await.unwrap_or_else(|e| {
        panic!("cannot reach PostgreSQL at {url} ({e}); set PARQ_TEST_PG_URL to the URL of a running server")
    });
    // Events are heard through Redis and through PostgreSQL's LISTEN/NOTIFY on the outbox.
    let listener = parq_postgres::PgNotifier::connect(config.clone(), store.channel()).await.unwrap();
    let held = through_faults(Arc::new(store) as Arc<DynReservationStore>, Some(Arc::new(listener))).await;

    // PostgreSQL's own rows: exactly the granted holds are live, and no two overlap on a spot.
    let (client, conn) = config.connect(NoTls).await.unwrap();
    tokio::spawn(conn);
    let live: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {schema}.reservations WHERE state IN ('held','pending_payment','confirmed','checked_in')"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live as usize, held, "the table holds exactly the granted holds");
    let overlaps: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM {schema}.reservations a JOIN {schema}.reservations b
                   ON a.spot_id = b.spot_id AND a.id < b.id AND a.during && b.during
                 WHERE a.state IN ('held','pending_payment','confirmed','checked_in')
                   AND b.state IN ('held','pending_payment','confirmed','checked_in')"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(overlaps, 0, "no two live reservations overlap in PostgreSQL's table");
    client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
}

/// Runs the scenario on `store` and returns how many holds were granted. With `outbox`, a second
/// notifier on the store's own event log, events must keep reaching the watcher while Redis is
/// killed.
async fn through_faults(store: Arc<DynReservationStore>, outbox: Option<Arc<DynNotifier>>) -> usize {
    let mut server = Server::start(spare_port());
    let pool = pool_on(&server.url(), 16).await;
    // A busy server's pool holds all its connections: open every slot, so that every one of
    // them dies with the server below.
    {
        let held: Vec<_> = futures_util::future::join_all((0..16).map(|_| pool.get())).await;
        assert!(held.iter().all(Result::is_ok), "16 connections to the throwaway redis");
        assert_eq!(pool.state().connections, 16);
    }
    let prefix = prefix();
    let f = Fixture::new(store).await;
    let lot = f.lot.id;

    let lock = RedisLock::new(pool.clone(), &prefix)
        .unwrap()
        .with_clock(f.clock.clone())
        .with_timeout(Duration::from_millis(300));
    let config = HealthConfig {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(300),
        slow: Duration::from_millis(250),
    };
    let health = RedisHealth::new(pool.clone(), &prefix, config).unwrap();
    let failover = Arc::new(FailoverLock::new(lock.clone(), health.clone()));
    let client = parq_redis::redis::Client::open(server.url()).unwrap();
    let notifier_config = NotifierConfig {
        ping_interval: Duration::from_millis(200),
        timeout: Duration::from_millis(300),
        buffer: 65536,
    };
    let notifier: Arc<DynNotifier> = Arc::new(
        RedisNotifier::new(pool.clone(), client, &prefix, notifier_config)
            .unwrap()
            .with_health(health.clone()),
    );
    let live_while_away = outbox.is_some();
    let notifier: Arc<DynNotifier> = match outbox {
        Some(outbox) => Arc::new(MergedNotifier::new(vec![notifier, outbox])),
        None => notifier,
    };
    let engine = Engine::builder(f.store.clone(), f.gateway.clone())
        .clock(f.clock.clone())
        .lock(failover.clone())
        .notifier(notifier)
        .build();
    let checker = health.spawn();

    // The recovery worker a deployment runs: rebuild from the store whenever Redis is cold.
    let states = Arc::new(Mutex::new(Vec::<Health>::new()));
    let rebuilds = Arc::new(Mutex::new(0usize));
    let recovery = {
        let (failover, store, states, rebuilds) =
            (failover.clone(), f.store.clone(), states.clone(), rebuilds.clone());
        let mut rx = health.subscribe();
        tokio::spawn(async move {
            loop {
                let h = *rx.borrow_and_update();
                {
                    let mut s = states.lock().unwrap();
                    if s.last() != Some(&h) {
                        s.push(h);
                    }
                }
                if h == Health::Cold {
                    match failover.rebuild_from(&*store, &[lot]).await {
                        Ok(()) => *rebuilds.lock().unwrap() += 1,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                    continue;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    until("redis to be warm at first", Duration::from_secs(10), || health.state() == Health::Warm).await;

    // A watcher from sequence 0, through the Redis notifier.
    let seen = Arc::new(Mutex::new(Vec::<Event>::new()));
    let watcher = {
        let mut stream = engine.watch(lot, 0).await.unwrap();
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(e) = stream.next().await {
                seen.lock().unwrap().push(e.expect("watch refills gaps itself"));
            }
        })
    };

    // Clients hold random spots and hours, without pause, whatever Redis does.
    let phase = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(Mutex::new(Vec::<(ReservationId, usize, Window, u8)>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..6u64)
        .map(|c| {
            let (engine, f, phase, stop, held, failures) =
                (engine.clone(), f.clone(), phase.clone(), stop.clone(), held.clone(), failures.clone());
            tokio::spawn(async move {
                let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ (c + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let (spot, h) = ((x % 4) as usize, ((x >> 8) % 3000) as i64);
                    let window = f.window(h, 1 + ((x >> 20) % 3) as i64);
                    let p = phase.load(Ordering::Relaxed);
                    match engine.hold(&f.named(UserId::new(), spot, window), None).await {
                        Ok(r) => held.lock().unwrap().push((r.id, spot, window, p)),
                        Err(e) if e.is_conflict() => {}
                        Err(e) => failures.lock().unwrap().push(format!("{e:?}")),
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();

    let run = Duration::from_millis(800);
    tokio::time::sleep(run).await;

    phase.store(1, Ordering::Relaxed);
    server.signal("STOP");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(health.state(), Health::Down, "a paused Redis reads as down");

    phase.store(2, Ordering::Relaxed);
    server.signal("CONT");
    until("redis to be warm after the pause", Duration::from_secs(10), || health.state() == Health::Warm)
        .await;
    tokio::time::sleep(run).await;

    phase.store(3, Ordering::Relaxed);
    let port = server.port;
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen_at_kill = seen.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(health.state(), Health::Down, "a killed Redis reads as down");
    if live_while_away {
        let seen_now = seen.lock().unwrap().len();
        assert!(
            seen_now > seen_at_kill,
            "events flow from the outbox while Redis is away ({seen_at_kill} → {seen_now})"
        );
    }

    let _server = Server::start(port);
    let restarted = Instant::now();
    phase.store(4, Ordering::Relaxed);
    until("redis to be warm after the restart", Duration::from_secs(10), || health.state() == Health::Warm)
        .await;
    // Every pooled connection died with the old server: the first failure makes the pool test
    // the others at checkout, so the rebuild that the next health check starts goes through
    // at once instead of finding one dead connection per attempt.
    let cold_for = restarted.elapsed();
    println!("warm again {cold_for:?} after the empty restart (health interval {:?})", config.interval);
    assert!(
        cold_for <= config.interval + config.timeout,
        "warm again only {cold_for:?} after the restart; one health interval is {:?} (+ {:?} for its check)",
        config.interval,
        config.timeout
    );
    tokio::time::sleep(run).await;

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    // The engine never failed a hold because of Redis.
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "holds failed: {failures:?}");
    let held = held.lock().unwrap().clone();
    let mut per_phase = [0usize; 5];
    for h in &held {
        per_phase[h.3 as usize] += 1;
    }
    for (i, n) in per_phase.iter().enumerate() {
        assert!(*n > 0, "clients kept holding while Redis was {}: {per_phase:?}", PHASES[i]);
    }

    // No hold lost: each is in the store, held.
    let now = engine.now();
    for (id, _, _, _) in &held {
        let r = f.store.get(*id).await.expect("a granted hold is in the store");
        assert_eq!(r.state, ReservationState::Held);
    }
    // No overlap, from the store's own data.
    let wide = Window::new(now - SignedDuration::from_hours(24), now + SignedDuration::from_hours(24 * 400))
        .unwrap();
    let live = f.store.live_in_lot(lot, &wide, now).await.unwrap();
    assert_eq!(live.len(), held.len(), "every live reservation is one of the granted holds");
    let mut by_spot: HashMap<_, Vec<Window>> = HashMap::new();
    for r in &live {
        by_spot.entry(r.spot).or_default().push(r.window);
    }
    for windows in by_spot.values_mut() {
        windows.sort_by_key(|w| w.start());
        for pair in windows.windows(2) {
            assert!(pair[0].end() <= pair[1].start(), "overlap on one spot: {} and {}", pair[0], pair[1]);
        }
    }

    // Rebuilt before trusted again: every return to warm after being down went through cold.
    let states = states.lock().unwrap().clone();
    let mut was_down = false;
    for s in &states {
        match s {
            Health::Down => was_down = true,
            Health::Cold => was_down = false,
            Health::Warm => assert!(!was_down, "warm straight after down: {states:?}"),
            Health::Slow => {}
        }
    }
    assert!(states.iter().filter(|s| **s == Health::Down).count() >= 2, "{states:?}");
    assert!(*rebuilds.lock().unwrap() >= 3, "a rebuild at start, after the pause and after the restart");
    // The rebuilt lock knows holds made while Redis was away.
    for away in [1u8, 3] {
        let (_, spot, window, _) = *held.iter().find(|h| h.3 == away).unwrap();
        let probe = claim(lot, &[f.spots[spot].id], window, ReservationId::new());
        let e = lock.claim(&probe).await.unwrap_err();
        assert!(
            e.is_conflict(),
            "a hold made while Redis was {} is in the rebuilt lock: {e:?}",
            PHASES[away as usize]
        );
    }

    eprintln!("holds per phase {per_phase:?}; health {states:?}; rebuilds {}", *rebuilds.lock().unwrap());

    // Every event reached the watcher, in order, once.
    let events = f.store.events(lot, 0, 1_000_000).await.unwrap();
    assert_eq!(events.len(), held.len());
    until("the watcher to see every event", Duration::from_secs(15), || {
        seen.lock().unwrap().len() >= events.len()
    })
    .await;
    let seen: Vec<u64> = seen.lock().unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seen, (1..=events.len() as u64).collect::<Vec<_>>());

    watcher.abort();
    recovery.abort();
    checker.abort();
    held.len()
}
