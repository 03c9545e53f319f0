//! The native part of the `parq` Python package (`parq._parq`). See `python/parq/` for the
//! package users import, and the README for how to use it.

mod convert;
mod core;
mod engine;
mod gate;
mod out;
mod reservation;

use pyo3::prelude::*;

use std::sync::atomic::{AtomicPtr, Ordering};

/// The runtime and the process it belongs to.
struct ProcessRuntime {
    pid: u32,
    rt: tokio::runtime::Runtime,
}

static RUNTIME: AtomicPtr<ProcessRuntime> = AtomicPtr::new(std::ptr::null_mut());

/// The one tokio runtime of the process, made on first use, never at import. A forked child
/// (gunicorn, Celery and uWSGI workers) inherits no threads, so it gets a runtime of its own
/// on its first call; the parent's is left alone.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    let pid = std::process::id();
    let cur = RUNTIME.load(Ordering::Acquire);
    // SAFETY: runtimes are leaked, never freed, so a pointer once published stays valid.
    if let Some(r) = unsafe { cur.as_ref() }
        && r.pid == pid
    {
        return &r.rt;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("parq")
        .build()
        .expect("the operating system lets parq start its worker threads");
    let fresh = Box::into_raw(Box::new(ProcessRuntime { pid, rt }));
    match RUNTIME.compare_exchange(cur, fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: `fresh` was just leaked and published.
        Ok(_) => unsafe { &(*fresh).rt },
        Err(other) => {
            // Another thread won the race; it made the runtime of this same process.
            // SAFETY: `fresh` was never published; dropping it shuts its threads down.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: as above, published runtimes are never freed.
            unsafe { &(*other).rt }
        }
    }
}

#[pymodule]
fn _parq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<reservation::PyReservation>()?;
    engine::register(m)?;
    gate::register(m)?;
    Ok(())
}
