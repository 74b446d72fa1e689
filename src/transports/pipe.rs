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

use std::os::fd::RawFd;

use pyo3::exceptions::{PyAssertionError, PyBrokenPipeError, PyOSError, PyRuntimeError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict};
use pyo3::{intern, PyTraverseError};

use super::flow::{self, Watermarks};
use super::write_buffer::WriteBuffer;
use super::{log_debug, logger};
use crate::event_loop::LoopCore;
use crate::gil_cell::GilCell;
use crate::handle::Args;
use crate::reactor::{os_error, Side};
use crate::sysio::{read_bytes_from_pipe, BufferView, Io};

/// asyncio's `max_size` for pipe reads.
const MAX_SIZE: usize = 256 * 1024;
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

static SET_RESULT_UNLESS_CANCELLED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// What both pipe transports hold until `connection_lost`.
struct Ends {
    loop_: Option<Py<LoopCore>>,
    pipe: Option<Py<PyAny>>,
    protocol: Option<Py<PyAny>>,
    /// The Python transport object; dropped after `connection_lost`.
    owner: Option<Py<PyAny>>,
}

impl Ends {
    fn new(loop_: Py<LoopCore>, pipe: Py<PyAny>, protocol: Py<PyAny>, owner: Py<PyAny>) -> Self {
        Ends {
            loop_: Some(loop_),
            pipe: Some(pipe),
            protocol: Some(protocol),
            owner: Some(owner),
        }
    }

    fn loop_<'py>(&self, py: Python<'py>) -> Option<Bound<'py, LoopCore>> {
        self.loop_.as_ref().map(|l| l.bind(py).clone())
    }

    fn owner<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.owner
            .as_ref()
            .map_or_else(|| py.None().into_bound(py), |o| o.bind(py).clone())
    }

    fn protocol<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.protocol
            .as_ref()
            .map_or_else(|| py.None().into_bound(py), |o| o.bind(py).clone())
    }

    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        for obj in [&self.pipe, &self.protocol, &self.owner]
            .into_iter()
            .flatten()
        {
            visit.call(obj)?;
        }
        if let Some(l) = &self.loop_ {
            visit.call(l)?;
        }
        Ok(())
    }

    /// Everything, to be dropped outside the borrow.
    #[allow(clippy::type_complexity)]
    fn take(
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

fn call_soon(loop_: Option<Bound<'_, LoopCore>>, cb: Bound<'_, PyAny>, args: Args) -> PyResult<()> {
    match loop_ {
        Some(lp) => LoopCore::call_soon(&lp, cb, args, None).map(drop),
        None => Err(PyRuntimeError::new_err("Event loop is closed")),
    }
}

/// Schedule `connection_made(owner)` and the waiter's result.
fn start(
    loop_: &Bound<'_, LoopCore>,
    protocol: &Bound<'_, PyAny>,
    owner: Bound<'_, PyAny>,
    then: Option<Bound<'_, PyAny>>,
    waiter: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    let py = loop_.py();
    let made = protocol.getattr(intern!(py, "connection_made"))?;
    LoopCore::call_soon(loop_, made, Args::from_iter([owner.unbind()]), None)?;
    if let Some(cb) = then {
        LoopCore::call_soon(loop_, cb, Args::new(), None)?;
    }
    if let Some(w) = waiter.filter(|w| !w.is_none()) {
        let f = SET_RESULT_UNLESS_CANCELLED.import(
            py,
            "asyncio.futures",
            "_set_result_unless_cancelled",
        )?;
        LoopCore::call_soon(
            loop_,
            f.clone(),
            Args::from_iter([w.unbind(), py.None()]),
            None,
        )?;
    }
    Ok(())
}

/// The exception handler's context for a transport error.
fn report(
    loop_: &Bound<'_, LoopCore>,
    message: &str,
    exc: &Bound<'_, PyAny>,
    ends: &Ends,
) -> PyResult<()> {
    let py = loop_.py();
    let context = PyDict::new(py);
    context.set_item("message", message)?;
    context.set_item("exception", exc)?;
    context.set_item("transport", ends.owner(py))?;
    context.set_item("protocol", ends.protocol(py))?;
    loop_
        .call_method1(intern!(py, "call_exception_handler"), (context,))
        .map(drop)
}

/// asyncio's `_call_connection_lost` for pipes: tell the protocol, then
/// close the pipe and drop every reference, whatever the protocol did.
fn connection_lost(
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

fn debug_log(ends: &GilCell<Ends>, py: Python<'_>, fmt: &str) -> PyResult<()> {
    let (lp, owner) = {
        let e = ends.borrow(py);
        (e.loop_(py), e.owner(py))
    };
    match lp {
        Some(lp) if lp.get().is_debug() => log_debug(py, fmt, &owner),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------

/// `connect_read_pipe`'s transport engine.
#[pyclass(frozen, module = "ferroloop._ferroloop")]
pub struct ReadPipeCore {
    fd: RawFd,
    ends: GilCell<Ends>,
    /// (closing, paused)
    flags: GilCell<(bool, bool)>,
}

impl ReadPipeCore {
    fn is_reading_now(&self, py: Python<'_>) -> bool {
        let (closing, paused) = *self.flags.borrow(py);
        !closing && !paused
    }

    fn remove_reader(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(lp) = self.ends.borrow(py).loop_(py) {
            LoopCore::remove_fd(&lp, self.fd, Side::Read)?;
        }
        Ok(())
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
        start(&lp, &protocol, owner, Some(then), waiter)
    }

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
        if let Some(lp) = this.ends.borrow(py).loop_(py) {
            let cb = slf.getattr(intern!(py, "_read_ready"))?;
            LoopCore::add_fd(&lp, this.fd, Side::Read, cb, Args::new())?;
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

    fn get_protocol(&self, py: Python<'_>) -> Py<PyAny> {
        self.ends.borrow(py).protocol(py).unbind()
    }

    fn set_protocol(&self, py: Python<'_>, protocol: Py<PyAny>) {
        self.ends.borrow_mut(py).protocol = Some(protocol);
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
        let lp = this.ends.borrow(py).loop_(py);
        if let Some(lp) = lp {
            if is_eio {
                if lp.get().is_debug() {
                    let kwargs = PyDict::new(py);
                    kwargs.set_item("exc_info", &exc)?;
                    let owner = this.ends.borrow(py).owner(py);
                    logger(py)?.call_method(
                        intern!(py, "debug"),
                        ("%r: %s", owner, message),
                        Some(&kwargs),
                    )?;
                }
            } else {
                let ends = this.ends.borrow(py);
                report(&lp, message, &exc, &ends)?;
            }
        }
        Self::close_with(slf, Some(exc))
    }

    fn _call_connection_lost(&self, py: Python<'_>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        connection_lost(py, &self.ends, exc.filter(|e| !e.is_none()))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(e) = self.ends.unguarded() {
            e.visit(&visit)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let taken = self.ends.unguarded().map(|mut e| e.take());
        drop(taken);
    }
}

// ---------------------------------------------------------------------------

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
    is_socket: bool,
    ends: GilCell<Ends>,
    st: GilCell<WriteState>,
}

impl WritePipeCore {
    fn remove(&self, py: Python<'_>, side: Side) -> PyResult<()> {
        if let Some(lp) = self.ends.borrow(py).loop_(py) {
            LoopCore::remove_fd(&lp, self.fd, side)?;
        }
        Ok(())
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
        start(&lp, &protocol, owner, then, waiter)
    }

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
        if let Some(lp) = this.ends.borrow(py).loop_(py) {
            let cb = slf.getattr(intern!(py, "_read_ready"))?;
            LoopCore::add_fd(&lp, this.fd, Side::Read, cb, Args::new())?;
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
        if !super::tcp::is_bytes_like(data) {
            return Err(PyAssertionError::new_err(data.repr()?.unbind()));
        }
        let view;
        let bytes: &[u8] = match data.cast::<PyBytes>() {
            Ok(b) => b.as_bytes(),
            Err(_) => {
                view = BufferView::new(data, false)?;
                // SAFETY: the export keeps `view.len()` bytes alive while `view` lives.
                unsafe { std::slice::from_raw_parts(view.ptr(), view.len()) }
            }
        };
        if bytes.is_empty() {
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
            if let Some(lp) = this.ends.borrow(py).loop_(py) {
                let cb = slf.getattr(intern!(py, "_write_ready"))?;
                LoopCore::add_fd(&lp, this.fd, Side::Write, cb, Args::new())?;
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

    fn get_protocol(&self, py: Python<'_>) -> Py<PyAny> {
        self.ends.borrow(py).protocol(py).unbind()
    }

    fn set_protocol(&self, py: Python<'_>, protocol: Py<PyAny>) {
        self.ends.borrow_mut(py).protocol = Some(protocol);
    }

    fn get_write_buffer_size(&self, py: Python<'_>) -> usize {
        self.st.borrow(py).buffer.len()
    }

    fn get_write_buffer_limits(&self, py: Python<'_>) -> (usize, usize) {
        let st = self.st.borrow(py);
        (st.flow.low, st.flow.high)
    }

    #[pyo3(signature = (high=None, low=None))]
    fn set_write_buffer_limits(
        &self,
        py: Python<'_>,
        high: Option<Bound<'_, PyAny>>,
        low: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (high, low) = flow::parse_limits(high, low)?;
        {
            let mut st = self.st.borrow_mut(py);
            st.flow.high = high;
            st.flow.low = low;
        }
        self.flow_control(py, true)
    }

    /// Any OSError is quiet (debug log); other errors are reported.
    #[pyo3(signature = (exc, message="Fatal error on pipe transport"))]
    fn _fatal_error(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let lp = this.ends.borrow(py).loop_(py);
        if let Some(lp) = lp {
            if exc.is_instance_of::<PyOSError>() {
                if lp.get().is_debug() {
                    let kwargs = PyDict::new(py);
                    kwargs.set_item("exc_info", &exc)?;
                    let owner = this.ends.borrow(py).owner(py);
                    logger(py)?.call_method(
                        intern!(py, "debug"),
                        ("%r: %s", owner, message),
                        Some(&kwargs),
                    )?;
                }
            } else {
                let ends = this.ends.borrow(py);
                report(&lp, message, &exc, &ends)?;
            }
        }
        Self::close_with(slf, Some(exc))
    }

    fn _call_connection_lost(&self, py: Python<'_>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        connection_lost(py, &self.ends, exc.filter(|e| !e.is_none()))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(e) = self.ends.unguarded() {
            e.visit(&visit)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let taken = self.ends.unguarded().map(|mut e| e.take());
        drop(taken);
    }
}
