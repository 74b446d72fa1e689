//! Write flow control, as asyncio's `_FlowControlMixin`: the protocol's
//! `pause_writing()` once the write buffer grows past the high-water mark,
//! `resume_writing()` once it drains to the low-water mark.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::event_loop::LoopCore;
use crate::pyhelpers::is_exit;

pub struct Watermarks {
    pub high: usize,
    pub low: usize,
    pub protocol_paused: bool,
}

impl Default for Watermarks {
    fn default() -> Self {
        Watermarks {
            high: 64 * 1024,
            low: 16 * 1024,
            protocol_paused: false,
        }
    }
}

/// `set_write_buffer_limits(high, low)`'s defaults and checks.
pub fn parse_limits(
    high: Option<Bound<'_, PyAny>>,
    low: Option<Bound<'_, PyAny>>,
) -> PyResult<(usize, usize)> {
    let high: Option<i64> = high
        .filter(|h| !h.is_none())
        .map(|h| h.extract())
        .transpose()?;
    let low: Option<i64> = low
        .filter(|l| !l.is_none())
        .map(|l| l.extract())
        .transpose()?;
    let high = high.unwrap_or_else(|| low.map_or(64 * 1024, |l| 4 * l));
    let low = low.unwrap_or(high.div_euclid(4));
    if !(high >= low && low >= 0) {
        return Err(PyValueError::new_err(format!(
            "high ({high}) must be >= low ({low}) must be >= 0"
        )));
    }
    Ok((high as usize, low as usize))
}

impl Watermarks {
    /// `get_write_buffer_limits()`: `(low, high)`.
    pub fn limits(&self) -> (usize, usize) {
        (self.low, self.high)
    }

    /// `set_write_buffer_limits`, with `(high, low)` from `parse_limits`.
    pub fn set_limits(&mut self, (high, low): (usize, usize)) {
        self.high = high;
        self.low = low;
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
