//! Accounts in PostgreSQL, in the store's schema, so every replica sees the same users,
//! sessions and API keys. The tables are the server's migrations (`parq migrate`).

use async_trait::async_trait;
use jiff::Timestamp;
use parq_core::{Error, OperatorId, Result, UserId};
use parq_postgres::deadpool_postgres::Pool;
use parq_postgres::tokio_postgres::Row;
use parq_postgres::tokio_postgres::types::ToSql;
use parq_postgres::{db_error, ident};
use uuid::Uuid;

use super::{Account, AccountStore, ApiKeyRecord, LockPolicy, Role, SessionRecord, Throttle, TotpEnrolment};

/// An [`AccountStore`] in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgAccounts {
    pool: Pool,
    q: String,
}

/// Instants travel as whole microseconds since the epoch.
fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn instant(us: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(us).map_err(|e| Error::backend("postgres", e))
}

/// SQL for a parameter of whole microseconds as `timestamptz`.
const TS: &str = "(timestamptz 'epoch' + ($N::bigint || ' microseconds')::interval)";

fn ts(n: usize) -> String {
    TS.replace("$N", &format!("${n}"))
}

fn us(col: &str) -> String {
    format!("(extract(epoch from {col}) * 1000000)::bigint")
}

fn role(s: &str) -> Result<Role> {
    Ok(match s {
        "driver" => Role::Driver,
        "operator" => Role::Operator,
        "gate" => Role::Gate,
        other => return Err(Error::backend("postgres", format!("unknown role {other:?}"))),
    })
}

fn throttle(r: &Row) -> Result<Throttle> {
    Ok(Throttle {
        failures: u32::try_from(r.get::<_, i32>(0)).unwrap_or(0),
        locked_until: r.get::<_, Option<i64>>(1).map(instant).transpose()?,
    })
}

impl PgAccounts {
    /// Accounts in `schema` over `pool`.
    pub fn new(pool: Pool, schema: &str) -> Self {
        Self { pool, q: ident(schema) }
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let c = self.pool.get().await.map_err(db_error)?;
        let st = c.prepare_cached(sql).await.map_err(db_error)?;
        c.query(&st, params).await.map_err(db_error)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let c = self.pool.get().await.map_err(db_error)?;
        let st = c.prepare_cached(sql).await.map_err(db_error)?;
        c.execute(&st, params).await.map_err(db_error)
    }

    fn select_keys(&self, by: &str) -> String {
        format!(
            "SELECT key_hash, id, name, role, operator_id, {}, {} FROM {}.api_keys WHERE {by}",
            us("created_at"),
            us("revoked_at"),
            self.q
        )
    }

    fn select_account(&self, by: &str) -> String {
        let q = &self.q;
        format!(
            "SELECT a.id, a.email, a.password_hash, a.role, a.operator_id, a.totp_secret, a.totp_confirmed, \
                    a.totp_last_step, {created}, \
                    coalesce((SELECT array_agg(code_hash ORDER BY code_hash) FROM {q}.account_recovery_codes r \
                              WHERE r.account_id = a.id), ARRAY[]::text[]) \
             FROM {q}.accounts a WHERE {by}",
            created = us("a.created_at"),
        )
    }

    async fn account_where(&self, by: &str, param: &(dyn ToSql + Sync)) -> Result<Option<Account>> {
        let rows = self.query(&self.select_account(by), &[param]).await?;
        let Some(r) = rows.first() else { return Ok(None) };
        let secret: Option<String> = r.get(5);
        Ok(Some(Account {
            id: UserId::from_uuid(r.get(0)),
            email: r.get(1),
            password_hash: r.get(2),
            role: role(r.get(3))?,
            operator: r.get::<_, Option<Uuid>>(4).map(OperatorId::from_uuid),
            totp: secret.map(|secret| TotpEnrolment { secret, confirmed: r.get(6) }),
            totp_last_step: u64::try_from(r.get::<_, i64>(7)).unwrap_or(0),
            created_at: instant(r.get(8))?,
            recovery_codes: r.get(9),
        }))
    }
}

fn key_row(r: &Row) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        key_hash: r.get(0),
        id: r.get(1),
        name: r.get(2),
        role: role(r.get(3))?,
        operator: OperatorId::from_uuid(r.get(4)),
        created_at: instant(r.get(5))?,
        revoked_at: r.get::<_, Option<i64>>(6).map(instant).transpose()?,
    })
}

#[async_trait]
impl AccountStore for PgAccounts {
    async fn create_user(&self, a: &Account) -> Result<bool> {
        let q = &self.q;
        let mut c = self.pool.get().await.map_err(db_error)?;
        let tx = c.transaction().await.map_err(db_error)?;
        let sql = format!(
            "INSERT INTO {q}.accounts (id, email, password_hash, role, operator_id, totp_secret, \
                 totp_confirmed, totp_last_step, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {}) ON CONFLICT (email) DO NOTHING",
            ts(9)
        );
        let step = i64::try_from(a.totp_last_step).unwrap_or(i64::MAX);
        let n = tx
            .execute(
                &sql,
                &[
                    a.id.as_uuid(),
                    &a.email,
                    &a.password_hash,
                    &a.role.as_str(),
                    &a.operator.map(|o| *o.as_uuid()),
                    &a.totp.as_ref().map(|t| t.secret.clone()),
                    &a.totp.as_ref().is_some_and(|t| t.confirmed),
                    &step,
                    &micros(a.created_at),
                ],
            )
            .await
            .map_err(db_error)?;
        if n == 0 {
            return Ok(false);
        }
        for code in &a.recovery_codes {
            tx.execute(
                &format!("INSERT INTO {q}.account_recovery_codes (account_id, code_hash) VALUES ($1, $2)"),
                &[a.id.as_uuid(), code],
            )
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn user(&self, id: UserId) -> Result<Option<Account>> {
        self.account_where("a.id = $1", id.as_uuid()).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<Account>> {
        self.account_where("a.email = $1", &email).await
    }

    async fn set_mfa(
        &self,
        id: UserId,
        totp: Option<TotpEnrolment>,
        recovery_codes: Vec<String>,
    ) -> Result<()> {
        let q = &self.q;
        let mut c = self.pool.get().await.map_err(db_error)?;
        let tx = c.transaction().await.map_err(db_error)?;
        let n = tx
            .execute(
                &format!("UPDATE {q}.accounts SET totp_secret = $2, totp_confirmed = $3 WHERE id = $1"),
                &[
                    id.as_uuid(),
                    &totp.as_ref().map(|t| t.secret.clone()),
                    &totp.as_ref().is_some_and(|t| t.confirmed),
                ],
            )
            .await
            .map_err(db_error)?;
        if n == 0 {
            return Err(Error::not_found(format!("user {id}")));
        }
        tx.execute(&format!("DELETE FROM {q}.account_recovery_codes WHERE account_id = $1"), &[id.as_uuid()])
            .await
            .map_err(db_error)?;
        for code in &recovery_codes {
            tx.execute(
                &format!(
                    "INSERT INTO {q}.account_recovery_codes (account_id, code_hash) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING"
                ),
                &[id.as_uuid(), code],
            )
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn accept_totp_step(&self, id: UserId, step: u64) -> Result<bool> {
        let q = &self.q;
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let rows = self
            .query(
                &format!(
                    "WITH u AS (UPDATE {q}.accounts SET totp_last_step = $2 \
                                WHERE id = $1 AND totp_last_step < $2 RETURNING 1) \
                     SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM {q}.accounts WHERE id = $1)"
                ),
                &[id.as_uuid(), &step],
            )
            .await?;
        let (updated, exists): (i64, i64) = rows.first().map_or((0, 0), |r| (r.get(0), r.get(1)));
        if exists == 0 {
            return Err(Error::not_found(format!("user {id}")));
        }
        Ok(updated > 0)
    }

    async fn use_recovery_code(&self, id: UserId, code_hash: &str) -> Result<bool> {
        let q = &self.q;
        let n = self
            .execute(
                &format!("DELETE FROM {q}.account_recovery_codes WHERE account_id = $1 AND code_hash = $2"),
                &[id.as_uuid(), &code_hash],
            )
            .await?;
        Ok(n > 0)
    }

    async fn put_session(&self, s: &SessionRecord) -> Result<()> {
        let q = &self.q;
        self.execute(
            &format!(
                "INSERT INTO {q}.account_sessions (token_hash, account_id, created_at, expires_at) \
                 VALUES ($1, $2, {}, {}) \
                 ON CONFLICT (token_hash) DO UPDATE SET account_id = EXCLUDED.account_id, \
                     created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at",
                ts(3),
                ts(4)
            ),
            &[&s.token_hash, s.user.as_uuid(), &micros(s.created_at), &micros(s.expires_at)],
        )
        .await?;
        // Forget expired sessions now and then, so the table stays small.
        if s.token_hash.ends_with("00") {
            self.execute(&format!("DELETE FROM {q}.account_sessions WHERE expires_at < now()"), &[]).await?;
        }
        Ok(())
    }

    async fn session(&self, token_hash: &str, now: Timestamp) -> Result<Option<SessionRecord>> {
        let q = &self.q;
        let rows = self
            .query(
                &format!(
                    "SELECT token_hash, account_id, {}, {} FROM {q}.account_sessions \
                     WHERE token_hash = $1 AND expires_at > {}",
                    us("created_at"),
                    us("expires_at"),
                    ts(2)
                ),
                &[&token_hash, &micros(now)],
            )
            .await?;
        rows.first()
            .map(|r| {
                Ok(SessionRecord {
                    token_hash: r.get(0),
                    user: UserId::from_uuid(r.get(1)),
                    created_at: instant(r.get(2))?,
                    expires_at: instant(r.get(3))?,
                })
            })
            .transpose()
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        let q = &self.q;
        self.execute(&format!("DELETE FROM {q}.account_sessions WHERE token_hash = $1"), &[&token_hash])
            .await?;
        Ok(())
    }

    async fn put_api_key(&self, k: &ApiKeyRecord) -> Result<()> {
        let q = &self.q;
        // A put never lifts a revocation.
        self.execute(
            &format!(
                "INSERT INTO {q}.api_keys (key_hash, id, name, role, operator_id, created_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, {}, CASE WHEN $7::bigint IS NULL THEN NULL ELSE {} END) \
                 ON CONFLICT (key_hash) DO UPDATE SET name = EXCLUDED.name, role = EXCLUDED.role, \
                     operator_id = EXCLUDED.operator_id, \
                     revoked_at = coalesce({q}.api_keys.revoked_at, EXCLUDED.revoked_at)",
                ts(6),
                ts(7)
            ),
            &[
                &k.key_hash,
                &k.id,
                &k.name,
                &k.role.as_str(),
                k.operator.as_uuid(),
                &micros(k.created_at),
                &k.revoked_at.map(micros),
            ],
        )
        .await?;
        Ok(())
    }

    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let rows =
            self.query(&self.select_keys("key_hash = $1 AND revoked_at IS NULL"), &[&key_hash]).await?;
        rows.first().map(key_row).transpose()
    }

    async fn api_key_by_id(&self, id: Uuid) -> Result<Option<ApiKeyRecord>> {
        let rows = self.query(&self.select_keys("id = $1"), &[&id]).await?;
        rows.first().map(key_row).transpose()
    }

    async fn api_keys(&self, operator: OperatorId) -> Result<Vec<ApiKeyRecord>> {
        let sql = format!("{} ORDER BY created_at, id", self.select_keys("operator_id = $1"));
        let rows = self.query(&sql, &[operator.as_uuid()]).await?;
        rows.iter().map(key_row).collect()
    }

    async fn revoke_api_key(&self, id: Uuid, at: Timestamp) -> Result<Option<ApiKeyRecord>> {
        let q = &self.q;
        self.execute(
            &format!("UPDATE {q}.api_keys SET revoked_at = {} WHERE id = $1 AND revoked_at IS NULL", ts(2)),
            &[&id, &micros(at)],
        )
        .await?;
        self.api_key_by_id(id).await
    }

    async fn auth_throttle(&self, subject: &str) -> Result<Throttle> {
        let q = &self.q;
        let rows = self
            .query(
                &format!("SELECT failures, locked_until_us FROM {q}.auth_failures WHERE subject = $1"),
                &[&subject],
            )
            .await?;
        rows.first().map_or(Ok(Throttle::default()), throttle)
    }

    async fn record_auth_failure(
        &self,
        subject: &str,
        now: Timestamp,
        policy: &LockPolicy,
    ) -> Result<Throttle> {
        let q = &self.q;
        let rows = self
            .query(
                &format!(
                    "INSERT INTO {q}.auth_failures AS f (subject, failures, last_failure_us) VALUES ($1, 1, $2) \
                     ON CONFLICT (subject) DO UPDATE SET \
                         failures = CASE WHEN f.last_failure_us < $3 THEN 1 \
                                         ELSE least(f.failures, 1000000000) + 1 END, \
                         last_failure_us = $2 \
                     RETURNING failures, locked_until_us"
                ),
                &[&subject, &micros(now), &micros(policy.forget_before(now))],
            )
            .await?;
        let counted = rows.first().map_or(Ok(Throttle::default()), throttle)?;
        let Some(lock) = policy.lock_after(counted.failures) else { return Ok(counted) };
        let until = now.checked_add(lock).unwrap_or(Timestamp::MAX);
        let rows = self
            .query(
                &format!(
                    "UPDATE {q}.auth_failures SET locked_until_us = greatest(coalesce(locked_until_us, 0), $2) \
                     WHERE subject = $1 RETURNING failures, locked_until_us"
                ),
                &[&subject, &micros(until)],
            )
            .await?;
        let locked = rows.first().map_or(Ok(counted), throttle)?;
        Ok(Throttle { failures: counted.failures, ..locked })
    }

    async fn clear_auth_failures(&self, subject: &str) -> Result<()> {
        let q = &self.q;
        self.execute(&format!("DELETE FROM {q}.auth_failures WHERE subject = $1"), &[&subject]).await?;
        // Forget idle counters now and then, so the table stays small.
        if subject.ends_with('0') {
            self.execute(
                &format!(
                    "DELETE FROM {q}.auth_failures WHERE last_failure_us < $1 \
                     AND coalesce(locked_until_us, 0) < $1"
                ),
                &[&micros(
                    Timestamp::now()
                        .checked_sub(jiff::SignedDuration::from_hours(24))
                        .unwrap_or(Timestamp::MIN),
                )],
            )
            .await?;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        self.query("SELECT 1", &[]).await.map(drop)
    }
}
