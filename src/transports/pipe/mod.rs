//! Pipe transports: asyncio's `_UnixReadPipeTransport` and
//! `_UnixWritePipeTransport` in Rust (pipes, FIFOs, sockets and character
//! devices such as terminals; `connect_read_pipe`/`connect_write_pipe` and
//! the pipes of subprocesses).
//!
//! The rules are asyncio's, which differ from the socket transport's in
//! places: a read pipe's `data_received` errors are not caught (they reach
//! the exception handler through the callback), its EOF schedules
//! `eof_received` and `connection_lost` together; a write pipe watches its fd
//! for readability to learn that the reader went away, and `close()` is
//! `write_eof()`.

use pyo3::exceptions::PyRuntimeError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::{intern, PyTraverseError};

use super::lifecycle::report_fatal;
use super::log_debug;
use crate::event_loop::LoopCore;
use crate::gil_cell::GilCell;
use crate::handle::Args;
use crate::live::{Live, Transports};
use crate::traverse::{Traverse, TraverseResult};

mod read;
mod write;

pub use read::ReadPipeCore;
pub use write::WritePipeCore;

/// What both pipe transports hold until `connection_lost`.
pub(super) struct Ends {
    pub(super) loop_: Option<Py<LoopCore>>,
    pub(super) pipe: Option<Py<PyAny>>,
    pub(super) protocol: Option<Py<PyAny>>,
    /// The Python transport object; dropped after `connection_lost`.
    pub(super) owner: Option<Py<PyAny>>,
    /// Counts the pipe core holding us as a live transport (`live`).
    _live: Live<Transports>,
}

impl Traverse for Ends {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        (&self.loop_, &self.pipe, &self.protocol, &self.owner).traverse(visit)
    }
}

impl Ends {
    pub(super) fn new(
        loop_: Py<LoopCore>,
        pipe: Py<PyAny>,
        protocol: Py<PyAny>,
        owner: Py<PyAny>,
    ) -> Self {
        Ends {
            loop_: Some(loop_),
            pipe: Some(pipe),
            protocol: Some(protocol),
            owner: Some(owner),
            _live: Live::new(),
        }
    }

    pub(super) fn loop_<'py>(&self, py: Python<'py>) -> Option<Bound<'py, LoopCore>> {
        self.loop_.as_ref().map(|l| l.bind(py).clone())
    }

    pub(super) fn owner<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.owner
            .as_ref()
            .map_or_else(|| py.None().into_bound(py), |o| o.bind(py).clone())
    }

    pub(super) fn protocol<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.protocol
            .as_ref()
            .map_or_else(|| py.None().into_bound(py), |o| o.bind(py).clone())
    }

    /// Everything, to be dropped outside the borrow.
    #[allow(clippy::type_complexity)]
    pub(super) fn take(
        &mut self,
    ) -> (
        Option<Py<LoopCore>>,
        Option<Py<PyAny>>,
        Option<Py<PyAny>>,
        Option<Py<PyAny>>,
    ) {
        (
            self.loop_.take(),
            self.pipe.take(),
            self.protocol.take(),
            self.owner.take(),
        )
    }
}

pub(super) fn call_soon(
    loop_: Option<Bound<'_, LoopCore>>,
    cb: Bound<'_, PyAny>,
    args: Args,
) -> PyResult<()> {
    match loop_ {
        Some(lp) => LoopCore::call_soon(&lp, cb, args, None).map(drop),
        None => Err(PyRuntimeError::new_err("Event loop is closed")),
    }
}

/// asyncio's `_fatal_error` reporting (see `lifecycle::report_fatal`),
/// with what the pipe's `Ends` hold.
pub(super) fn fatal_report(
    py: Python<'_>,
    ends: &GilCell<Ends>,
    exc: &Bound<'_, PyAny>,
    message: &str,
    quiet: bool,
) -> PyResult<()> {
    let (lp, owner, protocol) = {
        let e = ends.borrow(py);
        (e.loop_(py), e.owner(py), e.protocol(py))
    };
    match lp {
        Some(lp) => report_fatal(&lp, &owner, &protocol, exc, message, quiet),
        None => Ok(()),
    }
}

/// asyncio's `_call_connection_lost` for pipes: tell the protocol, then
/// close the pipe and drop every reference, whatever the protocol did.
pub(super) fn connection_lost(
    py: Python<'_>,
    ends: &GilCell<Ends>,
    exc: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    let (protocol, pipe) = {
        let e = ends.borrow(py);
        (e.protocol(py), e.pipe.as_ref().map(|p| p.clone_ref(py)))
    };
    let exc = exc.unwrap_or_else(|| py.None().into_bound(py));
    let lost = if protocol.is_none() {
        Ok(())
    } else {
        protocol
            .call_method1(intern!(py, "connection_lost"), (exc,))
            .map(drop)
    };
    let closed = match pipe {
        Some(p) => p.bind(py).call_method0(intern!(py, "close")).map(drop),
        None => Ok(()),
    };
    let taken = ends.borrow_mut(py).take();
    drop(taken);
    lost.and(closed)
}

pub(super) fn debug_log(ends: &GilCell<Ends>, py: Python<'_>, fmt: &str) -> PyResult<()> {
    let (lp, owner) = {
        let e = ends.borrow(py);
        (e.loop_(py), e.owner(py))
    };
    match lp {
        Some(lp) if lp.get().is_debug() => log_debug(py, fmt, &owner),
        _ => Ok(()),
    }
}

/// The `#[pymethods]` both pipe cores share (they keep their `Ends` in a
/// field named `ends`): the private attributes asyncio's code and tests
/// read, protocol access, `_call_connection_lost` and the GC hooks.
macro_rules! ends_methods {
    ($core:ty) => {
        #[pymethods]
        impl $core {
            #[getter]
            fn pipe(&self, py: Python<'_>) -> Option<Py<PyAny>> {
                self.ends.borrow(py).pipe.as_ref().map(|p| p.clone_ref(py))
            }

            /// asyncio's tests silence the unclosed-transport warning this way.
            #[setter(pipe)]
            fn set_pipe(&self, py: Python<'_>, pipe: Option<Py<PyAny>>) {
                let old = std::mem::replace(&mut self.ends.borrow_mut(py).pipe, pipe);
                drop(old);
            }

            #[getter(loop_)]
            fn get_loop(&self, py: Python<'_>) -> Option<Py<LoopCore>> {
                self.ends.borrow(py).loop_.as_ref().map(|p| p.clone_ref(py))
            }

            fn get_protocol(&self, py: Python<'_>) -> Py<PyAny> {
                self.ends.borrow(py).protocol(py).unbind()
            }

            fn set_protocol(&self, py: Python<'_>, protocol: Py<PyAny>) {
                // The old protocol is dropped after the borrow: its
                // `__del__` may call back into the transport.
                let old = self.ends.borrow_mut(py).protocol.replace(protocol);
                drop(old);
            }

            fn _call_connection_lost(
                &self,
                py: Python<'_>,
                exc: Option<Bound<'_, PyAny>>,
            ) -> PyResult<()> {
                connection_lost(py, &self.ends, exc.filter(|e| !e.is_none()))
            }

            fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
                (&self.ends, &self.watch).traverse(&visit)
            }

            fn __clear__(&self) {
                let taken = self.ends.unguarded().map(|mut e| e.take());
                let handles = self.watch.take_unguarded();
                drop((taken, handles));
            }
        }
    };
}

ends_methods!(ReadPipeCore);
ends_methods!(WritePipeCore);
