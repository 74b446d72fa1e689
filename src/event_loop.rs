//! `LoopCore`: the scheduling heart of the loop, and nothing else.
//!
//! It owns the ready queue, the timer heap and the reactor, and runs
//! asyncio's iteration: drop cancelled timers, poll for I/O (GIL released)
//! with a timeout taken from the next timer, queue the I/O callbacks, then
//! the due timers, then run exactly the callbacks that were ready when the
//! iteration began. The Python `ferroloop.Loop` class mixes this base with
//! asyncio's event loop API.
//!
//! - `run`: one iteration (`_run_once`), the clock, running callbacks.
//! - `schedule`: `call_soon`/`call_later`/`call_at` and friends.
//! - `fds`: `add_reader`/`add_writer` and their removal.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering::Relaxed, Ordering::SeqCst,
};

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{intern, PyTraverseError};
use smallvec::SmallVec;

use crate::clock;
use crate::context::SnapshotCache;
use crate::gil_cell::GilCell;
use crate::handle::{Handle, OwnedEdge, TimerHandle};
use crate::pyhelpers::os_error;
use crate::reactor::Reactor;
use crate::telemetry::LoopStats;
use crate::timers::TimerHeap;
use crate::traverse::{Traverse, TraverseResult};

mod batch;
mod fds;
mod run;
mod schedule;

pub use fds::fileobj_to_fd;

static FUTURES_DICT: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
static TASKS_DICT: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
static LOOP_KWNAME: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();
static BASE_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// How many emptied handles a loop keeps for reuse (128 bytes each):
/// as many as the last iteration ran, within these bounds. A burst of
/// callbacks (a thread calling `call_soon_threadsafe` in a loop) is then
/// served from the handles the previous burst left, instead of fresh
/// memory the allocator maps and unmaps around every burst.
const POOL_MIN: usize = 4096;
const POOL_MAX: usize = 65536;

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
    /// allocation and a deallocation less per callback (see `POOL_MIN`).
    pool: GilCell<HandlePool>,
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
    /// Whether the reactor watches nothing but `quiet_fd` (`FDS_QUIET`),
    /// something else (`FDS_WATCHED`), or not known since the last change
    /// to the registrations (`FDS_UNKNOWN`).
    fds_state: AtomicU8,
    clock_resolution: f64,
    /// Inside `_run_core` (the clock check below may be cached then).
    running: AtomicBool,
    /// Whether `time` is overridden (on the instance or in a subclass),
    /// as checked once per iteration: CLOCK_UNKNOWN until asked.
    clock_state: AtomicU8,
    /// Whether the class overrides `time`, for the class version tag it
    /// was computed at: `tag << 1 | overridden`, 0 when not known (see
    /// `time_overridden`). Makes the check cheap outside a running loop.
    clock_type: AtomicU64,
    /// Timers whose deadline is no number (`call_at("x", cb)`): asyncio
    /// accepts them and fails in the next iteration; so do we.
    bad_timers: GilCell<Vec<Py<TimerHandle>>>,
    has_bad_timers: AtomicBool,
    /// Telemetry (see `telemetry.rs`): off unless asked for.
    pub(crate) telemetry: AtomicBool,
    pub(crate) stats: GilCell<LoopStats>,
    /// Stream transports whose writes of the running callback wait to go
    /// out together once it returns (see `batch`).
    batched_writes: GilCell<Vec<Py<PyAny>>>,
    /// `batched_writes` is not empty: one load per callback to check.
    has_batched: AtomicBool,
    /// The thread inside `_run_core` (`pthread_self`), while `running`.
    loop_thread: AtomicU64,
    /// The context snapshot pending one-shot handles share (`context.rs`).
    snapshot: SnapshotCache,
    /// `{"loop": self}`, the keywords `call_with_loop` passes to a class
    /// called through `tp_call` (see there).
    loop_kwargs: GilCell<Option<Py<PyDict>>>,
}

const FDS_UNKNOWN: u8 = 0;
const FDS_QUIET: u8 = 1;
const FDS_WATCHED: u8 = 2;

const CLOCK_UNKNOWN: u8 = 0;
const CLOCK_NATIVE: u8 = 1;
const CLOCK_OVERRIDDEN: u8 = 2;

static NATIVE_TIME: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

impl LoopCore {
    #[inline]
    pub fn is_debug(&self) -> bool {
        self.debug.load(Relaxed)
    }

    /// The context for a new one-shot handle without `context=`, and
    /// whether it is a shared snapshot (see `context.rs`).
    pub fn context_snapshot(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, bool)> {
        self.snapshot.context(py)
    }

    /// The snapshot cache, whose spare copy handles run in (`context.rs`).
    pub fn snapshots(&self) -> &SnapshotCache {
        &self.snapshot
    }

    pub fn timer_cancelled(&self, py: Python<'_>) {
        self.timers.borrow_mut(py).note_cancelled();
    }

    /// The fd registrations (or the quiet fd) changed: see `fds_state`.
    #[inline]
    fn fds_changed(&self) {
        self.fds_state.store(FDS_UNKNOWN, Relaxed);
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
}

/// `module.name`, read from the module's dict (the module is imported
/// once): what `getattr` finds for a plain module, without the attribute
/// protocol. A name missing from the dict goes through `getattr`, for its
/// error or a module `__getattr__`.
fn module_attr<'py>(
    py: Python<'py>,
    dict: &PyOnceLock<Py<PyDict>>,
    module: &str,
    name: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyAny>> {
    let found = dict
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import(module)?.dict().unbind()))?
        .bind(py)
        .get_item(name)?;
    match found {
        Some(value) => Ok(value),
        None => py.import(module)?.getattr(name),
    }
}

/// `cls(*args, loop=slf)`, the keyword passed by name (no dict built).
///
/// Not `cls(*args)` while this is the running loop, though the result is
/// the same: on 3.11 each look-up of the running loop costs a `getpid()`
/// system call (the fork check), more than the keyword parsing saved.
fn call_with_loop<'py>(
    slf: &Bound<'py, LoopCore>,
    cls: &Bound<'py, PyAny>,
    args: &[*mut ffi::PyObject],
) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    // SAFETY: a type check, then a field read of a live type object.
    let through_tp_call = unsafe {
        ffi::PyType_Check(cls.as_ptr()) != 0
            && (*cls.as_ptr().cast::<ffi::PyTypeObject>())
                .tp_vectorcall
                .is_none()
    };
    if through_tp_call {
        return call_with_loop_dict(slf, cls, args);
    }
    let mut argv: SmallVec<[*mut ffi::PyObject; 3]> = args.iter().copied().collect();
    argv.push(slf.as_ptr());
    let kwnames =
        LOOP_KWNAME.get_or_try_init(py, || PyTuple::new(py, ["loop"]).map(Bound::unbind))?;
    // SAFETY: `cls`, the arguments (borrowed from the caller) and `kwnames`
    // are alive for the call; `argv` holds the positional arguments, then
    // the one keyword value `kwnames` names. A new reference or NULL with
    // an error comes back.
    unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyObject_Vectorcall(cls.as_ptr(), argv.as_ptr(), args.len(), kwnames.as_ptr()),
        )
    }
}

/// `call_with_loop` for a class without a vectorcall of its own (asyncio's
/// C `Future` and `Task`): `PyObject_Vectorcall` would build a keyword dict
/// from the names for `tp_call`, one allocated and freed per Future and
/// Task. The loop keeps one `{"loop": self}` for them instead; a callee
/// that kept or changed it gets it for good, and a new one is made.
fn call_with_loop_dict<'py>(
    slf: &Bound<'py, LoopCore>,
    cls: &Bound<'py, PyAny>,
    args: &[*mut ffi::PyObject],
) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    // Out of its cell for the call: a nested call makes its own.
    let cached = slf.get().loop_kwargs.borrow_mut(py).take();
    let kwargs = match cached {
        Some(d) => d.into_bound(py),
        None => {
            let d = PyDict::new(py);
            d.set_item(intern!(py, "loop"), slf)?;
            d
        }
    };
    // SAFETY: the arguments are borrowed from the caller, alive for the call.
    let args = PyTuple::new(
        py,
        args.iter()
            .map(|&a| unsafe { Bound::from_borrowed_ptr(py, a) }),
    )?;
    // SAFETY: `cls`, `args` and `kwargs` are alive for the call; a new
    // reference or NULL with an error comes back.
    let result = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyObject_Call(cls.as_ptr(), args.as_ptr(), kwargs.as_ptr()),
        )
    };
    // SAFETY: reading the refcount of a live object we hold.
    let untouched = unsafe { ffi::Py_REFCNT(kwargs.as_ptr()) } == 1
        && kwargs.len() == 1
        && kwargs
            .get_item(intern!(py, "loop"))
            .ok()
            .flatten()
            .is_some_and(|v| v.is(slf));
    // Not kept once closed: the dict holds the loop, a cycle that would
    // keep a closed loop alive until a full collection.
    if untouched && !slf.get().closed.load(Relaxed) {
        let mut cell = slf.get().loop_kwargs.borrow_mut(py);
        if cell.is_none() {
            *cell = Some(kwargs.unbind());
        }
    }
    result
}

/// A queued callback is the loop's own edge (see `OwnedEdge`); a foreign
/// `asyncio.Handle` is an ordinary reference.
impl Traverse for Ready {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        match self {
            Ready::Native(h) => OwnedEdge(h).traverse(visit),
            Ready::Foreign(h) => h.traverse(visit),
        }
    }
}

/// Emptied handles kept for reuse (see `LoopCore::pool`).
pub(crate) struct HandlePool {
    handles: Vec<Py<Handle>>,
    cap: usize,
}

impl Default for HandlePool {
    fn default() -> Self {
        HandlePool {
            handles: Vec::new(),
            cap: POOL_MIN,
        }
    }
}

impl HandlePool {
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Py<Handle>> {
        self.handles.pop()
    }

    /// Keep `handle`, or give it back when the pool is full.
    #[inline]
    pub(crate) fn offer<'py>(&mut self, handle: Bound<'py, Handle>) -> Option<Bound<'py, Handle>> {
        if self.handles.len() < self.cap {
            self.handles.push(handle.unbind());
            None
        } else {
            Some(handle)
        }
    }

    pub(crate) fn take(&mut self) -> Vec<Py<Handle>> {
        std::mem::take(&mut self.handles)
    }

    /// Size the pool for an iteration about to run `ntodo` callbacks, and
    /// return what it keeps beyond that (to be dropped after the borrow).
    pub(crate) fn resize_for(&mut self, ntodo: usize) -> Vec<Py<Handle>> {
        self.cap = ntodo.clamp(POOL_MIN, POOL_MAX);
        if self.handles.len() > self.cap {
            self.handles.split_off(self.cap)
        } else {
            Vec::new()
        }
    }
}

impl Traverse for HandlePool {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        self.handles
            .iter()
            .try_for_each(|h| OwnedEdge(h).traverse(visit))
    }
}

/// The reactor's handles are the loop's own edges; its file objects are
/// ordinary references.
impl Traverse for Reactor {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        let mut result = Ok(());
        self.for_each_handle_unguarded(|h| {
            if result.is_ok() {
                result = OwnedEdge(h).traverse(visit);
            }
        });
        self.for_each_fileobj_unguarded(|obj| {
            if result.is_ok() {
                result = visit.call(obj);
            }
        });
        result
    }
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
            pool: GilCell::new(HandlePool::default()),
            timers: GilCell::new(TimerHeap::default()),
            reactor: Reactor::new()?,
            stopping: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            debug: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            quiet_fd: AtomicI32::new(-1),
            fds_state: AtomicU8::new(FDS_UNKNOWN),
            clock_resolution: res.tv_sec as f64 + res.tv_nsec as f64 * 1e-9,
            running: AtomicBool::new(false),
            clock_state: AtomicU8::new(CLOCK_UNKNOWN),
            clock_type: AtomicU64::new(0),
            bad_timers: GilCell::new(Vec::new()),
            has_bad_timers: AtomicBool::new(false),
            telemetry: AtomicBool::new(false),
            stats: GilCell::new(LoopStats::default()),
            batched_writes: GilCell::new(Vec::new()),
            has_batched: AtomicBool::new(false),
            loop_thread: AtomicU64::new(0),
            snapshot: SnapshotCache::new(),
            loop_kwargs: GilCell::new(None),
        })
    }

    /// `time.monotonic()`, as asyncio's loop clock.
    fn time(&self) -> f64 {
        clock::monotonic()
    }

    /// `asyncio.Future(loop=self)`, without a Python frame in between.
    pub fn create_future<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        // Looked up per call, as asyncio's `futures.Future(loop=self)` is:
        // code (and CPython's tests) may replace the class.
        let cls = module_attr(py, &FUTURES_DICT, "asyncio.futures", intern!(py, "Future"))?;
        call_with_loop(slf, &cls, &[])
    }

    /// `return self._debug`, as asyncio's, without a Python frame: every
    /// Future and Task asks at creation. Read from the instance dict when
    /// it is there (asyncio keeps it there), through `getattr` otherwise.
    fn get_debug<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let name = intern!(py, "_debug");
        // SAFETY: GenericGetDict returns a new reference or NULL with an
        // error set (cleared: getattr below answers); GetItemWithError a
        // borrowed one, taken over with an incref while `dict` is alive.
        let found = unsafe {
            let dict = ffi::PyObject_GenericGetDict(slf.as_ptr(), std::ptr::null_mut());
            if dict.is_null() {
                ffi::PyErr_Clear();
                None
            } else {
                let item = ffi::PyDict_GetItemWithError(dict, name.as_ptr());
                let found = (!item.is_null()).then(|| Bound::from_borrowed_ptr(py, item));
                ffi::Py_DECREF(dict);
                found
            }
        };
        match found {
            Some(value) => Ok(value),
            None => {
                if PyErr::occurred(py) {
                    if let Some(err) = PyErr::take(py) {
                        return Err(err);
                    }
                }
                slf.getattr(name)
            }
        }
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
            Some(kw) => Some(kw.copy()?),
            None => None,
        };
        if this.is_debug() || !slf.getattr(intern!(py, "_task_factory"))?.is_none() {
            let base = BASE_LOOP.import(py, "asyncio.base_events", "BaseEventLoop")?;
            return base
                .getattr(intern!(py, "create_task"))?
                .call((slf, coro), kwargs.as_ref());
        }
        let task = module_attr(py, &TASKS_DICT, "asyncio.tasks", intern!(py, "Task"))?;
        let Some(kwargs) = kwargs.filter(|kw| !kw.is_empty()) else {
            return call_with_loop(slf, &task, &[coro.as_ptr()]);
        };
        kwargs.set_item(intern!(py, "loop"), slf)?;
        task.call((coro,), Some(&kwargs))
    }

    /// Ask `run_forever` to return after the current iteration.
    fn stop(slf: &Bound<'_, Self>) {
        let this = slf.get();
        this.stopping.store(true, Relaxed);
        if this.polling.swap(false, SeqCst) {
            Self::wake(slf);
        }
    }

    /// Wake the loop if it is blocked in the poll (asyncio's self-pipe write).
    fn _write_to_self(slf: &Bound<'_, Self>) {
        Self::wake(slf);
    }

    /// See `quiet_fd`: the Python side keeps it in step with the signal
    /// handlers (-1 while any is installed).
    fn _set_quiet_fd(&self, fd: RawFd) {
        self.quiet_fd.store(fd, Relaxed);
        self.fds_changed();
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
        this.fds_changed();
        let pool = this.pool.borrow_mut(py).take();
        drop(pool);
        this.snapshot.clear(py);
        // `{"loop": self}` is a cycle: a closed loop is freed by refcount.
        let kwargs = this.loop_kwargs.borrow_mut(py).take();
        this.reactor.close(py);
        for item in &ready {
            if let Ready::Native(h) = item {
                Handle::track_if_shared(h.bind(py));
            }
        }
        for entry in &timers {
            Handle::track_if_shared(entry.handle.bind(py).as_super());
        }
        drop((ready, timers, fds, kwargs));
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
        (
            &self.ready,
            &self.timers,
            &self.pool,
            &self.reactor,
            &self.snapshot,
            &self.loop_kwargs,
        )
            .traverse(&visit)
    }

    fn __clear__(&self) {
        let ready = self
            .ready
            .unguarded()
            .map(|mut r| r.drain(..).collect::<Vec<_>>());
        let timers = self.timers.unguarded().map(|mut t| t.take_all());
        let fds = self.reactor.take_all_unguarded();
        self.fds_changed();
        let pool = self.pool.unguarded().map(|mut p| p.take());
        let snapshot = self.snapshot.take_unguarded();
        let kwargs = self.loop_kwargs.unguarded().and_then(|mut k| k.take());
        drop((ready, timers, fds, pool, snapshot, kwargs));
    }
}
