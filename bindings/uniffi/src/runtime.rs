//! The Tokio runtime this crate owns. Every async call of the bindings runs as a task on it;
//! the foreign side (Kotlin coroutines, Swift concurrency) only awaits the task's handle, so
//! no foreign thread ever needs a Tokio context. Dropping the awaiting future (a cancelled
//! coroutine or Swift task) aborts the task.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

use crate::error::ParqError;

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The runtime, made on first use: two worker threads named `parq-ffi`.
pub(crate) fn runtime() -> Result<&'static Runtime, ParqError> {
    let rt = RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("parq-ffi")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the Tokio runtime: {e}"))
    });
    rt.as_ref().map_err(|e| ParqError::Unexpected { detail: e.clone() })
}

/// Aborts the task when dropped, so a cancelled foreign call stops its work.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` on the crate's runtime and waits for it; a panic in it is an error, not a crash.
pub(crate) async fn run<T, F>(fut: F) -> Result<T, ParqError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, ParqError>> + Send + 'static,
{
    let mut task = AbortOnDrop(runtime()?.spawn(fut));
    match (&mut task.0).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(ParqError::Unexpected { detail: "the call panicked".into() }),
        Err(_) => Err(ParqError::Unexpected { detail: "the call was cancelled".into() }),
    }
}
