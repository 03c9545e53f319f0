//! Revocations and offline gate readings: the statements of the store's revocation and scan
//! methods. Cancellations are rare, so every revocation takes the next number from one
//! counter row, locked until its transaction commits (see `migrations/0003_revocations.sql`).

use deadpool_postgres::GenericClient;
use jiff::Timestamp;
use parq_core::pass::{PassNonce, Revocation, RevocationDelta, RevocationReason, ScanRecord};
use parq_core::{Error, LotId, NewRevocation, ReservationId, Result};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::PgError;
use crate::rows;
use crate::sql::ident;

type Param<'a> = &'a (dyn ToSql + Sync);

async fn query(c: &impl GenericClient, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, PgError> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query(&st, params).await?)
}

fn reason_str(r: RevocationReason) -> Result<String> {
    match serde_json::to_value(r) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(Error::invalid("reason", "a revocation reason serialises as a string")),
    }
}

fn revocation(row: &Row) -> Result<Revocation, PgError> {
    let version: i64 = row.try_get(0).map_err(PgError::Db)?;
    let nonce: Option<Vec<u8>> = row.try_get(2).map_err(PgError::Db)?;
    let pass = nonce
        .map(|n| {
            <[u8; 16]>::try_from(n.as_slice())
                .map(PassNonce)
                .map_err(|_| PgError::malformed("pass_nonce", "not 16 bytes"))
        })
        .transpose()?;
    let reason: String = row.try_get(3).map_err(PgError::Db)?;
    let reason = serde_json::from_value(serde_json::Value::String(reason.clone()))
        .map_err(|_| PgError::malformed("reason", format!("unknown revocation reason {reason:?}")))?;
    let at: std::time::SystemTime = row.try_get(4).map_err(PgError::Db)?;
    Ok(Revocation {
        version: u64::try_from(version).map_err(|_| PgError::malformed("version", "negative"))?,
        reservation: ReservationId(row.try_get(1).map_err(PgError::Db)?),
        pass,
        reason,
        at: Timestamp::try_from(at).map_err(|e| PgError::malformed("at", e))?,
    })
}

/// Records a revocation of `reservation` in the transaction `tx`, with the next version.
pub(crate) async fn insert(
    tx: &impl GenericClient,
    schema: &str,
    reservation: ReservationId,
    nr: &NewRevocation,
    at: Timestamp,
) -> Result<()> {
    let q = ident(schema);
    let sql = format!(
        "WITH v AS (UPDATE {q}.revocation_counter SET version = version + 1 RETURNING version) \
         INSERT INTO {q}.revocations (version, reservation_id, pass_nonce, reason, at) \
         SELECT v.version, $1, $2, $3, $4 FROM v"
    );
    let nonce = nr.pass.map(|n| n.0.to_vec());
    let reason = reason_str(nr.reason)?;
    query(tx, &sql, &[&reservation.0, &nonce, &reason, &rows::sys(at)?]).await?;
    Ok(())
}

/// See `ReservationStore::revocations`.
pub(crate) async fn since(
    c: &impl GenericClient,
    schema: &str,
    after: u64,
    limit: usize,
) -> Result<RevocationDelta> {
    let q = ident(schema);
    // The latest version first: every version up to it is committed (see the migration), so
    // the page read next has no holes.
    let latest = query(c, &format!("SELECT version FROM {q}.revocation_counter"), &[]).await?;
    let latest: i64 = latest.first().map_or(Ok(0), |r| r.try_get(0)).map_err(PgError::Db)?;
    let latest = u64::try_from(latest).unwrap_or(0);
    let from = after.min(latest);
    let rows = query(
        c,
        &format!(
            "SELECT version, reservation_id, pass_nonce, reason, at FROM {q}.revocations \
             WHERE version > $1 AND version <= $2 ORDER BY version LIMIT $3"
        ),
        &[&(from as i64), &(latest as i64), &i64::try_from(limit).unwrap_or(i64::MAX)],
    )
    .await?;
    let revocations: Vec<Revocation> = rows.iter().map(revocation).collect::<Result<_, _>>()?;
    let to = revocations.last().map_or(from, |r| r.version);
    Ok(RevocationDelta { from, to, revocations })
}

/// See `ReservationStore::revocations_of`.
pub(crate) async fn of(
    c: &impl GenericClient,
    schema: &str,
    reservation: ReservationId,
) -> Result<Vec<Revocation>> {
    let q = ident(schema);
    let rows = query(
        c,
        &format!(
            "SELECT version, reservation_id, pass_nonce, reason, at FROM {q}.revocations \
             WHERE reservation_id = $1 ORDER BY version"
        ),
        &[&reservation.0],
    )
    .await?;
    Ok(rows.iter().map(revocation).collect::<Result<_, _>>()?)
}

/// See `ReservationStore::record_scan`.
pub(crate) async fn record_scan(
    c: &impl GenericClient,
    schema: &str,
    record: &ScanRecord,
) -> Result<ScanRecord> {
    let q = ident(schema);
    let lots = query(c, &format!("SELECT 1 FROM {q}.lots WHERE id = $1"), &[&record.lot.0]).await?;
    if lots.is_empty() {
        return Err(Error::not_found(format!("lot {}", record.lot)));
    }
    let doc = rows::to_doc(record)?;
    // Inserted, or the earlier record: one statement, so two uploads at once agree.
    let rows = query(
        c,
        &format!(
            "WITH ins AS (INSERT INTO {q}.gate_scans (lot_id, scan_id, doc) VALUES ($1, $2, $3::text::jsonb) \
                 ON CONFLICT (lot_id, scan_id) DO NOTHING RETURNING doc) \
             SELECT doc::text FROM ins"
        ),
        &[&record.lot.0, &record.scan_id, &doc],
    )
    .await?;
    if rows.is_empty() {
        return scan_record(c, schema, record.lot, &record.scan_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("scan {}", record.scan_id)));
    }
    Ok(rows::doc(&rows[0], 0, "scan record")?)
}

/// See `ReservationStore::scan_record`.
pub(crate) async fn scan_record(
    c: &impl GenericClient,
    schema: &str,
    lot: LotId,
    scan_id: &str,
) -> Result<Option<ScanRecord>> {
    let q = ident(schema);
    let rows = query(
        c,
        &format!("SELECT doc::text FROM {q}.gate_scans WHERE lot_id = $1 AND scan_id = $2"),
        &[&lot.0, &scan_id],
    )
    .await?;
    rows.first().map(|r| rows::doc(r, 0, "scan record").map_err(Into::into)).transpose()
}
