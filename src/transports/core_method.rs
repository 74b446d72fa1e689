//! `CoreMethod`: a transport class attribute that binds one of its Rust
//! core's methods into the instance on first use.
//!
//! A transport's hot methods (`write`, `close`...) are its core's own, so
//! `transport.write(data)` is one native call with no Python frame. Binding
//! all of them when a transport is made cost a method object and a dict
//! insert each, per connection, for methods most connections never call.
//! This non-data descriptor binds a method the first time it is looked up
//! and stores it in the instance's `__dict__`, where every later lookup
//! finds it before reaching the class.

use pyo3::exceptions::PyAttributeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

#[pyclass(frozen, module = "ferroloop._ferroloop")]
pub struct CoreMethod {
    name: Py<PyString>,
}

#[pymethods]
impl CoreMethod {
    #[new]
    fn new(name: Bound<'_, PyString>) -> PyResult<Self> {
        let py = name.py();
        Ok(CoreMethod {
            name: PyString::intern(py, &name.to_cow()?).unbind(),
        })
    }

    /// On the class: the descriptor itself. On an instance: its core's
    /// method, now also in the instance's `__dict__`.
    fn __get__(
        slf: &Bound<'_, Self>,
        obj: Option<&Bound<'_, PyAny>>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let Some(obj) = obj.filter(|o| !o.is_none()) else {
            return Ok(slf.clone().into_any().unbind());
        };
        let name = slf.get().name.bind(py);
        let dict = obj.getattr(intern!(py, "__dict__"))?;
        let dict = dict.cast::<PyDict>()?;
        let Some(core) = dict.get_item(intern!(py, "_core"))? else {
            // Not set up (a failed or skipped __init__).
            return Err(PyAttributeError::new_err(name.clone().unbind()));
        };
        let method = core.getattr(name)?;
        dict.set_item(name, &method)?;
        Ok(method.unbind())
    }

    #[getter]
    fn __name__(&self, py: Python<'_>) -> Py<PyString> {
        self.name.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("<core method {}>", self.name.bind(py))
    }
}
