//! The crate's own failures, and how they become ParQ's [`Error`].

use std::time::Duration;

use parq_core::Error;

/// What went wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// A command failed (connection, protocol or server error).
    #[error("redis command failed")]
    Command(#[from] redis::RedisError),
    /// The pool gave no connection in time.
    #[error("no redis connection from the pool")]
    Pool(#[from] bb8_redis::bb8::RunError<redis::RedisError>),
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// A reply of an unexpected shape (a script from another version of this crate?).
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        let retryable = match &f {
            Failure::Command(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::Server(
                            redis::ServerErrorKind::BusyLoading
                                | redis::ServerErrorKind::TryAgain
                                | redis::ServerErrorKind::ClusterDown
                                | redis::ServerErrorKind::MasterDown
                        )
                    )
            }
            Failure::Pool(_) | Failure::Timeout(_) => true,
            Failure::Reply(_) => false,
        };
        if retryable {
            Error::unavailable("redis is unreachable or slow", Some(Box::new(f)))
        } else {
            Error::backend("redis", f)
        }
    }
}

/// Runs `f` on a pooled connection within `timeout`. A connection that failed as dead is
/// discarded, and the pool tests the others at their next checkout (see [`crate::pool`]).
pub(crate) async fn pooled<T>(
    pool: &crate::pool::RedisPool,
    timeout: Duration,
    f: impl AsyncFnOnce(&mut crate::pool::Connection) -> redis::RedisResult<T>,
) -> Result<T, Failure> {
    let call = async {
        let mut conn = pool.get().await?;
        match f(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                conn.saw(&e);
                Err(Failure::Command(e))
            }
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Timeout(timeout)),
    }
}
