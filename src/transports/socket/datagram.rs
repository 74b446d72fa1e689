//! `DatagramTransportCore`: the engine of `ferroloop.transports.UdpTransport`,
//! asyncio's `_SelectorDatagramTransport` (UDP and Unix datagram sockets).
//!
//! Reads are `recvfrom` into the page-aligned buffer with the sender's
//! address converted as the socket module does (AF_INET, AF_INET6,
//! AF_UNIX; other families go through the socket object's `recvfrom`).
//! `sendto` tries the socket at once and queues `(bytes, addr)` pairs only
//! when it would block; sends go through the socket object, which parses
//! (and, for names, resolves) addresses exactly as asyncio's do.
//! `OSError`s of a read or a send go to `protocol.error_received()`; other
//! errors are fatal, with asyncio's messages.

use std::collections::VecDeque;
use std::os::fd::RawFd;

use pyo3::exceptions::{
    PyBlockingIOError, PyInterruptedError, PyOSError, PyTypeError, PyValueError,
};
use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::base::{Kind, SocketCore};
use super::sock_slot::SockSlot;
use crate::compat;
use crate::event_loop::LoopCore;
use crate::pyhelpers::{is_bytes_like, is_exit};
use crate::reactor::Side;
use crate::sockaddr;
use crate::sysio::{recvfrom_bytes, BufferView, Io};
use crate::transports::constants::MAX_SIZE;
use crate::traverse::{Traverse, TraverseResult};

/// What only a datagram transport holds.
#[derive(Default)]
pub struct Datagram {
    /// The fixed remote address (`create_datagram_endpoint(remote_addr=)`).
    address: Option<Py<PyAny>>,
    /// The socket has a peer: `send` instead of `sendto`.
    connected: bool,
    /// The sender's address can be converted here (see `sockaddr`).
    native_read: bool,
    /// Datagrams waiting for writability, with their addresses.
    queue: VecDeque<(Py<PyBytes>, Py<PyAny>)>,
    /// Their size, as asyncio counts it (`compat::DATAGRAM_HEADER_SIZE`).
    size: usize,
}

impl Kind for Datagram {
    type Pending = VecDeque<(Py<PyBytes>, Py<PyAny>)>;

    fn pending(&self) -> usize {
        self.size
    }

    fn take_pending(&mut self) -> Self::Pending {
        self.size = 0;
        std::mem::take(&mut self.queue)
    }
}

/// The queued datagrams are bytes, which hold no references.
impl Traverse for Datagram {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        self.address.traverse(visit)?;
        self.queue.iter().try_for_each(|(_, a)| a.traverse(visit))
    }
}

/// The queue's count of a datagram.
fn queued_size(data: &Bound<'_, PyBytes>) -> usize {
    data.as_bytes().len() + compat::DATAGRAM_HEADER_SIZE
}

#[pyclass(frozen, module = "ferroloop._ferroloop")]
pub struct DatagramTransportCore(pub(in crate::transports::socket) SocketCore<Datagram>);

fn would_block(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PyBlockingIOError>(py) || err.is_instance_of::<PyInterruptedError>(py)
}

impl DatagramTransportCore {
    /// A failed read or send (other than "would block"): an `OSError` goes
    /// to the protocol's `error_received()`, others are fatal.
    fn failed(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if err.is_instance_of::<PyOSError>(py) {
            return this
                .protocol(py)
                .call_method1(intern!(py, "error_received"), (err.into_value(py),))
                .map(drop);
        }
        if is_exit(py, &err) {
            return Err(err);
        }
        this.fatal_error(slf.as_any(), err, message)
    }

    /// One send through the socket object.
    fn send_one(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        addr: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let Some(sock) = self.sock(py)? else {
            return Ok(());
        };
        // A socket with a peer sends to it, as asyncio does when its
        // peername is set. Unlike asyncio, an unnamed Unix peer (peername
        // `''`, a `socketpair`) counts: asyncio's `sendto(data, None)` fails.
        // Without a peer, `sendto(data, None)` fails as asyncio's does.
        if self.st.borrow(py).kind.connected {
            sock.call_method1(intern!(py, "send"), (data,)).map(drop)
        } else {
            sock.call_method1(intern!(py, "sendto"), (data, addr))
                .map(drop)
        }
    }
}

#[pymethods]
impl DatagramTransportCore {
    /// `address`: the remote address given to `create_datagram_endpoint`
    /// (`sendto` may only use it); `connected`: the socket has a peer, so
    /// `send` is used.
    #[new]
    fn new(
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
        let datagram = Datagram {
            address: address.filter(|a| !a.is_none(py)),
            connected,
            native_read: sockaddr::supported(family),
            ..Datagram::default()
        };
        SocketCore::new(
            loop_,
            SockSlot::Object(sock.unbind()),
            fd,
            protocol,
            owner,
            None,
            datagram,
        )
        .map(DatagramTransportCore)
    }

    /// asyncio's `_address`: the fixed remote address, if any.
    #[getter]
    fn address(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        let st = self.st.borrow(py);
        st.kind.address.as_ref().map(|a| a.clone_ref(py))
    }

    /// The fd is readable: one datagram (or nothing) for the protocol.
    fn _read_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let Some(protocol) = this.reading_protocol(py) else {
            return Ok(());
        };
        let got = if this.st.borrow(py).kind.native_read {
            this.live_fd(py)
                .and_then(|fd| recvfrom_bytes(py, fd, MAX_SIZE))
                .and_then(|io| match io {
                    Io::Done((data, addr)) => Ok(Some((
                        data.into_bound(py).into_any(),
                        sockaddr::to_py(py, &addr)?.into_bound(py),
                    ))),
                    Io::WouldBlock => Ok(None),
                })
        } else {
            match this.sock(py) {
                Ok(Some(sock)) => sock
                    .call_method1(intern!(py, "recvfrom"), (MAX_SIZE,))
                    .and_then(|pair| Ok(Some((pair.get_item(0)?, pair.get_item(1)?)))),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        };
        match got {
            Ok(Some((data, addr))) => protocol
                .call_method1(intern!(py, "datagram_received"), (data, addr))
                .map(drop),
            Ok(None) => Ok(()),
            Err(e) if would_block(py, &e) => Ok(()),
            Err(e) => Self::failed(slf, e, "Fatal read error on datagram transport"),
        }
    }

    /// The socket is writable: send queued datagrams until it would block.
    fn _write_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        loop {
            let next = {
                let mut st = this.st.borrow_mut(py);
                let next = st.kind.queue.pop_front();
                if let Some((data, _)) = &next {
                    st.kind.size -= queued_size(data.bind(py));
                }
                next
            };
            let Some((data, addr)) = next else {
                break;
            };
            match this.send_one(py, data.bind(py).as_any(), addr.bind(py)) {
                Ok(()) => {}
                Err(e) if would_block(py, &e) => {
                    let mut st = this.st.borrow_mut(py);
                    st.kind.size += queued_size(data.bind(py));
                    st.kind.queue.push_front((data, addr));
                    break;
                }
                Err(e) => return Self::failed(slf, e, "Fatal write error on datagram transport"),
            }
        }
        this.maybe_resume_protocol(py)?; // may queue more
        let (empty, closing) = {
            let st = this.st.borrow(py);
            (st.kind.pending() == 0, st.closing)
        };
        if empty {
            this.remove(py, Side::Write)?;
            if closing {
                return Self::_call_connection_lost(slf, None);
            }
        }
        Ok(())
    }

    /// `DatagramTransport.sendto(data, addr=None)`.
    #[pyo3(signature = (data, addr=None))]
    fn sendto(
        slf: &Bound<'_, Self>,
        data: &Bound<'_, PyAny>,
        addr: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !is_bytes_like(data) {
            let kind = data.get_type().name()?;
            return Err(PyTypeError::new_err(format!(
                "data argument must be a bytes-like object, not {}",
                kind.repr()?
            )));
        }
        if data.len()? == 0 && !compat::DATAGRAM_SENDS_EMPTY {
            return Ok(());
        }
        let none = py.None().into_bound(py);
        let mut addr = addr.unwrap_or_else(|| none.clone());
        let fixed = match this.address(py) {
            Some(a) if a.bind(py).is_truthy()? => Some(a.into_bound(py)),
            _ => None,
        };
        if let Some(fixed) = &fixed {
            if !addr.is_none() && !addr.eq(fixed)? {
                return Err(PyValueError::new_err(format!(
                    "Invalid address: must be None or {}",
                    fixed.str()?
                )));
            }
            addr = fixed.clone();
        }
        if fixed.is_some() && this.note_lost_write(py)? {
            return Ok(());
        }
        if this.st.borrow(py).kind.pending() == 0 {
            match this.send_one(py, data, &addr) {
                Ok(()) => return Ok(()),
                Err(e) if would_block(py, &e) => this.register(slf.as_any(), Side::Write)?,
                Err(e) => return Self::failed(slf, e, "Fatal write error on datagram transport"),
            }
        }
        // What is queued must not change: bytes as they are, others copied.
        // (A bytes subclass is copied too: its `__del__` must not run while
        // the queue is borrowed.)
        let data: Py<PyBytes> = match data.cast_exact::<PyBytes>() {
            Ok(b) => b.clone().unbind(),
            Err(_) => {
                let view = BufferView::new(data, false)?;
                // SAFETY: the export keeps `view.len()` bytes alive while `view` lives.
                PyBytes::new(py, unsafe {
                    std::slice::from_raw_parts(view.ptr(), view.len())
                })
                .unbind()
            }
        };
        {
            let mut st = this.st.borrow_mut(py);
            st.kind.size += queued_size(data.bind(py));
            st.kind.queue.push_back((data, addr.unbind()));
        }
        this.maybe_pause_protocol(py)
    }

    /// The end: tell the protocol, close the socket, drop every reference.
    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        slf.get().connection_lost(slf.py(), exc, |_| Ok(()))
    }
}
