//! The adapter's errors: [`OpenError`] when a database cannot be used at all, and the private
//! [`SqlError`] that becomes ParQ's [`Error`] for everything else.

use std::path::PathBuf;
use std::sync::Arc;

use parq_core::{BoxError, Error};
use rusqlite::ErrorCode;

/// Why [`SqliteStore::open`](crate::SqliteStore::open) refused a database file. Nothing is
/// created or changed over existing data when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file could not be opened or created: its directory is missing or not writable, or
    /// the path names a directory.
    #[error("cannot open or create the SQLite database {path}: its directory must exist and be writable")]
    CannotOpen {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file (or its `-wal`/`-shm` companions, or their directory) can only be read, so no
    /// write could ever be acknowledged.
    #[error("the SQLite database {path} is read-only: the file and its directory must be writable")]
    ReadOnly {
        /// The database file.
        path: PathBuf,
        /// SQLite's error, when one was reported.
        #[source]
        source: Option<rusqlite::Error>,
    },
    /// The file is not an SQLite database, or is damaged.
    #[error("{path} is not an SQLite database or is corrupt; restore it from a backup")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// SQLite's error (`SQLITE_NOTADB`, `SQLITE_CORRUPT`), or what the integrity check found.
        #[source]
        source: BoxError,
    },
    /// The file is an SQLite database of another application.
    #[error("{path} is an SQLite database of another application (it has tables but no ParQ schema)")]
    Foreign {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a newer ParQ whose schema this version does not know; it is
    /// left untouched.
    #[error(
        "the SQLite database {path} has schema version {found}, newer than {supported} (the newest this \
         version of parq-sqlite knows): upgrade ParQ, or restore a backup made for this version"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The schema version recorded in the file.
        found: i64,
        /// The newest version this crate knows.
        supported: i64,
    },
    /// The database could not be put in write-ahead-log mode (e.g. an in-memory database).
    #[error("the SQLite database {path} cannot use write-ahead logging (journal mode {mode:?})")]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// Another process held the database locked for longer than the busy timeout.
    #[error("the SQLite database {path} stayed locked by another connection past the busy timeout")]
    Busy {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Any other failure of SQLite while opening or migrating.
    #[error("SQLite failed while opening {path}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The writer thread could not be started (or the blocking task opening the file was
    /// cancelled by the runtime's shutdown).
    #[error("could not start the SQLite writer thread")]
    Thread(#[source] std::io::Error),
}

impl OpenError {
    /// Classifies an SQLite error met while opening `path`.
    pub(crate) fn from_sqlite(path: &std::path::Path, e: rusqlite::Error) -> Self {
        let path = path.to_path_buf();
        match code(&e) {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                Self::Corrupt { path, source: Box::new(e) }
            }
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => Self::CannotOpen { path, source: e },
            Some(ErrorCode::ReadOnly) => Self::ReadOnly { path, source: Some(e) },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Self::Busy { path, source: e },
            _ => Self::Sqlite { path, source: e },
        }
    }
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Self {
        let retryable = matches!(e, OpenError::Busy { .. });
        Error::Unavailable { message: e.to_string(), retryable, source: Some(Box::new(e)) }
    }
}

/// SQLite's primary result code of an error, if it came from SQLite.
pub(crate) fn code(e: &rusqlite::Error) -> Option<ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}

/// What went wrong inside the SQLite adapter. Kept as the typed source of the core error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqlError {
    /// A statement failed.
    #[error("SQLite statement failed")]
    Db(#[from] rusqlite::Error),
    /// The transaction that carried a group of writes failed (at its start, a savepoint or its
    /// commit), so none of them happened.
    #[error("the SQLite transaction of this write failed; nothing was written")]
    Batch(#[source] Arc<rusqlite::Error>),
    /// A stored value does not decode into ParQ's types.
    #[error("stored {what} is malformed")]
    Malformed {
        /// Which value.
        what: &'static str,
        /// Why it does not decode.
        #[source]
        source: BoxError,
    },
}

impl SqlError {
    pub(crate) fn malformed(what: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Malformed { what, source: source.into() }
    }

    fn sqlite_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Db(e) => code(e),
            Self::Batch(e) => code(e),
            Self::Malformed { .. } => None,
        }
    }
}

impl From<SqlError> for Error {
    fn from(e: SqlError) -> Self {
        match e.sqlite_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Unavailable {
                message: "the SQLite database stayed locked by another connection past the busy timeout"
                    .into(),
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
}

/// `.sql()?` on a rusqlite result: its error as ParQ's.
pub(crate) trait SqlResult<T> {
    fn sql(self) -> parq_core::Result<T>;
}

impl<T> SqlResult<T> for rusqlite::Result<T> {
    fn sql(self) -> parq_core::Result<T> {
        self.map_err(|e| SqlError::Db(e).into())
    }
}
