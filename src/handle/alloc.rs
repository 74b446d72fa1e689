//! Handles allocated without counting towards the next garbage collection.
//!
//! Every object of a garbage-collected type counts towards the young
//! generation's threshold when it is allocated (CPython's
//! `_PyObject_GC_Link`), whether or not the collector ever sees it. The
//! loop's handles are such objects (a callback can hold its own handle in
//! a cycle) but are kept out of the collector while pending (`untracked`).
//! Counted, a burst of 100k tasks or thread-safe calls triggered a hundred
//! or more extra young collections, and on 3.14 an extra full one, that
//! rloop, whose handles are not collected objects at all, never pays
//! (measured: 133 collections, 5 ms, in the first 200k
//! `call_soon_threadsafe` of a process).
//!
//! `Handle` and `TimerHandle` therefore allocate and free through the two
//! functions here: what `PyType_GenericAlloc` and `PyObject_GC_Del` do for
//! them (a zeroed object after a zeroed GC header, tracked), minus the
//! count. Tracking, untracking and collecting go through the public API
//! unchanged. Installed only on a type whose allocator pair is still the
//! default and whose GC header is the plain two words (checked against
//! `sys.getsizeof`); otherwise the type keeps CPython's.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// `sizeof(PyGC_Head)`: two words in every GIL build of 3.11-3.15.
const GC_HEADER: usize = 2 * std::mem::size_of::<usize>();

/// `tp_alloc`: `PyType_GenericAlloc` without the count.
///
/// # Safety
/// Called by CPython as a type's `tp_alloc`, with the GIL held, for a
/// type `install` checked (fixed size, GC, no other pre-header).
unsafe extern "C" fn alloc(
    tp: *mut ffi::PyTypeObject,
    nitems: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    // SAFETY: `tp` is a live type object (CPython passes the type being
    // instantiated); the sizes come from it.
    unsafe {
        if nitems != 0 || (*tp).tp_itemsize != 0 {
            return ffi::PyType_GenericAlloc(tp, nitems);
        }
        let Ok(size) = usize::try_from((*tp).tp_basicsize) else {
            return ffi::PyErr_NoMemory();
        };
        let mem = ffi::PyObject_Malloc(GC_HEADER + size).cast::<u8>();
        if mem.is_null() {
            return ffi::PyErr_NoMemory();
        }
        // A zeroed header is an untracked, unfinalized object; a zeroed
        // body is what PyType_GenericAlloc hands to tp_new.
        std::ptr::write_bytes(mem, 0, GC_HEADER + size);
        let op = mem.add(GC_HEADER).cast::<ffi::PyObject>();
        // Sets the type (a new reference to a heap type) and the refcount.
        ffi::PyObject_Init(op, tp);
        ffi::PyObject_GC_Track(op.cast());
        op
    }
}

/// `tp_free`: `PyObject_GC_Del` without the count (the allocation was not
/// counted either).
///
/// # Safety
/// Called by CPython as the `tp_free` of a type whose `tp_alloc` is
/// `alloc`, on an object that `alloc` allocated, with the GIL held.
unsafe extern "C" fn free(op: *mut c_void) {
    // SAFETY: `op` came from `alloc`, so the block starts `GC_HEADER`
    // bytes before it; untracking an untracked object is allowed.
    unsafe {
        ffi::PyObject_GC_UnTrack(op);
        ffi::PyObject_Free(op.cast::<u8>().sub(GC_HEADER).cast());
    }
}

/// Give `ty` the uncounted allocator pair, if it still has CPython's
/// default one and the layout is the one `alloc` writes. Returns whether
/// it did. Call before any instance exists.
pub fn install(ty: &Bound<'_, PyType>) -> PyResult<bool> {
    let py = ty.py();
    // The pre-header CPython puts before a fixed-size GC object: a list's
    // size beyond its basic size (the GC header and nothing else).
    let sys = py.import("sys")?;
    let list_size: usize = sys
        .getattr("getsizeof")?
        .call1((pyo3::types::PyList::empty(py),))?
        .extract()?;
    let list_basic: usize = py
        .get_type::<pyo3::types::PyList>()
        .getattr("__basicsize__")?
        .extract()?;
    if list_size.checked_sub(list_basic) != Some(GC_HEADER) {
        return Ok(false);
    }
    let tp = ty.as_type_ptr();
    // Managed `__dict__`/`__weakref__` (3.12+) add to the pre-header.
    const PREHEADER: std::ffi::c_ulong = (1 << 3) | (1 << 4);
    // SAFETY: reading and writing slots of a live heap type we created,
    // with the GIL held, before it has instances; the pair replaced is
    // checked to be CPython's default, which `alloc`/`free` mirror.
    unsafe {
        let flags = (*tp).tp_flags;
        // Compared as addresses: both are libpython's exported functions.
        let default_pair = (*tp).tp_alloc.map(|f| f as usize)
            == Some(ffi::PyType_GenericAlloc as *const () as usize)
            && (*tp).tp_free.map(|f| f as usize)
                == Some(ffi::PyObject_GC_Del as *const () as usize);
        if flags & ffi::Py_TPFLAGS_HAVE_GC == 0
            || flags & PREHEADER != 0
            || (*tp).tp_itemsize != 0
            || !default_pair
        {
            return Ok(false);
        }
        (*tp).tp_alloc = Some(alloc);
        (*tp).tp_free = Some(free);
    }
    INSTALLED.store(true, Relaxed);
    Ok(true)
}

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether handles are allocated without counting towards the next
/// collection (`install` took on this interpreter); for the tests.
#[pyfunction]
pub fn _handles_skip_gc_count() -> bool {
    INSTALLED.load(Relaxed)
}
