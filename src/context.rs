//! The `contextvars.Context` a one-shot callback runs in.
//!
//! asyncio copies the current context for every `call_soon`/`call_later`
//! without `context=`, and runs the callback inside that copy. A copy is
//! only a new `Context` pointing at the same immutable variable map (a
//! HAMT), so consecutive copies taken while no variable changed are
//! interchangeable until one is entered or shown to Python code. The loop
//! therefore hands pending handles one shared *snapshot* per variable map
//! (`SnapshotCache`), and each handle takes a copy of its own (`own_copy`)
//! only when it runs or when Python asks for it (`get_context()`). Pending
//! handles then hold no context of their own: a million queued timers or
//! thread-safe calls do not mean a million live contexts. The run-time
//! copy is the loop's spare when there is one: the copy the previous
//! callback ran in, if it came back untouched (no variable set, no
//! reference kept), pointed at the new handle's variable map.
//!
//! A snapshot is never entered and never leaves Rust, so its variables
//! never change, and no `Token` or `copy_context()` can tell handles that
//! shared it apart: each still runs in a context no other callback sees.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::gil_cell::GilCell;
use crate::traverse::{Traverse, TraverseResult};

/// `contextvars.copy_context()` through the C API.
pub fn copy_current(py: Python<'_>) -> PyResult<Py<PyAny>> {
    // SAFETY: PyContext_CopyCurrent returns a new reference or NULL with an
    // exception set; `from_owned_ptr_or_err` handles both.
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent()).map(Bound::unbind) }
}

/// `snapshot.copy()`: a fresh context with the snapshot's variables.
pub fn own_copy<'py>(snapshot: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: snapshots are exact `Context` objects (made by
    // `copy_current`) that we hold; PyContext_Copy returns a new reference
    // or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(snapshot.py(), ffi::PyContext_Copy(snapshot.as_ptr())) }
}

/// The offset of `ctx_vars` in CPython's `PyContext`: the object header,
/// then `ctx_prev`, then `ctx_vars` (`Include/internal/pycore_context.h`,
/// the same from 3.11 to 3.15).
const VARS_OFFSET: usize = std::mem::size_of::<ffi::PyObject>() + std::mem::size_of::<usize>();

/// The variable map of a context we hold. Only called once `layout_ok`
/// has confirmed the layout on this interpreter.
fn vars_of(ctx: &Bound<'_, PyAny>) -> *mut ffi::PyObject {
    // SAFETY: `ctx` is a live exact `Context` we hold.
    unsafe { vars_at(ctx.as_ptr()) }
}

/// # Safety
/// `ctx` must be a live exact `Context` (its `ctx_vars` field sits at
/// `VARS_OFFSET` and is never NULL), with the GIL held.
unsafe fn vars_at(ctx: *mut ffi::PyObject) -> *mut ffi::PyObject {
    *ctx.cast::<u8>()
        .add(VARS_OFFSET)
        .cast::<*mut ffi::PyObject>()
}

/// The variable map of the calling thread's current context, read in
/// place (no copy), or `None` when the thread has no context yet or the
/// thread-state layout was not recognised (see `ts_context_offset`).
fn current_vars(py: Python<'_>) -> Option<*mut ffi::PyObject> {
    let offset = ts_context_offset(py)?;
    // SAFETY: with the GIL held the thread state is ours and alive; the
    // probe found `offset` to be its `context` field (a `PyContext *` or
    // NULL); a current context is a live exact `Context`.
    unsafe {
        let ts = ffi::PyThreadState_Get().cast::<u8>();
        let ctx = *ts.add(offset).cast::<*mut ffi::PyObject>();
        (!ctx.is_null()).then(|| vars_at(ctx))
    }
}

/// Where `PyThreadState.context` (the current context, `struct _ts` in
/// `Include/cpython/pystate.h`) sits, found once: the first word of the
/// thread state that follows two fresh contexts as each is entered and
/// goes back to the previous value as each is left. Its place differs
/// between versions (224 bytes in on 3.11, 232 on 3.15); the scan stays
/// within the smallest thread state of the supported versions.
fn ts_context_offset(py: Python<'_>) -> Option<usize> {
    static OFFSET: PyOnceLock<Option<usize>> = PyOnceLock::new();
    *OFFSET.get_or_init(py, || probe_ts(py).ok().flatten())
}

fn probe_ts(py: Python<'_>) -> PyResult<Option<usize>> {
    // The smallest `sizeof(PyThreadState)` of 3.11-3.15 (3.13's 312 bytes;
    // 3.11's is 360, 3.14's 832, 3.15's 888); `context` sits at 224, 208,
    // 208 and 232.
    const SCAN: usize = 312;
    let word = |ts: *const u8, off: usize| -> usize {
        // SAFETY: `ts` is the live thread state, at least `SCAN` bytes long
        // on every supported version; unaligned-safe reads of plain words.
        unsafe { ts.add(off).cast::<usize>().read_unaligned() }
    };
    // SAFETY: the GIL is held, so the current thread state is valid.
    let ts = unsafe { ffi::PyThreadState_Get() }
        .cast::<u8>()
        .cast_const();
    let first = own_copy(copy_current(py)?.bind(py))?;
    let second = own_copy(&first)?;
    let (a, b) = (first.as_ptr() as usize, second.as_ptr() as usize);
    let mut found = None;
    // SAFETY: entering and leaving contexts we own, with the GIL held.
    if unsafe { ffi::PyContext_Enter(first.as_ptr()) } < 0 {
        return Err(PyErr::fetch(py));
    }
    let mut off = 0;
    while off + std::mem::size_of::<usize>() <= SCAN {
        if word(ts, off) == a {
            found = Some(off);
            break;
        }
        off += std::mem::size_of::<usize>();
    }
    let checked = found.is_some_and(|off| {
        // SAFETY: as above: our own contexts, entered and left in order.
        unsafe {
            let entered = ffi::PyContext_Enter(second.as_ptr()) == 0;
            let inner = entered && word(ts, off) == b;
            let left = entered && ffi::PyContext_Exit(second.as_ptr()) == 0;
            inner && left && word(ts, off) == a
        }
    });
    // SAFETY: leaving the context entered above.
    if unsafe { ffi::PyContext_Exit(first.as_ptr()) } < 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(found.filter(|&off| checked && word(ts, off) != a))
}

/// Whether `copy`, a copy of `snapshot` that a callback just ran in and
/// that its handle holds (besides the caller's reference), is still
/// indistinguishable from a fresh copy: the same variables, no other
/// reference (a `Token`, a `get_context()` result) and no weak reference.
pub fn untouched_copy(copy: &Bound<'_, PyAny>, snapshot: &Bound<'_, PyAny>) -> bool {
    // SAFETY: `copy` is a live exact `Context` we hold; its refcount and
    // its `ctx_weakreflist` field (right after `ctx_vars`, checked by the
    // probe) are plain reads under the GIL.
    unsafe {
        ffi::Py_REFCNT(copy.as_ptr()) == 2
            && vars_of(copy) == vars_of(snapshot)
            && (*copy
                .as_ptr()
                .cast::<u8>()
                .add(WEAKLIST_OFFSET)
                .cast::<*mut ffi::PyObject>())
            .is_null()
    }
}

/// `ctx_weakreflist`, right after `ctx_vars`.
const WEAKLIST_OFFSET: usize = VARS_OFFSET + std::mem::size_of::<usize>();

/// Whether `PyContext` looks as `VARS_OFFSET` assumes on this interpreter,
/// probed once: two copies of one context share a map of type `hamt`, and
/// setting a variable gives a different one. If not (a build with another
/// object header), every handle keeps a copy of its own, as before.
fn layout_ok(py: Python<'_>) -> bool {
    // A `PyOnceLock`: the probe runs Python code, which may switch threads;
    // another thread waiting on a `OnceLock` with the GIL would deadlock.
    static OK: PyOnceLock<bool> = PyOnceLock::new();
    *OK.get_or_init(py, || probe(py).unwrap_or(false))
}

/// Whether pending handles share context snapshots on this interpreter
/// (the layout probe passed); for the tests.
#[pyfunction]
pub fn _shares_context_snapshots(py: Python<'_>) -> bool {
    layout_ok(py)
}

/// Whether the current context's map is read in place from the thread
/// state (the thread-state probe passed); for the tests.
#[pyfunction]
pub fn _reads_current_context_in_place(py: Python<'_>) -> bool {
    ts_context_offset(py).is_some()
}

fn probe(py: Python<'_>) -> PyResult<bool> {
    let is_map = |ctx: &Bound<'_, PyAny>| -> bool {
        let vars = vars_of(ctx);
        // SAFETY: the offset comes from the object header this build was
        // compiled against, followed by one pointer (`ctx_prev`), as in
        // every CPython this crate builds for; the probe confirms that the
        // field holds the variable map (a `hamt`) before anything relies on
        // it. NULL is checked before the type is read.
        !vars.is_null()
            && unsafe {
                std::ffi::CStr::from_ptr((*ffi::Py_TYPE(vars)).tp_name).to_bytes() == b"hamt"
            }
    };
    let a = own_copy(copy_current(py)?.bind(py))?;
    let b = own_copy(&a)?;
    if !ffi_exact_context(&a) || !is_map(&a) || !is_map(&b) || vars_of(&a) != vars_of(&b) {
        return Ok(false);
    }
    let var = py
        .import("contextvars")?
        .getattr("ContextVar")?
        .call1(("ferroloop_layout_probe",))?;
    // A second reference, as the handle's at run time.
    let held = b.clone();
    if !untouched_copy(&b, &a) {
        return Ok(false);
    }
    let weak = py.import("weakref")?.getattr("ref")?.call1((&b,))?;
    if untouched_copy(&b, &a) {
        return Ok(false);
    }
    drop((weak, held));
    b.call_method1("run", (var.getattr("set")?, 1))?;
    Ok(is_map(&b) && vars_of(&a) != vars_of(&b))
}

fn ffi_exact_context(ctx: &Bound<'_, PyAny>) -> bool {
    // SAFETY: a type check of a live object.
    unsafe { ffi::PyContext_CheckExact(ctx.as_ptr()) != 0 }
}

/// Point `ctx`, a context we hold that nothing else does and that is not
/// entered, at `snapshot`'s variable map; returns the map it had, for the
/// caller to drop outside any borrow (it may free a variable's value).
fn point_at_map(ctx: &Bound<'_, PyAny>, snapshot: &Bound<'_, PyAny>) -> Option<Py<PyAny>> {
    let py = ctx.py();
    let new = vars_of(snapshot);
    // SAFETY: both are live exact `Context` objects whose `ctx_vars` sits
    // at `VARS_OFFSET` (`layout_ok`); the field always holds a strong
    // reference to a map, so the new map is increfed before it is stored
    // and the old reference is handed back. Nothing else holds `ctx`, so no
    // thread state has it as its current context.
    unsafe {
        let field = ctx
            .as_ptr()
            .cast::<u8>()
            .add(VARS_OFFSET)
            .cast::<*mut ffi::PyObject>();
        let old = *field;
        if old == new {
            return None;
        }
        ffi::Py_INCREF(new);
        *field = new;
        Some(Bound::from_owned_ptr(py, old).unbind())
    }
}

/// A loop's current snapshot: the last context copy it handed out, reused
/// while the caller's variables are the same map. Emptied every iteration,
/// so it keeps nothing alive longer than the handles that share it.
///
/// Also a spare copy: a context a callback ran in that came back untouched
/// (see `untouched_copy`), which the next handle's run takes instead of a
/// new copy, once pointed at its snapshot's map. Nobody can tell it from a
/// fresh copy; it is dropped with the snapshot every iteration.
pub struct SnapshotCache(GilCell<Option<Py<PyAny>>>, GilCell<Option<Py<PyAny>>>);

impl SnapshotCache {
    pub const fn new() -> Self {
        SnapshotCache(GilCell::new(None), GilCell::new(None))
    }

    /// A context of the handle's own to run in, with `snapshot`'s
    /// variables: the spare copy if there is one, else a new copy.
    pub fn copy_of<'py>(&self, snapshot: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = snapshot.py();
        let spare = self.1.borrow_mut(py).take();
        match spare {
            Some(ctx) => {
                let ctx = ctx.into_bound(py);
                drop(point_at_map(&ctx, snapshot));
                Ok(ctx)
            }
            None => own_copy(snapshot),
        }
    }

    /// Keep `copy`, a copy that a callback ran in and that came back
    /// untouched, as the spare (the caller holds the only reference).
    pub fn give_back(&self, copy: Bound<'_, PyAny>) {
        let py = copy.py();
        let mut spare = self.1.borrow_mut(py);
        if spare.is_none() {
            *spare = Some(copy.unbind());
            return;
        }
        drop(spare);
        drop(copy);
    }

    /// A context for a new one-shot handle, and whether it is a shared
    /// snapshot (to be copied before it is entered or shown).
    pub fn context(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, bool)> {
        if !layout_ok(py) {
            return Ok((copy_current(py)?, false));
        }
        // The common case: the caller's map is the snapshot's, read in place.
        if let Some(vars) = current_vars(py) {
            let cache = self.0.borrow(py);
            if let Some(snapshot) = cache.as_ref() {
                if vars_of(snapshot.bind(py)) == vars {
                    return Ok((snapshot.clone_ref(py), true));
                }
            }
        }
        // Otherwise a copy, which becomes the snapshot. (Without the
        // thread-state read, a copy from the warm free list is how the
        // current map is compared; it is dropped at once when it matches.)
        let current = copy_current(py)?.into_bound(py);
        let mut cache = self.0.borrow_mut(py);
        if let Some(snapshot) = cache.as_ref() {
            if vars_of(snapshot.bind(py)) == vars_of(&current) {
                let shared = snapshot.clone_ref(py);
                drop(cache);
                // Same map, still held by the snapshot: no Python code runs.
                drop(current);
                return Ok((shared, true));
            }
        }
        let old = cache.replace(current.clone().unbind());
        drop(cache);
        // May free the old map, and with it a variable's value.
        drop(old);
        Ok((current.unbind(), true))
    }

    /// Let go of the snapshot and the spare copy (each iteration and at
    /// close).
    pub fn clear(&self, py: Python<'_>) {
        let old = self.0.borrow_mut(py).take();
        let spare = self.1.borrow_mut(py).take();
        drop((old, spare));
    }

    /// `clear` for `tp_clear`, which has no `Python` token.
    pub fn take_unguarded(&self) -> (Option<Py<PyAny>>, Option<Py<PyAny>>) {
        (
            self.0.unguarded().and_then(|mut s| s.take()),
            self.1.unguarded().and_then(|mut s| s.take()),
        )
    }
}

impl Traverse for SnapshotCache {
    fn traverse(&self, visit: &pyo3::gc::PyVisit<'_>) -> TraverseResult {
        (&self.0, &self.1).traverse(visit)
    }
}
