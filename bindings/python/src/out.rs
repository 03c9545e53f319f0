//! Results as Python objects: reservations as the native `parq.Reservation`, everything else
//! as the frozen dataclasses of `parq._types`.

use parq_core::pass::{Decision, Pass};
use parq_core::{
    Availability, Cancellation, Checkout, Event, GateSession, Lot, LotMatch, Quote, Refund, Reservation,
    Spot, SweepReport,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{to_typed, types, uuid_out};
use crate::reservation::PyReservation;

/// A result that knows its Python form.
pub trait ToPy: Send + 'static {
    fn to_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>>;
}

/// Wraps a result so asyncio futures can carry it.
pub struct Out<T>(pub T);

impl<'py, T: ToPy> IntoPyObject<'py> for Out<T> {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        self.0.to_py(py)
    }
}

impl ToPy for () {
    fn to_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(py.None().into_bound(py))
    }
}

impl ToPy for Reservation {
    fn to_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(Bound::new(py, PyReservation(self))?.into_any())
    }
}

impl ToPy for Vec<Reservation> {
    fn to_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let items: Vec<PyReservation> = self.into_iter().map(PyReservation).collect();
        Ok(items.into_pyobject(py)?.into_any())
    }
}

macro_rules! typed {
    ($($t:ty => $name:literal),* $(,)?) => {$(
        impl ToPy for $t {
            fn to_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                to_typed(py, &self, $name)
            }
        }
    )*};
}

typed! {
    Lot => "Lot",
    Vec<Spot> => "list[Spot]",
    Quote => "Quote",
    Availability => "Availability",
    Vec<LotMatch> => "list[LotMatch]",
    Refund => "Refund",
    Decision => "ScanDecision",
    Vec<GateSession> => "list[GateSession]",
    SweepReport => "SweepReport",
    parq_core::pass::RevocationDelta => "RevocationDelta",
}

impl ToPy for Option<Event> {
    fn to_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Some(e) => to_typed(py, &e, "Event"),
            None => Ok(py.None().into_bound(py)),
        }
    }
}

impl ToPy for Checkout {
    fn to_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let intent = to_typed(py, &self.intent, "PaymentIntent")?;
        let reservation = self.reservation.to_py(py)?;
        types(py)?.getattr("Checkout")?.call1((reservation, intent))
    }
}

impl ToPy for Cancellation {
    fn to_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let refunded = to_typed(py, &self.refunded, "Money")?;
        let reservation = self.reservation.to_py(py)?;
        types(py)?.getattr("Cancellation")?.call1((reservation, refunded))
    }
}

/// A pass's claims as a dict in the form `parq._types.Pass` reads.
pub fn claims_dict<'py>(py: Python<'py>, c: &parq_core::pass::PassClaims) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("key_id", c.key_id.0)?;
    d.set_item("reservation", uuid_out(py, &c.entitlement.reservation.0)?)?;
    d.set_item("lot", uuid_out(py, &c.entitlement.lot.0)?)?;
    d.set_item("spot", uuid_out(py, &c.entitlement.spot.0)?)?;
    d.set_item("window", to_typed(py, &c.entitlement.window, "Window")?)?;
    d.set_item("nonce", uuid::Uuid::from_bytes(c.nonce.0).simple().to_string())?;
    Ok(d)
}

impl ToPy for Pass {
    fn to_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let d = claims_dict(py, self.claims())?;
        d.set_item("text", self.text())?;
        types(py)?.getattr("Pass")?.call((), Some(&d))
    }
}
