//! The reactor: which file descriptors the loop watches, and the poll call.
//!
//! asyncio's `add_reader`/`add_writer` contract is level-triggered: a reader
//! that consumes only part of the available data is called again on the next
//! iteration. mio registers edge-triggered, so the fds are registered on
//! mio's epoll instance in level mode by `epoll.rs` (the one platform module),
//! while mio does the waiting, decodes the events and provides the
//! cross-thread `Waker` (an eventfd). The `sock_*` operations' fds are
//! registered edge-triggered and parked between operations (`parked.rs`).

mod epoll;
mod parked;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

use mio::{Events, Poll, Registry, Token, Waker};
use pyo3::prelude::*;

use crate::gil_cell::GilCell;
use crate::handle::Handle;
use crate::live::{Live, Registrations};
use crate::pyhelpers::os_error;
use epoll::Interest;
use parked::{still_held, Parked, ParkedFds};

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
    /// The socket object whose `sock_*` operations are the fd's only
    /// callbacks: the fd is then registered edge-triggered, and parked
    /// rather than removed when the last one finishes (`parked.rs`).
    owner: Option<Py<PyAny>>,
    /// Counts the registered fds (`live`): an entry exists while its fd is.
    _live: Live<Registrations>,
}

impl FdEntry {
    /// What the kernel watches for this entry.
    fn interest(&self) -> Interest {
        Interest {
            read: self.reader.is_some(),
            write: self.writer.is_some(),
            edge: self.owner.is_some(),
        }
    }
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
    /// Finished `sock_*` operations' registrations, until the next poll.
    parked: GilCell<ParkedFds>,
    /// How many times the kernel's registrations were changed (for tests).
    changes: AtomicU64,
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
            parked: GilCell::new(ParkedFds::default()),
            changes: AtomicU64::new(0),
        })
    }

    /// `epoll::set_interest`, counted.
    fn set_interest(
        &self,
        epfd: RawFd,
        fd: RawFd,
        interest: Interest,
        known: bool,
    ) -> io::Result<epoll::Registered> {
        self.changes.fetch_add(1, Relaxed);
        epoll::set_interest(epfd, fd, interest, known)
    }

    /// How many times the kernel's registrations were changed (each one
    /// `epoll_ctl`, two when our belief was stale).
    pub fn registration_changes(&self) -> u64 {
        self.changes.load(Relaxed)
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
    /// it replaces (the caller cancels them, outside any borrow). `owner`:
    /// the socket object of a `sock_*` operation (see `FdEntry::owner`).
    pub fn add(
        &self,
        py: Python<'_>,
        fd: RawFd,
        side: Side,
        handle: Py<Handle>,
        fileobj: Option<Py<PyAny>>,
        owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Replaced> {
        let open = self.open.borrow(py);
        let epfd = match open.as_ref() {
            Some(o) if !self.closed.load(SeqCst) => o.registry.as_raw_fd(),
            _ => return Err(closed_error()),
        };
        let mut fds = self.fds.borrow_mut(py);
        let mut replaced = Replaced::default();
        let is_new = !fds.contains_key(&fd);
        // Whether we believe the kernel has the fd, and, for a registration
        // taken back from parking, exactly what it watches.
        let mut known = !is_new;
        let mut in_kernel = None;
        if is_new {
            if let Some(parked) = self.parked.borrow_mut(py).take(fd) {
                known = true;
                let same = owner.is_some_and(|o| o.is(&parked.owner));
                if same && still_held(py, &parked.owner, fd) {
                    in_kernel = Some(parked.interest);
                }
                replaced.objects.push(parked.owner);
            }
        }
        let entry = fds.entry(fd).or_default();
        let before = entry.interest();
        if is_new {
            entry.owner = owner.map(|o| o.clone().unbind());
        } else if !matches!((owner, &entry.owner), (Some(o), Some(e)) if o.is(e)) {
            // Another kind of callback joins: level-triggered from now on.
            replaced.objects.extend(entry.owner.take());
        }
        let mut want = entry.interest();
        match side {
            Side::Read => want.read = true,
            Side::Write => want.write = true,
        }
        let unchanged = !is_new && want == before;
        let registered = if in_kernel == Some(want) {
            // Taken back from parking as it was: nothing to tell the kernel.
            Ok(epoll::Registered::AsKnown)
        } else {
            self.set_interest(epfd, fd, want, known)
        };
        match registered {
            Ok(epoll::Registered::AsKnown) => {}
            // The fd was closed since, and the interest stays what it was:
            // asyncio's selector only swaps the callback then (no syscall).
            Err(err) if unchanged && err.raw_os_error() == Some(libc::EBADF) => {}
            Ok(epoll::Registered::Afresh) => {
                // The kernel had forgotten the fd: it was closed and its
                // number reused. The other side belonged to the old file.
                replaced.handles.extend(entry.reader.take());
                replaced.handles.extend(entry.writer.take());
                replaced.objects.extend(entry.owner.take());
                entry.owner = owner.map(|o| o.clone().unbind());
                let only = Interest {
                    read: side == Side::Read,
                    write: side == Side::Write,
                    edge: entry.owner.is_some(),
                };
                if let Err(err) = self.set_interest(epfd, fd, only, true) {
                    if let Some(old) = fds.remove(&fd) {
                        replaced.objects.extend(old.fileobj);
                        replaced.objects.extend(old.owner);
                    }
                    drop((fds, open));
                    drop(replaced);
                    return Err(os_error(err));
                }
            }
            Err(err) => {
                let old = if is_new { fds.remove(&fd) } else { None };
                drop((fds, open));
                drop((old, replaced));
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
        let taken = {
            let mut fds = self.fds.borrow_mut(py);
            let entry = fds.get_mut(&fd)?;
            let before = entry.interest();
            let old = match side {
                Side::Read => entry.reader.take(),
                Side::Write => entry.writer.take(),
            };
            let now = entry.interest();
            let gone = if now.is_none() { fds.remove(&fd) } else { None };
            let (fileobj, owner) = gone.map_or((None, None), |e| (e.fileobj, e.owner));
            match owner {
                // The operation's socket may take it back before the next poll.
                Some(owner) if still_held(py, &owner, fd) => {
                    let parked = Parked {
                        owner,
                        interest: before,
                    };
                    self.parked.borrow_mut(py).park(fd, parked);
                    (old, fileobj, None)
                }
                owner => {
                    // The fd may already be closed; the kernel then forgot
                    // it by itself.
                    self.with_epfd(py, |epfd| {
                        let _ = self.set_interest(epfd, fd, now, true);
                    });
                    (old, fileobj, owner)
                }
            }
        };
        let (old, fileobj, owner) = taken;
        drop((fileobj, owner));
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
    pub fn take_all(&self, py: Python<'_>) -> (Vec<FdEntry>, Vec<Py<PyAny>>) {
        let unparked = self.unpark_all(py);
        let all: Vec<(RawFd, FdEntry)> = self.fds.borrow_mut(py).drain().collect();
        self.with_epfd(py, |epfd| {
            for (fd, _) in &all {
                let _ = self.set_interest(epfd, *fd, Interest::NONE, true);
            }
        });
        (all.into_iter().map(|(_, e)| e).collect(), unparked)
    }

    /// Remove the parked registrations from the kernel (those whose socket
    /// still holds the fd: any other is no longer ours to name); returns
    /// the socket objects, for the caller to drop outside any borrow.
    pub fn unpark_all(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        let parked = {
            let mut parked = self.parked.borrow_mut(py);
            if parked.is_empty() {
                return Vec::new();
            }
            parked.drain()
        };
        self.with_epfd(py, |epfd| {
            for (fd, p) in &parked {
                if still_held(py, &p.owner, *fd) {
                    let _ = self.set_interest(epfd, *fd, Interest::NONE, true);
                }
            }
        });
        parked.into_iter().map(|(_, p)| p.owner).collect()
    }

    /// Every registered handle, for the garbage collector's traverse.
    pub fn for_each_handle_unguarded(&self, mut f: impl FnMut(&Py<Handle>)) {
        if let Some(fds) = self.fds.unguarded() {
            for e in fds.values() {
                e.reader.iter().chain(e.writer.iter()).for_each(&mut f);
            }
        }
    }

    /// Every object registrations were made with (and every parked
    /// registration's socket), for the traverse.
    pub fn for_each_fileobj_unguarded(&self, mut f: impl FnMut(&Py<PyAny>)) {
        if let Some(fds) = self.fds.unguarded() {
            fds.values()
                .flat_map(|e| e.fileobj.iter().chain(e.owner.iter()))
                .for_each(&mut f);
        }
        if let Some(parked) = self.parked.unguarded() {
            parked.owners().for_each(&mut f);
        }
    }

    /// Drop the registrations from the collector's clear (fds stay
    /// registered with the kernel until the loop is dropped).
    pub fn take_all_unguarded(&self) -> (Vec<FdEntry>, Vec<Py<PyAny>>) {
        let fds = self
            .fds
            .unguarded()
            .map(|mut fds| fds.drain().map(|(_, e)| e).collect())
            .unwrap_or_default();
        let parked = self
            .parked
            .unguarded()
            .map(|mut p| p.drain().into_iter().map(|(_, p)| p.owner).collect())
            .unwrap_or_default();
        (fds, parked)
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
        // What no operation took back since the last poll leaves the kernel
        // now, before it could report anything.
        drop(self.unpark_all(py));
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
