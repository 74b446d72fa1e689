//! `WritePipeCore`: asyncio's `_UnixWritePipeTransport` (`connect_write_pipe`).

use std::os::fd::RawFd;

use pyo3::exceptions::{PyAssertionError, PyBrokenPipeError, PyOSError, PyRuntimeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::{call_soon, connection_lost, debug_log, fatal_report, Ends};
use crate::event_loop::LoopCore;
use crate::fd_watch::FdWatch;
use crate::gil_cell::GilCell;
use crate::handle::Args;
use crate::pyhelpers::{is_bytes_like, os_error};
use crate::reactor::Side;
use crate::sysio::BufferView;
use crate::transports::constants::LOG_THRESHOLD_FOR_CONNLOST_WRITES;
use crate::transports::flow::{self, Watermarks};
use crate::transports::lifecycle::start;
use crate::transports::logger;
use crate::transports::write_buffer::WriteBuffer;

struct WriteState {
    buffer: WriteBuffer,
    flow: Watermarks,
    conn_lost: u32,
    closing: bool,
}

/// `connect_write_pipe`'s transport engine.
#[pyclass(frozen, module = "ferroloop._ferroloop")]
pub struct WritePipeCore {
    fd: RawFd,
    /// Our registrations (the peer watch, the writer): removed only if
    /// still ours.
    pub(super) watch: FdWatch,
    is_socket: bool,
    pub(super) ends: GilCell<Ends>,
    st: GilCell<WriteState>,
}

impl WritePipeCore {
    fn remove(&self, py: Python<'_>, side: Side) -> PyResult<()> {
        let lp = self.ends.borrow(py).loop_(py);
        self.watch.remove(lp.as_ref(), side)
    }

    fn flow_control(&self, py: Python<'_>, pause: bool) -> PyResult<()> {
        let due = {
            let mut st = self.st.borrow_mut(py);
            let size = st.buffer.len();
            if pause {
                st.flow.begin_pause(size)
            } else {
                st.flow.begin_resume(size)
            }
        };
        if !due {
            return Ok(());
        }
        let (lp, protocol, owner) = {
            let e = self.ends.borrow(py);
            (e.loop_(py), e.protocol(py), e.owner(py))
        };
        if protocol.is_none() {
            return Ok(());
        }
        flow::notify(lp.as_ref(), &protocol, &owner, pause)
    }

    fn close_with(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.ends.borrow(py).loop_(py).is_none() {
            // `connection_lost` ran: nothing to close (an `abort()` now
            // raises AttributeError in asyncio, a defect).
            return Ok(());
        }
        let had_buffer = {
            let mut st = this.st.borrow_mut(py);
            st.closing = true;
            let had = !st.buffer.is_empty();
            st.buffer.clear();
            had
        };
        if had_buffer {
            this.remove(py, Side::Write)?;
        }
        this.remove(py, Side::Read)?;
        let cb = slf.getattr(intern!(py, "_call_connection_lost"))?;
        let exc = exc.map_or_else(|| py.None(), Bound::unbind);
        call_soon(this.ends.borrow(py).loop_(py), cb, Args::from_iter([exc]))
    }
}

#[pymethods]
impl WritePipeCore {
    #[new]
    fn new(
        loop_: Py<LoopCore>,
        pipe: Py<PyAny>,
        fd: RawFd,
        protocol: Py<PyAny>,
        owner: Py<PyAny>,
        is_socket: bool,
    ) -> Self {
        WritePipeCore {
            fd,
            watch: FdWatch::new(fd),
            is_socket,
            ends: GilCell::new(Ends::new(loop_, pipe, protocol, owner)),
            st: GilCell::new(WriteState {
                buffer: WriteBuffer::default(),
                flow: Watermarks::default(),
                conn_lost: 0,
                closing: false,
            }),
        }
    }

    /// `watch_peer`: watch the fd for readability, which on a pipe or a
    /// socket means the reading end went away.
    #[pyo3(signature = (watch_peer, waiter=None))]
    fn start(
        slf: &Bound<'_, Self>,
        watch_peer: bool,
        waiter: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let (lp, protocol, owner) = {
            let e = slf.get().ends.borrow(py);
            (e.loop_(py), e.protocol(py), e.owner(py))
        };
        let lp = lp.ok_or_else(|| PyRuntimeError::new_err("Event loop is closed"))?;
        let then = if watch_peer {
            Some(slf.getattr(intern!(py, "_watch_peer"))?)
        } else {
            None
        };
        start(&lp, &protocol, owner, then, waiter, None)
    }

    #[getter]
    fn protocol_paused(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).flow.protocol_paused
    }

    #[setter]
    fn set_protocol_paused(&self, py: Python<'_>, value: bool) {
        self.st.borrow_mut(py).flow.protocol_paused = value;
    }

    fn _watch_peer(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.st.borrow(py).closing {
            return Ok(()); // closed before the loop got here: nothing to watch
        }
        let lp = this.ends.borrow(py).loop_(py);
        if let Some(lp) = lp {
            let cb = slf.getattr(intern!(py, "_read_ready"))?;
            this.watch.add(&lp, Side::Read, cb, None)?;
        }
        Ok(())
    }

    /// The fd became readable: the reader is gone.
    fn _read_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        debug_log(&this.ends, py, "%r was closed by peer")?;
        if this.st.borrow(py).buffer.is_empty() {
            Self::close_with(slf, None)
        } else {
            let exc = PyBrokenPipeError::new_err(())
                .into_value(py)
                .into_bound(py)
                .into_any();
            Self::close_with(slf, Some(exc))
        }
    }

    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !is_bytes_like(data) {
            return Err(PyAssertionError::new_err(data.repr()?.unbind()));
        }
        let view;
        let bytes: PyResult<&[u8]> = match data.cast::<PyBytes>() {
            Ok(b) => Ok(b.as_bytes()),
            Err(_) => match BufferView::new(data, false) {
                Ok(v) => {
                    view = v;
                    // SAFETY: the export keeps `view.len()` bytes alive while `view` lives.
                    Ok(unsafe { std::slice::from_raw_parts(view.ptr(), view.len()) })
                }
                Err(e) => Err(e),
            },
        };
        let empty = match &bytes {
            Ok(b) => b.is_empty(),
            Err(_) => data.len()? == 0, // asyncio's `if not data`
        };
        if empty {
            return Ok(());
        }
        let buffer_empty = {
            let mut st = this.st.borrow_mut(py);
            if st.conn_lost > 0 || st.closing {
                let warn = st.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES;
                st.conn_lost += 1;
                drop(st);
                if warn {
                    logger(py)?.call_method1(
                        intern!(py, "warning"),
                        ("pipe closed by peer or os.write(pipe, data) raised exception.",),
                    )?;
                }
                return Ok(());
            }
            st.buffer.is_empty()
        };
        let bytes = match bytes {
            Ok(b) => b,
            // A buffer `os.write` cannot take (a non-contiguous view):
            // asyncio's `os.write` fails, a fatal error; behind a backlog its
            // `self._buffer += data` raises.
            Err(e) if buffer_empty => {
                this.st.borrow_mut(py).conn_lost += 1;
                let exc = e.into_value(py).into_bound(py).into_any();
                return Self::_fatal_error(slf, exc, "Fatal write error on pipe transport");
            }
            Err(e) => return Err(e),
        };
        let mut sent = 0;
        if buffer_empty {
            // SAFETY: `bytes` is valid for its length during the call.
            let n = unsafe { libc::write(this.fd, bytes.as_ptr().cast(), bytes.len()) };
            if n >= 0 {
                sent = n as usize;
                if sent == bytes.len() {
                    return Ok(());
                }
            } else {
                let err = std::io::Error::last_os_error();
                if !matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
                    this.st.borrow_mut(py).conn_lost += 1;
                    let exc = os_error(err).into_value(py).into_bound(py).into_any();
                    return Self::_fatal_error(slf, exc, "Fatal write error on pipe transport");
                }
            }
            let lp = this.ends.borrow(py).loop_(py);
            if let Some(lp) = lp {
                let cb = slf.getattr(intern!(py, "_write_ready"))?;
                this.watch.add(&lp, Side::Write, cb, None)?;
            }
        }
        {
            let mut st = this.st.borrow_mut(py);
            match data.cast::<PyBytes>() {
                Ok(b) => st.buffer.push_shared(b.clone().unbind(), sent, bytes.len()),
                Err(_) => st.buffer.push_copy(&bytes[sent..]),
            }
        }
        this.flow_control(py, true)
    }

    fn writelines(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let joined = PyBytes::new(py, b"").call_method1(intern!(py, "join"), (list_of_data,))?;
        Self::write(slf, &joined)
    }

    fn _write_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let flushed = this.st.borrow_mut(py).buffer.flush(this.fd, this.is_socket);
        if let Err(err) = flushed {
            {
                let mut st = this.st.borrow_mut(py);
                st.buffer.clear();
                st.conn_lost += 1;
            }
            this.remove(py, Side::Write)?;
            let exc = os_error(err).into_value(py).into_bound(py).into_any();
            return Self::_fatal_error(slf, exc, "Fatal write error on pipe transport");
        }
        let (empty, closing) = {
            let st = this.st.borrow(py);
            (st.buffer.is_empty(), st.closing)
        };
        if !empty {
            return Ok(());
        }
        this.remove(py, Side::Write)?;
        this.flow_control(py, false)?;
        if closing {
            this.remove(py, Side::Read)?;
            return connection_lost(py, &this.ends, None);
        }
        Ok(())
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    fn write_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let empty = {
            let mut st = this.st.borrow_mut(py);
            if st.closing {
                return Ok(());
            }
            st.closing = true;
            st.buffer.is_empty()
        };
        if empty {
            this.remove(py, Side::Read)?;
            let cb = slf.getattr(intern!(py, "_call_connection_lost"))?;
            call_soon(
                this.ends.borrow(py).loop_(py),
                cb,
                Args::from_iter([py.None()]),
            )?;
        }
        Ok(())
    }

    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.ends.borrow(py).pipe.is_some() && !this.st.borrow(py).closing {
            Self::write_eof(slf)?;
        }
        Ok(())
    }

    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::close_with(slf, None)
    }

    fn is_closing(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).closing
    }

    fn get_write_buffer_size(&self, py: Python<'_>) -> usize {
        self.st.borrow(py).buffer.len()
    }

    fn get_write_buffer_limits<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        self.st.borrow(py).flow.limits(py)
    }

    #[pyo3(signature = (high=None, low=None))]
    fn set_write_buffer_limits(
        &self,
        py: Python<'_>,
        high: Option<Bound<'_, PyAny>>,
        low: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let limits = flow::parse_limits(py, high, low)?;
        self.st.borrow_mut(py).flow.set_limits(limits);
        self.flow_control(py, true)
    }

    /// Any OSError is quiet (debug log); other errors are reported.
    #[pyo3(signature = (exc, message="Fatal error on pipe transport"))]
    fn _fatal_error(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let quiet = exc.is_instance_of::<PyOSError>();
        fatal_report(py, &this.ends, &exc, message, quiet)?;
        Self::close_with(slf, Some(exc))
    }
}
