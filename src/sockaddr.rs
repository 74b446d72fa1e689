//! Socket addresses as Python sees them: the `makesockaddr` conversions of
//! CPython's socket module, for the families the native datagram read
//! handles (AF_INET, AF_INET6, AF_UNIX). Other families keep using the
//! socket object's own `recvfrom`.

use std::ffi::CStr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::sysio::SockAddr;

extern "C" {
    /// POSIX `inet_ntop` (libc, which the `libc` crate does not bind).
    fn inet_ntop(
        af: libc::c_int,
        src: *const libc::c_void,
        dst: *mut libc::c_char,
        size: libc::socklen_t,
    ) -> *const libc::c_char;
}

/// Whether `family` is converted here.
pub fn supported(family: i32) -> bool {
    family == libc::AF_INET || family == libc::AF_INET6 || family == libc::AF_UNIX
}

/// `inet_ntop` of an address (CPython's `make_ipv4_addr`/`make_ipv6_addr`).
fn ntop(family: i32, src: *const libc::c_void) -> PyResult<String> {
    let mut buf = [0 as libc::c_char; 64]; // > INET6_ADDRSTRLEN
                                           // SAFETY: `src` points to an in_addr/in6_addr inside a sockaddr we own;
                                           // `buf` is large enough for any textual address.
    let p = unsafe { inet_ntop(family, src, buf.as_mut_ptr(), buf.len() as libc::socklen_t) };
    if p.is_null() {
        return Err(crate::reactor::os_error(std::io::Error::last_os_error()));
    }
    // SAFETY: inet_ntop wrote a NUL-terminated string into `buf`.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}

/// The Python form of `addr`, as `sock.recvfrom()` returns it.
pub fn to_py(py: Python<'_>, addr: &SockAddr) -> PyResult<Py<PyAny>> {
    if addr.len == 0 {
        return Ok(py.None());
    }
    let family = i32::from(addr.storage.ss_family);
    let base = (&addr.storage as *const libc::sockaddr_storage).cast::<u8>();
    match family {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET), and
            // sockaddr_storage is large and aligned enough for it.
            let sin = unsafe { &*base.cast::<libc::sockaddr_in>() };
            let host = ntop(family, (&sin.sin_addr as *const libc::in_addr).cast())?;
            let port = u16::from_be(sin.sin_port);
            Ok(PyTuple::new(
                py,
                [
                    host.into_pyobject(py)?.into_any(),
                    port.into_pyobject(py)?.into_any(),
                ],
            )?
            .into_any()
            .unbind())
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*base.cast::<libc::sockaddr_in6>() };
            let host = ntop(family, (&sin6.sin6_addr as *const libc::in6_addr).cast())?;
            let items = [
                host.into_pyobject(py)?.into_any(),
                u16::from_be(sin6.sin6_port).into_pyobject(py)?.into_any(),
                u32::from_be(sin6.sin6_flowinfo)
                    .into_pyobject(py)?
                    .into_any(),
                sin6.sin6_scope_id.into_pyobject(py)?.into_any(),
            ];
            Ok(PyTuple::new(py, items)?.into_any().unbind())
        }
        libc::AF_UNIX => {
            // SAFETY: as above, for sockaddr_un.
            let sun = unsafe { &*base.cast::<libc::sockaddr_un>() };
            let offset = std::mem::size_of::<libc::sa_family_t>();
            let path_len = (addr.len as usize)
                .saturating_sub(offset)
                .min(sun.sun_path.len());
            // SAFETY: sun_path is a plain c_char array inside `sun`.
            let path: &[u8] = unsafe {
                std::slice::from_raw_parts(sun.sun_path.as_ptr().cast::<u8>(), sun.sun_path.len())
            };
            if path_len > 0 && path[0] == 0 {
                // Linux abstract namespace: the raw bytes.
                return Ok(PyBytes::new(py, &path[..path_len]).into_any().unbind());
            }
            // A regular NUL-terminated path, decoded as os.fsdecode does.
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            // SAFETY: decoding `end` valid bytes; returns a new reference or NULL.
            let obj = unsafe {
                ffi::PyUnicode_DecodeFSDefaultAndSize(path.as_ptr().cast(), end as ffi::Py_ssize_t)
            };
            if obj.is_null() {
                return Err(PyErr::fetch(py));
            }
            // SAFETY: `obj` is a new, non-NULL reference.
            Ok(unsafe { Bound::from_owned_ptr(py, obj) }.unbind())
        }
        _ => Ok(py.None()),
    }
}
