//! Holds per second on the in-memory engine: one thread, and two threads on one lot.
//!
//! Each measurement runs on a store that already holds reservations and never holds more than
//! a million (the scale at which the footprint is measured): when a batch would pass that, the
//! store is rebuilt, outside the timed part.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parq_benches::HoldBench;

/// Reservations a store may hold before it is rebuilt for the next batch.
const CEILING: u64 = 1_000_000;
/// Reservations a fresh store starts with.
const PREFILL: u64 = 100_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A bench store with `PREFILL` reservations on a lot of 1,000 spots.
fn fresh(rt: &tokio::runtime::Runtime) -> (Arc<HoldBench>, u64) {
    let bench = rt.block_on(async {
        let bench = HoldBench::new(1_000).await;
        for i in 0..PREFILL {
            bench.f.engine.hold(&bench.spec(i), None).await.expect("no conflict by construction");
        }
        bench
    });
    (Arc::new(bench), PREFILL)
}

fn holds(c: &mut Criterion) {
    let mut g = c.benchmark_group("memory_holds");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));

    let rt = runtime();
    let (mut bench, mut next) = fresh(&rt);
    g.bench_function("one_thread", |b| {
        b.iter_custom(|iters| {
            if next + iters > CEILING {
                (bench, next) = fresh(&rt);
            }
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    bench.f.engine.hold(&bench.spec(next), None).await.expect("no conflict by construction");
                    next += 1;
                }
                t.elapsed()
            })
        })
    });

    // Two threads, each on its own half of the spots of one lot: they share the lot's shard.
    let (mut bench, mut next) = fresh(&rt);
    g.bench_function("two_threads_one_lot", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(2);
            if next + 2 * per > CEILING {
                (bench, next) = fresh(&rt);
            }
            let base = next;
            next += per * 2;
            let t = Instant::now();
            std::thread::scope(|s| {
                for k in 0..2u64 {
                    let bench = bench.clone();
                    s.spawn(move || {
                        runtime().block_on(async {
                            for j in 0..per {
                                // Even holds on thread 0, odd ones on thread 1: distinct spots.
                                let i = base + 2 * j + k;
                                bench
                                    .f
                                    .engine
                                    .hold(&bench.spec(i), None)
                                    .await
                                    .expect("no conflict by construction");
                            }
                        })
                    });
                }
            });
            t.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, holds);
criterion_main!(benches);
