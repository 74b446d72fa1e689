//! `FdWatch`: one owner's registrations of one fd with the loop.
//!
//! The fd-safety rule in one place: an owner (a transport core) registers
//! its reader and writer through its `FdWatch`, which keeps the handles,
//! and removes only those: if its fd was closed behind its back and the
//! number reused and registered by someone else, that registration stays.
//! Every transport core (socket and pipe) and the accept loop watch their fd
//! through one.
//!
//! `OwnedFdWatch` is the same over an fd it owns (the child watcher's
//! pidfds): the number cannot be reused while it is registered, and the fd
//! is closed on drop, after the handles.

use std::ops::Deref;
use std::os::fd::{AsRawFd, RawFd};

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

    /// The fd number watched.
    pub fn fd(&self) -> RawFd {
        self.fd
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
        self.add_with_args(lp, side, callback, Args::new(), context)
    }

    /// `add`, for a callback called with `args`.
    pub fn add_with_args(
        &self,
        lp: &Bound<'_, LoopCore>,
        side: Side,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = lp.py();
        let handle = LoopCore::add_fd(lp, self.fd, side, callback, args, context)?;
        let old = self.slot(side).borrow_mut(py).replace(handle);
        drop(old); // after the borrow: dropping a handle may run Python code
        Ok(())
    }

    /// Stop watching both sides (those registrations still ours).
    pub fn remove_all(&self, lp: Option<&Bound<'_, LoopCore>>) -> PyResult<()> {
        let read = self.remove(lp, Side::Read);
        let write = self.remove(lp, Side::Write);
        read.and(write)
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

/// An `FdWatch` over an fd it owns (`F`: an `OwnedFd` or a wrapper of one).
/// Nobody else can close the number, so a registration found under it is
/// ours; the fields drop in order, the handles before the fd. Remove the
/// registrations before dropping (or `into_fd`): a registration outliving
/// its fd would stay in the reactor until the loop closes.
pub struct OwnedFdWatch<F: AsRawFd> {
    watch: FdWatch,
    fd: F,
}

impl<F: AsRawFd> OwnedFdWatch<F> {
    pub fn new(fd: F) -> Self {
        OwnedFdWatch {
            watch: FdWatch::new(fd.as_raw_fd()),
            fd,
        }
    }

    /// Remove our registrations and keep only the fd (to hand it on).
    pub fn into_fd(self, lp: Option<&Bound<'_, LoopCore>>) -> (F, PyResult<()>) {
        let removed = self.watch.remove_all(lp);
        let OwnedFdWatch { watch, fd } = self;
        drop(watch);
        (fd, removed)
    }
}

impl<F: AsRawFd> Deref for OwnedFdWatch<F> {
    type Target = FdWatch;

    fn deref(&self) -> &FdWatch {
        &self.watch
    }
}

impl<F: AsRawFd> Traverse for OwnedFdWatch<F> {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        self.watch.traverse(visit)
    }
}
