//! The server's PostgreSQL pieces: URLs and pools from the configuration, and the migrations of
//! the tables the server owns (accounts, idempotency records, the simulated gateway's books), which live in the store's schema
//! next to `parq-postgres`'s tables and are recorded in `parq_server_migrations`. Running them
//! and reading driver errors is `parq-postgres`'s toolkit.

use parq_core::Result;
use parq_postgres::PgTls;
use parq_postgres::db_error;
use parq_postgres::deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use parq_postgres::migrate::{Migration, Migrations};
use parq_postgres::tokio_postgres;

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
            version: 3,
            name: "test_gateway",
            sql: include_str!("../../migrations/0003_test_gateway.sql"),
        },
        Migration { version: 4, name: "keys", sql: include_str!("../../migrations/0004_keys.sql") },
        Migration {
            version: 5,
            name: "auth_failures",
            sql: include_str!("../../migrations/0005_auth_failures.sql"),
        },
    ],
};

/// A PostgreSQL server to connect to: the driver's settings and the TLS connector its
/// `sslmode` asks for.
#[derive(Debug, Clone)]
pub struct PgTarget {
    /// Host, database, user, timeouts.
    pub config: tokio_postgres::Config,
    /// Encryption and the server's certificate check (`sslmode`, `sslrootcert`, `pg_ca_file`).
    pub tls: PgTls,
}

/// Parses a `postgres://` URL, with libpq's `sslmode` and `sslrootcert`, without ever repeating
/// it (it may hold a password). `ca_file` (the `pg_ca_file` setting) is the CA for a URL that
/// names none.
pub fn parse_url(key: &'static str, url: &str, ca_file: Option<&str>) -> Result<PgTarget, ConfigError> {
    let ca_file = ca_file.map(str::trim).filter(|f| !f.is_empty()).map(std::path::Path::new);
    let (mut config, tls) = parq_postgres::tls::parse_url(url, ca_file).map_err(|e| {
        let hint = match e {
            parq_postgres::tls::TlsError::NoRootCert(_) => " (or set pg_ca_file)",
            _ => "",
        };
        ConfigError::Invalid { key: key.into(), message: format!("{e}{hint}") }
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(5));
    }
    Ok(PgTarget { config, tls })
}

/// How long a request waits for a free connection, or for a new one, before it is answered
/// `503 unavailable` (retryable) instead of waiting without end.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A pool of `size` connections. Connections are made when first needed.
pub fn pool(target: PgTarget, size: u64) -> Result<Pool, ConfigError> {
    let manager = Manager::from_config(
        target.config,
        target.tls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
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
    let c = pool.get().await.map_err(|e| unreachable(db_error(e)))?;
    let have = parq_postgres::migrate::version(&c, schema, &MIGRATIONS).await?;
    let latest = MIGRATIONS.latest();
    Ok((have < latest).then(|| {
        format!("schema {schema} is at version {have} of the server's migrations, not {latest}: run `parq migrate` first")
    }))
}

/// A failed connection said with its causes (a refused certificate, a refused password), so
/// that a replica that cannot start says why: "postgres is unreachable (could not connect to
/// PostgreSQL: error performing TLS handshake: invalid peer certificate: UnknownIssuer)".
pub fn unreachable(e: parq_core::Error) -> parq_core::Error {
    match e {
        parq_core::Error::Unavailable { message, retryable, source } => {
            let mut why = message;
            let mut next: Option<&(dyn std::error::Error + 'static)> = source.as_deref().map(|s| s as _);
            while let Some(cause) = next {
                // The wrappers' own words ("could not get a PostgreSQL connection from the
                // pool") add nothing; the driver's innermost ones say what happened.
                if cause.source().is_none() || !cause.to_string().contains("PostgreSQL") {
                    let text = cause.to_string();
                    if !why.contains(&text) {
                        why = format!("{why}: {text}");
                    }
                }
                next = cause.source();
            }
            parq_core::Error::Unavailable {
                message: format!("postgres is unreachable ({why})"),
                retryable,
                source,
            }
        }
        other => other,
    }
}
