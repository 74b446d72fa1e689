//! `Handle` and `TimerHandle`: the objects `call_soon`/`call_later` return.
//!
//! They mirror `asyncio.events.Handle`/`TimerHandle`: `cancel()` drops the
//! callback and its arguments at once (so a cancelled timer keeps nothing
//! alive), every run happens inside the handle's `contextvars.Context`, and an
//! exception escaping the callback goes to the loop's exception handler with
//! the same message and context keys asyncio uses. Only `KeyboardInterrupt`
//! and `SystemExit` propagate, out of `run_forever`.

use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Relaxed, SeqCst},
};

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::ffi;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{intern, PyTraverseError};
use smallvec::SmallVec;

use crate::compat;
use crate::context;
use crate::event_loop::LoopCore;
use crate::gil_cell::GilCell;
use crate::live::{Handles, Live};
use crate::pyhelpers;
use crate::traverse::{Traverse, TraverseResult};

pub mod alloc;
mod timer;

pub use timer::TimerHandle;

/// A callback's positional arguments, stored inline: no tuple is built to
/// schedule a callback, and the call itself is a vectorcall.
pub type Args = SmallVec<[Py<PyAny>; 2]>;

/// What a handle calls: dropped on `cancel()`.
pub struct Payload {
    pub callback: Py<PyAny>,
    pub args: Args,
}

impl Payload {
    fn clone_ref(&self, py: Python<'_>) -> Payload {
        Payload {
            callback: self.callback.clone_ref(py),
            args: self.args.iter().map(|a| a.clone_ref(py)).collect(),
        }
    }

    /// Drop the references through `Bound` (a direct decref; dropping a
    /// `Py` first asks a thread-local whether the GIL is held).
    pub fn release(self, py: Python<'_>) {
        drop(self.callback.into_bound(py));
        for arg in self.args {
            drop(arg.into_bound(py));
        }
    }

    /// The arguments as the tuple asyncio keeps in `Handle._args`.
    pub fn args_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.args.iter().map(|a| a.bind(py)))
    }
}

#[pyclass(frozen, subclass, weakref, module = "ferroloop._ferroloop")]
pub struct Handle {
    /// What changes, in one cell: a handle is two cache lines with its
    /// object and GC headers (a burst of `call_soon_threadsafe` or a heap of
    /// timers is that many fresh bytes per callback).
    slot: GilCell<Slot>,
    loop_: Py<LoopCore>,
    cancelled: AtomicBool,
    /// Only in debug mode: where the handle was created (asyncio's format).
    source_traceback: Option<Py<PyAny>>,
    /// `call_soon`/`call_later` handles run once; fd handles (`add_reader`)
    /// run on every readiness and stay owned by the reactor.
    oneshot: bool,
    /// `context` is a snapshot shared with other pending handles: it is
    /// copied before it is entered or shown (see `context.rs`).
    context_shared: AtomicBool,
    /// A `call_soon_threadsafe` handle on 3.14+ (asyncio's `_ThreadSafeHandle`):
    /// `cancel()`/`cancelled()` from another thread wait while it runs.
    threadsafe: AtomicBool,
    /// The thread running the callback now (`pthread_self`), or 0.
    running_in: AtomicU64,
    _live: Live<Handles>,
}

/// A handle's mutable state.
struct Slot {
    payload: Option<Payload>,
    /// Replaceable so that a handle can trade a shared snapshot for its own
    /// copy (see `context.rs`) and a recycled one can take a new context.
    context: Py<PyAny>,
    /// Debug mode keeps the repr of a cancelled handle, as asyncio does.
    /// Boxed: one word here instead of a `String`'s three (or a `Box<str>`'s
    /// two) keeps the handle in two cache lines; debug mode pays the extra
    /// allocation.
    #[allow(clippy::box_collection)]
    cancelled_repr: Option<Box<String>>,
}

impl Handle {
    /// Make this a thread-safe handle (see `threadsafe`); 3.14+ only.
    pub fn set_threadsafe(&self) {
        if compat::THREADSAFE_HANDLE_LOCK {
            self.threadsafe.store(true, Relaxed);
        }
    }

    /// asyncio's `_ThreadSafeHandle` lock: while the callback runs in
    /// another thread, wait (without the GIL) until it returns. The
    /// running thread itself never waits (asyncio's lock is reentrant).
    fn wait_until_not_running(&self, py: Python<'_>) {
        if !self.threadsafe.load(Relaxed) {
            return;
        }
        let runner = self.running_in.load(SeqCst);
        if runner == 0 || runner == current_thread() {
            return;
        }
        py.detach(|| running::wait(&self.running_in));
    }

    /// Build a handle; `context=None` copies the current context, like asyncio.
    pub fn build(
        py: Python<'_>,
        callback: Py<PyAny>,
        args: Args,
        context: Option<Py<PyAny>>,
        loop_: Py<LoopCore>,
        debug: bool,
        oneshot: bool,
    ) -> PyResult<Handle> {
        // fd handles run many times in one context of their own.
        let (context, shared) = match context {
            Some(ctx) if !ctx.is_none(py) => (ctx, false),
            _ if oneshot => loop_.get().context_snapshot(py)?,
            _ => (context::copy_current(py)?, false),
        };
        let source_traceback = if debug {
            Some(pyhelpers::extract_stack(py)?)
        } else {
            None
        };
        Ok(Handle {
            slot: GilCell::new(Slot {
                payload: Some(Payload { callback, args }),
                context,
                cancelled_repr: None,
            }),
            loop_,
            cancelled: AtomicBool::new(false),
            source_traceback,
            oneshot,
            context_shared: AtomicBool::new(shared),
            threadsafe: AtomicBool::new(false),
            running_in: AtomicU64::new(0),
            _live: Live::new(),
        })
    }

    /// The handle's own context: a shared snapshot is first traded for a
    /// copy, which the handle keeps (`get_context()` is stable, and shows
    /// what the callback set once it ran).
    fn own_context<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (context, snapshot) = self.take_own_context(py)?;
        // After the borrow: the last reference to a snapshot may free a
        // variable's value.
        drop(snapshot);
        Ok(context)
    }

    /// `own_context`, also returning the snapshot it replaced, if any.
    fn take_own_context<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Option<Py<PyAny>>)> {
        if !self.context_shared.load(Relaxed) {
            return Ok((self.slot.borrow(py).context.bind(py).clone(), None));
        }
        let current = self.slot.borrow(py).context.bind(py).clone();
        // SAFETY: reading the refcount of a live object we hold.
        if unsafe { ffi::Py_REFCNT(current.as_ptr()) } == 2 {
            // Ours and the handle's: no other handle or loop shares the
            // snapshot any more (it never leaves Rust), so it is this
            // handle's own copy now.
            self.context_shared.store(false, Relaxed);
            return Ok((current, None));
        }
        let copy = self.loop_.get().snapshots().copy_of(&current)?;
        drop(current);
        let snapshot =
            std::mem::replace(&mut self.slot.borrow_mut(py).context, copy.clone().unbind());
        self.context_shared.store(false, Relaxed);
        Ok((copy, Some(snapshot)))
    }

    /// After a run in a copy of `snapshot`: if nothing can tell the copy
    /// from a fresh one (no variable set, no reference or weak reference
    /// kept), go back to the snapshot and let the copy return to CPython's
    /// free list. Keeping a copy per handle that Python code holds would
    /// make every run allocate an object that lives on, and the collector
    /// run over them.
    fn settle_context(&self, py: Python<'_>, copy: Bound<'_, PyAny>, snapshot: Py<PyAny>) {
        if !context::untouched_copy(&copy, snapshot.bind(py)) {
            drop(copy);
            drop(snapshot);
            return;
        }
        let own = std::mem::replace(&mut self.slot.borrow_mut(py).context, snapshot);
        self.context_shared.store(true, Relaxed);
        drop(own);
        // The next handle's run takes it instead of a new copy.
        self.loop_.get().snapshots().give_back(copy);
    }

    /// Whether a handle that has just run can be reused for another
    /// `call_soon` (see `LoopCore::recycle`): an exact one-shot `Handle`,
    /// not in debug mode, that nothing but the caller references, not even
    /// a weak reference. Nobody can then tell it from a new object.
    pub fn recyclable(slf: &Bound<'_, Handle>) -> bool {
        let this = slf.get();
        let ptr = slf.as_ptr();
        // SAFETY: `slf` is alive and we hold the GIL; a type check only.
        let exact = unsafe { ffi::Py_TYPE(ptr) } == slf.py().get_type::<Handle>().as_ptr().cast();
        exact && this.oneshot && this.source_traceback.is_none() && sole_owner(ptr)
    }

    /// Empty a recyclable handle (its payload and context go, as at
    /// deallocation), leaving it ready for `reuse`. Returns what must be
    /// dropped once no borrow is active (destructors may run Python code).
    pub fn strip(&self, py: Python<'_>) -> (Option<Payload>, Py<PyAny>) {
        let payload = self.slot.borrow_mut(py).payload.take();
        let context = std::mem::replace(&mut self.slot.borrow_mut(py).context, py.None());
        self.context_shared.store(false, Relaxed);
        self.slot.borrow_mut(py).cancelled_repr = None;
        self.cancelled.store(false, Relaxed);
        self.threadsafe.store(false, Relaxed);
        (payload, context)
    }

    /// Give a stripped handle a new callback, as `build` would.
    pub fn reuse(
        &self,
        py: Python<'_>,
        callback: Py<PyAny>,
        args: Args,
        context: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let (context, shared) = match context {
            Some(ctx) if !ctx.is_none(py) => (ctx, false),
            _ => self.loop_.get().context_snapshot(py)?,
        };
        let old = std::mem::replace(&mut self.slot.borrow_mut(py).context, context);
        self.context_shared.store(shared, Relaxed);
        self.slot.borrow_mut(py).payload = Some(Payload { callback, args });
        drop(old.into_bound(py)); // None
        Ok(())
    }

    /// Hand the handle back to the collector, once Python code may hold
    /// it in a cycle (see `untracked`).
    pub fn track_shared(slf: &Bound<'_, Handle>) {
        track_object(slf.as_ptr());
    }

    /// After a one-shot run, or when the loop lets go of a pending handle:
    /// if Python code still holds it (e.g. `self._timer =
    /// loop.call_later(..., self._tick)`), it may sit in a cycle with its
    /// callback or context, so the collector must see it from now on.
    pub fn track_if_shared(slf: &Bound<'_, Handle>) {
        // SAFETY: reading the refcount of an object we hold, with the GIL.
        if unsafe { ffi::Py_REFCNT(slf.as_ptr()) } > 1 {
            Self::track_shared(slf);
        }
    }

    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Relaxed)
    }

    pub fn loop_core(&self) -> &Py<LoopCore> {
        &self.loop_
    }

    /// Mark cancelled and drop the callback. The payload is dropped after the
    /// borrow ends: its destructor may run arbitrary Python code.
    pub fn cancel_handle(slf: &Bound<'_, Handle>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.cancelled.swap(true, Relaxed) {
            return Ok(());
        }
        if this.loop_.get().is_debug() {
            let text = Self::repr_text(slf)?;
            this.slot.borrow_mut(py).cancelled_repr = Some(Box::new(text));
        }
        let dropped = this.slot.borrow_mut(py).payload.take();
        drop(dropped);
        // Whoever cancels holds the handle, maybe in a cycle through its context.
        Self::track_shared(slf);
        Ok(())
    }

    /// Run the callback in its context. `Ok` unless the callback raised
    /// `KeyboardInterrupt`/`SystemExit`; anything else is reported to the
    /// loop's exception handler.
    pub fn run(slf: &Bound<'_, Handle>) -> PyResult<()> {
        Self::run_as(slf, false)
    }

    /// `run`, for the loop's own queue: `last_use` says the caller drops
    /// (or recycles) the handle right after, without looking at it.
    pub fn run_as(slf: &Bound<'_, Handle>, last_use: bool) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.is_cancelled() {
            return Ok(());
        }
        // Own references: the callback may cancel its own handle mid-call.
        // When nothing else holds the handle (the queue's reference was
        // handed to us), nobody can see the payload after the run: a
        // one-shot handle gives it up instead of copying it.
        let alone = last_use && this.oneshot && sole_owner(slf.as_ptr());
        let payload = if alone {
            this.slot.borrow_mut(py).payload.take()
        } else {
            this.slot
                .borrow(py)
                .payload
                .as_ref()
                .map(|p| p.clone_ref(py))
        };
        let Some(payload) = payload else {
            return Ok(());
        };
        // A handle nobody else references cannot be cancelled by another
        // thread while it runs: no guard. The marker needs no fence: a
        // thread calling `cancel()` takes the GIL this one holds now.
        let guarded = !alone && this.threadsafe.load(Relaxed);
        if guarded {
            this.running_in.store(current_thread(), Relaxed);
        }
        let outcome = Self::call_in_context(slf, &payload, alone);
        if guarded {
            running::finished(&this.running_in);
        }
        if this.oneshot {
            Self::track_if_shared(slf);
        }
        payload.release(py);
        outcome
    }

    /// `taken`: the payload was moved out of the handle for the call; it is
    /// put back before an error report hands the handle to Python code.
    fn call_in_context(slf: &Bound<'_, Handle>, payload: &Payload, taken: bool) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let Payload { callback, args } = payload;
        // SAFETY: all pointers are owned references kept alive by `callback`,
        // `args` and `ctx_ref` for the whole call; we hold the GIL. This is
        // exactly what `Context.run` does: enter, call, exit.
        let (ctx_ref, snapshot) = this.take_own_context(py)?;
        let ctx = ctx_ref.as_ptr();
        // SAFETY: `ctx` is alive (held by the handle); a type check only.
        let exact = unsafe { ffi::PyContext_CheckExact(ctx) } != 0;
        let result = unsafe {
            if !exact {
                // Not a Context (`call_soon(cb, context="x")`): asyncio calls
                // `context.run(callback, *args)`, which fails here with an
                // AttributeError for the exception handler, or works for a
                // duck-typed context.
                let mut argv: Vec<*mut ffi::PyObject> = Vec::with_capacity(args.len() + 2);
                argv.push(ctx);
                argv.push(callback.as_ptr());
                argv.extend(args.iter().map(|a| a.as_ptr()));
                let name = intern!(py, "run");
                ffi::PyObject_VectorcallMethod(
                    name.as_ptr(),
                    argv.as_ptr(),
                    argv.len(),
                    std::ptr::null_mut(),
                )
            } else if ffi::PyContext_Enter(ctx) < 0 {
                std::ptr::null_mut()
            } else {
                // `Py<PyAny>` is a transparent object pointer, so the inline
                // arguments are already the array vectorcall wants.
                let argv = args.as_ptr().cast::<*mut ffi::PyObject>();
                let res = ffi::PyObject_Vectorcall(
                    callback.as_ptr(),
                    argv,
                    args.len(),
                    std::ptr::null_mut(),
                );
                if ffi::PyContext_Exit(ctx) < 0 && !res.is_null() {
                    ffi::Py_DECREF(res);
                    std::ptr::null_mut()
                } else {
                    res
                }
            }
        };
        match snapshot {
            Some(snapshot) => this.settle_context(py, ctx_ref, snapshot),
            None => drop(ctx_ref),
        }
        if !result.is_null() {
            // SAFETY: a non-null result of PyObject_Call is a new reference.
            unsafe { ffi::Py_DECREF(result) };
            return Ok(());
        }
        let err = PyErr::fetch(py);
        if taken {
            let mut slot = this.slot.borrow_mut(py);
            if slot.payload.is_none() && !this.is_cancelled() {
                slot.payload = Some(payload.clone_ref(py));
            }
        }
        if err.is_instance_of::<PyKeyboardInterrupt>(py) || err.is_instance_of::<PySystemExit>(py) {
            return Err(err);
        }
        let source = pyhelpers::format_callback_source(
            py,
            callback.bind(py),
            &payload.args_tuple(py)?,
            this.loop_.bind(py).get().is_debug(),
        )?;
        let context = PyDict::new(py);
        context.set_item(
            intern!(py, "message"),
            format!("Exception in callback {source}"),
        )?;
        // `into_value` attaches the traceback, as a Python `except` would.
        context.set_item(intern!(py, "exception"), err.into_value(py))?;
        context.set_item(intern!(py, "handle"), slf)?;
        if let Some(tb) = &this.source_traceback {
            context.set_item(intern!(py, "source_traceback"), tb)?;
        }
        this.loop_
            .bind(py)
            .call_method1(intern!(py, "call_exception_handler"), (context,))?;
        Ok(())
    }

    /// asyncio's `_repr_info` parts, minus the class name.
    fn repr_parts(slf: &Bound<'_, Handle>) -> PyResult<Vec<String>> {
        let py = slf.py();
        let this = slf.get();
        let mut info = Vec::new();
        if this.is_cancelled() {
            info.push("cancelled".to_string());
        }
        let payload = this
            .slot
            .borrow(py)
            .payload
            .as_ref()
            .map(|p| p.clone_ref(py));
        if let Some(p) = payload {
            info.push(pyhelpers::format_callback_source(
                py,
                p.callback.bind(py),
                &p.args_tuple(py)?,
                this.loop_.bind(py).get().is_debug(),
            )?);
        }
        if let Some(tb) = &this.source_traceback {
            let tb = tb.bind(py);
            if tb.len()? > 0 {
                let frame = tb.get_item(-1)?;
                let file: String = frame.get_item(0)?.str()?.extract()?;
                let line: String = frame.get_item(1)?.str()?.extract()?;
                info.push(format!("created at {file}:{line}"));
            }
        }
        Ok(info)
    }

    fn repr_text(slf: &Bound<'_, Handle>) -> PyResult<String> {
        let py = slf.py();
        if let Some(text) = &slf.get().slot.borrow(py).cancelled_repr {
            return Ok(String::clone(text));
        }
        let name = slf.get_type().name()?.to_string();
        let mut info = vec![name];
        info.extend(Self::repr_parts(slf)?);
        if let Ok(timer) = slf.cast::<TimerHandle>() {
            let when = timer.get().when_object(py)?.bind(py).repr()?.to_string();
            let pos = if slf.get().is_cancelled() { 2 } else { 1 };
            info.insert(pos.min(info.len()), format!("when={when}"));
        }
        Ok(format!("<{}>", info.join(" ")))
    }
}

impl Traverse for Slot {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        (&self.payload, &self.context).traverse(visit)
    }
}

impl Traverse for Payload {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        self.callback.traverse(visit)?;
        self.args.iter().try_for_each(|a| a.traverse(visit))
    }
}

/// What a handle holds: reported by its own traverse, and by the loop's for
/// pending handles that only the loop references (see `OwnedEdge`).
impl Traverse for Handle {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        (&self.slot, &self.loop_, &self.source_traceback).traverse(visit)
    }
}

/// An owner's edge to a handle it keeps (the loop's ready queue, timer
/// heap, pool and fd registrations). A tracked handle is visited itself;
/// an untracked one only the owner references has its contents reported as
/// the owner's own (the collector cannot see through it); an untracked one
/// that others also hold is reported by none (see `track_if_shared`).
pub struct OwnedEdge<'a>(pub &'a Py<Handle>);

impl Traverse for OwnedEdge<'_> {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        let ptr = self.0.as_ptr();
        // SAFETY: reading the GC flag and refcount of an object we keep alive.
        let (tracked, refcnt) =
            unsafe { (ffi::PyObject_GC_IsTracked(ptr) != 0, ffi::Py_REFCNT(ptr)) };
        if tracked {
            visit.call(self.0)
        } else if refcnt == 1 {
            self.0.get().traverse(visit)
        } else {
            Ok(())
        }
    }
}

/// Allocate a handle object outside the cycle collector.
///
/// PyO3 makes every class a GC type; with millions of handles queued, the
/// collector's passes over them cost more than scheduling itself. A pending
/// handle is kept alive by the loop anyway, so the collector has nothing to
/// find there; once it has run, `track_if_shared` hands a handle that
/// someone else still holds back to the collector (a cancelled one has
/// already dropped its callback).
pub fn untracked<T: pyo3::PyClass>(obj: Py<T>) -> Py<T> {
    // SAFETY: `obj` is a live object we own; untracking a GC object is always
    // allowed (it merely stops cycle detection from visiting it), and PyO3's
    // dealloc untracks again, which is a no-op for an untracked object.
    unsafe { ffi::PyObject_GC_UnTrack(obj.as_ptr().cast()) };
    obj
}

/// Whether the caller's reference to `ptr` (a live object of ours) is the
/// only way to reach it: refcount 1 and no weak reference.
fn sole_owner(ptr: *mut ffi::PyObject) -> bool {
    // SAFETY: `ptr` is alive and we hold the GIL: reading its refcount, its
    // type and, at the type's positive weaklist offset (the slot PyO3
    // reserves for `weakref` classes), the weak reference list.
    unsafe {
        if ffi::Py_REFCNT(ptr) != 1 {
            return false;
        }
        let offset = (*ffi::Py_TYPE(ptr)).tp_weaklistoffset;
        if offset <= 0 {
            return false;
        }
        let weaklist = ptr.cast::<u8>().offset(offset).cast::<*mut ffi::PyObject>();
        (*weaklist).is_null()
    }
}

/// Put a live object we own under the cycle collector, if it is not already.
fn track_object(ptr: *mut ffi::PyObject) {
    // SAFETY: callers pass a live GC object they hold a reference to, with
    // the GIL held; tracking is skipped when already tracked (twice is an error).
    unsafe {
        if ffi::PyObject_GC_IsTracked(ptr) == 0 {
            ffi::PyObject_GC_Track(ptr.cast());
        }
    }
}

#[pymethods]
impl Handle {
    fn cancel(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.get().wait_until_not_running(slf.py());
        Self::cancel_handle(slf)
    }

    fn cancelled(&self, py: Python<'_>) -> bool {
        self.wait_until_not_running(py);
        self.is_cancelled()
    }

    fn get_context(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.own_context(py).map(Bound::unbind)
    }

    fn _run(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::run(slf)
    }

    #[getter]
    fn _cancelled(&self) -> bool {
        self.is_cancelled()
    }

    #[getter]
    fn _callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.slot
            .borrow(py)
            .payload
            .as_ref()
            .map(|p| p.callback.clone_ref(py))
    }

    #[getter]
    fn _args(&self, py: Python<'_>) -> PyResult<Option<Py<PyTuple>>> {
        let payload = self
            .slot
            .borrow(py)
            .payload
            .as_ref()
            .map(|p| p.clone_ref(py));
        payload
            .map(|p| p.args_tuple(py).map(Bound::unbind))
            .transpose()
    }

    #[getter]
    fn _context(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.own_context(py).map(Bound::unbind)
    }

    #[getter]
    fn _loop(&self, py: Python<'_>) -> Py<LoopCore> {
        self.loop_.clone_ref(py)
    }

    #[getter]
    fn _source_traceback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.source_traceback.as_ref().map(|tb| tb.clone_ref(py))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Self::repr_text(slf)
    }

    /// Only called once the handle is tracked again (see `track_if_shared`).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.traverse(&visit)
    }

    fn __clear__(&self) {
        let dropped = self.slot.unguarded().and_then(|mut s| s.payload.take());
        drop(dropped);
    }
}

/// The calling thread, as a nonzero number.
fn current_thread() -> u64 {
    // SAFETY: pthread_self has no preconditions.
    (unsafe { libc::pthread_self() }) as u64
}

/// Waiting for thread-safe handles to finish running: one condition
/// variable for all of them (waits are rare; runs only check a counter).
mod running {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    static LOCK: Mutex<()> = Mutex::new(());
    static DONE: Condvar = Condvar::new();
    static WAITERS: AtomicUsize = AtomicUsize::new(0);

    /// The callback returned: clear the marker, wake whoever waits.
    pub fn finished(running_in: &AtomicU64) {
        running_in.store(0, SeqCst);
        if WAITERS.load(SeqCst) > 0 {
            let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
            DONE.notify_all();
        }
    }

    /// Block until `running_in` is 0. Called without the GIL.
    pub fn wait(running_in: &AtomicU64) {
        WAITERS.fetch_add(1, SeqCst);
        let mut guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        while running_in.load(SeqCst) != 0 {
            // The timeout only bounds a missed wake-up; none is expected.
            guard = match DONE.wait_timeout(guard, Duration::from_millis(50)) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        drop(guard);
        WAITERS.fetch_sub(1, SeqCst);
    }
}
