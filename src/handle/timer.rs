//! `TimerHandle`: a handle scheduled for a point in time. The heap orders
//! it by `when`; comparisons and hashing follow asyncio's `TimerHandle`.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;

use super::{untracked, Handle};

/// A handle scheduled for a point in time (`call_later`/`call_at`).
#[pyclass(frozen, extends = Handle, module = "ferroloop._ferroloop")]
pub struct TimerHandle {
    /// The deadline as the heap orders it.
    pub when: f64,
    /// What `call_at` was given, when not a float: `when()` returns it as
    /// is (an `int` stays an `int`), as asyncio's does.
    when_obj: Option<Py<PyAny>>,
    /// True while the handle sits in the loop's timer heap.
    pub scheduled: AtomicBool,
}

impl TimerHandle {
    pub fn create(
        py: Python<'_>,
        when: f64,
        when_obj: Option<Py<PyAny>>,
        scheduled: bool,
        base: Handle,
    ) -> PyResult<Py<TimerHandle>> {
        let init = PyClassInitializer::from(base).add_subclass(TimerHandle {
            when,
            when_obj,
            scheduled: AtomicBool::new(scheduled),
        });
        Py::new(py, init).map(untracked)
    }

    /// The deadline as given (`_when` / `when()`).
    pub fn when_object(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.when_obj {
            Some(obj) => Ok(obj.clone_ref(py)),
            None => Ok(self.when.into_pyobject(py)?.into_any().unbind()),
        }
    }
}

#[pymethods]
impl TimerHandle {
    fn when(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.when_object(py)
    }

    #[getter]
    fn _when(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.when_object(py)
    }

    #[getter]
    fn _scheduled(&self) -> bool {
        self.scheduled.load(Relaxed)
    }

    fn cancel(slf: &Bound<'_, Self>) -> PyResult<()> {
        let base = slf.as_super();
        if !base.get().is_cancelled() && slf.get().scheduled.load(Relaxed) {
            base.get().loop_core().get().timer_cancelled(slf.py());
        }
        Handle::cancel_handle(base)
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        // asyncio hashes `_when`.
        self.when_object(py)?.bind(py).hash()
    }

    fn __richcmp__(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let Ok(other) = other.cast::<TimerHandle>() else {
            return Ok(py.NotImplemented());
        };
        let (a, b) = (slf.get().when, other.get().when);
        let equal = || -> PyResult<bool> {
            if a != b {
                return Ok(false);
            }
            let (sa, sb) = (slf.as_super(), other.as_super());
            if sa.get().is_cancelled() != sb.get().is_cancelled() {
                return Ok(false);
            }
            let pa = Handle::_callback(sa.get(), py);
            let pb = Handle::_callback(sb.get(), py);
            let aa = Handle::_args(sa.get(), py)?;
            let ab = Handle::_args(sb.get(), py)?;
            Ok(pa.into_pyobject(py)?.eq(pb)? && aa.into_pyobject(py)?.eq(ab)?)
        };
        let result = match op {
            CompareOp::Lt => a < b,
            CompareOp::Gt => a > b,
            CompareOp::Le => a < b || equal()?,
            CompareOp::Ge => a > b || equal()?,
            CompareOp::Eq => equal()?,
            CompareOp::Ne => !equal()?,
        };
        Ok(result.into_pyobject(py)?.to_owned().into_any().unbind())
    }
}
