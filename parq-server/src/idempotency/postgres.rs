//! The records in PostgreSQL (`http_idempotency`, in the store's schema), shared by every
//! replica: a retry that reaches another replica, or comes after a restart, is answered the
//! same way.

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use parq_core::Result;
use parq_postgres::{db_error, ident};

use super::{Begin, Fingerprint, IdempotencyStore, RecordId, STALE, Stored, TTL};
use crate::backends::Postgres;

/// The `http_idempotency` table of the store's schema.
#[derive(Debug, Clone)]
pub struct PgRecords {
    pg: Postgres,
    /// The schema, quoted.
    q: String,
}

impl PgRecords {
    /// The records in `pg`'s schema (made by `parq migrate`).
    pub fn new(pg: Postgres) -> Self {
        let q = ident(&pg.schema);
        Self { pg, q }
    }
}

fn secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

#[async_trait]
impl IdempotencyStore for PgRecords {
    async fn begin(&self, id: &RecordId, fingerprint: &Fingerprint) -> Result<Begin> {
        let q = &self.q;
        let (scope, key, fp) = (&id.scope, &id.key, &fingerprint[..]);
        let c = self.pg.pool.get().await.map_err(db_error)?;
        for _ in 0..3 {
            let claimed = c
                .query_opt(
                    &format!(
                        "INSERT INTO {q}.http_idempotency (scope, key, fingerprint, started_at) \
                         VALUES ($1, $2, $3, now()) ON CONFLICT DO NOTHING RETURNING 1"
                    ),
                    &[scope, key, &fp],
                )
                .await
                .map_err(db_error)?;
            if claimed.is_some() {
                return Ok(Begin::Run);
            }
            // Taken: replay it, or take over a dead or expired record.
            let taken_over = c
                .query_opt(
                    &format!(
                        "UPDATE {q}.http_idempotency \
                         SET fingerprint = $3, started_at = now(), status = NULL, headers = NULL, \
                             body = NULL, done_at = NULL \
                         WHERE scope = $1 AND key = $2 AND \
                               ((status IS NULL AND started_at < now() - make_interval(secs => $4)) \
                                OR done_at < now() - make_interval(secs => $5)) \
                         RETURNING 1"
                    ),
                    &[scope, key, &fp, &secs(STALE), &secs(TTL)],
                )
                .await
                .map_err(db_error)?;
            if taken_over.is_some() {
                return Ok(Begin::Run);
            }
            let Some(row) = c
                .query_opt(
                    &format!(
                        "SELECT fingerprint, status, headers::text, body FROM {q}.http_idempotency \
                         WHERE scope = $1 AND key = $2"
                    ),
                    &[scope, key],
                )
                .await
                .map_err(db_error)?
            else {
                continue; // Removed meanwhile (its request failed): claim it again.
            };
            let f: Vec<u8> = row.get(0);
            if f != fp {
                return Ok(Begin::Mismatch);
            }
            let Some(status) = row.get::<_, Option<i16>>(1) else {
                return Ok(Begin::InProgress);
            };
            let status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut headers = HeaderMap::new();
            let stored: Option<String> = row.get(2);
            if let Some(obj) = stored
                .and_then(|t| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&t).ok())
            {
                for (k, v) in obj {
                    if let (Ok(k), Some(Ok(v))) =
                        (HeaderName::try_from(k), v.as_str().map(HeaderValue::from_str))
                    {
                        headers.insert(k, v);
                    }
                }
            }
            let body: Option<Vec<u8>> = row.get(3);
            return Ok(Begin::Replay(Stored {
                status,
                headers,
                body: Bytes::from(body.unwrap_or_default()),
            }));
        }
        Ok(Begin::InProgress)
    }

    async fn complete(&self, id: &RecordId, _: &Fingerprint, response: Stored) -> Result<()> {
        let q = &self.q;
        let c = self.pg.pool.get().await.map_err(db_error)?;
        let h: serde_json::Map<String, serde_json::Value> = response
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.into())))
            .collect();
        let h = serde_json::Value::Object(h).to_string();
        let status = i16::try_from(response.status.as_u16()).unwrap_or(500);
        let body = &response.body[..];
        c.execute(
            &format!(
                "UPDATE {q}.http_idempotency SET status = $3, headers = $4::text::jsonb, body = $5, \
                     done_at = now() WHERE scope = $1 AND key = $2"
            ),
            &[&id.scope, &id.key, &status, &h, &body],
        )
        .await
        .map_err(db_error)?;
        // Now and then, forget what is past keeping.
        if body.len().is_multiple_of(64) && rand_bit() {
            c.execute(
                &format!(
                    "DELETE FROM {q}.http_idempotency WHERE started_at < now() - make_interval(secs => $1)"
                ),
                &[&secs(2 * TTL)],
            )
            .await
            .map_err(db_error)?;
        }
        Ok(())
    }

    async fn release(&self, id: &RecordId) -> Result<()> {
        let q = &self.q;
        let c = self.pg.pool.get().await.map_err(db_error)?;
        c.execute(
            &format!("DELETE FROM {q}.http_idempotency WHERE scope = $1 AND key = $2 AND status IS NULL"),
            &[&id.scope, &id.key],
        )
        .await
        .map_err(db_error)?;
        Ok(())
    }
}

fn rand_bit() -> bool {
    let mut b = [0u8; 1];
    getrandom::fill(&mut b).is_ok() && b[0] < 16
}
