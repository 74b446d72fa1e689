//! The transports' constants, as asyncio's `asyncio/constants.py` and its
//! transport classes have them (each named after asyncio's).

/// asyncio's transport `max_size` (`_SelectorTransport.max_size`,
/// `_UnixReadPipeTransport.max_size`): the most one read asks for, and the
/// largest datagram one read accepts.
pub const MAX_SIZE: usize = 256 * 1024;

/// `constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES`: writes after the
/// connection was lost are ignored; from this many on, each is logged.
pub const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;
