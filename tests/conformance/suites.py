"""Which stdlib test modules run, and how their tests are pointed at ferroloop.

Two kinds of module:

* loop-specific (``test_events``, ``test_sock_lowlevel``): the stdlib builds
  one TestCase per selector from a mixin; we build one more whose
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
  which build a ``BaseEventLoop`` whose selector is a mock.

Tests that then fail because they poke at the stdlib loop's private parts are
listed in ``known_failures.SUBSTITUTION_FAILURES``. The worker records, per
test, which loop classes were constructed, so the report says how many tests
really ran on ferroloop.
"""

from __future__ import annotations

import importlib
import unittest

import ferroloop

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
MODULES = ("test_events", "test_sock_lowlevel") + LOOP_AGNOSTIC


def _ferro_case(module, name: str, *bases) -> type:
    """A TestCase class `name`, placed in `module`, running `bases` on ferroloop."""

    def create_event_loop(self):
        return ferroloop.new_event_loop()

    cls = type(name, bases, {"create_event_loop": create_event_loop})
    # Test ids read "test.test_asyncio.<module>.<name>.<test>", and unittest
    # runs the module's setUpModule/tearDownModule around them.
    cls.__module__ = module.__name__
    cls.__qualname__ = name
    return cls


def _events(mod):
    from test.test_asyncio import utils as test_utils

    return _ferro_case(
        mod,
        "FerroEventLoopTests",
        mod.UnixEventLoopTestsMixin,  # EventLoopTestsMixin + a child watcher
        mod.SubprocessTestsMixin,
        test_utils.TestCase,
    )


def _sock_lowlevel(mod):
    from test.test_asyncio import utils as test_utils

    return _ferro_case(mod, "FerroSockLowlevelTests", mod.BaseSockTestsMixin, test_utils.TestCase)


_LOOP_SPECIFIC = {"test_events": _events, "test_sock_lowlevel": _sock_lowlevel}


def load(name: str) -> unittest.TestSuite:
    """The tests of module `name`, as unittest would run them."""
    mod = importlib.import_module(f"{PACKAGE}.{name}")
    loader = unittest.TestLoader()
    if name in _LOOP_SPECIFIC:
        return loader.loadTestsFromTestCase(_LOOP_SPECIFIC[name](mod))
    return loader.loadTestsFromModule(mod)


def substitute_stdlib_loops() -> None:
    """Give tests that build a stdlib loop only for convenience a ferroloop one."""
    from test.test_asyncio import test_pep492, test_runners
    from test.test_asyncio import utils as test_utils

    stock_new_test_loop = test_utils.TestCase.new_test_loop

    def new_test_loop(self, gen=None):
        if gen is not None:
            return stock_new_test_loop(self, gen)
        loop = ferroloop.new_event_loop()
        self.set_event_loop(loop)
        return loop

    def new_loop(self):  # test_runners: a loop whose shutdown_asyncgens is spied on
        loop = ferroloop.new_event_loop()
        loop.shutdown_ag_run = False
        real = loop.shutdown_asyncgens

        async def shutdown_asyncgens():
            loop.shutdown_ag_run = True
            await real()

        loop.shutdown_asyncgens = shutdown_asyncgens
        return loop

    def setUp(self):  # test_pep492
        test_utils.TestCase.setUp(self)
        self.loop = ferroloop.new_event_loop()
        self.set_event_loop(self.loop)

    test_utils.TestCase.new_test_loop = new_test_loop
    test_runners.BaseTest.new_loop = new_loop
    test_pep492.BaseTest.setUp = setUp


def short_id(test_id: str) -> str:
    """'test.test_asyncio.test_tasks.X.test_y' -> 'test_tasks.X.test_y'."""
    return test_id.removeprefix(PACKAGE + ".")
