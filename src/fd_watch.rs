//! `FdWatch`: one owner's registrations of one fd with the loop.
//!
//! The fd-safety rule in one place: an owner (a transport core) registers
//! its reader and writer through its `FdWatch`, which keeps the handles,
//! and removes only those: if its fd was closed behind its back and the
//! number reused and registered by someone else, that registration stays.
//! Every transport core (socket and pipe) watches its fd through one.

use std::os::fd::RawFd;

use pyo3::gc::PyVisit;
use pyo3::prelude::*;

use crate::event_loop::LoopCore;
use crate::gil_cell::GilCell;
use crate::handle::{Args, Handle};
use crate::reactor::Side;
use crate::traverse::{Traverse, TraverseResult};

pub struct FdWatch {
    fd: RawFd,
    reader: GilCell<Option<Py<Handle>>>,
    writer: GilCell<Option<Py<Handle>>>,
}

impl FdWatch {
    pub fn new(fd: RawFd) -> FdWatch {
        FdWatch {
            fd,
            reader: GilCell::new(None),
            writer: GilCell::new(None),
        }
    }

    fn slot(&self, side: Side) -> &GilCell<Option<Py<Handle>>> {
        match side {
            Side::Read => &self.reader,
            Side::Write => &self.writer,
        }
    }

    /// Run `callback()` when the fd is ready on `side` (replacing our own
    /// earlier registration on that side, as `add_reader` does), in
    /// `context` (a transport's 3.15 context; None: a copy of the current
    /// one, as `add_reader` does).
    pub fn add(
        &self,
        lp: &Bound<'_, LoopCore>,
        side: Side,
        callback: Bound<'_, PyAny>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = lp.py();
        let handle = LoopCore::add_fd(lp, self.fd, side, callback, Args::new(), context)?;
        let old = self.slot(side).borrow_mut(py).replace(handle);
        drop(old); // after the borrow: dropping a handle may run Python code
        Ok(())
    }

    /// Stop watching `side`, if the registration is still ours.
    pub fn remove(&self, lp: Option<&Bound<'_, LoopCore>>, side: Side) -> PyResult<()> {
        let Some(lp) = lp else {
            return Ok(());
        };
        let handle = self.slot(side).borrow_mut(lp.py()).take();
        match handle {
            Some(h) => LoopCore::remove_fd_if(lp, self.fd, side, &h),
            None => Ok(()),
        }
    }

    /// Drop the handles (the collector's clear): the caller drops the result.
    pub fn take_unguarded(&self) -> Vec<Py<Handle>> {
        [&self.reader, &self.writer]
            .into_iter()
            .filter_map(|slot| slot.unguarded().and_then(|mut g| g.take()))
            .collect()
    }
}

/// The collector's view of the handles we hold.
impl Traverse for FdWatch {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        (&self.reader, &self.writer).traverse(visit)
    }
}
