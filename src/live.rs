//! Live-object counters: how many transports, handles, pidfds and fd
//! registrations exist right now, process-wide.
//!
//! A leak (a transport nobody closes, a pidfd never closed, a registration
//! left behind on close) shows up as a count that does not come back down;
//! the test suite checks these after each test module. Each counted object
//! holds a `Live<Kind>` field: a zero-sized guard that adds one when built
//! and takes one away when dropped, so every path out (close, collection,
//! unwinding) is counted without hooks of its own.
//!
//! Cost: one relaxed atomic add at creation and one at destruction, next to
//! a syscall or an allocation of a Python object. Handles are the exception:
//! millions are made per second, so they are counted only when the process
//! was started with `FERROLOOP_LIVE_COUNTS` set (read once, when the
//! extension is imported, before any handle exists; so every handle is
//! either counted both ways or not at all). Off, a handle pays one relaxed
//! load of a flag that never changes.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// What is counted: each kind is a type, so a guard is zero-sized.
pub trait Kind {
    /// Where its count is kept in `COUNTS`.
    const SLOT: usize;
    /// The key `_live_counts()` reports it under.
    const NAME: &'static str;
    /// Counted only when `FERROLOOP_LIVE_COUNTS` is set (hot-path kinds).
    const ON_DEMAND: bool = false;
}

/// Transport cores (socket and pipe).
pub struct Transports;
/// `Handle` and `TimerHandle` objects (not callbacks: a pooled handle is
/// one object however many callbacks it runs).
pub struct Handles;
/// Open pidfds of the child watcher (also those a reaper thread waits on).
pub struct Pidfds;
/// fds registered with a reactor (one per fd, whether reader, writer or both).
pub struct Registrations;

impl Kind for Transports {
    const SLOT: usize = 0;
    const NAME: &'static str = "transports";
}
impl Kind for Handles {
    const SLOT: usize = 1;
    const NAME: &'static str = "handles";
    const ON_DEMAND: bool = true;
}
impl Kind for Pidfds {
    const SLOT: usize = 2;
    const NAME: &'static str = "pidfds";
}
impl Kind for Registrations {
    const SLOT: usize = 3;
    const NAME: &'static str = "registrations";
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicIsize = AtomicIsize::new(0);
static COUNTS: [AtomicIsize; 4] = [ZERO; 4];

/// Whether on-demand kinds are counted; set once, at import.
static ON_DEMAND: AtomicBool = AtomicBool::new(false);

/// Read `FERROLOOP_LIVE_COUNTS` (at import, before any object exists).
pub fn init() {
    let on = std::env::var_os("FERROLOOP_LIVE_COUNTS").is_some_and(|v| !v.is_empty() && v != "0");
    ON_DEMAND.store(on, Relaxed);
}

#[inline(always)]
fn counted<K: Kind>() -> bool {
    !K::ON_DEMAND || ON_DEMAND.load(Relaxed)
}

/// One live object of kind `K`: counted from `new()` to drop.
pub struct Live<K: Kind>(PhantomData<K>);

impl<K: Kind> Live<K> {
    #[inline(always)]
    pub fn new() -> Self {
        if counted::<K>() {
            COUNTS[K::SLOT].fetch_add(1, Relaxed);
        }
        Live(PhantomData)
    }
}

impl<K: Kind> Default for Live<K> {
    #[inline(always)]
    fn default() -> Self {
        Live::new()
    }
}

impl<K: Kind> Drop for Live<K> {
    #[inline(always)]
    fn drop(&mut self) {
        if counted::<K>() {
            COUNTS[K::SLOT].fetch_sub(1, Relaxed);
        }
    }
}

fn report<K: Kind>(dict: &Bound<'_, PyDict>) -> PyResult<()> {
    if counted::<K>() {
        dict.set_item(K::NAME, COUNTS[K::SLOT].load(Relaxed))?;
    }
    Ok(())
}

/// `{kind: number alive}`; `handles` only when `FERROLOOP_LIVE_COUNTS` was
/// set at import.
#[pyfunction]
pub fn _live_counts(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    report::<Transports>(&dict)?;
    report::<Handles>(&dict)?;
    report::<Pidfds>(&dict)?;
    report::<Registrations>(&dict)?;
    Ok(dict)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Probe;
    impl Kind for Probe {
        const SLOT: usize = 0;
        const NAME: &'static str = "probe";
    }

    #[test]
    fn guard_counts_from_new_to_drop() {
        let before = COUNTS[Probe::SLOT].load(Relaxed);
        let a = Live::<Probe>::new();
        let b = Live::<Probe>::default();
        assert_eq!(COUNTS[Probe::SLOT].load(Relaxed), before + 2);
        drop((a, b));
        assert_eq!(COUNTS[Probe::SLOT].load(Relaxed), before);
        assert_eq!(std::mem::size_of::<Live<Probe>>(), 0);
    }
}
