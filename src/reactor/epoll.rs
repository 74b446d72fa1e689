//! Level-triggered registration on mio's epoll instance (Linux).

use std::io;
use std::os::fd::RawFd;

/// How a registration went through.
pub enum Registered {
    /// As we believed: added if unknown, modified if known.
    AsKnown,
    /// We believed the fd registered but the kernel did not know it: the fd
    /// was closed (the kernel drops it) and the number reused. Added anew.
    Afresh,
}

/// Make the kernel watch `fd` for the given directions, level-triggered,
/// with the fd itself as the event token. Both false removes the fd.
/// `known` says whether we believe the fd is registered.
pub fn set_interest(
    epfd: RawFd,
    fd: RawFd,
    read: bool,
    write: bool,
    known: bool,
) -> io::Result<Registered> {
    if !read && !write {
        return ctl(epfd, libc::EPOLL_CTL_DEL, fd, 0).map(|()| Registered::AsKnown);
    }
    let mut mask = 0u32;
    if read {
        mask |= libc::EPOLLIN as u32;
    }
    if write {
        mask |= libc::EPOLLOUT as u32;
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
