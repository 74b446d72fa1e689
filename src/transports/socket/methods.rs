//! The `#[pymethods]` both socket cores share, each a call into their
//! `SocketCore` (the pyclass is a newtype over it, and derefs to it for
//! its own code): `start`, the private attributes asyncio's code and
//! tests read, `BaseTransport` and `ReadTransport`, write flow control,
//! `close`/`abort`, the GC hooks. What differs (`_read_ready`,
//! `_write_ready`, `_call_connection_lost`, writing) is each core's own.

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::PyTraverseError;

use super::base::{Kind, SocketCore};
use super::datagram::Datagram;
use super::stream::Stream;
use super::{DatagramTransportCore, StreamTransportCore};
use crate::event_loop::LoopCore;
use crate::traverse::Traverse;

macro_rules! socket_core_methods {
    ($core:ty, $kind:ty) => {
        impl std::ops::Deref for $core {
            type Target = SocketCore<$kind>;

            fn deref(&self) -> &SocketCore<$kind> {
                &self.0
            }
        }

        #[pymethods]
        impl $core {
            /// Schedule `connection_made`, the start of reading and the
            /// waiter, in asyncio's order.
            #[pyo3(signature = (waiter=None))]
            fn start(slf: &Bound<'_, Self>, waiter: Option<Bound<'_, PyAny>>) -> PyResult<()> {
                slf.get().0.start(slf.as_any(), waiter)
            }

            #[getter]
            fn fd(&self) -> std::os::fd::RawFd {
                self.0.fd
            }

            #[getter]
            fn sock<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
                self.0.sock(py)
            }

            /// Whether the socket is still open, without making its object.
            #[getter]
            fn has_sock(&self, py: Python<'_>) -> bool {
                self.0.st.borrow(py).sock.is_open()
            }

            /// For `__del__`: close the socket without making its object.
            fn _close_sock_for_del(&self, py: Python<'_>) -> PyResult<()> {
                self.0.close_sock_for_del(py)
            }

            /// What `get_extra_info('socket')` gives (see `SockSlot`).
            fn transport_socket<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                self.0.transport_socket(py)
            }

            #[getter(loop_)]
            fn get_loop<'py>(&self, py: Python<'py>) -> Option<Bound<'py, LoopCore>> {
                self.0.loop_(py)
            }

            #[getter]
            fn closing(&self, py: Python<'_>) -> bool {
                self.0.st.borrow(py).closing
            }

            #[getter]
            fn conn_lost(&self, py: Python<'_>) -> u32 {
                self.0.st.borrow(py).conn_lost
            }

            #[getter]
            fn paused(&self, py: Python<'_>) -> bool {
                self.0.st.borrow(py).paused
            }

            #[getter]
            fn protocol_paused(&self, py: Python<'_>) -> bool {
                self.0.st.borrow(py).flow.protocol_paused
            }

            #[setter]
            fn set_protocol_paused(&self, py: Python<'_>, value: bool) {
                self.0.st.borrow_mut(py).flow.protocol_paused = value;
            }

            #[getter]
            fn high_water(&self, py: Python<'_>) -> usize {
                self.0.st.borrow(py).flow.high
            }

            #[getter]
            fn low_water(&self, py: Python<'_>) -> usize {
                self.0.st.borrow(py).flow.low
            }

            // -- asyncio.BaseTransport / ReadTransport ---------------------

            fn get_protocol<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
                self.0.protocol(py)
            }

            fn set_protocol(&self, protocol: Bound<'_, PyAny>) -> PyResult<()> {
                self.0.set_protocol(protocol)
            }

            fn is_closing(&self, py: Python<'_>) -> bool {
                self.0.st.borrow(py).closing
            }

            fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
                slf.get().0.close(slf.as_any())
            }

            fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
                slf.get().0.force_close(slf.as_any(), None)
            }

            fn _force_close(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
                slf.get()
                    .0
                    .force_close(slf.as_any(), exc.filter(|e| !e.is_none()))
            }

            #[pyo3(signature = (exc, message="Fatal error on transport"))]
            fn _fatal_error(
                slf: &Bound<'_, Self>,
                exc: Bound<'_, PyAny>,
                message: &str,
            ) -> PyResult<()> {
                slf.get()
                    .0
                    .fatal_error(slf.as_any(), PyErr::from_value(exc), message)
            }

            fn is_reading(&self, py: Python<'_>) -> bool {
                self.0.is_reading_now(py)
            }

            fn pause_reading(&self, py: Python<'_>) -> PyResult<()> {
                self.0.pause_reading(py)
            }

            fn resume_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
                slf.get().0.resume_reading(slf.as_any())
            }

            /// The loop callback `start` schedules.
            fn _add_reader(slf: &Bound<'_, Self>) -> PyResult<()> {
                slf.get().0.add_reader(slf.as_any())
            }

            // -- asyncio.WriteTransport's flow control ---------------------

            fn get_write_buffer_size(&self, py: Python<'_>) -> usize {
                self.0.st.borrow(py).kind.pending()
            }

            fn get_write_buffer_limits<'py>(
                &self,
                py: Python<'py>,
            ) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
                self.0.st.borrow(py).flow.limits(py)
            }

            #[pyo3(signature = (high=None, low=None))]
            fn set_write_buffer_limits(
                &self,
                py: Python<'_>,
                high: Option<Bound<'_, PyAny>>,
                low: Option<Bound<'_, PyAny>>,
            ) -> PyResult<()> {
                self.0.set_write_buffer_limits(py, high, low)
            }

            // -- the cycle collector ---------------------------------------

            fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
                self.0.traverse(&visit)
            }

            fn __clear__(&self) {
                self.0.clear();
            }
        }
    };
}

socket_core_methods!(StreamTransportCore, Stream);
socket_core_methods!(DatagramTransportCore, Datagram);
