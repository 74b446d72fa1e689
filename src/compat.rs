//! What differs between the CPython versions ferroloop is built for, on the
//! Rust side, in one place (the Python package's switches are in
//! `python/ferroloop/_compat.py`). The `Py_3_N` cfgs come from
//! pyo3-build-config (build.rs): each build targets one CPython.
//!
//! 3.12 is not tested here (no interpreter for it on this project's
//! machines): its switches follow the CPython changes as documented.

/// `write()`'s `TypeError` for a non-buffer; 3.12 spelled out the types.
#[cfg(Py_3_12)]
pub const WRITE_TYPE_ERROR: &str = "data argument must be a bytes, bytearray, or memoryview object";
#[cfg(not(Py_3_12))]
pub const WRITE_TYPE_ERROR: &str = "data argument must be a bytes-like object";

/// 3.12: `_SelectorSocketTransport.writelines` is its own method (each part
/// taken through `memoryview()`, sent with one `sendmsg`); before, the
/// base class's `write(b"".join(list_of_data))`.
pub const WRITELINES_BY_MEMORYVIEW: bool = cfg!(Py_3_12);

/// 3.15 (gh-155888): `writelines` skips falsy parts (`if not data`) before
/// taking them through `memoryview()`, so `writelines([0])` sends nothing.
pub const WRITELINES_SKIPS_FALSY: bool = cfg!(Py_3_15);

/// 3.13: a datagram transport counts each queued datagram's header (8
/// bytes) in `get_write_buffer_size()`, and `sendto(b"")` sends an empty
/// datagram instead of nothing.
#[cfg(Py_3_13)]
pub const DATAGRAM_HEADER_SIZE: usize = 8;
#[cfg(not(Py_3_13))]
pub const DATAGRAM_HEADER_SIZE: usize = 0;
pub const DATAGRAM_SENDS_EMPTY: bool = cfg!(Py_3_13);

/// 3.13: `Server._attach(transport)` / `_detach(transport)`.
pub const SERVER_DETACH_TAKES_TRANSPORT: bool = cfg!(Py_3_13);

/// 3.13: `format_helpers._format_callback_source(..., debug=)`: a callback's
/// arguments appear in reprs and error messages only in debug mode.
pub const FORMAT_CALLBACK_DEBUG: bool = cfg!(Py_3_13);

/// 3.14: `call_soon_threadsafe` returns a `_ThreadSafeHandle`, whose
/// `cancel()`/`cancelled()` wait while its callback runs in another thread.
pub const THREADSAFE_HANDLE_LOCK: bool = cfg!(Py_3_14);
