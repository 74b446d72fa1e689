//! File descriptor callbacks: `add_reader`/`add_writer` and their removal.

use std::os::fd::RawFd;
use std::sync::atomic::Ordering::Relaxed;

use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyTuple};

use super::LoopCore;
use crate::handle::{Args, Handle};
use crate::reactor::{FdHandles, Side};
use crate::socket_fd::native_fd;

impl LoopCore {
    pub fn add_fd_callback(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        side: Side,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let num = Self::lookup_fd(slf, fd)?;
        let fileobj = (!fd.is_instance_of::<PyInt>()).then(|| fd.clone().unbind());
        Self::add_fd_with(slf, num, side, callback, args, fileobj, None, context)
    }

    /// `add_fd_callback(fd, ...)` of a `sock_*` operation on `sock`: a
    /// socket module object's fd is registered edge-triggered and parked
    /// between operations (see `reactor/parked.rs`).
    pub fn add_sock_op(
        slf: &Bound<'_, Self>,
        fd: RawFd,
        side: Side,
        op: Bound<'_, PyAny>,
        sock: &Bound<'_, PyAny>,
    ) -> PyResult<Py<Handle>> {
        let owner = (native_fd(sock) == Some(fd)).then_some(sock);
        Self::add_fd_with(slf, fd, side, op, Args::new(), None, owner, None)
    }

    /// `add_fd_callback` for a known fd number (transports); the callback
    /// runs in `context` (a copy of the current one when None, as asyncio's
    /// `Handle` does).
    pub fn add_fd(
        slf: &Bound<'_, Self>,
        fd: RawFd,
        side: Side,
        callback: Bound<'_, PyAny>,
        args: Args,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        Self::add_fd_with(slf, fd, side, callback, args, None, None, context)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_fd_with(
        slf: &Bound<'_, Self>,
        fd: RawFd,
        side: Side,
        callback: Bound<'_, PyAny>,
        args: Args,
        fileobj: Option<Py<PyAny>>,
        owner: Option<&Bound<'_, PyAny>>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        let handle = Py::new(py, Self::new_handle(slf, callback, args, context, false)?)?;
        let replaced = this
            .reactor
            .add(py, fd, side, handle.clone_ref(py), fileobj, owner);
        this.fds_changed();
        let replaced = replaced?;
        let mut result = Ok(handle);
        for old in &replaced.handles {
            if let Err(err) = Handle::cancel_handle(old.bind(py)) {
                result = Err(err);
            }
        }
        drop(replaced);
        result
    }

    /// selectors' `_fileobj_lookup`: the object's fd, or, for an object
    /// whose `fileno()` no longer answers (a closed socket gives -1), the
    /// fd it is registered under.
    fn lookup_fd(slf: &Bound<'_, Self>, fileobj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
        let py = slf.py();
        match fileobj_to_fd(fileobj) {
            Ok(fd) => Ok(fd),
            Err(err) if err.is_instance_of::<PyValueError>(py) => {
                slf.get().reactor.find_object(py, fileobj).ok_or(err)
            }
            Err(err) => Err(err),
        }
    }

    pub fn remove_fd_callback(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        side: Side,
    ) -> PyResult<bool> {
        if slf.get().closed.load(Relaxed) {
            return Ok(false);
        }
        let fd = match Self::lookup_fd(slf, fd) {
            Ok(fd) => fd,
            // No C int: nothing can be registered under it (asyncio's
            // selector lookup misses, and it returns False).
            Err(e) if e.is_instance_of::<PyOverflowError>(slf.py()) => return Ok(false),
            Err(e) => return Err(e),
        };
        Self::remove_fd(slf, fd, side)
    }

    /// `remove_fd_callback` for a known fd number (transports).
    pub fn remove_fd(slf: &Bound<'_, Self>, fd: RawFd, side: Side) -> PyResult<bool> {
        let py = slf.py();
        let this = slf.get();
        if this.closed.load(Relaxed) {
            return Ok(false);
        }
        let removed = this.reactor.remove(py, fd, side);
        this.fds_changed();
        match removed {
            Some(old) => {
                Handle::cancel_handle(old.bind(py))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Undo an `add_fd` of the caller's, unless the registration was
    /// replaced since (then it belongs to someone else now).
    pub fn remove_fd_if(
        slf: &Bound<'_, Self>,
        fd: RawFd,
        side: Side,
        handle: &Py<Handle>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.closed.load(Relaxed) {
            return Ok(());
        }
        let removed = this.reactor.remove_if(py, fd, side, handle);
        this.fds_changed();
        if removed {
            Handle::cancel_handle(handle.bind(py))?;
        }
        Ok(())
    }
}

/// selectors' `_fileobj_to_fd`: an int, or an object with `fileno()`.
pub fn fileobj_to_fd(fileobj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    let fd: i64 = if fileobj.is_instance_of::<PyInt>() {
        fileobj.extract().map_err(|_| {
            if fileobj.lt(0).unwrap_or(false) {
                PyValueError::new_err(format!("Invalid file descriptor: {fileobj}"))
            } else {
                PyOverflowError::new_err("Python int too large to convert to C int")
            }
        })?
    } else {
        let invalid =
            || PyValueError::new_err(format!("Invalid file object: {}", repr_of(fileobj)));
        let fileno = fileobj
            .call_method0(intern!(fileobj.py(), "fileno"))
            .map_err(|_| invalid())?;
        fileno
            .call_method0(intern!(fileobj.py(), "__index__"))
            .and_then(|i| i.extract())
            .map_err(|_| invalid())?
    };
    if fd < 0 {
        return Err(PyValueError::new_err(format!(
            "Invalid file descriptor: {fd}"
        )));
    }
    // What epoll.register says of a number that is no C int.
    RawFd::try_from(fd)
        .map_err(|_| PyOverflowError::new_err("Python int too large to convert to C int"))
}

fn to_args(args: &Bound<'_, PyTuple>) -> Args {
    args.iter().map(Bound::unbind).collect()
}

fn repr_of(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<object>".into())
}

#[pymethods]
impl LoopCore {
    /// `context=` is what asyncio 3.15's transports pass.
    #[pyo3(signature = (fd, callback, *args, context=None))]
    fn _add_reader(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        Self::add_fd_callback(slf, fd, Side::Read, callback, to_args(&args), context)
    }

    /// `context=` is what asyncio 3.15's transports pass.
    #[pyo3(signature = (fd, callback, *args, context=None))]
    fn _add_writer(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        Self::add_fd_callback(slf, fd, Side::Write, callback, to_args(&args), context)
    }

    fn _remove_reader(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        Self::remove_fd_callback(slf, fd, Side::Read)
    }

    fn _remove_writer(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        Self::remove_fd_callback(slf, fd, Side::Write)
    }

    /// asyncio's `_ensure_fd_no_transport`, natively (see `TransportMap`).
    fn _ensure_fd_no_transport(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<()> {
        crate::transport_map::ensure_fd_no_transport(slf.as_any(), fd)
    }

    /// How many times the kernel's fd registrations were changed: for the
    /// tests of the `sock_*` operations' parking.
    fn _registration_changes(&self) -> u64 {
        self.reactor.registration_changes()
    }

    /// The reader and writer handles of `fd` (either may be None): what
    /// asyncio code reads through `loop._selector.get_key(fd).data`.
    fn _fd_callbacks(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<FdHandles> {
        Ok(slf
            .get()
            .reactor
            .handles(slf.py(), Self::lookup_fd(slf, fd)?))
    }
}
