//! The server's SQLite pieces: the tables the server owns (accounts, sessions, API keys, HTTP
//! idempotency records, the simulated gateway's books) in the store's own file, next to
//! `parq-sqlite`'s tables, with their migrations recorded in `parq_server_schema`; the
//! connections that reach them; and the
//! online backup of the file.
//!
//! Connections use the store's settings: WAL, `synchronous = FULL` (an acknowledged write is
//! on disk), a busy timeout so that writers of several processes take turns. Every call runs
//! on tokio's blocking threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use parq_core::Error;
use parq_sqlite::rusqlite::{self, Connection, ErrorCode, OpenFlags, OptionalExtension};

/// One migration of the server's tables.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// The server's tables, oldest first. A released migration never changes; a change is a new one.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "accounts", sql: include_str!("../migrations/sqlite/0001_accounts.sql") },
    Migration {
        version: 2,
        name: "http_idempotency",
        sql: include_str!("../migrations/sqlite/0002_http_idempotency.sql"),
    },
    Migration { version: 3, name: "demo_keys", sql: include_str!("../migrations/sqlite/0003_demo_keys.sql") },
    Migration {
        version: 4,
        name: "test_gateway",
        sql: include_str!("../migrations/sqlite/0004_test_gateway.sql"),
    },
    Migration { version: 5, name: "keys", sql: include_str!("../migrations/sqlite/0005_keys.sql") },
    Migration {
        version: 6,
        name: "auth_failures",
        sql: include_str!("../migrations/sqlite/0006_auth_failures.sql"),
    },
];

/// The newest version of the server's tables this binary knows.
pub const SCHEMA_VERSION: i64 = 6;

/// The table that records the server's applied migrations.
const SCHEMA_TABLE: &str = "parq_server_schema";

/// How long a writer waits for another (of this or another process).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the server's tables in the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SqliteDbError {
    /// The file's server tables were written by a newer ParQ.
    #[error(
        "the SQLite database {path} has the server's schema version {found}, newer than {supported} \
         (the newest this version of parq knows): upgrade ParQ, or restore a backup made for this version"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// The newest this binary knows.
        supported: i64,
    },
    /// The blocking task that opened the file failed.
    #[error("opening {path} failed: {message}")]
    Task {
        /// The database file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// SQLite failed while opening or migrating.
    #[error("SQLite failed on {path} while preparing the server's tables: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

/// The server's side of the SQLite file: a few pooled connections.
#[derive(Debug)]
pub struct SqliteDb {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    let _: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    Ok(conn)
}

/// A rusqlite error as ParQ's.
pub fn sql_error(e: rusqlite::Error) -> Error {
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    };
    match code {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Unavailable {
            message: "the SQLite database stayed locked by another connection past the busy timeout".into(),
            retryable: true,
            source: Some(Box::new(e)),
        },
        Some(ErrorCode::DiskFull) => Error::Unavailable {
            message: "the disk holding the SQLite database is full".into(),
            retryable: false,
            source: Some(Box::new(e)),
        },
        Some(ErrorCode::SystemIoFailure | ErrorCode::ReadOnly | ErrorCode::CannotOpen) => {
            Error::Unavailable {
                message: "the SQLite database cannot be written".into(),
                retryable: false,
                source: Some(Box::new(e)),
            }
        }
        _ => Error::backend("sqlite", e),
    }
}

impl SqliteDb {
    /// Opens the server's side of `path` (a file `parq_sqlite::SqliteStore` has opened, so it
    /// exists, is a ParQ database and is in WAL mode) and applies the server's migrations it
    /// lacks, in one `BEGIN IMMEDIATE` transaction. A file whose server tables are newer than
    /// this binary knows is refused and left untouched.
    ///
    /// # Errors
    /// [`SqliteDbError`].
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, SqliteDbError> {
        let path = path.into();
        let fail = |source| SqliteDbError::Sqlite { path: path.clone(), source };
        let conn = connect(&path).map_err(fail)?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
        match migrate(&conn) {
            Ok(Ok(())) => conn.execute_batch("COMMIT").map_err(fail)?,
            Ok(Err(found)) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(SqliteDbError::NewerSchema { path, found, supported: SCHEMA_VERSION });
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(fail(e));
            }
        }
        Ok(Self { path, idle: Mutex::new(vec![conn]) })
    }

    /// [`open`](Self::open) on tokio's blocking threads.
    ///
    /// # Errors
    /// [`SqliteDbError`].
    pub async fn open_async(path: impl Into<PathBuf>) -> Result<Self, SqliteDbError> {
        let path = path.into();
        let p = path.clone();
        tokio::task::spawn_blocking(move || Self::open(p))
            .await
            .unwrap_or_else(|e| Err(SqliteDbError::Task { path, message: e.to_string() }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a connection, on tokio's blocking threads.
    ///
    /// # Errors
    /// What `f` returns, as ParQ's error.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> parq_core::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let taken = db.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let mut conn = match taken {
                Some(c) => c,
                None => connect(&db.path).map_err(sql_error)?,
            };
            let out = f(&mut conn);
            // A connection left inside a transaction (an error between BEGIN and COMMIT) is not
            // reused.
            if conn.is_autocommit() {
                let mut idle = db.idle.lock().unwrap_or_else(PoisonError::into_inner);
                if idle.len() < 8 {
                    idle.push(conn);
                }
            }
            out.map_err(sql_error)
        })
        .await
        .map_err(|e| Error::backend("sqlite", e))?
    }
}

impl SqliteDb {
    /// The demo's keys kept in the file: `(operator key, gate key)`, when the demo was made here.
    ///
    /// # Errors
    /// When SQLite fails.
    pub async fn demo_keys(self: &Arc<Self>) -> parq_core::Result<Option<(String, String)>> {
        self.run(|c| {
            let get = |role: &str| {
                c.query_row("SELECT key FROM demo_keys WHERE role = ?1", [role], |r| r.get::<_, String>(0))
                    .optional()
            };
            Ok(get("operator")?.zip(get("gate")?))
        })
        .await
    }

    /// Keeps the demo's keys, so a restart prints them again.
    ///
    /// # Errors
    /// When SQLite fails.
    pub async fn keep_demo_keys(self: &Arc<Self>, operator: &str, gate: &str) -> parq_core::Result<()> {
        let (operator, gate) = (operator.to_owned(), gate.to_owned());
        self.run(move |c| {
            c.execute(
                "INSERT INTO demo_keys (role, key) VALUES ('operator', ?1), ('gate', ?2) \
                 ON CONFLICT (role) DO UPDATE SET key = excluded.key",
                [operator, gate],
            )
            .map(drop)
        })
        .await
    }
}

impl SqliteDb {
    /// The pass keyring kept in the file; on the first call, `make()`'s document is kept and
    /// returned (of several processes starting on one file, the first one's is kept and every
    /// one gets it).
    ///
    /// # Errors
    /// When SQLite fails.
    pub async fn pass_keyring(
        self: &Arc<Self>,
        make: impl FnOnce() -> String + Send + 'static,
    ) -> parq_core::Result<String> {
        self.run(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let kept: Option<String> = tx
                .query_row("SELECT document FROM pass_keyring WHERE id = 1", [], |r| r.get(0))
                .optional()?;
            let document = match kept {
                Some(d) => d,
                None => {
                    let d = make();
                    tx.execute(
                        "INSERT INTO pass_keyring (id, document, created_at_us) VALUES (1, ?1, ?2)",
                        rusqlite::params![d, jiff::Timestamp::now().as_microsecond()],
                    )?;
                    d
                }
            };
            tx.commit()?;
            Ok(document)
        })
        .await
    }
}

/// `Ok(Err(found))` when the file is newer than this binary.
fn migrate(conn: &Connection) -> rusqlite::Result<Result<(), i64>> {
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (version INTEGER PRIMARY KEY NOT NULL, \
         name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT"
    ))?;
    let applied: Vec<i64> = conn
        .prepare(&format!("SELECT version FROM {SCHEMA_TABLE}"))?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let current = applied.iter().copied().max().unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Ok(Err(current));
    }
    // Every migration the file lacks, also one numbered below the newest applied.
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        conn.execute_batch(m.sql)?;
        conn.execute(
            &format!(
                "INSERT INTO {SCHEMA_TABLE} (version, name, applied_at) \
                 VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
            ),
            rusqlite::params![m.version, m.name],
        )?;
        tracing::info!(version = m.version, name = m.name, "applied the server's SQLite migration");
    }
    Ok(Ok(()))
}

/// Copies the database at `from` into a new file `to` with SQLite's online backup, as one
/// consistent snapshot, while servers keep serving on `from` (readers and the writer of WAL
/// mode do not wait for it). The copy is checked with `PRAGMA integrity_check`.
///
/// # Errors
/// A message naming the file that failed and why.
pub fn backup(from: &Path, to: &Path) -> Result<(), String> {
    if !from.is_file() {
        return Err(format!("there is no database at {}: is the data directory right?", from.display()));
    }
    if to.exists() {
        return Err(format!("{} exists: give the backup a new file name", to.display()));
    }
    let src =
        Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| format!("cannot open {}: {e}", from.display()))?;
    src.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
    let mut dst = Connection::open(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    {
        let b = rusqlite::backup::Backup::new(&src, &mut dst)
            .map_err(|e| format!("cannot back up {}: {e}", from.display()))?;
        // All pages in one step: one read transaction, so one consistent snapshot, however
        // busy the server is.
        loop {
            match b.step(-1) {
                Ok(rusqlite::backup::StepResult::Done) => break,
                Ok(_) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(format!("backing up {} failed: {e}", from.display())),
            }
        }
    }
    let report: Vec<String> = dst
        .prepare("PRAGMA integrity_check")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| format!("cannot check {}: {e}", to.display()))?;
    if report != ["ok"] {
        return Err(format!("the backup {} fails its integrity check: {}", to.display(), report.join("; ")));
    }
    // The copy is a plain file of its own: leave it without a WAL beside it.
    dst.pragma_update(None, "journal_mode", "DELETE").map_err(|e| e.to_string())?;
    Ok(())
}
