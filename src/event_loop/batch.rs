//! The loop's side of write batching (see `transports::socket::stream::batch`):
//! which stream transports the running callback batched writes for, and
//! their flush once it returns.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::OnceLock;

use pyo3::prelude::*;

use super::LoopCore;

/// Write batching is on unless `FERROLOOP_WRITE_BATCHING=0` was set when
/// the process first wrote: batched bytes reach the peer when the callback
/// returns, not at `write()`, which a program could tell (a thread that
/// reads the peer while the callback waits for it; see docs/differences.md).
fn batching_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os("FERROLOOP_WRITE_BATCHING").is_none_or(|v| v != "0"))
}

/// The calling thread, as `loop_thread` records it.
pub(super) fn current_thread() -> u64 {
    // SAFETY: `pthread_self` has no preconditions and cannot fail.
    unsafe { libc::pthread_self() as u64 }
}

impl LoopCore {
    /// Whether a transport write may wait for the end of the callback: only
    /// inside the running loop, on its own thread (a write from elsewhere
    /// goes out at once, as asyncio's does).
    pub(crate) fn batching_here(&self) -> bool {
        self.running.load(Relaxed)
            && self.loop_thread.load(Relaxed) == current_thread()
            && batching_enabled()
    }

    /// Queue a transport core whose writes wait for the end of the callback.
    pub(crate) fn batch_write(&self, py: Python<'_>, core: Py<PyAny>) {
        self.batched_writes.borrow_mut(py).push(core);
        self.has_batched.store(true, Relaxed);
    }

    /// Send what the callback that just ran batched, if anything (flushing
    /// may batch again: a `pause_writing` that writes elsewhere).
    #[inline]
    pub(super) fn flush_batched_writes(slf: &Bound<'_, Self>) -> PyResult<()> {
        if !slf.get().has_batched.load(Relaxed) {
            return Ok(());
        }
        Self::flush_batched_slow(slf)
    }

    fn flush_batched_slow(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        loop {
            this.has_batched.store(false, Relaxed);
            let cores = std::mem::take(&mut *this.batched_writes.borrow_mut(py));
            if cores.is_empty() {
                return Ok(());
            }
            crate::transports::socket::flush_batched(py, cores)?;
        }
    }
}
