//! Native `sock_recv`, `sock_recv_into` and `sock_sendall`.
//!
//! asyncio's versions (selector_events.py) try the syscall at once and, if
//! the socket is not ready, register a reader/writer callback that retries
//! until the future is done, plus a done-callback that unregisters it. These
//! do the same, with the syscalls, the retry callback and the clean-up in
//! Rust. The Python `Loop` wraps each in a coroutine (so `create_task`
//! accepts it) that awaits the returned future only when there is one.
//!
//! The socket object is asked for its fd again on every retry, as asyncio
//! calls `sock.recv()` every time: a socket closed while waiting reports
//! EBADF instead of reading from whatever reuses its fd number.

use std::os::fd::RawFd;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyMemoryView};
use pyo3::{intern, IntoPyObjectExt, PyTraverseError};

use crate::event_loop::LoopCore;
use crate::handle::Handle;
use crate::pyhelpers::is_exit;
use crate::reactor::Side;
use crate::sysio::{recv_bytes, syscall, BufferView, Io};
use crate::traverse::Traverse;

static SSL_SOCKET: PyOnceLock<Option<Py<PyAny>>> = PyOnceLock::new();

/// asyncio's checks shared by every sock_* method.
fn check_socket(loop_: &Bound<'_, LoopCore>, sock: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = loop_.py();
    let ssl_socket = SSL_SOCKET.get_or_init(py, || {
        py.import("ssl")
            .and_then(|m| m.getattr("SSLSocket"))
            .ok()
            .map(Bound::unbind)
    });
    if let Some(cls) = ssl_socket {
        if sock.is_instance(cls.bind(py))? {
            return Err(PyTypeError::new_err("Socket cannot be of type SSLSocket"));
        }
    }
    if loop_.get().is_debug() {
        let timeout = sock.call_method0(intern!(py, "gettimeout"))?;
        if !timeout.eq(0)? {
            return Err(PyValueError::new_err("the socket must be non-blocking"));
        }
    }
    Ok(())
}

fn sock_fd(sock: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    let fd = crate::socket_fd::socket_fd(sock)?;
    // A closed socket says -1: the syscall then fails with EBADF, as sock.recv does.
    Ok(RawFd::try_from(fd).unwrap_or(-1))
}

fn future_done(fut: &Bound<'_, PyAny>) -> PyResult<bool> {
    fut.call_method0(intern!(fut.py(), "done"))?.is_truthy()
}

/// Settle `fut` with the outcome of a retry, as asyncio's `_sock_*` helpers
/// do: KeyboardInterrupt/SystemExit propagate, other errors go to the future.
fn settle(fut: &Bound<'_, PyAny>, outcome: PyResult<Option<Bound<'_, PyAny>>>) -> PyResult<()> {
    let py = fut.py();
    match outcome {
        Ok(Some(value)) => fut
            .call_method1(intern!(py, "set_result"), (value,))
            .map(drop),
        Ok(None) => Ok(()),
        Err(err) if is_exit(py, &err) => Err(err),
        Err(err) => fut
            .call_method1(intern!(py, "set_exception"), (err.into_value(py),))
            .map(drop),
    }
}

/// Park `op` as the fd's reader or writer until `fut` is done, then
/// unregister it (asyncio's `_sock_read_done`/`_sock_write_done`).
fn wait_for_fd<'py>(
    loop_: &Bound<'py, LoopCore>,
    fd: RawFd,
    side: Side,
    op: impl IntoPyObject<'py>,
    sock: &Bound<'py, PyAny>,
    fut: &Bound<'py, PyAny>,
) -> PyResult<()> {
    let py = loop_.py();
    let op = op.into_bound_py_any(py)?;
    crate::transport_map::refuse_transport_fd(loop_.as_any(), fd.into(), || Ok(fd.to_string()))?;
    if fd < 0 {
        // What add_reader says of a closed socket's -1.
        return Err(PyValueError::new_err(format!(
            "Invalid file descriptor: {fd}"
        )));
    }
    let handle = LoopCore::add_sock_op(loop_, fd, side, op, sock)?;
    let done = FdDone {
        loop_: loop_.clone().unbind(),
        fd,
        side,
        handle,
    };
    fut.call_method1(intern!(py, "add_done_callback"), (done,))?;
    Ok(())
}

/// The done-callback that unregisters a finished operation's fd callback,
/// unless a newer operation already replaced (and so cancelled) it.
#[pyclass(frozen, module = "ferroloop._ferroloop")]
struct FdDone {
    loop_: Py<LoopCore>,
    fd: RawFd,
    side: Side,
    handle: Py<Handle>,
}

#[pymethods]
impl FdDone {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        (&self.loop_, &self.handle).traverse(&visit)
    }

    fn __call__(&self, py: Python<'_>, _fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if !self.handle.get().is_cancelled() {
            LoopCore::remove_fd(self.loop_.bind(py), self.fd, self.side)?;
        }
        Ok(())
    }
}

/// Reader callback of a pending `sock_recv`.
#[pyclass(frozen, module = "ferroloop._ferroloop")]
struct RecvOp {
    fut: Py<PyAny>,
    sock: Py<PyAny>,
    n: usize,
}

#[pymethods]
impl RecvOp {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        (&self.fut, &self.sock).traverse(&visit)
    }

    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let fut = self.fut.bind(py);
        if future_done(fut)? {
            return Ok(());
        }
        let outcome = sock_fd(self.sock.bind(py)).and_then(|fd| recv_bytes(py, fd, self.n));
        settle(
            fut,
            outcome.map(|io| match io {
                Io::Done(data) => Some(data.into_bound(py).into_any()),
                Io::WouldBlock => None,
            }),
        )
    }
}

/// Reader callback of a pending `sock_recv_into`.
#[pyclass(frozen, module = "ferroloop._ferroloop")]
struct RecvIntoOp {
    fut: Py<PyAny>,
    sock: Py<PyAny>,
    buf: Py<PyAny>,
}

/// `socket.recv_into(buf)`'s error for a buffer it cannot write into (a
/// read-only or non-contiguous one), message included.
pub fn recv_into_type_error(buf: &Bound<'_, PyAny>) -> PyErr {
    // CPython's argument errors name None itself, other objects by type.
    let kind = match buf.is_none() {
        true => "None".to_owned(),
        false => buf
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default(),
    };
    PyTypeError::new_err(format!(
        "recv_into() argument 1 must be read-write bytes-like object, not {kind}"
    ))
}

fn recv_into(
    py: Python<'_>,
    sock: &Bound<'_, PyAny>,
    buf: &Bound<'_, PyAny>,
) -> PyResult<Io<usize>> {
    let view = BufferView::new(buf, true).map_err(|_| recv_into_type_error(buf))?;
    let fd = sock_fd(sock)?;
    if view.len() == 0 {
        // Nothing to read into: 0 at once, as `socket.recv_into` answers
        // (the kernel would say EAGAIN on an idle TCP socket, a wait forever).
        return Ok(Io::Done(0));
    }
    // SAFETY: the writable export keeps `view.len()` bytes at `view.ptr()` alive.
    syscall(py, || unsafe {
        libc::recv(fd, view.ptr().cast(), view.len(), 0)
    })
}

#[pymethods]
impl RecvIntoOp {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        (&self.fut, &self.sock, &self.buf).traverse(&visit)
    }

    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let fut = self.fut.bind(py);
        if future_done(fut)? {
            return Ok(());
        }
        let outcome = recv_into(py, self.sock.bind(py), self.buf.bind(py));
        settle(
            fut,
            outcome.and_then(|io| match io {
                Io::Done(n) => Ok(Some(n.into_pyobject(py)?.into_any())),
                Io::WouldBlock => Ok(None),
            }),
        )
    }
}

/// Writer callback of a pending `sock_sendall`.
#[pyclass(frozen, module = "ferroloop._ferroloop")]
struct SendAllOp {
    fut: Py<PyAny>,
    sock: Py<PyAny>,
    data: BufferView,
    pos: std::sync::atomic::AtomicUsize,
}

fn send(py: Python<'_>, fd: RawFd, data: &BufferView, pos: usize) -> PyResult<Io<usize>> {
    // SAFETY: the export keeps `data.len()` bytes alive; `pos <= data.len()`.
    syscall(py, || unsafe {
        libc::send(
            fd,
            data.ptr().add(pos).cast(),
            data.len() - pos,
            libc::MSG_NOSIGNAL,
        )
    })
}

#[pymethods]
impl SendAllOp {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        (&self.fut, &self.sock).traverse(&visit)
    }

    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let fut = self.fut.bind(py);
        if future_done(fut)? {
            return Ok(());
        }
        let start = self.pos.load(Relaxed);
        let outcome = sock_fd(self.sock.bind(py)).and_then(|fd| send(py, fd, &self.data, start));
        let outcome = outcome.map(|io| match io {
            Io::Done(n) if start + n == self.data.len() => Some(py.None().into_bound(py)),
            Io::Done(n) => {
                self.pos.store(start + n, Relaxed);
                None
            }
            Io::WouldBlock => None,
        });
        settle(fut, outcome)
    }
}

/// `loop.sock_recv(sock, n)`: the data, or a future of it.
#[pyfunction]
pub fn sock_recv<'py>(
    loop_: &Bound<'py, LoopCore>,
    sock: &Bound<'py, PyAny>,
    n: isize,
) -> PyResult<Bound<'py, PyAny>> {
    let py = loop_.py();
    check_socket(loop_, sock)?;
    let n = usize::try_from(n).map_err(|_| PyValueError::new_err("negative buffersize in recv"))?;
    if n == 0 {
        // As `sock.recv(0)`: no syscall, which could wait for data.
        return Ok(PyBytes::new(py, b"").into_any());
    }
    let fd = sock_fd(sock)?;
    if let Io::Done(data) = recv_bytes(py, fd, n)? {
        return Ok(data.into_bound(py).into_any());
    }
    let fut = LoopCore::create_future(loop_)?;
    let op = RecvOp {
        fut: fut.clone().unbind(),
        sock: sock.clone().unbind(),
        n,
    };
    wait_for_fd(loop_, fd, Side::Read, op, sock, &fut)?;
    Ok(fut)
}

/// `loop.sock_recv_into(sock, buf)`: the byte count, or a future of it.
#[pyfunction]
pub fn sock_recv_into<'py>(
    loop_: &Bound<'py, LoopCore>,
    sock: &Bound<'py, PyAny>,
    buf: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = loop_.py();
    check_socket(loop_, sock)?;
    if let Io::Done(n) = recv_into(py, sock, buf)? {
        return Ok(n.into_pyobject(py)?.into_any());
    }
    let fd = sock_fd(sock)?;
    let fut = LoopCore::create_future(loop_)?;
    let op = RecvIntoOp {
        fut: fut.clone().unbind(),
        sock: sock.clone().unbind(),
        buf: buf.clone().unbind(),
    };
    wait_for_fd(loop_, fd, Side::Read, op, sock, &fut)?;
    Ok(fut)
}

/// `loop.sock_sendall(sock, data)`: None once all is sent, or a future.
#[pyfunction]
pub fn sock_sendall<'py>(
    loop_: &Bound<'py, LoopCore>,
    sock: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = loop_.py();
    check_socket(loop_, sock)?;
    let view = BufferView::new(data, false)?;
    let fd = sock_fd(sock)?;
    let sent = match send(py, fd, &view, 0)? {
        Io::Done(n) => n,
        Io::WouldBlock => 0,
    };
    if sent == view.len() {
        return Ok(py.None().into_bound(py));
    }
    // asyncio sends the rest from its own `memoryview(data)`: a caller's
    // memoryview stays theirs to release while the send waits.
    let view = match data.cast::<PyMemoryView>() {
        Ok(_) => BufferView::new(PyMemoryView::from(data)?.as_any(), false)?,
        Err(_) => view,
    };
    let fut = LoopCore::create_future(loop_)?;
    let op = SendAllOp {
        fut: fut.clone().unbind(),
        sock: sock.clone().unbind(),
        data: view,
        pos: std::sync::atomic::AtomicUsize::new(sent),
    };
    wait_for_fd(loop_, fd, Side::Write, op, sock, &fut)?;
    Ok(fut)
}
