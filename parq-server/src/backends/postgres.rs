//! The server's PostgreSQL pieces: URLs and pools from the configuration, and the migrations of
//! the tables the server owns (accounts, idempotency records), which live in the store's schema
//! next to `parq-postgres`'s tables and are recorded in `parq_server_migrations`. Running them
//! and reading driver errors is `parq-postgres`'s toolkit.

use parq_core::Result;
use parq_postgres::db_error;
use parq_postgres::deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use parq_postgres::migrate::{Migration, Migrations};
use parq_postgres::tokio_postgres::{self, NoTls};

use crate::config::ConfigError;

/// The server's tables, oldest first. A released migration never changes; a change is a new one.
pub const MIGRATIONS: Migrations<'static> = Migrations {
    table: "parq_server_migrations",
    lock: 0x7061_7271_7372_7672,
    prelude: "",
    list: &[
        Migration { version: 1, name: "accounts", sql: include_str!("../../migrations/0001_accounts.sql") },
        Migration {
            version: 2,
            name: "http_idempotency",
            sql: include_str!("../../migrations/0002_http_idempotency.sql"),
        },
        Migration {
            version: 5,
            name: "auth_failures",
            sql: include_str!("../../migrations/0005_auth_failures.sql"),
        },
    ],
};

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

/// Checks at start-up that PostgreSQL answers and that `schema` has every migration this
/// binary knows (replicas never run on a schema that `parq migrate` has not brought up to date).
/// `Ok(Some(why))` when the schema is behind.
pub async fn check_schema(pool: &Pool, schema: &str) -> Result<Option<String>> {
    let c = pool.get().await.map_err(|e| match db_error(e) {
        parq_core::Error::Unavailable { message, retryable, source } => parq_core::Error::Unavailable {
            message: format!("postgres is unreachable ({message})"),
            retryable,
            source,
        },
        other => other,
    })?;
    let have = parq_postgres::migrate::version(&c, schema, &MIGRATIONS).await?;
    let latest = MIGRATIONS.latest();
    Ok((have < latest).then(|| {
        format!("schema {schema} is at version {have} of the server's migrations, not {latest}: run `parq migrate` first")
    }))
}
