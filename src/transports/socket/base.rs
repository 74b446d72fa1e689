//! `SocketCore<K>`: what stream and datagram socket transports share,
//! asyncio's `_SelectorTransport`: the loop, socket, protocol and owner,
//! the fd watch, reading's pause/resume, write flow control, and the life
//! cycle (`close` flushes, `abort` does not, `connection_lost` runs exactly
//! once, from the loop, after which the socket is closed and every
//! reference dropped). `K` is what only one kind has (`Stream`,
//! `Datagram`): its outgoing queue, mostly.
//!
//! Methods that schedule or register one of the Python core's own methods
//! (`_read_ready`, `_call_connection_lost`...) take that object as `slf`.

use std::os::fd::RawFd;

use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::event_loop::LoopCore;
use crate::fd_watch::FdWatch;
use crate::gil_cell::GilCell;
use crate::handle::Args;
use crate::live::{Live, Transports};
use crate::reactor::Side;
use crate::transports::constants::LOG_THRESHOLD_FOR_CONNLOST_WRITES;
use crate::transports::flow::{self, Watermarks};
use crate::transports::{lifecycle, log_debug, logger};
use crate::traverse::{Traverse, TraverseResult};

use super::sock_slot::{closed_socket, transport_socket_of, SockSlot};

static BUFFERED_PROTOCOL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// What one kind of socket transport adds to the shared state.
pub trait Kind: Default + Traverse {
    /// What waits to be sent, as taken out by `take_pending`.
    type Pending;

    /// Bytes waiting to be sent (`get_write_buffer_size()`).
    fn pending(&self) -> usize;

    /// Everything waiting to be sent (an abort or a fatal error forgets
    /// it); the caller drops it once the state's borrow has ended.
    fn take_pending(&mut self) -> Self::Pending;

    /// Send what the running callback batched (a stream's writes, see
    /// `stream::batch`) before anything that depends on the buffer.
    fn flush_batch(_core: &SocketCore<Self>, _slf: &Bound<'_, PyAny>) -> PyResult<()>
    where
        Self: Sized,
    {
        Ok(())
    }
}

/// The protocol is an `asyncio.BufferedProtocol` (a stream then reads
/// into its buffer; a datagram transport ignores it, as asyncio's does).
/// Asked before the state is borrowed: `isinstance` may run Python code.
fn is_buffered(protocol: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = protocol.py();
    protocol.is_instance(BUFFERED_PROTOCOL.import(py, "asyncio", "BufferedProtocol")?)
}

/// A socket transport's state; the references go at `connection_lost`.
pub struct State<K> {
    pub(super) loop_: Option<Py<LoopCore>>,
    pub(super) sock: SockSlot,
    pub(super) protocol: Option<Py<PyAny>>,
    /// The Python transport object the protocol sees; dropped after
    /// `connection_lost` (it refers back to us).
    pub(super) owner: Option<Py<PyAny>>,
    /// The `contextvars.Context` every callback of this transport runs in
    /// (asyncio 3.15's `_SelectorTransport._context`); None: a fresh copy
    /// of the current context per callback, as before 3.15.
    pub(super) context: Option<Py<PyAny>>,
    pub(super) protocol_connected: bool,
    /// See `is_buffered`.
    pub(super) buffered: bool,
    pub(super) conn_lost: u32,
    pub(super) closing: bool,
    /// Reading is paused (`pause_reading()`).
    pub(super) paused: bool,
    pub(super) flow: Watermarks,
    /// The kind's own state (`Stream`, `Datagram`).
    pub(super) kind: K,
}

/// The collector's view: every Python object the state holds.
impl<K: Traverse> Traverse for State<K> {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        (
            &self.loop_,
            &self.sock,
            &self.protocol,
            &self.owner,
            &self.context,
            &self.kind,
        )
            .traverse(visit)
    }
}

/// The shared engine each socket pyclass wraps.
pub struct SocketCore<K> {
    pub(super) fd: RawFd,
    /// Our registrations with the loop, removed only if still ours.
    pub(super) watch: FdWatch,
    pub(super) st: GilCell<State<K>>,
    /// Counted among the live transports (`live`) until dropped.
    _live: Live<Transports>,
}

impl<K: Traverse> Traverse for SocketCore<K> {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        (&self.st, &self.watch).traverse(visit)
    }
}

impl<K: Kind> SocketCore<K> {
    pub(super) fn new(
        loop_: Py<LoopCore>,
        sock: SockSlot,
        fd: RawFd,
        protocol: Bound<'_, PyAny>,
        owner: Py<PyAny>,
        context: Option<Py<PyAny>>,
        kind: K,
    ) -> PyResult<Self> {
        let py = protocol.py();
        let buffered = is_buffered(&protocol)?;
        Ok(SocketCore {
            fd,
            watch: FdWatch::new(fd),
            st: GilCell::new(State {
                loop_: Some(loop_),
                sock,
                protocol: Some(protocol.unbind()),
                owner: Some(owner),
                context: context.filter(|c| !c.is_none(py)),
                protocol_connected: true,
                buffered,
                conn_lost: 0,
                closing: false,
                paused: false,
                flow: Watermarks::default(),
                kind,
            }),
            _live: Live::new(),
        })
    }

    pub(super) fn loop_<'py>(&self, py: Python<'py>) -> Option<Bound<'py, LoopCore>> {
        self.st
            .borrow(py)
            .loop_
            .as_ref()
            .map(|l| l.bind(py).clone())
    }

    /// The protocol a readiness callback hands data to; None once the
    /// connection is lost (a stale callback then does nothing).
    pub(super) fn reading_protocol<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        let st = self.st.borrow(py);
        if st.conn_lost > 0 {
            return None;
        }
        st.protocol.as_ref().map(|p| p.bind(py).clone())
    }

    pub(super) fn is_reading_now(&self, py: Python<'_>) -> bool {
        let st = self.st.borrow(py);
        !st.paused && !st.closing
    }

    /// The context our callbacks run in, if the transport has one.
    fn context<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
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

    pub(super) fn protocol<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        match &self.st.borrow(py).protocol {
            Some(p) => p.bind(py).clone(),
            None => py.None().into_bound(py),
        }
    }

    /// The socket object (made now if the transport holds a bare fd, see
    /// `SockSlot`); None once closed.
    pub(super) fn sock<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let bare = {
            let mut st = self.st.borrow_mut(py);
            match &st.sock {
                SockSlot::Object(o) => return Ok(Some(o.bind(py).clone())),
                SockSlot::Gone(_) => return Ok(None),
                SockSlot::Fd(..) => st.sock.take(),
            }
        };
        // Made with no borrow held: the socket module runs Python code.
        let (slot, made) = bare.into_object(py);
        let obj = match &slot {
            SockSlot::Object(o) => Some(o.bind(py).clone()),
            _ => None,
        };
        self.st.borrow_mut(py).sock = slot;
        made.map(|()| obj)
    }

    /// Close the socket without making its object: an unclosed transport's
    /// `__del__`, which may run as the interpreter exits (when the socket
    /// module can no longer be imported). The fd is closed once no borrow
    /// is held; an object is closed through its own `close()`.
    pub(super) fn close_sock_for_del(&self, py: Python<'_>) -> PyResult<()> {
        let slot = self.st.borrow_mut(py).sock.take();
        match slot {
            SockSlot::Object(o) => o.bind(py).call_method0(intern!(py, "close")).map(drop),
            bare => {
                drop(bare);
                Ok(())
            }
        }
    }

    /// `get_extra_info('socket')`: a `TransportSocket` over the socket
    /// object, or, for a transport closed before anyone asked, over a
    /// closed socket of its kind (as asyncio's, made at set-up, would be).
    pub(super) fn transport_socket<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let sock = match self.sock(py)? {
            Some(sock) => sock,
            None => match self.st.borrow(py).sock.known_kind() {
                Some(kind) => closed_socket(py, kind)?,
                None => return Ok(py.None().into_bound(py)),
            },
        };
        transport_socket_of(&sock)
    }

    /// `logger.debug(fmt, transport)` in debug mode.
    pub(super) fn debug_log(&self, py: Python<'_>, fmt: &str) -> PyResult<()> {
        match self.loop_(py) {
            Some(lp) if lp.get().is_debug() => log_debug(py, fmt, &self.owner(py)),
            _ => Ok(()),
        }
    }

    /// Start reading, unless paused or closing.
    pub(super) fn add_reader(&self, slf: &Bound<'_, PyAny>) -> PyResult<()> {
        if !self.is_reading_now(slf.py()) {
            return Ok(());
        }
        self.register(slf, Side::Read)
    }

    /// Watch our fd: `slf._read_ready` or `slf._write_ready` runs on
    /// readiness, in the transport's context.
    pub(super) fn register(&self, slf: &Bound<'_, PyAny>, side: Side) -> PyResult<()> {
        let py = slf.py();
        let Some(lp) = self.loop_(py) else {
            return Ok(());
        };
        let name = match side {
            Side::Read => intern!(py, "_read_ready"),
            Side::Write => intern!(py, "_write_ready"),
        };
        self.watch
            .add(&lp, side, slf.getattr(name)?, self.context(py))
    }

    /// Stop watching our fd (if the registration is still ours).
    pub(super) fn remove(&self, py: Python<'_>, side: Side) -> PyResult<()> {
        self.watch.remove(self.loop_(py).as_ref(), side)
    }

    /// Our fd, if the socket object still has it (see `still_holds`).
    pub(super) fn live_fd(&self, py: Python<'_>) -> PyResult<RawFd> {
        let object = match &self.st.borrow(py).sock {
            SockSlot::Object(o) => o.clone_ref(py),
            slot => return Ok(slot.bare_fd()),
        };
        // Asked with no borrow held: `fileno()` of a socket-like object
        // other than the socket module's own is Python code.
        crate::socket_fd::still_holds(object.bind(py), self.fd)
    }

    pub(super) fn call_soon(
        &self,
        py: Python<'_>,
        callback: Bound<'_, PyAny>,
        args: Args,
    ) -> PyResult<()> {
        match self.loop_(py) {
            Some(lp) => LoopCore::call_soon(&lp, callback, args, self.context(py)).map(drop),
            None => Err(PyRuntimeError::new_err("Event loop is closed")),
        }
    }

    /// Schedule `connection_made`, the start of reading and the waiter, in
    /// asyncio's order.
    pub(super) fn start(
        &self,
        slf: &Bound<'_, PyAny>,
        waiter: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let lp = self
            .loop_(py)
            .ok_or_else(|| PyRuntimeError::new_err("Event loop is closed"))?;
        let add_reader = slf.getattr(intern!(py, "_add_reader"))?;
        lifecycle::start(
            &lp,
            &self.protocol(py),
            self.owner(py),
            Some(add_reader),
            waiter,
            self.context(py),
        )
    }

    pub(super) fn set_protocol(&self, protocol: Bound<'_, PyAny>) -> PyResult<()> {
        let py = protocol.py();
        let buffered = is_buffered(&protocol)?;
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

    // -- reading -----------------------------------------------------------

    pub(super) fn pause_reading(&self, py: Python<'_>) -> PyResult<()> {
        {
            let mut st = self.st.borrow_mut(py);
            if st.paused || st.closing {
                return Ok(());
            }
            st.paused = true;
        }
        self.remove(py, Side::Read)?;
        self.debug_log(py, "%r pauses reading")
    }

    pub(super) fn resume_reading(&self, slf: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        {
            let mut st = self.st.borrow_mut(py);
            if st.closing || !st.paused {
                return Ok(());
            }
            st.paused = false;
        }
        self.add_reader(slf)?;
        self.debug_log(py, "%r resumes reading")
    }

    // -- writing -----------------------------------------------------------

    pub(super) fn maybe_pause_protocol(&self, py: Python<'_>) -> PyResult<()> {
        self.flow_control(py, true)
    }

    pub(super) fn maybe_resume_protocol(&self, py: Python<'_>) -> PyResult<()> {
        self.flow_control(py, false)
    }

    fn flow_control(&self, py: Python<'_>, pause: bool) -> PyResult<()> {
        let protocol = {
            let mut st = self.st.borrow_mut(py);
            let size = st.kind.pending();
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
        flow::notify(
            self.loop_(py).as_ref(),
            protocol.bind(py),
            &self.owner(py),
            pause,
        )
    }

    pub(super) fn set_write_buffer_limits(
        &self,
        py: Python<'_>,
        high: Option<Bound<'_, PyAny>>,
        low: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let limits = flow::parse_limits(py, high, low)?;
        self.st.borrow_mut(py).flow.set_limits(limits);
        self.maybe_pause_protocol(py)
    }

    /// A write after the connection was lost: counted, and logged past
    /// asyncio's threshold. True if the connection is lost.
    pub(super) fn note_lost_write(&self, py: Python<'_>) -> PyResult<bool> {
        let mut st = self.st.borrow_mut(py);
        if st.conn_lost == 0 {
            return Ok(false);
        }
        let warn = st.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES;
        st.conn_lost += 1;
        drop(st);
        if warn {
            logger(py)?
                .call_method1(intern!(py, "warning"), ("socket.send() raised exception.",))?;
        }
        Ok(true)
    }

    // -- the end -----------------------------------------------------------

    pub(super) fn close(&self, slf: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        K::flush_batch(self, slf)?;
        {
            let mut st = self.st.borrow_mut(py);
            if st.closing {
                return Ok(());
            }
            st.closing = true;
        }
        self.remove(py, Side::Read)?;
        let lose_now = {
            let mut st = self.st.borrow_mut(py);
            let empty = st.kind.pending() == 0;
            if empty {
                st.conn_lost += 1;
            }
            empty
        };
        if lose_now {
            self.remove(py, Side::Write)?;
            self.send_fin_early(py);
            let cb = slf.getattr(intern!(py, "_call_connection_lost"))?;
            self.call_soon(py, cb, Args::from_iter([py.None()]))?;
        }
        Ok(())
    }

    /// A bare accepted fd (no socket object was ever made, so nothing
    /// else can write to it): its FIN goes out now, with the data
    /// just sent, rather than at the close one iteration later. The peer
    /// then reads the data and the EOF in one wake-up instead of two,
    /// which cost the server's `close` about 2.5 µs of kernel time per
    /// connection (the peer's second wake-up runs on the closing side).
    /// The socket stays open until `connection_lost` has run, as
    /// asyncio's does; an error (the peer reset it) is left to the close.
    fn send_fin_early(&self, py: Python<'_>) {
        // Not once the process forked: a child may hold the socket, which
        // asyncio's close would leave open for it.
        let sole = self.st.borrow(py).sock.sole_fd();
        if let Some(fd) = sole {
            // Not with unread data: closing such a socket resets the
            // connection, and the peer must see that reset (asyncio's
            // ConnectionResetError), not this FIN's clean EOF before it.
            let mut unread: libc::c_int = 0;
            // SAFETY: `fd` is the transport's own open socket (held in its
            // `SockSlot`); FIONREAD writes one int to `unread`, shutdown
            // reports any problem through errno.
            unsafe {
                if libc::ioctl(fd, libc::FIONREAD, &mut unread) == 0 && unread == 0 {
                    libc::shutdown(fd, libc::SHUT_WR);
                }
            }
        }
    }

    /// Close without flushing; `connection_lost(exc)` follows from the loop.
    pub(super) fn force_close(
        &self,
        slf: &Bound<'_, PyAny>,
        exc: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        // asyncio's `write()` had sent these before the abort.
        K::flush_batch(self, slf)?;
        let (had_buffer, pending, was_closing) = {
            let mut st = self.st.borrow_mut(py);
            // Also once `connection_lost` ran after a drained `close()`
            // (which, as in asyncio, does not count the loss): nothing is
            // left to abort. asyncio raises AttributeError there, a defect.
            if st.conn_lost > 0 || st.loop_.is_none() {
                return Ok(());
            }
            let had_buffer = st.kind.pending() > 0;
            let pending = st.kind.take_pending();
            let was_closing = st.closing;
            st.closing = true;
            st.conn_lost += 1;
            (had_buffer, pending, was_closing)
        };
        drop(pending);
        if had_buffer {
            self.remove(py, Side::Write)?;
        }
        if !was_closing {
            self.remove(py, Side::Read)?;
        }
        let cb = slf.getattr(intern!(py, "_call_connection_lost"))?;
        let exc = exc.map_or_else(|| py.None(), Bound::unbind);
        self.call_soon(py, cb, Args::from_iter([exc]))
    }

    /// asyncio's `_fatal_error`: report (OSError only in debug mode), then
    /// close without flushing.
    pub(super) fn fatal_error(
        &self,
        slf: &Bound<'_, PyAny>,
        exc: PyErr,
        message: &str,
    ) -> PyResult<()> {
        let py = slf.py();
        let exc = exc.into_value(py).into_bound(py);
        if let Some(lp) = self.loop_(py) {
            let quiet = exc.is_instance_of::<PyOSError>();
            lifecycle::report_fatal(
                &lp,
                &self.owner(py),
                &self.protocol(py),
                &exc,
                message,
                quiet,
            )?;
        }
        self.force_close(slf, Some(exc.into_any()))
    }

    /// asyncio's `_call_connection_lost`: tell the protocol, close the
    /// socket, drop every reference. `detach(owner)` runs after the socket
    /// is closed (a stream's server is told then); the errors of the three
    /// steps are raised in that order, after all three ran.
    pub(super) fn connection_lost(
        &self,
        py: Python<'_>,
        exc: Option<Bound<'_, PyAny>>,
        detach: impl FnOnce(Option<&Py<PyAny>>) -> PyResult<()>,
    ) -> PyResult<()> {
        let (protocol, connected, owner) = {
            let mut st = self.st.borrow_mut(py);
            (st.protocol.take(), st.protocol_connected, st.owner.take())
        };
        let exc = exc.unwrap_or_else(|| py.None().into_bound(py));
        let lost = match (&protocol, connected) {
            (Some(p), true) => p
                .bind(py)
                .call_method1(intern!(py, "connection_lost"), (&exc,))
                .map(drop),
            _ => Ok(()),
        };
        // Closed after `connection_lost` (which may still ask for the
        // socket) and before the server hears of it, as asyncio does; a
        // bare fd closes as it is dropped.
        let sock = self.st.borrow_mut(py).sock.take();
        let closed = match &sock {
            SockSlot::Object(s) => s.bind(py).call_method0(intern!(py, "close")).map(drop),
            _ => Ok(()),
        };
        drop(sock);
        let lp = self.st.borrow_mut(py).loop_.take();
        drop(lp);
        let detached = detach(owner.as_ref());
        drop((protocol, owner));
        lost?;
        closed?;
        detached
    }

    /// The collector's clear: every reference, dropped after the borrow.
    pub(super) fn clear(&self) {
        let taken = self.st.unguarded().map(|mut st| {
            (
                st.loop_.take(),
                st.sock.take(),
                st.protocol.take(),
                st.owner.take(),
                st.context.take(),
                std::mem::take(&mut st.kind),
            )
        });
        let handles = self.watch.take_unguarded();
        drop((taken, handles));
    }
}
