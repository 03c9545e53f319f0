//! The store's schema, as versioned migrations embedded in the crate.

use deadpool_postgres::Object;
use parq_core::Result;

use crate::error::{PgError, db};
use crate::sql::ident;

/// One migration: applied once per schema, in version order.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. A released migration never changes; a change is a new one.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/0001_init.sql") },
    Migration { version: 2, name: "gate_scans", sql: include_str!("../migrations/0002_gate_scans.sql") },
];

/// The advisory lock that makes concurrent `migrate` calls take turns (any schema, since they
/// may also race to create the `btree_gist` extension).
const LOCK_KEY: i64 = 0x7061_7271_6d69_6772;

pub(crate) async fn run(client: &mut Object, schema: &str) -> Result<()> {
    let q = ident(schema);
    let tx = client.transaction().await.map_err(db)?;
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock({LOCK_KEY}); \
         CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public; \
         CREATE SCHEMA IF NOT EXISTS {q}; \
         SET LOCAL search_path TO {q}, public; \
         CREATE TABLE IF NOT EXISTS {q}.parq_migrations ( \
             version integer PRIMARY KEY, \
             name text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .await
    .map_err(db)?;
    let applied: Vec<i32> = tx
        .query(&format!("SELECT version FROM {q}.parq_migrations"), &[])
        .await
        .map_err(db)?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(db)?;
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tx.batch_execute(m.sql).await.map_err(db)?;
        tx.execute(
            &format!("INSERT INTO {q}.parq_migrations (version, name) VALUES ($1, $2)"),
            &[&m.version, &m.name],
        )
        .await
        .map_err(db)?;
        tracing::info!(schema, version = m.version, name = m.name, "applied migration");
    }
    tx.commit().await.map_err(|e| PgError::Db(e).into())
}
