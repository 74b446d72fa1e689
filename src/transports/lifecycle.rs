//! The start and the fatal-error report every transport shares (socket
//! and pipe alike), as asyncio's transports' `__init__` and
//! `_fatal_error` do them.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use super::logger;
use crate::event_loop::LoopCore;
use crate::handle::Args;

static SET_RESULT_UNLESS_CANCELLED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Schedule `connection_made(owner)`, then `then()` (the start of reading
/// or watching), then the waiter's result, in asyncio's order; each runs
/// in `context` (a socket transport's 3.15 context; None: a copy of the
/// current one).
pub fn start(
    loop_: &Bound<'_, LoopCore>,
    protocol: &Bound<'_, PyAny>,
    owner: Bound<'_, PyAny>,
    then: Option<Bound<'_, PyAny>>,
    waiter: Option<Bound<'_, PyAny>>,
    context: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    let py = loop_.py();
    let soon = |cb: Bound<'_, PyAny>, args: Args| {
        LoopCore::call_soon(loop_, cb, args, context.clone()).map(drop)
    };
    let made = protocol.getattr(intern!(py, "connection_made"))?;
    soon(made, Args::from_iter([owner.unbind()]))?;
    if let Some(cb) = then {
        soon(cb, Args::new())?;
    }
    if let Some(w) = waiter.filter(|w| !w.is_none()) {
        let f = SET_RESULT_UNLESS_CANCELLED.import(
            py,
            "asyncio.futures",
            "_set_result_unless_cancelled",
        )?;
        soon(f.clone(), Args::from_iter([w.unbind(), py.None()]))?;
    }
    Ok(())
}

/// asyncio's `_fatal_error` reporting: a `quiet` error is only logged in
/// debug mode; any other goes to the exception handler.
pub fn report_fatal(
    loop_: &Bound<'_, LoopCore>,
    owner: &Bound<'_, PyAny>,
    protocol: &Bound<'_, PyAny>,
    exc: &Bound<'_, PyAny>,
    message: &str,
    quiet: bool,
) -> PyResult<()> {
    let py = loop_.py();
    if quiet {
        if loop_.get().is_debug() {
            let kwargs = PyDict::new(py);
            kwargs.set_item("exc_info", exc)?;
            logger(py)?.call_method(
                intern!(py, "debug"),
                ("%r: %s", owner, message),
                Some(&kwargs),
            )?;
        }
        return Ok(());
    }
    let context = PyDict::new(py);
    context.set_item("message", message)?;
    context.set_item("exception", exc)?;
    context.set_item("transport", owner)?;
    context.set_item("protocol", protocol)?;
    loop_
        .call_method1(intern!(py, "call_exception_handler"), (context,))
        .map(drop)
}
