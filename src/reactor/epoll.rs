//! Level-triggered registration on mio's epoll instance (Linux).

use std::io;
use std::os::fd::RawFd;

/// Make the kernel watch `fd` for the given directions, level-triggered,
/// with the fd itself as the event token. Both false removes the fd.
/// `known` says whether we believe the fd is registered; a stale belief
/// (the fd was closed and its number reused) is repaired here.
pub fn set_interest(
    epfd: RawFd,
    fd: RawFd,
    read: bool,
    write: bool,
    known: bool,
) -> io::Result<()> {
    if !read && !write {
        return ctl(epfd, libc::EPOLL_CTL_DEL, fd, 0);
    }
    let mut mask = 0u32;
    if read {
        mask |= libc::EPOLLIN as u32;
    }
    if write {
        mask |= libc::EPOLLOUT as u32;
    }
    let (first, second) = if known {
        (libc::EPOLL_CTL_MOD, libc::EPOLL_CTL_ADD)
    } else {
        (libc::EPOLL_CTL_ADD, libc::EPOLL_CTL_MOD)
    };
    match ctl(epfd, first, fd, mask) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EEXIST)) => {
            ctl(epfd, second, fd, mask)
        }
        other => other,
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
