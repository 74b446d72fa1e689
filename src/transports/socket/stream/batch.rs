//! Write batching: the writes one callback makes to a stream transport
//! whose buffer is empty go out together, in one `sendmsg`, as soon as that
//! callback returns (the loop flushes after every callback it runs).
//!
//! asyncio's `write()` calls `send` at once, so a protocol that writes a
//! response in two parts (uvicorn: head, then body) costs two trips through
//! the kernel's TCP stack, the second of which often leaves as its own
//! segment and wakes the peer again. Batched, the parts leave as one.
//!
//! What the transport's API shows stays asyncio's (the bytes reach the
//! peer when the callback returns rather than at `write()`, which only
//! code reading the peer inside the callback can tell;
//! `FERROLOOP_WRITE_BATCHING=0` turns batching off):
//! - batched bytes are as good as sent: `get_write_buffer_size()` does not
//!   count them and they never pause the protocol; only what the kernel
//!   refuses at the flush is buffered, and flow control applies to that, as
//!   it would have to the rest of asyncio's `send`;
//! - everything that depends on the buffer (`close`, `abort`, `write_eof`,
//!   `writelines`, sendfile's empty waiter) flushes the batch first, so a
//!   write followed by `abort()` still reaches the peer, as with asyncio;
//! - only a loop running on the calling thread batches (`batching_here`),
//!   and at most `BATCH_MAX` bytes: a write from another thread, outside the
//!   loop or past the limit is sent at once;
//! - the flush runs right after the callback, in the same iteration, so a
//!   send error is reported, and `connection_lost` runs, when asyncio's
//!   would, and a reply is not held back behind the iteration's other
//!   callbacks (which would cost a pipelining peer its round trips).

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::write::WRITE_FAILED;
use super::{Stream, StreamTransportCore};
use crate::pyhelpers::os_error;
use crate::reactor::Side;
use crate::transports::socket::base::SocketCore;

/// The most a transport batches per callback (asyncio's default
/// high-water mark): larger writes are sent at once.
const BATCH_MAX: usize = 64 * 1024;

impl SocketCore<Stream> {
    /// Batch `bytes` (the contents of `data`) if this write may wait for the
    /// end of the callback; false if it must be sent now. `slf`: the core.
    pub(super) fn batch(
        &self,
        slf: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
        bytes: &[u8],
    ) -> PyResult<bool> {
        let py = slf.py();
        let Some(lp) = self.loop_(py) else {
            return Ok(false);
        };
        if !lp.get().batching_here() {
            return Ok(false);
        }
        let first = {
            let mut st = self.st.borrow_mut(py);
            let stream = &mut st.kind;
            let first = !stream.batched;
            if first && !stream.buffer.is_empty() {
                return Ok(false); // a real backlog: asyncio's path
            }
            if stream.buffer.len() + bytes.len() > BATCH_MAX {
                return Ok(false);
            }
            match data.cast::<PyBytes>() {
                Ok(b) => stream
                    .buffer
                    .push_shared(b.clone().unbind(), 0, bytes.len()),
                // A mutable buffer is copied now: later changes must not
                // reach the peer (asyncio's `send` took them already).
                Err(_) => stream.buffer.push_copy(bytes),
            }
            stream.batched = true;
            first
        };
        if first {
            lp.get().batch_write(py, slf.clone().unbind());
        }
        Ok(true)
    }

    /// Send the batch now: what the kernel takes is gone, the rest is
    /// buffered as asyncio buffers what `send` did not take.
    pub(super) fn send_batch(&self, slf: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        {
            let mut st = self.st.borrow_mut(py);
            if !st.kind.batched {
                return Ok(());
            }
            st.kind.batched = false;
            if st.conn_lost > 0 {
                // Lost meanwhile: nothing to send. Chunks are exact bytes or
                // owned memory: no Python code runs when they drop.
                st.kind.buffer.clear();
                return Ok(());
            }
        }
        let fd = self.live_fd(py)?;
        // All of it if the kernel takes it, as asyncio's one `send` per write
        // would have: a batch can hold more chunks than one `sendmsg` takes.
        let flushed = self.st.borrow_mut(py).kind.buffer.flush_all(fd, true);
        if let Err(err) = flushed {
            self.st.borrow_mut(py).kind.buffer.clear();
            return self.fatal_error(slf, os_error(err), WRITE_FAILED);
        }
        if self.st.borrow(py).kind.buffer.is_empty() {
            return Ok(());
        }
        self.register(slf, Side::Write)?;
        self.maybe_pause_protocol(py)
    }
}

/// The loop's flush, after a callback, of every transport it batched for,
/// in the order they first wrote. Every one is flushed; the first error (an
/// exception handler that raised) is returned.
pub fn flush_batched(py: Python<'_>, cores: Vec<Py<PyAny>>) -> PyResult<()> {
    let mut result = Ok(());
    for core in &cores {
        if let Ok(core) = core.bind(py).cast::<StreamTransportCore>() {
            let flushed = core.get().0.send_batch(core.as_any());
            if result.is_ok() {
                result = flushed;
            }
        }
    }
    drop(cores);
    result
}
