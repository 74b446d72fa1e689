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
use std::sync::Mutex;
use std::time::Duration;

use mio::{Events, Poll, Token, Waker};
use pyo3::prelude::*;

use crate::gil_cell::GilCell;
use crate::handle::Handle;

/// Token of the waker; fds are non-negative `i32`s and can never collide.
const WAKER_TOKEN: Token = Token(1 << 40);
const EVENTS_CAPACITY: usize = 1024;

/// The callbacks registered for one fd.
#[derive(Default)]
pub struct FdEntry {
    pub reader: Option<Py<Handle>>,
    pub writer: Option<Py<Handle>>,
}

struct Poller {
    poll: Poll,
    events: Events,
}

pub struct Reactor {
    /// Locked only by the thread running the loop, around the poll call.
    /// `None` once closed: `close()` releases the epoll fd, as asyncio's
    /// loop releases its selector.
    poller: Mutex<Option<Poller>>,
    epfd: RawFd,
    waker: GilCell<Option<Waker>>,
    fds: GilCell<HashMap<RawFd, FdEntry>>,
}

/// `OSError(errno, strerror)`: Python picks the subclass (PermissionError,
/// FileNotFoundError...) and `errno` is set, as the stdlib selectors give.
pub fn os_error(err: io::Error) -> PyErr {
    match err.raw_os_error() {
        Some(code) => {
            // SAFETY: strerror returns a valid NUL-terminated static string.
            let msg = unsafe { std::ffi::CStr::from_ptr(libc::strerror(code)) }
                .to_string_lossy()
                .into_owned();
            pyo3::exceptions::PyOSError::new_err((code, msg))
        }
        None => err.into(),
    }
}

/// Which side of an fd a call is about.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Read,
    Write,
}

impl Reactor {
    pub fn new() -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN)?;
        let epfd = poll.as_raw_fd();
        Ok(Reactor {
            poller: Mutex::new(Some(Poller {
                poll,
                events: Events::with_capacity(EVENTS_CAPACITY),
            })),
            epfd,
            waker: GilCell::new(Some(waker)),
            fds: GilCell::new(HashMap::new()),
        })
    }

    /// Wake a loop blocked in `poll` (from any thread).
    pub fn wake(&self, py: Python<'_>) {
        if let Some(waker) = &*self.waker.borrow(py) {
            // A failed wake means the eventfd counter is saturated: the loop
            // is being woken anyway.
            let _ = waker.wake();
        }
    }

    /// Release the epoll instance and the waker (the loop is closed).
    pub fn close(&self, py: Python<'_>) {
        let waker = self.waker.borrow_mut(py).take();
        let poller = self.poller.lock().ok().and_then(|mut p| p.take());
        drop((waker, poller));
    }

    /// Install `handle` as the reader or writer of `fd`; returns the handles
    /// it replaces (the caller cancels them, outside any borrow).
    pub fn add(
        &self,
        py: Python<'_>,
        fd: RawFd,
        side: Side,
        handle: Py<Handle>,
    ) -> PyResult<Vec<Py<Handle>>> {
        let mut fds = self.fds.borrow_mut(py);
        let known = fds.contains_key(&fd);
        let entry = fds.entry(fd).or_default();
        let (read, write) = match side {
            Side::Read => (true, entry.writer.is_some()),
            Side::Write => (entry.reader.is_some(), true),
        };
        let mut replaced = Vec::new();
        match epoll::set_interest(self.epfd, fd, read, write, known) {
            Ok(epoll::Registered::AsKnown) => {}
            Ok(epoll::Registered::Afresh) => {
                // The kernel had forgotten the fd: it was closed and its
                // number reused. The other side belonged to the old file.
                replaced.extend(entry.reader.take());
                replaced.extend(entry.writer.take());
                if let Err(err) = epoll::set_interest(
                    self.epfd,
                    fd,
                    side == Side::Read,
                    side == Side::Write,
                    true,
                ) {
                    fds.remove(&fd);
                    return Err(os_error(err));
                }
            }
            Err(err) => {
                if !known {
                    fds.remove(&fd);
                }
                return Err(os_error(err));
            }
        }
        let slot = match side {
            Side::Read => &mut entry.reader,
            Side::Write => &mut entry.writer,
        };
        replaced.extend(slot.replace(handle));
        Ok(replaced)
    }

    /// Remove the reader or writer of `fd`; returns it if there was one.
    pub fn remove(&self, py: Python<'_>, fd: RawFd, side: Side) -> Option<Py<Handle>> {
        let mut fds = self.fds.borrow_mut(py);
        let entry = fds.get_mut(&fd)?;
        let old = match side {
            Side::Read => entry.reader.take(),
            Side::Write => entry.writer.take(),
        };
        let (read, write) = (entry.reader.is_some(), entry.writer.is_some());
        if !read && !write {
            fds.remove(&fd);
        }
        // The fd may already be closed; the kernel then forgot it by itself.
        let _ = epoll::set_interest(self.epfd, fd, read, write, true);
        old
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
    pub fn handles(&self, py: Python<'_>, fd: RawFd) -> (Option<Py<Handle>>, Option<Py<Handle>>) {
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
        let mut fds = self.fds.borrow_mut(py);
        let all: Vec<(RawFd, FdEntry)> = fds.drain().collect();
        for (fd, _) in &all {
            let _ = epoll::set_interest(self.epfd, *fd, false, false, true);
        }
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
        let mut guard = self
            .poller
            .lock()
            .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("reactor lock poisoned"))?;
        let Some(Poller { poll, events }) = guard.as_mut() else {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "Event loop is closed",
            ));
        };
        // A zero-timeout poll returns at once: releasing and re-taking the
        // GIL around it would cost more than the syscall itself.
        let result = if timeout == Some(Duration::ZERO) {
            poll.poll(events, timeout)
        } else {
            py.detach(|| poll.poll(events, timeout))
        };
        match result {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(err) => return Err(os_error(err)),
        }
        let mut stale: Vec<(RawFd, Side)> = Vec::new();
        {
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
        }
        drop(guard);
        for (fd, side) in stale {
            drop(self.remove(py, fd, side));
        }
        Ok(())
    }
}
