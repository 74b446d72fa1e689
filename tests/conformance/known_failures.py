"""Tests expected to fail on ferroloop: test id -> why.

Ids are ``<module>.<Class>.<test>`` as printed by the runner; a key may be an
fnmatch pattern (``test_tasks.*.test_x``). Only two kinds of reason belong
here: features ferroloop does not implement natively yet, and tests that
depend on stdlib-private internals of asyncio's own loop. Anything else is a
ferroloop bug to fix, not to list.

``NOT_RUN`` are known failures that would hang: they are reported as errors
(and known) without being run.

The lists are per CPython version: ``_COMMON`` holds for every version,
``_BY_VERSION[(3, N)]`` adds that version's own (its suite differs).

``STDLIB_LOOP_ONLY`` lists tests that keep the stdlib loop they build for
themselves even when the runner hands such tests a ferroloop loop (the
default; see ``suites.py``), because they drive that loop's private parts.
They still run, on the stdlib loop.
"""

import sys

_RUN_ONCE = (
    "fills loop._scheduled (stdlib-private) and then steps the loop with _run_once(): "
    "ferroloop's timers live in Rust, so the iteration sees no timer and waits for I/O forever"
)
_NATIVE_HANDLES = (
    "asserts isinstance(handle, asyncio.Handle / asyncio.TimerHandle): ferroloop's handles are "
    "native classes with the same API (a Rust class cannot subclass asyncio's __slots__ classes: "
    "'instance lay-out conflict'); uvloop's handles differ the same way"
)
_PRIVATE_QUEUES = "reads or fills loop._ready / loop._scheduled (stdlib-private); ferroloop's queues are in Rust"
_MOCKED_SELECTOR = (
    "mocks loop._selector / loop._process_events (stdlib-private) to drive or observe the "
    "poll; ferroloop polls its own Rust reactor"
)

_NOT_RUN_COMMON: dict[str, str] = {
    "test_base_events.FerroBaseEventLoopTests.test__run_once": _RUN_ONCE,
    "test_base_events.FerroBaseEventLoopTests.test__run_once_schedule_handle": _RUN_ONCE,
}
_NOT_RUN_BY_VERSION: dict[tuple[int, int], dict[str, str]] = {
    (3, 13): {
        "test_base_events.FerroBaseEventLoopTests.test_custom_run_forever_integration": (
            _MOCKED_SELECTOR + "; it steps the loop with _run_once() expecting the mocked "
            "selector to return at once, so ferroloop's real poll waits forever (ferroloop "
            "honours _run_forever_setup/_run_forever_cleanup: tests/test_versions.py)"
        ),
    },
}
_THREADSAFE_HANDLE = (
    _NATIVE_HANDLES + "; here asyncio.events._ThreadSafeHandle (3.14+), asserted in a helper "
    "thread whose failure means loop.stop() is never called, so the test hangs. ferroloop's "
    "call_soon_threadsafe handles block cancel()/cancelled() from other threads while their "
    "callback runs, as _ThreadSafeHandle does: tests/test_versions.py"
)
_NOT_RUN_BY_VERSION[(3, 14)] = _NOT_RUN_BY_VERSION[(3, 15)] = {
    **_NOT_RUN_BY_VERSION[(3, 13)],
    "test_events.FerroEventLoopTests.test_call_soon_threadsafe_handle_block_check_cancelled": _THREADSAFE_HANDLE,
    "test_events.FerroEventLoopTests.test_call_soon_threadsafe_handle_block_cancellation": _THREADSAFE_HANDLE,
    "test_events.FerroEventLoopTests.test_call_soon_threadsafe_handle_cancel_other_thread": _THREADSAFE_HANDLE,
    "test_unix_events.PidfdChildWatcherTests.test_pidfd_closed_when_waitpid_raises": (
        "mocks os.waitpid to fail inside asyncio's own _PidfdChildWatcher and waits until the "
        "mock is called; ferroloop's pidfd watcher (Rust, waitid on the pidfd) never calls "
        "os.waitpid, so the test waits forever. ferroloop closes its pidfds on every path: "
        "tests/test_subprocesses.py"
    ),
}

_COMMON: dict[str, str] = {
    # --extra modules
    "test_base_events.FerroBaseEventLoopTests.test_call_soon": _NATIVE_HANDLES,
    "test_base_events.FerroBaseEventLoopTests.test_call_later": _NATIVE_HANDLES,
    "test_base_events.FerroBaseEventLoopTests.test__add_callback_handle": _PRIVATE_QUEUES,
    "test_base_events.FerroBaseEventLoopTests.test__run_once_cancelled_event_cleanup": _PRIVATE_QUEUES,
    "test_base_events.FerroBaseEventLoopTests.test_run_forever_pre_stopped": _MOCKED_SELECTOR,
    "test_base_events.FerroBaseEventLoopTests.test_single_selecter_event_callback_after_stopping": _MOCKED_SELECTOR,
    "test_base_events.FerroBaseEventLoopTests.test_not_implemented": (
        "not applicable: checks that the abstract BaseEventLoop's transport factories raise "
        "NotImplementedError; ferroloop is a complete loop (asyncio.SelectorEventLoop fails it too)"
    ),
}

_BY_VERSION: dict[tuple[int, int], dict[str, str]] = {}

_VERSION = sys.version_info[:2]
NOT_RUN: dict[str, str] = {**_NOT_RUN_COMMON, **_NOT_RUN_BY_VERSION.get(_VERSION, {})}
KNOWN_FAILURES: dict[str, str] = {**NOT_RUN, **_COMMON, **_BY_VERSION.get(_VERSION, {})}

_PIPE_ON_TEST_LOOP = (
    "asyncio's own pipe transport class, driven on test_utils.TestLoop's reader and"
    " writer bookkeeping (assert_reader, writers); ferroloop's pipe transports are"
    " test_events' and test_subprocess's pipe tests and tests/test_pipes.py"
)
STDLIB_LOOP_ONLY: dict[str, str] = {
    "test_unix_events.UnixReadPipeTransportTests.*": _PIPE_ON_TEST_LOOP,
    "test_unix_events.UnixWritePipeTransportTests.*": _PIPE_ON_TEST_LOOP,
}
