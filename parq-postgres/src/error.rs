//! The adapter's own errors and how they become ParQ's [`Error`].

use deadpool_postgres::PoolError;
use parq_core::{BoxError, ConflictReason, Error, SpotId};
use tokio_postgres::error::SqlState;

/// What went wrong inside the PostgreSQL adapter. Kept as the typed source of the core error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PgError {
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

impl PgError {
    pub(crate) fn malformed(what: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Malformed { what, source: source.into() }
    }

    /// Converts into the core error; an exclusion violation on `spot` is that spot's conflict.
    pub(crate) fn into_core(self, spot: Option<SpotId>) -> Error {
        match &self {
            Self::Db(e) => {
                let code = e.code();
                if code == Some(&SqlState::EXCLUSION_VIOLATION) {
                    return match spot {
                        Some(spot) => Error::spot_taken(spot),
                        None => Error::Conflict { reason: ConflictReason::NoFreeSpot },
                    };
                }
                if code == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
                    || code == Some(&SqlState::T_R_DEADLOCK_DETECTED)
                {
                    return retryable("PostgreSQL aborted a conflicting transaction", self);
                }
                if is_connection_error(e) {
                    return retryable("the PostgreSQL connection was lost", self);
                }
                Error::backend("postgres", self)
            }
            Self::Pool(PoolError::Timeout(_)) => {
                retryable("no PostgreSQL connection became free in time", self)
            }
            Self::Pool(PoolError::Backend(e)) if is_connection_error(e) || e.code().is_none() => {
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

/// Whether the error means the connection (or the server process behind it) went away.
pub(crate) fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Class 08: connection exception; 57P01..57P03: the server is shutting down or
        // terminated this backend (pg_terminate_backend), or is not accepting connections yet.
        Some(c) => {
            c.code().starts_with("08")
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
        }
        // No SQLSTATE: an I/O or protocol failure on the socket.
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// `PgError` from anything the driver returns.
pub(crate) fn db(e: tokio_postgres::Error) -> Error {
    PgError::Db(e).into_core(None)
}
