"""Which stdlib test modules run, and how their tests are pointed at ferroloop.

Two kinds of module:

* loop-specific (``test_events``, ``test_sock_lowlevel``, ...): the stdlib
  builds one TestCase per selector from a mixin; we build one more whose
  ``create_event_loop`` returns a ferroloop loop, and run only that one.
* loop-agnostic (the rest): run unchanged, with ferroloop as asyncio's
  *default* policy (see ``worker.install_ferroloop``), so ``new_event_loop()``,
  ``asyncio.run``, ``Runner`` and ``IsolatedAsyncioTestCase`` all get a
  ferroloop loop -- even after a test resets the policy to ``None``.

Some tests build a stdlib loop on purpose (``test_utils.TestLoop``, a
fake-clock ``BaseEventLoop``, or a bare ``asyncio.BaseEventLoop`` with a
mocked selector) and so exercise stdlib code only. Where the stdlib loop is a
mere convenience, ``substitute_stdlib_loops`` (on by default; the runner's
``--no-substitute`` turns it off) hands the test a ferroloop loop instead:

* ``TestCase.new_test_loop()`` *without* a time generator: that TestLoop's
  clock is frozen and it fails on any timer, so nothing depends on fake time
  (with a generator, fake time is the point: those stay on TestLoop);
* ``test_runners.BaseTest.new_loop`` and ``test_pep492.BaseTest.setUp``,
  which build a ``BaseEventLoop`` whose selector is a mock;
* ``test_tasks.GatherTestsBase._run_loop`` spins ``while loop._ready``: on
  ferroloop it reads the Rust ready queue's length (``_ready_count``).

Tests that poke at the stdlib loop's private parts keep it: they are listed
in ``known_failures.STDLIB_LOOP_ONLY``. The worker records, per
test, which loop classes were constructed, so the report says how many tests
really ran on ferroloop.
"""

from __future__ import annotations

import fnmatch
import importlib
import sys
import unittest
from unittest import mock

import ferroloop
from ferroloop import _compat

from .known_failures import STDLIB_LOOP_ONLY

PACKAGE = "test.test_asyncio"

LOOP_AGNOSTIC = (
    "test_tasks",
    "test_futures",
    "test_futures2",
    "test_locks",
    "test_queues",
    "test_taskgroups",
    "test_timeouts",
    "test_waitfor",
    "test_runners",
    "test_context",
    "test_pep492",
    "test_threads",
)
# Modules newer CPythons added; each version runs its own suite.
if sys.version_info >= (3, 12):
    LOOP_AGNOSTIC += ("test_eager_task_factory", "test_staggered")
if sys.version_info >= (3, 14):
    # test_graph: asyncio.capture_call_graph; test_tools: `python -m asyncio
    # ps/pstree`; test_free_threading: tasks from many threads.
    LOOP_AGNOSTIC += ("test_graph", "test_tools", "test_free_threading")
if sys.version_info >= (3, 15):
    LOOP_AGNOSTIC += ("test_server_context",)
DEFAULT = ("test_events", "test_sock_lowlevel") + LOOP_AGNOSTIC
# Transports, servers, subprocesses and TLS (ferroloop's native TCP and pipe
# transports; asyncio's own server, TLS and datagram code on top). Run with
# --extra (``make test`` does). test_protocols and test_transports check the
# ABCs ferroloop's transports subclass.
EXTRA = ("test_streams", "test_server", "test_buffered_proto", "test_sendfile",
         "test_subprocess", "test_ssl", "test_sslproto", "test_unix_events", "test_base_events",
         "test_protocols", "test_transports")
MODULES = DEFAULT + EXTRA


def _ferro_case(module, name: str, *bases) -> type:
    """A TestCase class `name`, placed in `module`, running `bases` on ferroloop."""

    def create_event_loop(self):
        return ferroloop.new_event_loop()

    # Mixins ask for a loop through create_event_loop() or new_loop().
    cls = type(name, bases, {"create_event_loop": create_event_loop, "new_loop": create_event_loop})
    # Test ids read "test.test_asyncio.<module>.<name>.<test>", and unittest
    # runs the module's setUpModule/tearDownModule around them.
    cls.__module__ = module.__name__
    cls.__qualname__ = name
    return cls


def _ferro_selector_loop(selector=None):
    if selector is not None:
        selector.close()
    return ferroloop.new_event_loop()


def _ferro_setup(module, cls) -> type:
    """`cls` under a Ferro* name, its setUp's `asyncio.SelectorEventLoop()` giving ferroloop."""
    stock_setUp = cls.setUp

    def setUp(self):
        with mock.patch("asyncio.SelectorEventLoop", _ferro_selector_loop):
            stock_setUp(self)

    new = _ferro_case(module, "Ferro" + cls.__name__.removeprefix("Selector"), cls)
    new.setUp = setUp
    return new


def _loop_specific(name: str, mod) -> list[type] | None:
    """The TestCase classes to run for a module whose stdlib classes each pin
    a stdlib loop; None for a loop-agnostic module (run as it is)."""
    from test.test_asyncio import utils as test_utils

    if name == "test_events":
        # Before 3.14, UnixEventLoopTestsMixin = EventLoopTestsMixin + a child watcher.
        mixin = getattr(mod, "UnixEventLoopTestsMixin", mod.EventLoopTestsMixin)
        bases = (mixin, mod.SubprocessTestsMixin, test_utils.TestCase)
        return [_ferro_case(mod, "FerroEventLoopTests", *bases)]
    if name == "test_sock_lowlevel":
        return [_ferro_case(mod, "FerroSockLowlevelTests", mod.BaseSockTestsMixin, test_utils.TestCase)]
    if name == "test_sendfile":
        return [_ferro_case(mod, "FerroSendfileTests", mod.SendfileTestsBase, test_utils.TestCase)]
    # Their Selector* classes add selector-only tests (unix sockets): subclass those.
    if name == "test_server":
        return [_ferro_case(mod, "FerroStartServerTests", mod.SelectorStartServerTests)]
    if name == "test_buffered_proto":
        return [_ferro_case(mod, "FerroBufferedProtocolTests", mod.BufferedProtocolSelectorTests)]
    if name == "test_sslproto":
        return [_ferro_case(mod, "FerroStartTLSTests", mod.SelectorStartTLSTests), mod.SslProtoHandshakeTests]
    # Classes whose setUp builds asyncio.SelectorEventLoop(), plus those already
    # on asyncio.new_event_loop(); the rest of these modules drive mocks or TestLoop.
    if name == "test_unix_events":
        # PolicyTests (child watchers) went in 3.14, PidfdChildWatcherTests came.
        others = [getattr(mod, c) for c in ("PolicyTests", "PidfdChildWatcherTests") if hasattr(mod, c)]
        return [_ferro_setup(mod, mod.SelectorEventLoopSignalTests),
                _ferro_setup(mod, mod.SelectorEventLoopUnixSocketTests),
                mod.SelectorEventLoopUnixSockSendfileTests, *others, mod.TestFunctional]
    if name == "test_base_events":
        # BaseEventLoopTests checks the loop API on a bare BaseEventLoop with a
        # mocked selector; ours gives it a ferroloop loop instead.
        def setUp(self):
            test_utils.TestCase.setUp(self)
            self.loop = ferroloop.new_event_loop()
            self.set_event_loop(self.loop)

        base = _ferro_case(mod, "FerroBaseEventLoopTests", mod.BaseEventLoopTests)
        base.setUp = setUp
        return [base, _ferro_setup(mod, mod.BaseEventLoopWithSelectorTests), mod.RunningLoopTests]
    return None


def _the_rest(mod, chosen: list[type]) -> list[type]:
    """Every other TestCase class the module defines, run as it is.

    Left out: the stock classes the Ferro* ones stand in for, that is every
    class deriving from a class of the module that a Ferro* class is built
    on (the selector-, poll- and proactor-pinned siblings of the mixin or
    class it reuses). The rest is loop-agnostic (asyncio's own policy,
    `IsolatedAsyncioTestCase`, `asyncio.run`, mocks) and runs on ferroloop
    through the default policy, or on the stdlib loop it builds; either
    way it runs, never silently dropped (3.13's `test_server.TestServer2`
    and `UnixServerCleanupTests` went unrun once).
    """
    built = [c for c in chosen if vars(mod).get(c.__name__) is not c]
    reused = {b for c in built for b in c.__mro__[1:] if b.__module__ == mod.__name__}
    return [
        obj
        for obj in vars(mod).values()
        if isinstance(obj, type)
        and issubclass(obj, unittest.TestCase)
        and obj.__module__ == mod.__name__
        and obj not in chosen
        and not issubclass(obj, tuple(reused))
    ]


def load(name: str) -> unittest.TestSuite:
    """The tests of module `name`, as unittest would run them."""
    mod = importlib.import_module(f"{PACKAGE}.{name}")
    loader = unittest.TestLoader()
    classes = _loop_specific(name, mod)
    if classes is None:
        return loader.loadTestsFromModule(mod)
    classes += _the_rest(mod, classes)
    return unittest.TestSuite(loader.loadTestsFromTestCase(c) for c in classes)


def substitute_stdlib_loops() -> None:
    """Give tests that build a stdlib loop only for convenience a ferroloop one."""
    if _compat.PY313:
        # `asyncio.EventLoop` (3.13+) is "this platform's loop": tests that
        # name it (loop_factory=asyncio.EventLoop) get ferroloop's.
        import asyncio

        asyncio.EventLoop = ferroloop.Loop
    from test.test_asyncio import test_pep492, test_runners, test_tasks
    from test.test_asyncio import utils as test_utils

    def keeps_stdlib_loop(test) -> bool:
        return any(fnmatch.fnmatchcase(short_id(test.id()), p) for p in STDLIB_LOOP_ONLY)

    stock_new_test_loop = test_utils.TestCase.new_test_loop
    stock_new_loop = test_runners.BaseTest.new_loop
    stock_setUp = test_pep492.BaseTest.setUp

    def new_test_loop(self, gen=None):
        if gen is not None or keeps_stdlib_loop(self):
            return stock_new_test_loop(self, gen)
        loop = ferroloop.new_event_loop()
        self.set_event_loop(loop)
        return loop

    def new_loop(self):  # test_runners: a loop whose shutdown_asyncgens is spied on
        if keeps_stdlib_loop(self):
            return stock_new_loop(self)
        loop = ferroloop.new_event_loop()
        loop.shutdown_ag_run = False
        real = loop.shutdown_asyncgens

        async def shutdown_asyncgens():
            loop.shutdown_ag_run = True
            await real()

        loop.shutdown_asyncgens = shutdown_asyncgens
        return loop

    def setUp(self):  # test_pep492
        if keeps_stdlib_loop(self):
            return stock_setUp(self)
        test_utils.TestCase.setUp(self)
        self.loop = ferroloop.new_event_loop()
        self.set_event_loop(self.loop)

    def _run_loop(self, loop):  # test_tasks gather tests
        while loop._ready_count if isinstance(loop, ferroloop.Loop) else loop._ready:
            test_utils.run_briefly(loop)

    test_utils.TestCase.new_test_loop = new_test_loop
    test_tasks.GatherTestsBase._run_loop = _run_loop
    test_runners.BaseTest.new_loop = new_loop
    test_pep492.BaseTest.setUp = setUp


def short_id(test_id: str) -> str:
    """'test.test_asyncio.test_tasks.X.test_y' -> 'test_tasks.X.test_y'."""
    return test_id.removeprefix(PACKAGE + ".")
