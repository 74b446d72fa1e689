//! The fd a Python socket object holds, read without a method call.
//!
//! Transports check before every syscall that their socket object still
//! holds their fd (a socket closed behind the transport must fail with
//! `EBADF`, as asyncio's `sock.recv()` does, not reach whatever file reuses
//! the number). Calling `sock.fileno()` for that cost a Python method call
//! per `recv`/`send`. For the socket module's own objects (`_socket.socket`
//! and its subclasses, `socket.socket` included) the fd is the first field
//! after the object header (`PySocketSockObject.sock_fd` in
//! `Modules/socketmodule.h`), the very field `recv()` uses; it is read
//! directly once a probe at first use confirmed the layout. Anything else
//! (a wrapper, a mock) is asked through `fileno()`, as before.

use std::os::fd::RawFd;

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static RAW_SOCKET_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `sock_fd`, right after the object header (`SOCKET_T` is an `int` here).
const FD_OFFSET: usize = std::mem::size_of::<ffi::PyObject>();

/// The fd `sock` holds now (-1 once closed), as `sock.fileno()` answers.
pub fn socket_fd(sock: &Bound<'_, PyAny>) -> PyResult<i64> {
    match native_fd(sock) {
        Some(fd) => Ok(i64::from(fd)),
        None => sock.call_method0(intern!(sock.py(), "fileno"))?.extract(),
    }
}

/// The fd `sock` holds now (-1 once closed), if it is one of the socket
/// module's own objects, read without running any Python code; None for
/// anything else.
pub fn native_fd(sock: &Bound<'_, PyAny>) -> Option<RawFd> {
    let raw = probed_socket_type(sock.py())?;
    // SAFETY: a subtype check of a live object against a live type.
    (unsafe { ffi::PyObject_TypeCheck(sock.as_ptr(), raw.as_type_ptr()) } != 0)
        .then(|| read_fd(sock))
}

/// `_socket.socket`, the socket module's C type (imported once).
pub fn raw_socket_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    RAW_SOCKET_TYPE.import(py, "_socket", "socket")
}

/// `fd` if `sock` still holds it, else -1: a socket closed behind its
/// owner then fails its syscalls with EBADF (as `sock.recv()` would)
/// instead of reaching whatever file reuses the number.
pub fn still_holds(sock: &Bound<'_, PyAny>, fd: RawFd) -> PyResult<RawFd> {
    Ok(if socket_fd(sock)? == i64::from(fd) {
        fd
    } else {
        -1
    })
}

/// `_socket.socket`, if its layout passed the probe.
fn probed_socket_type(py: Python<'_>) -> Option<&Bound<'_, PyType>> {
    // A `PyOnceLock`, not a `OnceLock`: the probe releases the GIL (the
    // socket syscalls), and a thread blocked on a `OnceLock` while holding
    // the GIL would deadlock the prober.
    static OK: PyOnceLock<bool> = PyOnceLock::new();
    let raw = raw_socket_type(py).ok()?;
    OK.get_or_init(py, || probe(raw).unwrap_or(false))
        .then_some(raw)
}

fn read_fd(sock: &Bound<'_, PyAny>) -> libc::c_int {
    // SAFETY: callers checked that `sock` is an instance of `_socket.socket`
    // (whose C struct starts with the header, then `sock_fd`) and the probe
    // confirmed the offset; a plain read of a live object under the GIL.
    unsafe {
        *sock
            .as_ptr()
            .cast::<u8>()
            .add(FD_OFFSET)
            .cast::<libc::c_int>()
    }
}

/// A socket of our own: the field matches `fileno()` while open and after
/// `close()`.
fn probe(raw: &Bound<'_, PyType>) -> PyResult<bool> {
    let sock = raw.call1((libc::AF_UNIX, libc::SOCK_STREAM))?;
    let open: i64 = sock.call_method0("fileno")?.extract()?;
    let matches_open = open >= 0 && i64::from(read_fd(&sock)) == open;
    sock.call_method0("close")?;
    Ok(matches_open && read_fd(&sock) == -1)
}

/// Whether `sock_fd` is read directly here; for the tests.
#[pyfunction]
pub fn _reads_socket_fd_natively(py: Python<'_>) -> bool {
    probed_socket_type(py).is_some()
}
