//! `GilCell`: interior mutability guarded by the GIL.
//!
//! The loop's queues are touched from Python callbacks (possibly on other
//! threads, e.g. `call_soon_threadsafe`), always with the GIL held. A `Mutex`
//! would add a lock round-trip to every `call_soon`; the GIL already gives us
//! mutual exclusion, so a `RefCell` that can only be reached with a
//! `Python<'_>` token is enough. Re-entrancy (a callback scheduling another
//! callback while we hold a borrow) is caught by the `RefCell` as a panic,
//! which PyO3 turns into a Python exception, never undefined behaviour.

use std::cell::{Ref, RefCell, RefMut};

use pyo3::Python;

#[cfg(Py_GIL_DISABLED)]
compile_error!(
    "ferroloop relies on the GIL for its queues; free-threaded builds are not supported yet"
);

pub struct GilCell<T>(RefCell<T>);

// SAFETY: the inner `RefCell` is only reachable through `borrow`/`borrow_mut`,
// which require a `Python<'_>` token (the GIL is held, and we refuse to build
// for free-threaded Python above), or through `unguarded`, whose callers are
// `tp_traverse`/`tp_clear`, which CPython also runs with the GIL held. So no
// two threads ever touch the cell at the same time.
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    pub const fn new(value: T) -> Self {
        GilCell(RefCell::new(value))
    }

    #[inline]
    pub fn borrow<'a>(&'a self, _py: Python<'_>) -> Ref<'a, T> {
        self.0.borrow()
    }

    #[inline]
    pub fn borrow_mut<'a>(&'a self, _py: Python<'_>) -> RefMut<'a, T> {
        self.0.borrow_mut()
    }

    /// A shared borrow, or `Err` while a mutable one is active.
    #[inline]
    pub fn try_borrow<'a>(&'a self, _py: Python<'_>) -> Result<Ref<'a, T>, std::cell::BorrowError> {
        self.0.try_borrow()
    }

    /// Access for the garbage collector hooks, which hold the GIL but get no
    /// `Python` token. Returns `None` while a mutable borrow is active.
    #[inline]
    pub fn unguarded(&self) -> Option<RefMut<'_, T>> {
        self.0.try_borrow_mut().ok()
    }
}
