//! `TcpTransportCore`: the engine of `ferroloop.transports.TcpTransport`,
//! asyncio's `_SelectorSocketTransport` (TCP and Unix stream sockets) in Rust.
//!
//! Every rule is asyncio's: `connection_made` is scheduled first, reading
//! starts one callback later (so `pause_reading()` in `connection_made`
//! holds), `eof_received()`'s result decides between half-close and close,
//! `write()` tries `send` at once and buffers only the rest, flushed with one
//! `sendmsg` per writability event; `pause_writing`/`resume_writing` follow
//! the watermarks; `close()` flushes, `abort()` does not; `connection_lost`
//! runs exactly once, from the loop, after which the socket is closed and
//! every reference is dropped. Errors reach the exception handler with
//! asyncio's messages.
//!
//! The Python class (an `asyncio.Transport` subclass, so `isinstance` checks
//! hold) owns one core and binds the hot methods straight to it.

use std::os::fd::RawFd;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict};
use pyo3::{intern, PyTraverseError};

use super::flow::{self, Watermarks};
use super::write_buffer::WriteBuffer;
use super::{is_exit, log_debug, logger};
use crate::event_loop::LoopCore;
use crate::gil_cell::GilCell;
use crate::handle::Args;
use crate::reactor::{os_error, Side};
use crate::sysio::{recv_bytes, BufferView, Io};

/// asyncio's `max_size`: the most one read asks for.
const MAX_SIZE: usize = 256 * 1024;
/// asyncio's `constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

static BUFFERED_PROTOCOL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SET_RESULT_UNLESS_CANCELLED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

struct State {
    loop_: Option<Py<LoopCore>>,
    sock: Option<Py<PyAny>>,
    protocol: Option<Py<PyAny>>,
    /// The Python transport object the protocol sees; dropped after
    /// `connection_lost` (it refers back to us).
    owner: Option<Py<PyAny>>,
    server: Option<Py<PyAny>>,
    empty_waiter: Option<Py<PyAny>>,
    buffered: bool,
    protocol_connected: bool,
    buffer: WriteBuffer,
    conn_lost: u32,
    closing: bool,
    paused: bool,
    eof: bool,
    flow: Watermarks,
}

#[pyclass(frozen, module = "ferroloop._ferroloop")]
pub struct TcpTransportCore {
    fd: RawFd,
    st: GilCell<State>,
}

/// What a non-blocking send did.
enum Sent {
    All,
    Part(usize),
    Failed(PyErr),
}

fn send_now(fd: RawFd, data: &[u8]) -> Sent {
    // SAFETY: `data` is a valid slice for the duration of the call.
    let n = unsafe {
        libc::send(
            fd,
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if n >= 0 {
        let n = n as usize;
        return if n == data.len() { Sent::All } else { Sent::Part(n) };
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        // EINTR: the signal is handled by the loop's next check; the data
        // is buffered and the writer callback retries.
        Some(libc::EAGAIN) | Some(libc::EINTR) => Sent::Part(0),
        _ => Sent::Failed(os_error(err)),
    }
}

fn shutdown_write(fd: RawFd) -> PyResult<()> {
    // SAFETY: plain syscall on our own fd.
    if unsafe { libc::shutdown(fd, libc::SHUT_WR) } < 0 {
        return Err(os_error(std::io::Error::last_os_error()));
    }
    Ok(())
}

impl TcpTransportCore {
    fn loop_<'py>(&self, py: Python<'py>) -> Option<Bound<'py, LoopCore>> {
        self.st.borrow(py).loop_.as_ref().map(|l| l.bind(py).clone())
    }

    fn is_reading_now(&self, py: Python<'_>) -> bool {
        let st = self.st.borrow(py);
        !st.paused && !st.closing
    }

    /// The Python-visible transport (for callbacks, logs and error contexts).
    fn owner<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        match &self.st.borrow(py).owner {
            Some(o) => o.bind(py).clone(),
            None => py.None().into_bound(py),
        }
    }

    fn add_reader(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !this.is_reading_now(py) {
            return Ok(());
        }
        if let Some(lp) = this.loop_(py) {
            let cb = slf.getattr(intern!(py, "_read_ready"))?;
            LoopCore::add_fd(&lp, this.fd, Side::Read, cb, Args::new())?;
        }
        Ok(())
    }

    fn remove(&self, py: Python<'_>, side: Side) -> PyResult<()> {
        if let Some(lp) = self.loop_(py) {
            LoopCore::remove_fd(&lp, self.fd, side)?;
        }
        Ok(())
    }

    fn call_soon(
        slf: &Bound<'_, Self>,
        callback: Bound<'_, PyAny>,
        args: Args,
    ) -> PyResult<()> {
        let py = slf.py();
        match slf.get().loop_(py) {
            Some(lp) => LoopCore::call_soon(&lp, callback, args, None).map(drop),
            None => Err(PyRuntimeError::new_err("Event loop is closed")),
        }
    }

    /// asyncio's `_fatal_error`: report (OSError only in debug mode), then
    /// close without flushing.
    fn fatal_error(slf: &Bound<'_, Self>, exc: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let exc = exc.into_value(py).into_bound(py);
        if let Some(lp) = this.loop_(py) {
            if exc.is_instance_of::<pyo3::exceptions::PyOSError>() {
                if lp.get().is_debug() {
                    let kwargs = PyDict::new(py);
                    kwargs.set_item("exc_info", &exc)?;
                    logger(py)?.call_method(
                        intern!(py, "debug"),
                        ("%r: %s", this.owner(py), message),
                        Some(&kwargs),
                    )?;
                }
            } else {
                let context = PyDict::new(py);
                context.set_item("message", message)?;
                context.set_item("exception", &exc)?;
                context.set_item("transport", this.owner(py))?;
                context.set_item("protocol", this.protocol(py))?;
                lp.call_method1(intern!(py, "call_exception_handler"), (context,))?;
            }
        }
        Self::force_close(slf, Some(exc.into_any()))
    }

    fn protocol<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        match &self.st.borrow(py).protocol {
            Some(p) => p.bind(py).clone(),
            None => py.None().into_bound(py),
        }
    }

    fn force_close(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (had_buffer, was_closing) = {
            let mut st = this.st.borrow_mut(py);
            if st.conn_lost > 0 {
                return Ok(());
            }
            let had_buffer = !st.buffer.is_empty();
            st.buffer.clear();
            let was_closing = st.closing;
            st.closing = true;
            st.conn_lost += 1;
            (had_buffer, was_closing)
        };
        if had_buffer {
            this.remove(py, Side::Write)?;
        }
        if !was_closing {
            this.remove(py, Side::Read)?;
        }
        let cb = slf.getattr(intern!(py, "_call_connection_lost"))?;
        let exc = exc.map_or_else(|| py.None(), Bound::unbind);
        Self::call_soon(slf, cb, Args::from_iter([exc]))
    }

    fn maybe_pause_protocol(&self, py: Python<'_>) -> PyResult<()> {
        self.flow_control(py, true)
    }

    fn maybe_resume_protocol(&self, py: Python<'_>) -> PyResult<()> {
        self.flow_control(py, false)
    }

    fn flow_control(&self, py: Python<'_>, pause: bool) -> PyResult<()> {
        let protocol = {
            let mut st = self.st.borrow_mut(py);
            let size = st.buffer.len();
            let due = if pause {
                st.flow.begin_pause(size)
            } else {
                st.flow.begin_resume(size)
            };
            match (&st.protocol, due) {
                (Some(p), true) => p.clone_ref(py),
                _ => return Ok(()),
            }
        };
        flow::notify(self.loop_(py).as_ref(), protocol.bind(py), &self.owner(py), pause)
    }

    fn on_eof(slf: &Bound<'_, Self>, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if let Some(lp) = this.loop_(py) {
            if lp.get().is_debug() {
                log_debug(py, "%r received EOF", &this.owner(py))?;
            }
        }
        let keep_open = match protocol.call_method0(intern!(py, "eof_received")) {
            Ok(v) => v,
            Err(e) if is_exit(py, &e) => return Err(e),
            Err(e) => {
                return Self::fatal_error(slf, e, "Fatal error: protocol.eof_received() call failed.")
            }
        };
        if keep_open.is_truthy()? {
            this.remove(py, Side::Read)
        } else {
            Self::close(slf)
        }
    }

    /// The `BufferedProtocol` read: straight into the protocol's buffer.
    fn read_into_protocol_buffer(slf: &Bound<'_, Self>, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let buf = protocol
            .call_method1(intern!(py, "get_buffer"), (-1,))
            .and_then(|buf| {
                if buf.len()? == 0 {
                    return Err(PyRuntimeError::new_err("get_buffer() returned an empty buffer"));
                }
                Ok(buf)
            });
        let buf = match buf {
            Ok(b) => b,
            Err(e) if is_exit(py, &e) => return Err(e),
            Err(e) => {
                return Self::fatal_error(slf, e, "Fatal error: protocol.get_buffer() call failed.")
            }
        };
        let got = BufferView::new(&buf, true)
            .map_err(|_| {
                PyTypeError::new_err(
                    "recv_into() argument 'buffer' must be read-write bytes-like object",
                )
            })
            .and_then(|view| {
                // SAFETY: the writable export keeps `view.len()` bytes alive.
                let n = unsafe { libc::recv(this.fd, view.ptr().cast(), view.len(), 0) };
                if n >= 0 {
                    return Ok(Io::Done(n as usize));
                }
                let err = std::io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(Io::WouldBlock),
                    _ => Err(os_error(err)),
                }
            });
        let n = match got {
            Ok(Io::Done(n)) => n,
            Ok(Io::WouldBlock) => return Ok(()),
            Err(e) if is_exit(py, &e) => return Err(e),
            Err(e) => return Self::fatal_error(slf, e, "Fatal read error on socket transport"),
        };
        if n == 0 {
            return Self::on_eof(slf, protocol);
        }
        match protocol.call_method1(intern!(py, "buffer_updated"), (n,)) {
            Ok(_) => Ok(()),
            Err(e) if is_exit(py, &e) => Err(e),
            Err(e) => Self::fatal_error(slf, e, "Fatal error: protocol.buffer_updated() call failed."),
        }
    }

    /// Queue what `send` did not take, start watching for writability.
    fn buffer_rest(
        slf: &Bound<'_, Self>,
        data: &Bound<'_, PyAny>,
        bytes: &[u8],
        sent: usize,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let start_writer = {
            let mut st = this.st.borrow_mut(py);
            let was_empty = st.buffer.is_empty();
            match data.cast::<PyBytes>() {
                Ok(b) => st.buffer.push_shared(b.clone().unbind(), sent, bytes.len()),
                Err(_) => st.buffer.push_copy(&bytes[sent..]),
            }
            was_empty
        };
        if start_writer {
            if let Some(lp) = this.loop_(py) {
                let cb = slf.getattr(intern!(py, "_write_ready"))?;
                LoopCore::add_fd(&lp, this.fd, Side::Write, cb, Args::new())?;
            }
        }
        this.maybe_pause_protocol(py)
    }
}

pub(super) fn is_bytes_like(data: &Bound<'_, PyAny>) -> bool {
    let ptr = data.as_ptr();
    // SAFETY: type checks on a live object.
    unsafe {
        ffi::PyBytes_Check(ptr) != 0
            || ffi::PyByteArray_Check(ptr) != 0
            || ffi::PyMemoryView_Check(ptr) != 0
    }
}

#[pymethods]
impl TcpTransportCore {
    #[new]
    #[pyo3(signature = (loop_, sock, fd, protocol, owner, server=None))]
    fn new(
        py: Python<'_>,
        loop_: Py<LoopCore>,
        sock: Py<PyAny>,
        fd: RawFd,
        protocol: Bound<'_, PyAny>,
        owner: Py<PyAny>,
        server: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let buffered = protocol.is_instance(
            BUFFERED_PROTOCOL
                .import(py, "asyncio", "BufferedProtocol")?,
        )?;
        Ok(TcpTransportCore {
            fd,
            st: GilCell::new(State {
                loop_: Some(loop_),
                sock: Some(sock),
                protocol: Some(protocol.unbind()),
                owner: Some(owner),
                server: server.filter(|s| !s.is_none(py)),
                empty_waiter: None,
                buffered,
                protocol_connected: true,
                buffer: WriteBuffer::default(),
                conn_lost: 0,
                closing: false,
                paused: false,
                eof: false,
                flow: Watermarks::default(),
            }),
        })
    }

    /// Schedule `connection_made`, the start of reading and the waiter, in
    /// asyncio's order.
    #[pyo3(signature = (waiter=None))]
    fn start(slf: &Bound<'_, Self>, waiter: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let protocol = this.protocol(py);
        Self::call_soon(
            slf,
            protocol.getattr(intern!(py, "connection_made"))?,
            Args::from_iter([this.owner(py).unbind()]),
        )?;
        Self::call_soon(slf, slf.getattr(intern!(py, "_add_reader"))?, Args::new())?;
        if let Some(w) = waiter.filter(|w| !w.is_none()) {
            let f = SET_RESULT_UNLESS_CANCELLED.import(
                py,
                "asyncio.futures",
                "_set_result_unless_cancelled",
            )?;
            Self::call_soon(slf, f.clone(), Args::from_iter([w.unbind(), py.None()]))?;
        }
        Ok(())
    }

    #[getter]
    fn fd(&self) -> RawFd {
        self.fd
    }

    #[getter]
    fn sock(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.st.borrow(py).sock.as_ref().map(|s| s.clone_ref(py))
    }

    #[getter(loop_)]
    fn get_loop(&self, py: Python<'_>) -> Option<Py<LoopCore>> {
        self.st.borrow(py).loop_.as_ref().map(|s| s.clone_ref(py))
    }

    #[getter]
    fn closing(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).closing
    }

    #[getter]
    fn conn_lost(&self, py: Python<'_>) -> u32 {
        self.st.borrow(py).conn_lost
    }

    #[getter]
    fn eof(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).eof
    }

    #[getter]
    fn paused(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).paused
    }

    #[getter]
    fn protocol_paused(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).flow.protocol_paused
    }

    #[setter]
    fn set_protocol_paused(&self, py: Python<'_>, value: bool) {
        self.st.borrow_mut(py).flow.protocol_paused = value;
    }

    #[getter]
    fn high_water(&self, py: Python<'_>) -> usize {
        self.st.borrow(py).flow.high
    }

    #[getter]
    fn low_water(&self, py: Python<'_>) -> usize {
        self.st.borrow(py).flow.low
    }

    #[getter]
    fn empty_waiter(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.st.borrow(py).empty_waiter.as_ref().map(|s| s.clone_ref(py))
    }

    // -- asyncio.BaseTransport / ReadTransport ---------------------------

    fn get_protocol(&self, py: Python<'_>) -> Py<PyAny> {
        self.protocol(py).unbind()
    }

    fn set_protocol(&self, protocol: Bound<'_, PyAny>) -> PyResult<()> {
        let py = protocol.py();
        let buffered =
            protocol.is_instance(BUFFERED_PROTOCOL.import(py, "asyncio", "BufferedProtocol")?)?;
        let mut st = self.st.borrow_mut(py);
        st.buffered = buffered;
        st.protocol = Some(protocol.unbind());
        st.protocol_connected = true;
        Ok(())
    }

    fn is_closing(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).closing
    }

    fn is_reading(&self, py: Python<'_>) -> bool {
        self.is_reading_now(py)
    }

    fn pause_reading(&self, py: Python<'_>) -> PyResult<()> {
        {
            let mut st = self.st.borrow_mut(py);
            if st.paused || st.closing {
                return Ok(());
            }
            st.paused = true;
        }
        self.remove(py, Side::Read)?;
        if let Some(lp) = self.loop_(py) {
            if lp.get().is_debug() {
                log_debug(py, "%r pauses reading", &self.owner(py))?;
            }
        }
        Ok(())
    }

    fn resume_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        {
            let mut st = this.st.borrow_mut(py);
            if st.closing || !st.paused {
                return Ok(());
            }
            st.paused = false;
        }
        Self::add_reader(slf)?;
        if let Some(lp) = this.loop_(py) {
            if lp.get().is_debug() {
                log_debug(py, "%r resumes reading", &this.owner(py))?;
            }
        }
        Ok(())
    }

    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        {
            let mut st = this.st.borrow_mut(py);
            if st.closing {
                return Ok(());
            }
            st.closing = true;
        }
        this.remove(py, Side::Read)?;
        let lose_now = {
            let mut st = this.st.borrow_mut(py);
            let empty = st.buffer.is_empty();
            if empty {
                st.conn_lost += 1;
            }
            empty
        };
        if lose_now {
            this.remove(py, Side::Write)?;
            let cb = slf.getattr(intern!(py, "_call_connection_lost"))?;
            Self::call_soon(slf, cb, Args::from_iter([py.None()]))?;
        }
        Ok(())
    }

    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::force_close(slf, None)
    }

    fn _force_close(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        Self::force_close(slf, exc.filter(|e| !e.is_none()))
    }

    #[pyo3(signature = (exc, message="Fatal error on transport"))]
    fn _fatal_error(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        Self::fatal_error(slf, PyErr::from_value(exc), message)
    }

    // -- asyncio.WriteTransport --------------------------------------------

    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !is_bytes_like(data) {
            let kind = data.get_type().name()?;
            return Err(PyTypeError::new_err(format!(
                "data argument must be a bytes-like object, not {}",
                kind.repr()?
            )));
        }
        let buffer_empty = {
            let mut st = this.st.borrow_mut(py);
            if st.eof {
                return Err(PyRuntimeError::new_err("Cannot call write() after write_eof()"));
            }
            if st.empty_waiter.is_some() {
                return Err(PyRuntimeError::new_err("unable to write; sendfile is in progress"));
            }
            let empty_data = match data.cast::<PyBytes>() {
                Ok(b) => b.as_bytes().is_empty(),
                Err(_) => data.len()? == 0,
            };
            if empty_data {
                return Ok(());
            }
            if st.conn_lost > 0 {
                let warn = st.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES;
                st.conn_lost += 1;
                drop(st);
                if warn {
                    logger(py)?.call_method1(
                        intern!(py, "warning"),
                        ("socket.send() raised exception.",),
                    )?;
                }
                return Ok(());
            }
            st.buffer.is_empty()
        };

        // bytes are read in place; other buffers through an export.
        let view;
        let bytes: &[u8] = match data.cast::<PyBytes>() {
            Ok(b) => b.as_bytes(),
            Err(_) => {
                view = BufferView::new(data, false)?;
                // SAFETY: the export keeps `view.len()` bytes alive while `view` lives.
                unsafe { std::slice::from_raw_parts(view.ptr(), view.len()) }
            }
        };
        let mut sent = 0;
        if buffer_empty {
            match send_now(this.fd, bytes) {
                Sent::All => return Ok(()),
                Sent::Part(n) => sent = n,
                Sent::Failed(e) => {
                    return Self::fatal_error(slf, e, "Fatal write error on socket transport")
                }
            }
        }
        Self::buffer_rest(slf, data, bytes, sent)
    }

    fn writelines(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        // asyncio 3.11: `self.write(b''.join(list_of_data))`.
        let py = slf.py();
        let joined = PyBytes::new(py, b"").call_method1(intern!(py, "join"), (list_of_data,))?;
        Self::write(slf, &joined)
    }

    fn write_eof(&self, py: Python<'_>) -> PyResult<()> {
        {
            let mut st = self.st.borrow_mut(py);
            if st.closing || st.eof {
                return Ok(());
            }
            st.eof = true;
            if !st.buffer.is_empty() {
                return Ok(());
            }
        }
        shutdown_write(self.fd)
    }

    fn can_write_eof(&self) -> bool {
        true
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
        self.maybe_pause_protocol(py)
    }

    // -- loop callbacks ------------------------------------------------------

    fn _add_reader(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::add_reader(slf)
    }

    /// The fd is readable: read once and hand the data to the protocol.
    fn _read_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (protocol, buffered) = {
            let st = this.st.borrow(py);
            if st.conn_lost > 0 {
                return Ok(());
            }
            match &st.protocol {
                Some(p) => (p.clone_ref(py).into_bound(py), st.buffered),
                None => return Ok(()),
            }
        };
        if buffered {
            return Self::read_into_protocol_buffer(slf, &protocol);
        }
        let data = match recv_bytes(py, this.fd, MAX_SIZE) {
            Ok(Io::Done(d)) => d.into_bound(py),
            Ok(Io::WouldBlock) => return Ok(()),
            Err(e) if is_exit(py, &e) => return Err(e),
            Err(e) => return Self::fatal_error(slf, e, "Fatal read error on socket transport"),
        };
        if data.as_bytes().is_empty() {
            return Self::on_eof(slf, &protocol);
        }
        match protocol.call_method1(intern!(py, "data_received"), (data,)) {
            Ok(_) => Ok(()),
            Err(e) if is_exit(py, &e) => Err(e),
            Err(e) => Self::fatal_error(slf, e, "Fatal error: protocol.data_received() call failed."),
        }
    }

    /// The fd is writable: flush what is buffered.
    fn _write_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let flushed = {
            let mut st = this.st.borrow_mut(py);
            if st.conn_lost > 0 {
                return Ok(());
            }
            st.buffer.flush(this.fd, true)
        };
        if let Err(err) = flushed {
            this.remove(py, Side::Write)?;
            this.st.borrow_mut(py).buffer.clear();
            let err = os_error(err);
            let value = err.value(py).clone();
            Self::fatal_error(slf, err, "Fatal write error on socket transport")?;
            let waiter = this.st.borrow(py).empty_waiter.as_ref().map(|w| w.clone_ref(py));
            if let Some(w) = waiter {
                w.bind(py).call_method1(intern!(py, "set_exception"), (value,))?;
            }
            return Ok(());
        }
        this.maybe_resume_protocol(py)?;
        let (empty, closing, eof, waiter) = {
            let st = this.st.borrow(py);
            (
                st.buffer.is_empty(),
                st.closing,
                st.eof,
                st.empty_waiter.as_ref().map(|w| w.clone_ref(py)),
            )
        };
        if !empty {
            return Ok(());
        }
        this.remove(py, Side::Write)?;
        if let Some(w) = waiter {
            w.bind(py).call_method1(intern!(py, "set_result"), (py.None(),))?;
        }
        if closing {
            Self::_call_connection_lost(slf, None)
        } else if eof {
            shutdown_write(this.fd)
        } else {
            Ok(())
        }
    }

    /// The end: tell the protocol, close the socket, drop every reference.
    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (protocol, connected, sock, server, owner, waiter) = {
            let mut st = this.st.borrow_mut(py);
            (
                st.protocol.take(),
                st.protocol_connected,
                st.sock.take(),
                st.server.take(),
                st.owner.take(),
                st.empty_waiter.as_ref().map(|w| w.clone_ref(py)),
            )
        };
        let exc = exc.map_or_else(|| py.None().into_bound(py), |e| e);
        let lost = match (&protocol, connected) {
            (Some(p), true) => p
                .bind(py)
                .call_method1(intern!(py, "connection_lost"), (&exc,))
                .map(drop),
            _ => Ok(()),
        };
        let closed = match &sock {
            Some(s) => s.bind(py).call_method0(intern!(py, "close")).map(drop),
            None => Ok(()),
        };
        this.st.borrow_mut(py).loop_ = None;
        let detached = match &server {
            Some(s) => s.bind(py).call_method0(intern!(py, "_detach")).map(drop),
            None => Ok(()),
        };
        drop((protocol, sock, server, owner));
        lost?;
        closed?;
        detached?;
        if let Some(w) = waiter {
            let err = pyo3::exceptions::PyConnectionError::new_err("Connection is closed by peer");
            w.bind(py)
                .call_method1(intern!(py, "set_exception"), (err.into_value(py),))?;
        }
        Ok(())
    }

    // -- sendfile support (asyncio's private API, used by loop.sendfile) --

    fn _make_empty_waiter(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let lp = {
            let st = self.st.borrow(py);
            if st.empty_waiter.is_some() {
                return Err(PyRuntimeError::new_err("Empty waiter is already set"));
            }
            st.loop_.as_ref().map(|l| l.clone_ref(py))
        };
        let lp = lp.ok_or_else(|| PyRuntimeError::new_err("Event loop is closed"))?;
        let waiter = LoopCore::create_future(lp.bind(py))?;
        if self.st.borrow(py).buffer.is_empty() {
            waiter.call_method1(intern!(py, "set_result"), (py.None(),))?;
        }
        let waiter = waiter.unbind();
        self.st.borrow_mut(py).empty_waiter = Some(waiter.clone_ref(py));
        Ok(waiter)
    }

    fn _reset_empty_waiter(&self, py: Python<'_>) {
        let old = self.st.borrow_mut(py).empty_waiter.take();
        drop(old);
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(st) = self.st.unguarded() {
            for obj in [
                &st.sock,
                &st.protocol,
                &st.owner,
                &st.server,
                &st.empty_waiter,
            ]
            .into_iter()
            .flatten()
            {
                visit.call(obj)?;
            }
            if let Some(l) = &st.loop_ {
                visit.call(l)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let taken = self.st.unguarded().map(|mut st| {
            (
                st.loop_.take(),
                st.sock.take(),
                st.protocol.take(),
                st.owner.take(),
                st.server.take(),
                st.empty_waiter.take(),
            )
        });
        drop(taken);
    }
}
