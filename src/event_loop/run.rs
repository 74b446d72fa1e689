//! The run loop: one iteration as asyncio's `_run_once`, the loop's clock
//! and running the ready callbacks.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyFloat;

use super::{
    LoopCore, Ready, CLOCK_NATIVE, CLOCK_OVERRIDDEN, CLOCK_UNKNOWN, FDS_QUIET, FDS_WATCHED,
    MAXIMUM_SELECT_TIMEOUT, NATIVE_TIME,
};
use crate::clock;
use crate::handle::{Handle, TimerHandle};
use crate::telemetry;

impl LoopCore {
    /// Whether `time` is overridden on the instance (`mock.patch.object(loop,
    /// "time", ...)`) or in a subclass: then the loop's timers follow
    /// `self.time()`, as asyncio's `_run_once` does.
    fn time_overridden(slf: &Bound<'_, Self>) -> bool {
        let py = slf.py();
        let name = intern!(py, "time");
        // SAFETY: GenericGetDict returns a new reference (or NULL with an
        // error set, cleared here); GetItemWithError a borrowed one, used
        // only for a null check while `dict` is alive.
        let on_instance = unsafe {
            let dict = ffi::PyObject_GenericGetDict(slf.as_ptr(), std::ptr::null_mut());
            if dict.is_null() {
                ffi::PyErr_Clear();
                false
            } else {
                let found = !ffi::PyDict_GetItemWithError(dict, name.as_ptr()).is_null();
                if !found {
                    ffi::PyErr_Clear();
                }
                ffi::Py_DECREF(dict);
                found
            }
        };
        if on_instance {
            return true;
        }
        // The class's answer holds while its version tag does: CPython
        // gives a type a new tag (or none, 0) whenever an attribute of it
        // or of a base changes. Remembered as `tag << 1 | overridden`.
        let ty = slf.get_type();
        // SAFETY: reading a field of a live type object, with the GIL held.
        let tag_of =
            |ty: &Bound<'_, pyo3::types::PyType>| unsafe { (*ty.as_type_ptr()).tp_version_tag };
        let tag = tag_of(&ty);
        let known = slf.get().clock_type.load(Relaxed);
        if tag != 0 && known >> 1 == u64::from(tag) {
            return known & 1 == 1;
        }
        let native = NATIVE_TIME.get_or_try_init(py, || {
            py.get_type::<LoopCore>().getattr(name).map(Bound::unbind)
        });
        let overridden = match (native, ty.getattr(name)) {
            (Ok(native), Ok(found)) => found.as_ptr() != native.as_ptr(),
            _ => false,
        };
        // The lookup above has given the type a tag if it had none.
        let tag = tag_of(&ty);
        if tag != 0 {
            slf.get()
                .clock_type
                .store(u64::from(tag) << 1 | u64::from(overridden), Relaxed);
        }
        overridden
    }

    /// The loop's clock: `CLOCK_MONOTONIC`, or `self.time()` if overridden
    /// (checked at most once per iteration while the loop runs).
    pub(super) fn now(slf: &Bound<'_, Self>) -> PyResult<f64> {
        let this = slf.get();
        let state = match this.clock_state.load(Relaxed) {
            CLOCK_UNKNOWN => {
                let state = if Self::time_overridden(slf) {
                    CLOCK_OVERRIDDEN
                } else {
                    CLOCK_NATIVE
                };
                if this.running.load(Relaxed) {
                    this.clock_state.store(state, Relaxed);
                }
                state
            }
            known => known,
        };
        if state == CLOCK_NATIVE {
            return Ok(clock::monotonic());
        }
        slf.call_method0(intern!(slf.py(), "time"))?.extract()
    }

    /// asyncio keeps a timer whose deadline is no number, and fails in the
    /// next iteration comparing it with the clock: raise that error.
    fn check_bad_timers(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let bad: Vec<Py<TimerHandle>> = {
            let mut timers = this.bad_timers.borrow_mut(py);
            let (live, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut *timers)
                .into_iter()
                .partition(|t| !t.bind(py).as_super().get().is_cancelled());
            *timers = live.iter().map(|t| t.clone_ref(py)).collect();
            this.has_bad_timers.store(!live.is_empty(), Relaxed);
            drop(timers);
            drop(gone);
            live
        };
        let Some(first) = bad.first() else {
            return Ok(());
        };
        let when = first.get().when_object(py)?;
        let now = PyFloat::new(py, Self::now(slf)?);
        when.bind(py).ge(now)?;
        Err(PyTypeError::new_err(format!(
            "timer deadline {} is not a number",
            when.bind(py).repr()?
        )))
    }

    /// One iteration of the loop, as asyncio's `_run_once`.
    fn run_once(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();

        let purged = this.timers.borrow_mut(py).purge_cancelled(py);
        drop(purged);
        this.clock_state.store(CLOCK_UNKNOWN, Relaxed);
        if this.has_bad_timers.load(Relaxed) {
            Self::check_bad_timers(slf)?;
        }

        // Python signal handlers first: one that schedules a callback must
        // turn a blocking poll into a non-blocking one.
        py.check_signals()?;
        // Writes made outside a callback (by a Python signal handler that
        // interrupted the last poll) must not wait through the next one.
        Self::flush_batched_writes(slf)?;
        // The handles queued so far hold the snapshot they share; the cache
        // must not keep a variable's value alive past them.
        this.snapshot.clear(py);

        // With callbacks ready the poll only looks (timeout 0): nobody needs
        // to wake us. Otherwise announce the poll before deciding its
        // timeout: from here on a thread that queues a callback wakes us,
        // even if deciding lets other threads run (a `time()` written in
        // Python, a first-use import: each may release the GIL).
        let timeout = if !this.ready.borrow(py).is_empty() || this.stopping.load(Relaxed) {
            Some(Duration::ZERO)
        } else {
            this.polling.store(true, SeqCst);
            let next_when = this.timers.borrow(py).next_when();
            match next_when {
                Some(when) => {
                    let now = Self::now(slf).inspect_err(|_| this.polling.store(false, SeqCst))?;
                    let secs = (when - now).clamp(0.0, MAXIMUM_SELECT_TIMEOUT);
                    Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO))
                }
                None => None,
            }
        };

        // With callbacks ready and no fd that could have become ready, the
        // zero-timeout poll has nothing to report: skip the syscall.
        let nothing_to_poll = timeout == Some(Duration::ZERO) && this.watches_nothing(py);
        let telem = this.telemetry.load(Relaxed);
        if nothing_to_poll {
            this.polling.store(false, SeqCst);
        } else {
            let started = telemetry::start(telem);
            let polled = this.reactor.poll(py, timeout, |h| {
                this.ready.borrow_mut(py).push_back(Ready::Native(h));
            });
            // The poll may have dropped cancelled registrations.
            this.fds_changed();
            this.polling.store(false, SeqCst);
            if let Some(t0) = started {
                this.stats.borrow_mut(py).poll_time += t0.elapsed();
            }
            polled?;
            // Runs Python-level signal handlers (e.g. SIGINT's
            // KeyboardInterrupt) that interrupted the wait.
            py.check_signals()?;
        }

        let end_time = match this.timers.borrow(py).len() {
            0 => f64::NEG_INFINITY,
            _ => Self::now(slf)? + this.clock_resolution,
        };
        {
            let mut timers = this.timers.borrow_mut(py);
            let mut ready = this.ready.borrow_mut(py);
            while let Some(timer) = timers.pop_due(end_time) {
                ready.push_back(Ready::Native(timer.into_bound(py).into_super().unbind()));
            }
        }

        let debug = this.is_debug();
        // One per-callback branch, as before telemetry existed.
        let instrumented = debug || telem;
        let ntodo = this.ready.borrow(py).len();
        let spare = this.pool.borrow_mut(py).resize_for(ntodo);
        drop(spare);
        if telem {
            this.stats.borrow_mut(py).iterations += 1;
        }
        for _ in 0..ntodo {
            let item = this.ready.borrow_mut(py).pop_front();
            match item {
                None => break,
                Some(Ready::Native(handle)) => {
                    let handle = handle.into_bound(py);
                    if handle.get().is_cancelled() {
                        continue;
                    }
                    if instrumented {
                        Self::run_instrumented(slf, handle.as_any(), debug, telem)?;
                    } else {
                        Handle::run_as(&handle, true)?;
                        if Handle::recyclable(&handle) {
                            this.recycle(handle);
                        }
                    }
                    Self::flush_batched_writes(slf)?;
                }
                Some(Ready::Foreign(handle)) => {
                    let handle = handle.into_bound(py);
                    if handle.getattr(intern!(py, "_cancelled"))?.is_truthy()? {
                        continue;
                    }
                    if instrumented {
                        Self::run_instrumented(slf, &handle, debug, telem)?;
                    } else {
                        handle.call_method0(intern!(py, "_run"))?;
                    }
                    Self::flush_batched_writes(slf)?;
                }
            }
        }
        Ok(())
    }

    /// Whether the reactor watches no fd but the quiet one (see `quiet_fd`),
    /// as last computed: the answer changes only with the registrations.
    fn watches_nothing(&self, py: Python<'_>) -> bool {
        match self.fds_state.load(Relaxed) {
            FDS_QUIET => true,
            FDS_WATCHED => false,
            _ => {
                let quiet = self
                    .reactor
                    .watches_nothing_but(py, self.quiet_fd.load(Relaxed));
                let state = if quiet { FDS_QUIET } else { FDS_WATCHED };
                self.fds_state.store(state, Relaxed);
                quiet
            }
        }
    }

    /// Keep a handle that has run for reuse (see `pool`). Its payload and
    /// context are dropped after every borrow ends: destructors run Python.
    fn recycle(&self, handle: Bound<'_, Handle>) {
        let py = handle.py();
        let (payload, context) = handle.get().strip(py);
        let spare = self.pool.borrow_mut(py).offer(handle);
        drop(spare);
        if let Some(payload) = payload {
            payload.release(py);
        }
        drop(context.into_bound(py));
    }

    /// Run one callback in debug mode and/or with telemetry.
    fn run_instrumented(
        slf: &Bound<'_, Self>,
        handle: &Bound<'_, PyAny>,
        debug: bool,
        telem: bool,
    ) -> PyResult<()> {
        let py = slf.py();
        let started = telemetry::start(telem);
        if debug {
            slf.call_method1(intern!(py, "_run_handle_debug"), (handle,))?;
        } else if let Ok(native) = handle.cast::<Handle>() {
            Handle::run(native)?;
        } else {
            handle.call_method0(intern!(py, "_run"))?;
        }
        if let Some(t0) = started {
            telemetry::callback_ran(py, &slf.get().stats, t0, handle);
        }
        Ok(())
    }
}

#[pymethods]
impl LoopCore {
    /// One iteration (asyncio's `_run_once`; some code drives loops with it).
    fn _run_once(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::run_once(slf)
    }

    /// The loop proper; the Python wrapper does asyncio's setup around it.
    fn _run_core(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        this.loop_thread
            .store(super::batch::current_thread(), Relaxed);
        this.running.store(true, Relaxed);
        let result = loop {
            if let Err(err) = Self::run_once(slf) {
                break Err(err);
            }
            if this.stopping.swap(false, Relaxed) {
                break Ok(());
            }
        };
        // A callback that raised out of the loop (KeyboardInterrupt) still
        // has what it wrote sent.
        let result = result.and(Self::flush_batched_writes(slf));
        this.stopping.store(false, Relaxed);
        this.running.store(false, Relaxed);
        this.clock_state.store(CLOCK_UNKNOWN, Relaxed);
        result
    }
}
