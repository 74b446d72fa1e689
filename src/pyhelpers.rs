//! Python-side helpers used off the hot path (reprs, error messages, debug
//! tracebacks). Each is imported once and cached.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;

static FORMAT_CALLBACK_SOURCE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static EXTRACT_STACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static GETFRAME: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `asyncio.format_helpers._format_callback_source(callback, args)`.
pub fn format_callback_source(
    py: Python<'_>,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<String> {
    let f =
        FORMAT_CALLBACK_SOURCE.import(py, "asyncio.format_helpers", "_format_callback_source")?;
    f.call1((callback, args))?.extract()
}

/// `asyncio.format_helpers.extract_stack(sys._getframe())`: the caller's
/// stack, newest last, as asyncio stores it in debug mode.
pub fn extract_stack(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let getframe = GETFRAME.import(py, "sys", "_getframe")?;
    let extract = EXTRACT_STACK.import(py, "asyncio.format_helpers", "extract_stack")?;
    Ok(extract.call1((getframe.call0()?,))?.unbind())
}
