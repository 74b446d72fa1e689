//! The datagram side of `SocketTransportCore`: asyncio's
//! `_SelectorDatagramTransport` (UDP and Unix datagram sockets).
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

use pyo3::exceptions::{
    PyBlockingIOError, PyInterruptedError, PyOSError, PyTypeError, PyValueError,
};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::{intern, PyTraverseError};

use super::SocketTransportCore;
use crate::compat;
use crate::reactor::Side;
use crate::sockaddr;
use crate::sysio::{recvfrom_bytes, BufferView, Io};
use crate::transports::{is_exit, logger};

/// asyncio's `max_size`: the largest datagram one read accepts.
const MAX_SIZE: usize = 256 * 1024;
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

pub(super) struct Datagram {
    /// The fixed remote address (`create_datagram_endpoint(remote_addr=)`).
    address: Option<Py<PyAny>>,
    /// The socket has a peer: `send` instead of `sendto`.
    connected: bool,
    /// The sender's address can be converted here (see `sockaddr`).
    native_read: bool,
    /// Datagrams waiting for writability, with their addresses.
    pub(super) queue: VecDeque<(Py<PyBytes>, Py<PyAny>)>,
    pub(super) size: usize,
}

impl Datagram {
    pub(super) fn new(
        py: Python<'_>,
        address: Option<Py<PyAny>>,
        connected: bool,
        family: i32,
    ) -> Box<Datagram> {
        Box::new(Datagram {
            address: address.filter(|a| !a.is_none(py)),
            connected,
            native_read: sockaddr::supported(family),
            queue: VecDeque::new(),
            size: 0,
        })
    }

    pub(super) fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(a) = &self.address {
            visit.call(a)?;
        }
        for (_, addr) in &self.queue {
            visit.call(addr)?;
        }
        Ok(())
    }
}

fn would_block(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PyBlockingIOError>(py) || err.is_instance_of::<PyInterruptedError>(py)
}

impl SocketTransportCore {
    fn datagram_state(&self, py: Python<'_>) -> (bool, bool, Option<Py<PyAny>>) {
        let st = self.st.borrow(py);
        match &st.datagram {
            Some(d) => (
                d.native_read,
                d.connected,
                d.address.as_ref().map(|a| a.clone_ref(py)),
            ),
            None => (false, false, None),
        }
    }

    fn sock_obj<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.st.borrow(py).sock.as_ref().map(|s| s.bind(py).clone())
    }

    /// One datagram (or nothing) for the protocol.
    pub(super) fn read_datagram(
        slf: &Bound<'_, Self>,
        protocol: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (native, _, _) = this.datagram_state(py);
        let got = if native {
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
            match this.sock_obj(py) {
                Some(sock) => sock
                    .call_method1(intern!(py, "recvfrom"), (MAX_SIZE,))
                    .and_then(|pair| Ok(Some((pair.get_item(0)?, pair.get_item(1)?)))),
                None => Ok(None),
            }
        };
        match got {
            Ok(Some((data, addr))) => protocol
                .call_method1(intern!(py, "datagram_received"), (data, addr))
                .map(drop),
            Ok(None) => Ok(()),
            Err(e) if would_block(py, &e) => Ok(()),
            Err(e) if e.is_instance_of::<PyOSError>(py) => protocol
                .call_method1(intern!(py, "error_received"), (e.into_value(py),))
                .map(drop),
            Err(e) if is_exit(py, &e) => Err(e),
            Err(e) => Self::fatal_error(slf, e, "Fatal read error on datagram transport"),
        }
    }

    /// One send through the socket object.
    fn send_one(
        &self,
        py: Python<'_>,
        connected: bool,
        data: &Bound<'_, PyAny>,
        addr: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let Some(sock) = self.sock_obj(py) else {
            return Ok(());
        };
        // No address and none fixed: to the peer, as `socket.send` does on a
        // connected socket (an unnamed Unix peer has an empty peername).
        if connected || addr.is_none() {
            sock.call_method1(intern!(py, "send"), (data,)).map(drop)
        } else {
            sock.call_method1(intern!(py, "sendto"), (data, addr))
                .map(drop)
        }
    }

    /// The socket is writable: send queued datagrams until it would block.
    pub(super) fn sendto_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (_, connected, _) = this.datagram_state(py);
        loop {
            let next = {
                let mut st = this.st.borrow_mut(py);
                let Some(d) = st.datagram.as_mut() else {
                    return Ok(());
                };
                let next = d.queue.pop_front();
                if let Some((data, _)) = &next {
                    d.size -= data.bind(py).as_bytes().len() + compat::DATAGRAM_HEADER_SIZE;
                }
                next
            };
            let Some((data, addr)) = next else {
                break;
            };
            match this.send_one(py, connected, data.bind(py).as_any(), addr.bind(py)) {
                Ok(()) => {}
                Err(e) if would_block(py, &e) => {
                    let mut st = this.st.borrow_mut(py);
                    if let Some(d) = st.datagram.as_mut() {
                        d.size += data.bind(py).as_bytes().len() + compat::DATAGRAM_HEADER_SIZE;
                        d.queue.push_front((data, addr));
                    }
                    break;
                }
                Err(e) if e.is_instance_of::<PyOSError>(py) => {
                    let protocol = this.protocol(py);
                    return protocol
                        .call_method1(intern!(py, "error_received"), (e.into_value(py),))
                        .map(drop);
                }
                Err(e) if is_exit(py, &e) => return Err(e),
                Err(e) => {
                    return Self::fatal_error(slf, e, "Fatal write error on datagram transport")
                }
            }
        }
        this.maybe_resume_protocol(py)?; // may queue more
        let (empty, closing) = {
            let st = this.st.borrow(py);
            (st.pending() == 0, st.closing)
        };
        if empty {
            this.remove(py, Side::Write)?;
            if closing {
                return Self::_call_connection_lost(slf, None);
            }
        }
        Ok(())
    }
}

#[pymethods]
impl SocketTransportCore {
    /// asyncio's `_address`: the fixed remote address, if any.
    #[getter]
    fn datagram_address(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.datagram_state(py).2
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
        if !super::is_bytes_like(data) {
            let kind = data.get_type().name()?;
            return Err(PyTypeError::new_err(format!(
                "data argument must be a bytes-like object, not {}",
                kind.repr()?
            )));
        }
        if data.len()? == 0 && !compat::DATAGRAM_SENDS_EMPTY {
            return Ok(());
        }
        let (_, connected, address) = this.datagram_state(py);
        let none = py.None().into_bound(py);
        let mut addr = addr.unwrap_or_else(|| none.clone());
        let fixed = match &address {
            Some(a) if a.bind(py).is_truthy()? => Some(a.bind(py).clone()),
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
        {
            let mut st = this.st.borrow_mut(py);
            if st.conn_lost > 0 && fixed.is_some() {
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
        }
        if this.st.borrow(py).pending() == 0 {
            match this.send_one(py, connected, data, &addr) {
                Ok(()) => return Ok(()),
                Err(e) if would_block(py, &e) => Self::register(slf, Side::Write)?,
                Err(e) if e.is_instance_of::<PyOSError>(py) => {
                    let protocol = this.protocol(py);
                    return protocol
                        .call_method1(intern!(py, "error_received"), (e.into_value(py),))
                        .map(drop);
                }
                Err(e) if is_exit(py, &e) => return Err(e),
                Err(e) => {
                    return Self::fatal_error(slf, e, "Fatal write error on datagram transport")
                }
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
            if let Some(d) = st.datagram.as_mut() {
                d.size += data.bind(py).as_bytes().len() + compat::DATAGRAM_HEADER_SIZE;
                d.queue.push_back((data, addr.unbind()));
            }
        }
        this.maybe_pause_protocol(py)
    }
}
