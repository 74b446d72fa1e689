//! Parked registrations: a finished `sock_*` operation's fd, left in the
//! kernel until the next poll.
//!
//! asyncio's `sock_recv` registers a reader when the socket has no data and
//! removes it once the read is done, so a request-response loop pays two
//! `epoll_ctl` per round trip (12% of a 1 KiB `sock_*` echo server's CPU,
//! measured with perf). Here the last registration of a finished operation
//! is parked instead: kept in the kernel, gone from asyncio's view of the
//! registrations, and taken back without a syscall by the next operation
//! on the same socket before the next poll. Whatever is still parked when
//! the loop polls is removed first.
//!
//! Why that is safe:
//! - An operation's registration is edge-triggered. A socket closed while
//!   parked, with a dup keeping its file open (a forked child, say), leaves
//!   a registration the kernel keeps and we can no longer name. Being
//!   edge-triggered, it reports each new readiness once, to whoever holds
//!   the fd number by then: a spurious wake-up, which every reader
//!   tolerates, never a loop spinning on level-triggered readiness.
//! - It is taken back only by the same socket object still holding the same
//!   fd, so the kernel's registration is for that very file. The object is
//!   held while parked: no other object can take its address.
//! - It is removed only while its socket still holds the fd, so the removal
//!   never hits another file that reuses the number.

use std::collections::HashMap;
use std::os::fd::RawFd;

use pyo3::prelude::*;

use super::epoll::Interest;
use crate::socket_fd;

/// A parked registration: the socket object of the operations, and what
/// the kernel watches for it.
pub struct Parked {
    pub owner: Py<PyAny>,
    pub interest: Interest,
}

/// The parked registrations, by fd.
#[derive(Default)]
pub struct ParkedFds {
    by_fd: HashMap<RawFd, Parked>,
}

impl ParkedFds {
    pub fn park(&mut self, fd: RawFd, parked: Parked) {
        let old = self.by_fd.insert(fd, parked);
        debug_assert!(old.is_none(), "fd {fd} parked twice");
        drop(old);
    }

    /// Take `fd`'s parked registration out.
    pub fn take(&mut self, fd: RawFd) -> Option<Parked> {
        if self.by_fd.is_empty() {
            return None;
        }
        self.by_fd.remove(&fd)
    }

    pub fn is_empty(&self) -> bool {
        self.by_fd.is_empty()
    }

    /// Take every parked registration out.
    pub fn drain(&mut self) -> Vec<(RawFd, Parked)> {
        self.by_fd.drain().collect()
    }

    /// Every parked socket object, for the garbage collector's traverse.
    pub fn owners(&self) -> impl Iterator<Item = &Py<PyAny>> {
        self.by_fd.values().map(|p| &p.owner)
    }
}

/// Whether `owner`, the socket object a registration was made for, still
/// holds `fd` (so the kernel's registration under `fd` is its file's).
/// Runs no Python code (safe under the reactor's borrows): an owner is
/// only ever a socket whose fd `socket_fd::native_fd` read, so the layout
/// probe has run.
pub fn still_held(py: Python<'_>, owner: &Py<PyAny>, fd: RawFd) -> bool {
    socket_fd::native_fd(owner.bind(py)) == Some(fd)
}
