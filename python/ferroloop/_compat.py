"""What differs between the CPython versions ferroloop runs on, in one place.

Every version switch of the Python package is here; the Rust side's are in
`src/compat.rs` (each build of the extension targets one CPython). Each
switch names the version that changed the behaviour. ferroloop overrides private hooks of asyncio's loop
(`_make_socket_transport`, `_start_serving`, ...); `check_hooks()` compares
their signatures in the running Python with the ones ferroloop was written
for, so a CPython whose asyncio changed them fails loudly at loop creation
instead of silently dropping connections.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from asyncio import base_events, events, selector_events, unix_events

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)
PY314 = sys.version_info >= (3, 14)
PY315 = sys.version_info >= (3, 15)

#: 3.13: `Server._attach(transport)` / `_detach(transport)`.
SERVER_ATTACH_TAKES_TRANSPORT = PY313
#: 3.13: `create_unix_server(cleanup_socket=True)` records the socket's inode
#: in `loop._unix_server_sockets`; closing the server unlinks its file.
UNIX_SERVER_CLEANUP = PY313
#: 3.15: stream transports and servers run their callbacks in one
#: `contextvars.Context` (`context=` on `_make_socket_transport`,
#: `_start_serving`, `_add_reader`).
TRANSPORT_CONTEXT = PY315
#: 3.13: `BaseEventLoop._run_forever_setup()` / `_run_forever_cleanup()`,
#: the hooks subclasses are meant to use around their own run loop.
RUN_FOREVER_HOOKS = PY313
#: 3.14 removed child watchers (`get_child_watcher`, `ThreadedChildWatcher`).
CHILD_WATCHERS = not PY314
#: 3.14: `_make_subprocess_transport` awaits `shield(transp._wait())` on
#: failure and `_child_watcher_callback` runs in the loop's thread.
SUBPROCESS_SHIELD_WAIT = PY314

#: The class asyncio instantiates when no policy is set. From 3.14 the
#: public name (`asyncio.DefaultEventLoopPolicy`) warns on access.
if PY314:
    DefaultPolicy = unix_events._DefaultEventLoopPolicy
else:
    DefaultPolicy = asyncio.DefaultEventLoopPolicy


def set_default_policy_class(cls) -> None:
    """Make `cls` what asyncio instantiates when the policy is reset to
    None (the conformance runner uses it)."""
    if PY314:
        unix_events._DefaultEventLoopPolicy = cls
    else:
        asyncio.DefaultEventLoopPolicy = cls


if CHILD_WATCHERS:
    # Watchers that only ever wait for the pids they are given.
    _DEFAULT_WATCHERS = (unix_events.ThreadedChildWatcher, unix_events.PidfdChildWatcher)


def default_child_watcher_in_use(loop) -> bool:
    """No child watcher chosen by the user: ferroloop's pidfd watcher may
    wait for the loop's children.

    Before 3.14 the default watcher (`ThreadedChildWatcher`; from 3.12
    `PidfdChildWatcher` where pidfds work) only ever waits for the pids it
    is given, so ours can stand in for it; any other watcher (Safe, Fast,
    MultiLoop, a custom one) may reap every child itself and must see ours,
    so asyncio's path is used then. 3.14 has no
    policy watchers: each loop picks its own at creation, a thread per
    child when `unix_events.can_use_pidfd()` says no; ferroloop then
    follows asyncio's choice.
    """
    if not CHILD_WATCHERS:
        return not isinstance(loop._watcher, unix_events._ThreadedChildWatcher)
    watcher = getattr(events.get_event_loop_policy(), "_watcher", None)
    return watcher is None or type(watcher) in _DEFAULT_WATCHERS


def asyncio_child_watcher(loop):
    """asyncio's own child watcher for `loop` (when ferroloop's pidfd
    watcher cannot take a child): the policy's before 3.14, the loop's
    own `_watcher` from 3.14."""
    if not CHILD_WATCHERS:
        return loop._watcher
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return events.get_child_watcher()


# -- the private hooks ferroloop overrides --------------------------------

def _params(func) -> tuple[str, ...]:
    return tuple(inspect.signature(func).parameters)


_TRANSPORT_KW = ("context",) if TRANSPORT_CONTEXT else ()

#: hook -> (where asyncio defines the version ferroloop overrides or calls,
#: the parameters ferroloop's code is written for).
_HOOKS = {
    "_make_socket_transport": (
        selector_events.BaseSelectorEventLoop,
        ("self", "sock", "protocol", "waiter", "extra", "server") + _TRANSPORT_KW,
    ),
    "_make_datagram_transport": (
        selector_events.BaseSelectorEventLoop,
        ("self", "sock", "protocol", "address", "waiter", "extra"),
    ),
    "_make_read_pipe_transport": (
        unix_events._UnixSelectorEventLoop,
        ("self", "pipe", "protocol", "waiter", "extra"),
    ),
    "_make_write_pipe_transport": (
        unix_events._UnixSelectorEventLoop,
        ("self", "pipe", "protocol", "waiter", "extra"),
    ),
    "_make_subprocess_transport": (
        unix_events._UnixSelectorEventLoop,
        ("self", "protocol", "args", "shell", "stdin", "stdout", "stderr", "bufsize", "extra", "kwargs"),
    ),
    "_start_serving": (
        selector_events.BaseSelectorEventLoop,
        ("self", "protocol_factory", "sock", "sslcontext", "server", "backlog",
         "ssl_handshake_timeout", "ssl_shutdown_timeout") + _TRANSPORT_KW,
    ),
    "_add_reader": (selector_events.BaseSelectorEventLoop, ("self", "fd", "callback", "args") + _TRANSPORT_KW),
    "_add_writer": (selector_events.BaseSelectorEventLoop, ("self", "fd", "callback", "args") + _TRANSPORT_KW),
    # Called by ferroloop's pidfd watcher; extended by its subprocess transport.
    "_child_watcher_callback": (unix_events._UnixSelectorEventLoop, ("self", "pid", "returncode", "transp")),
    "_start": (
        unix_events._UnixSubprocessTransport,
        ("self", "args", "shell", "stdin", "stdout", "stderr", "bufsize", "kwargs"),
    ),
}
_SERVER_HOOKS = {
    "_attach": ("self", "transport") if SERVER_ATTACH_TAKES_TRANSPORT else ("self",),
    "_detach": ("self", "transport") if SERVER_ATTACH_TAKES_TRANSPORT else ("self",),
}

_checked: str | None = None


def check_hooks() -> None:
    """Raise RuntimeError if this Python's asyncio hooks differ from those
    ferroloop's overrides were written for (checked once per process)."""
    global _checked
    if _checked == "":
        return
    if _checked is None:
        problems = []
        for name, (owner, expected) in _HOOKS.items():
            got = _params(getattr(owner, name))
            if got != expected:
                problems.append(f"{owner.__name__}.{name}{got} (expected {expected})")
        for name, expected in _SERVER_HOOKS.items():
            got = _params(getattr(base_events.Server, name))
            if got != expected:
                problems.append(f"Server.{name}{got} (expected {expected})")
        _checked = "; ".join(problems)
    if _checked:
        raise RuntimeError(
            f"ferroloop does not know this Python's asyncio (Python "
            f"{sys.version.split()[0]}): its private hooks changed: {_checked}. "
            "Use the stdlib loop (or a ferroloop release made for this Python) "
            "and report it at the ferroloop issue tracker."
        )
