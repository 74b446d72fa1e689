//! `Acceptor`: a listening socket's reader, asyncio's `_accept_connection`
//! in Rust, for plain (non-TLS) servers.
//!
//! On readiness it accepts up to `backlog` connections (`accept4`) and
//! schedules each one's set-up for the next iteration, where asyncio's
//! `_accept_connection2` task would run it: the protocol factory is called,
//! then the loop's `_make_socket_transport`. The task, its coroutine and
//! the waiter future asyncio spends per connection are not needed: nothing
//! can cancel them. When that method is ferroloop's own, the transport is
//! made here and set up over the bare fd (`AcceptedFd`, then `SockSlot`),
//! its `socket.socket` made only if asked for; otherwise (or in debug mode,
//! whose log names the socket) the fd is wrapped at once, as
//! `sock.accept()` does.
//! Errors follow asyncio: running out of fds is reported and accepting
//! pauses for a second (`Loop._accept_exhausted`); a failed set-up is
//! reported only in debug mode.
//!
//! The listening socket belongs to its Python object, which may close it
//! behind the server's back: the acceptor registers through an `FdWatch`
//! (on close it removes only its own registration, not one someone else
//! made on a reused number), and accepts only while `sock.fileno()` is
//! still the fd it was started with.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use pyo3::{intern, PyTraverseError};

use crate::event_loop::{fileobj_to_fd, LoopCore};
use crate::fd_watch::FdWatch;
use crate::gil_cell::GilCell;
use crate::handle::Args;
use crate::pyhelpers::{is_exit, os_error};
use crate::reactor::Side;
use crate::sockaddr;
use crate::sysio::SockAddr;
use crate::transports::logger;
use crate::transports::socket::{
    fork_count, init_accepted_stream, init_stream_transport, socket_object,
};
use crate::traverse::Traverse;

static TCP_TRANSPORT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

#[pyclass(frozen, module = "ferroloop._ferroloop")]
pub struct Acceptor {
    loop_: Py<LoopCore>,
    sock: Py<PyAny>,
    /// Our registration as the listening fd's reader (`_start`/`_stop`).
    watch: FdWatch,
    /// The listening socket's family, type and proto, given to each
    /// accepted socket (as `socket.accept()` does).
    kind: (i32, i32, i32),
    protocol_factory: Py<PyAny>,
    server: Py<PyAny>,
    backlog: usize,
    /// The server's `contextvars.Context` (asyncio 3.15): each connection
    /// is set up, and its transport runs, in a copy of it. None before 3.15.
    context: Option<Py<PyAny>>,
    /// The loop's `_make_socket_transport` is ferroloop's own, so each
    /// transport is made here, without that call and the class's
    /// `__init__` frame (same object, same set-up).
    native_transport: bool,
}

/// What one `accept4` gave.
enum Accepted {
    Conn(RawFd, SockAddr),
    /// Nothing (left) to accept.
    Empty,
    Failed(std::io::Error),
}

fn accept(fd: RawFd) -> Accepted {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut addr = SockAddr {
        storage: unsafe { std::mem::zeroed() },
        len: std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
    };
    loop {
        // SAFETY: `addr` is valid for its declared length.
        let conn = unsafe {
            libc::accept4(
                fd,
                (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
                &mut addr.len,
                libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            )
        };
        if conn >= 0 {
            return Accepted::Conn(conn, addr);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::ECONNABORTED) => return Accepted::Empty,
            _ => return Accepted::Failed(err),
        }
    }
}

impl Acceptor {
    /// Our fd, if the socket object still has it (see `still_holds`).
    fn live_fd(&self, py: Python<'_>) -> PyResult<RawFd> {
        crate::socket_fd::still_holds(self.sock.bind(py), self.watch.fd())
    }

    /// What `sock.accept()` gives asyncio: a non-blocking `socket.socket`
    /// over the accepted fd, which it then owns (dropping `fd` closes it
    /// if that fails).
    fn wrap<'py>(&self, py: Python<'py>, fd: OwnedFd) -> PyResult<Bound<'py, PyAny>> {
        let conn = socket_object(py, fd.as_raw_fd(), self.kind)?;
        let _ = fd.into_raw_fd(); // the object's now
        Ok(conn)
    }

    /// `loop._make_socket_transport(conn, protocol, extra=, server=,
    /// context=)` when it is ferroloop's own: a `TcpTransport` made
    /// without its `__init__` frame, then set up as `__init__` does, over
    /// the socket object or the bare fd.
    fn make_transport<'py>(
        &self,
        lp: &Bound<'py, LoopCore>,
        conn: &Bound<'py, PyAny>,
        protocol: Bound<'py, PyAny>,
        extra: &Bound<'py, PyAny>,
        context: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let py = lp.py();
        let cls = TCP_TRANSPORT.import(py, "ferroloop.transports", "TcpTransport")?;
        let transport = cls.call_method1(intern!(py, "__new__"), (cls,))?;
        let server = Some(self.server.bind(py).clone());
        let context = (!context.is_none()).then(|| context.clone().unbind());
        if let Ok(bare) = conn.cast::<AcceptedFd>() {
            let bare = bare.get();
            let fd = bare.take(py)?;
            return init_accepted_stream(
                &transport, lp, fd, self.kind, bare.forks, extra, protocol, server, context,
            );
        }
        init_stream_transport(
            &transport,
            lp,
            conn,
            protocol,
            None,
            Some(extra.clone()),
            server,
            context,
        )
    }
}

/// An accepted connection's fd on its way to its transport (one
/// iteration later, as asyncio sets connections up): closed if it never
/// gets there (the loop closed first, the protocol factory failed).
#[pyclass(frozen, module = "ferroloop._ferroloop")]
pub struct AcceptedFd {
    fd: GilCell<Option<OwnedFd>>,
    /// The process's fork count at the accept (see `SockSlot::sole_fd`).
    forks: u64,
}

impl AcceptedFd {
    fn new(fd: OwnedFd) -> Self {
        AcceptedFd {
            fd: GilCell::new(Some(fd)),
            forks: fork_count(),
        }
    }

    fn take(&self, py: Python<'_>) -> PyResult<OwnedFd> {
        self.fd.borrow_mut(py).take().ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err("accepted connection already set up")
        })
    }
}

#[pymethods]
impl AcceptedFd {
    /// Close it now (a failed set-up), as asyncio closes the socket.
    fn close(&self, py: Python<'_>) {
        let fd = self.fd.borrow_mut(py).take();
        drop(fd);
    }
}

#[pymethods]
impl Acceptor {
    #[new]
    #[pyo3(signature = (loop_, sock, protocol_factory, server, backlog, context=None, native_transport=false))]
    fn new(
        loop_: Py<LoopCore>,
        sock: Bound<'_, PyAny>,
        protocol_factory: Py<PyAny>,
        server: Py<PyAny>,
        backlog: i64,
        context: Option<Py<PyAny>>,
        native_transport: bool,
    ) -> PyResult<Self> {
        let py = sock.py();
        // A bad socket fails as asyncio's `_add_reader(sock.fileno())` does.
        let fd = fileobj_to_fd(&sock)?;
        let attr = |name| -> PyResult<i32> { sock.getattr(name)?.extract() };
        let kind = (
            attr(intern!(py, "family"))?,
            attr(intern!(py, "type"))?,
            attr(intern!(py, "proto"))?,
        );
        Ok(Acceptor {
            loop_,
            sock: sock.unbind(),
            watch: FdWatch::new(fd),
            kind,
            protocol_factory,
            server,
            // asyncio takes any int (`listen` makes a negative one 0), but
            // its `range(backlog)` accept loop never accepts for 0 or less:
            // at least one accept per readiness here.
            backlog: usize::try_from(backlog).unwrap_or(0).max(1),
            context: context.filter(|c| !c.is_none(py)),
            native_transport,
        })
    }

    /// Start accepting: register as the listening socket's reader.
    fn _start(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        let lp = this.loop_.bind(slf.py());
        this.watch.add(lp, Side::Read, slf.clone().into_any(), None)
    }

    /// Stop accepting: remove our registration, if it is still ours.
    fn _stop(&self, py: Python<'_>) -> PyResult<()> {
        self.watch.remove(Some(self.loop_.bind(py)), Side::Read)
    }

    /// The listening socket is readable: accept what is waiting.
    fn __call__(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let lp = this.loop_.bind(py);
        let listening = this.live_fd(py)?;
        if listening < 0 {
            // Closed behind the server (a dup kept the old file in the
            // poll): nothing of ours is left to accept from.
            return this.watch.remove(Some(lp), Side::Read);
        }
        for _ in 0..this.backlog {
            let (fd, addr) = match accept(listening) {
                Accepted::Conn(fd, addr) => (fd, addr),
                Accepted::Empty => return Ok(()),
                Accepted::Failed(err) => {
                    let code = err.raw_os_error();
                    let exc = os_error(err);
                    if matches!(
                        code,
                        Some(libc::EMFILE)
                            | Some(libc::ENFILE)
                            | Some(libc::ENOBUFS)
                            | Some(libc::ENOMEM)
                    ) {
                        // Paused: the loop registers a new acceptor later.
                        this.watch.remove(Some(lp), Side::Read)?;
                        lp.call_method1(
                            intern!(py, "_accept_exhausted"),
                            (
                                exc.into_value(py),
                                &this.protocol_factory,
                                &this.sock,
                                &this.server,
                                this.backlog,
                                &this.context,
                            ),
                        )?;
                        return Ok(());
                    }
                    return Err(exc); // the loop reports it, as asyncio's does
                }
            };
            // SAFETY: accept4 just gave us this fd; nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let debug = lp.get().is_debug();
            // A bare fd when our own transport will take it and its
            // addresses convert natively; debug mode logs the socket object.
            let conn = if this.native_transport && !debug && sockaddr::supported(this.kind.0) {
                Bound::new(py, AcceptedFd::new(fd))?.into_any()
            } else {
                this.wrap(py, fd)?
            };
            let peer = sockaddr::to_py(py, &addr)?;
            if debug {
                logger(py)?.call_method1(
                    intern!(py, "debug"),
                    (
                        "%r got a new connection from %r: %r",
                        &this.server,
                        &peer,
                        &conn,
                    ),
                )?;
            }
            let extra = PyDict::new(py);
            extra.set_item("peername", peer)?;
            let ready = slf.getattr(intern!(py, "_connection_ready"))?;
            // 3.15: the set-up runs in a copy of the server's context, which
            // then becomes the transport's (asyncio's `conn_context`).
            let conn_context = match &this.context {
                Some(c) => Some(c.bind(py).call_method0(intern!(py, "copy"))?),
                None => None,
            };
            let ctx_arg = conn_context
                .as_ref()
                .map_or_else(|| py.None(), |c| c.clone().unbind());
            LoopCore::call_soon(
                lp,
                ready,
                Args::from_iter([conn.unbind(), extra.into_any().unbind(), ctx_arg]),
                conn_context,
            )?;
        }
        Ok(())
    }

    /// asyncio's `_accept_connection2` without its task: the protocol and
    /// the transport for one accepted connection.
    fn _connection_ready(
        &self,
        py: Python<'_>,
        conn: Bound<'_, PyAny>,
        extra: Bound<'_, PyAny>,
        context: Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let lp = self.loop_.bind(py);
        let mut protocol = None;
        let made = self.protocol_factory.bind(py).call0().and_then(|p| {
            protocol = Some(p.clone());
            if self.native_transport {
                return self.make_transport(lp, &conn, p, &extra, &context);
            }
            let kwargs = PyDict::new(py);
            kwargs.set_item("extra", &extra)?;
            kwargs.set_item("server", &self.server)?;
            if !context.is_none() {
                kwargs.set_item("context", &context)?;
            }
            lp.call_method(
                intern!(py, "_make_socket_transport"),
                (&conn, p),
                Some(&kwargs),
            )
            .map(drop)
        });
        let err = match made {
            Ok(_) => return Ok(()),
            Err(e) if is_exit(py, &e) => return Err(e),
            Err(e) => e,
        };
        // The connection is unusable: close it now rather than at collection.
        conn.call_method0(intern!(py, "close"))?;
        if lp.get().is_debug() {
            let context = PyDict::new(py);
            context.set_item(
                "message",
                "Error on transport creation for incoming connection",
            )?;
            context.set_item("exception", err.into_value(py))?;
            // asyncio names the protocol only if it is not None.
            if let Some(p) = protocol.filter(|p| !p.is_none()) {
                context.set_item("protocol", p)?;
            }
            lp.call_method1(intern!(py, "call_exception_handler"), (context,))?;
        }
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        (
            &self.loop_,
            &self.sock,
            &self.protocol_factory,
            &self.server,
            &self.context,
            &self.watch,
        )
            .traverse(&visit)
    }

    /// Our registration's handle calls us back: dropping it breaks the cycle.
    fn __clear__(&self) {
        let handles = self.watch.take_unguarded();
        drop(handles);
    }
}
