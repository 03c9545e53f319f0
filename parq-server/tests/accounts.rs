//! The account-store conformance suite against `MemoryAccounts`, against `SqliteAccounts` in a
//! new SQLite file per case, and against `PgAccounts` in a new schema per case (with the
//! server's migrations) on the PostgreSQL named by `PARQ_TEST_PG_URL`.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use parq_core::{Result, UserId};
use parq_postgres::deadpool_postgres::{Manager, Pool};
use parq_postgres::tokio_postgres::{self, NoTls};
use parq_server::accounts::{
    Account, AccountStore, Accounts, ApiKeyRecord, LockPolicy, MemoryAccounts, PgAccounts, SessionRecord,
    SqliteAccounts, Throttle, TotpEnrolment,
};

mod memory_accounts {
    use super::*;
    parq_server::account_conformance!(async { Arc::new(MemoryAccounts::new()) as Accounts });
}

mod sqlite_accounts {
    parq_server::account_conformance!(super::make_sqlite_accounts());
}

/// An adapter under test with what must outlive it (its file, its schema), dropped after it.
#[derive(Debug)]
struct Guarded<G: std::fmt::Debug + Send + Sync + 'static> {
    inner: Accounts,
    _guard: G,
}

/// `SqliteAccounts` in a file of its own, made as the server makes it (the store opens the file
/// first), removed with the store.
async fn make_sqlite_accounts() -> Accounts {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("parq.db");
    drop(parq_sqlite::SqliteStore::open(&path).expect("the store opens"));
    let db = parq_server::sqlite::SqliteDb::open_async(path).await.expect("the server's tables");
    let inner: Accounts = Arc::new(SqliteAccounts::new(Arc::new(db)));
    Arc::new(Guarded { inner, _guard: dir })
}

#[async_trait]
impl<G: std::fmt::Debug + Send + Sync + 'static> AccountStore for Guarded<G> {
    async fn create_user(&self, account: &Account) -> Result<bool> {
        self.inner.create_user(account).await
    }
    async fn user(&self, id: UserId) -> Result<Option<Account>> {
        self.inner.user(id).await
    }
    async fn user_by_email(&self, email: &str) -> Result<Option<Account>> {
        self.inner.user_by_email(email).await
    }
    async fn set_mfa(&self, id: UserId, totp: Option<TotpEnrolment>, codes: Vec<String>) -> Result<()> {
        self.inner.set_mfa(id, totp, codes).await
    }
    async fn accept_totp_step(&self, id: UserId, step: u64) -> Result<bool> {
        self.inner.accept_totp_step(id, step).await
    }
    async fn use_recovery_code(&self, id: UserId, code_hash: &str) -> Result<bool> {
        self.inner.use_recovery_code(id, code_hash).await
    }
    async fn put_session(&self, session: &SessionRecord) -> Result<()> {
        self.inner.put_session(session).await
    }
    async fn session(&self, token_hash: &str, now: Timestamp) -> Result<Option<SessionRecord>> {
        self.inner.session(token_hash, now).await
    }
    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        self.inner.delete_session(token_hash).await
    }
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        self.inner.put_api_key(key).await
    }
    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        self.inner.api_key(key_hash).await
    }
    async fn api_key_by_id(&self, id: uuid::Uuid) -> Result<Option<ApiKeyRecord>> {
        self.inner.api_key_by_id(id).await
    }
    async fn api_keys(&self, operator: parq_core::OperatorId) -> Result<Vec<ApiKeyRecord>> {
        self.inner.api_keys(operator).await
    }
    async fn revoke_api_key(&self, id: uuid::Uuid, at: Timestamp) -> Result<Option<ApiKeyRecord>> {
        self.inner.revoke_api_key(id, at).await
    }
    async fn auth_throttle(&self, subject: &str) -> Result<Throttle> {
        self.inner.auth_throttle(subject).await
    }
    async fn record_auth_failure(
        &self,
        subject: &str,
        now: Timestamp,
        policy: &LockPolicy,
    ) -> Result<Throttle> {
        self.inner.record_auth_failure(subject, now, policy).await
    }
    async fn clear_auth_failures(&self, subject: &str) -> Result<()> {
        self.inner.clear_auth_failures(subject).await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

mod pg_accounts {
    parq_server::account_conformance!(super::make_pg_accounts());
}

fn pg_config() -> tokio_postgres::Config {
    let url = std::env::var("PARQ_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    url.parse().unwrap_or_else(|e| panic!("PARQ_TEST_PG_URL={url} is not a PostgreSQL URL: {e}"))
}

/// A schema of the test PostgreSQL, dropped (with its pool closed) when the store is.
#[derive(Debug)]
struct Schema {
    pool: Pool,
    name: String,
}

/// `PgAccounts` in a schema of its own, dropped with the store.
async fn make_pg_accounts() -> Accounts {
    let schema = format!("parq_t_{}", uuid::Uuid::new_v4().simple());
    let pool = Pool::builder(Manager::new(pg_config(), NoTls)).max_size(16).build().expect("a pool");
    let mut client = pool.get().await.unwrap_or_else(|e| {
        panic!("cannot reach PostgreSQL ({e}); set PARQ_TEST_PG_URL to the URL of a running server")
    });
    let migrations = &parq_server::backends::postgres::MIGRATIONS;
    parq_postgres::migrate::run(&mut client, &schema, migrations).await.unwrap_or_else(|e| {
        panic!(
            "cannot migrate a schema on PostgreSQL ({e}); set PARQ_TEST_PG_URL to the URL of a running server"
        )
    });
    let inner: Accounts = Arc::new(PgAccounts::new(pool.clone(), &schema));
    Arc::new(Guarded { inner, _guard: Schema { pool, name: schema } })
}

impl Drop for Schema {
    fn drop(&mut self) {
        self.pool.close();
        let schema = self.name.clone();
        // Drop runs inside (or after) the test's runtime, so the cleanup gets its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let Ok((client, conn)) = pg_config().connect(NoTls).await else { return };
                tokio::spawn(conn);
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
            });
        });
        let _ = done.join();
    }
}
