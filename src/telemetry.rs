//! Loop telemetry, off by default: iterations, callbacks run, time spent
//! polling and running callbacks, and the slowest callbacks.
//!
//! Cost when off: the run loop reads one flag per iteration; the per-callback
//! path keeps its single branch (the one debug mode already had), now on
//! "debug or telemetry". When on: two clock reads per callback and per poll.
//! Describing a slow callback (its repr and source location) is left to a
//! Python function, called only when a callback enters the top list.

use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// How many of the slowest callbacks are kept.
pub const SLOWEST_KEPT: usize = 10;

#[derive(Default)]
pub struct LoopStats {
    pub iterations: u64,
    pub callbacks: u64,
    pub poll_time: Duration,
    pub callback_time: Duration,
    /// Slowest first: (duration, whatever `describe(handle)` returned).
    slowest: Vec<(Duration, Py<PyAny>)>,
    /// `describe(handle) -> object`, set when telemetry is enabled.
    describe: Option<Py<PyAny>>,
}

impl LoopStats {
    pub fn set_describe(&mut self, describe: Option<Py<PyAny>>) {
        self.describe = describe;
    }

    pub fn reset(&mut self) {
        let describe = self.describe.take();
        *self = LoopStats {
            describe,
            ..LoopStats::default()
        };
    }

    /// Whether a callback that took `took` would enter the top list.
    fn is_slow(&self, took: Duration) -> bool {
        self.slowest.len() < SLOWEST_KEPT || self.slowest.last().is_some_and(|(d, _)| took > *d)
    }

    fn insert_slow(&mut self, took: Duration, what: Py<PyAny>) {
        let at = self.slowest.partition_point(|(d, _)| *d >= took);
        self.slowest.insert(at, (took, what));
        self.slowest.truncate(SLOWEST_KEPT);
    }

    pub fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("iterations", self.iterations)?;
        d.set_item("callbacks", self.callbacks)?;
        d.set_item("poll_time", self.poll_time.as_secs_f64())?;
        d.set_item("callback_time", self.callback_time.as_secs_f64())?;
        let slowest: Vec<(f64, Py<PyAny>)> = self
            .slowest
            .iter()
            .map(|(t, w)| (t.as_secs_f64(), w.clone_ref(py)))
            .collect();
        d.set_item("slowest", slowest)?;
        Ok(d)
    }
}

/// A started clock, only when telemetry is on.
#[inline]
pub fn start(on: bool) -> Option<Instant> {
    if on {
        Some(Instant::now())
    } else {
        None
    }
}

/// Account one callback that ran (from `start`): its time, and, when it is
/// among the slowest, its description (errors describing it are dropped).
pub fn callback_ran(
    py: Python<'_>,
    stats: &crate::gil_cell::GilCell<LoopStats>,
    started: Instant,
    handle: &Bound<'_, PyAny>,
) {
    let took = started.elapsed();
    let describe = {
        let mut s = stats.borrow_mut(py);
        s.callbacks += 1;
        s.callback_time += took;
        if !s.is_slow(took) {
            return;
        }
        match &s.describe {
            Some(f) => f.clone_ref(py),
            None => return,
        }
    };
    // No borrow held: the description is Python code.
    let what = match describe.bind(py).call1((handle,)) {
        Ok(w) if !w.is_none() => w.unbind(),
        _ => return, // not to be listed, or describing it failed
    };
    stats.borrow_mut(py).insert_slow(took, what);
}

/// The loop's telemetry methods (private: `ferroloop.stats` and friends
/// are the API).
#[pymethods]
impl crate::event_loop::LoopCore {
    /// Turn telemetry on (with the function describing slow callbacks) or off.
    #[pyo3(signature = (enabled, describe=None))]
    fn _set_telemetry(slf: &Bound<'_, Self>, enabled: bool, describe: Option<Py<PyAny>>) {
        let this = slf.get();
        if enabled {
            this.stats.borrow_mut(slf.py()).set_describe(describe);
        }
        this.telemetry
            .store(enabled, std::sync::atomic::Ordering::Relaxed);
    }

    fn _reset_telemetry(slf: &Bound<'_, Self>) {
        slf.get().stats.borrow_mut(slf.py()).reset();
    }

    /// The counters, plus what is queued and registered right now.
    fn _telemetry_stats<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let this = slf.get();
        let d = this.stats.borrow(py).to_dict(py)?;
        d.set_item(
            "enabled",
            this.telemetry.load(std::sync::atomic::Ordering::Relaxed),
        )?;
        d.set_item("ready", this.ready.borrow(py).len())?;
        d.set_item("timers", this.timers.borrow(py).len())?;
        let mut watches = 0usize;
        this.reactor.for_each_handle_unguarded(|_| watches += 1);
        d.set_item("fd_watches", watches)?;
        Ok(d)
    }
}
