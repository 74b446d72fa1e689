//! ferroloop: an asyncio event loop in Rust.
//!
//! - `event_loop`: the scheduler (`LoopCore`): ready queue, timers, run loop.
//! - `fastcall`: vectorcall entry points of the scheduling methods.
//! - `handle`: `Handle`/`TimerHandle`, the callbacks the loop runs.
//! - `context`: the context snapshots pending handles share.
//! - `timers`: the timer heap.
//! - `reactor`: fd registrations and the poll (mio, level-triggered epoll).
//! - `sock_ops`: native `sock_recv`, `sock_recv_into`, `sock_sendall`.
//! - `server`: the accept loop of plain servers.
//! - `process`: child exit watching through pidfds.
//! - `transports`: native transports (stream and datagram sockets, pipes).
//! - `transport_map`: `loop._transports`, fd to transport, weakly.
//! - `sockaddr`: socket addresses as the socket module converts them.
//! - `socket_fd`: the fd a socket object holds, read natively.
//! - `sysio`: non-blocking syscalls and read buffers they share.
//! - `traverse`: what each state shows the cycle collector.
//! - `live`: live-object counters (`_live_counts()`), for leak checks.
//! - `clock`, `gil_cell`, `pyhelpers`: small shared pieces.

use pyo3::prelude::*;

mod clock;
mod compat;
mod context;
mod event_loop;
mod fastcall;
mod fd_watch;
mod gil_cell;
mod handle;
mod live;
mod process;
mod pyhelpers;
mod reactor;
mod server;
mod sock_ops;
mod sockaddr;
mod socket_fd;
mod sysio;
mod telemetry;
mod timers;
mod transport_map;
mod transports;
mod traverse;

#[pymodule]
fn _ferroloop(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The one version number: Cargo.toml's (maturin gives it to the wheel).
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    live::init();
    // Forks are counted from the first import on (see `SockSlot::sole_fd`).
    transports::socket::count_forks();
    m.add_function(wrap_pyfunction!(live::_live_counts, m)?)?;
    m.add_function(wrap_pyfunction!(context::_shares_context_snapshots, m)?)?;
    m.add_function(wrap_pyfunction!(
        context::_reads_current_context_in_place,
        m
    )?)?;
    m.add_function(wrap_pyfunction!(socket_fd::_reads_socket_fd_natively, m)?)?;
    m.add_class::<event_loop::LoopCore>()?;
    fastcall::install(&m.py().get_type::<event_loop::LoopCore>())?;
    m.add_class::<handle::Handle>()?;
    m.add_function(wrap_pyfunction!(sock_ops::sock_recv, m)?)?;
    m.add_function(wrap_pyfunction!(sock_ops::sock_recv_into, m)?)?;
    m.add_function(wrap_pyfunction!(sock_ops::sock_sendall, m)?)?;
    m.add_class::<handle::TimerHandle>()?;
    // Before any handle exists, once both types do (each instance is freed
    // by its own type's `tp_free`, so each type may keep CPython's pair).
    let py = m.py();
    handle::alloc::install(&py.get_type::<handle::Handle>())?;
    handle::alloc::install(&py.get_type::<handle::TimerHandle>())?;
    m.add_function(wrap_pyfunction!(handle::alloc::_handles_skip_gc_count, m)?)?;
    m.add_class::<transports::socket::StreamTransportCore>()?;
    m.add_function(wrap_pyfunction!(
        transports::socket::init_stream_transport,
        m
    )?)?;
    m.add_function(wrap_pyfunction!(transports::socket::py_attach_socket, m)?)?;
    m.add_class::<transports::core_method::CoreMethod>()?;
    m.add_class::<transport_map::TransportMap>()?;
    m.add_class::<transports::socket::DatagramTransportCore>()?;
    m.add_class::<transports::pipe::ReadPipeCore>()?;
    m.add_class::<transports::pipe::WritePipeCore>()?;
    m.add_class::<process::ChildWatcher>()?;
    m.add_class::<server::Acceptor>()?;
    Ok(())
}
