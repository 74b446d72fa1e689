//! `StreamTransportCore`: the engine of `ferroloop.transports.TcpTransport`,
//! asyncio's `_SelectorSocketTransport` (TCP and Unix stream sockets).
//!
//! Every rule is asyncio's: `connection_made` is scheduled first, reading
//! starts one callback later (so `pause_reading()` in `connection_made`
//! holds), `eof_received()`'s result decides between half-close and close,
//! `write()` sends before the writing callback returns (`batch`) and
//! buffers only what the kernel refuses, flushed with one `sendmsg` per
//! writability event; `pause_writing`/`resume_writing` follow the
//! watermarks; `close()` flushes, `abort()` does not.
//!
//! - `read`: `data_received` (or the `BufferedProtocol` calls) and EOF.
//! - `write`: `write`, `writelines`, `write_eof`, the sendfile waiter.
//! - `batch`: one callback's writes to an idle transport, in one `sendmsg`.

use std::os::fd::RawFd;

use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::base::{Kind, SocketCore};
use super::sock_slot::SockSlot;
use crate::compat;
use crate::event_loop::LoopCore;
use crate::pyhelpers::os_error;
use crate::socket_fd::raw_socket_type;
use crate::transports::write_buffer::WriteBuffer;
use crate::traverse::{Traverse, TraverseResult};

mod batch;
mod read;
mod write;

static ASYNCIO_SET_NODELAY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `_socket.socket.<name>.__get__(sock)`: the attribute as the C type has
/// it (an int), past `socket.socket`'s enum-converting property.
fn raw_socket_attr(py: Python<'_>, sock: &Bound<'_, PyAny>, name: &str) -> PyResult<i32> {
    let base = raw_socket_type(py)?;
    base.getattr(name)?
        .call_method1(intern!(py, "__get__"), (sock, base))?
        .extract()
}

fn set_nodelay(fd: RawFd) -> PyResult<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a valid c_int for the call's duration; a bad fd is
    // reported through errno.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(os_error(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// asyncio's `_set_nodelay` test: a TCP stream socket.
fn is_tcp(family: i32, kind: i32, proto: i32) -> bool {
    matches!(family, libc::AF_INET | libc::AF_INET6)
        && kind == libc::SOCK_STREAM
        && proto == libc::IPPROTO_TCP
}

pub use batch::flush_batched;

/// What only a stream transport holds.
#[derive(Default)]
pub struct Stream {
    /// The server that accepted the connection, told when it ends.
    server: Option<Py<PyAny>>,
    /// `sendfile`'s wait for the buffer to drain.
    empty_waiter: Option<Py<PyAny>>,
    buffer: WriteBuffer,
    /// `buffer` holds only the running callback's batched writes (see
    /// `batch`): as good as sent, so not counted as pending.
    batched: bool,
    /// `write_eof()` was called.
    eof: bool,
}

impl Kind for Stream {
    type Pending = WriteBuffer;

    fn pending(&self) -> usize {
        if self.batched {
            0
        } else {
            self.buffer.len()
        }
    }

    fn take_pending(&mut self) -> WriteBuffer {
        self.batched = false;
        std::mem::take(&mut self.buffer)
    }

    fn flush_batch(core: &SocketCore<Self>, slf: &Bound<'_, PyAny>) -> PyResult<()> {
        core.send_batch(slf)
    }
}

/// The buffered chunks are bytes, which hold no references.
impl Traverse for Stream {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        (&self.server, &self.empty_waiter).traverse(visit)
    }
}

#[pyclass(frozen, module = "ferroloop._ferroloop")]
pub struct StreamTransportCore(pub(in crate::transports::socket) SocketCore<Stream>);

impl StreamTransportCore {
    /// A core over `sock` (a socket object or an accepted bare fd), made
    /// by `setup`; `server`: the server that accepted the connection (if
    /// any); `context`: the context every callback runs in (3.15).
    pub(in crate::transports::socket) fn new(
        loop_: Py<LoopCore>,
        sock: SockSlot,
        fd: RawFd,
        protocol: Bound<'_, PyAny>,
        owner: Py<PyAny>,
        server: Option<Py<PyAny>>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let py = protocol.py();
        let stream = Stream {
            server: server.filter(|s| !s.is_none(py)),
            ..Stream::default()
        };
        SocketCore::new(loop_, sock, fd, protocol, owner, context, stream).map(StreamTransportCore)
    }
}

#[pymethods]
impl StreamTransportCore {
    /// asyncio's `base_events._set_nodelay(sock)`: `TCP_NODELAY` on when
    /// the socket object says it is TCP (family `AF_INET`/`AF_INET6`, type
    /// `SOCK_STREAM`, proto `IPPROTO_TCP`, as it recorded them: an accepted
    /// socket has its listener's proto, so a listener made with proto 0
    /// gives sockets asyncio leaves alone). The `socket` module's own
    /// `family`/`type` getters are read, without the enum conversion of
    /// `socket.socket`'s properties, which cost more than the syscall.
    /// Anything else (a mock in a test, a wrapper) gets asyncio's function.
    pub(in crate::transports::socket) fn _set_nodelay(&self, py: Python<'_>) -> PyResult<()> {
        let known = self.st.borrow(py).sock.known_kind();
        if let Some((family, kind, proto)) = known {
            // An accepted fd: the kind its listener has (nothing to set
            // once it is closed, as for a closed socket object below).
            let fd = self.live_fd(py)?;
            if fd >= 0 && is_tcp(family, kind, proto) {
                return set_nodelay(fd);
            }
            return Ok(());
        }
        let Some(sock) = self.sock(py)? else {
            return Ok(());
        };
        // The object's own type, not `__class__` (which a mock can fake).
        let raw_type = raw_socket_type(py)?;
        if !sock.get_type().is_subclass(raw_type)? {
            let set_nodelay =
                ASYNCIO_SET_NODELAY.import(py, "asyncio.base_events", "_set_nodelay")?;
            return set_nodelay.call1((sock,)).map(drop);
        }
        let proto: i64 = sock.getattr(intern!(py, "proto"))?.extract()?;
        if proto != i64::from(libc::IPPROTO_TCP) {
            return Ok(());
        }
        let family: i32 = raw_socket_attr(py, &sock, "family")?;
        let kind: i32 = raw_socket_attr(py, &sock, "type")?;
        if !is_tcp(family, kind, libc::IPPROTO_TCP) {
            return Ok(());
        }
        set_nodelay(self.live_fd(py)?)
    }

    #[getter]
    fn eof(&self, py: Python<'_>) -> bool {
        self.st.borrow(py).kind.eof
    }

    #[getter]
    fn empty_waiter(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        let st = self.st.borrow(py);
        st.kind.empty_waiter.as_ref().map(|s| s.clone_ref(py))
    }

    /// The end: tell the protocol, close the socket, detach from the
    /// server, drop every reference; a pending `sendfile` learns of it.
    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (server, waiter) = {
            let mut st = this.st.borrow_mut(py);
            let waiter = st.kind.empty_waiter.as_ref().map(|w| w.clone_ref(py));
            (st.kind.server.take(), waiter)
        };
        this.connection_lost(py, exc, |owner| match (&server, owner) {
            (Some(s), Some(o)) if compat::SERVER_DETACH_TAKES_TRANSPORT => s
                .bind(py)
                .call_method1(intern!(py, "_detach"), (o,))
                .map(drop),
            (Some(s), _) => s.bind(py).call_method0(intern!(py, "_detach")).map(drop),
            _ => Ok(()),
        })?;
        drop(server);
        if let Some(w) = waiter {
            let err = pyo3::exceptions::PyConnectionError::new_err("Connection is closed by peer");
            w.bind(py)
                .call_method1(intern!(py, "set_exception"), (err.into_value(py),))?;
        }
        Ok(())
    }
}
