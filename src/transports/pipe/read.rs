//! `ReadPipeCore`: asyncio's `_UnixReadPipeTransport` (`connect_read_pipe`).

use std::os::fd::RawFd;

use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::intern;
use pyo3::prelude::*;

use super::{call_soon, debug_log, fatal_report, Ends};
use crate::event_loop::LoopCore;
use crate::fd_watch::FdWatch;
use crate::gil_cell::GilCell;
use crate::handle::Args;
use crate::reactor::Side;
use crate::sysio::{read_bytes_from_pipe, Io};
use crate::transports::constants::MAX_SIZE;
use crate::transports::lifecycle::start;

/// `connect_read_pipe`'s transport engine.
#[pyclass(frozen, module = "ferroloop._ferroloop")]
pub struct ReadPipeCore {
    fd: RawFd,
    /// Our registration: removed only if still ours.
    pub(super) watch: FdWatch,
    pub(super) ends: GilCell<Ends>,
    /// (closing, paused)
    flags: GilCell<(bool, bool)>,
}

impl ReadPipeCore {
    fn is_reading_now(&self, py: Python<'_>) -> bool {
        let (closing, paused) = *self.flags.borrow(py);
        !closing && !paused
    }

    fn remove_reader(&self, py: Python<'_>) -> PyResult<()> {
        let lp = self.ends.borrow(py).loop_(py);
        self.watch.remove(lp.as_ref(), Side::Read)
    }

    fn close_with(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        this.flags.borrow_mut(py).0 = true;
        this.remove_reader(py)?;
        let cb = slf.getattr(intern!(py, "_call_connection_lost"))?;
        let exc = exc.map_or_else(|| py.None(), Bound::unbind);
        call_soon(this.ends.borrow(py).loop_(py), cb, Args::from_iter([exc]))
    }
}

#[pymethods]
impl ReadPipeCore {
    #[new]
    fn new(
        loop_: Py<LoopCore>,
        pipe: Py<PyAny>,
        fd: RawFd,
        protocol: Py<PyAny>,
        owner: Py<PyAny>,
    ) -> Self {
        ReadPipeCore {
            fd,
            watch: FdWatch::new(fd),
            ends: GilCell::new(Ends::new(loop_, pipe, protocol, owner)),
            flags: GilCell::new((false, false)),
        }
    }

    #[pyo3(signature = (waiter=None))]
    fn start(slf: &Bound<'_, Self>, waiter: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let (lp, protocol, owner) = {
            let e = slf.get().ends.borrow(py);
            (e.loop_(py), e.protocol(py), e.owner(py))
        };
        let lp = lp.ok_or_else(|| PyRuntimeError::new_err("Event loop is closed"))?;
        let then = slf.getattr(intern!(py, "_add_reader"))?;
        start(&lp, &protocol, owner, Some(then), waiter, None)
    }

    #[getter]
    fn paused(&self, py: Python<'_>) -> bool {
        self.flags.borrow(py).1
    }

    fn _add_reader(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !this.is_reading_now(py) {
            return Ok(());
        }
        let lp = this.ends.borrow(py).loop_(py);
        if let Some(lp) = lp {
            let cb = slf.getattr(intern!(py, "_read_ready"))?;
            this.watch.add(&lp, Side::Read, cb, None)?;
        }
        Ok(())
    }

    fn _read_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        match read_bytes_from_pipe(py, this.fd, MAX_SIZE) {
            Ok(Io::WouldBlock) => Ok(()),
            Err(e) if e.is_instance_of::<PyOSError>(py) => {
                let exc = e.into_value(py).into_bound(py).into_any();
                Self::_fatal_error(slf, exc, "Fatal read error on pipe transport")
            }
            Err(e) => Err(e),
            Ok(Io::Done(data)) if !data.bind(py).as_bytes().is_empty() => {
                let protocol = this.ends.borrow(py).protocol(py);
                protocol
                    .call_method1(intern!(py, "data_received"), (data,))
                    .map(drop)
            }
            Ok(Io::Done(_)) => {
                debug_log(&this.ends, py, "%r was closed by peer")?;
                this.flags.borrow_mut(py).0 = true;
                this.remove_reader(py)?;
                let (lp, protocol) = {
                    let e = this.ends.borrow(py);
                    (e.loop_(py), e.protocol(py))
                };
                call_soon(
                    lp.clone(),
                    protocol.getattr(intern!(py, "eof_received"))?,
                    Args::new(),
                )?;
                let cb = slf.getattr(intern!(py, "_call_connection_lost"))?;
                call_soon(lp, cb, Args::from_iter([py.None()]))
            }
        }
    }

    fn pause_reading(&self, py: Python<'_>) -> PyResult<()> {
        if !self.is_reading_now(py) {
            return Ok(());
        }
        self.flags.borrow_mut(py).1 = true;
        self.remove_reader(py)?;
        debug_log(&self.ends, py, "%r pauses reading")
    }

    fn resume_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        {
            let mut flags = this.flags.borrow_mut(py);
            if flags.0 || !flags.1 {
                return Ok(());
            }
            flags.1 = false;
        }
        Self::_add_reader(slf)?;
        debug_log(&this.ends, py, "%r resumes reading")
    }

    fn is_reading(&self, py: Python<'_>) -> bool {
        self.is_reading_now(py)
    }

    fn is_closing(&self, py: Python<'_>) -> bool {
        self.flags.borrow(py).0
    }

    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        if slf.get().flags.borrow(slf.py()).0 {
            return Ok(());
        }
        Self::close_with(slf, None)
    }

    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::close_with(slf, None)
    }

    /// Only EIO (a terminal hung up) is quiet; other errors are reported.
    #[pyo3(signature = (exc, message="Fatal error on pipe transport"))]
    fn _fatal_error(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let is_eio = exc.is_instance_of::<PyOSError>()
            && exc
                .getattr(intern!(py, "errno"))
                .and_then(|e| e.extract::<i32>())
                .is_ok_and(|e| e == libc::EIO);
        fatal_report(py, &this.ends, &exc, message, is_eio)?;
        Self::close_with(slf, Some(exc))
    }
}
