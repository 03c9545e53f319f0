//! Conversions at the edge: Python's `uuid.UUID`, aware `datetime`, `timedelta`, the typed
//! results of `parq._types`, and ParQ's errors as `parq._errors` exceptions.

use std::panic::AssertUnwindSafe;

use jiff::{SignedDuration, Timestamp};
use parq_core::error::ConflictReason;
use parq_core::{Error, Window};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyType};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

static UUID_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATETIME_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMEDELTA_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EPOCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TYPES: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    module: &str,
    name: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, module, name)
}

/// `parq._types`, where the result types live.
pub fn types(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    Ok(TYPES.get_or_try_init(py, || py.import("parq._types").map(Bound::unbind))?.bind(py))
}

fn errors(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    Ok(ERRORS.get_or_try_init(py, || py.import("parq._errors").map(Bound::unbind))?.bind(py))
}

/// An `InvalidInput` (also a `ValueError`) about argument `field`.
pub fn invalid(py: Python<'_>, field: &str, message: impl Into<String>) -> PyErr {
    to_pyerr(py, Error::Invalid { field: leak_field(field), message: message.into() })
}

/// Field names are few and static in practice; unknown ones are interned once.
fn leak_field(field: &str) -> &'static str {
    static FIELDS: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut fields = FIELDS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(f) = fields.iter().find(|f| **f == field) {
        return f;
    }
    let f: &'static str = Box::leak(field.to_owned().into_boxed_str());
    fields.push(f);
    f
}

/// A UUID from a `uuid.UUID` or its text.
pub fn uuid_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Uuid> {
    let py = obj.py();
    let ty = class(py, &UUID_TYPE, "uuid", "UUID")?;
    if obj.is_instance(ty)? {
        let bytes = obj.getattr(intern!(py, "bytes"))?;
        let bytes = bytes.cast::<pyo3::types::PyBytes>()?.as_bytes();
        return Uuid::from_slice(bytes).map_err(|e| invalid(py, name, e.to_string()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Uuid::parse_str(s.to_str()?.trim())
            .map_err(|e| invalid(py, name, format!("{:?} is not a UUID: {e}", s.to_string_lossy())));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "{name} must be a uuid.UUID or its text, not {}",
        obj.get_type().name()?
    )))
}

/// A `uuid.UUID` for `id`.
pub fn uuid_out<'py>(py: Python<'py>, id: &Uuid) -> PyResult<Bound<'py, PyAny>> {
    let ty = class(py, &UUID_TYPE, "uuid", "UUID")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item(intern!(py, "int"), id.as_u128())?;
    ty.call((), Some(&kwargs))
}

fn epoch(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    Ok(EPOCH
        .get_or_try_init(py, || -> PyResult<_> {
            let dt = py.import("datetime")?;
            let utc = dt.getattr("timezone")?.getattr("utc")?;
            Ok(dt.getattr("datetime")?.call1((1970, 1, 1, 0, 0, 0, 0, utc))?.unbind())
        })?
        .bind(py))
}

/// An instant from a timezone-aware `datetime`; a naive one is an `InvalidInput` naming `name`.
pub fn ts_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Timestamp> {
    let py = obj.py();
    let ty = class(py, &DATETIME_TYPE, "datetime", "datetime")?;
    if !obj.is_instance(ty)? {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{name} must be a timezone-aware datetime.datetime, not {}",
            obj.get_type().name()?
        )));
    }
    if obj.call_method0(intern!(py, "utcoffset"))?.is_none() {
        return Err(invalid(
            py,
            name,
            "is a naive datetime; give a timezone-aware one (for example with tzinfo=datetime.timezone.utc)",
        ));
    }
    let delta = obj.sub(epoch(py)?)?;
    let days: i64 = delta.getattr(intern!(py, "days"))?.extract()?;
    let secs: i64 = delta.getattr(intern!(py, "seconds"))?.extract()?;
    let micros: i64 = delta.getattr(intern!(py, "microseconds"))?.extract()?;
    let total = i128::from(days) * 86_400_000_000 + i128::from(secs) * 1_000_000 + i128::from(micros);
    Timestamp::from_nanosecond(total * 1000).map_err(|e| invalid(py, name, format!("is out of range: {e}")))
}

/// A timezone-aware UTC `datetime` for `t` (microseconds; finer parts are dropped).
pub fn ts_out<'py>(py: Python<'py>, t: Timestamp) -> PyResult<Bound<'py, PyAny>> {
    let micros = t.as_microsecond();
    let ty = class(py, &TIMEDELTA_TYPE, "datetime", "timedelta")?;
    let delta = ty.call1((micros.div_euclid(86_400_000_000), 0, micros.rem_euclid(86_400_000_000)))?;
    epoch(py)?.add(delta)
}

/// A duration from a `datetime.timedelta`.
pub fn duration_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<SignedDuration> {
    let py = obj.py();
    let ty = class(py, &TIMEDELTA_TYPE, "datetime", "timedelta")?;
    if !obj.is_instance(ty)? {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{name} must be a datetime.timedelta, not {}",
            obj.get_type().name()?
        )));
    }
    let days: i64 = obj.getattr(intern!(py, "days"))?.extract()?;
    let secs: i64 = obj.getattr(intern!(py, "seconds"))?.extract()?;
    let micros: i64 = obj.getattr(intern!(py, "microseconds"))?.extract()?;
    Ok(SignedDuration::from_micros(days * 86_400_000_000 + secs * 1_000_000 + micros))
}

/// A window from two aware datetimes.
pub fn window_arg(start: &Bound<'_, PyAny>, end: &Bound<'_, PyAny>) -> PyResult<Window> {
    let (s, e) = (ts_arg(start, "start")?, ts_arg(end, "end")?);
    Window::new(s, e).map_err(|e| to_pyerr(start.py(), e))
}

/// A value of `parq._types` (given by class name) from ParQ's serialised form.
pub fn to_typed<'py, T: Serialize + ?Sized>(
    py: Python<'py>,
    value: &T,
    type_name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let wire =
        pythonize::pythonize(py, value).map_err(|e| to_pyerr(py, Error::backend("python", e.to_string())))?;
    types(py)?.call_method1(intern!(py, "_decode"), (type_name, wire))
}

/// A Rust value from a `parq._types` object (or a dict in the serialised form).
pub fn from_typed<T: DeserializeOwned>(obj: &Bound<'_, PyAny>, type_name: &str, field: &str) -> PyResult<T> {
    let py = obj.py();
    let wire = types(py)?.call_method1(intern!(py, "_encode"), (type_name, obj))?;
    pythonize::depythonize(&wire).map_err(|e| invalid(py, field, e.to_string()))
}

fn conflict_reason(r: &ConflictReason) -> (&'static str, Option<Uuid>) {
    match r {
        ConflictReason::SpotTaken { spot } => ("spot_taken", Some(spot.0)),
        ConflictReason::NoFreeSpot => ("no_free_spot", None),
        ConflictReason::Blackout => ("blackout", None),
        ConflictReason::Claimed => ("claimed", None),
        _ => ("other", None),
    }
}

/// ParQ's error as the matching `parq` exception, with the variant's details as attributes.
pub fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    match build_error(py, &e) {
        Ok(err) => err,
        // The error module failed to load: still raise something that says what happened.
        Err(load) => {
            pyo3::exceptions::PyRuntimeError::new_err(format!("{e} (and parq._errors failed: {load})"))
        }
    }
}

fn build_error(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    let kw = PyDict::new(py);
    match e {
        Error::Conflict { reason } => {
            let (r, spot) = conflict_reason(reason);
            kw.set_item("reason", r)?;
            kw.set_item("spot", spot.map(|s| uuid_out(py, &s)).transpose()?)?;
        }
        Error::NotFound { what } => kw.set_item("what", what)?,
        Error::InvalidTransition { id, from, action } => {
            kw.set_item("reservation", uuid_out(py, &id.0)?)?;
            kw.set_item("state", types(py)?.getattr("ReservationState")?.call1((from.as_str(),))?)?;
            kw.set_item("action", *action)?;
        }
        Error::HoldExpired { id } => kw.set_item("reservation", uuid_out(py, &id.0)?)?,
        Error::StaleFence { id, presented, current } => {
            kw.set_item("reservation", uuid_out(py, &id.0)?)?;
            kw.set_item("presented", presented)?;
            kw.set_item("current", current)?;
        }
        Error::LimitExceeded { limit } => kw.set_item("limit", limit)?,
        Error::IdempotencyMismatch { key } => kw.set_item("key", key)?,
        Error::PaymentDeclined { reason } => kw.set_item("reason", reason)?,
        Error::Unavailable { retryable, .. } => kw.set_item("retryable", retryable)?,
        Error::Invalid { field, .. } => kw.set_item("field", *field)?,
        Error::ScanRefused { reason } => {
            kw.set_item("reason", types(py)?.getattr("Refusal")?.call1((reason.as_str(),))?)?
        }
        Error::Forbidden { .. } => {}
        Error::Backend { backend, .. } => kw.set_item("backend", *backend)?,
        _ => {}
    }
    let cls = errors(py)?.call_method1(intern!(py, "_class_for"), (e.code(),))?;
    let exc = cls.call((message,), Some(&kw))?;
    Ok(PyErr::from_value(exc))
}

/// A panic that escaped the engine, as a `parq.ParqError` rather than a `PanicException`.
pub fn panic_err(py: Python<'_>, panic: Box<dyn std::any::Any + Send>) -> PyErr {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    to_pyerr(py, Error::backend("parq", format!("internal error (a bug in parq, please report it): {what}")))
}

/// Runs `fut` on the shared runtime with the GIL released, turning errors and panics into
/// `parq` exceptions.
pub fn run<T: Send, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = parq_core::Result<T>> + Send,
{
    let rt = crate::runtime();
    let out = py.detach(|| std::panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(fut))));
    match out {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_pyerr(py, e)),
        Err(p) => Err(panic_err(py, p)),
    }
}

static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Runs `fut` on the shared runtime as an asyncio awaitable of the running event loop.
///
/// The future is polled once at once, on the caller's thread inside the runtime: work that
/// needs no I/O (the memory store, cached reads) completes there and the awaitable is returned
/// already done, with no thread hop. Otherwise it continues as a task on the runtime, and the
/// result is handed to the loop with `call_soon_threadsafe`; a cancelled awaitable drops it.
pub fn spawn<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = parq_core::Result<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    use futures_util::FutureExt;
    use std::task::{Context, Poll, Waker};
    let event_loop = py.import(intern!(py, "asyncio"))?.call_method0(intern!(py, "get_running_loop"))?;
    let py_fut = event_loop.call_method0(intern!(py, "create_future"))?;
    let mut fut = Box::pin(AssertUnwindSafe(fut).catch_unwind());
    let rt = crate::runtime();
    let first = {
        let _entered = rt.enter();
        fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    };
    if let Poll::Ready(result) = first {
        let (ok, value) = settle(py, result);
        resolve(py)?.call1((&py_fut, ok, value))?;
        return Ok(py_fut);
    }
    let (event_loop, target) = (event_loop.unbind(), py_fut.clone().unbind());
    rt.spawn(async move {
        let result = fut.await;
        Python::attach(|py| {
            let (ok, value) = settle(py, result);
            if let Ok(resolve) = resolve(py) {
                // A loop closed meanwhile has nobody left to tell.
                let _ = event_loop.call_method1(
                    py,
                    intern!(py, "call_soon_threadsafe"),
                    (resolve, target, ok, value),
                );
            }
        });
    });
    Ok(py_fut)
}

type Caught<T> = std::result::Result<parq_core::Result<T>, Box<dyn std::any::Any + Send>>;

/// A finished future's outcome as (ok, value-or-exception).
fn settle<T: for<'a> IntoPyObject<'a>>(py: Python<'_>, result: Caught<T>) -> (bool, Py<PyAny>) {
    match result {
        Ok(Ok(v)) => match v.into_pyobject(py) {
            Ok(o) => (true, pyo3::BoundObject::into_bound(o).into_any().unbind()),
            Err(e) => (false, Into::<PyErr>::into(e).into_value(py).into_any()),
        },
        Ok(Err(e)) => (false, to_pyerr(py, e).into_value(py).into_any()),
        Err(p) => (false, panic_err(py, p).into_value(py).into_any()),
    }
}

fn resolve(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    Ok(RESOLVE
        .get_or_try_init(py, || -> PyResult<_> { Ok(types(py)?.getattr("_resolve")?.unbind()) })?
        .bind(py))
}
