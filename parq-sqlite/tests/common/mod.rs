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
}
