//! Bytes of heap per stored reservation in `MemoryStore`, measured with a counting allocator
//! over a million holds: `cargo run --release -p parq-benches --bin footprint [count]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use parq_benches::HoldBench;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator and only counts the bytes it hands out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let count: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let bench = HoldBench::new(1_000).await;
        let before = LIVE.load(Ordering::Relaxed);
        let t = std::time::Instant::now();
        for i in 0..count {
            bench.f.engine.hold(&bench.spec(i), None).await.expect("no conflict by construction");
        }
        let elapsed = t.elapsed();
        let after = LIVE.load(Ordering::Relaxed);
        let per = (after - before) as f64 / count as f64;
        println!("reservations: {count}");
        println!("heap bytes per stored reservation: {per:.1}");
        println!("holds/s while filling (one thread): {:.0}", count as f64 / elapsed.as_secs_f64());
    });
}
