//! Holds and confirms per second through `PgStore`, next to `pgbench` running the same SQL.
//!
//! `cargo bench -p parq-postgres --bench pg_holds` (PostgreSQL at `PARQ_TEST_PG_URL`, `pgbench`
//! on the `PATH`). For each client count, both sides run against the same schema, emptied
//! before each run; the pgbench scripts are generated from the store's own statement texts,
//! with the parameters replaced by pgbench variables. Results go to standard output as the
//! table in `BENCHMARKS.md`.

use std::collections::HashMap;
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
const CLIENTS: [usize; 3] = [1, 8, 32];

const OPERATOR: u64 = 1;
const LOT: u64 = 2;
const RESERVATION: u64 = 3;
const USER: u64 = 4;
const SPOT: u64 = 5;

/// Ids made from numbers, so pgbench can compute the same ones: `00000000-0000-000K-0000-<n>`.
fn id(kind: u64, n: u64) -> Uuid {
    Uuid::from_u128((u128::from(kind) << 64) | u128::from(n))
}

/// The same id, as SQL over a pgbench variable.
fn id_sql(kind: u64, var: &str) -> String {
    format!("('00000000-0000-000{kind}-0000-' || lpad(to_hex(:{var}::bigint), 12, '0'))::uuid")
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

/// Replaces `$n` parameters with SQL expressions.
fn bind(sql: &str, params: &HashMap<usize, String>) -> String {
    let mut out = String::with_capacity(sql.len() * 2);
    let mut chars = sql.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) {
            let mut end = i + 1;
            while let Some((j, d)) = chars.peek().copied() {
                if !d.is_ascii_digit() {
                    break;
                }
                end = j + 1;
                chars.next();
            }
            let n: usize = sql[i + 1..end].parse().unwrap();
            out.push_str(params.get(&n).unwrap_or_else(|| panic!("no value for ${n}")));
        } else {
            out.push(c);
        }
    }
    out
}

/// An SQL string literal for a pgbench script, where `:name` would be read as a variable: a
/// colon before a letter gets a space (JSON allows it; `jsonb` drops it).
fn literal(s: &str) -> String {
    let mut out = String::from("'");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => out.push_str("''"),
            ':' if chars.peek().is_some_and(|d| d.is_ascii_alphabetic() || *d == '_') => out.push_str(": "),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The pgbench scripts: the statements of `PgStore::hold` (a named spot, no idempotency key,
/// no limits) and of `PgStore::update` (held → confirmed), in the same transactions.
fn scripts(store: &PgStore) -> (String, String) {
    let st = |name| store.statement(name).unwrap();
    let chan = literal(store.channel());
    let start = "('2030-01-01T00:00:00Z'::timestamptz + make_interval(hours => :hour::int))".to_string();
    let end = "('2030-01-01T00:00:00Z'::timestamptz + make_interval(hours => :hour::int + 1))".to_string();
    let sample = |kind, state| {
        let r = Reservation {
            id: ReservationId(id(RESERVATION, 1)),
            operator: OperatorId(id(OPERATOR, 0)),
            lot: LotId(id(LOT, 1)),
            spot: SpotId(id(SPOT, 1)),
            user: UserId(id(USER, 1)),
            window: window(1),
            state,
            fence: 1,
            price: Money::new(200, Currency::EUR),
            hold_expires_at: epoch(),
            created_at: epoch(),
            payment: None,
        };
        literal(&serde_json::to_string(&parq_core::Event::of(&r, kind, 0, epoch())).unwrap())
    };
    let (rid, lot, spot, usr) =
        (id_sql(RESERVATION, "rid"), id_sql(LOT, "lot"), id_sql(SPOT, "spot"), id_sql(USER, "usr"));
    let tail = |from: usize, kind: &str, payload: String| -> Vec<(usize, String)> {
        vec![
            (from, format!("ARRAY[{rid}]")),
            (from + 1, lot.clone()),
            (from + 2, "now()".into()),
            (from + 3, format!("ARRAY['{kind}']")),
            (from + 4, format!("ARRAY[{spot}]")),
            (from + 5, format!("ARRAY[{usr}]")),
            (from + 6, format!("ARRAY[{start}]")),
            (from + 7, format!("ARRAY[{end}]")),
            (from + 8, format!("ARRAY['{kind}']")),
            (from + 9, format!("ARRAY[{payload}]")),
            (from + 10, chan.clone()),
        ]
    };
    let p = |v: Vec<(usize, String)>| v.into_iter().collect::<HashMap<_, _>>();
    let nil = "'00000000-0000-0000-0000-000000000000'::uuid".to_string();
    let mut insert = vec![
        (1, rid.clone()),
        (2, format!("'{}'::uuid", id(OPERATOR, 0))),
        (3, lot.clone()),
        (4, spot.clone()),
        (5, usr.clone()),
        (6, start.clone()),
        (7, end.clone()),
        (8, "1".into()),
        (9, "200".into()),
        (10, "'EUR'".into()),
        (11, "now() + interval '10 minutes'".into()),
        (12, "now()".into()),
        (13, "NULL".into()),
    ];
    insert.extend(tail(14, "held", sample(EventKind::Held, ReservationState::Held)));
    let hold = format!(
        "\\set spot random(0, {last_spot})\n\\set lot :spot / {SPOTS_PER_LOT}\n\\set usr random(1, 1000000)\n\
         \\set rid random(1, 281474976710655)\n\\set hour random(0, 60000000)\n\
         BEGIN;\n{};\n{};\n{};\n{};\nCOMMIT;\n",
        bind(st("lot_owner"), &p(vec![(1, lot.clone())])),
        bind(st("lock_spot"), &p(vec![(1, spot.clone()), (2, lot.clone())])),
        bind(
            st("overlapping"),
            &p(vec![(1, spot.clone()), (2, start.clone()), (3, end.clone()), (4, "now()".into()), (5, nil)])
        ),
        bind(st("insert_hold"), &p(insert)),
        last_spot = SPOTS - 1,
    );
    let mut update = vec![
        (1, rid.clone()),
        (2, "'confirmed'".into()),
        (3, start.clone()),
        (4, end.clone()),
        (5, "1".into()),
        (6, "200".into()),
        (7, "'EUR'".into()),
        (8, "'9000-01-01T00:00:00Z'::timestamptz".into()),
        (9, literal(&serde_json::to_string(&payment()).unwrap())),
        (10, spot.clone()),
        (11, "false".into()),
    ];
    update.extend(tail(12, "confirmed", sample(EventKind::Confirmed, ReservationState::Confirmed)));
    let confirm = format!(
        "\\set rid random(1, {SEEDED})\n\\set hour :rid\n\\set spot :rid % {SPOTS}\n\\set lot :spot / {SPOTS_PER_LOT}\n\
         \\set usr :rid\n\
         BEGIN;\n{};\n{};\n{};\nCOMMIT;\n",
        bind(st("lock_spot_of"), &p(vec![(1, rid.clone())])),
        bind(st("reservation"), &p(vec![(1, rid.clone())])),
        bind(st("write_update"), &p(update)),
    );
    (hold, confirm)
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
            "TRUNCATE {s}.sessions, {s}.events, {s}.idempotency, {s}.reservations; \
             UPDATE {s}.lots SET last_seq = 0; UPDATE {s}.spots SET last_fence = 0;"
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

fn pgbench(script: &str, clients: usize) -> f64 {
    let path = std::env::temp_dir().join(format!("parq_pgbench_{}.sql", std::process::id()));
    std::fs::write(&path, script).unwrap();
    let config: tokio_postgres::Config = url().parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".into(),
    };
    let out = std::process::Command::new("pgbench")
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
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(bench(&schema))));
    rt.block_on(async {
        let client = pool(1).await.get().await.unwrap();
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await.unwrap();
    });
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn bench(schema: &str) {
    let store = PgStore::new(pool(*CLIENTS.iter().max().unwrap()).await, schema);
    store.migrate().await.expect("PostgreSQL at PARQ_TEST_PG_URL");
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
    let (hold_script, confirm_script) = scripts(&store);
    if std::env::var_os("PARQ_BENCH_PRINT_SCRIPTS").is_some() {
        println!("-- hold.sql\n{hold_script}\n-- confirm.sql\n{confirm_script}");
    }

    println!("| operation | clients | PgStore (ops/s) | pgbench, same SQL (tps) | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for &clients in &CLIENTS {
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
        reset(&store, false).await;
        let theirs = pgbench(&hold_script, clients);
        println!("| hold | {clients} | {ours:.0} | {theirs:.0} | {:.2} |", ours / theirs);

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
        reset(&store, true).await;
        let theirs = pgbench(&confirm_script, clients);
        println!("| confirm | {clients} | {ours:.0} | {theirs:.0} | {:.2} |", ours / theirs);
    }
    store.pool().close();
}
