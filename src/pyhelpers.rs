//! Small Python-side helpers every part of the crate shares: the errors
//! (`os_error`, `is_exit`), the bytes-like check, and, off the hot path,
//! reprs and debug tracebacks (each imported once and cached).

use std::io;

use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PySystemExit};
use pyo3::ffi;
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

/// `OSError(errno, strerror)`: Python picks the subclass (PermissionError,
/// FileNotFoundError...) and `errno` is set, as the stdlib selectors give.
pub fn os_error(err: io::Error) -> PyErr {
    match err.raw_os_error() {
        Some(code) => {
            // SAFETY: strerror returns a valid NUL-terminated static string.
            let msg = unsafe { std::ffi::CStr::from_ptr(libc::strerror(code)) }
                .to_string_lossy()
                .into_owned();
            PyOSError::new_err((code, msg))
        }
        None => err.into(),
    }
}

/// KeyboardInterrupt and SystemExit escape every transport and socket
/// callback, as in asyncio (`except (SystemExit, KeyboardInterrupt): raise`).
pub fn is_exit(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PyKeyboardInterrupt>(py) || err.is_instance_of::<PySystemExit>(py)
}

/// bytes, bytearray or memoryview: what asyncio's transports accept as data
/// (`isinstance(data, (bytes, bytearray, memoryview))`).
pub fn is_bytes_like(data: &Bound<'_, PyAny>) -> bool {
    let ptr = data.as_ptr();
    // SAFETY: type checks on a live object.
    unsafe {
        ffi::PyBytes_Check(ptr) != 0
            || ffi::PyByteArray_Check(ptr) != 0
            || ffi::PyMemoryView_Check(ptr) != 0
    }
}
