"""Run CPython's own asyncio test suite against ferroloop.

``python3 -m tests.conformance [MODULE|TEST_ID_PREFIX ...] [--json PATH]``

Each test module runs in its own subprocess (``worker.py``) with ferroloop
installed as asyncio's default loop; ``suites.py`` says how each module's
tests are collected and pointed at ferroloop; ``known_failures.py`` lists the
failures that are expected, with the reason.
"""
