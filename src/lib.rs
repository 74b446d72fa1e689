//! ferroloop: an asyncio event loop in Rust.
//!
//! - `event_loop`: the scheduler (`LoopCore`): ready queue, timers, run loop.
//! - `fastcall`: vectorcall entry points of the scheduling methods.
//! - `handle`: `Handle`/`TimerHandle`, the callbacks the loop runs.
//! - `timers`: the timer heap.
//! - `reactor`: fd registrations and the poll (mio, level-triggered epoll).
//! - `clock`, `gil_cell`, `pyhelpers`: small shared pieces.

use pyo3::prelude::*;

mod clock;
mod event_loop;
mod fastcall;
mod gil_cell;
mod handle;
mod pyhelpers;
mod reactor;
mod timers;

#[pymodule]
fn _ferroloop(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<event_loop::LoopCore>()?;
    fastcall::install(&m.py().get_type::<event_loop::LoopCore>())?;
    m.add_class::<handle::Handle>()?;
    m.add_class::<handle::TimerHandle>()?;
    Ok(())
}
