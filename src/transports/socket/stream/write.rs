//! The writing half of `StreamTransportCore`: `write()` tries `send` at once
//! and buffers the rest, flushed with one `sendmsg` per writability event;
//! `write_eof`, and the empty-buffer waiter of `sendfile`.

use std::os::fd::RawFd;

use pyo3::exceptions::{PyBufferError, PyRuntimeError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList};

use super::StreamTransportCore;
use crate::compat;
use crate::event_loop::LoopCore;
use crate::pyhelpers::{is_bytes_like, os_error};
use crate::reactor::Side;
use crate::sysio::BufferView;
use crate::transports::write_buffer::WriteBuffer;

static MEMORYVIEW: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// asyncio's message for a failed send.
pub(super) const WRITE_FAILED: &str = "Fatal write error on socket transport";

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

impl StreamTransportCore {
    /// asyncio's `_fatal_error(exc, 'Fatal write error on socket transport')`.
    fn write_failed(slf: &Bound<'_, Self>, err: PyErr) -> PyResult<()> {
        slf.get().fatal_error(slf.as_any(), err, WRITE_FAILED)
    }

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
                    let Ok(view) = BufferView::new(part, false) else {
                        // join's TypeError for a view it cannot read (a
                        // non-contiguous or released memoryview).
                        return joined(PyList::new(py, &parts)?.as_any());
                    };
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
                return Self::write_failed(slf, os_error(err));
            }
            if chunks.is_empty() {
                return Ok(());
            }
        }
        let start_writer = {
            let mut st = this.st.borrow_mut(py);
            let was_empty = st.kind.buffer.is_empty();
            st.kind.buffer.append(&mut chunks);
            was_empty
        };
        if start_writer {
            this.register(slf.as_any(), Side::Write)?;
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
            if st.kind.eof {
                return Err(PyRuntimeError::new_err(
                    "Cannot call writelines() after write_eof()",
                ));
            }
            if st.kind.empty_waiter.is_some() {
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
            let view = match BufferView::new(&view_obj, false) {
                Ok(view) => view,
                // A view memoryview() takes but sendmsg cannot (not
                // C-contiguous): asyncio buffers it and its send fails, a
                // fatal error that drops the buffer.
                Err(e) if e.is_instance_of::<PyBufferError>(py) => {
                    return Self::write_failed(slf, e);
                }
                Err(e) => return Err(e),
            };
            // SAFETY: the export keeps `view.len()` bytes alive while `view` lives.
            chunks.push_copy(unsafe { std::slice::from_raw_parts(view.ptr(), view.len()) });
        }
        {
            let mut st = this.st.borrow_mut(py);
            st.kind.buffer.append(&mut chunks);
            if st.kind.buffer.is_empty() {
                return Ok(()); // only empty parts: nothing to flush
            }
        }
        Self::_write_ready(slf)?;
        if this.st.borrow(py).kind.buffer.is_empty() {
            return Ok(());
        }
        this.register(slf.as_any(), Side::Write)?;
        this.maybe_pause_protocol(py)
    }

    /// `write()`'s checks, in asyncio's order. `None`: nothing to send (no
    /// data, or the connection is lost); else whether the buffer is empty.
    fn admit_write(&self, py: Python<'_>, empty_data: bool) -> PyResult<Option<bool>> {
        let st = self.st.borrow(py);
        if st.kind.eof {
            return Err(PyRuntimeError::new_err(
                "Cannot call write() after write_eof()",
            ));
        }
        if st.kind.empty_waiter.is_some() {
            return Err(PyRuntimeError::new_err(
                "unable to write; sendfile is in progress",
            ));
        }
        if empty_data {
            return Ok(None);
        }
        let empty = st.kind.buffer.is_empty();
        drop(st);
        if self.note_lost_write(py)? {
            return Ok(None);
        }
        Ok(Some(empty))
    }

    /// Queue what `send` did not take, start watching for writability.
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
            let was_empty = st.kind.buffer.is_empty();
            match data.cast::<PyBytes>() {
                Ok(b) => st
                    .kind
                    .buffer
                    .push_shared(b.clone().unbind(), sent, bytes.len()),
                Err(_) => st.kind.buffer.push_copy(&bytes[sent..]),
            }
            was_empty
        };
        if start_writer {
            this.register(slf.as_any(), Side::Write)?;
        }
        this.maybe_pause_protocol(py)
    }
}

#[pymethods]
impl StreamTransportCore {
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

        // Batched bytes are as good as sent: asyncio's buffer would be empty.
        let batched = this.st.borrow(py).kind.batched;
        // bytes are read in place; other buffers through an export.
        let view;
        let bytes: &[u8] = match data.cast::<PyBytes>() {
            Ok(b) => b.as_bytes(),
            Err(_) => {
                view = match BufferView::new(data, false) {
                    Ok(view) => view,
                    // A buffer `send` cannot take (a non-contiguous view):
                    // asyncio's `sock.send` fails, and that is a fatal error
                    // (which sends the batch first, as asyncio had).
                    Err(e) if buffer_empty || batched => return Self::write_failed(slf, e),
                    Err(e) => return Err(e),
                };
                // SAFETY: the export keeps `view.len()` bytes alive while `view` lives.
                unsafe { std::slice::from_raw_parts(view.ptr(), view.len()) }
            }
        };
        let mut buffer_empty = buffer_empty;
        if buffer_empty || batched {
            if this.batch(slf.as_any(), data, bytes)? {
                return Ok(());
            }
            // Too much for one batch: what waits goes first, then as asyncio.
            this.send_batch(slf.as_any())?;
            let st = this.st.borrow(py);
            if st.conn_lost > 0 {
                return Ok(()); // the flush failed: the connection is lost
            }
            buffer_empty = st.kind.buffer.is_empty();
        }
        let mut sent = 0;
        if buffer_empty {
            match send_now(this.live_fd(py)?, bytes) {
                Sent::All => return Ok(()),
                Sent::Part(n) => sent = n,
                Sent::Failed(e) => return Self::write_failed(slf, e),
            }
        }
        Self::buffer_rest(slf, data, bytes, sent)
    }

    /// `writelines`, as the running CPython's asyncio has it (see
    /// `compat::WRITELINES_BY_MEMORYVIEW`).
    fn writelines(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        slf.get().send_batch(slf.as_any())?;
        if compat::WRITELINES_BY_MEMORYVIEW {
            Self::writelines_views(slf, list_of_data)
        } else {
            Self::writelines_joined(slf, list_of_data)
        }
    }

    fn write_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        this.send_batch(slf.as_any())?;
        {
            let mut st = this.st.borrow_mut(py);
            if st.closing || st.kind.eof {
                return Ok(());
            }
            st.kind.eof = true;
            if !st.kind.buffer.is_empty() {
                return Ok(());
            }
        }
        shutdown_write(this.live_fd(py)?)
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    /// The fd is writable: flush what is buffered.
    fn _write_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.st.borrow(py).conn_lost > 0 {
            return Ok(());
        }
        let fd = this.live_fd(py)?;
        let flushed = this.st.borrow_mut(py).kind.buffer.flush(fd, true);
        if let Err(err) = flushed {
            this.remove(py, Side::Write)?;
            let unsent = std::mem::take(&mut this.st.borrow_mut(py).kind.buffer);
            drop(unsent);
            let err = os_error(err);
            let value = err.value(py).clone();
            Self::write_failed(slf, err)?;
            let waiter = {
                let st = this.st.borrow(py);
                st.kind.empty_waiter.as_ref().map(|w| w.clone_ref(py))
            };
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
                st.kind.buffer.is_empty(),
                st.closing,
                st.kind.eof,
                st.kind.empty_waiter.as_ref().map(|w| w.clone_ref(py)),
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
        let this = slf.get();
        this.send_batch(slf.as_any())?;
        let lp = {
            let st = this.st.borrow(py);
            if st.kind.empty_waiter.is_some() {
                return Err(PyRuntimeError::new_err("Empty waiter is already set"));
            }
            st.loop_.as_ref().map(|l| l.clone_ref(py))
        };
        let lp = lp.ok_or_else(|| PyRuntimeError::new_err("Event loop is closed"))?;
        let waiter = LoopCore::create_future(lp.bind(py))?;
        if this.st.borrow(py).kind.buffer.is_empty() {
            waiter.call_method1(intern!(py, "set_result"), (py.None(),))?;
        }
        let waiter = waiter.unbind();
        let old = this
            .st
            .borrow_mut(py)
            .kind
            .empty_waiter
            .replace(waiter.clone_ref(py));
        drop(old);
        Ok(waiter)
    }

    fn _reset_empty_waiter(&self, py: Python<'_>) {
        let old = self.st.borrow_mut(py).kind.empty_waiter.take();
        drop(old);
    }
}
