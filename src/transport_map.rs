//! `TransportMap`: `loop._transports`, asyncio's `WeakValueDictionary`
//! from fd to the transport using it, natively.
//!
//! asyncio records each socket transport under its fd, so `add_reader`,
//! `remove_reader` and the `sock_*` methods can refuse an fd a live
//! transport owns (`_ensure_fd_no_transport`). A `WeakValueDictionary`
//! costs three Python frames per insert (its `__setitem__` and the
//! `KeyedRef` it makes) and one more when the transport dies (the removal
//! callback): four per connection. Here an entry is a plain weak
//! reference; one whose transport died reads as missing and goes when
//! looked up or when its fd number is reused.

use std::collections::HashMap;
use std::os::fd::RawFd;

use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyList, PyWeakrefReference};

use crate::gil_cell::GilCell;

type Fd = i64;

#[pyclass(frozen, mapping, module = "ferroloop._ferroloop")]
pub struct TransportMap {
    entries: GilCell<HashMap<Fd, Py<PyWeakrefReference>>>,
}

impl TransportMap {
    /// The live transport recorded under `fd`; a dead entry is dropped
    /// (after the map's borrow ends, as every Python object here is).
    pub fn lookup<'py>(&self, py: Python<'py>, fd: Fd) -> Option<Bound<'py, PyAny>> {
        let live = {
            let entries = self.entries.borrow(py);
            entries.get(&fd)?.bind(py).upgrade()
        };
        if live.is_none() {
            let dead = self.entries.borrow_mut(py).remove(&fd);
            drop(dead);
        }
        live
    }

    /// `map[fd] = transport`.
    pub fn record(&self, fd: RawFd, transport: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = transport.py();
        let entry = PyWeakrefReference::new(transport)?.unbind();
        let old = self.entries.borrow_mut(py).insert(Fd::from(fd), entry);
        drop(old);
        Ok(())
    }

    fn live_items<'py>(&self, py: Python<'py>) -> Vec<(Fd, Bound<'py, PyAny>)> {
        let entries = self.entries.borrow(py);
        let mut items: Vec<_> = entries
            .iter()
            .filter_map(|(fd, r)| Some((*fd, r.bind(py).upgrade()?)))
            .collect();
        items.sort_by_key(|(fd, _)| *fd);
        items
    }
}

#[pymethods]
impl TransportMap {
    #[new]
    fn new() -> Self {
        TransportMap {
            entries: GilCell::new(HashMap::new()),
        }
    }

    fn __getitem__<'py>(&self, py: Python<'py>, fd: Fd) -> PyResult<Bound<'py, PyAny>> {
        self.lookup(py, fd).ok_or_else(|| PyKeyError::new_err(fd))
    }

    fn __setitem__(&self, fd: RawFd, transport: &Bound<'_, PyAny>) -> PyResult<()> {
        self.record(fd, transport)
    }

    fn __delitem__(&self, py: Python<'_>, fd: Fd) -> PyResult<()> {
        let live = self.lookup(py, fd).is_some();
        let old = self.entries.borrow_mut(py).remove(&fd);
        drop(old);
        if live {
            Ok(())
        } else {
            Err(PyKeyError::new_err(fd))
        }
    }

    fn __contains__(&self, py: Python<'_>, fd: &Bound<'_, PyAny>) -> bool {
        match fd.extract::<Fd>() {
            Ok(fd) => self.lookup(py, fd).is_some(),
            Err(_) => false,
        }
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        let entries = self.entries.borrow(py);
        entries
            .values()
            .filter(|r| r.bind(py).upgrade().is_some())
            .count()
    }

    #[pyo3(signature = (fd, default=None))]
    fn get<'py>(
        &self,
        fd: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> Bound<'py, PyAny> {
        let py = fd.py();
        let found = fd.extract::<Fd>().ok().and_then(|fd| self.lookup(py, fd));
        found
            .or(default)
            .unwrap_or_else(|| py.None().into_bound(py))
    }

    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.live_items(py).into_iter().map(|(fd, _)| fd))
    }

    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.live_items(py).into_iter().map(|(_, t)| t))
    }

    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.live_items(py))
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.keys(py)?.try_iter().map(Bound::into_any)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let items = self.items(py)?;
        Ok(format!("<TransportMap {}>", items.repr()?))
    }
}

/// asyncio's `_ensure_fd_no_transport(fd)`: a `RuntimeError` if a live
/// transport that is not closing owns `fd` (a file object's `fileno()`).
pub fn ensure_fd_no_transport(loop_: &Bound<'_, PyAny>, fd: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = loop_.py();
    let fileno = if fd.is_instance_of::<PyInt>() {
        fd.clone()
    } else {
        let as_int = fd
            .call_method0(intern!(py, "fileno"))
            .and_then(|n| py.get_type::<PyInt>().call1((n,)));
        match as_int {
            Ok(n) => n,
            Err(e)
                if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py)
                    || e.is_instance_of::<pyo3::exceptions::PyTypeError>(py)
                    || e.is_instance_of::<PyValueError>(py) =>
            {
                // `from None`: setting no cause suppresses the context.
                let err = PyValueError::new_err(format!("Invalid file object: {}", fd.repr()?));
                err.set_cause(py, None);
                return Err(err);
            }
            Err(e) => return Err(e),
        }
    };
    // An int too large for an fd names no transport.
    match fileno.extract::<Fd>() {
        Ok(n) => refuse_transport_fd(loop_, n, || Ok(fd.repr()?.to_string())),
        Err(_) => Ok(()),
    }
}

/// The check itself, for an fd number (`shown`: how the message names it,
/// asyncio's `{fd!r}`); the `sock_*` waits call it with their fd as is.
pub fn refuse_transport_fd(
    loop_: &Bound<'_, PyAny>,
    fd: Fd,
    shown: impl FnOnce() -> PyResult<String>,
) -> PyResult<()> {
    let py = loop_.py();
    let transports = loop_.getattr(intern!(py, "_transports"))?;
    let transport = match transports.cast::<TransportMap>() {
        Ok(map) => map.get().lookup(py, fd),
        Err(_) => {
            let found = transports.call_method1(intern!(py, "get"), (fd,))?;
            (!found.is_none()).then_some(found)
        }
    };
    let Some(transport) = transport else {
        return Ok(());
    };
    if !transport.is_truthy()?
        || transport
            .call_method0(intern!(py, "is_closing"))?
            .is_truthy()?
    {
        return Ok(());
    }
    Err(PyRuntimeError::new_err(format!(
        "File descriptor {} is used by transport {}",
        shown()?,
        transport.repr()?
    )))
}
