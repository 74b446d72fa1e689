//! Registration on mio's epoll instance (Linux): level-triggered, as
//! asyncio's selector, or edge-triggered for the `sock_*` operations.

use std::io;
use std::os::fd::RawFd;

/// What the kernel is asked to report for one fd.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Interest {
    pub read: bool,
    pub write: bool,
    /// Edge-triggered: each readiness change reported once.
    pub edge: bool,
}

impl Interest {
    /// Nothing: the fd is removed.
    pub const NONE: Interest = Interest {
        read: false,
        write: false,
        edge: false,
    };

    pub fn is_none(self) -> bool {
        !self.read && !self.write
    }
}

/// How a registration went through.
pub enum Registered {
    /// As we believed: added if unknown, modified if known.
    AsKnown,
    /// We believed the fd registered but the kernel did not know it: the fd
    /// was closed (the kernel drops it) and the number reused. Added anew.
    Afresh,
}

/// Make the kernel watch `fd` for the given directions, level-triggered
/// (edge-triggered with `edge`), with the fd itself as the event token.
/// Both false removes the fd. `known` says whether we believe the fd is
/// registered.
pub fn set_interest(
    epfd: RawFd,
    fd: RawFd,
    interest: Interest,
    known: bool,
) -> io::Result<Registered> {
    let Interest { read, write, edge } = interest;
    if interest.is_none() {
        return ctl(epfd, libc::EPOLL_CTL_DEL, fd, 0).map(|()| Registered::AsKnown);
    }
    let mut mask = 0u32;
    if read {
        mask |= libc::EPOLLIN as u32;
    }
    if write {
        mask |= libc::EPOLLOUT as u32;
    }
    if edge {
        mask |= libc::EPOLLET as u32;
    }
    if known {
        match ctl(epfd, libc::EPOLL_CTL_MOD, fd, mask) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                ctl(epfd, libc::EPOLL_CTL_ADD, fd, mask).map(|()| Registered::Afresh)
            }
            other => other.map(|()| Registered::AsKnown),
        }
    } else {
        match ctl(epfd, libc::EPOLL_CTL_ADD, fd, mask) {
            // Registered behind our back (a dup sharing the file): take it over.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                ctl(epfd, libc::EPOLL_CTL_MOD, fd, mask).map(|()| Registered::AsKnown)
            }
            other => other.map(|()| Registered::AsKnown),
        }
    }
}

fn ctl(epfd: RawFd, op: libc::c_int, fd: RawFd, mask: u32) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: mask,
        u64: fd as u64,
    };
    // SAFETY: `event` is a valid epoll_event for the duration of the call;
    // epoll_ctl only reads it. Bad fds are reported through errno.
    let rc = unsafe { libc::epoll_ctl(epfd, op, fd, &mut event) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
