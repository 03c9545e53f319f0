//! `parq.Reservation`: the native, immutable result of a hold. Its fields become Python
//! objects only when read, so a hold costs no more than the engine's work plus the call.

use parq_core::Reservation;
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::PyDict;

use crate::convert::{to_typed, ts_out, types, uuid_out};

/// A reservation: the entitlement to a spot for a window. Immutable; ids are `uuid.UUID`,
/// instants timezone-aware UTC `datetime`s, money `parq.Money` in minor units.
#[pyclass(module = "parq", name = "Reservation", frozen)]
#[derive(Clone)]
pub struct PyReservation(pub Reservation);

#[pymethods]
impl PyReservation {
    /// The reservation's id.
    #[getter]
    fn id<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        uuid_out(py, &self.0.id.0)
    }
    /// The operator of the lot.
    #[getter]
    fn operator<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        uuid_out(py, &self.0.operator.0)
    }
    /// The lot.
    #[getter]
    fn lot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        uuid_out(py, &self.0.lot.0)
    }
    /// The spot.
    #[getter]
    fn spot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        uuid_out(py, &self.0.spot.0)
    }
    /// The driver.
    #[getter]
    fn user<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        uuid_out(py, &self.0.user.0)
    }
    /// The first instant of the window.
    #[getter]
    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ts_out(py, self.0.window.start())
    }
    /// The first instant after the window.
    #[getter]
    fn end<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ts_out(py, self.0.window.end())
    }
    /// The window `[start, end)`.
    #[getter]
    fn window<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_typed(py, &self.0.window, "Window")
    }
    /// The state, as readers see it when the reservation was read.
    #[getter]
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        types(py)?.getattr("ReservationState")?.call1((self.0.state.as_str(),))
    }
    /// The fencing number (larger for every new hold of the spot).
    #[getter]
    fn fence(&self) -> u64 {
        self.0.fence
    }
    /// The price locked at hold time.
    #[getter]
    fn price<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_typed(py, &self.0.price, "Money")
    }
    /// When an unpaid hold stops blocking the spot.
    #[getter]
    fn hold_expires_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ts_out(py, self.0.hold_expires_at)
    }
    /// When the hold was made.
    #[getter]
    fn created_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ts_out(py, self.0.created_at)
    }
    /// The payment, once checkout began.
    #[getter]
    fn payment<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.0.payment {
            Some(p) => to_typed(py, &**p, "PaymentRef"),
            None => Ok(py.None().into_bound(py)),
        }
    }
    /// The reservation as JSON-ready values (ids and instants as text), as the REST API shows it.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let v = pythonize::pythonize(py, &self.0)
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
        Ok(v.cast_into::<PyDict>()?)
    }
    fn __repr__(&self) -> String {
        let r = &self.0;
        format!(
            "Reservation(id={}, state={}, lot={}, spot={}, start={}, end={}, price={} {}, fence={})",
            r.id.0,
            r.state.as_str(),
            r.lot.0,
            r.spot.0,
            r.window.start(),
            r.window.end(),
            r.price.minor,
            r.price.currency,
            r.fence
        )
    }
    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(other) = other.cast::<PyReservation>() else {
            return Ok(py.NotImplemented());
        };
        let eq = self.0 == other.get().0;
        match op {
            CompareOp::Eq => Ok(eq.into_pyobject(py)?.to_owned().into_any().unbind()),
            CompareOp::Ne => Ok((!eq).into_pyobject(py)?.to_owned().into_any().unbind()),
            _ => Ok(py.NotImplemented()),
        }
    }
    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.0.id.hash(&mut h);
        self.0.fence.hash(&mut h);
        h.finish()
    }
}
