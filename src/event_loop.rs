//! `LoopCore`: the scheduling heart of the loop, and nothing else.
//!
//! It owns the ready queue, the timer heap and the reactor, and runs
//! asyncio's iteration: drop cancelled timers, poll for I/O (GIL released)
//! with a timeout taken from the next timer, queue the I/O callbacks, then
//! the due timers, then run exactly the callbacks that were ready when the
//! iteration began. The Python `ferroloop.Loop` class mixes this base with
//! asyncio's event loop API.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering::Relaxed, Ordering::SeqCst,
};
use std::time::Duration;

use pyo3::exceptions::{PyOverflowError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFloat, PyInt, PyTuple};
use pyo3::{intern, PyTraverseError};

use crate::clock;
use crate::gil_cell::GilCell;
use crate::handle::{untracked, Args, Handle, TimerHandle};
use crate::pyhelpers::os_error;
use crate::reactor::{FdHandles, Reactor, Side};
use crate::telemetry::{self, LoopStats};
use crate::timers::TimerHeap;

static FUTURES_MODULE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TASKS_MODULE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static BASE_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// How many emptied handles a loop keeps for reuse (about 200 bytes each).
const POOL_CAP: usize = 4096;

/// asyncio's cap on one poll: a day.
const MAXIMUM_SELECT_TIMEOUT: f64 = 24.0 * 3600.0;

/// An entry of the ready queue: one of ours, or an `asyncio.Handle` handed
/// over by stdlib code (signal handlers go through `_add_callback`).
pub enum Ready {
    Native(Py<Handle>),
    Foreign(Py<PyAny>),
}

#[pyclass(frozen, subclass, module = "ferroloop._ferroloop")]
pub struct LoopCore {
    pub(crate) ready: GilCell<VecDeque<Ready>>,
    /// One-shot handles that ran and that nothing else referenced, emptied
    /// and kept for the next `call_soon` (see `Handle::recyclable`): an
    /// allocation and a deallocation less per callback. At most `POOL_CAP`.
    pool: GilCell<Vec<Py<Handle>>>,
    pub(crate) timers: GilCell<TimerHeap>,
    pub(crate) reactor: Reactor,
    stopping: AtomicBool,
    closed: AtomicBool,
    debug: AtomicBool,
    /// Set while the loop thread is (about to be) blocked in the poll: only
    /// then does a thread-safe call need to write to the waker, and only the
    /// first one (it clears the flag).
    polling: AtomicBool,
    /// asyncio's self-pipe, while no signal handler is installed: then only
    /// our own `_write_to_self` could write to it, and that is overridden to
    /// use the waker, so a zero-timeout poll with no other fd registered
    /// cannot report anything and is skipped. -1 otherwise.
    quiet_fd: AtomicI32,
    clock_resolution: f64,
    /// Inside `_run_core` (the clock check below may be cached then).
    running: AtomicBool,
    /// Whether `time` is overridden (on the instance or in a subclass),
    /// as checked once per iteration: CLOCK_UNKNOWN until asked.
    clock_state: AtomicU8,
    /// Timers whose deadline is no number (`call_at("x", cb)`): asyncio
    /// accepts them and fails in the next iteration; so do we.
    bad_timers: GilCell<Vec<Py<TimerHandle>>>,
    has_bad_timers: AtomicBool,
    /// Telemetry (see `telemetry.rs`): off unless asked for.
    pub(crate) telemetry: AtomicBool,
    pub(crate) stats: GilCell<LoopStats>,
    /// Stream transports whose writes of the running callback wait to go
    /// out together once it returns (see `transports::socket::batch`).
    batched_writes: GilCell<Vec<Py<PyAny>>>,
    /// `batched_writes` is not empty: one load per callback to check.
    has_batched: AtomicBool,
    /// The thread inside `_run_core` (`pthread_self`), while `running`.
    loop_thread: AtomicU64,
}

/// The calling thread, as `loop_thread` records it.
fn current_thread() -> u64 {
    // SAFETY: `pthread_self` has no preconditions and cannot fail.
    unsafe { libc::pthread_self() as u64 }
}

const CLOCK_UNKNOWN: u8 = 0;
const CLOCK_NATIVE: u8 = 1;
const CLOCK_OVERRIDDEN: u8 = 2;

static NATIVE_TIME: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

impl LoopCore {
    #[inline]
    pub fn is_debug(&self) -> bool {
        self.debug.load(Relaxed)
    }

    pub fn timer_cancelled(&self, py: Python<'_>) {
        self.timers.borrow_mut(py).note_cancelled();
    }

    #[inline]
    fn check_closed(&self) -> PyResult<()> {
        if self.closed.load(Relaxed) {
            return Err(PyRuntimeError::new_err("Event loop is closed"));
        }
        Ok(())
    }

    fn debug_checks(
        slf: &Bound<'_, Self>,
        callback: &Bound<'_, PyAny>,
        method: &str,
        thread: bool,
    ) -> PyResult<()> {
        let py = slf.py();
        if thread {
            slf.call_method0(intern!(py, "_check_thread"))?;
        }
        slf.call_method1(intern!(py, "_check_callback"), (callback, method))?;
        Ok(())
    }

    fn new_handle(
        slf: &Bound<'_, Self>,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
        oneshot: bool,
    ) -> PyResult<Handle> {
        Handle::build(
            slf.py(),
            callback.unbind(),
            args,
            context.map(Bound::unbind),
            slf.clone().unbind(),
            slf.get().is_debug(),
            oneshot,
        )
    }

    fn schedule_soon(
        slf: &Bound<'_, Self>,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let this = slf.get();
        let recycled = if this.is_debug() {
            None
        } else {
            this.pool.borrow_mut(py).pop()
        };
        let handle = match recycled {
            Some(h) => {
                h.get()
                    .reuse(py, callback.unbind(), args, context.map(Bound::unbind))?;
                h
            }
            None => untracked(Py::new(
                py,
                Self::new_handle(slf, callback, args, context, true)?,
            )?),
        };
        this.ready
            .borrow_mut(py)
            .push_back(Ready::Native(handle.clone_ref(py)));
        Ok(handle)
    }

    fn schedule_at(
        slf: &Bound<'_, Self>,
        when: f64,
        when_obj: Option<Py<PyAny>>,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        let py = slf.py();
        let base = Self::new_handle(slf, callback, args, context, true)?;
        let timer = TimerHandle::create(py, when, when_obj, true, base)?;
        slf.get()
            .timers
            .borrow_mut(py)
            .push(when, timer.clone_ref(py));
        Ok(timer)
    }

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
        let native = NATIVE_TIME.get_or_try_init(py, || {
            py.get_type::<LoopCore>().getattr(name).map(Bound::unbind)
        });
        match (native, slf.get_type().getattr(name)) {
            (Ok(native), Ok(found)) => found.as_ptr() != native.as_ptr(),
            _ => false,
        }
    }

    /// The loop's clock: `CLOCK_MONOTONIC`, or `self.time()` if overridden
    /// (checked at most once per iteration while the loop runs).
    fn now(slf: &Bound<'_, Self>) -> PyResult<f64> {
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
        if this.has_batched.load(Relaxed) {
            Self::flush_batched_writes(slf)?;
        }

        // Announce the poll before deciding its timeout: from here on a
        // thread that queues a callback wakes us, even if deciding lets
        // other threads run (a `time()` written in Python, a first-use
        // import: each may release the GIL).
        this.polling.store(true, SeqCst);
        let next_when = this.timers.borrow(py).next_when();
        let timeout = if !this.ready.borrow(py).is_empty() || this.stopping.load(Relaxed) {
            Some(Duration::ZERO)
        } else if let Some(when) = next_when {
            let now = Self::now(slf).inspect_err(|_| this.polling.store(false, SeqCst))?;
            let secs = (when - now).clamp(0.0, MAXIMUM_SELECT_TIMEOUT);
            Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO))
        } else {
            None
        };

        // With callbacks ready and no fd that could have become ready, the
        // zero-timeout poll has nothing to report: skip the syscall.
        let nothing_to_poll = timeout == Some(Duration::ZERO)
            && this
                .reactor
                .watches_nothing_but(py, this.quiet_fd.load(Relaxed));
        let telem = this.telemetry.load(Relaxed);
        if nothing_to_poll {
            this.polling.store(false, SeqCst);
        } else {
            let started = telemetry::start(telem);
            let polled = this.reactor.poll(py, timeout, |h| {
                this.ready.borrow_mut(py).push_back(Ready::Native(h));
            });
            this.polling.store(false, SeqCst);
            if let Some(t0) = started {
                this.stats.borrow_mut(py).poll_time += t0.elapsed();
            }
            polled?;
        }
        // Runs Python-level signal handlers (e.g. SIGINT's KeyboardInterrupt)
        // that interrupted the wait.
        py.check_signals()?;

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
                    if this.has_batched.load(Relaxed) {
                        Self::flush_batched_writes(slf)?;
                    }
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
                    if this.has_batched.load(Relaxed) {
                        Self::flush_batched_writes(slf)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether a transport write may wait for the end of the iteration:
    /// only inside the running loop, on its own thread (a write from
    /// elsewhere goes out at once, as asyncio's does).
    pub(crate) fn batching_here(&self) -> bool {
        self.running.load(Relaxed) && self.loop_thread.load(Relaxed) == current_thread()
    }

    /// Queue a transport core whose writes wait for the end of the iteration.
    pub(crate) fn batch_write(&self, py: Python<'_>, core: Py<PyAny>) {
        self.batched_writes.borrow_mut(py).push(core);
        self.has_batched.store(true, Relaxed);
    }

    /// Send the batched writes of the callback that just ran (flushing may
    /// batch again: a `pause_writing` that writes elsewhere).
    fn flush_batched_writes(slf: &Bound<'_, Self>) -> PyResult<()> {
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

    /// Keep a handle that has run for reuse (see `pool`). Its payload and
    /// context are dropped after every borrow ends: destructors run Python.
    fn recycle(&self, handle: Bound<'_, Handle>) {
        let py = handle.py();
        let stripped = handle.get().strip(py);
        let spare = {
            let mut pool = self.pool.borrow_mut(py);
            if pool.len() < POOL_CAP {
                pool.push(handle.unbind());
                None
            } else {
                Some(handle)
            }
        };
        drop(spare);
        drop(stripped);
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

    pub fn add_fd_callback(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        side: Side,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let num = Self::lookup_fd(slf, fd)?;
        let fileobj = (!fd.is_instance_of::<PyInt>()).then(|| fd.clone().unbind());
        Self::add_fd_with(slf, num, side, callback, args, fileobj, context)
    }

    /// `add_fd_callback` for a known fd number (transports); the callback
    /// runs in `context` (a copy of the current one when None, as asyncio's
    /// `Handle` does).
    pub fn add_fd(
        slf: &Bound<'_, Self>,
        fd: RawFd,
        side: Side,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        Self::add_fd_with(slf, fd, side, callback, args, None, context)
    }

    fn add_fd_with(
        slf: &Bound<'_, Self>,
        fd: RawFd,
        side: Side,
        callback: Bound<'_, PyAny>,
        args: Args,
        fileobj: Option<Py<PyAny>>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        let handle = Py::new(py, Self::new_handle(slf, callback, args, context, false)?)?;
        let replaced = this
            .reactor
            .add(py, fd, side, handle.clone_ref(py), fileobj)?;
        let mut result = Ok(handle);
        for old in &replaced.handles {
            if let Err(err) = Handle::cancel_handle(old.bind(py)) {
                result = Err(err);
            }
        }
        drop(replaced);
        result
    }

    /// selectors' `_fileobj_lookup`: the object's fd, or, for an object
    /// whose `fileno()` no longer answers (a closed socket gives -1), the
    /// fd it is registered under.
    fn lookup_fd(slf: &Bound<'_, Self>, fileobj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
        let py = slf.py();
        match fileobj_to_fd(fileobj) {
            Ok(fd) => Ok(fd),
            Err(err) if err.is_instance_of::<PyValueError>(py) => {
                slf.get().reactor.find_object(py, fileobj).ok_or(err)
            }
            Err(err) => Err(err),
        }
    }

    pub fn remove_fd_callback(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        side: Side,
    ) -> PyResult<bool> {
        if slf.get().closed.load(Relaxed) {
            return Ok(false);
        }
        let fd = Self::lookup_fd(slf, fd)?;
        Self::remove_fd(slf, fd, side)
    }

    /// `remove_fd_callback` for a known fd number (transports).
    pub fn remove_fd(slf: &Bound<'_, Self>, fd: RawFd, side: Side) -> PyResult<bool> {
        let py = slf.py();
        let this = slf.get();
        if this.closed.load(Relaxed) {
            return Ok(false);
        }
        match this.reactor.remove(py, fd, side) {
            Some(old) => {
                Handle::cancel_handle(old.bind(py))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl LoopCore {
    /// Wake the loop's poll; a failure (not a saturated eventfd: mio
    /// handles that) goes to the exception handler, as asyncio reports a
    /// failed self-pipe write in debug mode.
    fn wake(slf: &Bound<'_, Self>) {
        let py = slf.py();
        if let Err(err) = slf.get().reactor.wake(py) {
            let report = || -> PyResult<()> {
                let context = PyDict::new(py);
                context.set_item(
                    intern!(py, "message"),
                    "Fail to wake up the event loop using its waker",
                )?;
                context.set_item(intern!(py, "exception"), os_error(err).into_value(py))?;
                slf.call_method1(intern!(py, "call_exception_handler"), (context,))?;
                Ok(())
            };
            if let Err(e) = report() {
                e.write_unraisable(py, Some(slf.as_any()));
            }
        }
    }

    /// Undo an `add_fd` of the caller's, unless the registration was
    /// replaced since (then it belongs to someone else now).
    pub fn remove_fd_if(
        slf: &Bound<'_, Self>,
        fd: RawFd,
        side: Side,
        handle: &Py<Handle>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !this.closed.load(Relaxed) && this.reactor.remove_if(py, fd, side, handle) {
            Handle::cancel_handle(handle.bind(py))?;
        }
        Ok(())
    }
}

/// The scheduling methods. They are installed on the type as raw vectorcall
/// methods by `fastcall.rs` (the callback's arguments never become a tuple).
impl LoopCore {
    pub fn call_soon(
        slf: &Bound<'_, Self>,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        Self::soon(slf, callback, args, context, false)
    }

    /// `call_soon` from any thread: no thread check in debug mode, and a
    /// sleeping loop is woken.
    pub fn call_soon_threadsafe(
        slf: &Bound<'_, Self>,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        Self::soon(slf, callback, args, context, true)
    }

    fn soon(
        slf: &Bound<'_, Self>,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
        threadsafe: bool,
    ) -> PyResult<Py<Handle>> {
        let this = slf.get();
        this.check_closed()?;
        if this.is_debug() {
            let method = if threadsafe {
                "call_soon_threadsafe"
            } else {
                "call_soon"
            };
            Self::debug_checks(slf, &callback, method, !threadsafe)?;
        }
        let handle = Self::schedule_soon(slf, callback, args, context)?;
        if threadsafe {
            handle.get().set_threadsafe();
        }
        // Only the first call after the loop went to sleep pays for a wakeup.
        if threadsafe && this.polling.swap(false, SeqCst) {
            Self::wake(slf);
        }
        Ok(handle)
    }

    /// `call_at(self.time() + delay, ...)`, as asyncio defines it: a float
    /// or int delay on the fast path, anything else added in Python (so a
    /// `Fraction` gives a float and a `Decimal` a TypeError, as there).
    pub fn call_later(
        slf: &Bound<'_, Self>,
        delay: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        if delay.is_none() {
            return Err(PyTypeError::new_err("delay must not be None"));
        }
        let now = Self::now(slf)?;
        if delay.is_exact_instance_of::<PyFloat>() || delay.is_exact_instance_of::<PyInt>() {
            let when = now + delay.extract::<f64>()?;
            return Self::timer_at(slf, when, None, callback, args, context);
        }
        let when = PyFloat::new(slf.py(), now).add(delay)?;
        Self::call_at(slf, &when, callback, args, context)
    }

    /// A float deadline on the fast path; any other is kept as given for
    /// `when()` and ordered by its float value.
    pub fn call_at(
        slf: &Bound<'_, Self>,
        when: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        if when.is_none() {
            return Err(PyTypeError::new_err("when cannot be None"));
        }
        if when.is_exact_instance_of::<PyFloat>() {
            return Self::timer_at(slf, when.extract()?, None, callback, args, context);
        }
        match when.extract::<f64>() {
            Ok(value) => Self::timer_at(
                slf,
                value,
                Some(when.clone().unbind()),
                callback,
                args,
                context,
            ),
            Err(err) if err.is_instance_of::<PyTypeError>(slf.py()) => {
                Self::bad_timer(slf, when, callback, args, context)
            }
            Err(err) => Err(err),
        }
    }

    /// A timer whose deadline is no number: kept aside, and the next
    /// iteration fails on it (see `check_bad_timers`).
    fn bad_timer(
        slf: &Bound<'_, Self>,
        when: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        let base = Self::new_handle(slf, callback, args, context, true)?;
        let timer = TimerHandle::create(py, f64::NAN, Some(when.clone().unbind()), false, base)?;
        this.bad_timers.borrow_mut(py).push(timer.clone_ref(py));
        this.has_bad_timers.store(true, Relaxed);
        Ok(timer)
    }

    fn timer_at(
        slf: &Bound<'_, Self>,
        when: f64,
        when_obj: Option<Py<PyAny>>,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        let this = slf.get();
        this.check_closed()?;
        if this.is_debug() {
            Self::debug_checks(slf, &callback, "call_at", true)?;
        }
        Self::schedule_at(slf, when, when_obj, callback, args, context)
    }
}

/// The loop's edge to one of its handles. A tracked handle is visited
/// itself; an untracked one only the loop references has its contents
/// reported as the loop's own (the collector cannot see through it).
fn visit_owned_handle(handle: &Py<Handle>, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
    let ptr = handle.as_ptr();
    // SAFETY: reading the GC flag and refcount of an object we keep alive.
    let (tracked, refcnt) = unsafe {
        (
            pyo3::ffi::PyObject_GC_IsTracked(ptr) != 0,
            pyo3::ffi::Py_REFCNT(ptr),
        )
    };
    if tracked {
        visit.call(handle)
    } else if refcnt == 1 {
        handle.get().visit_contents(visit)
    } else {
        Ok(())
    }
}

/// selectors' `_fileobj_to_fd`: an int, or an object with `fileno()`.
pub fn fileobj_to_fd(fileobj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    let fd: i64 = if fileobj.is_instance_of::<PyInt>() {
        fileobj.extract().map_err(|_| {
            if fileobj.lt(0).unwrap_or(false) {
                PyValueError::new_err(format!("Invalid file descriptor: {fileobj}"))
            } else {
                PyOverflowError::new_err("Python int too large to convert to C int")
            }
        })?
    } else {
        let invalid =
            || PyValueError::new_err(format!("Invalid file object: {}", repr_of(fileobj)));
        let fileno = fileobj
            .call_method0(intern!(fileobj.py(), "fileno"))
            .map_err(|_| invalid())?;
        fileno
            .call_method0(intern!(fileobj.py(), "__index__"))
            .and_then(|i| i.extract())
            .map_err(|_| invalid())?
    };
    if fd < 0 {
        return Err(PyValueError::new_err(format!(
            "Invalid file descriptor: {fd}"
        )));
    }
    // What epoll.register says of a number that is no C int.
    RawFd::try_from(fd)
        .map_err(|_| PyOverflowError::new_err("Python int too large to convert to C int"))
}

fn to_args(args: &Bound<'_, PyTuple>) -> Args {
    args.iter().map(Bound::unbind).collect()
}

fn repr_of(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<object>".into())
}

#[pymethods]
impl LoopCore {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let mut res = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `res` is a valid, writable timespec.
        unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC, &mut res) };
        Ok(LoopCore {
            ready: GilCell::new(VecDeque::with_capacity(1024)),
            pool: GilCell::new(Vec::new()),
            timers: GilCell::new(TimerHeap::default()),
            reactor: Reactor::new()?,
            stopping: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            debug: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            quiet_fd: AtomicI32::new(-1),
            clock_resolution: res.tv_sec as f64 + res.tv_nsec as f64 * 1e-9,
            running: AtomicBool::new(false),
            clock_state: AtomicU8::new(CLOCK_UNKNOWN),
            bad_timers: GilCell::new(Vec::new()),
            has_bad_timers: AtomicBool::new(false),
            telemetry: AtomicBool::new(false),
            stats: GilCell::new(LoopStats::default()),
            batched_writes: GilCell::new(Vec::new()),
            has_batched: AtomicBool::new(false),
            loop_thread: AtomicU64::new(0),
        })
    }

    /// `time.monotonic()`, as asyncio's loop clock.
    fn time(&self) -> f64 {
        clock::monotonic()
    }

    /// `asyncio.Future(loop=self)`, without a Python frame in between.
    pub fn create_future<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let kwargs = PyDict::new(py);
        kwargs.set_item(intern!(py, "loop"), slf)?;
        // Looked up per call, as asyncio's `futures.Future(loop=self)` is:
        // code (and CPython's tests) may replace the class.
        FUTURES_MODULE
            .import(py, "asyncio", "futures")?
            .getattr(intern!(py, "Future"))?
            .call((), Some(&kwargs))
    }

    /// asyncio's `create_task`: `Task(coro, loop=self, **kwargs)` directly
    /// when no task factory is set and debug is off; asyncio's own code
    /// otherwise. Keywords pass through, so newer ones (3.14's
    /// `eager_start`) reach the Task of the running Python.
    #[pyo3(signature = (coro, **kwargs))]
    fn create_task<'py>(
        slf: &Bound<'py, Self>,
        coro: Bound<'py, PyAny>,
        kwargs: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        let kwargs = match kwargs {
            Some(kw) => kw.copy()?,
            None => PyDict::new(py),
        };
        if this.is_debug() || !slf.getattr(intern!(py, "_task_factory"))?.is_none() {
            let base = BASE_LOOP.import(py, "asyncio.base_events", "BaseEventLoop")?;
            return base
                .getattr(intern!(py, "create_task"))?
                .call((slf, coro), Some(&kwargs));
        }
        kwargs.set_item(intern!(py, "loop"), slf)?;
        TASKS_MODULE
            .import(py, "asyncio", "tasks")?
            .getattr(intern!(py, "Task"))?
            .call((coro,), Some(&kwargs))
    }

    /// Ask `run_forever` to return after the current iteration.
    fn stop(slf: &Bound<'_, Self>) {
        let this = slf.get();
        this.stopping.store(true, Relaxed);
        if this.polling.swap(false, SeqCst) {
            Self::wake(slf);
        }
    }

    /// Queue an existing handle (asyncio's `_add_callback`).
    fn _add_callback(slf: &Bound<'_, Self>, handle: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let item = match handle.cast::<Handle>() {
            Ok(h) if h.get().is_cancelled() => return Ok(()),
            Ok(h) => Ready::Native(h.clone().unbind()),
            Err(_) => {
                if handle.getattr(intern!(py, "_cancelled"))?.is_truthy()? {
                    return Ok(());
                }
                Ready::Foreign(handle.unbind())
            }
        };
        slf.get().ready.borrow_mut(py).push_back(item);
        Ok(())
    }

    /// Wake the loop if it is blocked in the poll (asyncio's self-pipe write).
    fn _write_to_self(slf: &Bound<'_, Self>) {
        Self::wake(slf);
    }

    /// `context=` is what asyncio 3.15's transports pass.
    #[pyo3(signature = (fd, callback, *args, context=None))]
    fn _add_reader(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        Self::add_fd_callback(slf, fd, Side::Read, callback, to_args(&args), context)
    }

    /// `context=` is what asyncio 3.15's transports pass.
    #[pyo3(signature = (fd, callback, *args, context=None))]
    fn _add_writer(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        Self::add_fd_callback(slf, fd, Side::Write, callback, to_args(&args), context)
    }

    fn _remove_reader(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        Self::remove_fd_callback(slf, fd, Side::Read)
    }

    fn _remove_writer(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        Self::remove_fd_callback(slf, fd, Side::Write)
    }

    /// The reader and writer handles of `fd` (either may be None): what
    /// asyncio code reads through `loop._selector.get_key(fd).data`.
    fn _fd_callbacks(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<FdHandles> {
        Ok(slf
            .get()
            .reactor
            .handles(slf.py(), Self::lookup_fd(slf, fd)?))
    }

    /// One iteration (asyncio's `_run_once`; some code drives loops with it).
    fn _run_once(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::run_once(slf)
    }

    /// The loop proper; the Python wrapper does asyncio's setup around it.
    fn _run_core(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        this.loop_thread.store(current_thread(), Relaxed);
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
        let flushed = Self::flush_batched_writes(slf);
        let result = result.and(flushed);
        this.stopping.store(false, Relaxed);
        this.running.store(false, Relaxed);
        this.clock_state.store(CLOCK_UNKNOWN, Relaxed);
        result
    }

    /// See `quiet_fd`: the Python side keeps it in step with the signal
    /// handlers (-1 while any is installed).
    fn _set_quiet_fd(&self, fd: RawFd) {
        self.quiet_fd.store(fd, Relaxed);
    }

    fn _set_debug_core(&self, enabled: bool) {
        self.debug.store(enabled, Relaxed);
    }

    /// Mark closed and drop everything queued or registered.
    fn _close_core(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let this = slf.get();
        // Writes a callback that raised left (see `_run_core`) still go out.
        if let Err(err) = Self::flush_batched_writes(slf) {
            err.write_unraisable(py, Some(slf.as_any()));
        }
        this.closed.store(true, Relaxed);
        let ready: Vec<Ready> = this.ready.borrow_mut(py).drain(..).collect();
        let timers = this.timers.borrow_mut(py).take_all();
        let fds = this.reactor.take_all(py);
        let pool = std::mem::take(&mut *this.pool.borrow_mut(py));
        drop(pool);
        this.reactor.close(py);
        for item in &ready {
            if let Ready::Native(h) = item {
                Handle::track_if_shared(h.bind(py));
            }
        }
        for entry in &timers {
            Handle::track_if_shared(entry.handle.bind(py).as_super());
        }
        drop((ready, timers, fds));
    }

    /// Put pending handles that Python code also holds (e.g. the timer a
    /// sleeping `asyncio.sleep` keeps), and the private contexts of the
    /// others, under the cycle collector. Called before full collections, so
    /// cycles through pending callbacks and unclosed loops dropped with
    /// sleeping tasks are reclaimed, as with asyncio.
    fn _track_shared_handles(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let this = slf.get();
        let mut shared: Vec<Py<Handle>> = Vec::new();
        if let Ok(ready) = this.ready.try_borrow(py) {
            shared.extend(ready.iter().filter_map(|item| match item {
                Ready::Native(h) => Some(h.clone_ref(py)),
                Ready::Foreign(_) => None,
            }));
        }
        if let Ok(timers) = this.timers.try_borrow(py) {
            shared.extend(
                timers
                    .handles()
                    .map(|t| t.clone_ref(py).into_bound(py).into_super().unbind()),
            );
        }
        for h in shared {
            // Ours plus the queue's make two; more means someone else.
            // SAFETY: reading the refcount of an object we hold.
            if unsafe { pyo3::ffi::Py_REFCNT(h.as_ptr()) } > 2 {
                Handle::track_shared(h.bind(py));
            } else {
                // Reported through the loop's traverse, which can only see
                // into the context if the collector tracks it.
                h.get().track_context();
            }
        }
    }

    #[getter]
    fn _timer_count(slf: &Bound<'_, Self>) -> usize {
        slf.get().timers.borrow(slf.py()).len()
    }

    #[getter]
    fn _ready_count(slf: &Bound<'_, Self>) -> usize {
        slf.get().ready.borrow(slf.py()).len()
    }

    /// Pending native handles are untracked (see `handle::untracked`); the
    /// ones only the loop references are reported as part of the loop, so
    /// a dropped, unclosed loop with pending callbacks is still collected.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(ready) = self.ready.unguarded() {
            for item in ready.iter() {
                match item {
                    Ready::Native(h) => visit_owned_handle(h, &visit)?,
                    Ready::Foreign(h) => visit.call(h)?,
                }
            }
        }
        if let Some(timers) = self.timers.unguarded() {
            for timer in timers.handles() {
                // SAFETY: `Py<T>` is a transparent pointer, and a TimerHandle
                // object is a Handle object (its base class, same layout prefix).
                let base: &Py<Handle> =
                    unsafe { &*(timer as *const Py<TimerHandle>).cast::<Py<Handle>>() };
                visit_owned_handle(base, &visit)?;
            }
        }
        if let Some(pool) = self.pool.unguarded() {
            for h in pool.iter() {
                visit_owned_handle(h, &visit)?;
            }
        }
        let mut result = Ok(());
        self.reactor.for_each_handle_unguarded(|h| {
            if result.is_ok() {
                result = visit_owned_handle(h, &visit);
            }
        });
        self.reactor.for_each_fileobj_unguarded(|obj| {
            if result.is_ok() {
                result = visit.call(obj);
            }
        });
        result
    }

    fn __clear__(&self) {
        let ready = self
            .ready
            .unguarded()
            .map(|mut r| r.drain(..).collect::<Vec<_>>());
        let timers = self.timers.unguarded().map(|mut t| t.take_all());
        let fds = self.reactor.take_all_unguarded();
        let pool = self.pool.unguarded().map(|mut p| std::mem::take(&mut *p));
        drop((ready, timers, fds, pool));
    }
}
