//! `SqliteStore`: the reservation store in one SQLite file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use parq_core::pass::{Revocation, RevocationDelta, ScanRecord};
use parq_core::{
    Capabilities, Error, Event, GateSession, GeoBox, HoldRequest, Lot, LotId, Operator, OperatorId,
    Reservation, ReservationId, ReservationStore, Result, Spot, SpotId, Update, UserId, Window, Written,
};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::error::{OpenError, SqlError, SqlResult};
use crate::rows::{self, EVENT_COLS, HOLDS, LIVE, RES_COLS, SESSION_COLS, id, ns};
use crate::write::{self, Counters, Done, Job, Op};

/// How a [`SqliteStore`] runs. [`Default`] is what [`SqliteStore::open`] uses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// How long a connection waits for another one (another process on the same file) to
    /// release its lock before a write fails as retryable `Unavailable`. Default: 5 s.
    pub busy_timeout: Duration,
    /// At most this many queued writes share one transaction (one fsync). Default: 256; 1
    /// turns group commit off.
    pub max_batch: usize,
    /// Writes that may wait for the writer thread before callers wait to enqueue. Default: 4096.
    pub queue: usize,
    /// Idle read connections kept open. Default: 8.
    pub readers: usize,
    /// Run `PRAGMA quick_check` at open and refuse a damaged file. It reads the whole file, so
    /// it is off by default; a file that is not a database is refused either way.
    pub integrity_check: bool,
    /// The most pages (4 KiB each) the file may grow to; writes past it fail with
    /// `Unavailable` (the database is full) and write nothing. Default: no limit but SQLite's.
    pub max_pages: Option<u64>,
    /// Sync the write-ahead log on a second thread, after the commit, while the writer carries
    /// out the next transaction; writes are answered after that sync, so an acknowledged write
    /// is on disk either way. Default: on. Off, every commit syncs the log itself
    /// (`synchronous = FULL`) before the writer goes on.
    pub overlap_sync: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            max_batch: 256,
            queue: 4096,
            readers: 8,
            integrity_check: false,
            max_pages: None,
            overlap_sync: true,
        }
    }
}

impl SqliteOptions {
    /// The options with `busy_timeout`.
    pub fn busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    /// The options with at most `max_batch` writes per transaction (at least 1).
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// The options with at most `pages` pages (of 4 KiB) in the file.
    pub fn max_pages(mut self, pages: u64) -> Self {
        self.max_pages = Some(pages);
        self
    }

    /// The options with `overlap_sync` set.
    pub fn overlap_sync(mut self, overlap: bool) -> Self {
        self.overlap_sync = overlap;
        self
    }

    /// The options with `integrity_check` set.
    pub fn integrity_check(mut self, check: bool) -> Self {
        self.integrity_check = check;
        self
    }
}

/// What the writer thread has done so far (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WriterStats {
    /// Transactions committed (each one fsync of the write-ahead log).
    pub transactions: u64,
    /// Writes answered from committed transactions (refused ones included).
    pub writes: u64,
    /// The most writes one transaction carried.
    pub largest_batch: u64,
}

/// A [`ReservationStore`] in one SQLite file: durable, shared by the processes of one host,
/// with the full event log.
///
/// Writes go through a queue to one writer thread that owns the write connection and commits
/// whatever arrived together in one `BEGIN IMMEDIATE` transaction (group commit), each write
/// under its own savepoint; a write is answered only after its transaction committed and the
/// write-ahead log was synced (by a syncer thread while the writer goes on with the next
/// transaction, or by the commit itself with [`SqliteOptions::overlap_sync`] off), so an
/// acknowledged write is on disk. Reads run on a small
/// pool of connections on tokio's blocking threads. Clones share the writer and the pool; the
/// writer stops (and the WAL is checkpointed) when the last clone is dropped.
///
/// See the crate documentation for how each part of the contract is kept.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    tx: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    readers: Arc<Readers>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Readers close first, so that the writer's connection is the last one and closing it
        // checkpoints the WAL into the database file.
        self.readers.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
        // With the sender gone the writer finishes what is queued and closes its connection.
        drop(self.tx.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Idle read connections.
struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    keep: usize,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => crate::migrate::open_reader(&self.path, self.busy_timeout).sql(),
        }
    }

    fn give(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.keep {
            idle.push(conn);
        }
    }
}

fn stopped() -> Error {
    Error::Unavailable {
        message: "the SQLite writer thread has stopped".into(),
        retryable: false,
        source: None,
    }
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Opens the database at `path` with the default [`SqliteOptions`], creating it when the
    /// file does not exist, and applies the migrations it lacks.
    ///
    /// This blocks while it opens and migrates the file (waiting up to the busy timeout for
    /// another process); from async code use [`open_async`](Self::open_async).
    ///
    /// # Errors
    /// [`OpenError`]: the directory is missing or not writable, the file is read-only, not an
    /// SQLite database or corrupt, belongs to another application, or has a schema newer than
    /// this crate knows. Nothing is created or changed over existing data in those cases.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens the database at `path` with `options`; see [`open`](Self::open).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let conn = crate::migrate::open_writer(&path, &options)?;
        let wal = if options.overlap_sync { crate::migrate::overlap_sync(&conn) } else { None };
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let counters = Arc::new(Counters::default());
        let max_batch = options.max_batch.max(1);
        let writer = std::thread::Builder::new()
            .name("parq-sqlite-writer".into())
            .spawn({
                let counters = counters.clone();
                move || write::run(conn, rx, max_batch, counters, wal)
            })
            .map_err(OpenError::Thread)?;
        let readers = Arc::new(Readers {
            path: path.clone(),
            busy_timeout: options.busy_timeout,
            keep: options.readers,
            idle: Mutex::new(Vec::new()),
        });
        Ok(Self { inner: Arc::new(Inner { path, tx: Some(tx), writer: Some(writer), counters, readers }) })
    }

    /// [`open_with`](Self::open_with) on tokio's blocking threads, so the runtime is not
    /// blocked while the file is opened and migrated.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    ///
    /// # Panics
    /// Outside a tokio runtime, or when opening panicked.
    pub async fn open_async(path: impl Into<PathBuf>, options: SqliteOptions) -> Result<Self, OpenError> {
        let path = path.into();
        match tokio::task::spawn_blocking(move || Self::open_with(path, options)).await {
            Ok(opened) => opened,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(cancelled) => Err(OpenError::Thread(std::io::Error::other(cancelled))),
            },
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// What the writer thread has done so far.
    pub fn writer_stats(&self) -> WriterStats {
        let c = &self.inner.counters;
        WriterStats {
            transactions: c.transactions.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            largest_batch: c.largest.load(Ordering::Relaxed),
        }
    }

    /// Writes waiting in the queue for the writer thread.
    pub fn queued_writes(&self) -> usize {
        self.inner.tx.as_ref().map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    async fn write(&self, op: Op) -> Result<Done> {
        let (reply, answer) = oneshot::channel();
        let tx = self.inner.tx.as_ref().ok_or_else(stopped)?;
        tx.send(Job { op, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn write_unit(&self, op: Op) -> Result<()> {
        self.write(op).await.map(|_| ())
    }

    async fn write_written(&self, op: Op) -> Result<Written> {
        match self.write(op).await? {
            Done::Written(w) => Ok(*w),
            Done::Unit | Done::Scan(_) => {
                Err(Error::backend("sqlite", "the writer answered a write without its result"))
            }
        }
    }

    /// Runs `f` on a read connection on tokio's blocking threads.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.inner.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let result = f(&conn);
            // A connection that failed may be broken: do not keep it.
            if !matches!(&result, Err(Error::Backend { .. } | Error::Unavailable { .. })) {
                readers.give(conn);
            }
            result
        })
        .await
        .map_err(|e| Error::unavailable("an SQLite read was cancelled", Some(Box::new(e))))?
    }
}

fn lot_exists(conn: &Connection, lot: &str) -> Result<bool> {
    conn.prepare_cached("SELECT 1 FROM lots WHERE id = ?1").and_then(|mut st| st.exists([lot])).sql()
}

fn reservations(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<Vec<Reservation>> {
    let rows: Vec<std::result::Result<Reservation, SqlError>> = conn
        .prepare_cached(sql)
        .and_then(|mut st| st.query_map(p, |r| Ok(rows::reservation(r)))?.collect())
        .sql()?;
    Ok(rows.into_iter().collect::<std::result::Result<_, _>>()?)
}

#[async_trait]
impl ReservationStore for SqliteStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(true, true, true)
    }

    async fn put_operator(&self, operator: &Operator) -> Result<()> {
        self.write_unit(Op::PutOperator(operator.clone())).await
    }

    async fn operator(&self, oid: OperatorId) -> Result<Operator> {
        self.read(move |c| {
            let doc = c
                .prepare_cached("SELECT doc FROM operators WHERE id = ?1")
                .and_then(|mut st| st.query_row([id(&oid.0)], |r| Ok(rows::doc(r, 0, "operator"))).optional())
                .sql()?;
            Ok(doc.ok_or_else(|| Error::not_found(format!("operator {oid}")))??)
        })
        .await
    }

    async fn put_lot(&self, lot: &Lot) -> Result<()> {
        self.write_unit(Op::PutLot(lot.clone())).await
    }

    async fn lot(&self, lid: LotId) -> Result<Lot> {
        self.read(move |c| {
            let doc = c
                .prepare_cached("SELECT doc FROM lots WHERE id = ?1")
                .and_then(|mut st| st.query_row([id(&lid.0)], |r| Ok(rows::doc(r, 0, "lot"))).optional())
                .sql()?;
            Ok(doc.ok_or_else(|| Error::not_found(format!("lot {lid}")))??)
        })
        .await
    }

    async fn lots_in(&self, area: &GeoBox) -> Result<Vec<Lot>> {
        let a = *area;
        self.read(move |c| {
            let docs: Vec<std::result::Result<Lot, SqlError>> = c
                .prepare_cached(
                    "SELECT doc FROM lots WHERE lat BETWEEN ?1 AND ?2 AND lon BETWEEN ?3 AND ?4 ORDER BY id",
                )
                .and_then(|mut st| {
                    st.query_map(params![a.min_lat, a.max_lat, a.min_lon, a.max_lon], |r| {
                        Ok(rows::doc(r, 0, "lot"))
                    })?
                    .collect()
                })
                .sql()?;
            Ok(docs.into_iter().collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn put_spot(&self, spot: &Spot) -> Result<()> {
        self.write_unit(Op::PutSpot(spot.clone())).await
    }

    async fn spots(&self, lot: LotId) -> Result<Vec<Spot>> {
        self.read(move |c| {
            let lid = id(&lot.0);
            type Raw = (String, String, String, String);
            let raw: Vec<Raw> = c
                .prepare_cached(
                    "SELECT id, lot_id, label, attributes FROM spots WHERE lot_id = ?1 ORDER BY label, id",
                )
                .and_then(|mut st| {
                    st.query_map([&lid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect()
                })
                .sql()?;
            if raw.is_empty() && !lot_exists(c, &lid)? {
                return Err(Error::not_found(format!("lot {lot}")));
            }
            raw.into_iter()
                .map(|(sid, lid, label, attributes)| {
                    let uuid = |s: &str| {
                        uuid::Uuid::parse_str(s).map_err(|e| Error::from(SqlError::malformed("id", e)))
                    };
                    Ok(Spot {
                        id: SpotId(uuid(&sid)?),
                        lot: LotId(uuid(&lid)?),
                        label,
                        attributes: serde_json::from_str(&attributes)
                            .map_err(|e| Error::from(SqlError::malformed("spot attributes", e)))?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn hold(&self, request: HoldRequest, now: Timestamp) -> Result<Written> {
        self.write_written(Op::Hold(request, now)).await
    }

    async fn update(&self, update: Update, now: Timestamp) -> Result<Written> {
        self.write_written(Op::Update(update, now)).await
    }

    async fn get(&self, rid: ReservationId) -> Result<Reservation> {
        self.read(move |c| {
            write::read_reservation(c, &rid.0)?.ok_or_else(|| Error::not_found(format!("reservation {rid}")))
        })
        .await
    }

    async fn by_user(&self, user: UserId, n: usize) -> Result<Vec<Reservation>> {
        self.read(move |c| {
            reservations(
                c,
                &format!("SELECT {RES_COLS} FROM reservations WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2"),
                params![id(&user.0), limit(n)],
            )
        })
        .await
    }

    async fn live_in_lot(&self, lot: LotId, window: &Window, now: Timestamp) -> Result<Vec<Reservation>> {
        let (start, end) = rows::window_ns(window)?;
        let now = ns(now)?;
        self.read(move |c| {
            let lid = id(&lot.0);
            let found = reservations(
                c,
                &format!(
                    "SELECT {RES_COLS} FROM reservations WHERE lot_id = ?1 AND state IN {LIVE} \
                     AND start_ns < ?3 AND end_ns > ?2 AND NOT (state IN {HOLDS} AND hold_expires_ns <= ?4) \
                     ORDER BY start_ns, id"
                ),
                params![lid, start, end, now],
            )?;
            if found.is_empty() && !lot_exists(c, &lid)? {
                return Err(Error::not_found(format!("lot {lot}")));
            }
            Ok(found)
        })
        .await
    }

    async fn lapsed_holds(&self, now: Timestamp, n: usize) -> Result<Vec<Reservation>> {
        let now = ns(now)?;
        self.read(move |c| {
            reservations(
                c,
                &format!(
                    "SELECT {RES_COLS} FROM reservations WHERE state IN {HOLDS} AND hold_expires_ns <= ?1 \
                     ORDER BY hold_expires_ns, id LIMIT ?2"
                ),
                params![now, limit(n)],
            )
        })
        .await
    }

    async fn unclaimed_before(&self, cutoff: Timestamp, n: usize) -> Result<Vec<Reservation>> {
        let cutoff = ns(cutoff)?;
        self.read(move |c| {
            reservations(
                c,
                &format!(
                    "SELECT {RES_COLS} FROM reservations WHERE state = 'confirmed' AND start_ns < ?1 \
                     ORDER BY start_ns, id LIMIT ?2"
                ),
                params![cutoff, limit(n)],
            )
        })
        .await
    }

    async fn events(&self, lot: LotId, after: u64, n: usize) -> Result<Vec<Event>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.read(move |c| {
            let lid = id(&lot.0);
            let found: Vec<std::result::Result<Event, SqlError>> = c
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLS} FROM events WHERE lot_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
                ))
                .and_then(|mut st| {
                    st.query_map(params![lid, after, limit(n)], |r| Ok(rows::event(r)))?.collect()
                })
                .sql()?;
            if found.is_empty() && !lot_exists(c, &lid)? {
                return Err(Error::not_found(format!("lot {lot}")));
            }
            Ok(found.into_iter().collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn last_seq(&self, lot: LotId) -> Result<u64> {
        self.read(move |c| {
            let last: Option<i64> = c
                .prepare_cached("SELECT last_seq FROM lots WHERE id = ?1")
                .and_then(|mut st| st.query_row([id(&lot.0)], |r| r.get(0)).optional())
                .sql()?;
            let last = last.ok_or_else(|| Error::not_found(format!("lot {lot}")))?;
            Ok(u64::try_from(last).unwrap_or(0))
        })
        .await
    }

    async fn sessions(&self, rid: ReservationId) -> Result<Vec<GateSession>> {
        self.read(move |c| {
            let owner = id(&rid.0);
            let found: Vec<std::result::Result<GateSession, SqlError>> = c
                .prepare_cached(&format!(
                    "SELECT {SESSION_COLS} FROM sessions WHERE owner_id = ?1 ORDER BY n"
                ))
                .and_then(|mut st| st.query_map([&owner], |r| Ok(rows::session(r)))?.collect())
                .sql()?;
            if found.is_empty() {
                let exists = c
                    .prepare_cached("SELECT 1 FROM reservations WHERE id = ?1")
                    .and_then(|mut st| st.exists([&owner]))
                    .sql()?;
                if !exists {
                    return Err(Error::not_found(format!("reservation {rid}")));
                }
            }
            Ok(found.into_iter().collect::<std::result::Result<_, _>>()?)
        })
        .await
    }

    async fn revocations(&self, after: u64, limit: usize) -> Result<RevocationDelta> {
        self.read(move |c| crate::revocations::since(c, after, limit)).await
    }

    async fn revocations_of(&self, reservation: ReservationId) -> Result<Vec<Revocation>> {
        self.read(move |c| crate::revocations::of(c, reservation)).await
    }

    async fn record_scan(&self, record: &ScanRecord) -> Result<ScanRecord> {
        match self.write(Op::RecordScan(Box::new(record.clone()))).await? {
            Done::Scan(r) => Ok(*r),
            _ => Err(Error::backend("sqlite", "the writer answered a scan record without it")),
        }
    }

    async fn scan_record(&self, lot: LotId, scan_id: &str) -> Result<Option<ScanRecord>> {
        let scan_id = scan_id.to_owned();
        self.read(move |c| crate::revocations::scan_record(c, lot, &scan_id)).await
    }
}
