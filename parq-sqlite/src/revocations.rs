//! Revocations and offline gate readings: the statements of the store's revocation and scan
//! methods (see `migrations/0002_revocations.sql`).

use jiff::Timestamp;
use parq_core::pass::{PassNonce, Revocation, RevocationDelta, RevocationReason, ScanRecord};
use parq_core::{Error, LotId, NewRevocation, ReservationId, Result};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::{SqlError, SqlResult};
use crate::rows::{self, id, ns};

const COLS: &str = "version, reservation_id, pass_nonce, reason, at_ns";

fn reason_str(r: RevocationReason) -> Result<String> {
    match serde_json::to_value(r) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(Error::invalid("reason", "a revocation reason serialises as a string")),
    }
}

type Raw = (i64, String, Option<Vec<u8>>, String, i64);

fn raw(r: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn revocation((version, rid, nonce, reason, at): Raw) -> Result<Revocation, SqlError> {
    let pass = nonce
        .map(|n| {
            <[u8; 16]>::try_from(n.as_slice())
                .map(PassNonce)
                .map_err(|_| SqlError::malformed("pass_nonce", "not 16 bytes"))
        })
        .transpose()?;
    let reason = serde_json::from_value(serde_json::Value::String(reason.clone()))
        .map_err(|_| SqlError::malformed("reason", format!("unknown revocation reason {reason:?}")))?;
    Ok(Revocation {
        version: u64::try_from(version).map_err(|_| SqlError::malformed("version", "negative"))?,
        reservation: ReservationId(uuid::Uuid::parse_str(&rid).map_err(|e| SqlError::malformed("id", e))?),
        pass,
        reason,
        at: rows::stamp(at),
    })
}

fn list(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<Vec<Revocation>> {
    let raws: Vec<Raw> = conn.prepare_cached(sql).and_then(|mut st| st.query_map(p, raw)?.collect()).sql()?;
    Ok(raws.into_iter().map(revocation).collect::<Result<_, _>>()?)
}

/// Records a revocation of `reservation` with the next version, in the writer's transaction.
pub(crate) fn insert(
    conn: &Connection,
    reservation: ReservationId,
    nr: &NewRevocation,
    at: Timestamp,
) -> Result<()> {
    let version: i64 = conn
        .prepare_cached("UPDATE revocation_counter SET version = version + 1 RETURNING version")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .sql()?;
    let nonce = nr.pass.map(|n| n.0.to_vec());
    let (reason, at) = (reason_str(nr.reason)?, ns(at)?);
    conn.prepare_cached(
        "INSERT INTO revocations (version, reservation_id, pass_nonce, reason, at_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut st| st.execute(params![version, id(&reservation.0), nonce, reason, at]))
    .sql()?;
    Ok(())
}

/// See `ReservationStore::revocations` (a read connection: one transaction, one snapshot).
pub(crate) fn since(conn: &Connection, after: u64, limit: usize) -> Result<RevocationDelta> {
    let tx = conn.unchecked_transaction().sql()?;
    let latest: i64 = tx
        .prepare_cached("SELECT version FROM revocation_counter")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .sql()?;
    let latest = u64::try_from(latest).unwrap_or(0);
    let from = after.min(latest);
    let revocations = list(
        &tx,
        &format!(
            "SELECT {COLS} FROM revocations WHERE version > ?1 AND version <= ?2 ORDER BY version LIMIT ?3"
        ),
        params![from as i64, latest as i64, i64::try_from(limit).unwrap_or(i64::MAX)],
    )?;
    tx.finish().sql()?;
    let to = revocations.last().map_or(from, |r| r.version);
    Ok(RevocationDelta { from, to, revocations })
}

/// See `ReservationStore::revocations_of`.
pub(crate) fn of(conn: &Connection, reservation: ReservationId) -> Result<Vec<Revocation>> {
    list(
        conn,
        &format!("SELECT {COLS} FROM revocations WHERE reservation_id = ?1 ORDER BY version"),
        [id(&reservation.0)],
    )
}

/// See `ReservationStore::record_scan`, in the writer's transaction.
pub(crate) fn record_scan(conn: &Connection, record: &ScanRecord) -> Result<ScanRecord> {
    let lid = id(&record.lot.0);
    let lot =
        conn.prepare_cached("SELECT 1 FROM lots WHERE id = ?1").and_then(|mut st| st.exists([&lid])).sql()?;
    if !lot {
        return Err(Error::not_found(format!("lot {}", record.lot)));
    }
    let text = rows::to_doc(record)?;
    conn.prepare_cached(
        "INSERT INTO gate_scans (lot_id, scan_id, doc) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )
    .and_then(|mut st| st.execute(params![lid, record.scan_id, text]))
    .sql()?;
    scan_record(conn, record.lot, &record.scan_id)?
        .ok_or_else(|| Error::backend("sqlite", "a recorded scan is not there"))
}

/// See `ReservationStore::scan_record`.
pub(crate) fn scan_record(conn: &Connection, lot: LotId, scan_id: &str) -> Result<Option<ScanRecord>> {
    let doc = conn
        .prepare_cached("SELECT doc FROM gate_scans WHERE lot_id = ?1 AND scan_id = ?2")
        .and_then(|mut st| {
            st.query_row(params![id(&lot.0), scan_id], |r| Ok(rows::doc(r, 0, "scan record"))).optional()
        })
        .sql()?;
    Ok(doc.transpose()?)
}
