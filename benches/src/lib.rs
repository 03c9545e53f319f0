//! Shared set-up for ParQ's benchmarks.

use std::sync::Arc;

use jiff::SignedDuration;
use parq_core::engine::{HoldSpec, SpotChoice};
use parq_core::memory::MemoryStore;
use parq_core::testing::{Fixture, epoch};
use parq_core::{DynReservationStore, Spot, SpotAttributes, SpotId, UserId, Window};

/// A memory fixture whose lot has `spots` spots, and the holds a benchmark makes on it:
/// hold `i` takes spot `i % spots` for the `i / spots`-th hour from the epoch, so no two
/// holds conflict and each spot's history grows like a real one.
pub struct HoldBench {
    /// The fixture.
    pub f: Fixture,
    /// The spots.
    pub spots: Vec<SpotId>,
    users: Vec<UserId>,
    epoch: jiff::Timestamp,
}

impl HoldBench {
    /// Sets up a lot with `spots` spots on a fresh `MemoryStore`.
    pub async fn new(spots: usize) -> Self {
        let f = Fixture::new(Arc::new(MemoryStore::new()) as Arc<DynReservationStore>).await;
        let mut lot = f.lot.clone();
        lot.max_stay = SignedDuration::from_hours(24);
        f.engine.put_lot(&lot).await.unwrap();
        let mut ids = Vec::with_capacity(spots);
        for i in 0..spots {
            let s = Spot {
                id: SpotId::new(),
                lot: lot.id,
                label: format!("B-{i:05}"),
                attributes: SpotAttributes::default(),
            };
            f.engine.put_spot(&s).await.unwrap();
            ids.push(s.id);
        }
        let users = (0..1000).map(|_| UserId::new()).collect();
        HoldBench { f, spots: ids, users, epoch: epoch() }
    }

    /// The request of hold number `i`.
    pub fn spec(&self, i: u64) -> HoldSpec {
        let n = self.spots.len() as u64;
        let hour = (i / n) as i64 + 1;
        let start = self.epoch + SignedDuration::from_hours(hour);
        HoldSpec {
            user: self.users[(i % 1000) as usize],
            lot: self.f.lot.id,
            choice: SpotChoice::Spot { spot: self.spots[(i % n) as usize] },
            window: Window::new(start, start + SignedDuration::from_hours(1)).unwrap(),
        }
    }
}
