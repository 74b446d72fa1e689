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
        return Err(crate::pyhelpers::os_error(std::io::Error::last_os_error()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> SockAddr {
        SockAddr {
            // SAFETY: all-zero is a valid sockaddr_storage.
            storage: unsafe { std::mem::zeroed() },
            len: 0,
        }
    }

    fn convert(addr: &SockAddr) -> String {
        Python::initialize();
        Python::attach(|py| {
            let obj = to_py(py, addr).expect("convert");
            obj.bind(py).repr().expect("repr").to_string()
        })
    }

    #[test]
    fn no_address_is_none() {
        assert_eq!(convert(&empty()), "None");
    }

    #[test]
    fn ipv4() {
        let mut a = empty();
        // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
        let sin = unsafe {
            &mut *(&mut a.storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
        };
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_port = 8080u16.to_be();
        sin.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        a.len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(convert(&a), "('127.0.0.1', 8080)");
    }

    #[test]
    fn ipv6_with_flowinfo_and_scope() {
        let mut a = empty();
        // SAFETY: as above, for sockaddr_in6.
        let sin6 = unsafe {
            &mut *(&mut a.storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
        };
        sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sin6.sin6_port = 443u16.to_be();
        sin6.sin6_flowinfo = 5u32.to_be();
        sin6.sin6_scope_id = 2;
        sin6.sin6_addr.s6_addr[15] = 1;
        a.len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        assert_eq!(convert(&a), "('::1', 443, 5, 2)");
    }

    fn unix(path: &[u8]) -> SockAddr {
        let mut a = empty();
        // SAFETY: as above, for sockaddr_un.
        let sun = unsafe {
            &mut *(&mut a.storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_un>()
        };
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in sun.sun_path.iter_mut().zip(path) {
            *d = *s as libc::c_char;
        }
        a.len = (std::mem::size_of::<libc::sa_family_t>() + path.len()) as libc::socklen_t;
        a
    }

    #[test]
    fn unix_path_abstract_and_unnamed() {
        assert_eq!(convert(&unix(b"/tmp/sock\0")), "'/tmp/sock'");
        assert_eq!(convert(&unix(b"\0abstract")), "b'\\x00abstract'");
        // An unnamed peer (socketpair): only the family, an empty string.
        assert_eq!(convert(&unix(b"")), "''");
    }
}
