//! The reactor: which file descriptors the loop watches, and the poll call.
//!
//! asyncio's `add_reader`/`add_writer` contract is level-triggered: a reader
//! that consumes only part of the available data is called again on the next
//! iteration. mio registers edge-triggered, so the fds are registered on
//! mio's epoll instance in level mode by `epoll.rs` (the one platform module),
//! while mio does the waiting, decodes the events and provides the
//! cross-thread `Waker` (an eventfd).

mod epoll;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use mio::{Events, Poll, Registry, Token, Waker};
use pyo3::prelude::*;

use crate::gil_cell::GilCell;
use crate::handle::Handle;
use crate::live::{Live, Registrations};
use crate::pyhelpers::os_error;

/// Token of the waker; fds are non-negative `i32`s and can never collide.
const WAKER_TOKEN: Token = Token(1 << 40);
const EVENTS_CAPACITY: usize = 1024;

/// The callbacks registered for one fd.
#[derive(Default)]
pub struct FdEntry {
    pub reader: Option<Py<Handle>>,
    pub writer: Option<Py<Handle>>,
    /// The object (a socket, a file) the callbacks were registered with, if
    /// not a plain number: asyncio's selector finds a registration by its
    /// object once the object is closed and its `fileno()` is -1.
    pub fileobj: Option<Py<PyAny>>,
    /// Counts the registered fds (`live`): an entry exists while its fd is.
    _live: Live<Registrations>,
}

struct Poller {
    poll: Poll,
    events: Events,
}

/// The loop's end of the epoll instance. Dropped by `close()`: a closed
/// loop has no epoll fd number left to misuse.
struct Open {
    /// A `dup` of mio's epoll fd (the same instance), owned here, for
    /// `epoll_ctl` while the poller itself is out waiting.
    registry: Registry,
    waker: Waker,
}

pub struct Reactor {
    /// Taken out for the duration of the wait (the GIL released), then put
    /// back; so no lock is ever held across a GIL release. A `close()` that
    /// finds it out (another thread closing a sleeping loop) leaves it to
    /// the waiting thread, which drops it on return.
    poller: GilCell<Option<Poller>>,
    /// `None` once closed.
    open: GilCell<Option<Open>>,
    closed: AtomicBool,
    fds: GilCell<HashMap<RawFd, FdEntry>>,
}

/// Which side of an fd a call is about.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Read,
    Write,
}

/// The reader and writer of one fd (either may be missing).
pub type FdHandles = (Option<Py<Handle>>, Option<Py<Handle>>);

/// What a registration replaced: handles for the caller to cancel and
/// objects to drop, both once every borrow has ended.
#[derive(Default)]
pub struct Replaced {
    pub handles: Vec<Py<Handle>>,
    pub objects: Vec<Py<PyAny>>,
}

fn closed_error() -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err("Event loop is closed")
}

impl Reactor {
    pub fn new() -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN)?;
        let registry = poll.registry().try_clone()?;
        Ok(Reactor {
            poller: GilCell::new(Some(Poller {
                poll,
                events: Events::with_capacity(EVENTS_CAPACITY),
            })),
            open: GilCell::new(Some(Open { registry, waker })),
            closed: AtomicBool::new(false),
            fds: GilCell::new(HashMap::new()),
        })
    }

    /// Run `f` on the epoll fd, which stays open for the call (the borrow
    /// of `open` keeps `close()` out); `None` once closed.
    fn with_epfd<R>(&self, py: Python<'_>, f: impl FnOnce(RawFd) -> R) -> Option<R> {
        if self.closed.load(SeqCst) {
            return None;
        }
        let open = self.open.borrow(py);
        open.as_ref().map(|o| f(o.registry.as_raw_fd()))
    }

    /// Wake a loop blocked in `poll` (from any thread). mio's eventfd waker
    /// already resets a saturated counter and retries, so an error here is
    /// a real one (the fd closed behind our back, say).
    pub fn wake(&self, py: Python<'_>) -> io::Result<()> {
        match &*self.open.borrow(py) {
            Some(open) => open.waker.wake(),
            None => Ok(()),
        }
    }

    /// Release the epoll instance and the waker (the loop is closed). Safe
    /// from any thread, also while the loop thread waits in `poll`: that
    /// thread is woken, and releases them itself on its way out (closing
    /// the eventfd now could lose the wake-up).
    pub fn close(&self, py: Python<'_>) {
        if self.closed.swap(true, SeqCst) {
            return;
        }
        let poller = self.poller.borrow_mut(py).take();
        if poller.is_none() {
            if let Err(err) = self.wake(py) {
                // Nothing to report it to any more: the loop is closing.
                drop(err);
            }
            return;
        }
        let open = self.open.borrow_mut(py).take();
        drop((open, poller));
    }

    /// Install `handle` as the reader or writer of `fd` (registered with
    /// `fileobj`, if an object rather than a number); returns the handles
    /// it replaces (the caller cancels them, outside any borrow).
    pub fn add(
        &self,
        py: Python<'_>,
        fd: RawFd,
        side: Side,
        handle: Py<Handle>,
        fileobj: Option<Py<PyAny>>,
    ) -> PyResult<Replaced> {
        let open = self.open.borrow(py);
        let epfd = match open.as_ref() {
            Some(o) if !self.closed.load(SeqCst) => o.registry.as_raw_fd(),
            _ => return Err(closed_error()),
        };
        let mut fds = self.fds.borrow_mut(py);
        let known = fds.contains_key(&fd);
        let entry = fds.entry(fd).or_default();
        let (read, write) = match side {
            Side::Read => (true, entry.writer.is_some()),
            Side::Write => (entry.reader.is_some(), true),
        };
        let unchanged = known && (read, write) == (entry.reader.is_some(), entry.writer.is_some());
        let mut replaced = Replaced::default();
        match epoll::set_interest(epfd, fd, read, write, known) {
            Ok(epoll::Registered::AsKnown) => {}
            // The fd was closed since, and the interest stays what it was:
            // asyncio's selector only swaps the callback then (no syscall).
            Err(err) if unchanged && err.raw_os_error() == Some(libc::EBADF) => {}
            Ok(epoll::Registered::Afresh) => {
                // The kernel had forgotten the fd: it was closed and its
                // number reused. The other side belonged to the old file.
                replaced.handles.extend(entry.reader.take());
                replaced.handles.extend(entry.writer.take());
                if let Err(err) =
                    epoll::set_interest(epfd, fd, side == Side::Read, side == Side::Write, true)
                {
                    if let Some(old) = fds.remove(&fd) {
                        replaced.objects.extend(old.fileobj);
                    }
                    drop((fds, open));
                    drop(replaced);
                    return Err(os_error(err));
                }
            }
            Err(err) => {
                let old = if !known { fds.remove(&fd) } else { None };
                drop((fds, open));
                drop(old);
                return Err(os_error(err));
            }
        }
        if let Some(obj) = fileobj {
            replaced.objects.extend(entry.fileobj.replace(obj));
        }
        let slot = match side {
            Side::Read => &mut entry.reader,
            Side::Write => &mut entry.writer,
        };
        replaced.handles.extend(slot.replace(handle));
        Ok(replaced)
    }

    /// Remove the reader or writer of `fd`; returns it if there was one.
    /// The caller drops what it gets after this returns (no borrow left).
    pub fn remove(&self, py: Python<'_>, fd: RawFd, side: Side) -> Option<Py<Handle>> {
        let (old, fileobj) = {
            let mut fds = self.fds.borrow_mut(py);
            let entry = fds.get_mut(&fd)?;
            let old = match side {
                Side::Read => entry.reader.take(),
                Side::Write => entry.writer.take(),
            };
            let (read, write) = (entry.reader.is_some(), entry.writer.is_some());
            let fileobj = if !read && !write {
                fds.remove(&fd).and_then(|e| e.fileobj)
            } else {
                None
            };
            // The fd may already be closed; the kernel then forgot it by itself.
            self.with_epfd(py, |epfd| {
                let _ = epoll::set_interest(epfd, fd, read, write, true);
            });
            (old, fileobj)
        };
        drop(fileobj);
        old
    }

    /// The fd under which `fileobj` (by identity) is registered: asyncio's
    /// selector lookup for an object whose `fileno()` no longer answers.
    pub fn find_object(&self, py: Python<'_>, fileobj: &Bound<'_, PyAny>) -> Option<RawFd> {
        let fds = self.fds.borrow(py);
        fds.iter()
            .find(|(_, e)| e.fileobj.as_ref().map(|o| o.as_ptr()) == Some(fileobj.as_ptr()))
            .map(|(fd, _)| *fd)
    }

    /// Remove the reader or writer of `fd` only if it is still `expected`:
    /// an fd closed behind its owner's back may have been reused and
    /// registered by someone else, whose callback must stay.
    pub fn remove_if(&self, py: Python<'_>, fd: RawFd, side: Side, expected: &Py<Handle>) -> bool {
        let current = {
            let fds = self.fds.borrow(py);
            let Some(entry) = fds.get(&fd) else {
                return false;
            };
            match side {
                Side::Read => entry.reader.as_ref().map(|h| h.as_ptr()),
                Side::Write => entry.writer.as_ref().map(|h| h.as_ptr()),
            }
        };
        if current != Some(expected.as_ptr()) {
            return false;
        }
        self.remove(py, fd, side).is_some()
    }

    /// Whether no fd is registered, apart from (possibly) `fd`.
    pub fn watches_nothing_but(&self, py: Python<'_>, fd: RawFd) -> bool {
        let fds = self.fds.borrow(py);
        fds.is_empty() || (fds.len() == 1 && fds.contains_key(&fd))
    }

    /// The reader and writer registered for `fd`.
    pub fn handles(&self, py: Python<'_>, fd: RawFd) -> FdHandles {
        match self.fds.borrow(py).get(&fd) {
            Some(e) => (
                e.reader.as_ref().map(|h| h.clone_ref(py)),
                e.writer.as_ref().map(|h| h.clone_ref(py)),
            ),
            None => (None, None),
        }
    }

    /// Forget every registration (on close); the caller drops the result.
    pub fn take_all(&self, py: Python<'_>) -> Vec<FdEntry> {
        let all: Vec<(RawFd, FdEntry)> = self.fds.borrow_mut(py).drain().collect();
        self.with_epfd(py, |epfd| {
            for (fd, _) in &all {
                let _ = epoll::set_interest(epfd, *fd, false, false, true);
            }
        });
        all.into_iter().map(|(_, e)| e).collect()
    }

    /// Every registered handle, for the garbage collector's traverse.
    pub fn for_each_handle_unguarded(&self, mut f: impl FnMut(&Py<Handle>)) {
        if let Some(fds) = self.fds.unguarded() {
            for e in fds.values() {
                e.reader.iter().chain(e.writer.iter()).for_each(&mut f);
            }
        }
    }

    /// Every object registrations were made with, for the traverse.
    pub fn for_each_fileobj_unguarded(&self, mut f: impl FnMut(&Py<PyAny>)) {
        if let Some(fds) = self.fds.unguarded() {
            fds.values()
                .filter_map(|e| e.fileobj.as_ref())
                .for_each(&mut f);
        }
    }

    /// Drop the registrations from the collector's clear (fds stay
    /// registered with the kernel until the loop is dropped).
    pub fn take_all_unguarded(&self) -> Vec<FdEntry> {
        self.fds
            .unguarded()
            .map(|mut fds| fds.drain().map(|(_, e)| e).collect())
            .unwrap_or_default()
    }

    /// Wait for readiness with the GIL released, then hand the ready
    /// callbacks to `push`, readers before writers, in kernel order.
    /// Cancelled handles found on the way are unregistered, as asyncio does.
    /// An interrupted wait (a signal) is not an error: the caller checks
    /// Python's signal handlers next.
    pub fn poll(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
        mut push: impl FnMut(Py<Handle>),
    ) -> PyResult<()> {
        // Out of its cell for the wait, so no borrow (and no lock) is held
        // while the GIL is released.
        let Some(mut poller) = self.poller.borrow_mut(py).take() else {
            return Err(if self.closed.load(SeqCst) {
                closed_error()
            } else {
                pyo3::exceptions::PyRuntimeError::new_err("the loop is already polling")
            });
        };
        let Poller { poll, events } = &mut poller;
        // A zero-timeout poll returns at once: releasing and re-taking the
        // GIL around it would cost more than the syscall itself.
        let result = if timeout == Some(Duration::ZERO) {
            poll.poll(events, timeout)
        } else {
            py.detach(|| poll.poll(events, timeout))
        };
        if self.closed.load(SeqCst) {
            // Closed from another thread while we waited: the poller and the
            // waker are ours to release; the events are for registrations
            // now gone.
            let open = self.open.borrow_mut(py).take();
            drop((open, poller));
            return Err(closed_error());
        }
        let outcome = match result {
            Ok(()) => Ok(self.dispatch(py, &poller.events, &mut push)),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(Vec::new()),
            Err(err) => Err(os_error(err)),
        };
        *self.poller.borrow_mut(py) = Some(poller);
        for (fd, side) in outcome? {
            drop(self.remove(py, fd, side));
        }
        Ok(())
    }

    /// Hand the ready callbacks to `push`; returns the cancelled ones found.
    fn dispatch(
        &self,
        py: Python<'_>,
        events: &Events,
        push: &mut impl FnMut(Py<Handle>),
    ) -> Vec<(RawFd, Side)> {
        let mut stale: Vec<(RawFd, Side)> = Vec::new();
        let fds = self.fds.borrow(py);
        for event in events.iter() {
            if event.token() == WAKER_TOKEN {
                continue;
            }
            let fd = event.token().0 as RawFd;
            let Some(entry) = fds.get(&fd) else { continue };
            let err = event.is_error();
            let readable = event.is_readable() || event.is_read_closed() || err;
            let writable = event.is_writable() || event.is_write_closed() || err;
            for (ready, slot, side) in [
                (readable, &entry.reader, Side::Read),
                (writable, &entry.writer, Side::Write),
            ] {
                if let (true, Some(h)) = (ready, slot) {
                    if h.get().is_cancelled() {
                        stale.push((fd, side));
                    } else {
                        push(h.clone_ref(py));
                    }
                }
            }
        }
        stale
    }
}
