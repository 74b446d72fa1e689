//! The scheduling API: `call_soon`, `call_soon_threadsafe`, `call_later`,
//! `call_at` (entered through `fastcall.rs`) and `_add_callback`.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt};

use super::{LoopCore, Ready};
use crate::handle::{untracked, Args, Handle, TimerHandle};

impl LoopCore {
    pub(super) fn new_handle(
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
        // The plain load keeps the other calls off the atomic swap: the loop
        // thread set the flag before releasing the GIL this thread holds.
        if threadsafe && this.polling.load(Relaxed) && this.polling.swap(false, SeqCst) {
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

#[pymethods]
impl LoopCore {
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
}
