//! A fresh database file per test, in its own temporary directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use parq_core::jiff::Timestamp;
use parq_core::testing::StoreSubject;
use parq_core::{
    Capabilities, DynReservationStore, Event, GateSession, GeoBox, HoldRequest, Lot, LotId, Operator,
    OperatorId, Reservation, ReservationId, ReservationStore, Result, Spot, UserId, Window, Written,
};
use parq_sqlite::SqliteStore;
use tempfile::TempDir;

/// A temporary directory with the path of a database file in it; removed with the last handle.
#[derive(Debug)]
pub struct TestDir {
    dir: TempDir,
}

impl TestDir {
    pub fn new() -> Arc<TestDir> {
        let dir = tempfile::Builder::new().prefix("parq-sqlite-").tempdir().expect("a temporary directory");
        Arc::new(TestDir { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("parq.db")
    }
}

/// A store on a file of a [`TestDir`], keeping the directory alive as long as the store.
#[derive(Debug)]
pub struct TestStore {
    pub store: SqliteStore,
    pub dir: Arc<TestDir>,
}

impl TestStore {
    pub fn open(dir: &Arc<TestDir>) -> Arc<TestStore> {
        let store = SqliteStore::open(dir.db()).expect("open the test database");
        Arc::new(TestStore { store, dir: dir.clone() })
    }
}

/// What the conformance macro calls: a store on a new file, with a way to open a second store
/// on the same file (another process, or this one restarted).
pub async fn make_store() -> StoreSubject {
    let dir = TestDir::new();
    let store = TestStore::open(&dir);
    StoreSubject::new(store).with_reopen(move || {
        let dir = dir.clone();
        async move { TestStore::open(&dir) as Arc<DynReservationStore> }
    })
}

#[async_trait]
impl ReservationStore for TestStore {
    fn capabilities(&self) -> Capabilities {
        self.store.capabilities()
    }
    async fn put_operator(&self, operator: &Operator) -> Result<()> {
        self.store.put_operator(operator).await
    }
    async fn operator(&self, id: OperatorId) -> Result<Operator> {
        self.store.operator(id).await
    }
    async fn put_lot(&self, lot: &Lot) -> Result<()> {
        self.store.put_lot(lot).await
    }
    async fn lot(&self, id: LotId) -> Result<Lot> {
        self.store.lot(id).await
    }
    async fn lots_in(&self, area: &GeoBox) -> Result<Vec<Lot>> {
        self.store.lots_in(area).await
    }
    async fn put_spot(&self, spot: &Spot) -> Result<()> {
        self.store.put_spot(spot).await
    }
    async fn spots(&self, lot: LotId) -> Result<Vec<Spot>> {
        self.store.spots(lot).await
    }
    async fn hold(&self, request: HoldRequest, now: Timestamp) -> Result<Written> {
        self.store.hold(request, now).await
    }
    async fn update(&self, update: parq_core::Update, now: Timestamp) -> Result<Written> {
        self.store.update(update, now).await
    }
    async fn get(&self, id: ReservationId) -> Result<Reservation> {
        self.store.get(id).await
    }
    async fn by_user(&self, user: UserId, limit: usize) -> Result<Vec<Reservation>> {
        self.store.by_user(user, limit).await
    }
    async fn live_in_lot(&self, lot: LotId, window: &Window, now: Timestamp) -> Result<Vec<Reservation>> {
        self.store.live_in_lot(lot, window, now).await
    }
    async fn lapsed_holds(&self, now: Timestamp, limit: usize) -> Result<Vec<Reservation>> {
        self.store.lapsed_holds(now, limit).await
    }
    async fn unclaimed_before(&self, cutoff: Timestamp, limit: usize) -> Result<Vec<Reservation>> {
        self.store.unclaimed_before(cutoff, limit).await
    }
    async fn events(&self, lot: LotId, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.store.events(lot, after, limit).await
    }
    async fn last_seq(&self, lot: LotId) -> Result<u64> {
        self.store.last_seq(lot).await
    }
    async fn sessions(&self, id: ReservationId) -> Result<Vec<GateSession>> {
        self.store.sessions(id).await
    }
    async fn revocations(&self, after: u64, limit: usize) -> Result<parq_core::pass::RevocationDelta> {
        self.store.revocations(after, limit).await
    }
    async fn revocations_of(&self, reservation: ReservationId) -> Result<Vec<parq_core::pass::Revocation>> {
        self.store.revocations_of(reservation).await
    }
    async fn record_scan(&self, record: &parq_core::pass::ScanRecord) -> Result<parq_core::pass::ScanRecord> {
        self.store.record_scan(record).await
    }
    async fn scan_record(&self, lot: LotId, scan_id: &str) -> Result<Option<parq_core::pass::ScanRecord>> {
        self.store.scan_record(lot, scan_id).await
    }
}

/// An operator and a four-spot lot (parq-core's sample lot), put through the port.
#[derive(Debug, Clone)]
pub struct Place {
    pub lot: Lot,
    pub spots: Vec<Spot>,
}

impl Place {
    pub async fn new(store: &dyn ReservationStore) -> Place {
        use parq_core::GeoPoint;
        let operator =
            Operator { id: OperatorId::new(), name: "SQLite Parking".into(), max_holds_per_user: None };
        store.put_operator(&operator).await.expect("put operator");
        let (lot, spots) =
            parq_core::testing::sample_lot(operator.id, "Central", GeoPoint { lat: 35.1725, lon: 33.3617 });
        store.put_lot(&lot).await.expect("put lot");
        for s in &spots {
            store.put_spot(s).await.expect("put spot");
        }
        Place { lot, spots }
    }

    /// A hold request of a new user on spot `i` for `hours` hours from `h` hours after the epoch,
    /// made at the epoch and lapsing ten minutes later.
    pub fn request(&self, i: usize, h: i64, hours: i64) -> HoldRequest {
        self.request_on(self.spots[i].id, h, hours)
    }

    /// The same for a spot given by id.
    pub fn request_on(&self, spot: parq_core::SpotId, h: i64, hours: i64) -> HoldRequest {
        use parq_core::jiff::SignedDuration;
        use parq_core::{HoldLimits, HoldTarget, Money, ReservationState};
        let now = parq_core::testing::epoch();
        let start = now + SignedDuration::from_hours(h);
        let r = Reservation {
            id: ReservationId::new(),
            operator: self.lot.operator,
            lot: self.lot.id,
            spot,
            user: UserId::new(),
            window: Window::new(start, start + SignedDuration::from_hours(hours)).expect("a window"),
            state: ReservationState::Held,
            fence: 0,
            price: Money::new(200, self.lot.rates.currency),
            hold_expires_at: now + SignedDuration::from_mins(10),
            created_at: now,
            payment: None,
        };
        HoldRequest {
            reservation: r,
            target: HoldTarget::Spot(spot),
            limits: HoldLimits::default(),
            lock_fence: None,
            idempotency: None,
        }
    }
}

/// The instant every request is made at.
pub fn now() -> Timestamp {
    parq_core::testing::epoch()
}
