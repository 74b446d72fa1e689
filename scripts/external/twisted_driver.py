"""Twisted's trial on its asyncio reactor, on the loop EXTERNAL_LOOP names,
its results kept as JUnit XML (run by scripts/external-suites.py).

`trial.run()`'s steps, with a reporter that also records each outcome.
"""

import sys

import _junit

_junit.use_loop()

from twisted.scripts import trial  # noqa: E402
from twisted.trial import reporter  # noqa: E402

results: list[tuple[str, bool]] = []


class Recording(_junit.recording(results), reporter.TreeReporter):
    pass


config = trial.Options()
# The reactor is installed while the options are parsed: after the policy.
config.parseOptions(["--reactor=asyncio", *sys.argv[1:]])
config["reporter"] = Recording
result = trial._makeRunner(config).run(trial._getSuite(config))
_junit.write(results)
sys.exit(not result.wasSuccessful())
