//! Vectorcall entry points for `call_soon`, `call_soon_threadsafe`,
//! `call_later` and `call_at`.
//!
//! These are the loop's hottest calls (every Task step and every future
//! callback goes through `call_soon(cb, *args, context=ctx)`). As raw
//! `METH_FASTCALL | METH_KEYWORDS` methods they read their arguments straight
//! from the caller's array: no argument tuple, no keyword dictionary, and the
//! `context` keyword is recognised by pointer identity with the interned name.

use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicPtr, Ordering::Relaxed};

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};

use crate::event_loop::LoopCore;
use crate::handle::Args;

/// What a scheduling call was given.
struct Call<'py> {
    /// `delay` / `when`, for the timed variants.
    lead: Option<Bound<'py, PyAny>>,
    callback: Bound<'py, PyAny>,
    args: Args,
    context: Option<Bound<'py, PyAny>>,
}

/// A second string object spelling `context`, kept alive forever: CPython's
/// C `Task` passes its own static `"context"`, which on some versions is not
/// the one `intern!` finds. Compared by pointer once known.
static CONTEXT_ALIAS: AtomicPtr<ffi::PyObject> = AtomicPtr::new(std::ptr::null_mut());

/// Whether the keyword name `key` (a borrowed `str` from `kwnames`) is
/// `context`: by pointer for the interned name and its known alias, by
/// value otherwise (then remembered as the alias).
///
/// # Safety
/// `key` must be a live `str` object, with the GIL held.
unsafe fn is_context_name(py: Python<'_>, key: *mut ffi::PyObject) -> bool {
    if key == intern!(py, "context").as_ptr() || key == CONTEXT_ALIAS.load(Relaxed) {
        return true;
    }
    let matches = Bound::from_borrowed_ptr(py, key)
        .cast::<PyString>()
        .ok()
        .and_then(|k| k.to_str().ok().map(|k| k == "context"))
        .unwrap_or(false);
    if matches {
        // The reference taken here is never released, so the pointer
        // cannot be reused by another object.
        ffi::Py_INCREF(key);
        if CONTEXT_ALIAS
            .compare_exchange(std::ptr::null_mut(), key, Relaxed, Relaxed)
            .is_err()
        {
            ffi::Py_DECREF(key);
        }
    }
    matches
}

/// Parse `(lead?, callback, *args, context=None)` from a vectorcall.
///
/// # Safety
/// `args` must point to `nargs` positional plus `len(kwnames)` keyword
/// values, all borrowed references valid for the call, as CPython passes them.
unsafe fn parse<'py>(
    py: Python<'py>,
    method: &str,
    lead_name: Option<&str>,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<Call<'py>> {
    let nargs = nargs.max(0) as usize;
    let nkw = if kwnames.is_null() {
        0
    } else {
        ffi::PyTuple_GET_SIZE(kwnames) as usize
    };
    let all = if args.is_null() {
        &[][..]
    } else {
        std::slice::from_raw_parts(args, nargs + nkw)
    };
    let bind = |ptr: *mut ffi::PyObject| Bound::from_borrowed_ptr(py, ptr);

    // The common shapes first: `call_soon(cb, *args)` and asyncio's
    // `call_soon(cb, *args, context=ctx)` (the interned name, compared by
    // pointer), without the general keyword matching below.
    if lead_name.is_none() && nargs >= 1 {
        let context = match nkw {
            0 => Some(None),
            1 if is_context_name(py, ffi::PyTuple_GET_ITEM(kwnames, 0)) => {
                Some(Some(bind(all[nargs])))
            }
            _ => None,
        };
        if let Some(context) = context {
            return Ok(Call {
                lead: None,
                callback: bind(all[0]),
                args: all[1..nargs].iter().map(|&p| bind(p).unbind()).collect(),
                context,
            });
        }
    }

    // `call_later(delay, cb, *args)` / `call_at(when, cb, *args)`, all
    // positional: the common timed shape.
    if lead_name.is_some() && nargs >= 2 && nkw == 0 {
        return Ok(Call {
            lead: Some(bind(all[0])),
            callback: bind(all[1]),
            args: all[2..nargs].iter().map(|&p| bind(p).unbind()).collect(),
            context: None,
        });
    }

    let mut named: [Option<Bound<'py, PyAny>>; 2] = [None, None]; // lead, callback
    let mut context = None;
    for (i, value) in all[nargs..].iter().enumerate() {
        let key = ffi::PyTuple_GET_ITEM(kwnames, i as ffi::Py_ssize_t);
        let key = bind(key).cast_into::<PyString>()?;
        let slot = if key.as_ptr() == intern!(py, "context").as_ptr() || key.to_str()? == "context"
        {
            &mut context
        } else if key.to_str()? == "callback" {
            &mut named[1]
        } else if lead_name == Some(key.to_str()?) {
            &mut named[0]
        } else {
            return Err(PyTypeError::new_err(format!(
                "{method}() got an unexpected keyword argument '{}'",
                key.to_str()?
            )));
        };
        *slot = Some(bind(*value));
    }

    let mut positional = all[..nargs].iter().map(|&p| bind(p));
    let missing = |name: &str| {
        PyTypeError::new_err(format!(
            "{method}() missing 1 required positional argument: '{name}'"
        ))
    };
    let lead = match lead_name {
        Some(name) => Some(match named[0].take() {
            Some(v) => v,
            None => positional.next().ok_or_else(|| missing(name))?,
        }),
        None => None,
    };
    let callback = match named[1].take() {
        Some(v) => v,
        None => positional.next().ok_or_else(|| missing("callback"))?,
    };
    Ok(Call {
        lead,
        callback,
        args: positional.map(Bound::unbind).collect(),
        context,
    })
}

/// Run `body` as the method's implementation: errors become a raised
/// exception, a Rust panic a `PanicException`, never an abort.
fn trampoline(body: impl FnOnce(Python<'_>) -> PyResult<Py<PyAny>>) -> *mut ffi::PyObject {
    // SAFETY: CPython only calls methods with the GIL held.
    let py = unsafe { Python::assume_attached() };
    match catch_unwind(AssertUnwindSafe(|| body(py))) {
        Ok(Ok(obj)) => obj.into_ptr(),
        Ok(Err(err)) => {
            err.restore(py);
            std::ptr::null_mut()
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic in ferroloop".into());
            PanicException::new_err(msg).restore(py);
            std::ptr::null_mut()
        }
    }
}

macro_rules! entry_point {
    ($fn_name:ident, $method:literal, $lead:expr, |$slf:ident, $call:ident| $body:expr) => {
        unsafe extern "C" fn $fn_name(
            slf: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            trampoline(|py| {
                // SAFETY: CPython passes `self` and the argument array as
                // borrowed references valid for the duration of the call.
                let $slf = unsafe { Bound::from_borrowed_ptr(py, slf) }.cast_into::<LoopCore>()?;
                let $call = unsafe { parse(py, $method, $lead, args, nargs, kwnames) }?;
                $body
            })
        }
    };
}

entry_point!(call_soon, "call_soon", None, |slf, c| {
    LoopCore::call_soon(&slf, c.callback, c.args, c.context).map(Py::into_any)
});
entry_point!(
    call_soon_threadsafe,
    "call_soon_threadsafe",
    None,
    |slf, c| {
        LoopCore::call_soon_threadsafe(&slf, c.callback, c.args, c.context).map(Py::into_any)
    }
);
entry_point!(call_later, "call_later", Some("delay"), |slf, c| {
    let delay = c
        .lead
        .ok_or_else(|| PyTypeError::new_err("delay must not be None"))?;
    LoopCore::call_later(&slf, &delay, c.callback, c.args, c.context).map(Py::into_any)
});
entry_point!(call_at, "call_at", Some("when"), |slf, c| {
    let when = c
        .lead
        .ok_or_else(|| PyTypeError::new_err("when cannot be None"))?;
    LoopCore::call_at(&slf, &when, c.callback, c.args, c.context).map(Py::into_any)
});

type RawMethod = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *const *mut ffi::PyObject,
    ffi::Py_ssize_t,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

const METHODS: [(&CStr, RawMethod, &CStr); 4] = [
    (c"call_soon", call_soon, c"call_soon($self, callback, *args, context=None)\n--\n\nArrange for a callback to be called as soon as possible."),
    (
        c"call_soon_threadsafe",
        call_soon_threadsafe,
        c"call_soon_threadsafe($self, callback, *args, context=None)\n--\n\nLike call_soon(), but thread-safe.",
    ),
    (
        c"call_later",
        call_later,
        c"call_later($self, delay, callback, *args, context=None)\n--\n\nArrange for a callback to be called after `delay` seconds.",
    ),
    (c"call_at", call_at, c"call_at($self, when, callback, *args, context=None)\n--\n\nLike call_later(), but uses an absolute time."),
];

/// Put the raw methods on `LoopCore`.
pub fn install(ty: &Bound<'_, PyType>) -> PyResult<()> {
    let py = ty.py();
    for (name, func, doc) in METHODS {
        // The definition must outlive the type: leak it (four, once).
        let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
            ml_name: name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: func,
            },
            ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: doc.as_ptr(),
        }));
        // SAFETY: `ty` is a live type object and `def` a valid, 'static
        // method definition; PyDescr_NewMethod returns a new reference or NULL.
        let descr = unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_ptr().cast(), def))?
        };
        ty.setattr(name.to_str().unwrap_or_default(), descr)?;
    }
    Ok(())
}
