//! The reading half of `SocketTransportCore`: `data_received` (or the
//! `BufferedProtocol` calls), EOF handling and pause/resume of reading.

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;

use super::SocketTransportCore;
use crate::reactor::{os_error, Side};
use crate::sysio::{recv_bytes, BufferView, Io};
use crate::transports::{is_exit, log_debug};

/// asyncio's `max_size`: the most one read asks for.
const MAX_SIZE: usize = 256 * 1024;

impl SocketTransportCore {
    fn on_eof(slf: &Bound<'_, Self>, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if let Some(lp) = this.loop_(py) {
            if lp.get().is_debug() {
                log_debug(py, "%r received EOF", &this.owner(py))?;
            }
        }
        let keep_open = match protocol.call_method0(intern!(py, "eof_received")) {
            Ok(v) => v,
            Err(e) if is_exit(py, &e) => return Err(e),
            Err(e) => {
                return Self::fatal_error(
                    slf,
                    e,
                    "Fatal error: protocol.eof_received() call failed.",
                )
            }
        };
        if keep_open.is_truthy()? {
            this.remove(py, Side::Read)
        } else {
            Self::close(slf)
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
            Err(e) if is_exit(py, &e) => return Err(e),
            Err(e) => {
                return Self::fatal_error(slf, e, "Fatal error: protocol.get_buffer() call failed.")
            }
        };
        let fd = this.live_fd(py)?;
        let got = BufferView::new(&buf, true)
            .map_err(|_| {
                PyTypeError::new_err(
                    "recv_into() argument 'buffer' must be read-write bytes-like object",
                )
            })
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
            Err(e) if is_exit(py, &e) => return Err(e),
            Err(e) => return Self::fatal_error(slf, e, "Fatal read error on socket transport"),
        };
        if n == 0 {
            return Self::on_eof(slf, protocol);
        }
        match protocol.call_method1(intern!(py, "buffer_updated"), (n,)) {
            Ok(_) => Ok(()),
            Err(e) if is_exit(py, &e) => Err(e),
            Err(e) => Self::fatal_error(
                slf,
                e,
                "Fatal error: protocol.buffer_updated() call failed.",
            ),
        }
    }
}

#[pymethods]
impl SocketTransportCore {
    fn is_reading(&self, py: Python<'_>) -> bool {
        self.is_reading_now(py)
    }

    fn pause_reading(&self, py: Python<'_>) -> PyResult<()> {
        {
            let mut st = self.st.borrow_mut(py);
            if st.paused || st.closing {
                return Ok(());
            }
            st.paused = true;
        }
        self.remove(py, Side::Read)?;
        if let Some(lp) = self.loop_(py) {
            if lp.get().is_debug() {
                log_debug(py, "%r pauses reading", &self.owner(py))?;
            }
        }
        Ok(())
    }

    fn resume_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        {
            let mut st = this.st.borrow_mut(py);
            if st.closing || !st.paused {
                return Ok(());
            }
            st.paused = false;
        }
        Self::add_reader(slf)?;
        if let Some(lp) = this.loop_(py) {
            if lp.get().is_debug() {
                log_debug(py, "%r resumes reading", &this.owner(py))?;
            }
        }
        Ok(())
    }

    // -- loop callbacks ------------------------------------------------------

    fn _add_reader(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::add_reader(slf)
    }

    /// The fd is readable: read once and hand the data to the protocol.
    fn _read_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (protocol, buffered, datagram) = {
            let st = this.st.borrow(py);
            if st.conn_lost > 0 {
                return Ok(());
            }
            match &st.protocol {
                Some(p) => (
                    p.clone_ref(py).into_bound(py),
                    st.buffered,
                    st.datagram.is_some(),
                ),
                None => return Ok(()),
            }
        };
        if datagram {
            return Self::read_datagram(slf, &protocol);
        }
        if buffered {
            return Self::read_into_protocol_buffer(slf, &protocol);
        }
        let data = match this.live_fd(py).and_then(|fd| recv_bytes(py, fd, MAX_SIZE)) {
            Ok(Io::Done(d)) => d.into_bound(py),
            Ok(Io::WouldBlock) => return Ok(()),
            Err(e) if is_exit(py, &e) => return Err(e),
            Err(e) => return Self::fatal_error(slf, e, "Fatal read error on socket transport"),
        };
        if data.as_bytes().is_empty() {
            return Self::on_eof(slf, &protocol);
        }
        match protocol.call_method1(intern!(py, "data_received"), (data,)) {
            Ok(_) => Ok(()),
            Err(e) if is_exit(py, &e) => Err(e),
            Err(e) => {
                Self::fatal_error(slf, e, "Fatal error: protocol.data_received() call failed.")
            }
        }
    }
}
