"""tornado's own test runner, on the loop EXTERNAL_LOOP names, its results
kept as JUnit XML (run by scripts/external-suites.py).

The runner is kept, not replaced by pytest: it also fails a run that logs
anything or writes to stderr, which is recorded as a test of its own.
"""

import sys

import _junit

_junit.use_loop()

from tornado.test import runtests  # noqa: E402

results: list[tuple[str, bool]] = []
make_runner = runtests.test_runner_factory


def recording_runner(stderr):
    base = make_runner(stderr)

    class Runner(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)

            class Result(_junit.recording(results), self.resultclass):
                def addSubTest(self, test, subtest, err):
                    if err is not None:
                        results.append((test.id(), False))
                    super().addSubTest(test, subtest, err)

            self.resultclass = Result

    return Runner


runtests.test_runner_factory = recording_runner
# Its runner loads `__main__.all` unless given test names.
globals()["all"] = runtests.all
sys.argv[0] = "tornado.test.runtests"
status = 0
try:
    runtests.main()
except SystemExit as exit:
    status = exit.code or 0
if status and not [tid for tid, ok in results if not ok]:
    results.append(("tornado.test.runtests.Run.logged_nothing", False))
_junit.write(results)
sys.exit(status)
