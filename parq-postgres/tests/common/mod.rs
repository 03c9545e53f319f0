//! A fresh schema per test on the PostgreSQL named by `PARQ_TEST_PG_URL`.

#![allow(dead_code)]

use std::sync::Arc;

use async_trait::async_trait;
use parq_core::jiff::Timestamp;
use parq_core::testing::StoreSubject;
use parq_core::{
    Capabilities, DynReservationStore, Event, GateSession, GeoBox, HoldRequest, Lot, LotId, Operator,
    OperatorId, Reservation, ReservationId, ReservationStore, Result, Spot, UserId, Window, Written,
};
use parq_postgres::PgStore;
use parq_postgres::deadpool_postgres::{Manager, Pool};
use parq_postgres::tokio_postgres::{self, Client, NoTls};

/// The server's URL: `PARQ_TEST_PG_URL`, or the local default.
pub fn url() -> String {
    std::env::var("PARQ_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn unreachable(e: impl std::fmt::Display) -> ! {
    panic!("cannot reach PostgreSQL at {} ({e}); set PARQ_TEST_PG_URL to the URL of a running server", url())
}

/// The connection settings, tagged with `schema` as the application name so a test can find
/// its own backends in `pg_stat_activity`.
pub fn config(schema: &str) -> tokio_postgres::Config {
    let mut config: tokio_postgres::Config =
        url().parse().unwrap_or_else(|e| panic!("PARQ_TEST_PG_URL is not a PostgreSQL URL: {e}"));
    config.application_name(schema);
    config
}

/// A plain connection for checking the store's tables with SQL.
pub async fn connect(schema: &str) -> Client {
    let (client, conn) = config(schema).connect(NoTls).await.unwrap_or_else(|e| unreachable(e));
    tokio::spawn(conn);
    client
}

/// A store in a new, migrated schema `parq_t_<uuid>`, dropped with the last handle.
#[derive(Debug)]
pub struct TestStore {
    pub store: PgStore,
}

impl TestStore {
    pub async fn new(pool_size: usize) -> Arc<TestStore> {
        let schema = format!("parq_t_{}", uuid::Uuid::new_v4().simple());
        let pool = Pool::builder(Manager::new(config(&schema), NoTls))
            .max_size(pool_size)
            .build()
            .expect("a pool with a tokio runtime");
        let store = PgStore::new(pool, schema);
        if let Err(e) = store.migrate().await {
            unreachable(e);
        }
        Arc::new(TestStore { store })
    }

    pub fn schema(&self) -> &str {
        self.store.schema()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        self.store.pool().close();
        let schema = self.store.schema().to_owned();
        // Drop runs inside (or after) the test's runtime, so the cleanup gets its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let Ok((client, conn)) = config("parq_t_cleanup").connect(NoTls).await else { return };
                tokio::spawn(conn);
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
            });
        });
        let _ = done.join();
    }
}

/// What the conformance macro calls: a fresh store behind the core's trait object, with a way
/// to open a second store on the same schema (another replica, or this one restarted).
pub async fn make_store() -> StoreSubject {
    let store = TestStore::new(16).await;
    let schema = store.schema().to_owned();
    StoreSubject::new(store).with_reopen(move || {
        let schema = schema.clone();
        async move {
            let pool = Pool::builder(Manager::new(config(&schema), NoTls))
                .max_size(16)
                .build()
                .expect("a pool with a tokio runtime");
            Arc::new(PgStore::new(pool, schema)) as Arc<DynReservationStore>
        }
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

/// What the notifier conformance macro calls: a notifier on its own channel that publishes
/// through its own pool.
pub async fn make_notifier() -> Arc<dyn parq_core::Notifier> {
    let channel = format!("parq_t_{}.events", uuid::Uuid::new_v4().simple());
    let notifier = parq_postgres::PgNotifier::connect(config("parq_t_notifier"), channel)
        .await
        .unwrap_or_else(|e| unreachable(e));
    let pool =
        Pool::builder(Manager::new(config("parq_t_notifier"), NoTls)).max_size(2).build().expect("a pool");
    Arc::new(notifier.publishing_with(pool))
}
