//! The writing half of `SocketTransportCore`: `write()` tries `send` at once
//! and buffers the rest, flushed with one `sendmsg` per writability event;
//! flow control, `write_eof`, and the empty-buffer waiter of `sendfile`.

use std::os::fd::RawFd;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList};

use super::SocketTransportCore;
use crate::compat;
use crate::event_loop::LoopCore;
use crate::reactor::{os_error, Side};
use crate::sysio::BufferView;
use crate::transports::flow;
use crate::transports::logger;
use crate::transports::write_buffer::WriteBuffer;

static MEMORYVIEW: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// asyncio's `constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

/// What a non-blocking send did.
enum Sent {
    All,
    Part(usize),
    Failed(PyErr),
}

fn send_now(fd: RawFd, data: &[u8]) -> Sent {
    // SAFETY: `data` is a valid slice for the duration of the call.
    let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
    if n >= 0 {
        let n = n as usize;
        return if n == data.len() {
            Sent::All
        } else {
            Sent::Part(n)
        };
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        // EINTR: the signal is handled by the loop's next check; the data
        // is buffered and the writer callback retries.
        Some(libc::EAGAIN) | Some(libc::EINTR) => Sent::Part(0),
        _ => Sent::Failed(os_error(err)),
    }
}

fn shutdown_write(fd: RawFd) -> PyResult<()> {
    // SAFETY: plain syscall on our own fd.
    if unsafe { libc::shutdown(fd, libc::SHUT_WR) } < 0 {
        return Err(os_error(std::io::Error::last_os_error()));
    }
    Ok(())
}

impl SocketTransportCore {
    /// asyncio 3.11's `write(b''.join(list_of_data))`, without the join:
    /// the parts go out in one `sendmsg` (bytes by reference, others copied
    /// now, as the join would).
    fn writelines_joined(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let joined = |parts: &Bound<'_, PyAny>| -> PyResult<()> {
            let data = PyBytes::new(py, b"").call_method1(intern!(py, "join"), (parts,))?;
            Self::write(slf, &data)
        };
        let Ok(iter) = list_of_data.try_iter() else {
            return joined(list_of_data); // join's own error for a non-iterable
        };
        let parts: Vec<Bound<'_, PyAny>> = iter.collect::<PyResult<_>>()?;
        if !parts.iter().all(is_bytes_like) {
            return joined(PyList::new(py, &parts)?.as_any()); // join's exact TypeError
        }
        let mut chunks = WriteBuffer::default();
        for part in &parts {
            match part.cast::<PyBytes>() {
                Ok(b) => chunks.push_shared(b.clone().unbind(), 0, b.as_bytes().len()),
                Err(_) => {
                    let view = BufferView::new(part, false)?;
                    // SAFETY: the export keeps `view.len()` bytes alive while `view` lives.
                    chunks.push_copy(unsafe { std::slice::from_raw_parts(view.ptr(), view.len()) });
                }
            }
        }
        let Some(buffer_empty) = this.admit_write(py, chunks.is_empty())? else {
            return Ok(());
        };
        if buffer_empty {
            if let Err(err) = chunks.flush(this.live_fd(py)?, true) {
                return Self::fatal_error(
                    slf,
                    os_error(err),
                    "Fatal write error on socket transport",
                );
            }
            if chunks.is_empty() {
                return Ok(());
            }
        }
        let start_writer = {
            let mut st = this.st.borrow_mut(py);
            let was_empty = st.buffer.is_empty();
            st.buffer.append(&mut chunks);
            was_empty
        };
        if start_writer {
            Self::register(slf, Side::Write)?;
        }
        this.maybe_pause_protocol(py)
    }

    /// asyncio 3.12+'s `writelines`: its own checks and messages, each part
    /// taken as `memoryview(part)` would (bytes by reference; mutable
    /// parts copied now, so later changes cannot reach the peer), then one
    /// flush of the whole buffer at once. Unlike asyncio, a bad part leaves
    /// nothing of the call buffered (3.15's appends the parts before it,
    /// where no writer will send them), and empty parts are never buffered
    /// (3.12-3.14's are, and then never drain).
    fn writelines_views(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        {
            let st = this.st.borrow(py);
            if st.eof {
                return Err(PyRuntimeError::new_err(
                    "Cannot call writelines() after write_eof()",
                ));
            }
            if st.empty_waiter.is_some() {
                return Err(PyRuntimeError::new_err(
                    "unable to writelines; sendfile is in progress",
                ));
            }
        }
        if !list_of_data.is_truthy()? {
            return Ok(());
        }
        if this.note_lost_write(py)? {
            return Ok(());
        }
        let mut chunks = WriteBuffer::default();
        for part in list_of_data.try_iter()? {
            let part = part?;
            if compat::WRITELINES_SKIPS_FALSY && !part.is_truthy()? {
                continue;
            }
            if let Ok(b) = part.cast::<PyBytes>() {
                chunks.push_shared(b.clone().unbind(), 0, b.as_bytes().len());
                continue;
            }
            // memoryview()'s own TypeError for what is not a buffer.
            let view_obj = if is_bytes_like(&part) {
                part
            } else {
                MEMORYVIEW
                    .import(py, "builtins", "memoryview")?
                    .call1((part,))?
            };
            let view = BufferView::new(&view_obj, false)?;
            // SAFETY: the export keeps `view.len()` bytes alive while `view` lives.
            chunks.push_copy(unsafe { std::slice::from_raw_parts(view.ptr(), view.len()) });
        }
        {
            let mut st = this.st.borrow_mut(py);
            st.buffer.append(&mut chunks);
            if st.buffer.is_empty() {
                return Ok(()); // only empty parts: nothing to flush
            }
        }
        Self::_write_ready(slf)?;
        if this.st.borrow(py).buffer.is_empty() {
            return Ok(());
        }
        Self::register(slf, Side::Write)?;
        this.maybe_pause_protocol(py)
    }

    pub(super) fn maybe_pause_protocol(&self, py: Python<'_>) -> PyResult<()> {
        self.flow_control(py, true)
    }

    pub(super) fn maybe_resume_protocol(&self, py: Python<'_>) -> PyResult<()> {
        self.flow_control(py, false)
    }

    fn flow_control(&self, py: Python<'_>, pause: bool) -> PyResult<()> {
        let protocol = {
            let mut st = self.st.borrow_mut(py);
            let size = st.pending();
            let due = if pause {
                st.flow.begin_pause(size)
            } else {
                st.flow.begin_resume(size)
            };
            match (&st.protocol, due) {
                (Some(p), true) => p.clone_ref(py),
                _ => return Ok(()),
            }
        };
        flow::notify(
            self.loop_(py).as_ref(),
            protocol.bind(py),
            &self.owner(py),
            pause,
        )
    }

    /// Queue what `send` did not take, start watching for writability.
    /// `write()`'s checks, in asyncio's order. `None`: nothing to send (no
    /// data, or the connection is lost); else whether the buffer is empty.
    fn admit_write(&self, py: Python<'_>, empty_data: bool) -> PyResult<Option<bool>> {
        let st = self.st.borrow(py);
        if st.eof {
            return Err(PyRuntimeError::new_err(
                "Cannot call write() after write_eof()",
            ));
        }
        if st.empty_waiter.is_some() {
            return Err(PyRuntimeError::new_err(
                "unable to write; sendfile is in progress",
            ));
        }
        if empty_data {
            return Ok(None);
        }
        let empty = st.buffer.is_empty();
        drop(st);
        if self.note_lost_write(py)? {
            return Ok(None);
        }
        Ok(Some(empty))
    }

    /// A write after the connection was lost: counted, and logged past
    /// asyncio's threshold. True if the connection is lost.
    fn note_lost_write(&self, py: Python<'_>) -> PyResult<bool> {
        let mut st = self.st.borrow_mut(py);
        if st.conn_lost == 0 {
            return Ok(false);
        }
        let warn = st.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES;
        st.conn_lost += 1;
        drop(st);
        if warn {
            logger(py)?
                .call_method1(intern!(py, "warning"), ("socket.send() raised exception.",))?;
        }
        Ok(true)
    }

    fn buffer_rest(
        slf: &Bound<'_, Self>,
        data: &Bound<'_, PyAny>,
        bytes: &[u8],
        sent: usize,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let start_writer = {
            let mut st = this.st.borrow_mut(py);
            let was_empty = st.buffer.is_empty();
            match data.cast::<PyBytes>() {
                Ok(b) => st.buffer.push_shared(b.clone().unbind(), sent, bytes.len()),
                Err(_) => st.buffer.push_copy(&bytes[sent..]),
            }
            was_empty
        };
        if start_writer {
            Self::register(slf, Side::Write)?;
        }
        this.maybe_pause_protocol(py)
    }
}

pub(in crate::transports) fn is_bytes_like(data: &Bound<'_, PyAny>) -> bool {
    let ptr = data.as_ptr();
    // SAFETY: type checks on a live object.
    unsafe {
        ffi::PyBytes_Check(ptr) != 0
            || ffi::PyByteArray_Check(ptr) != 0
            || ffi::PyMemoryView_Check(ptr) != 0
    }
}

#[pymethods]
impl SocketTransportCore {
    // -- asyncio.WriteTransport --------------------------------------------

    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !is_bytes_like(data) {
            let kind = data.get_type().name()?;
            return Err(PyTypeError::new_err(format!(
                "{}, not {}",
                compat::WRITE_TYPE_ERROR,
                kind.repr()?
            )));
        }
        let empty_data = match data.cast::<PyBytes>() {
            Ok(b) => b.as_bytes().is_empty(),
            Err(_) => data.len()? == 0,
        };
        let Some(buffer_empty) = this.admit_write(py, empty_data)? else {
            return Ok(());
        };

        // bytes are read in place; other buffers through an export.
        let view;
        let bytes: &[u8] = match data.cast::<PyBytes>() {
            Ok(b) => b.as_bytes(),
            Err(_) => {
                view = match BufferView::new(data, false) {
                    Ok(view) => view,
                    // A buffer `send` cannot take (a non-contiguous view):
                    // asyncio's `sock.send` fails, and that is a fatal error.
                    Err(e) if buffer_empty => {
                        return Self::fatal_error(slf, e, "Fatal write error on socket transport")
                    }
                    Err(e) => return Err(e),
                };
                // SAFETY: the export keeps `view.len()` bytes alive while `view` lives.
                unsafe { std::slice::from_raw_parts(view.ptr(), view.len()) }
            }
        };
        let mut buffer_empty = buffer_empty;
        if buffer_empty || this.st.borrow(py).batched {
            if Self::batch(slf, data, bytes)? {
                return Ok(());
            }
            // Too much for one batch: what waits goes first, then as asyncio.
            Self::flush_batch(slf)?;
            let st = this.st.borrow(py);
            if st.conn_lost > 0 {
                return Ok(()); // the flush failed: the connection is lost
            }
            buffer_empty = st.buffer.is_empty();
        }
        let mut sent = 0;
        if buffer_empty {
            match send_now(this.live_fd(py)?, bytes) {
                Sent::All => return Ok(()),
                Sent::Part(n) => sent = n,
                Sent::Failed(e) => {
                    return Self::fatal_error(slf, e, "Fatal write error on socket transport")
                }
            }
        }
        Self::buffer_rest(slf, data, bytes, sent)
    }

    /// `writelines`, as the running CPython's asyncio has it (see
    /// `compat::WRITELINES_BY_MEMORYVIEW`).
    fn writelines(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        Self::flush_batch(slf)?;
        if compat::WRITELINES_BY_MEMORYVIEW {
            Self::writelines_views(slf, list_of_data)
        } else {
            Self::writelines_joined(slf, list_of_data)
        }
    }

    fn write_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        Self::flush_batch(slf)?;
        let this = slf.get();
        {
            let mut st = this.st.borrow_mut(py);
            if st.closing || st.eof {
                return Ok(());
            }
            st.eof = true;
            if !st.buffer.is_empty() {
                return Ok(());
            }
        }
        shutdown_write(this.live_fd(py)?)
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    fn get_write_buffer_size(&self, py: Python<'_>) -> usize {
        self.st.borrow(py).pending()
    }

    fn get_write_buffer_limits(&self, py: Python<'_>) -> (usize, usize) {
        let st = self.st.borrow(py);
        (st.flow.low, st.flow.high)
    }

    #[pyo3(signature = (high=None, low=None))]
    fn set_write_buffer_limits(
        &self,
        py: Python<'_>,
        high: Option<Bound<'_, PyAny>>,
        low: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (high, low) = flow::parse_limits(high, low)?;
        {
            let mut st = self.st.borrow_mut(py);
            st.flow.high = high;
            st.flow.low = low;
        }
        self.maybe_pause_protocol(py)
    }

    /// The fd is writable: flush what is buffered.
    fn _write_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.st.borrow(py).datagram.is_some() {
            return Self::sendto_ready(slf);
        }
        if this.st.borrow(py).conn_lost > 0 {
            return Ok(());
        }
        let fd = this.live_fd(py)?;
        let flushed = this.st.borrow_mut(py).buffer.flush(fd, true);
        if let Err(err) = flushed {
            this.remove(py, Side::Write)?;
            this.st.borrow_mut(py).buffer.clear();
            let err = os_error(err);
            let value = err.value(py).clone();
            Self::fatal_error(slf, err, "Fatal write error on socket transport")?;
            let waiter = this
                .st
                .borrow(py)
                .empty_waiter
                .as_ref()
                .map(|w| w.clone_ref(py));
            if let Some(w) = waiter {
                w.bind(py)
                    .call_method1(intern!(py, "set_exception"), (value,))?;
            }
            return Ok(());
        }
        this.maybe_resume_protocol(py)?;
        let (empty, closing, eof, waiter) = {
            let st = this.st.borrow(py);
            (
                st.buffer.is_empty(),
                st.closing,
                st.eof,
                st.empty_waiter.as_ref().map(|w| w.clone_ref(py)),
            )
        };
        if !empty {
            return Ok(());
        }
        this.remove(py, Side::Write)?;
        if let Some(w) = waiter {
            w.bind(py)
                .call_method1(intern!(py, "set_result"), (py.None(),))?;
        }
        if closing {
            Self::_call_connection_lost(slf, None)
        } else if eof {
            shutdown_write(this.live_fd(py)?)
        } else {
            Ok(())
        }
    }

    // -- sendfile support (asyncio's private API, used by loop.sendfile) --

    fn _make_empty_waiter(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        Self::flush_batch(slf)?;
        let this = slf.get();
        let lp = {
            let st = this.st.borrow(py);
            if st.empty_waiter.is_some() {
                return Err(PyRuntimeError::new_err("Empty waiter is already set"));
            }
            st.loop_.as_ref().map(|l| l.clone_ref(py))
        };
        let lp = lp.ok_or_else(|| PyRuntimeError::new_err("Event loop is closed"))?;
        let waiter = LoopCore::create_future(lp.bind(py))?;
        if this.st.borrow(py).buffer.is_empty() {
            waiter.call_method1(intern!(py, "set_result"), (py.None(),))?;
        }
        let waiter = waiter.unbind();
        let old = this
            .st
            .borrow_mut(py)
            .empty_waiter
            .replace(waiter.clone_ref(py));
        drop(old);
        Ok(waiter)
    }

    fn _reset_empty_waiter(&self, py: Python<'_>) {
        let old = self.st.borrow_mut(py).empty_waiter.take();
        drop(old);
    }
}
