"""Shared fixtures for ferroloop's behaviour tests.

Most tests run twice, once on CPython's own loop (``stdlib``) and once on
ferroloop (``ferroloop``): the stdlib run shows that what the test expects
is asyncio's behaviour, the ferroloop run that ferroloop matches it.
Tests of things asyncio does not promise (or gets wrong) use ``floop``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import signal
import threading
import time

import pytest

# Count live handles too (see the live-object gate below): read once, when
# the extension is imported, so it must be set before the import.
os.environ.setdefault("FERROLOOP_LIVE_COUNTS", "1")

from tests.helpers import ferroloop  # noqa: E402
from ferroloop._ferroloop import _live_counts  # noqa: E402

# A test run started in the background by a non-interactive shell inherits
# SIGINT ignored, and so would every program the tests start (an ignored
# signal survives exec): the Ctrl-C tests need it delivered.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


LOOP_FACTORIES = [
    pytest.param(asyncio.new_event_loop, id="stdlib"),
    pytest.param(ferroloop.new_event_loop, id="ferroloop"),
]


def _dispose(loop: asyncio.AbstractEventLoop) -> None:
    if loop.is_closed():
        return
    if loop.is_running():  # a test failed while the loop ran elsewhere
        return
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    except Exception:
        pass
    finally:
        loop.close()


@pytest.fixture(params=LOOP_FACTORIES)
def loop(request):
    """A fresh loop: CPython's (``stdlib``) and then ferroloop's."""
    lp = request.param()
    yield lp
    _dispose(lp)
    asyncio.set_event_loop(None)


@pytest.fixture(params=LOOP_FACTORIES)
def loop_factory(request):
    """The loop factory itself, for tests that make their own loops."""
    return request.param


@pytest.fixture
def pair():
    """A connected pair of non-blocking Unix stream sockets."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def floop():
    """A ferroloop loop, for ferroloop-only guarantees."""
    lp = ferroloop.new_event_loop()
    yield lp
    _dispose(lp)
    asyncio.set_event_loop(None)


# -- a per-test time limit (no plugin needed) --------------------------------
#
# A hung loop must fail its test, not the whole run. SIGALRM interrupts the
# poll; the exception is a SystemExit subclass so that neither asyncio's
# Handle._run nor a Task swallows it on its way out of run_forever().

TEST_TIME_LIMIT = float(os.environ.get("FERROLOOP_TEST_TIME_LIMIT", "20"))


class TestTimeLimit(SystemExit):
    __test__ = False


def _on_alarm(signum, frame):
    raise TestTimeLimit(f"test exceeded {TEST_TIME_LIMIT} s (hung loop?)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    use_alarm = threading.current_thread() is threading.main_thread()
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, TEST_TIME_LIMIT)
    try:
        return (yield)
    except TestTimeLimit as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


# -- unexpected exception-handler calls fail the test --------------------------
#
# As uvloop's test base does: on ferroloop, a call that reaches the default
# exception handler (no handler set by the test) is a hidden error, so the
# test fails, even if everything it asserts holds. A test that expects such a
# call says so with ``@pytest.mark.exception_handler_ok`` (or sets its own
# handler). stdlib loops are not checked: their reports are asyncio's.


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "exception_handler_ok: the test expects calls to ferroloop's default exception handler",
    )


@pytest.fixture(autouse=True)
def _no_unexpected_exception_handler_calls(request, monkeypatch):
    calls = []
    original = ferroloop.Loop.default_exception_handler

    def recording(self, context):
        calls.append(context)
        return original(self, context)

    monkeypatch.setattr(ferroloop.Loop, "default_exception_handler", recording)
    yield
    if calls and request.node.get_closest_marker("exception_handler_ok") is None:
        first = calls[0]
        pytest.fail(
            f"{len(calls)} unexpected call(s) to ferroloop's exception handler; first: "
            f"{first.get('message')!r} {first.get('exception')!r} "
            "(mark the test exception_handler_ok if expected)",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _no_leftover_running_loop():
    yield
    # A test that failed mid-run must not leave a running loop behind.
    asyncio.events._set_running_loop(None)
    gc.collect()


# -- the live-object gate -------------------------------------------------------
#
# After each test module, once collected garbage is gone, ferroloop must hold
# no more transports, pidfds, fd registrations or handles than before it:
# each one left over is a leak (a transport never closed, a pidfd never
# closed, a registration its owner forgot, a callback kept). Counts may take
# a moment to settle (a reaper thread closes the pidfds of children that
# outlived their loop; an executor thread's last call_soon_threadsafe), so
# the gate retries for a while before failing. It compares counts across
# the module, not against zero: an earlier module's leak (already reported)
# does not fail every later one.
#
# Transports, pidfds and registrations all die with their loop or earlier,
# and a module that wants one kept for the session is wrong. Handles are
# different: a module may legitimately keep a loop (and its pool of recycled
# handles), a handle or a future holding one in its globals; such a module
# says so with `LIVE_KEPT = {"handles"}` (none does today: every module's
# handles come back down). Handles are counted only with
# FERROLOOP_LIVE_COUNTS set at import, which this file does first.

LIVE_GATED = ("transports", "pidfds", "registrations", "handles")
LIVE_SETTLE = 3.0


def _grown(before: dict, after: dict, kept) -> dict:
    return {k: (before.get(k, 0), after.get(k, 0)) for k in LIVE_GATED
            if k not in kept and after.get(k, 0) > before.get(k, 0)}


@pytest.fixture(scope="module", autouse=True)
def _no_leaked_live_objects(request):
    kept = getattr(request.module, "LIVE_KEPT", ())
    gc.collect()
    before = _live_counts()
    yield
    deadline = time.monotonic() + LIVE_SETTLE
    while True:
        gc.collect()
        after = _live_counts()
        grown = _grown(before, after, kept)
        if not grown or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if grown:
        detail = ", ".join(f"{k}: {b} -> {a}" for k, (b, a) in grown.items())
        pytest.fail(f"ferroloop objects leaked by {request.module.__name__}: {detail} "
                    f"(all counts: {after})", pytrace=False)
