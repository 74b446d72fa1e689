//! Socket transports: the engines of `ferroloop.transports.TcpTransport`
//! and `UdpTransport`, asyncio's `_SelectorSocketTransport` (TCP and Unix
//! stream sockets) and `_SelectorDatagramTransport` (UDP and Unix datagram
//! sockets) in Rust.
//!
//! - `base`: `SocketCore<K>`, what both hold and do (asyncio's
//!   `_SelectorTransport`): fd watch, pause/resume of reading, write flow
//!   control, `close`/`abort`/`connection_lost`.
//! - `methods`: the Python methods both cores share, over `SocketCore`.
//! - `stream`: `StreamTransportCore` (reads, `write`, `writelines`,
//!   `write_eof`, the sendfile waiter).
//! - `datagram`: `DatagramTransportCore` (`recvfrom`, `sendto`).
//! - `setup`: a transport object's set-up (extra info, fd, server), natively.
//! - `sock_slot`: the socket object, or an accepted connection's bare fd.
//!
//! Every rule is asyncio's, with asyncio's error messages. Each Python
//! class (an asyncio transport subclass, so `isinstance` checks hold) owns
//! one core and binds the hot methods straight to it.

mod base;
mod datagram;
mod methods;
mod setup;
mod sock_slot;
mod stream;

pub use stream::flush_batched;

pub use datagram::DatagramTransportCore;
pub use setup::{init_accepted_stream, init_stream_transport, py_attach_socket};
pub use sock_slot::{count_forks, fork_count, socket_object};
pub use stream::StreamTransportCore;
