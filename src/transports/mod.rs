//! Native transports (asyncio's `selector_events`/`unix_events` transports
//! in Rust), one file per kind:
//!
//! - `socket`: socket transports: streams (TCP and Unix) and datagrams (UDP
//!   and Unix), asyncio's `_SelectorSocketTransport`/`_SelectorDatagramTransport`.
//! - `pipe`: read and write pipe transports (pipes, FIFOs, terminals).
//! - `flow`: write flow control (watermarks, pause/resume_writing).
//! - `write_buffer`: the outgoing chunk queue every writing transport shares.
//! - `constants`: asyncio's transport constants (`max_size`, ...).
//! - `lifecycle`: the start and the fatal-error report all transports share.
//! - `core_method`: the class attribute that binds a core's method on first use.
//!
//! Each Rust core is driven by a thin Python class in
//! `ferroloop/transports.py` that subclasses asyncio's transport ABCs, so
//! `isinstance(t, asyncio.Transport)` holds and the hot methods are the
//! core's own (bound once per transport, no Python frame per call).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

mod constants;
pub mod core_method;
mod flow;
mod lifecycle;
pub mod pipe;
pub mod socket;
mod write_buffer;

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `asyncio.log.logger`.
pub fn logger(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    LOGGER.import(py, "asyncio.log", "logger")
}

/// `logger.debug(fmt, obj)`, for debug mode's transport messages.
pub fn log_debug(py: Python<'_>, fmt: &str, obj: &Bound<'_, PyAny>) -> PyResult<()> {
    logger(py)?
        .call_method1(intern!(py, "debug"), (fmt, obj))
        .map(drop)
}
