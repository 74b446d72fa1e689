//! The reading half of `StreamTransportCore`: `data_received` (or the
//! `BufferedProtocol` calls) and EOF handling.

use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;

use super::StreamTransportCore;
use crate::pyhelpers::{is_exit, os_error};
use crate::reactor::Side;
use crate::sock_ops::recv_into_type_error;
use crate::sysio::{recv_bytes, BufferView, Io};
use crate::transports::constants::MAX_SIZE;

impl StreamTransportCore {
    /// A fatal error of the read path (KeyboardInterrupt and SystemExit
    /// escape).
    fn read_failed(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        if is_exit(slf.py(), &err) {
            return Err(err);
        }
        slf.get().fatal_error(slf.as_any(), err, message)
    }

    fn on_eof(slf: &Bound<'_, Self>, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        this.debug_log(py, "%r received EOF")?;
        let keep_open = match protocol.call_method0(intern!(py, "eof_received")) {
            Ok(v) => v,
            Err(e) => {
                return Self::read_failed(
                    slf,
                    e,
                    "Fatal error: protocol.eof_received() call failed.",
                )
            }
        };
        if keep_open.is_truthy()? {
            this.remove(py, Side::Read)
        } else {
            this.close(slf.as_any())
        }
    }

    /// The `BufferedProtocol` read: straight into the protocol's buffer.
    fn read_into_protocol_buffer(
        slf: &Bound<'_, Self>,
        protocol: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let buf = protocol
            .call_method1(intern!(py, "get_buffer"), (-1,))
            .and_then(|buf| {
                if buf.len()? == 0 {
                    return Err(PyRuntimeError::new_err(
                        "get_buffer() returned an empty buffer",
                    ));
                }
                Ok(buf)
            });
        let buf = match buf {
            Ok(b) => b,
            Err(e) => {
                return Self::read_failed(slf, e, "Fatal error: protocol.get_buffer() call failed.")
            }
        };
        let fd = this.live_fd(py)?;
        let got = BufferView::new(&buf, true)
            .map_err(|_| recv_into_type_error(&buf))
            .and_then(|view| {
                // SAFETY: the writable export keeps `view.len()` bytes alive.
                let n = unsafe { libc::recv(fd, view.ptr().cast(), view.len(), 0) };
                if n >= 0 {
                    return Ok(Io::Done(n as usize));
                }
                let err = std::io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(Io::WouldBlock),
                    _ => Err(os_error(err)),
                }
            });
        let n = match got {
            Ok(Io::Done(n)) => n,
            Ok(Io::WouldBlock) => return Ok(()),
            Err(e) => return Self::read_failed(slf, e, "Fatal read error on socket transport"),
        };
        if n == 0 {
            return Self::on_eof(slf, protocol);
        }
        match protocol.call_method1(intern!(py, "buffer_updated"), (n,)) {
            Ok(_) => Ok(()),
            Err(e) => Self::read_failed(
                slf,
                e,
                "Fatal error: protocol.buffer_updated() call failed.",
            ),
        }
    }
}

#[pymethods]
impl StreamTransportCore {
    /// The fd is readable: read once and hand the data to the protocol.
    fn _read_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let Some(protocol) = this.reading_protocol(py) else {
            return Ok(());
        };
        if this.st.borrow(py).buffered {
            return Self::read_into_protocol_buffer(slf, &protocol);
        }
        let data = match this.live_fd(py).and_then(|fd| recv_bytes(py, fd, MAX_SIZE)) {
            Ok(Io::Done(d)) => d.into_bound(py),
            Ok(Io::WouldBlock) => return Ok(()),
            Err(e) => return Self::read_failed(slf, e, "Fatal read error on socket transport"),
        };
        if data.as_bytes().is_empty() {
            return Self::on_eof(slf, &protocol);
        }
        match protocol.call_method1(intern!(py, "data_received"), (data,)) {
            Ok(_) => Ok(()),
            Err(e) => {
                Self::read_failed(slf, e, "Fatal error: protocol.data_received() call failed.")
            }
        }
    }
}
