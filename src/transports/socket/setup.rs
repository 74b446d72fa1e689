//! A socket transport's Python object set up natively: what asyncio's
//! `_SelectorTransport.__init__` and `_SelectorSocketTransport.__init__`
//! do (the extra info, the fd, `loop._transports`, the server's count,
//! `TCP_NODELAY`, the start), in one call instead of a Python frame each.
//! `TcpTransport.__init__` is this call; a server's acceptor makes the
//! object without `__init__` and calls it directly.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use pyo3::exceptions::PyOSError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::sock_slot::{transport_socket_of, SockKind, SockSlot};
use super::StreamTransportCore;
use crate::compat;
use crate::event_loop::LoopCore;
use crate::sockaddr;
use crate::socket_fd::socket_fd;
use crate::sysio::getsockname;
use crate::transport_map::TransportMap;

/// `sock.<name>()`, or None if it fails with an `OSError` (asyncio's
/// `sockname`/`peername` for a socket that has none).
fn address_or_none<'py>(
    sock: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = sock.py();
    match sock.call_method0(name) {
        Ok(addr) => Ok(addr),
        Err(e) if e.is_instance_of::<PyOSError>(py) => Ok(py.None().into_bound(py)),
        Err(e) => Err(e),
    }
}

/// The transport's extra info lives in its `__dict__` (`_SocketTransport.
/// _extra` reads it there, adding the socket when a bare fd's transport is
/// first asked for it).
fn set_extra(dict: &Bound<'_, PyDict>, extra: &Bound<'_, PyAny>) -> PyResult<()> {
    dict.set_item(intern!(dict.py(), "_extra_info"), extra)
}

fn instance_dict<'py>(transport: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    Ok(transport
        .getattr(intern!(transport.py(), "__dict__"))?
        .cast_into::<PyDict>()?)
}

/// `_SelectorTransport.__init__`'s first half: the extra info (`socket`,
/// `sockname` and, unless given, `peername`) and `transport._sock_fd`.
/// Returns the fd and the instance's `__dict__`.
pub(super) fn attach_socket<'py>(
    transport: &Bound<'py, PyAny>,
    sock: &Bound<'py, PyAny>,
    extra: Option<Bound<'py, PyAny>>,
) -> PyResult<(RawFd, Bound<'py, PyDict>)> {
    let py = transport.py();
    let extra = match extra.filter(|e| !e.is_none()) {
        Some(e) => e,
        None => PyDict::new(py).into_any(),
    };
    let dict = instance_dict(transport)?;
    set_extra(&dict, &extra)?;
    extra.set_item(intern!(py, "socket"), transport_socket_of(sock)?)?;
    let sockname = address_or_none(sock, intern!(py, "getsockname"))?;
    extra.set_item(intern!(py, "sockname"), sockname)?;
    if !extra.contains(intern!(py, "peername"))? {
        let peername = address_or_none(sock, intern!(py, "getpeername"))?;
        extra.set_item(intern!(py, "peername"), peername)?;
    }
    let fd = RawFd::try_from(socket_fd(sock)?)
        .map_err(|_| PyOSError::new_err("socket file descriptor out of range"))?;
    dict.set_item(intern!(py, "_sock_fd"), fd)?;
    Ok((fd, dict))
}

/// `attach_socket` for `UdpTransport.__init__`: the fd.
#[pyfunction]
#[pyo3(name = "attach_socket", signature = (transport, sock, extra=None))]
pub fn py_attach_socket<'py>(
    transport: &Bound<'py, PyAny>,
    sock: &Bound<'py, PyAny>,
    extra: Option<Bound<'py, PyAny>>,
) -> PyResult<RawFd> {
    attach_socket(transport, sock, extra).map(|(fd, _)| fd)
}

/// `loop._transports[fd] = transport`, as asyncio records it (so
/// `add_reader(fd)` and the `sock_*` methods refuse the transport's fd).
pub(super) fn record_transport(
    loop_: &Bound<'_, PyAny>,
    fd: RawFd,
    transport: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let map = loop_.getattr(intern!(loop_.py(), "_transports"))?;
    match map.cast::<TransportMap>() {
        Ok(map) => map.get().record(fd, transport),
        Err(_) => map.set_item(fd, transport),
    }
}

/// What both set-ups do once the extra info is in place: the core,
/// `loop._transports`, `server._attach`, `TCP_NODELAY`, the start.
#[allow(clippy::too_many_arguments)]
fn finish_stream<'py>(
    transport: &Bound<'py, PyAny>,
    dict: &Bound<'py, PyDict>,
    loop_: &Bound<'py, LoopCore>,
    sock: SockSlot,
    fd: RawFd,
    protocol: Bound<'py, PyAny>,
    waiter: Option<Bound<'py, PyAny>>,
    server: Option<Bound<'py, PyAny>>,
    context: Option<Py<PyAny>>,
) -> PyResult<()> {
    let py = transport.py();
    let server = server.filter(|s| !s.is_none());
    let core = Bound::new(
        py,
        StreamTransportCore::new(
            loop_.clone().unbind(),
            sock,
            fd,
            protocol,
            transport.clone().unbind(),
            server.as_ref().map(|s| s.clone().unbind()),
            context,
        )?,
    )?;
    dict.set_item(intern!(py, "_core"), &core)?;
    record_transport(loop_.as_any(), fd, transport)?;
    if let Some(server) = &server {
        if compat::SERVER_DETACH_TAKES_TRANSPORT {
            server.call_method1(intern!(py, "_attach"), (transport,))?;
        } else {
            server.call_method0(intern!(py, "_attach"))?;
        }
    }
    let this = core.get();
    this._set_nodelay(py)?;
    this.0.start(core.as_any(), waiter)
}

/// `TcpTransport.__init__`: asyncio's `_SelectorSocketTransport.__init__`
/// over a `StreamTransportCore`.
#[pyfunction]
#[pyo3(signature = (transport, loop_, sock, protocol, waiter=None, extra=None, server=None, context=None))]
#[allow(clippy::too_many_arguments)] // asyncio's own signature
pub fn init_stream_transport<'py>(
    transport: &Bound<'py, PyAny>,
    loop_: &Bound<'py, LoopCore>,
    sock: &Bound<'py, PyAny>,
    protocol: Bound<'py, PyAny>,
    waiter: Option<Bound<'py, PyAny>>,
    extra: Option<Bound<'py, PyAny>>,
    server: Option<Bound<'py, PyAny>>,
    context: Option<Py<PyAny>>,
) -> PyResult<()> {
    let (fd, dict) = attach_socket(transport, sock, extra)?;
    let slot = SockSlot::Object(sock.clone().unbind());
    finish_stream(
        transport, &dict, loop_, slot, fd, protocol, waiter, server, context,
    )
}

/// An accepted connection's transport over its bare fd (see `SockSlot`):
/// the extra info asyncio gives it (`peername` from the accept,
/// `sockname` asked natively; `socket` on request), then as
/// `init_stream_transport`.
#[allow(clippy::too_many_arguments)]
pub fn init_accepted_stream<'py>(
    transport: &Bound<'py, PyAny>,
    loop_: &Bound<'py, LoopCore>,
    fd: OwnedFd,
    kind: SockKind,
    accepted_at: u64,
    extra: &Bound<'py, PyAny>,
    protocol: Bound<'py, PyAny>,
    server: Option<Bound<'py, PyAny>>,
    context: Option<Py<PyAny>>,
) -> PyResult<()> {
    let py = transport.py();
    let raw = fd.as_raw_fd();
    let dict = instance_dict(transport)?;
    set_extra(&dict, extra)?;
    let sockname = match getsockname(raw) {
        Ok(addr) => sockaddr::to_py(py, &addr)?,
        Err(_) => py.None(),
    };
    extra.set_item(intern!(py, "sockname"), sockname)?;
    dict.set_item(intern!(py, "_sock_fd"), raw)?;
    let slot = SockSlot::Fd(fd, kind, accepted_at);
    finish_stream(
        transport, &dict, loop_, slot, raw, protocol, None, server, context,
    )
}
