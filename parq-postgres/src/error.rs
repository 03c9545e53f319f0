//! PostgreSQL's errors as ParQ's [`Error`], by SQLSTATE: one classification for every crate
//! that talks to PostgreSQL (the store here, the server's own tables).

use deadpool_postgres::PoolError;
use parq_core::{BoxError, ConflictReason, Error, SpotId};
use tokio_postgres::error::SqlState;

/// What went wrong talking to PostgreSQL. Kept as the typed source of the core error.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A query or the connection failed.
    #[error("PostgreSQL query failed")]
    Db(#[from] tokio_postgres::Error),
    /// The pool could not hand out a connection.
    #[error("could not get a PostgreSQL connection from the pool")]
    Pool(#[from] PoolError),
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

/// The kind of a driver error, read from its SQLSTATE (or, without one, from how it failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// `23P01`: an exclusion constraint refused the row (two live reservations overlap).
    Exclusion,
    /// `23505`: a unique constraint refused the row.
    Unique,
    /// `40001`, `40P01`: the server aborted a conflicting transaction; running it again may
    /// succeed.
    Aborted,
    /// Class `08`, `57P01`..`57P03`, a closed connection or an I/O failure: the connection (or
    /// the server process behind it) went away.
    Connection,
    /// Anything else: a bug, a constraint, a missing table.
    Other,
}

impl ErrorClass {
    /// Whether running the same statement again may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Aborted | Self::Connection)
    }
}

/// Classifies a driver error by its SQLSTATE code.
pub fn classify(e: &tokio_postgres::Error) -> ErrorClass {
    if e.is_closed() {
        return ErrorClass::Connection;
    }
    let Some(code) = e.code() else {
        // No SQLSTATE: an I/O or protocol failure on the socket.
        return if std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()) {
            ErrorClass::Connection
        } else {
            ErrorClass::Other
        };
    };
    if *code == SqlState::EXCLUSION_VIOLATION {
        ErrorClass::Exclusion
    } else if *code == SqlState::UNIQUE_VIOLATION {
        ErrorClass::Unique
    } else if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED {
        ErrorClass::Aborted
    } else if code.code().starts_with("08")
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
    {
        ErrorClass::Connection
    } else {
        ErrorClass::Other
    }
}

impl PgError {
    pub(crate) fn malformed(what: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Malformed { what, source: source.into() }
    }

    /// Converts into the core error; an exclusion violation on `spot` is that spot's conflict.
    pub fn into_core(self, spot: Option<SpotId>) -> Error {
        match &self {
            Self::Db(e) => match classify(e) {
                ErrorClass::Exclusion => match spot {
                    Some(spot) => Error::spot_taken(spot),
                    None => Error::Conflict { reason: ConflictReason::NoFreeSpot },
                },
                ErrorClass::Aborted => retryable("PostgreSQL aborted a conflicting transaction", self),
                ErrorClass::Connection => retryable("the PostgreSQL connection was lost", self),
                ErrorClass::Unique | ErrorClass::Other => Error::backend("postgres", self),
            },
            Self::Pool(PoolError::Timeout(_)) => {
                retryable("no PostgreSQL connection became free in time", self)
            }
            Self::Pool(PoolError::Backend(e))
                if classify(e) == ErrorClass::Connection || e.code().is_none() =>
            {
                retryable("could not connect to PostgreSQL", self)
            }
            Self::Pool(PoolError::Closed) => Error::Unavailable {
                message: "the PostgreSQL pool is closed".into(),
                retryable: false,
                source: Some(Box::new(self)),
            },
            _ => Error::backend("postgres", self),
        }
    }
}

impl From<PgError> for Error {
    fn from(e: PgError) -> Self {
        e.into_core(None)
    }
}

fn retryable(message: &str, source: PgError) -> Error {
    Error::Unavailable { message: message.into(), retryable: true, source: Some(Box::new(source)) }
}

/// The core error of anything the driver or the pool returns: a lost or refused connection, a
/// pool that stays busy and an aborted transaction are retryable `Unavailable`; the rest is
/// `Backend { backend: "postgres" }` with the driver's error as its source.
///
/// ```
/// # async fn f(pool: &parq_postgres::deadpool_postgres::Pool) -> parq_core::Result<()> {
/// let client = pool.get().await.map_err(parq_postgres::db_error)?;
/// client.simple_query("SELECT 1").await.map_err(parq_postgres::db_error)?;
/// # Ok(()) }
/// ```
pub fn db_error(e: impl Into<PgError>) -> Error {
    e.into().into_core(None)
}

/// `PgError` from anything the driver returns.
pub(crate) fn db(e: tokio_postgres::Error) -> Error {
    db_error(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_retryable() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // Nothing listens on port 1.
        let e = rt
            .block_on(async {
                "host=127.0.0.1 port=1 user=x connect_timeout=2"
                    .parse::<tokio_postgres::Config>()
                    .unwrap()
                    .connect(tokio_postgres::NoTls)
                    .await
            })
            .err()
            .expect("nothing listens on port 1");
        assert_eq!(classify(&e), ErrorClass::Connection);
        assert!(classify(&e).is_retryable());
        assert!(db_error(e).is_retryable());
    }
}
