"""What the drivers here share: the loop to run on, and results written as
the JUnit XML that scripts/external-suites.py reads."""

import os
from xml.etree import ElementTree as ET


def use_loop() -> None:
    """ferroloop through the loop policy when EXTERNAL_LOOP names it."""
    if os.environ.get("EXTERNAL_LOOP") == "ferroloop":
        import asyncio

        import ferroloop

        asyncio.set_event_loop_policy(ferroloop.EventLoopPolicy())


def recording(results: list[tuple[str, bool]]) -> type:
    """A mixin for a unittest result or trial reporter that appends each
    outcome to `results` as (test id, passed) and then reports it as usual."""

    def note(name: str, passed: bool):
        def method(self, test, *args):
            results.append((test.id(), passed))
            return getattr(super(Recording, self), name)(test, *args)

        return method

    class Recording:
        addSuccess = note("addSuccess", True)
        addExpectedFailure = note("addExpectedFailure", True)
        addFailure = note("addFailure", False)
        addError = note("addError", False)
        addUnexpectedSuccess = note("addUnexpectedSuccess", False)

    return Recording


def write(results: list[tuple[str, bool]]) -> None:
    """(unittest test id, passed) pairs to $EXTERNAL_XML."""
    suite = ET.Element("testsuite")
    for tid, ok in results:
        head, _, name = tid.partition(" ")[0].rpartition(".")
        case = ET.SubElement(suite, "testcase", classname=head, name=name)
        if not ok:
            ET.SubElement(case, "failure")
    ET.ElementTree(suite).write(os.environ["EXTERNAL_XML"])
