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
    poller: Mutex<Poller>,
    epfd: RawFd,
    waker: Waker,
    fds: GilCell<HashMap<RawFd, FdEntry>>,
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
            poller: Mutex::new(Poller {
                poll,
                events: Events::with_capacity(EVENTS_CAPACITY),
            }),
            epfd,
            waker,
            fds: GilCell::new(HashMap::new()),
        })
    }

    /// Wake a loop blocked in `poll` (any thread, no GIL needed).
    pub fn wake(&self) -> io::Result<()> {
        self.waker.wake()
    }

    /// Install `handle` as the reader or writer of `fd`; returns the handle
    /// it replaces (the caller cancels it, outside any borrow).
    pub fn add(
        &self,
        py: Python<'_>,
        fd: RawFd,
        side: Side,
        handle: Py<Handle>,
    ) -> PyResult<Option<Py<Handle>>> {
        let mut fds = self.fds.borrow_mut(py);
        let known = fds.contains_key(&fd);
        let entry = fds.entry(fd).or_default();
        let (read, write) = match side {
            Side::Read => (true, entry.writer.is_some()),
            Side::Write => (entry.reader.is_some(), true),
        };
        if let Err(err) = epoll::set_interest(self.epfd, fd, read, write, known) {
            if !known {
                fds.remove(&fd);
            }
            return Err(err.into());
        }
        let slot = match side {
            Side::Read => &mut entry.reader,
            Side::Write => &mut entry.writer,
        };
        Ok(slot.replace(handle))
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

    pub fn has(&self, py: Python<'_>, fd: RawFd, side: Side) -> bool {
        self.fds.borrow(py).get(&fd).is_some_and(|e| match side {
            Side::Read => e.reader.is_some(),
            Side::Write => e.writer.is_some(),
        })
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
        let Poller { poll, events } = &mut *guard;
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
            Err(err) => return Err(err.into()),
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
