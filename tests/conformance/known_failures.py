"""Tests expected to fail on ferroloop: test id -> why.

Ids are ``<module>.<Class>.<test>`` as printed by the runner; a key may be an
fnmatch pattern (``test_tasks.*.test_x``). Only two kinds of reason belong
here: features ferroloop does not implement natively yet, and tests that
depend on stdlib-private internals of asyncio's own loop. Anything else is a
ferroloop bug to fix, not to list.

``SUBSTITUTION_FAILURES`` apply only when the runner hands tests that built
a stdlib loop a ferroloop one instead (the default; see ``suites.py``): the
tests listed there poke at that stdlib loop's private parts.
``SUBSTITUTION_HANGS`` are such tests that would block forever: they are not
run at all (reported as errors, and as known).
"""

KNOWN_FAILURES: dict[str, str] = {}

SUBSTITUTION_FAILURES: dict[str, str] = {}

SUBSTITUTION_HANGS: dict[str, str] = {
    "test_tasks.*.test_log_destroyed_pending_task": (
        "drives the loop by calling loop._run_once() (stdlib-private): on ferroloop that is "
        "BaseEventLoop._run_once, which sees no stdlib _ready/_scheduled work and blocks in "
        "the (unused) stdlib selector forever; ferroloop's iteration is LoopCore._run_core"
    ),
}
