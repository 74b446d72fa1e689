"""Transports: asyncio's own, with ferroloop's native read path.

Native Rust transports are the next step; until then the socket transport is
asyncio's `_SelectorSocketTransport` (so every callback, flow-control and
close rule is CPython's) reading through `_ferroloop.recv`, which receives
into a reusable page-aligned buffer instead of allocating `max_size`
(256 KiB) bytes per read.
"""

from __future__ import annotations

from asyncio import selector_events

from ._ferroloop import recv as _recv


class SocketTransport(selector_events._SelectorSocketTransport):
    """asyncio's socket transport with a native, allocation-light read."""

    def _read_ready__data_received(self):
        if self._conn_lost:
            return
        try:
            data = _recv(self._sock, self.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on socket transport")
            return

        if not data:
            self._read_ready__on_eof()
            return

        try:
            self._protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
