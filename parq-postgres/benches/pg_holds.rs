//! Holds and confirms per second through `PgStore`, next to `pgbench` running the minimal
//! correct hold and the minimal hold plus each statement ParQ adds, in the same run.
//!
//! `cargo bench -p parq-postgres --bench pg_holds` (PostgreSQL at `PARQ_TEST_PG_URL`, `pgbench`
//! on the `PATH`). For each client count the rows are measured back to back: the pgbench
//! variants on the reference tables of `benches/pg-minimal-hold/` (in a schema of their own),
//! then `PgStore` on a fresh store schema, each emptied before its run. Results go to standard
//! output as the table in `BENCHMARKS.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parq_core::jiff::{SignedDuration, Timestamp};
use parq_core::testing::sample_lot;
use parq_core::{
    Currency, EventKind, GeoPoint, HoldLimits, HoldRequest, HoldTarget, LotId, Money, Operator, OperatorId,
    PaymentRef, Reservation, ReservationId, ReservationState, ReservationStore, Spot, SpotAttributes, SpotId,
    StateSet, Update, UserId, Window,
};
use parq_postgres::PgStore;
use parq_postgres::deadpool_postgres::{Manager, Pool};
use parq_postgres::tokio_postgres::{self, NoTls};
use uuid::Uuid;

const LOTS: u64 = 64;
const SPOTS_PER_LOT: u64 = 64;
const SPOTS: u64 = LOTS * SPOTS_PER_LOT;
const SEEDED: u64 = 200_000;
const SECONDS: u64 = 5;
/// A prime coprime with `SPOTS` and `SEEDED`: `n * SPREAD` modulo either is a permutation.
const SPREAD: u64 = 7919;
const CLIENTS: [usize; 2] = [8, 32];

/// The reference: the spot's row lock, the insert under the exclusion constraint, commit.
const MINIMAL: &str = include_str!("pg-minimal-hold/minimal.sql");
const SCHEMA: &str = include_str!("pg-minimal-hold/schema.sql");
const EXTRAS: &str = include_str!("pg-minimal-hold/extras.sql");

/// The statements ParQ's write path adds to the minimal hold, one per variant (inserted before
/// `COMMIT`): how much each costs on its own.
const VARIANTS: [(&str, &str); 6] = [
    ("minimal hold", ""),
    (
        "+ idempotency record",
        "INSERT INTO idem (scope, key, fingerprint, res) VALUES ('bench', :s::text || '-' || :h::text, '\\x0102', :s) ON CONFLICT DO NOTHING;",
    ),
    ("+ fence", "UPDATE spots SET last_fence = last_fence + 1 WHERE id = :s;"),
    (
        "+ event row (queued)",
        "INSERT INTO event_queue (lot, at, kind, spot, during) VALUES (:s % 64, now(), 'held', :s, tstzrange(now(), now() + interval '1 hour'));",
    ),
    ("+ lot counter row", "UPDATE lots SET last_seq = last_seq + 1 WHERE id = :s % 64;"),
    ("+ pg_notify", "SELECT pg_notify('parq', 'x');"),
];

const OPERATOR: u64 = 1;
const LOT: u64 = 2;
const RESERVATION: u64 = 3;
const USER: u64 = 4;
const SPOT: u64 = 5;

/// Ids made from numbers, so pgbench can compute the same ones: `00000000-0000-000K-0000-<n>`.
fn id(kind: u64, n: u64) -> Uuid {
    Uuid::from_u128((u128::from(kind) << 64) | u128::from(n))
}

fn epoch() -> Timestamp {
    "2030-01-01T00:00:00Z".parse().unwrap()
}

fn window(hour: u64) -> Window {
    let start = epoch() + SignedDuration::from_hours(hour as i64);
    Window::new(start, start + SignedDuration::from_hours(1)).unwrap()
}

fn url() -> String {
    std::env::var("PARQ_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn payment() -> PaymentRef {
    PaymentRef {
        intent_id: "pi_bench_0000000000000000".into(),
        attempt: 1,
        amount: Money::new(200, Currency::EUR),
        captured: true,
        refunded: 0,
        refund_settled: 0,
    }
}

async fn pool(size: usize) -> Pool {
    let config: tokio_postgres::Config = url().parse().unwrap();
    Pool::builder(Manager::new(config, NoTls)).max_size(size).build().unwrap()
}

/// Empties the schema; with `seed`, inserts that many holds to confirm.
async fn reset(store: &PgStore, seed: bool) {
    let s = format!("\"{}\"", store.schema());
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "TRUNCATE {s}.sessions, {s}.events, {s}.idempotency, {s}.revocations, {s}.reservations; \
             UPDATE {s}.lots SET last_seq = 0; UPDATE {s}.spots SET last_fence = 0; \
             DO $$ BEGIN IF to_regclass('{s}.event_queue') IS NOT NULL THEN \
                 EXECUTE 'TRUNCATE {s}.event_queue'; END IF; END $$;"
        ))
        .await
        .unwrap();
    if seed {
        let uid = |kind: u64, expr: &str| {
            format!("('00000000-0000-000{kind}-0000-' || lpad(to_hex({expr}), 12, '0'))::uuid")
        };
        client
            .batch_execute(&format!(
                "INSERT INTO {s}.reservations (id, operator_id, lot_id, spot_id, user_id, during, state, fence, \
                     price_minor, price_currency, hold_expires_at, created_at) \
                 SELECT {rid}, '{op}', {lot}, {spot}, {usr}, \
                     tstzrange('2030-01-01T00:00:00Z'::timestamptz + make_interval(hours => k::int), \
                               '2030-01-01T00:00:00Z'::timestamptz + make_interval(hours => k::int + 1), '[)'), \
                     'held', 1, 200, 'EUR', '9000-01-01T00:00:00Z', now() \
                 FROM generate_series(1::bigint, {SEEDED}) AS k; \
                 UPDATE {s}.spots SET last_fence = 1;",
                rid = uid(RESERVATION, "k"),
                op = id(OPERATOR, 0),
                lot = uid(LOT, &format!("(k % {SPOTS}) / {SPOTS_PER_LOT}")),
                spot = uid(SPOT, &format!("k % {SPOTS}")),
                usr = uid(USER, "k"),
            ))
            .await
            .unwrap();
    }
    client.batch_execute(&format!("VACUUM ANALYZE {s}.reservations")).await.unwrap();
}

/// Runs `op` on `clients` tasks for the benchmark's duration: operations per second.
async fn run<F, Fut>(clients: usize, op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = parq_core::Result<()>> + Send,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(1));
    let started = Instant::now();
    let until = started + Duration::from_secs(SECONDS);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (op, counter) = (op.clone(), counter.clone());
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < until {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    if n > SEEDED {
                        break;
                    }
                    op(n).await.expect("benchmark operation");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// A pgbench script: the minimal hold with `extra` before its `COMMIT`.
fn variant(extra: &str) -> String {
    if extra.is_empty() {
        return MINIMAL.to_owned();
    }
    MINIMAL.replace("COMMIT;", &format!("{extra}\nCOMMIT;"))
}

/// Creates the reference tables in `schema`.
async fn reference_schema(pool: &Pool, schema: &str) {
    let client = pool.get().await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public; CREATE SCHEMA \"{schema}\"; \
             SET search_path TO \"{schema}\", public; {SCHEMA} {EXTRAS} RESET search_path;"
        ))
        .await
        .unwrap();
}

/// Empties the reference tables.
async fn reference_reset(pool: &Pool, schema: &str) {
    let s = format!("\"{schema}\"");
    let client = pool.get().await.unwrap();
    client
        .batch_execute(&format!(
            "TRUNCATE {s}.res, {s}.idem, {s}.event_queue; UPDATE {s}.lots SET last_seq = 0; \
             UPDATE {s}.spots SET last_fence = 0;"
        ))
        .await
        .unwrap();
    client.batch_execute(&format!("VACUUM ANALYZE {s}.res, {s}.spots, {s}.lots")).await.unwrap();
}

/// Runs `script` with pgbench (`-n -M prepared -c N -j min(N,2) -T 5`) on the tables of
/// `schema`: transactions per second.
fn pgbench(script: &str, clients: usize, schema: &str) -> f64 {
    let path = std::env::temp_dir().join(format!("parq_pgbench_{}.sql", std::process::id()));
    std::fs::write(&path, script).unwrap();
    let config: tokio_postgres::Config = url().parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".into(),
    };
    let out = std::process::Command::new("pgbench")
        .env("PGOPTIONS", format!("-c search_path=\"{schema}\",public"))
        .args(["-n", "-M", "prepared", "-h", &host])
        .args(["-p", &config.get_ports().first().copied().unwrap_or(5432).to_string()])
        .args(["-U", config.get_user().unwrap_or("postgres")])
        .args(["-c", &clients.to_string(), "-j", &clients.min(2).to_string(), "-T", &SECONDS.to_string()])
        .arg("-f")
        .arg(&path)
        .arg(config.get_dbname().unwrap_or("test"))
        .output()
        .expect("pgbench on the PATH");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "pgbench failed:\n{stdout}\n{stderr}\nscript:\n{script}");
    assert!(
        stdout.contains("number of failed transactions: 0") || !stdout.contains("failed transactions"),
        "pgbench had failures:\n{stdout}"
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench output:\n{stdout}"))
}

fn main() {
    // `cargo test --all-targets` runs this target too; only `cargo bench` measures.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let schema = format!("parq_bench_{}", Uuid::new_v4().simple());
    let reference = format!("parq_bench_ref_{}", Uuid::new_v4().simple());
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(bench(&schema, &reference))));
    rt.block_on(async {
        let client = pool(1).await.get().await.unwrap();
        for s in [&schema, &reference] {
            client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE")).await.unwrap();
        }
    });
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn bench(schema: &str, reference: &str) {
    let store = PgStore::new(pool(*CLIENTS.iter().max().unwrap()).await, schema);
    store.migrate().await.expect("PostgreSQL at PARQ_TEST_PG_URL");
    reference_schema(store.pool(), reference).await;
    let operator =
        Operator { id: OperatorId(id(OPERATOR, 0)), name: "Bench".into(), max_holds_per_user: None };
    store.put_operator(&operator).await.unwrap();
    for l in 0..LOTS {
        let (mut lot, _) = sample_lot(operator.id, &format!("Lot {l}"), GeoPoint { lat: 35.0, lon: 33.0 });
        lot.id = LotId(id(LOT, l));
        store.put_lot(&lot).await.unwrap();
        for s in 0..SPOTS_PER_LOT {
            let n = l * SPOTS_PER_LOT + s;
            let spot = Spot {
                id: SpotId(id(SPOT, n)),
                lot: lot.id,
                label: format!("S-{n}"),
                attributes: SpotAttributes::default(),
            };
            store.put_spot(&spot).await.unwrap();
        }
    }
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before: {}", load().trim());
    println!("| clients | what | per second | × minimal hold |");
    println!("|---:|---|---:|---:|");
    for &clients in &CLIENTS {
        let mut minimal = 0.0;
        for (name, extra) in VARIANTS {
            reference_reset(store.pool(), reference).await;
            let tps = pgbench(&variant(extra), clients, reference);
            if extra.is_empty() {
                minimal = tps;
            }
            println!("| {clients} | pgbench: {name} | {tps:.0} | {:.2} |", tps / minimal);
        }
        let store_for_holds = store.clone();
        reset(&store, false).await;
        let ours = run(clients, move |n| {
            let store = store_for_holds.clone();
            async move {
                // Spread consecutive operations over lots, as pgbench's random choice does.
                let spot = (n * SPREAD) % SPOTS;
                let now = Timestamp::now();
                let r = Reservation {
                    id: ReservationId(id(RESERVATION, n)),
                    operator: OperatorId(id(OPERATOR, 0)),
                    lot: LotId(id(LOT, spot / SPOTS_PER_LOT)),
                    spot: SpotId(id(SPOT, spot)),
                    user: UserId(id(USER, n)),
                    window: window(n),
                    state: ReservationState::Held,
                    fence: 0,
                    price: Money::new(200, Currency::EUR),
                    hold_expires_at: now + SignedDuration::from_mins(10),
                    created_at: now,
                    payment: None,
                };
                let target = HoldTarget::Spot(r.spot);
                let req = HoldRequest {
                    reservation: r,
                    target,
                    limits: HoldLimits::default(),
                    lock_fence: None,
                    idempotency: None,
                };
                store.hold(req, now).await.map(drop)
            }
        })
        .await;
        println!("| {clients} | `PgStore::hold` | {ours:.0} | {:.2} |", ours / minimal);

        reset(&store, true).await;
        let store_for_confirms = store.clone();
        let ours = run(clients, move |n| {
            let store = store_for_confirms.clone();
            async move {
                let u = Update {
                    id: ReservationId(id(RESERVATION, (n * SPREAD) % SEEDED + 1)),
                    expect: StateSet::HOLDS,
                    fence: 1,
                    to: ReservationState::Confirmed,
                    window: None,
                    price: None,
                    hold_expires_at: None,
                    payment: Some(payment()),
                    session: None,
                    bump_fence: false,
                    event: EventKind::Confirmed,
                    idempotency: None,
                    revoke: None,
                };
                store.update(u, Timestamp::now()).await.map(drop)
            }
        })
        .await;
        println!("| {clients} | `PgStore::update` (confirm) | {ours:.0} | {:.2} |", ours / minimal);
    }
    println!("load average after: {}", load().trim());
    store.pool().close();
}
