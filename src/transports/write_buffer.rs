//! A transport's outgoing data: the chunks `write()` could not send at once,
//! flushed in order with one vectored syscall per writability event.
//!
//! `bytes` are kept by reference (they are immutable); `bytearray` and
//! `memoryview` data is copied, since the caller may change it after
//! `write()` returns.

use std::collections::VecDeque;
use std::os::fd::RawFd;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// At most this many chunks go into one `sendmsg`/`writev` (IOV_MAX is 1024;
/// more than this rarely fits in a socket buffer anyway).
const MAX_IOV: usize = 64;

enum Data {
    Shared(Py<PyBytes>),
    Owned(Vec<u8>),
}

struct Chunk {
    data: Data,
    /// Bytes of `data` already sent.
    start: usize,
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        let all: &[u8] = match &self.data {
            // SAFETY: a bytes object is immutable and its storage lives as
            // long as the object, which `self` keeps a reference to.
            Data::Shared(obj) => unsafe {
                let ptr = obj.as_ptr();
                std::slice::from_raw_parts(
                    ffi::PyBytes_AS_STRING(ptr).cast::<u8>(),
                    ffi::Py_SIZE(ptr) as usize,
                )
            },
            Data::Owned(v) => v,
        };
        &all[self.start..]
    }
}

#[derive(Default)]
pub struct WriteBuffer {
    chunks: VecDeque<Chunk>,
    len: usize,
}

impl WriteBuffer {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes waiting to be sent (`get_write_buffer_size()`).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Keep `obj[start..]` (a bytes object) by reference. A `bytes`
    /// subclass is copied instead: its `__del__` could call back into the
    /// transport, and chunks are dropped while the transport's state is
    /// borrowed (by `flush`, `clear`). Dropping an exact bytes object never
    /// runs Python code. (The caller still holds `obj`.)
    pub fn push_shared(&mut self, obj: Py<PyBytes>, start: usize, total: usize) {
        // SAFETY: a type check on a live object.
        if unsafe { ffi::PyBytes_CheckExact(obj.as_ptr()) } == 0 {
            let chunk = Chunk {
                data: Data::Shared(obj),
                start,
            };
            let copy = chunk.bytes().to_vec();
            return self.push_copy(&copy);
        }
        if start < total {
            self.len += total - start;
            self.chunks.push_back(Chunk {
                data: Data::Shared(obj),
                start,
            });
        }
    }

    /// Keep a copy of `data`.
    pub fn push_copy(&mut self, data: &[u8]) {
        if !data.is_empty() {
            self.len += data.len();
            self.chunks.push_back(Chunk {
                data: Data::Owned(data.to_vec()),
                start: 0,
            });
        }
    }

    /// Move every chunk of `other` to the end of this buffer.
    pub fn append(&mut self, other: &mut WriteBuffer) {
        self.len += other.len;
        self.chunks.append(&mut other.chunks);
        other.len = 0;
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// Send as much as the socket (or pipe) takes, in one syscall, and drop
    /// what was sent. `Ok(0)` when it would block or was interrupted (the fd
    /// stays registered, so the poll retries).
    pub fn flush(&mut self, fd: RawFd, is_socket: bool) -> std::io::Result<usize> {
        if self.chunks.is_empty() {
            return Ok(0);
        }
        // On the stack: a flush allocates nothing.
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOV];
        let mut count = 0;
        for (slot, chunk) in iov.iter_mut().zip(self.chunks.iter()) {
            let b = chunk.bytes();
            *slot = libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            };
            count += 1;
        }
        let iov = &iov[..count];
        // SAFETY: every iovec points into a chunk this buffer owns and does
        // not touch during the call; the kernel only reads them.
        let n = unsafe {
            if is_socket {
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
                msg.msg_iovlen = iov.len() as _;
                libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL)
            } else {
                libc::writev(fd, iov.as_ptr(), iov.len() as libc::c_int)
            }
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
                _ => Err(err),
            };
        }
        let sent = n as usize;
        self.consume(sent);
        Ok(sent)
    }

    /// `flush` until the buffer is empty or the kernel takes nothing more:
    /// more than `MAX_IOV` chunks that all fit go out in several calls.
    pub fn flush_all(&mut self, fd: RawFd, is_socket: bool) -> std::io::Result<usize> {
        let mut total = 0;
        while !self.chunks.is_empty() {
            match self.flush(fd, is_socket)? {
                0 => break,
                n => total += n,
            }
        }
        Ok(total)
    }

    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let left = front.bytes().len();
            if n >= left {
                n -= left;
                self.chunks.pop_front();
            } else {
                front.start += n;
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    fn socketpair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: a plain syscall writing two fds into `fds`.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0);
        // SAFETY: both fds were just opened for us.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn read_all(fd: &OwnedFd) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            // SAFETY: reading into a local buffer of the given length.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
    }

    #[test]
    fn flush_sends_chunks_in_order_and_consumes() {
        let (a, b) = socketpair();
        let mut wb = WriteBuffer::default();
        wb.push_copy(b"hello ");
        wb.push_copy(b"");
        wb.push_copy(b"world");
        assert_eq!(wb.len(), 11);
        assert_eq!(wb.flush(a.as_raw_fd(), true).expect("flush"), 11);
        assert!(wb.is_empty());
        assert_eq!(read_all(&b), b"hello world");
        assert_eq!(wb.flush(a.as_raw_fd(), true).expect("empty flush"), 0);
    }

    #[test]
    fn one_flush_takes_at_most_max_iov_chunks() {
        let (a, b) = socketpair();
        let mut wb = WriteBuffer::default();
        for i in 0..(MAX_IOV + 10) {
            wb.push_copy(&[i as u8]);
        }
        assert_eq!(wb.flush(a.as_raw_fd(), true).expect("flush"), MAX_IOV);
        assert_eq!(wb.len(), 10);
        assert_eq!(wb.flush(a.as_raw_fd(), false).expect("writev"), 10);
        let expected: Vec<u8> = (0..(MAX_IOV + 10)).map(|i| i as u8).collect();
        assert_eq!(read_all(&b), expected);
    }

    #[test]
    fn flush_all_goes_past_max_iov() {
        let (a, b) = socketpair();
        let mut wb = WriteBuffer::default();
        for i in 0..(3 * MAX_IOV + 5) {
            wb.push_copy(&[i as u8]);
        }
        assert_eq!(
            wb.flush_all(a.as_raw_fd(), true).expect("flush_all"),
            3 * MAX_IOV + 5
        );
        assert!(wb.is_empty());
        let expected: Vec<u8> = (0..(3 * MAX_IOV + 5)).map(|i| i as u8).collect();
        assert_eq!(read_all(&b), expected);
    }

    #[test]
    fn partial_send_keeps_the_rest() {
        let (a, b) = socketpair();
        let mut wb = WriteBuffer::default();
        let big = vec![7u8; 8 << 20]; // more than a socket buffer holds
        wb.push_copy(&big);
        wb.push_copy(b"tail");
        let sent = wb.flush(a.as_raw_fd(), true).expect("flush");
        assert!(sent > 0 && sent < big.len());
        assert_eq!(wb.len(), big.len() + 4 - sent);
        // Would block now: Ok(0), nothing consumed.
        assert_eq!(wb.flush(a.as_raw_fd(), true).expect("again"), 0);
        let mut got = read_all(&b).len();
        while !wb.is_empty() {
            wb.flush(a.as_raw_fd(), true).expect("more");
            got += read_all(&b).len();
        }
        assert_eq!(got, big.len() + 4);
    }

    #[test]
    fn flush_error_is_reported() {
        let (a, b) = socketpair();
        drop(b);
        let mut wb = WriteBuffer::default();
        wb.push_copy(b"x");
        let err = wb.flush(a.as_raw_fd(), true).expect_err("peer gone");
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        assert_eq!(wb.len(), 1);
    }
}
