//! `SocketTransportCore`: the engine of `ferroloop.transports.TcpTransport`,
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

use pyo3::exceptions::PyRuntimeError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use pyo3::{intern, PyTraverseError};

use super::flow::Watermarks;
use super::logger;
use super::write_buffer::WriteBuffer;
use crate::compat;
use crate::event_loop::LoopCore;
use crate::gil_cell::GilCell;
use crate::handle::{Args, Handle};
use crate::reactor::Side;

mod batch;
mod datagram;
mod read;
mod write;

pub use batch::flush_batched;

use datagram::Datagram;

pub(in crate::transports) use write::is_bytes_like;

static BUFFERED_PROTOCOL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SET_RESULT_UNLESS_CANCELLED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

pub(super) struct State {
    loop_: Option<Py<LoopCore>>,
    sock: Option<Py<PyAny>>,
    protocol: Option<Py<PyAny>>,
    /// The Python transport object the protocol sees; dropped after
    /// `connection_lost` (it refers back to us).
    owner: Option<Py<PyAny>>,
    server: Option<Py<PyAny>>,
    /// The `contextvars.Context` every callback of this transport runs in
    /// (asyncio 3.15's `_SelectorTransport._context`); None: a fresh copy
    /// of the current context per callback, as before 3.15.
    context: Option<Py<PyAny>>,
    empty_waiter: Option<Py<PyAny>>,
    buffered: bool,
    protocol_connected: bool,
    buffer: WriteBuffer,
    /// `buffer` holds only this iteration's batched writes (see `batch`).
    batched: bool,
    conn_lost: u32,
    closing: bool,
    paused: bool,
    eof: bool,
    flow: Watermarks,
    /// Our registrations with the loop, removed only if still ours.
    reader: Option<Py<Handle>>,
    writer: Option<Py<Handle>>,
    /// Set for datagram transports (their queue replaces `buffer`).
    datagram: Option<Box<Datagram>>,
}

impl State {
    /// Bytes waiting to be sent (`get_write_buffer_size()`).
    fn pending(&self) -> usize {
        let buffered = if self.batched { 0 } else { self.buffer.len() };
        buffered + self.datagram.as_ref().map_or(0, |d| d.size)
    }

    fn clear_pending(&mut self) {
        self.buffer.clear();
        if let Some(d) = &mut self.datagram {
            d.queue.clear();
            d.size = 0;
        }
    }
}

#[pyclass(frozen, module = "ferroloop._ferroloop")]
pub struct SocketTransportCore {
    fd: RawFd,
    st: GilCell<State>,
}

impl SocketTransportCore {
    #[allow(clippy::too_many_arguments)]
    fn build(
        loop_: Py<LoopCore>,
        sock: Py<PyAny>,
        fd: RawFd,
        protocol: Bound<'_, PyAny>,
        owner: Py<PyAny>,
        server: Option<Py<PyAny>>,
        context: Option<Py<PyAny>>,
        datagram: Option<Box<Datagram>>,
    ) -> PyResult<Self> {
        let py = protocol.py();
        let buffered =
            protocol.is_instance(BUFFERED_PROTOCOL.import(py, "asyncio", "BufferedProtocol")?)?;
        Ok(SocketTransportCore {
            fd,
            st: GilCell::new(State {
                loop_: Some(loop_),
                sock: Some(sock),
                protocol: Some(protocol.unbind()),
                owner: Some(owner),
                server: server.filter(|s| !s.is_none(py)),
                context: context.filter(|c| !c.is_none(py)),
                empty_waiter: None,
                buffered,
                protocol_connected: true,
                buffer: WriteBuffer::default(),
                batched: false,
                conn_lost: 0,
                closing: false,
                paused: false,
                eof: false,
                flow: Watermarks::default(),
                reader: None,
                writer: None,
                datagram,
            }),
        })
    }

    pub(super) fn loop_<'py>(&self, py: Python<'py>) -> Option<Bound<'py, LoopCore>> {
        self.st
            .borrow(py)
            .loop_
            .as_ref()
            .map(|l| l.bind(py).clone())
    }

    pub(super) fn is_reading_now(&self, py: Python<'_>) -> bool {
        let st = self.st.borrow(py);
        !st.paused && !st.closing
    }

    /// The context our callbacks run in, if the transport has one.
    pub(super) fn context<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.st
            .borrow(py)
            .context
            .as_ref()
            .map(|c| c.bind(py).clone())
    }

    /// The Python-visible transport (for callbacks, logs and error contexts).
    pub(super) fn owner<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        match &self.st.borrow(py).owner {
            Some(o) => o.bind(py).clone(),
            None => py.None().into_bound(py),
        }
    }

    pub(super) fn add_reader(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !this.is_reading_now(py) {
            return Ok(());
        }
        Self::register(slf, Side::Read)
    }

    /// Watch our fd: `_read_ready` or `_write_ready` runs on readiness.
    pub(super) fn register(slf: &Bound<'_, Self>, side: Side) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let Some(lp) = this.loop_(py) else {
            return Ok(());
        };
        let name = match side {
            Side::Read => intern!(py, "_read_ready"),
            Side::Write => intern!(py, "_write_ready"),
        };
        let context = this.context(py);
        let handle =
            LoopCore::add_fd(&lp, this.fd, side, slf.getattr(name)?, Args::new(), context)?;
        let old = {
            let mut st = this.st.borrow_mut(py);
            match side {
                Side::Read => st.reader.replace(handle),
                Side::Write => st.writer.replace(handle),
            }
        };
        drop(old);
        Ok(())
    }

    /// Stop watching our fd (if the registration is still ours).
    pub(super) fn remove(&self, py: Python<'_>, side: Side) -> PyResult<()> {
        let (lp, handle) = {
            let mut st = self.st.borrow_mut(py);
            let handle = match side {
                Side::Read => st.reader.take(),
                Side::Write => st.writer.take(),
            };
            (st.loop_.as_ref().map(|l| l.clone_ref(py)), handle)
        };
        if let (Some(lp), Some(handle)) = (lp, handle) {
            LoopCore::remove_fd_if(lp.bind(py), self.fd, side, &handle)?;
        }
        Ok(())
    }

    /// Our fd, if the socket object still has it: a socket closed behind
    /// the transport gives -1 (the syscall then fails with EBADF, as
    /// asyncio's `sock.recv()` would) instead of reaching whatever file
    /// reuses the number.
    pub(super) fn live_fd(&self, py: Python<'_>) -> PyResult<RawFd> {
        let sock = self.st.borrow(py).sock.as_ref().map(|s| s.clone_ref(py));
        let Some(sock) = sock else {
            return Ok(-1);
        };
        let fd: i64 = sock
            .bind(py)
            .call_method0(intern!(py, "fileno"))?
            .extract()?;
        Ok(if fd == i64::from(self.fd) {
            self.fd
        } else {
            -1
        })
    }

    pub(super) fn call_soon(
        slf: &Bound<'_, Self>,
        callback: Bound<'_, PyAny>,
        args: Args,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        match this.loop_(py) {
            Some(lp) => LoopCore::call_soon(&lp, callback, args, this.context(py)).map(drop),
            None => Err(PyRuntimeError::new_err("Event loop is closed")),
        }
    }

    /// asyncio's `_fatal_error`: report (OSError only in debug mode), then
    /// close without flushing.
    pub(super) fn fatal_error(slf: &Bound<'_, Self>, exc: PyErr, message: &str) -> PyResult<()> {
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

    pub(super) fn protocol<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        match &self.st.borrow(py).protocol {
            Some(p) => p.bind(py).clone(),
            None => py.None().into_bound(py),
        }
    }

    pub(super) fn force_close(
        slf: &Bound<'_, Self>,
        exc: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        // asyncio's `write()` had sent these before the abort.
        Self::flush_batch(slf)?;
        let (had_buffer, was_closing) = {
            let mut st = this.st.borrow_mut(py);
            if st.conn_lost > 0 {
                return Ok(());
            }
            let had_buffer = st.pending() > 0;
            st.clear_pending();
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
}

#[pymethods]
impl SocketTransportCore {
    /// A stream transport (TCP or Unix).
    #[new]
    #[pyo3(signature = (loop_, sock, fd, protocol, owner, server=None, context=None))]
    fn new(
        loop_: Py<LoopCore>,
        sock: Py<PyAny>,
        fd: RawFd,
        protocol: Bound<'_, PyAny>,
        owner: Py<PyAny>,
        server: Option<Py<PyAny>>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        Self::build(loop_, sock, fd, protocol, owner, server, context, None)
    }

    /// A datagram transport (UDP or Unix): `address` is the remote address
    /// given to `create_datagram_endpoint` (`sendto` may only use it);
    /// `connected`: the socket has a peer, so `send` is used.
    #[staticmethod]
    fn datagram(
        loop_: Py<LoopCore>,
        sock: Bound<'_, PyAny>,
        fd: RawFd,
        protocol: Bound<'_, PyAny>,
        owner: Py<PyAny>,
        address: Option<Py<PyAny>>,
        connected: bool,
    ) -> PyResult<Self> {
        let py = sock.py();
        let family: i32 = sock.getattr(intern!(py, "family"))?.extract()?;
        let datagram = Datagram::new(py, address, connected, family);
        Self::build(
            loop_,
            sock.unbind(),
            fd,
            protocol,
            owner,
            None,
            None,
            Some(datagram),
        )
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
        self.st
            .borrow(py)
            .empty_waiter
            .as_ref()
            .map(|s| s.clone_ref(py))
    }

    // -- asyncio.BaseTransport / ReadTransport ---------------------------

    fn get_protocol(&self, py: Python<'_>) -> Py<PyAny> {
        self.protocol(py).unbind()
    }

    fn set_protocol(&self, protocol: Bound<'_, PyAny>) -> PyResult<()> {
        let py = protocol.py();
        let buffered =
            protocol.is_instance(BUFFERED_PROTOCOL.import(py, "asyncio", "BufferedProtocol")?)?;
        let old = {
            let mut st = self.st.borrow_mut(py);
            st.buffered = buffered;
            st.protocol_connected = true;
            st.protocol.replace(protocol.unbind())
        };
        // The old protocol's `__del__` may call back into the transport.
        drop(old);
        Ok(())
    }

    fn is_closing(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).closing
    }

    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        Self::flush_batch(slf)?;
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
            let empty = st.pending() == 0;
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
        let exc = exc.unwrap_or_else(|| py.None().into_bound(py));
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
        let lp = this.st.borrow_mut(py).loop_.take();
        drop(lp);
        let detached = match (&server, &owner) {
            (Some(s), Some(o)) if compat::SERVER_DETACH_TAKES_TRANSPORT => s
                .bind(py)
                .call_method1(intern!(py, "_detach"), (o,))
                .map(drop),
            (Some(s), _) => s.bind(py).call_method0(intern!(py, "_detach")).map(drop),
            _ => Ok(()),
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

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(st) = self.st.unguarded() {
            for obj in [
                &st.sock,
                &st.protocol,
                &st.owner,
                &st.server,
                &st.context,
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
            for h in [&st.reader, &st.writer].into_iter().flatten() {
                visit.call(h)?;
            }
            if let Some(d) = &st.datagram {
                d.visit(&visit)?;
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
                st.context.take(),
                st.empty_waiter.take(),
                st.reader.take(),
                st.writer.take(),
                st.datagram.take(),
            )
        });
        drop(taken);
    }
}
