//! Opening a database file: connection settings, checks, and the schema's migrations.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::OpenError;
use crate::store::SqliteOptions;

/// One migration: applied once per database, in version order.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. A released migration never changes; a change is a new one.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/0001_init.sql") },
    Migration { version: 2, name: "revocations", sql: include_str!("../migrations/0002_revocations.sql") },
];

/// The newest schema version this crate knows.
pub const SCHEMA_VERSION: i64 = 2;

/// `PRAGMA application_id` of a ParQ database ("parq" in ASCII), so tools such as `file(1)`
/// and this crate can tell it from other SQLite files.
pub(crate) const APPLICATION_ID: i32 = 0x7061_7271;

/// The table that records applied migrations.
const SCHEMA_TABLE: &str = "parq_schema";

/// The settings every connection of the store gets.
fn configure(conn: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    // FULL in WAL mode: the WAL is synced at every commit, so an acknowledged write survives a
    // power loss, not only a crash of the process.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Opens the writer's connection on `path` (creating the file when it does not exist), puts
/// the database in WAL mode, checks it and applies the migrations it lacks.
pub(crate) fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection, OpenError> {
    let fail = |e| OpenError::from_sqlite(path, e);
    if path.is_dir() {
        return Err(OpenError::CannotOpen {
            path: path.to_path_buf(),
            source: rusqlite::Error::InvalidPath(path.to_path_buf()),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail)?;
    // SQLite falls back to read-only when the file cannot be written; nothing could be stored.
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(fail)? {
        return Err(OpenError::ReadOnly { path: path.to_path_buf(), source: None });
    }
    configure(&conn, options.busy_timeout).map_err(fail)?;
    if let Some(pages) = options.max_pages {
        conn.pragma_update(None, "max_page_count", i64::try_from(pages).unwrap_or(i64::MAX)).map_err(fail)?;
    }
    // The first read of the file: a file that is not a database fails here.
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::NoWal { path: path.to_path_buf(), mode });
    }
    if options.integrity_check {
        let report: Vec<String> = conn
            .prepare("PRAGMA quick_check")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .map_err(fail)?;
        if report != ["ok"] {
            return Err(OpenError::Corrupt { path: path.to_path_buf(), source: report.join("; ").into() });
        }
    }
    migrate(&conn).map_err(|e| match e {
        Refusal::Sqlite(e) => fail(e),
        Refusal::Foreign => OpenError::Foreign { path: path.to_path_buf() },
        Refusal::Newer(found) => {
            OpenError::NewerSchema { path: path.to_path_buf(), found, supported: SCHEMA_VERSION }
        }
    })?;
    Ok(conn)
}

/// Prepares the writer's connection for syncs on a second thread: the write-ahead log, opened
/// for syncing, with commits set not to sync it themselves (`synchronous = NORMAL`; the
/// checkpoints still sync). `None` (commits keep syncing, `FULL`) when the log cannot be opened.
pub(crate) fn overlap_sync(conn: &Connection) -> Option<std::fs::File> {
    // SQLite's own name for the file (symbolic links resolved), with its log beside it.
    let db = conn.path().filter(|p| !p.is_empty())?;
    let wal_path = format!("{db}-wal");
    let opened = std::fs::File::open(&wal_path).and_then(|wal| {
        // The log's directory entry, made when the database went into WAL mode, is on disk
        // before anything written to the log is acknowledged.
        if let Some(dir) = Path::new(&wal_path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        wal.sync_all()?;
        Ok(wal)
    });
    match opened {
        Ok(wal) => match conn.pragma_update(None, "synchronous", "NORMAL") {
            Ok(()) => Some(wal),
            Err(e) => {
                tracing::warn!(error = %e, "SQLite commits keep syncing the log themselves");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, path = wal_path, "cannot open the SQLite write-ahead log to sync it; commits sync it themselves");
            None
        }
    }
}

/// Opens a connection for reading (the database exists and is migrated).
pub(crate) fn open_reader(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn, busy_timeout)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

enum Refusal {
    Sqlite(rusqlite::Error),
    Foreign,
    Newer(i64),
}

impl From<rusqlite::Error> for Refusal {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

/// Applies the migrations the database lacks, in one `IMMEDIATE` transaction, so processes
/// opening the same file together take turns. A database of a newer schema, or of another
/// application, is refused and left untouched.
fn migrate(conn: &Connection) -> Result<(), Refusal> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = migrate_in(conn);
    match &result {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(_) => {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    result
}

fn migrate_in(conn: &Connection) -> Result<(), Refusal> {
    let has_table: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [SCHEMA_TABLE],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)?;
    let app: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    if !has_table {
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            [],
            |r| r.get(0),
        )?;
        if tables > 0 || (app != 0 && app != APPLICATION_ID) {
            return Err(Refusal::Foreign);
        }
        conn.execute_batch(&format!(
            "CREATE TABLE {SCHEMA_TABLE} (version INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL, \
             applied_at TEXT NOT NULL) STRICT"
        ))?;
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    } else if app != APPLICATION_ID {
        return Err(Refusal::Foreign);
    }
    let current: i64 = conn
        .query_row(&format!("SELECT max(version) FROM {SCHEMA_TABLE}"), [], |r| r.get::<_, Option<i64>>(0))
        .optional()?
        .flatten()
        .unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(Refusal::Newer(current));
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        conn.execute_batch(m.sql)?;
        conn.execute(
            &format!(
                "INSERT INTO {SCHEMA_TABLE} (version, name, applied_at) \
                 VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
            ),
            rusqlite::params![m.version, m.name],
        )?;
        tracing::info!(version = m.version, name = m.name, "applied SQLite migration");
    }
    Ok(())
}
