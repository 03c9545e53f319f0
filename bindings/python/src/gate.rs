//! Offline passes: `parq.GateVerifier` decides scans with the public keys and a synced
//! revocation list, by the same `decide` as the engine; QR rendering; pass verification.

use parq_core::LotId;
use parq_core::pass::qr::PassQr;
use parq_core::pass::{
    GatePolicy, GateState, GateVerifier, PublicKeys, ReentryPolicy, RevocationDelta, Scan,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::convert::{duration_arg, from_typed, invalid, to_pyerr, ts_arg, uuid_arg};
use crate::core::direction_arg;
use crate::out::{ToPy, claims_dict};

/// A gate's verifier: decides scanned passes without a network.
///
/// It holds the issuer's public keys, its own copy of the revocation list (bring it up to date
/// with `apply_revocations` whenever the network allows) and its memory of which reservations
/// are inside, so an entry is used once. Thread-safe.
#[pyclass(module = "parq", name = "GateVerifier", frozen)]
pub struct PyGateVerifier(GateVerifier);

#[pymethods]
impl PyGateVerifier {
    /// `public_keys` as `Engine.pass_keys()` returns them (or the server's
    /// `/api/v1/passes/keys` JSON list); `grace` the lot's grace (a `timedelta`); `state`
    /// what `save_state()` returned before a restart.
    #[new]
    #[pyo3(signature = (public_keys, grace, *, reentry = false, state = None))]
    fn new(
        py: Python<'_>,
        public_keys: &Bound<'_, PyAny>,
        grace: &Bound<'_, PyAny>,
        reentry: bool,
        state: Option<&str>,
    ) -> PyResult<Self> {
        let keys: PublicKeys = from_typed(public_keys, "list[PublicKey]", "public_keys")?;
        let grace = duration_arg(grace, "grace")?;
        if grace.is_negative() {
            return Err(invalid(py, "grace", "must not be negative"));
        }
        let policy = GatePolicy {
            grace,
            reentry: if reentry { ReentryPolicy::Allowed } else { ReentryPolicy::NotAllowed },
        };
        Ok(Self(match state {
            None => GateVerifier::new(keys, policy),
            Some(s) => {
                let st: GateState = serde_json::from_str(s)
                    .map_err(|e| invalid(py, "state", format!("is not a saved gate state: {e}")))?;
                GateVerifier::with_state(keys, policy, st)
            }
        }))
    }

    /// Decides a scan of `text` at a gate of `lot` going `direction` (`"entry"`/`"exit"` or a
    /// `parq.Direction`) at `at` (aware `datetime`). `scan_id` identifies the reading, so one
    /// delivered twice counts once. Returns a `ScanDecision`; a refusal is a result.
    #[pyo3(signature = (text, lot, direction, at, *, scan_id = None))]
    fn scan<'py>(
        &self,
        py: Python<'py>,
        text: &str,
        lot: &Bound<'py, PyAny>,
        direction: &Bound<'py, PyAny>,
        at: &Bound<'py, PyAny>,
        scan_id: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let lot = LotId(uuid_arg(lot, "lot")?);
        let direction = direction_arg(py, direction)?;
        let at = ts_arg(at, "at")?;
        let mut scan = match direction {
            parq_core::pass::Direction::Entry => Scan::entry(lot, at),
            parq_core::pass::Direction::Exit => Scan::exit(lot, at),
        };
        if let Some(id) = scan_id {
            scan = scan.with_id(crate::core::scan_id(id));
        }
        self.0.scan(text, &scan).to_py(py)
    }

    /// Applies revocations (a `RevocationDelta` from `Engine.revocations_since` or the
    /// server); returns how many were new. A delta that skips versions raises `InvalidInput`.
    fn apply_revocations(&self, py: Python<'_>, delta: &Bound<'_, PyAny>) -> PyResult<usize> {
        let delta: RevocationDelta = from_typed(delta, "RevocationDelta", "delta")?;
        self.0.apply_revocations(&delta).map_err(|e| to_pyerr(py, e.into()))
    }

    /// The revocation version this gate holds: ask for revocations since it.
    #[getter]
    fn revocation_version(&self) -> u64 {
        self.0.revocation_version()
    }

    /// Replaces the trusted public keys (after a rotation).
    fn set_public_keys(&self, public_keys: &Bound<'_, PyAny>) -> PyResult<()> {
        self.0.set_public_keys(from_typed(public_keys, "list[PublicKey]", "public_keys")?);
        Ok(())
    }

    /// Forgets visits that can no longer matter at `now`; returns how many.
    fn prune(&self, now: &Bound<'_, PyAny>) -> PyResult<usize> {
        Ok(self.0.prune(ts_arg(now, "now")?))
    }

    /// The gate's memory (revocations, who is inside) as JSON, to survive a restart.
    fn save_state(&self) -> PyResult<String> {
        serde_json::to_string(&self.0.state())
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
    }
}

/// What a pass says, after checking its signature against `public_keys`. A forged, altered
/// or malformed pass raises `InvalidInput`; one signed with an untrusted key raises
/// `ScanRefused` with reason `unknown_key`.
#[pyfunction]
pub fn verify_pass<'py>(
    py: Python<'py>,
    text: &str,
    public_keys: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let keys: PublicKeys = from_typed(public_keys, "list[PublicKey]", "public_keys")?;
    match keys.verify(text) {
        Ok(c) => {
            let d = claims_dict(py, &c)?;
            d.set_item("text", text.trim_matches(['\r', '\n']))?;
            crate::convert::types(py)?.getattr("Pass")?.call((), Some(&d))
        }
        Err(e @ parq_core::pass::PassError::UnknownKey { .. }) => {
            Err(to_pyerr(py, parq_core::Error::ScanRefused { reason: e.refusal() }))
        }
        Err(e) => Err(to_pyerr(py, e.into())),
    }
}

fn qr(py: Python<'_>, text: &str) -> PyResult<PassQr> {
    if text.len() > 4096 {
        return Err(invalid(py, "text", "is too long for a pass"));
    }
    PassQr::new(text).map_err(|e| to_pyerr(py, e))
}

/// A pass's text as a QR code in PNG (`scale` pixels per module, 1 to 64).
#[pyfunction]
#[pyo3(signature = (text, scale = 8))]
pub fn render_qr_png<'py>(py: Python<'py>, text: &str, scale: u32) -> PyResult<Bound<'py, PyBytes>> {
    if !(1..=64).contains(&scale) {
        return Err(invalid(py, "scale", "must be 1 to 64"));
    }
    let png = qr(py, text)?.to_png(scale).map_err(|e| to_pyerr(py, e))?;
    Ok(PyBytes::new(py, &png))
}

/// A pass's text as a QR code in SVG, at least `min_size` pixels wide.
#[pyfunction]
#[pyo3(signature = (text, min_size = 256))]
pub fn render_qr_svg(py: Python<'_>, text: &str, min_size: u32) -> PyResult<String> {
    if min_size > 8192 {
        return Err(invalid(py, "min_size", "must be at most 8192"));
    }
    Ok(qr(py, text)?.to_svg(min_size))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGateVerifier>()?;
    m.add_function(wrap_pyfunction!(verify_pass, m)?)?;
    m.add_function(wrap_pyfunction!(render_qr_png, m)?)?;
    m.add_function(wrap_pyfunction!(render_qr_svg, m)?)?;
    Ok(())
}
