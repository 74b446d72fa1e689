//! Python-side helpers used off the hot path (reprs, error messages, debug
//! tracebacks). Each is imported once and cached.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};

use crate::compat;

static FORMAT_CALLBACK_SOURCE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static EXTRACT_STACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static GETFRAME: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `asyncio.format_helpers._format_callback_source(callback, args)`; from
/// 3.13 the arguments are shown only when `debug` (the loop's debug mode).
pub fn format_callback_source(
    py: Python<'_>,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    debug: bool,
) -> PyResult<String> {
    let f =
        FORMAT_CALLBACK_SOURCE.import(py, "asyncio.format_helpers", "_format_callback_source")?;
    if compat::FORMAT_CALLBACK_DEBUG {
        let kwargs = PyDict::new(py);
        kwargs.set_item(intern!(py, "debug"), debug)?;
        return f.call((callback, args), Some(&kwargs))?.extract();
    }
    f.call1((callback, args))?.extract()
}

/// `asyncio.format_helpers.extract_stack(sys._getframe())`: the caller's
/// stack, newest last, as asyncio stores it in debug mode.
pub fn extract_stack(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let getframe = GETFRAME.import(py, "sys", "_getframe")?;
    let extract = EXTRACT_STACK.import(py, "asyncio.format_helpers", "extract_stack")?;
    Ok(extract.call1((getframe.call0()?,))?.unbind())
}
