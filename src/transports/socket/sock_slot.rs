//! `SockSlot`: the socket a socket transport reads and writes through.
//!
//! A transport made from a socket object holds that object. A connection
//! a plain server accepted starts as its bare fd instead: asyncio wraps it
//! in a `socket.socket` at once (a Python `__init__`, plus the
//! `getsockname` the socket module makes to check the fd) and closes it
//! through two more Python frames, though a short connection never asks
//! for it. Here the object is made on the first request
//! (`transport._sock`, `get_extra_info('socket')`), over the same fd, and
//! holds the fd from then on.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::traverse::{Traverse, TraverseResult};

static SOCKET_CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TRANSPORT_SOCKET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A socket's family, type and proto, as `socket.socket` records them.
pub type SockKind = (i32, i32, i32);

/// `fork()`s this process has made (counted by a `pthread_atfork` hook).
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn note_fork() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// Count forks from now on (once per process): a bare fd accepted before a
/// fork may be shared with the child, and is then no longer ours alone.
pub fn count_forks() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: the handler only bumps an atomic (async-signal-safe), and
        // it stays valid for the life of the process (a static function).
        unsafe { libc::pthread_atfork(Some(note_fork), None, None) };
    });
}

/// The fork count to compare with later (`SockSlot::sole_fd`).
pub fn fork_count() -> u64 {
    FORKS.load(Ordering::Relaxed)
}

pub enum SockSlot {
    /// The socket object, given or made on request.
    Object(Py<PyAny>),
    /// An accepted connection's fd, ours until a socket object is asked
    /// for; closed with the transport otherwise. With the fork count at
    /// the accept.
    Fd(OwnedFd, SockKind, u64),
    /// Closed: the kind is kept when no socket object was ever made (see
    /// `closed_socket`).
    Gone(Option<SockKind>),
}

impl Traverse for SockSlot {
    fn traverse(&self, visit: &pyo3::gc::PyVisit<'_>) -> TraverseResult {
        match self {
            SockSlot::Object(o) => o.traverse(visit),
            _ => Ok(()),
        }
    }
}

/// A non-blocking `socket.socket` of `kind` over `fd` (which stays the
/// caller's until this succeeds).
pub fn socket_object<'py>(
    py: Python<'py>,
    fd: RawFd,
    kind: SockKind,
) -> PyResult<Bound<'py, PyAny>> {
    let cls = SOCKET_CLASS.import(py, "socket", "socket")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item(intern!(py, "fileno"), fd)?;
    let (family, kind, proto) = kind;
    // `SOCK_NONBLOCK` in the type: the socket module sets a zero timeout
    // without a syscall and records the plain type, as `setblocking(False)`
    // leaves it (the fd is already non-blocking: `accept4(SOCK_NONBLOCK)`).
    cls.call((family, kind | libc::SOCK_NONBLOCK, proto), Some(&kwargs))
}

/// A closed `socket.socket` of `kind`: what asyncio's `get_extra_info
/// ('socket')` wraps once the transport closed its socket. Made only for a
/// transport that closed before anyone asked for its socket.
pub fn closed_socket<'py>(py: Python<'py>, kind: SockKind) -> PyResult<Bound<'py, PyAny>> {
    let cls = SOCKET_CLASS.import(py, "socket", "socket")?;
    let (family, kind, proto) = kind;
    let sock = cls.call1((family, kind, proto))?;
    sock.call_method0(intern!(py, "close"))?;
    Ok(sock)
}

/// `asyncio.trsock.TransportSocket(sock)`: what `get_extra_info('socket')`
/// gives.
pub fn transport_socket_of<'py>(sock: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = sock.py();
    TRANSPORT_SOCKET
        .import(py, "asyncio.trsock", "TransportSocket")?
        .call1((sock,))
}

impl SockSlot {
    /// The fd for a syscall when no object holds it: ours, or -1 once
    /// closed (an object's is asked through `still_holds`).
    pub fn bare_fd(&self) -> RawFd {
        match self {
            SockSlot::Fd(owned, ..) => owned.as_raw_fd(),
            _ => -1,
        }
    }

    /// The kind, when it was given rather than read from an object.
    pub fn known_kind(&self) -> Option<SockKind> {
        match self {
            SockSlot::Fd(_, kind, _) | SockSlot::Gone(Some(kind)) => Some(*kind),
            _ => None,
        }
    }

    /// The bare fd, if no other file descriptor can refer to its socket:
    /// no object was made (so no `dup`), and the process has not forked
    /// since the accept (a child would share it).
    pub fn sole_fd(&self) -> Option<RawFd> {
        match self {
            SockSlot::Fd(owned, _, forks) if *forks == fork_count() => Some(owned.as_raw_fd()),
            _ => None,
        }
    }

    pub fn is_open(&self) -> bool {
        !matches!(self, SockSlot::Gone(_))
    }

    /// Leave the slot closed; what it held is returned, for the caller to
    /// close or drop once its borrows end.
    pub fn take(&mut self) -> SockSlot {
        let closed = SockSlot::Gone(self.known_kind());
        std::mem::replace(self, closed)
    }

    /// Wrap our fd in a socket object, which takes it over; the slot must
    /// be `Fd` (anything else is returned as is). On failure the fd stays
    /// ours.
    pub fn into_object(self, py: Python<'_>) -> (SockSlot, PyResult<()>) {
        let SockSlot::Fd(owned, kind, forks) = self else {
            return (self, Ok(()));
        };
        match socket_object(py, owned.as_raw_fd(), kind) {
            Ok(obj) => {
                // The object owns the fd now and closes it.
                let _ = owned.into_raw_fd();
                (SockSlot::Object(obj.unbind()), Ok(()))
            }
            Err(e) => (SockSlot::Fd(owned, kind, forks), Err(e)),
        }
    }
}
