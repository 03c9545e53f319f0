//! Durable holds per second through the engine from 64 concurrent tasks: `SqliteStore` with
//! group commit, `SqliteStore` with one transaction (one fsync) per hold, and `MemoryStore`,
//! in the same run.
//!
//! `cargo bench -p parq-sqlite --bench sqlite_holds`. The database file is in a temporary
//! directory (`TMPDIR`, so on the disk that holds it). Every hold takes its own spot and hour,
//! so none conflicts: the figures are of writes that commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parq_core::engine::{HoldSpec, SpotChoice};
use parq_core::jiff::SignedDuration;
use parq_core::memory::MemoryStore;
use parq_core::testing::{Fixture, epoch};
use parq_core::{DynReservationStore, Spot, SpotAttributes, SpotId, UserId, Window};
use parq_sqlite::{SqliteOptions, SqliteStore};

const TASKS: u64 = 64;
const SPOTS: usize = 512;

/// A lot of `SPOTS` spots on `store`, and a counter of the holds made on it.
struct Bench {
    f: Fixture,
    spots: Vec<SpotId>,
    users: Vec<UserId>,
    next: AtomicU64,
}

impl Bench {
    async fn new(store: Arc<DynReservationStore>) -> Arc<Bench> {
        let f = Fixture::new(store).await;
        let mut lot = f.lot.clone();
        lot.max_stay = SignedDuration::from_hours(24);
        f.engine.put_lot(&lot).await.unwrap();
        let mut spots = Vec::with_capacity(SPOTS);
        for i in 0..SPOTS {
            let s = Spot {
                id: SpotId::new(),
                lot: lot.id,
                label: format!("B-{i:05}"),
                attributes: SpotAttributes::default(),
            };
            f.engine.put_spot(&s).await.unwrap();
            spots.push(s.id);
        }
        let users = (0..1000).map(|_| UserId::new()).collect();
        Arc::new(Bench { f, spots, users, next: AtomicU64::new(0) })
    }

    /// Hold number `i`: spot `i % SPOTS` for the `i / SPOTS`-th hour from the epoch.
    fn spec(&self, i: u64) -> HoldSpec {
        let n = self.spots.len() as u64;
        let start = epoch() + SignedDuration::from_hours((i / n) as i64 + 1);
        HoldSpec {
            user: self.users[(i % 1000) as usize],
            lot: self.f.lot.id,
            choice: SpotChoice::Spot { spot: self.spots[(i % n) as usize] },
            window: Window::new(start, start + SignedDuration::from_hours(1)).unwrap(),
        }
    }

    /// Makes `iters` holds from `TASKS` tasks; the time they took.
    async fn run(self: &Arc<Self>, iters: u64) -> Duration {
        let t = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|k| {
                let b = self.clone();
                let share = iters / TASKS + u64::from(k < iters % TASKS);
                tokio::spawn(async move {
                    for _ in 0..share {
                        let i = b.next.fetch_add(1, Ordering::Relaxed);
                        b.f.engine.hold(&b.spec(i), None).await.expect("no conflict by construction");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        t.elapsed()
    }
}

fn holds(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::Builder::new().prefix("parq-sqlite-bench-").tempdir().unwrap();
    let mut g = c.benchmark_group("holds_64_tasks");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));

    let memory = rt.block_on(Bench::new(Arc::new(MemoryStore::new())));
    g.bench_function("memory", |b| b.iter_custom(|iters| rt.block_on(memory.run(iters))));

    let grouped = SqliteStore::open(dir.path().join("grouped.db")).unwrap();
    let stats = grouped.clone();
    let sqlite = rt.block_on(Bench::new(Arc::new(grouped)));
    g.bench_function("sqlite_group_commit", |b| b.iter_custom(|iters| rt.block_on(sqlite.run(iters))));
    let s = stats.writer_stats();
    eprintln!(
        "sqlite_group_commit: {} writes in {} transactions ({:.1} per transaction, largest {})",
        s.writes,
        s.transactions,
        s.writes as f64 / s.transactions.max(1) as f64,
        s.largest_batch
    );

    // Group commit with the sync inside each commit (`overlap_sync(false)`): the writer waits for
    // every sync before it starts the next transaction.
    let inline =
        SqliteStore::open_with(dir.path().join("inline.db"), SqliteOptions::default().overlap_sync(false))
            .unwrap();
    let inline_stats = inline.clone();
    let sqlite_inline = rt.block_on(Bench::new(Arc::new(inline)));
    g.bench_function("sqlite_group_commit_sync_in_commit", |b| {
        b.iter_custom(|iters| rt.block_on(sqlite_inline.run(iters)))
    });
    let s = inline_stats.writer_stats();
    eprintln!(
        "sqlite_group_commit_sync_in_commit: {} writes in {} transactions ({:.1} per fsync, largest {})",
        s.writes,
        s.transactions,
        s.writes as f64 / s.transactions.max(1) as f64,
        s.largest_batch
    );

    let single = SqliteStore::open_with(
        dir.path().join("single.db"),
        SqliteOptions::default().max_batch(1).overlap_sync(false),
    )
    .unwrap();
    let sqlite1 = rt.block_on(Bench::new(Arc::new(single)));
    g.bench_function("sqlite_one_fsync_per_hold", |b| b.iter_custom(|iters| rt.block_on(sqlite1.run(iters))));
    g.finish();
}

criterion_group!(benches, holds);
criterion_main!(benches);
