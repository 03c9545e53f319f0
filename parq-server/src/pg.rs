//! The server's own PostgreSQL pieces: the pool, and the migrations of the tables the server
//! owns (accounts, idempotency records), which live in the store's schema next to
//! `parq-postgres`'s tables and are recorded in `parq_server_migrations`.

use parq_core::{Error, Result};
use parq_postgres::deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use parq_postgres::tokio_postgres::{self, NoTls};

use crate::config::ConfigError;

/// One migration of the server's tables.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. A released migration never changes; a change is a new one.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "accounts", sql: include_str!("../migrations/0001_accounts.sql") },
    Migration {
        version: 2,
        name: "http_idempotency",
        sql: include_str!("../migrations/0002_http_idempotency.sql"),
    },
];

/// Makes concurrent `migrate` runs of several replicas take turns.
const LOCK_KEY: i64 = 0x7061_7271_7372_7672;

/// `"schema"`, quoted. Schema names are checked by the configuration (lower-case, digits, `_`).
pub fn ident(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

/// Parses a `postgres://` URL without ever repeating it (it may hold a password).
pub fn parse_url(key: &'static str, url: &str) -> Result<tokio_postgres::Config, ConfigError> {
    let mut config = url.parse::<tokio_postgres::Config>().map_err(|e| ConfigError::Invalid {
        key: key.into(),
        message: format!("is not a usable PostgreSQL URL: {e}"),
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(5));
    }
    Ok(config)
}

/// How long a request waits for a free connection, or for a new one, before it is answered
/// `503 unavailable` (retryable) instead of waiting without end.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A pool of `size` connections. Connections are made when first needed.
pub fn pool(config: tokio_postgres::Config, size: u64) -> Result<Pool, ConfigError> {
    let manager =
        Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(usize::try_from(size).unwrap_or(usize::MAX))
        .runtime(parq_postgres::deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_WAIT))
        .build()
        .map_err(|e| ConfigError::Invalid {
            key: "pg_pool_size".into(),
            message: format!("cannot build the pool: {e}"),
        })
}

/// An error of the driver or the pool, as the engine's error: connection trouble may be retried.
pub fn db_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    let text = e.to_string().to_lowercase();
    let connection =
        ["connect", "timed out", "timeout", "closed", "refused", "reset"].iter().any(|w| text.contains(w));
    if connection {
        Error::unavailable("postgres is unreachable", Some(Box::new(e)))
    } else {
        Error::backend("postgres", e)
    }
}

/// Checks at start-up that PostgreSQL answers and that `schema` has every migration this
/// binary knows (replicas never run on a schema that `parq migrate` has not brought up to date).
pub async fn check_schema(pool: &Pool, schema: &str) -> Result<Option<String>> {
    let q = ident(schema);
    let c = pool.get().await.map_err(db_error)?;
    let table = format!("{q}.parq_server_migrations");
    let exists: bool =
        c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await.map_err(db_error)?.get(0);
    let latest = MIGRATIONS.last().map_or(0, |m| m.version);
    let have: i32 = if exists {
        c.query_one(&format!("SELECT coalesce(max(version), 0) FROM {table}"), &[])
            .await
            .map_err(db_error)?
            .get(0)
    } else {
        0
    };
    Ok((have < latest).then(|| {
        format!("schema {schema} is at version {have} of the server's migrations, not {latest}: run `parq migrate` first")
    }))
}

/// Applies the server's migrations that `schema` lacks (the schema must exist: the store's
/// migrations make it). Returns the `(version, name)` of each migration applied now.
pub async fn migrate(pool: &Pool, schema: &str) -> Result<Vec<(i32, &'static str)>> {
    let q = ident(schema);
    let mut client = pool.get().await.map_err(db_error)?;
    let tx = client.transaction().await.map_err(db_error)?;
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock({LOCK_KEY}); \
         CREATE SCHEMA IF NOT EXISTS {q}; \
         CREATE TABLE IF NOT EXISTS {q}.parq_server_migrations ( \
             version integer PRIMARY KEY, \
             name text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .await
    .map_err(db_error)?;
    let applied: Vec<i32> = tx
        .query(&format!("SELECT version FROM {q}.parq_server_migrations"), &[])
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut done = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tx.batch_execute(&m.sql.replace("{schema}", &q)).await.map_err(db_error)?;
        tx.execute(
            &format!("INSERT INTO {q}.parq_server_migrations (version, name) VALUES ($1, $2)"),
            &[&m.version, &m.name],
        )
        .await
        .map_err(db_error)?;
        done.push((m.version, m.name));
    }
    tx.commit().await.map_err(db_error)?;
    Ok(done)
}
