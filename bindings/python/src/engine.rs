//! `parq.Engine` (blocking, the GIL released while the engine works) and `parq.AsyncEngine`
//! (every call awaitable on asyncio). Both wrap one [`Core`] and share one tokio runtime.

use std::sync::Arc;
use std::time::Duration;

use parq_core::{EventStream, HoldSpec};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::sync::Mutex as AsyncMutex;

use crate::convert::{invalid, run, spawn, ts_out};
use crate::core::{Core, Options, next_event};
use crate::out::{Out, ToPy};
use crate::reservation::PyReservation;

/// A clock that moves only when told to, for tests of expiry and gates without sleeping.
#[pyclass(module = "parq", name = "ManualClock", frozen)]
pub struct PyManualClock(pub Arc<parq_core::ManualClock>);

#[pymethods]
impl PyManualClock {
    #[new]
    fn new(start: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self(Arc::new(parq_core::ManualClock::new(crate::convert::ts_arg(start, "start")?))))
    }
    /// The clock's instant.
    fn now<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        use parq_core::Clock;
        ts_out(py, self.0.now())
    }
    /// Sets the clock.
    fn set(&self, at: &Bound<'_, PyAny>) -> PyResult<()> {
        self.0.set(crate::convert::ts_arg(at, "at")?);
        Ok(())
    }
    /// Moves the clock by `delta` (a `datetime.timedelta`).
    fn advance(&self, delta: &Bound<'_, PyAny>) -> PyResult<()> {
        self.0.advance(crate::convert::duration_arg(delta, "delta")?);
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn build(
    py: Python<'_>,
    store: String,
    schema: String,
    lock: Option<String>,
    gateway: String,
    webhook_secret: Option<String>,
    stripe_secret_key: Option<String>,
    stripe_api_base: Option<String>,
    stripe_send_description: bool,
    pool_size: usize,
    clock: Option<&Bound<'_, PyManualClock>>,
    signing_keys: Option<Vec<(u32, String)>>,
    reentry: bool,
    redis_prefix: String,
) -> PyResult<Arc<Core>> {
    let o = Options {
        store,
        schema,
        lock,
        gateway,
        webhook_secret,
        stripe_secret_key,
        stripe_api_base,
        stripe_send_description,
        pool_size,
        clock: clock.map(|c| c.get().0.clone()),
        signing_keys,
        reentry,
        redis_prefix,
    };
    Ok(Arc::new(Core::build(py, o)?))
}

fn webhook_body(body: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = body.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(s) = body.extract::<String>() {
        return Ok(s.into_bytes());
    }
    body.extract::<Vec<u8>>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err("body must be the raw request body as bytes (or str)")
    })
}

fn delivery<'py>(py: Python<'py>, body: Vec<u8>, signature: String) -> PyResult<Bound<'py, PyAny>> {
    crate::convert::types(py)?.getattr("WebhookDelivery")?.call1((PyBytes::new(py, &body), signature))
}

fn check_gate(py: Python<'_>, gate: &str, scan_id: &str) -> PyResult<()> {
    if gate.trim().is_empty() || gate.len() > 200 {
        return Err(invalid(py, "gate", "must be 1 to 200 characters"));
    }
    if scan_id.is_empty() || scan_id.len() > 200 {
        return Err(invalid(py, "scan_id", "must be 1 to 200 characters"));
    }
    Ok(())
}

macro_rules! engine_class {
    ($name:ident, $pyname:literal, $doc:literal, $ret:ty, $go:ident, $hold_ret:ty, $hold_go:ident, { $($extra:tt)* }) => {
        #[doc = $doc]
        #[pyclass(module = "parq", name = $pyname, frozen)]
        pub struct $name {
            core: Arc<Core>,
        }

        impl $name {
            /// The engine's core, refused in a forked child when it holds connections of the
            /// parent (PostgreSQL, Redis): those sockets and their tasks stayed in the parent.
            fn core(&self, py: Python<'_>) -> PyResult<&Arc<Core>> {
                self.core.check_process(py)?;
                Ok(&self.core)
            }
        }

        #[pymethods]
        impl $name {
            #[new]
            #[pyo3(signature = (store = "memory:", *, schema = "parq", lock = None, gateway = "test", webhook_secret = None, stripe_secret_key = None, stripe_api_base = None, stripe_send_description = true, pool_size = 16, clock = None, signing_keys = None, reentry = false, redis_prefix = "parq"))]
            #[allow(clippy::too_many_arguments)]
            fn new(
                py: Python<'_>,
                store: &str,
                schema: &str,
                lock: Option<String>,
                gateway: &str,
                webhook_secret: Option<String>,
                stripe_secret_key: Option<String>,
                stripe_api_base: Option<String>,
                stripe_send_description: bool,
                pool_size: usize,
                clock: Option<&Bound<'_, PyManualClock>>,
                signing_keys: Option<Vec<(u32, String)>>,
                reentry: bool,
                redis_prefix: &str,
            ) -> PyResult<Self> {
                let core = build(
                    py, store.to_owned(), schema.to_owned(), lock, gateway.to_owned(), webhook_secret, stripe_secret_key,
                    stripe_api_base, stripe_send_description, pool_size, clock, signing_keys, reentry,
                    redis_prefix.to_owned(),
                )?;
                Ok(Self { core })
            }

            /// Brings the store's schema up to date (PostgreSQL); safe from several processes.
            fn migrate<'py>(&self, py: Python<'py>) -> PyResult<$ret> {
                $go(py, self.core(py)?.migrate())
            }
            /// The current instant by the engine's clock.
            fn now<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                ts_out(py, self.core(py)?.engine.now())
            }
            /// Creates or replaces an operator.
            fn put_operator<'py>(&self, py: Python<'py>, operator: &Bound<'py, PyAny>) -> PyResult<$ret> {
                $go(py, self.core(py)?.put_operator(operator)?)
            }
            /// Creates or replaces a lot (checked against its own rules).
            fn put_lot<'py>(&self, py: Python<'py>, lot: &Bound<'py, PyAny>) -> PyResult<$ret> {
                $go(py, self.core(py)?.put_lot(lot)?)
            }
            /// Creates or replaces a spot.
            fn put_spot<'py>(&self, py: Python<'py>, spot: &Bound<'py, PyAny>) -> PyResult<$ret> {
                $go(py, self.core(py)?.put_spot(spot)?)
            }
            /// A lot.
            fn lot<'py>(&self, py: Python<'py>, lot: &Bound<'py, PyAny>) -> PyResult<$ret> {
                $go(py, self.core(py)?.lot(lot)?)
            }
            /// The spots of a lot.
            fn spots<'py>(&self, py: Python<'py>, lot: &Bound<'py, PyAny>) -> PyResult<$ret> {
                $go(py, self.core(py)?.spots(lot)?)
            }
            /// The price of `[start, end)` in a lot, after checking the window against its rules.
            fn quote<'py>(&self, py: Python<'py>, lot: &Bound<'py, PyAny>, start: &Bound<'py, PyAny>, end: &Bound<'py, PyAny>) -> PyResult<$ret> {
                $go(py, self.core(py)?.quote(lot, start, end)?)
            }
            /// Which spots of a lot are free for the whole window.
            fn availability<'py>(&self, py: Python<'py>, lot: &Bound<'py, PyAny>, start: &Bound<'py, PyAny>, end: &Bound<'py, PyAny>) -> PyResult<$ret> {
                $go(py, self.core(py)?.availability(lot, start, end)?)
            }
            /// Lots within `radius_m` of a point with a matching spot free for the window, nearest first.
            #[pyo3(signature = (lat, lon, radius_m, start, end, filter = None))]
            #[allow(clippy::too_many_arguments)]
            fn search<'py>(&self, py: Python<'py>, lat: f64, lon: f64, radius_m: f64, start: &Bound<'py, PyAny>, end: &Bound<'py, PyAny>, filter: Option<&Bound<'py, PyAny>>) -> PyResult<$ret> {
                $go(py, self.core(py)?.search(py, lat, lon, radius_m, start, end, filter)?)
            }
            /// Holds a spot for `[start, end)`: the named `spot`, or any spot of the lot matching
            /// `filter`. The same `idempotency_key` with the same request returns the same
            /// reservation; with another request it raises `IdempotencyMismatch`.
            #[pyo3(signature = (user, lot, start, end, *, spot = None, filter = None, idempotency_key = None))]
            #[allow(clippy::too_many_arguments)]
            fn hold<'py>(&self, py: Python<'py>, user: &Bound<'py, PyAny>, lot: &Bound<'py, PyAny>, start: &Bound<'py, PyAny>, end: &Bound<'py, PyAny>, spot: Option<&Bound<'py, PyAny>>, filter: Option<&Bound<'py, PyAny>>, idempotency_key: Option<String>) -> PyResult<$hold_ret> {
                let (core, spec, key) = self.core(py)?.hold(py, user, lot, start, end, spot, filter, idempotency_key)?;
                $hold_go(py, core, spec, key)
            }
            /// A reservation as it reads now; with `user`, only that driver's (`NotFound` otherwise).
            #[pyo3(signature = (reservation, user = None))]
            fn get<'py>(&self, py: Python<'py>, reservation: &Bound<'py, PyAny>, user: Option<&Bound<'py, PyAny>>) -> PyResult<$ret> {
                $go(py, self.core(py)?.get(reservation, user)?)
            }
            /// A driver's reservations, newest first.
            #[pyo3(signature = (user, limit = 50))]
            fn reservations_of<'py>(&self, py: Python<'py>, user: &Bound<'py, PyAny>, limit: usize) -> PyResult<$ret> {
                $go(py, self.core(py)?.reservations_of(user, limit)?)
            }
            /// Starts paying for a hold: the reservation awaits payment and a payment intent is made.
            fn checkout<'py>(&self, py: Python<'py>, reservation: &Bound<'py, PyAny>, user: &Bound<'py, PyAny>) -> PyResult<$ret> {
                $go(py, self.core(py)?.checkout(reservation, user)?)
            }
            /// Applies a payment provider's webhook: the raw request body and its signature header
            /// (`Stripe-Signature`). Verified, deduplicated by event id, applied once.
            fn handle_webhook<'py>(&self, py: Python<'py>, body: &Bound<'py, PyAny>, signature: String) -> PyResult<$ret> {
                let body = webhook_body(body)?;
                $go(py, self.core(py)?.handle_webhook(body, signature))
            }
            /// With the test gateway: the driver pays `intent_id`. Returns the signed webhook the
            /// provider would send, to pass to `handle_webhook` (as a web framework would).
            #[pyo3(signature = (intent_id, *, capture = false))]
            fn simulate_payment<'py>(&self, py: Python<'py>, intent_id: &str, capture: bool) -> PyResult<Bound<'py, PyAny>> {
                let (body, sig) = self.core(py)?.simulate_payment(py, intent_id, capture)?;
                delivery(py, body, sig)
            }
            /// With the test gateway: the next call of `op` (`create`, `pay`, `capture`, `cancel`,
            /// `refund`, `retrieve`) fails — declined with `decline` as the reason, or as a
            /// timeout when `decline` is `None` — so an integrator can test their error paths.
            #[pyo3(signature = (op, *, decline = None))]
            fn fail_next_gateway_call(&self, py: Python<'_>, op: &str, decline: Option<String>) -> PyResult<()> {
                self.core(py)?.fail_next(py, op, decline)
            }
            /// Cancels a reservation of `user`, refunding by the lot's policy exactly once.
            fn cancel<'py>(&self, py: Python<'py>, reservation: &Bound<'py, PyAny>, user: &Bound<'py, PyAny>) -> PyResult<$ret> {
                $go(py, self.core(py)?.cancel(reservation, user)?)
            }
            /// Moves a reservation's end to `new_end` when the spot is free until then.
            fn extend<'py>(&self, py: Python<'py>, reservation: &Bound<'py, PyAny>, user: &Bound<'py, PyAny>, new_end: &Bound<'py, PyAny>) -> PyResult<$ret> {
                $go(py, self.core(py)?.extend(reservation, user, new_end)?)
            }
            /// Refunds `amount` (a `parq.Money`) of a paid reservation outside the policy (goodwill).
            fn refund<'py>(&self, py: Python<'py>, reservation: &Bound<'py, PyAny>, amount: &Bound<'py, PyAny>) -> PyResult<$ret> {
                $go(py, self.core(py)?.refund(reservation, amount)?)
            }
            /// The signed access pass of a paid reservation of `user`.
            fn issue_pass<'py>(&self, py: Python<'py>, reservation: &Bound<'py, PyAny>, user: &Bound<'py, PyAny>) -> PyResult<$ret> {
                $go(py, self.core(py)?.issue_pass(reservation, user)?)
            }
            /// The public keys gates need to verify passes offline.
            fn pass_keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                crate::convert::to_typed(py, &self.core(py)?.engine.pass_keys(), "list[PublicKey]")
            }
            /// Revocations after `version` (at most 1000; ask again from `to` when it is below
            /// the latest), read from the store, for gates to sync.
            #[pyo3(signature = (version = 0))]
            fn revocations_since<'py>(&self, py: Python<'py>, version: u64) -> PyResult<$ret> {
                $go(py, self.core(py)?.revocations_since(version))
            }
            /// Decides a scan of a pass at a gate of `lot`, online, by the same rules as
            /// `GateVerifier`, and records the entry or exit when allowed. A refusal is a result.
            #[pyo3(signature = (text, lot, direction, *, gate = "gate", scan_id = None))]
            fn scan<'py>(&self, py: Python<'py>, text: String, lot: &Bound<'py, PyAny>, direction: &Bound<'py, PyAny>, gate: &str, scan_id: Option<String>) -> PyResult<$ret> {
                $go(py, self.core(py)?.scan(py, text, lot, direction, gate.to_owned(), scan_id)?)
            }
            /// Records an entry without a pass (an attendant, a plate reader); `scan_id` makes a
            /// repeated reading count once. Refused entries raise `ScanRefused`.
            fn check_in<'py>(&self, py: Python<'py>, reservation: &Bound<'py, PyAny>, gate: String, scan_id: String) -> PyResult<$ret> {
                check_gate(py, &gate, &scan_id)?;
                $go(py, self.core(py)?.gate_by_id(reservation, true, gate, scan_id)?)
            }
            /// Records an exit; see `check_in`.
            fn check_out<'py>(&self, py: Python<'py>, reservation: &Bound<'py, PyAny>, gate: String, scan_id: String) -> PyResult<$ret> {
                check_gate(py, &gate, &scan_id)?;
                $go(py, self.core(py)?.gate_by_id(reservation, false, gate, scan_id)?)
            }
            /// The gate sessions (visits) of a reservation.
            fn sessions<'py>(&self, py: Python<'py>, reservation: &Bound<'py, PyAny>) -> PyResult<$ret> {
                $go(py, self.core(py)?.sessions(reservation)?)
            }
            /// One pass of the sweeper: lapsed holds marked expired, no-shows released.
            #[pyo3(signature = (batch = 500))]
            fn sweep<'py>(&self, py: Python<'py>, batch: usize) -> PyResult<$ret> {
                $go(py, self.core(py)?.sweep(batch))
            }
            $($extra)*

            fn __repr__(&self) -> String {
                format!(
                    concat!($pyname, "(store={}, lock={})"),
                    if self.core.pg.is_some() { "postgres" } else { "memory" },
                    match &self.core.redis {
                        Some((health, _)) => format!("redis, {:?}", health.state()),
                        None => "none or memory".to_owned(),
                    }
                )
            }
        }
    };
}

fn go_sync<'py, T: ToPy + Send>(
    py: Python<'py>,
    fut: impl Future<Output = parq_core::Result<T>> + Send,
) -> PyResult<Bound<'py, PyAny>> {
    run(py, fut)?.to_py(py)
}

fn go_async<'py, T: ToPy + Send>(
    py: Python<'py>,
    fut: impl Future<Output = parq_core::Result<T>> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>> {
    spawn(py, async move { fut.await.map(Out) })
}

fn hold_sync(
    py: Python<'_>,
    core: Arc<Core>,
    spec: HoldSpec,
    key: Option<String>,
) -> PyResult<PyReservation> {
    run(py, async { core.engine.hold(&spec, key.as_deref()).await }).map(PyReservation)
}

fn hold_async(
    py: Python<'_>,
    core: Arc<Core>,
    spec: HoldSpec,
    key: Option<String>,
) -> PyResult<Bound<'_, PyAny>> {
    spawn(py, async move { core.engine.hold(&spec, key.as_deref()).await.map(PyReservation) })
}

engine_class!(
    PyEngine,
    "Engine",
    "The reservation engine, with blocking calls that release the GIL while the engine works.\n\nThread-safe: share one engine between threads. Backends are picked by URL: `memory:` or `postgres://…` for the store (in `schema`), `None`, `memory:` or `redis://…` for the admission lock, `test` or `stripe` for the gateway.",
    Bound<'py, PyAny>,
    go_sync,
    PyReservation,
    hold_sync,
    {
        /// The lot's events after sequence number `after`, first from the store and then live,
        /// without gaps or duplicates. Iterate it; `next()` blocks (the GIL released) up to
        /// `timeout` seconds when given, then raises `Unavailable`.
        #[pyo3(signature = (lot, after = 0, *, timeout = None))]
        fn watch(
            &self,
            py: Python<'_>,
            lot: &Bound<'_, PyAny>,
            after: u64,
            timeout: Option<f64>,
        ) -> PyResult<EventIterator> {
            let stream = run(py, self.core.watch(lot, after)?)?;
            Ok(EventIterator { stream, timeout: timeout_arg(py, timeout)? })
        }
    }
);

engine_class!(
    PyAsyncEngine,
    "AsyncEngine",
    "The reservation engine for asyncio: every call returns an awaitable.\n\nTakes the same arguments as `Engine`; both run on one shared runtime made on first use.",
    Bound<'py, PyAny>,
    go_async,
    Bound<'py, PyAny>,
    hold_async,
    {
        /// The lot's events after sequence number `after`, as an async iterator (`async for`).
        #[pyo3(signature = (lot, after = 0))]
        fn watch<'py>(
            &self,
            py: Python<'py>,
            lot: &Bound<'py, PyAny>,
            after: u64,
        ) -> PyResult<AsyncEventIterator> {
            // Subscribing is quick and must happen before the caller's next write, so it is done now.
            let stream = run(py, self.core.watch(lot, after)?)?;
            Ok(AsyncEventIterator { stream })
        }
    }
);

fn timeout_arg(py: Python<'_>, t: Option<f64>) -> PyResult<Option<Duration>> {
    match t {
        None => Ok(None),
        Some(s) if (0.0..1e9).contains(&s) => Ok(Some(Duration::from_secs_f64(s))),
        Some(_) => Err(invalid(py, "timeout", "must be a non-negative number of seconds")),
    }
}

/// A lot's events, blocking.
#[pyclass(module = "parq", name = "EventIterator", frozen)]
pub struct EventIterator {
    stream: Arc<AsyncMutex<EventStream>>,
    timeout: Option<Duration>,
}

#[pymethods]
impl EventIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match run(py, next_event(self.stream.clone(), self.timeout))? {
            Some(e) => Some(e).to_py(py),
            None => Err(pyo3::exceptions::PyStopIteration::new_err(())),
        }
    }
}

/// The next event, or the end of the stream as `StopAsyncIteration`.
struct EndOr(Option<parq_core::Event>);

impl<'py> IntoPyObject<'py> for EndOr {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        match self.0 {
            Some(e) => Some(e).to_py(py),
            None => Err(pyo3::exceptions::PyStopAsyncIteration::new_err(())),
        }
    }
}

/// A lot's events, for `async for`.
#[pyclass(module = "parq", name = "AsyncEventIterator", frozen)]
pub struct AsyncEventIterator {
    stream: Arc<AsyncMutex<EventStream>>,
}

#[pymethods]
impl AsyncEventIterator {
    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }
    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stream = self.stream.clone();
        spawn(py, async move { next_event(stream, None).await.map(EndOr) })
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEngine>()?;
    m.add_class::<PyAsyncEngine>()?;
    m.add_class::<PyManualClock>()?;
    m.add_class::<EventIterator>()?;
    m.add_class::<AsyncEventIterator>()?;
    Ok(())
}
