//! The records in the SQLite file of the store (`http_idempotency`), so a retry that comes
//! after a restart, or reaches another process on the same file, is answered the same way.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use jiff::Timestamp;
use parq_core::Result;
use parq_sqlite::rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Begin, Fingerprint, IdempotencyStore, RecordId, STALE, Stored, TTL};
use crate::sqlite::SqliteDb;

/// The `http_idempotency` table of the server's SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteRecords {
    db: Arc<SqliteDb>,
}

impl SqliteRecords {
    /// The records in `db` (opened, so migrated).
    pub fn new(db: Arc<SqliteDb>) -> Self {
        Self { db }
    }
}

fn now_us() -> i64 {
    Timestamp::now().as_microsecond()
}

fn us(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

type Row = (Vec<u8>, Option<i64>, Option<String>, Option<Vec<u8>>, i64, Option<i64>);

#[async_trait]
impl IdempotencyStore for SqliteRecords {
    async fn begin(&self, id: &RecordId, fingerprint: &Fingerprint) -> Result<Begin> {
        let (scope, key, fp) = (id.scope.clone(), id.key.clone(), fingerprint.to_vec());
        self.db
            .run(move |c| {
                // One write transaction: the look, the claim or the takeover are one step.
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_us();
                let row: Option<Row> = tx
                    .query_row(
                        "SELECT fingerprint, status, headers, body, started_at_us, done_at_us \
                         FROM http_idempotency WHERE scope = ?1 AND key = ?2",
                        params![scope, key],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                    )
                    .optional()?;
                let claim = match &row {
                    None => true,
                    Some((_, status, _, _, started, done)) => {
                        (status.is_none() && *started < now - us(STALE))
                            || done.is_some_and(|d| d < now - us(TTL))
                    }
                };
                if claim {
                    tx.execute(
                        "INSERT INTO http_idempotency (scope, key, fingerprint, started_at_us) \
                         VALUES (?1, ?2, ?3, ?4) \
                         ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, \
                             started_at_us = excluded.started_at_us, status = NULL, headers = NULL, \
                             body = NULL, done_at_us = NULL",
                        params![scope, key, fp, now],
                    )?;
                    tx.commit()?;
                    return Ok(Begin::Run);
                }
                tx.commit()?;
                let Some((f, status, headers, body, _, _)) = row else { return Ok(Begin::Run) };
                if f != fp {
                    return Ok(Begin::Mismatch);
                }
                let Some(status) = status else { return Ok(Begin::InProgress) };
                let status = u16::try_from(status)
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut map = HeaderMap::new();
                if let Some(obj) = headers
                    .and_then(|t| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&t).ok())
                {
                    for (k, v) in obj {
                        if let (Ok(k), Some(Ok(v))) =
                            (HeaderName::try_from(k), v.as_str().map(HeaderValue::from_str))
                        {
                            map.insert(k, v);
                        }
                    }
                }
                Ok(Begin::Replay(Stored {
                    status,
                    headers: map,
                    body: Bytes::from(body.unwrap_or_default()),
                }))
            })
            .await
    }

    async fn complete(&self, id: &RecordId, _: &Fingerprint, response: Stored) -> Result<()> {
        let (scope, key) = (id.scope.clone(), id.key.clone());
        let h: serde_json::Map<String, serde_json::Value> = response
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.into())))
            .collect();
        let h = serde_json::Value::Object(h).to_string();
        let status = i64::from(response.status.as_u16());
        let body = response.body.to_vec();
        self.db
            .run(move |c| {
                let now = now_us();
                c.execute(
                    "UPDATE http_idempotency SET status = ?3, headers = ?4, body = ?5, done_at_us = ?6 \
                     WHERE scope = ?1 AND key = ?2",
                    params![scope, key, status, h, body, now],
                )?;
                // Now and then, forget what is past keeping.
                if body.len().is_multiple_of(64) {
                    c.execute("DELETE FROM http_idempotency WHERE started_at_us < ?1", [now - 2 * us(TTL)])?;
                }
                Ok(())
            })
            .await
    }

    async fn release(&self, id: &RecordId) -> Result<()> {
        let (scope, key) = (id.scope.clone(), id.key.clone());
        self.db
            .run(move |c| {
                c.execute(
                    "DELETE FROM http_idempotency WHERE scope = ?1 AND key = ?2 AND status IS NULL",
                    params![scope, key],
                )
                .map(drop)
            })
            .await
    }
}
