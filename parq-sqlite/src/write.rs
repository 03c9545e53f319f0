//! The writer: one thread that owns the write connection, drains a queue of write requests and
//! commits whatever arrived together in one transaction (group commit), each request under its
//! own savepoint so that a refused one leaves the others untouched.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use parq_core::{
    ConflictReason, Error, Event, EventKind, HoldRequest, HoldTarget, IdempotencyClaim, Lot, LotId, Operator,
    Reservation, ReservationState, Result, SessionChange, Spot, SpotId, Update, Written,
};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use parq_core::pass::ScanRecord;

use crate::error::{SqlError, SqlResult};
use crate::rows::{self, HOLDS, LIVE, RES_COLS, fence_i64, id, ns, window_ns};

/// A write the writer thread carries out.
pub(crate) enum Op {
    PutOperator(Operator),
    PutLot(Lot),
    PutSpot(Spot),
    Hold(HoldRequest, Timestamp),
    Update(Update, Timestamp),
    RecordScan(Box<ScanRecord>),
}

/// What a write returns.
pub(crate) enum Done {
    Unit,
    Written(Box<Written>),
    Scan(Box<ScanRecord>),
}

/// A queued write and where its answer goes.
pub(crate) struct Job {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Done>>,
}

/// Counters of the writer thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub transactions: AtomicU64,
    pub writes: AtomicU64,
    pub largest: AtomicU64,
}

/// Facts of the catalog that never change once stored, remembered by the writer so that a hold
/// does not read them again: a lot's operator (a lot cannot move to another operator) and a
/// spot's lot (a spot cannot move to another lot). Neither lots nor spots are ever deleted, so
/// what another process writes cannot make an entry wrong; an entry read inside a transaction
/// that then failed could name a row that was never committed, so the whole map is forgotten
/// whenever a transaction fails.
#[derive(Default)]
pub(crate) struct Known {
    lot_operator: HashMap<LotId, String>,
    spot_lot: HashMap<SpotId, LotId>,
}

impl Known {
    fn forget(&mut self) {
        self.lot_operator.clear();
        self.spot_lot.clear();
    }
}

/// Answers of a committed transaction, given once its log is on disk.
type Answers = Vec<(oneshot::Sender<Result<Done>>, Result<Done>)>;

/// Where the answers of committed transactions go.
enum Answer {
    /// The commit itself synced the log (`synchronous = FULL`): answer at once.
    Now,
    /// The commit only wrote the log (`synchronous = NORMAL`); the syncer thread syncs it and
    /// then answers, while the writer carries out the next transaction.
    AfterSync(std::sync::mpsc::Sender<Answers>),
}

impl Answer {
    fn send(&self, answers: Answers) {
        match self {
            Answer::Now => {
                for (reply, result) in answers {
                    let _ = reply.send(result);
                }
            }
            Answer::AfterSync(tx) => {
                if let Err(std::sync::mpsc::SendError(answers)) = tx.send(answers) {
                    // The syncer is gone (it cannot be while the writer runs): say so rather
                    // than answer what may not be on disk.
                    for (reply, _) in answers {
                        let _ = reply.send(Err(sync_failed("the SQLite syncer thread has stopped")));
                    }
                }
            }
        }
    }
}

fn sync_failed(message: &str) -> Error {
    Error::Unavailable {
        message: format!("{message}: the write may or may not be on disk"),
        retryable: false,
        source: None,
    }
}

/// The syncer: syncs the write-ahead log (`wal`, the file SQLite appends every commit to) for
/// every group of committed transactions that arrived while it synced the previous one, then
/// answers their writes. One sync covers every transaction written to the log before it,
/// whichever process wrote it: in WAL mode a commit is a write to that file, and a
/// checkpoint syncs the log before it copies it into the database (and the database after).
pub(crate) fn sync_answers(wal: std::fs::File, rx: std::sync::mpsc::Receiver<Answers>) {
    while let Ok(mut answers) = rx.recv() {
        while let Ok(more) = rx.try_recv() {
            answers.extend(more);
        }
        match wal.sync_data() {
            Ok(()) => {
                for (reply, result) in answers {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "syncing the SQLite write-ahead log failed");
                for (reply, _) in answers {
                    let _ = reply.send(Err(sync_failed("syncing the SQLite write-ahead log failed")));
                }
            }
        }
    }
}

/// Runs until every sender is gone: takes the first queued job, then whatever else is queued
/// (up to `max_batch`), and carries them out in one transaction. With `wal`, commits do not
/// sync the log themselves: a syncer thread syncs it and answers, so the writer's next
/// transaction runs during the previous one's sync; without it (`synchronous = FULL`) each
/// commit syncs before its writes are answered.
pub(crate) fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    counters: Arc<Counters>,
    wal: Option<std::fs::File>,
) {
    let (answer, syncer) = match wal {
        None => (Answer::Now, None),
        Some(wal) => {
            let (tx, srx) = std::sync::mpsc::channel();
            let syncer = std::thread::Builder::new()
                .name("parq-sqlite-sync".into())
                .spawn(move || sync_answers(wal, srx));
            match syncer {
                Ok(handle) => (Answer::AfterSync(tx), Some(handle)),
                Err(e) => {
                    // No thread for it: sync in every commit instead.
                    tracing::warn!(error = %e, "no SQLite syncer thread; every commit syncs");
                    if let Err(e) = conn.pragma_update(None, "synchronous", "FULL") {
                        tracing::error!(error = %e, "cannot make SQLite commits sync");
                    }
                    (Answer::Now, None)
                }
            }
        }
    };
    let mut batch = Vec::with_capacity(max_batch);
    let mut known = Known::default();
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&conn, &mut batch, &counters, &mut known, &answer);
    }
    // Every committed write is answered (after its sync) before the connection closes.
    drop(answer);
    if let Some(syncer) = syncer {
        let _ = syncer.join();
    }
    // The last handle is gone: closing the connection checkpoints the WAL into the file.
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the SQLite writer connection failed");
    }
}

/// Carries out `batch` (emptying it) in as few transactions as possible: normally one. A
/// request's own failure (a conflict, a stale fence) is rolled back to its savepoint and
/// answered alone; a failure of the transaction itself answers every request it carried with
/// that failure (nothing of theirs was written), and the requests not yet tried go on in a new
/// transaction.
fn commit_batch(
    conn: &Connection,
    batch: &mut Vec<Job>,
    counters: &Counters,
    known: &mut Known,
    answer: &Answer,
) {
    let mut todo: std::collections::VecDeque<Job> = batch.drain(..).collect();
    while !todo.is_empty() {
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            known.forget();
            let e = Arc::new(e);
            for job in todo.drain(..) {
                let _ = job.reply.send(Err(SqlError::Batch(e.clone()).into()));
            }
            return;
        }
        let mut answered: Answers = Vec::with_capacity(todo.len());
        let mut broken = None;
        let mut own = None;
        while let Some(job) = todo.pop_front() {
            if let Err(e) = run_cached(conn, "SAVEPOINT parq_write") {
                // Answered with the transaction's failure below, so a failure that repeats
                // cannot keep the writer from making progress.
                answered.push((job.reply, Ok(Done::Unit)));
                broken = Some(e);
                break;
            }
            // A panic in one write is that write's failure, not the writer's end.
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| apply(conn, job.op, known)))
                    .unwrap_or_else(|_| {
                        Err(Error::backend("sqlite", "a write panicked; it was rolled back"))
                    });
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back on its own (a full disk, an I/O
                // error): this write is answered with its own error, which says why; the
                // others of the transaction with the same cause.
                let code =
                    result.as_ref().err().and_then(sqlite_cause).unwrap_or(rusqlite::ffi::SQLITE_ABORT);
                broken = Some(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(code),
                    Some("SQLite rolled the transaction back".into()),
                ));
                own = Some((job.reply, result));
                break;
            }
            let end = if result.is_ok() {
                run_cached(conn, "RELEASE parq_write")
            } else {
                run_cached(conn, "ROLLBACK TO parq_write")
                    .and_then(|()| run_cached(conn, "RELEASE parq_write"))
            };
            answered.push((job.reply, result));
            if let Err(e) = end {
                broken = Some(e);
                break;
            }
        }
        let outcome = match broken {
            Some(e) => Err(e),
            None => conn.execute_batch("COMMIT"),
        };
        match outcome {
            Ok(()) => {
                let n = answered.len() as u64;
                counters.transactions.fetch_add(1, Ordering::Relaxed);
                counters.writes.fetch_add(n, Ordering::Relaxed);
                counters.largest.fetch_max(n, Ordering::Relaxed);
                answer.send(answered);
            }
            Err(e) => {
                known.forget();
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                tracing::warn!(error = %e, writes = answered.len(), "an SQLite write transaction failed");
                let e = Arc::new(e);
                for (reply, _) in answered {
                    let _ = reply.send(Err(SqlError::Batch(e.clone()).into()));
                }
            }
        }
        if let Some((reply, result)) = own {
            let _ = reply.send(result);
        }
    }
}

/// Runs a statement without parameters from the connection's statement cache (savepoints run
/// for every write: parsing them each time is measurable).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// The SQLite result code (extended) behind a write's error, if SQLite caused it.
fn sqlite_cause(e: &Error) -> Option<std::ffi::c_int> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        let found = match x.downcast_ref::<SqlError>() {
            Some(SqlError::Db(r)) => Some(r),
            Some(SqlError::Batch(r)) => Some(&**r),
            _ => x.downcast_ref::<rusqlite::Error>(),
        };
        if let Some(code) = found.and_then(rusqlite::Error::sqlite_error) {
            return Some(code.extended_code);
        }
        cur = x.source();
    }
    None
}

fn apply(conn: &Connection, op: Op, known: &mut Known) -> Result<Done> {
    match op {
        Op::PutOperator(o) => put_operator(conn, &o).map(|()| Done::Unit),
        Op::PutLot(l) => put_lot(conn, &l).map(|()| Done::Unit),
        Op::PutSpot(s) => put_spot(conn, &s).map(|()| Done::Unit),
        Op::Hold(req, now) => hold(conn, req, now, known).map(|w| Done::Written(Box::new(w))),
        Op::Update(u, now) => update(conn, u, now).map(|w| Done::Written(Box::new(w))),
        Op::RecordScan(r) => crate::revocations::record_scan(conn, &r).map(|r| Done::Scan(Box::new(r))),
    }
}

fn put_operator(conn: &Connection, o: &Operator) -> Result<()> {
    let doc = rows::to_doc(o)?;
    conn.prepare_cached(
        "INSERT INTO operators (id, doc) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
    )
    .and_then(|mut st| st.execute(params![id(&o.id.0), doc]))
    .sql()?;
    Ok(())
}

fn put_lot(conn: &Connection, lot: &Lot) -> Result<()> {
    let doc = rows::to_doc(lot)?;
    let operator_known = conn
        .prepare_cached("SELECT 1 FROM operators WHERE id = ?1")
        .and_then(|mut st| st.exists([id(&lot.operator.0)]))
        .sql()?;
    if !operator_known {
        return Err(Error::not_found(format!("operator {}", lot.operator)));
    }
    let owner: Option<String> = conn
        .prepare_cached("SELECT operator_id FROM lots WHERE id = ?1")
        .and_then(|mut st| st.query_row([id(&lot.id.0)], |r| r.get(0)).optional())
        .sql()?;
    if owner.is_some_and(|o| o != id(&lot.operator.0)) {
        return Err(Error::invalid("operator", "a lot cannot move to another operator"));
    }
    conn.prepare_cached(
        "INSERT INTO lots (id, operator_id, lat, lon, doc) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (id) DO UPDATE SET lat = excluded.lat, lon = excluded.lon, doc = excluded.doc",
    )
    .and_then(|mut st| {
        st.execute(params![id(&lot.id.0), id(&lot.operator.0), lot.location.lat, lot.location.lon, doc])
    })
    .sql()?;
    Ok(())
}

fn put_spot(conn: &Connection, spot: &Spot) -> Result<()> {
    let attributes = rows::to_doc(&spot.attributes)?;
    let lot_known = conn
        .prepare_cached("SELECT 1 FROM lots WHERE id = ?1")
        .and_then(|mut st| st.exists([id(&spot.lot.0)]))
        .sql()?;
    if !lot_known {
        return Err(Error::not_found(format!("lot {}", spot.lot)));
    }
    let n = conn
        .prepare_cached(
            "INSERT INTO spots (id, lot_id, label, attributes) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (id) DO UPDATE SET label = excluded.label, attributes = excluded.attributes \
             WHERE spots.lot_id = excluded.lot_id",
        )
        .and_then(|mut st| st.execute(params![id(&spot.id.0), id(&spot.lot.0), spot.label, attributes]))
        .sql()?;
    if n == 0 {
        return Err(Error::invalid("lot", "a spot cannot move to another lot"));
    }
    Ok(())
}

/// Looks up an idempotency claim: `Some(id)` of the reservation to replay for a repeated
/// request, `None` for a new key (recorded by [`record_claim`] with the change).
fn check_claim(conn: &Connection, claim: &IdempotencyClaim) -> Result<Option<uuid::Uuid>> {
    let found: Option<(Vec<u8>, String)> = conn
        .prepare_cached("SELECT fingerprint, reservation_id FROM idempotency WHERE scope = ?1 AND key = ?2")
        .and_then(|mut st| {
            st.query_row(params![claim.scope, claim.key], |r| Ok((r.get(0)?, r.get(1)?))).optional()
        })
        .sql()?;
    match found {
        None => Ok(None),
        Some((fp, _)) if fp != claim.fingerprint => {
            Err(Error::IdempotencyMismatch { key: claim.key.clone() })
        }
        Some((_, rid)) => {
            Ok(Some(uuid::Uuid::parse_str(&rid).map_err(|e| Error::from(SqlError::malformed("id", e)))?))
        }
    }
}

fn record_claim(
    conn: &Connection,
    claim: &IdempotencyClaim,
    reservation: &uuid::Uuid,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO idempotency (scope, key, fingerprint, reservation_id, created_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut st| st.execute(params![claim.scope, claim.key, &claim.fingerprint[..], id(reservation), now]))
    .sql()?;
    Ok(())
}

/// The reservation as stored, if any.
pub(crate) fn read_reservation(conn: &Connection, rid: &uuid::Uuid) -> Result<Option<Reservation>> {
    let row = conn
        .prepare_cached(&format!("SELECT {RES_COLS} FROM reservations WHERE id = ?1"))
        .and_then(|mut st| st.query_row([id(rid)], |r| Ok(rows::reservation(r))).optional())
        .sql()?;
    Ok(row.transpose()?)
}

fn replay(conn: &Connection, rid: uuid::Uuid) -> Result<Written> {
    let reservation =
        read_reservation(conn, &rid)?.ok_or_else(|| Error::not_found(format!("reservation {rid}")))?;
    Ok(Written { reservation, events: Vec::new(), replayed: true })
}

/// The reservations of `spot` that block `[start, end)` at `now`, other than `except`: `None`
/// when a live one blocks, else the lapsed holds to retire.
///
/// Reservations whose stored state is live never overlap one another on a spot (every writer
/// retires lapsed overlaps before it writes, in this serialised transaction), so the only one
/// starting before `start` that can reach into the window is the last one: the check reads
/// that one and those starting inside the window, whatever the spot's history.
fn check_free(
    conn: &Connection,
    spot: &str,
    (start, end): (i64, i64),
    now: i64,
    except: &str,
) -> Result<Option<Vec<String>>> {
    let sql = format!(
        "SELECT id, state IN {HOLDS} AND hold_expires_ns <= ?4 FROM reservations \
             WHERE spot_id = ?1 AND state IN {LIVE} AND start_ns >= ?2 AND start_ns < ?3 AND id <> ?5 \
         UNION ALL \
         SELECT id, lapsed FROM (SELECT id, state IN {HOLDS} AND hold_expires_ns <= ?4 AS lapsed, end_ns \
             FROM reservations WHERE spot_id = ?1 AND state IN {LIVE} AND start_ns < ?2 AND id <> ?5 \
             ORDER BY start_ns DESC LIMIT 1) WHERE end_ns > ?2"
    );
    let found: Vec<(String, bool)> = conn
        .prepare_cached(&sql)
        .and_then(|mut st| {
            st.query_map(params![spot, start, end, now, except], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
        })
        .sql()?;
    let mut lapsed = Vec::with_capacity(found.len());
    for (rid, is_lapsed) in found {
        if !is_lapsed {
            return Ok(None);
        }
        lapsed.push(rid);
    }
    Ok(Some(lapsed))
}

/// Events of one write, numbered from the lot's counter when they are stored.
#[derive(Default)]
struct Outbox {
    events: Vec<Event>,
}

impl Outbox {
    fn push(&mut self, r: &Reservation, kind: EventKind, at: Timestamp) {
        self.events.push(Event::of(r, kind, 0, at));
    }

    /// Numbers the events from the lot's counter and stores them.
    fn store(mut self, conn: &Connection, lot: LotId, at: i64) -> Result<Vec<Event>> {
        let n = self.events.len() as i64;
        let last: i64 = conn
            .prepare_cached("UPDATE lots SET last_seq = last_seq + ?2 WHERE id = ?1 RETURNING last_seq")
            .and_then(|mut st| st.query_row(params![id(&lot.0), n], |r| r.get(0)))
            .sql()?;
        let mut st = conn
            .prepare_cached(
                "INSERT INTO events (lot_id, seq, at_ns, kind, reservation_id, spot_id, user_id, start_ns, \
                 end_ns, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .sql()?;
        for (i, e) in self.events.iter_mut().enumerate() {
            let seq = last - n + 1 + i as i64;
            e.seq = seq as u64;
            let (start, end) = window_ns(&e.window)?;
            st.execute(params![
                id(&lot.0),
                seq,
                at,
                rows::kind_str(e.kind),
                id(&e.reservation.0),
                id(&e.spot.0),
                id(&e.user.0),
                start,
                end,
                e.state.as_str()
            ])
            .sql()?;
        }
        Ok(self.events)
    }
}

/// Marks lapsed holds expired, recording their events.
fn retire(conn: &Connection, lapsed: &[String], now: Timestamp, now_ns: i64, out: &mut Outbox) -> Result<()> {
    for rid in lapsed {
        let r = conn
            .prepare_cached(&format!(
                "UPDATE reservations SET state = 'expired' \
                 WHERE id = ?1 AND state IN {HOLDS} AND hold_expires_ns <= ?2 RETURNING {RES_COLS}"
            ))
            .and_then(|mut st| st.query_row(params![rid, now_ns], |r| Ok(rows::reservation(r))).optional())
            .sql()?
            .transpose()?;
        if let Some(r) = r {
            out.push(&r, EventKind::Expired, now);
        }
    }
    Ok(())
}

/// The spot's last fencing number, if the spot is in `lot`.
fn spot_fence(conn: &Connection, spot: &SpotId, lot: &LotId) -> Result<Option<i64>> {
    conn.prepare_cached("SELECT last_fence FROM spots WHERE id = ?1 AND lot_id = ?2")
        .and_then(|mut st| st.query_row(params![id(&spot.0), id(&lot.0)], |r| r.get(0)).optional())
        .sql()
}

/// Records a new idempotency claim for `reservation`, or, when the key is known, says what the
/// earlier request made: `Some(id)` to replay (`IdempotencyMismatch` for another request under
/// the same key). The claim is written first, so a new key (the usual case) costs one
/// statement; a write that is refused afterwards rolls it back with its savepoint.
fn claim_first(
    conn: &Connection,
    claim: &IdempotencyClaim,
    reservation: &uuid::Uuid,
    now: i64,
) -> Result<Option<uuid::Uuid>> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO idempotency (scope, key, fingerprint, reservation_id, created_ns) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (scope, key) DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![claim.scope, claim.key, &claim.fingerprint[..], id(reservation), now])
        })
        .sql()?;
    if inserted == 1 {
        return Ok(None);
    }
    match check_claim(conn, claim)? {
        Some(rid) => Ok(Some(rid)),
        None => Err(Error::backend("sqlite", "an idempotency record vanished inside its transaction")),
    }
}

/// The operator of `lot` (`NotFound` when there is no such lot).
fn lot_operator<'k>(conn: &Connection, known: &'k mut Known, lot: &LotId) -> Result<&'k str> {
    if !known.lot_operator.contains_key(lot) {
        let owner: String = conn
            .prepare_cached("SELECT operator_id FROM lots WHERE id = ?1")
            .and_then(|mut st| st.query_row([id(&lot.0)], |r| r.get(0)).optional())
            .sql()?
            .ok_or_else(|| Error::not_found(format!("lot {lot}")))?;
        known.lot_operator.insert(*lot, owner);
    }
    Ok(known.lot_operator.get(lot).map(String::as_str).unwrap_or_default())
}

/// Whether `spot` is a spot of `lot`.
fn spot_in_lot(conn: &Connection, known: &mut Known, spot: &SpotId, lot: &LotId) -> Result<bool> {
    if let Some(l) = known.spot_lot.get(spot) {
        return Ok(l == lot);
    }
    let found: Option<String> = conn
        .prepare_cached("SELECT lot_id FROM spots WHERE id = ?1")
        .and_then(|mut st| st.query_row([id(&spot.0)], |r| r.get(0)).optional())
        .sql()?;
    let Some(found) = found else { return Ok(false) };
    let found = LotId(uuid::Uuid::parse_str(&found).map_err(|e| Error::from(SqlError::malformed("id", e)))?);
    known.spot_lot.insert(*spot, found);
    Ok(found == *lot)
}

fn hold(conn: &Connection, req: HoldRequest, now: Timestamp, known: &mut Known) -> Result<Written> {
    let HoldRequest { reservation: r, target, limits, lock_fence, idempotency } = req;
    if r.state != ReservationState::Held {
        return Err(Error::invalid("state", "a hold is inserted in state held"));
    }
    let window = window_ns(&r.window)?;
    let (deadline, created, now_ns) = (ns(r.hold_expires_at)?, ns(r.created_at)?, ns(now)?);
    let lock_fence = lock_fence.map(fence_i64).transpose()?;
    let payment = r.payment.as_deref().map(rows::to_doc).transpose()?;

    if let Some(claim) = &idempotency
        && let Some(rid) = claim_first(conn, claim, &r.id.0, now_ns)?
    {
        return replay(conn, rid);
    }
    let operator = id(&r.operator.0);
    let owned = lot_operator(conn, known, &r.lot)? == operator;
    if limits.any() {
        let (in_lot, in_op): (i64, i64) = conn
            .prepare_cached(&format!(
                "SELECT count(*) FILTER (WHERE lot_id = ?2), count(*) FILTER (WHERE operator_id = ?3) \
                 FROM reservations WHERE user_id = ?1 AND state IN {HOLDS} AND hold_expires_ns > ?4"
            ))
            .and_then(|mut st| {
                st.query_row(params![id(&r.user.0), id(&r.lot.0), operator, now_ns], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
            })
            .sql()?;
        if limits.per_lot.is_some_and(|l| in_lot >= i64::from(l)) {
            return Err(Error::LimitExceeded {
                limit: format!("{in_lot} live holds per driver in this lot"),
            });
        }
        if limits.per_operator.is_some_and(|l| in_op >= i64::from(l)) {
            return Err(Error::LimitExceeded { limit: format!("{in_op} live holds per driver") });
        }
    }
    if !owned {
        return Err(Error::invalid("operator", "the lot belongs to another operator"));
    }

    let candidates = match &target {
        HoldTarget::Spot(spot) => std::slice::from_ref(spot),
        HoldTarget::AnyOf(spots) => spots.as_slice(),
    };
    let mut chosen = None;
    for spot in candidates {
        if !spot_in_lot(conn, known, spot, &r.lot)? {
            return Err(Error::not_found(format!("spot {spot} in lot {}", r.lot)));
        }
        if let Some(lapsed) = check_free(conn, &id(&spot.0), window, now_ns, "")? {
            chosen = Some((*spot, lapsed));
            break;
        }
    }
    let Some((spot, lapsed)) = chosen else {
        return Err(match &target {
            HoldTarget::Spot(spot) => Error::spot_taken(*spot),
            HoldTarget::AnyOf(_) => Error::Conflict { reason: ConflictReason::NoFreeSpot },
        });
    };

    let mut out = Outbox::default();
    retire(conn, &lapsed, now, now_ns, &mut out)?;
    // The spot's next fencing number, advanced in this transaction: max(last + 1, lock fence).
    let spot_id = id(&spot.0);
    let fence: i64 = conn
        .prepare_cached(
            "UPDATE spots SET last_fence = max(last_fence + 1, ?2) WHERE id = ?1 AND lot_id = ?3 \
             RETURNING last_fence",
        )
        .and_then(|mut st| {
            st.query_row(params![spot_id, lock_fence.unwrap_or(0), id(&r.lot.0)], |row| row.get(0)).optional()
        })
        .sql()?
        .ok_or_else(|| Error::not_found(format!("spot {spot} in lot {}", r.lot)))?;
    let stored = Reservation { spot, fence: fence as u64, state: ReservationState::Held, ..r };
    conn.prepare_cached(
        "INSERT INTO reservations (id, operator_id, lot_id, spot_id, user_id, start_ns, end_ns, state, fence, \
         price_minor, price_currency, hold_expires_ns, created_ns, payment) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'held', ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .and_then(|mut st| {
        st.execute(params![
            id(&stored.id.0),
            operator,
            id(&stored.lot.0),
            spot_id,
            id(&stored.user.0),
            window.0,
            window.1,
            fence,
            stored.price.minor,
            stored.price.currency.as_str(),
            deadline,
            created,
            payment
        ])
    })
    .sql()?;
    out.push(&stored, EventKind::Held, now);
    let events = out.store(conn, stored.lot, now_ns)?;
    Ok(Written { reservation: stored, events, replayed: false })
}

fn update(conn: &Connection, u: Update, now: Timestamp) -> Result<Written> {
    let now_ns = ns(now)?;
    let new_window = u.window.as_ref().map(window_ns).transpose()?;
    let new_deadline = u.hold_expires_at.map(ns).transpose()?;
    if let Some(claim) = &u.idempotency
        && let Some(rid) = check_claim(conn, claim)?
    {
        return replay(conn, rid);
    }
    let cur =
        read_reservation(conn, &u.id.0)?.ok_or_else(|| Error::not_found(format!("reservation {}", u.id)))?;
    let last_fence = spot_fence(conn, &cur.spot, &cur.lot)?
        .ok_or_else(|| Error::from(SqlError::malformed("reservation", "its spot is missing")))?;
    // The write transaction is the only writer of the file until it commits: the core decides.
    let effective = u.check(cur.fence, cur.state, cur.hold_expires_at, now)?;
    let old = window_ns(&cur.window)?;
    let range = new_window.unwrap_or(old);
    let moved = range != old;
    let rid = id(&u.id.0);
    let open_session: Option<i64> = match &u.session {
        Some(SessionChange::Exit { .. }) => {
            let open: Option<i64> = conn
                .prepare_cached("SELECT max(n) FROM sessions WHERE owner_id = ?1 AND exited_ns IS NULL")
                .and_then(|mut st| st.query_row([&rid], |r| r.get(0)))
                .sql()?;
            if open.is_none() {
                return Err(Error::invalid("session", "no open gate session to close"));
            }
            open
        }
        _ => None,
    };
    let mut out = Outbox::default();
    if u.needs_free_window(effective, moved) {
        let lapsed = check_free(conn, &id(&cur.spot.0), range, now_ns, &rid)?
            .ok_or_else(|| Error::spot_taken(cur.spot))?;
        retire(conn, &lapsed, now, now_ns, &mut out)?;
    }
    let fence = if u.bump_fence { last_fence + 1 } else { fence_i64(cur.fence)? };
    let mut next = cur;
    next.state = u.to;
    if let Some(w) = u.window {
        next.window = w;
    }
    next.fence = fence as u64;
    if let Some(p) = u.price {
        next.price = p;
    }
    if let Some(p) = u.payment {
        next.payment = Some(Box::new(p));
    }
    if let Some(d) = u.hold_expires_at {
        next.hold_expires_at = d;
    }
    match &u.session {
        Some(SessionChange::Enter(s)) => {
            let exited = s.exited_at.map(ns).transpose()?;
            let entered = ns(s.entered_at)?;
            conn.prepare_cached(
                "INSERT INTO sessions (owner_id, id, reservation_id, entered_ns, entry_gate, exited_ns, exit_gate, \
                 entry_scan, exit_scan) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    rid,
                    id(&s.id.0),
                    id(&s.reservation.0),
                    entered,
                    s.entry_gate,
                    exited,
                    s.exit_gate,
                    s.entry_scan,
                    s.exit_scan
                ])
            })
            .sql()?;
        }
        Some(SessionChange::Exit { at, gate, scan }) => {
            let at = ns(*at)?;
            conn.prepare_cached(
                "UPDATE sessions SET exited_ns = ?2, exit_gate = ?3, exit_scan = ?4 WHERE n = ?1",
            )
            .and_then(|mut st| st.execute(params![open_session, at, gate, scan]))
            .sql()?;
        }
        None => {}
    }
    let payment = next.payment.as_deref().map(rows::to_doc).transpose()?;
    let deadline = match new_deadline {
        Some(d) => d,
        None => ns(next.hold_expires_at)?,
    };
    conn.prepare_cached(
        "UPDATE reservations SET state = ?2, start_ns = ?3, end_ns = ?4, fence = ?5, price_minor = ?6, \
         price_currency = ?7, hold_expires_ns = ?8, payment = ?9 WHERE id = ?1",
    )
    .and_then(|mut st| {
        st.execute(params![
            rid,
            next.state.as_str(),
            range.0,
            range.1,
            fence,
            next.price.minor,
            next.price.currency.as_str(),
            deadline,
            payment
        ])
    })
    .sql()?;
    if u.bump_fence {
        conn.prepare_cached("UPDATE spots SET last_fence = ?2 WHERE id = ?1")
            .and_then(|mut st| st.execute(params![id(&next.spot.0), fence]))
            .sql()?;
    }
    out.push(&next, u.event, now);
    let events = out.store(conn, next.lot, now_ns)?;
    if let Some(claim) = &u.idempotency {
        record_claim(conn, claim, &u.id.0, now_ns)?;
    }
    if let Some(nr) = &u.revoke {
        crate::revocations::insert(conn, next.id, nr, now)?;
    }
    Ok(Written { reservation: next, events, replayed: false })
}
