//! Non-blocking syscalls shared by the sock_* operations and the transports:
//! EINTR handling, buffer exports, and reads through a reusable page-aligned
//! buffer (the kernel copies into an unaligned one much more slowly).

use std::cell::RefCell;
use std::os::fd::RawFd;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::pyhelpers::os_error;

extern "C" {
    /// Shrinks a bytes object nobody else has seen yet (CPython's own
    /// `sock.recv` uses it the same way); exported by every CPython 3.
    fn _PyBytes_Resize(bytes: *mut *mut ffi::PyObject, newsize: ffi::Py_ssize_t)
        -> std::ffi::c_int;
}

/// Reads of at least this size go through a page-aligned buffer: the kernel
/// copies into an unaligned one much more slowly (100 KiB echo: 57 µs vs 25 µs).
/// Bigger reads (rare: asyncio's own transports read 256 KiB) use a bytes
/// object of their own rather than keeping a huge scratch buffer around.
const ALIGNED_READ_MIN: usize = 16 * 1024;
const ALIGNED_READ_MAX: usize = 1024 * 1024;
const PAGE: usize = 4096;

/// A reusable page-aligned scratch buffer for large reads (one per thread:
/// reads happen with the GIL held, on the loop's thread).
struct AlignedBuf {
    ptr: *mut u8,
    cap: usize,
}

impl AlignedBuf {
    /// The buffer, grown to at least `len` (at most `ALIGNED_READ_MAX`)
    /// bytes; `None` if memory is short (the caller reads another way).
    fn get(&mut self, len: usize) -> Option<&mut [u8]> {
        if self.cap < len {
            self.release();
            let cap = len.min(ALIGNED_READ_MAX).next_multiple_of(PAGE);
            let layout = std::alloc::Layout::from_size_align(cap, PAGE).ok()?;
            // SAFETY: `layout` has a non-zero size (len >= ALIGNED_READ_MIN).
            let ptr = unsafe { std::alloc::alloc(layout) };
            if ptr.is_null() {
                return None;
            }
            self.ptr = ptr;
            self.cap = cap;
        }
        // SAFETY: `ptr` points to `cap >= len` bytes we own exclusively.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr, len) })
    }

    fn release(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: allocated in `get` with exactly this layout.
            unsafe {
                std::alloc::dealloc(
                    self.ptr,
                    std::alloc::Layout::from_size_align_unchecked(self.cap, PAGE),
                )
            };
            self.ptr = std::ptr::null_mut();
            self.cap = 0;
        }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        self.release();
    }
}

thread_local! {
    static SCRATCH: RefCell<AlignedBuf> = const { RefCell::new(AlignedBuf { ptr: std::ptr::null_mut(), cap: 0 }) };
}

/// A contiguous buffer export (`memoryview` without the object), released
/// when dropped.
pub struct BufferView(Box<ffi::Py_buffer>);

// SAFETY: the view is created, read and released only with the GIL held (in
// the functions below and in the dealloc of the op objects owning it).
unsafe impl Send for BufferView {}
unsafe impl Sync for BufferView {}

impl BufferView {
    pub fn new(obj: &Bound<'_, PyAny>, writable: bool) -> PyResult<BufferView> {
        let mut view: Box<ffi::Py_buffer> = Box::new(unsafe { std::mem::zeroed() });
        let flags = if writable {
            ffi::PyBUF_WRITABLE
        } else {
            ffi::PyBUF_SIMPLE
        };
        // SAFETY: `view` is a valid, zeroed Py_buffer that outlives the export;
        // on failure nothing was exported and the error is set.
        if unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, flags) } < 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(BufferView(view))
    }

    pub fn len(&self) -> usize {
        self.0.len as usize
    }

    pub fn ptr(&self) -> *mut u8 {
        self.0.buf.cast()
    }
}

impl Drop for BufferView {
    fn drop(&mut self) {
        // SAFETY: the view was filled by PyObject_GetBuffer and is released
        // exactly once; we hold the GIL (see the Send/Sync note above).
        unsafe { ffi::PyBuffer_Release(&mut *self.0) };
    }
}

/// What a non-blocking syscall gave.
pub enum Io<T> {
    Done(T),
    WouldBlock,
}

/// Run a socket syscall, retrying on EINTR after giving Python's signal
/// handlers their turn (PEP 475, as the socket module does).
pub fn syscall(py: Python<'_>, mut f: impl FnMut() -> isize) -> PyResult<Io<usize>> {
    loop {
        let n = f();
        if n >= 0 {
            return Ok(Io::Done(n as usize));
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) => return Ok(Io::WouldBlock),
            Some(libc::EINTR) => py.check_signals()?,
            _ => return Err(os_error(err)),
        }
    }
}

/// `sock.recv(n)` on a non-blocking fd, into a new bytes object.
pub fn recv_bytes(py: Python<'_>, fd: RawFd, n: usize) -> PyResult<Io<Py<PyBytes>>> {
    // SAFETY: `read_bytes` passes a buffer valid for `len` writable bytes.
    read_bytes(py, n, |buf, len| unsafe {
        libc::recv(fd, buf.cast(), len, 0)
    })
}

/// `os.read(fd, n)` on a non-blocking fd (pipes, terminals), as `recv_bytes`.
pub fn read_bytes_from_pipe(py: Python<'_>, fd: RawFd, n: usize) -> PyResult<Io<Py<PyBytes>>> {
    // SAFETY: `read_bytes` passes a buffer valid for `len` writable bytes.
    read_bytes(py, n, |buf, len| unsafe { libc::read(fd, buf.cast(), len) })
}

/// A sender's address as `recvfrom` filled it in.
pub struct SockAddr {
    pub storage: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

/// `getsockname(fd)`: the socket's own address.
pub fn getsockname(fd: RawFd) -> std::io::Result<SockAddr> {
    // SAFETY: all-zero is a valid sockaddr_storage (as CPython zeroes it).
    let mut addr = SockAddr {
        storage: unsafe { std::mem::zeroed() },
        len: std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
    };
    // SAFETY: `addr` is valid for its declared length; a bad fd is
    // reported through errno.
    let rc = unsafe {
        libc::getsockname(
            fd,
            (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
            &mut addr.len,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(addr)
}

/// `sock.recvfrom(n)`'s syscall: the datagram (as `recv_bytes`) and the
/// raw address of its sender.
pub fn recvfrom_bytes(
    py: Python<'_>,
    fd: RawFd,
    n: usize,
) -> PyResult<Io<(Py<PyBytes>, SockAddr)>> {
    // SAFETY: all-zero is a valid sockaddr_storage (as CPython zeroes it).
    let mut addr = SockAddr {
        storage: unsafe { std::mem::zeroed() },
        len: 0,
    };
    let got = read_bytes(py, n, |buf, len| {
        addr.len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `buf` is valid for `len` bytes and `addr` for its size.
        unsafe {
            libc::recvfrom(
                fd,
                buf.cast(),
                len,
                0,
                (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
                &mut addr.len,
            )
        }
    })?;
    Ok(match got {
        Io::Done(data) => Io::Done((data, addr)),
        Io::WouldBlock => Io::WouldBlock,
    })
}

/// One read of at most `n` bytes through `read(buf, len)` (a syscall that
/// writes at most `len` bytes to `buf`), into a new bytes object.
fn read_bytes(
    py: Python<'_>,
    n: usize,
    mut read: impl FnMut(*mut u8, usize) -> isize,
) -> PyResult<Io<Py<PyBytes>>> {
    if (ALIGNED_READ_MIN..=ALIGNED_READ_MAX).contains(&n) {
        let aligned = SCRATCH.with(|scratch| {
            // Busy only if a signal handler run inside the syscall retry
            // reads a socket itself: that read takes the other path.
            let Ok(mut scratch) = scratch.try_borrow_mut() else {
                return Ok(None);
            };
            let Some(buf) = scratch.get(n) else {
                return Ok(None);
            };
            let got = syscall(py, || read(buf.as_mut_ptr(), n))?;
            Ok(Some(match got {
                Io::Done(len) => Io::Done(PyBytes::new(py, &buf[..len]).unbind()),
                Io::WouldBlock => Io::WouldBlock,
            }))
        });
        if let Some(result) = aligned.transpose() {
            return result;
        }
    }
    // Other reads land straight in the bytes object, shrunk afterwards.
    // SAFETY: PyBytes_FromStringAndSize(NULL, n) returns a new, writable,
    // not yet shared bytes object (or NULL with an error set).
    let mut obj = unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), n as ffi::Py_ssize_t) };
    if obj.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `obj` is a fresh bytes object of `n` bytes; `read` writes at most `n`.
    let got = syscall(py, || unsafe {
        read(ffi::PyBytes_AS_STRING(obj).cast_mut().cast(), n)
    });
    match got {
        Ok(Io::Done(len)) => {
            if len != n {
                // SAFETY: `obj` is still private to us, as _PyBytes_Resize requires.
                if unsafe { _PyBytes_Resize(&mut obj, len as ffi::Py_ssize_t) } < 0 {
                    return Err(PyErr::fetch(py));
                }
            }
            // SAFETY: `obj` is a new reference to a bytes object.
            Ok(Io::Done(
                unsafe { Bound::from_owned_ptr(py, obj) }
                    .cast_into::<PyBytes>()?
                    .unbind(),
            ))
        }
        other => {
            // SAFETY: we own the reference and drop it.
            unsafe { ffi::Py_DECREF(obj) };
            other.map(|_| Io::WouldBlock)
        }
    }
}
