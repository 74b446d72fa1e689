"""asyncio basics (examples/basics/): the notes' first programs, on both loops.

Run at a tenth of the notes' durations (``--scale 0.1``); ``async_timed``
reports nominal seconds, so "3 tasks of 3 s take about 3 s" is checked too.
"""

from __future__ import annotations

import sys

import re


from tests.examples.conftest import run_both

SCALE = ("--scale", "0.1")


def timed(both, name: str) -> list[float]:
    """The nominal durations ``async_timed`` printed for ``name`` on both loops."""
    found = []
    for run in both:
        m = re.findall(rf"finished {name} in (\d+\.\d+) second", run.stdout)
        assert m, run.describe()
        found += [float(x) for x in m]
    return found


def about(values, expected, tol=None):
    """Each nominal duration is about ``expected`` (never less; a loaded
    machine may add some: at --scale 0.1 a nominal second is 100 ms)."""
    tol = max(0.6, expected * 0.4) if tol is None else tol
    for v in values:
        assert expected - 0.05 <= v <= expected + tol, (values, expected)


def test_hello_world():
    both = run_both("basics/hello_world", *SCALE)
    assert both.lines == ["Hello World!"]


def test_coroutine_vs_function():
    both = run_both("basics/coroutine_vs_function")
    assert both.lines == [
        "Calling the coroutine function gives coroutine, awaitable: True",
        "Function result is 2 and the type is <class 'int'>",
        "Coroutine result is 2 and the type is <class 'int'>",
    ]


def test_await_chain():
    both = run_both("basics/await_chain", *SCALE)
    assert both.lines == [
        "starting main with args () {}", "2", "3",
        "sleeping for 1 second(s)", "finished sleeping for 1 second(s)",
        "2", "Hello world!", "finished main in <T>",
    ]
    about(timed(both, "main"), 1.0)


def test_future_value():
    both = run_both("basics/future_value", *SCALE)
    assert both.lines == ["Is the future done? False", "Is the future done? True", "42"]


def test_create_task():
    both = run_both("basics/create_task", *SCALE)
    out = both.out
    assert "<class '_asyncio.Task'>" in out
    three = ["sleeping for 3 second(s)"] * 3 + ["finished sleeping for 3 second(s)"] * 3
    lines = both.lines
    i = lines.index("starting three_tasks with args () {}")
    assert lines[i + 1:i + 7] == three
    i = lines.index("starting other_code_meanwhile with args () {}")
    assert lines[i + 1:i + 7] == ["sleeping for 3 second(s)"] * 2 + [
        "I am running other code while I am running"] * 2 + [
        "finished sleeping for 3 second(s)"] * 2
    assert "[3, 3, 3]" in lines
    # Concurrency: each group of 3-second delays takes about 3 s, not 6 or 9.
    for name in ("one_task", "three_tasks", "other_code_meanwhile", "list_of_tasks"):
        about(timed(both, name), 3.0)


def test_cancel_task():
    both = run_both("basics/cancel_task", *SCALE)
    lines = both.lines
    assert lines.count("Task is not finished, checking again in a second.") == 6
    assert "sleeping for 10 second(s)" in lines
    assert "finished sleeping for 10 second(s)" not in lines
    assert lines[-2:] == ["Our task was cancelled.", "cancelled: True"]


def test_wait_for_timeout():
    both = run_both("basics/wait_for_timeout", *SCALE)
    assert both.lines == ["sleeping for 2 second(s)", "Got a timeout!",
                          "Was the task cancelled? True"]


def test_shield():
    both = run_both("basics/shield", *SCALE)
    assert both.lines == [
        "starting main with args () {}", "sleeping for 10 second(s)",
        "Task took longer than five seconds, it will finish soon",
        "Was the task cancelled? False", "finished sleeping for 10 second(s)",
        "finished in 10 second(s)", "finished main in <T>",
    ]
    about(timed(both, "main"), 10.0)


def test_to_thread():
    both = run_both("basics/to_thread", *SCALE)
    assert both.lines[1:4] == [
        f"{n} done after 1 s (in the main thread: False)" for n in ("first", "second", "third")]
    assert "the loop stayed responsive: True ticker ticks" in both.lines
    about(timed(both, "main"), 1.0)


# CPython's own message, which 3.14 reworded.
_NOT_AWAITABLE = (
    "'async_generator' object can't be awaited" if sys.version_info >= (3, 14)
    else "object async_generator can't be used in 'await' expression"
)


def test_async_generators():
    both = run_both("basics/async_generators", *SCALE)
    assert both.lines == [
        "echo_round starts with 0",
        "echo_round(1.4) -> 1", "echo_round(2.6) -> 3", "echo_round(7.5) -> 8",
        "echo_round(3.49) -> 3",
        "echo_round stopped on a negative number",
        "took [0, 1, 2, 3, 4]",
        "await coroutine_method() -> 3",
        "await generator_method() -> TypeError: " + _NOT_AWAITABLE,
        "async for over generator_method() -> [3]",
    ]
