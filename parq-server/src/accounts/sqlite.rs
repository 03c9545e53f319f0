//! Accounts in the SQLite file of the store, so they last as long as the reservations and every
//! process on the file sees the same users, sessions and API keys.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use parq_core::{Error, OperatorId, Result, UserId};
use parq_sqlite::rusqlite::{self, OptionalExtension, Row, TransactionBehavior, params};
use uuid::Uuid;

use super::{Account, AccountStore, ApiKeyRecord, LockPolicy, Role, SessionRecord, Throttle, TotpEnrolment};
use crate::sqlite::SqliteDb;

/// An [`AccountStore`] in the server's tables of an SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteAccounts {
    db: Arc<SqliteDb>,
}

impl SqliteAccounts {
    /// Accounts in `db` (opened, so migrated).
    pub fn new(db: Arc<SqliteDb>) -> Self {
        Self { db }
    }
}

fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn bad(what: &str, e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("stored {what} is malformed: {e}").into(),
    )
}

fn instant(us: i64) -> rusqlite::Result<Timestamp> {
    Timestamp::from_microsecond(us).map_err(|e| bad("instant", e))
}

fn uuid(s: &str) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| bad("id", e))
}

fn role(s: &str) -> rusqlite::Result<Role> {
    Ok(match s {
        "driver" => Role::Driver,
        "operator" => Role::Operator,
        "gate" => Role::Gate,
        other => return Err(bad("role", other)),
    })
}

const KEY: &str = "SELECT key_hash, id, name, role, operator_id, created_at_us, revoked_at_us FROM api_keys";

fn key_row(r: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        key_hash: r.get(0)?,
        id: uuid(&r.get::<_, String>(1)?)?,
        name: r.get(2)?,
        role: role(&r.get::<_, String>(3)?)?,
        operator: OperatorId::from_uuid(uuid(&r.get::<_, String>(4)?)?),
        created_at: instant(r.get(5)?)?,
        revoked_at: r.get::<_, Option<i64>>(6)?.map(instant).transpose()?,
    })
}

const ACCOUNT: &str = "SELECT id, email, password_hash, role, operator_id, totp_secret, totp_confirmed, \
                       totp_last_step, created_at_us FROM accounts";

fn throttle(r: &Row<'_>) -> rusqlite::Result<Throttle> {
    Ok(Throttle {
        failures: u32::try_from(r.get::<_, i64>(0)?).unwrap_or(u32::MAX),
        locked_until: r.get::<_, Option<i64>>(1)?.map(instant).transpose()?,
    })
}

fn account(conn: &rusqlite::Connection, r: &Row<'_>) -> rusqlite::Result<Account> {
    let id: String = r.get(0)?;
    let secret: Option<String> = r.get(5)?;
    let operator: Option<String> = r.get(4)?;
    let mut st = conn.prepare_cached(
        "SELECT code_hash FROM account_recovery_codes WHERE account_id = ?1 ORDER BY code_hash",
    )?;
    let codes = st.query_map([&id], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(Account {
        id: UserId::from_uuid(uuid(&id)?),
        email: r.get(1)?,
        password_hash: r.get(2)?,
        role: role(&r.get::<_, String>(3)?)?,
        operator: operator.as_deref().map(uuid).transpose()?.map(OperatorId::from_uuid),
        totp: secret
            .map(|secret| -> rusqlite::Result<_> { Ok(TotpEnrolment { secret, confirmed: r.get(6)? }) })
            .transpose()?,
        totp_last_step: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
        created_at: instant(r.get(8)?)?,
        recovery_codes: codes,
    })
}

fn account_where(conn: &rusqlite::Connection, by: &str, param: &str) -> rusqlite::Result<Option<Account>> {
    let mut st = conn.prepare_cached(&format!("{ACCOUNT} WHERE {by} = ?1"))?;
    let mut rows = st.query([param])?;
    match rows.next()? {
        Some(r) => account(conn, r).map(Some),
        None => Ok(None),
    }
}

#[async_trait]
impl AccountStore for SqliteAccounts {
    async fn create_user(&self, a: &Account) -> Result<bool> {
        let a = a.clone();
        self.db
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let n = tx.execute(
                    "INSERT INTO accounts (id, email, password_hash, role, operator_id, totp_secret, \
                         totp_confirmed, totp_last_step, created_at_us) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (email) DO NOTHING",
                    params![
                        a.id.as_uuid().to_string(),
                        a.email,
                        a.password_hash,
                        a.role.as_str(),
                        a.operator.map(|o| o.as_uuid().to_string()),
                        a.totp.as_ref().map(|t| t.secret.clone()),
                        a.totp.as_ref().is_some_and(|t| t.confirmed),
                        i64::try_from(a.totp_last_step).unwrap_or(i64::MAX),
                        micros(a.created_at),
                    ],
                )?;
                if n == 0 {
                    return Ok(false);
                }
                for code in &a.recovery_codes {
                    tx.execute(
                        "INSERT OR IGNORE INTO account_recovery_codes (account_id, code_hash) VALUES (?1, ?2)",
                        params![a.id.as_uuid().to_string(), code],
                    )?;
                }
                tx.commit()?;
                Ok(true)
            })
            .await
    }

    async fn user(&self, id: UserId) -> Result<Option<Account>> {
        let id = id.as_uuid().to_string();
        self.db.run(move |c| account_where(c, "id", &id)).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<Account>> {
        let email = email.to_owned();
        self.db.run(move |c| account_where(c, "email", &email)).await
    }

    async fn set_mfa(
        &self,
        id: UserId,
        totp: Option<TotpEnrolment>,
        recovery_codes: Vec<String>,
    ) -> Result<()> {
        let key = id.as_uuid().to_string();
        let found = self
            .db
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let n = tx.execute(
                    "UPDATE accounts SET totp_secret = ?2, totp_confirmed = ?3 WHERE id = ?1",
                    params![
                        key,
                        totp.as_ref().map(|t| t.secret.clone()),
                        totp.as_ref().is_some_and(|t| t.confirmed)
                    ],
                )?;
                if n == 0 {
                    return Ok(false);
                }
                tx.execute("DELETE FROM account_recovery_codes WHERE account_id = ?1", [&key])?;
                for code in &recovery_codes {
                    tx.execute(
                        "INSERT OR IGNORE INTO account_recovery_codes (account_id, code_hash) VALUES (?1, ?2)",
                        params![key, code],
                    )?;
                }
                tx.commit()?;
                Ok(true)
            })
            .await?;
        if found { Ok(()) } else { Err(Error::not_found(format!("user {id}"))) }
    }

    async fn accept_totp_step(&self, id: UserId, step: u64) -> Result<bool> {
        let key = id.as_uuid().to_string();
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let (updated, exists) = self
            .db
            .run(move |c| {
                let n = c.execute(
                    "UPDATE accounts SET totp_last_step = ?2 WHERE id = ?1 AND totp_last_step < ?2",
                    params![key, step],
                )?;
                if n > 0 {
                    return Ok((true, true));
                }
                let exists = c
                    .query_row("SELECT 1 FROM accounts WHERE id = ?1", [&key], |_| Ok(()))
                    .optional()?
                    .is_some();
                Ok((false, exists))
            })
            .await?;
        if !exists {
            return Err(Error::not_found(format!("user {id}")));
        }
        Ok(updated)
    }

    async fn use_recovery_code(&self, id: UserId, code_hash: &str) -> Result<bool> {
        let key = id.as_uuid().to_string();
        let code = code_hash.to_owned();
        self.db
            .run(move |c| {
                c.execute(
                    "DELETE FROM account_recovery_codes WHERE account_id = ?1 AND code_hash = ?2",
                    params![key, code],
                )
                .map(|n| n > 0)
            })
            .await
    }

    async fn put_session(&self, s: &SessionRecord) -> Result<()> {
        let s = s.clone();
        self.db
            .run(move |c| {
                c.execute(
                    "INSERT INTO account_sessions (token_hash, account_id, created_at_us, expires_at_us) \
                     VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (token_hash) DO UPDATE SET account_id = excluded.account_id, \
                         created_at_us = excluded.created_at_us, expires_at_us = excluded.expires_at_us",
                    params![
                        s.token_hash,
                        s.user.as_uuid().to_string(),
                        micros(s.created_at),
                        micros(s.expires_at)
                    ],
                )?;
                // Forget expired sessions now and then, so the table stays small.
                if s.token_hash.ends_with("00") {
                    c.execute(
                        "DELETE FROM account_sessions WHERE expires_at_us < ?1",
                        [micros(Timestamp::now())],
                    )?;
                }
                Ok(())
            })
            .await
    }

    async fn session(&self, token_hash: &str, now: Timestamp) -> Result<Option<SessionRecord>> {
        let token = token_hash.to_owned();
        self.db
            .run(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT token_hash, account_id, created_at_us, expires_at_us FROM account_sessions \
                     WHERE token_hash = ?1 AND expires_at_us > ?2",
                )?;
                st.query_row(params![token, micros(now)], |r| {
                    Ok(SessionRecord {
                        token_hash: r.get(0)?,
                        user: UserId::from_uuid(uuid(&r.get::<_, String>(1)?)?),
                        created_at: instant(r.get(2)?)?,
                        expires_at: instant(r.get(3)?)?,
                    })
                })
                .optional()
            })
            .await
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        let token = token_hash.to_owned();
        self.db
            .run(move |c| c.execute("DELETE FROM account_sessions WHERE token_hash = ?1", [token]).map(drop))
            .await
    }

    async fn put_api_key(&self, k: &ApiKeyRecord) -> Result<()> {
        let k = k.clone();
        self.db
            .run(move |c| {
                // A put never lifts a revocation.
                c.execute(
                    "INSERT INTO api_keys (key_hash, id, name, role, operator_id, created_at_us, revoked_at_us) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (key_hash) DO UPDATE SET name = excluded.name, role = excluded.role, \
                         operator_id = excluded.operator_id, \
                         revoked_at_us = coalesce(api_keys.revoked_at_us, excluded.revoked_at_us)",
                    params![
                        k.key_hash,
                        k.id.to_string(),
                        k.name,
                        k.role.as_str(),
                        k.operator.as_uuid().to_string(),
                        micros(k.created_at),
                        k.revoked_at.map(micros),
                    ],
                )
                .map(drop)
            })
            .await
    }

    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let key = key_hash.to_owned();
        self.db
            .run(move |c| {
                let mut st =
                    c.prepare_cached(&format!("{KEY} WHERE key_hash = ?1 AND revoked_at_us IS NULL"))?;
                st.query_row([key], key_row).optional()
            })
            .await
    }

    async fn api_key_by_id(&self, id: Uuid) -> Result<Option<ApiKeyRecord>> {
        self.db
            .run(move |c| {
                let mut st = c.prepare_cached(&format!("{KEY} WHERE id = ?1"))?;
                st.query_row([id.to_string()], key_row).optional()
            })
            .await
    }

    async fn api_keys(&self, operator: OperatorId) -> Result<Vec<ApiKeyRecord>> {
        self.db
            .run(move |c| {
                let mut st =
                    c.prepare_cached(&format!("{KEY} WHERE operator_id = ?1 ORDER BY created_at_us, id"))?;
                st.query_map([operator.as_uuid().to_string()], key_row)?.collect()
            })
            .await
    }

    async fn revoke_api_key(&self, id: Uuid, at: Timestamp) -> Result<Option<ApiKeyRecord>> {
        self.db
            .run(move |c| {
                c.execute(
                    "UPDATE api_keys SET revoked_at_us = ?2 WHERE id = ?1 AND revoked_at_us IS NULL",
                    params![id.to_string(), micros(at)],
                )?;
                let mut st = c.prepare_cached(&format!("{KEY} WHERE id = ?1"))?;
                st.query_row([id.to_string()], key_row).optional()
            })
            .await
    }

    async fn auth_throttle(&self, subject: &str) -> Result<Throttle> {
        let subject = subject.to_owned();
        self.db
            .run(move |c| {
                c.query_row(
                    "SELECT failures, locked_until_us FROM auth_failures WHERE subject = ?1",
                    [&subject],
                    throttle,
                )
                .optional()
                .map(Option::unwrap_or_default)
            })
            .await
    }

    async fn record_auth_failure(
        &self,
        subject: &str,
        now: Timestamp,
        policy: &LockPolicy,
    ) -> Result<Throttle> {
        let subject = subject.to_owned();
        let policy = *policy;
        self.db
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let counted = tx.query_row(
                    "INSERT INTO auth_failures (subject, failures, last_failure_us) VALUES (?1, 1, ?2) \
                     ON CONFLICT (subject) DO UPDATE SET \
                         failures = CASE WHEN last_failure_us < ?3 THEN 1 \
                                         ELSE min(failures, 1000000000) + 1 END, \
                         last_failure_us = ?2 \
                     RETURNING failures, locked_until_us",
                    params![subject, micros(now), micros(policy.forget_before(now))],
                    throttle,
                )?;
                let t = match policy.lock_after(counted.failures) {
                    Some(lock) => {
                        let until = now.checked_add(lock).unwrap_or(Timestamp::MAX);
                        tx.query_row(
                            "UPDATE auth_failures SET locked_until_us = max(coalesce(locked_until_us, 0), ?2) \
                             WHERE subject = ?1 RETURNING failures, locked_until_us",
                            params![subject, micros(until)],
                            throttle,
                        )?
                    }
                    None => counted,
                };
                tx.commit()?;
                Ok(t)
            })
            .await
    }

    async fn clear_auth_failures(&self, subject: &str) -> Result<()> {
        let subject = subject.to_owned();
        self.db
            .run(move |c| {
                c.execute("DELETE FROM auth_failures WHERE subject = ?1", [&subject])?;
                // Forget idle counters now and then, so the table stays small.
                if subject.ends_with('0') {
                    let before = Timestamp::now()
                        .checked_sub(jiff::SignedDuration::from_hours(24))
                        .unwrap_or(Timestamp::MIN);
                    c.execute(
                        "DELETE FROM auth_failures WHERE last_failure_us < ?1 \
                         AND coalesce(locked_until_us, 0) < ?1",
                        [micros(before)],
                    )?;
                }
                Ok(())
            })
            .await
    }

    async fn ping(&self) -> Result<()> {
        self.db.run(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }
}
