//! Write flow control, as asyncio's `_FlowControlMixin`: the protocol's
//! `pause_writing()` once the write buffer grows past the high-water mark,
//! `resume_writing()` once it drains to the low-water mark.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyTuple};

use crate::event_loop::LoopCore;
use crate::pyhelpers::is_exit;

pub struct Watermarks {
    pub high: usize,
    pub low: usize,
    pub protocol_paused: bool,
    /// `(low, high)` as given, when that is not two plain ints (asyncio
    /// keeps and returns the objects: floats, bools, huge ints).
    shown: Option<Py<PyTuple>>,
}

impl Default for Watermarks {
    fn default() -> Self {
        Watermarks {
            high: 64 * 1024,
            low: 16 * 1024,
            protocol_paused: false,
            shown: None,
        }
    }
}

/// What `set_write_buffer_limits` sets.
pub struct Limits {
    high: usize,
    low: usize,
    shown: Option<Py<PyTuple>>,
}

/// `set_write_buffer_limits(high, low)`'s defaults and checks, in Python
/// arithmetic as asyncio's `_set_write_buffer_limits` does them (a float
/// or any other number asyncio takes is taken too).
pub fn parse_limits(
    py: Python<'_>,
    high: Option<Bound<'_, PyAny>>,
    low: Option<Bound<'_, PyAny>>,
) -> PyResult<Limits> {
    let low = low.filter(|l| !l.is_none());
    let high = match (high.filter(|h| !h.is_none()), &low) {
        (Some(h), _) => h,
        (None, Some(l)) => l.mul(4)?,
        (None, None) => (64 * 1024_i64).into_pyobject(py)?.into_any(),
    };
    let low = match low {
        Some(l) => l,
        None => high.floor_div(4)?,
    };
    if !(high.ge(&low)? && low.ge(0)?) {
        return Err(PyValueError::new_err(format!(
            "high ({}) must be >= low ({}) must be >= 0",
            high.repr()?,
            low.repr()?
        )));
    }
    let plain =
        |v: &Bound<'_, PyAny>| v.is_exact_instance_of::<PyInt>() && v.extract::<usize>().is_ok();
    let shown = if plain(&high) && plain(&low) {
        None
    } else {
        Some(PyTuple::new(py, [&low, &high])?.unbind())
    };
    Ok(Limits {
        high: byte_count(&high)?,
        low: byte_count(&low)?,
        shown,
    })
}

/// The whole bytes a limit means, for `size > high` and `size <= low` with
/// an int `size`: the floor of a fraction, everything past `usize` capped.
fn byte_count(limit: &Bound<'_, PyAny>) -> PyResult<usize> {
    if let Ok(n) = limit.extract::<i128>() {
        return Ok(usize::try_from(n.max(0)).unwrap_or(usize::MAX));
    }
    let x: f64 = limit.extract()?;
    // `as` saturates: infinity is usize::MAX (NaN fails the check above).
    Ok(x.floor() as usize)
}

impl Watermarks {
    /// `get_write_buffer_limits()`: `(low, high)`, as they were given.
    pub fn limits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        match &self.shown {
            Some(shown) => Ok(shown.bind(py).clone()),
            None => PyTuple::new(py, [self.low, self.high]),
        }
    }

    /// `set_write_buffer_limits`, with what `parse_limits` made.
    pub fn set_limits(&mut self, limits: Limits) {
        self.high = limits.high;
        self.low = limits.low;
        self.shown = limits.shown;
    }

    /// The buffer holds `size` bytes: must the protocol be paused now?
    /// (Marks it paused.)
    pub fn begin_pause(&mut self, size: usize) -> bool {
        if size <= self.high || self.protocol_paused {
            return false;
        }
        self.protocol_paused = true;
        true
    }

    /// The buffer holds `size` bytes: must the protocol be resumed now?
    pub fn begin_resume(&mut self, size: usize) -> bool {
        if !self.protocol_paused || size > self.low {
            return false;
        }
        self.protocol_paused = false;
        true
    }
}

/// Call `protocol.pause_writing()` or `resume_writing()`; a failure goes to
/// the loop's exception handler (`"protocol.pause_writing() failed"`).
pub fn notify(
    loop_: Option<&Bound<'_, LoopCore>>,
    protocol: &Bound<'_, PyAny>,
    transport: &Bound<'_, PyAny>,
    pause: bool,
) -> PyResult<()> {
    let py = protocol.py();
    let (method, what) = if pause {
        (
            intern!(py, "pause_writing"),
            "protocol.pause_writing() failed",
        )
    } else {
        (
            intern!(py, "resume_writing"),
            "protocol.resume_writing() failed",
        )
    };
    let Err(err) = protocol.call_method0(method) else {
        return Ok(());
    };
    if is_exit(py, &err) {
        return Err(err);
    }
    if let Some(lp) = loop_ {
        let context = PyDict::new(py);
        context.set_item("message", what)?;
        context.set_item("exception", err.into_value(py))?;
        context.set_item("transport", transport)?;
        context.set_item("protocol", protocol)?;
        lp.call_method1(intern!(py, "call_exception_handler"), (context,))?;
    }
    Ok(())
}
