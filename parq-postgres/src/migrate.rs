//! Versioned migrations, embedded in the binary that applies them: the store's own
//! ([`STORE`]), and any other set of tables that lives in the same schema (the server's accounts
//! and idempotency records), each recorded in its own table.
//!
//! ```no_run
//! use parq_postgres::migrate::{self, Migration, Migrations};
//!
//! const MINE: Migrations = Migrations {
//!     table: "my_migrations",
//!     lock: 0x6d79_6d69_6772,
//!     prelude: "",
//!     list: &[Migration { version: 1, name: "notes", sql: "CREATE TABLE {schema}.notes (id int)" }],
//! };
//! # async fn f(pool: &parq_postgres::deadpool_postgres::Pool) -> parq_core::Result<()> {
//! let mut client = pool.get().await.map_err(parq_postgres::db_error)?;
//! let applied = migrate::run(&mut client, "parq", &MINE).await?;
//! # let _ = applied; Ok(()) }
//! ```

use parq_core::Result;
use tokio_postgres::Client;

use crate::error::db;
use crate::sql::ident;

/// One migration: applied once per schema, in version order. A released migration never
/// changes; a change is a new one.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its version, increasing from 1.
    pub version: i32,
    /// A short name, recorded with the version.
    pub name: &'static str,
    /// The statements. `{schema}` stands for the quoted schema; unqualified names resolve in
    /// the schema too (the transaction's `search_path` is the schema, then `public`).
    pub sql: &'static str,
}

/// A set of migrations recorded in one table of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migrations<'a> {
    /// The table, in the schema, that records which versions are applied.
    pub table: &'a str,
    /// The advisory lock that makes concurrent runs of this set take turns (on any schema).
    pub lock: i64,
    /// Statements run first, under the lock, before the schema exists (extensions).
    pub prelude: &'a str,
    /// Every migration, oldest first.
    pub list: &'a [Migration],
}

impl Migrations<'_> {
    /// The newest version the set has.
    pub fn latest(&self) -> i32 {
        self.list.iter().map(|m| m.version).max().unwrap_or(0)
    }
}

/// The store's schema ([`crate::PgStore::migrate`] applies it), recorded in `parq_migrations`.
pub const STORE: Migrations<'static> = Migrations {
    table: "parq_migrations",
    // Any schema: concurrent runs may also race to create the `btree_gist` extension.
    lock: 0x7061_7271_6d69_6772,
    prelude: "CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;",
    list: &[
        Migration { version: 1, name: "init", sql: include_str!("../migrations/0001_init.sql") },
        Migration { version: 2, name: "gate_scans", sql: include_str!("../migrations/0002_gate_scans.sql") },
        Migration {
            version: 3,
            name: "revocations",
            sql: include_str!("../migrations/0003_revocations.sql"),
        },
        Migration {
            version: 4,
            name: "event_relay",
            sql: include_str!("../migrations/0004_event_relay.sql"),
        },
    ],
};

/// A migration applied by [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Its version.
    pub version: i32,
    /// Its name.
    pub name: &'static str,
}

/// Creates `schema` if need be and applies the migrations of `set` that it lacks, in one
/// transaction, under the set's advisory lock: safe to run from several replicas at once.
/// Returns what it applied now (nothing when the schema was up to date).
pub async fn run(client: &mut Client, schema: &str, set: &Migrations<'_>) -> Result<Vec<Applied>> {
    let q = ident(schema);
    let table = format!("{q}.{}", ident(set.table));
    let tx = client.transaction().await.map_err(db)?;
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock({lock}); \
         {prelude} \
         CREATE SCHEMA IF NOT EXISTS {q}; \
         SET LOCAL search_path TO {q}, public; \
         CREATE TABLE IF NOT EXISTS {table} ( \
             version integer PRIMARY KEY, \
             name text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now())",
        lock = set.lock,
        prelude = set.prelude,
    ))
    .await
    .map_err(db)?;
    let applied: Vec<i32> = tx
        .query(&format!("SELECT version FROM {table}"), &[])
        .await
        .map_err(db)?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(db)?;
    let mut done = Vec::new();
    for m in set.list.iter().filter(|m| !applied.contains(&m.version)) {
        tx.batch_execute(&m.sql.replace("{schema}", &q)).await.map_err(db)?;
        tx.execute(&format!("INSERT INTO {table} (version, name) VALUES ($1, $2)"), &[&m.version, &m.name])
            .await
            .map_err(db)?;
        tracing::info!(schema, table = set.table, version = m.version, name = m.name, "applied migration");
        done.push(Applied { version: m.version, name: m.name });
    }
    tx.commit().await.map_err(db)?;
    Ok(done)
}

/// The newest version of `set` applied to `schema`: 0 when none is (or the schema does not
/// exist yet).
pub async fn version(client: &Client, schema: &str, set: &Migrations<'_>) -> Result<i32> {
    let table = format!("{}.{}", ident(schema), ident(set.table));
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    if !exists {
        return Ok(0);
    }
    client
        .query_one(&format!("SELECT coalesce(max(version), 0) FROM {table}"), &[])
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)
}

/// How many migrations of `set` are applied to `schema`.
pub async fn count(client: &Client, schema: &str, set: &Migrations<'_>) -> Result<i64> {
    let table = format!("{}.{}", ident(schema), ident(set.table));
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    if !exists {
        return Ok(0);
    }
    client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.map_err(db)?.try_get(0).map_err(db)
}
