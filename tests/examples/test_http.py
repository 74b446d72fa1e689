"""HTTP clients (examples/http/): aiohttp and requests against the local
aiohttp server each example starts, on both loops."""

from __future__ import annotations

import re

from tests.examples.conftest import run_both

SCALE = ("--scale", "0.1")


def test_client_timeout():
    both = run_both("http/client_timeout", *SCALE)
    assert both.lines[1:5] == [
        "status of /: 200",
        "GET /delay/3 timed out (ClientTimeout total=1 s)",
        "10 requests through a 2-connection connector: " + str([200] * 10),
        "connector limit: 2",
    ]


def test_gather_1000_requests():
    both = run_both("http/gather_requests", "--count", "1000", timeout=90)
    assert "1000 requests, status codes: {200: 1000}" in both.lines
    assert "the server answered 1000 of them" in both.lines


def test_gather_exceptions():
    both = run_both("http/gather_exceptions")
    assert both.lines == [
        "without return_exceptions gather raised NonHttpUrlClientError",
        "with return_exceptions: [200, 'NonHttpUrlClientError', 404]",
        "successful: [200, 404]; exceptions: 1",
    ]


def test_as_completed_timeout():
    both = run_both("http/as_completed_timeout", *SCALE)
    assert both.lines[1:] == [
        "200", "200", "We got a timeout error",
        "1 task(s) still running after the timeout",
        "slow request cancelled: True",
        "finished main in <T>",
    ]


def test_wait_variants():
    both = run_both("http/wait_variants", *SCALE)
    assert both.out == """\
ALL_COMPLETED
  done: 2, pending: 0
  bad: Request got an exception NonHttpUrlClientError
  good: 200
FIRST_EXCEPTION
  done: 1, pending: 2
  bad: Request got an exception NonHttpUrlClientError
  cancelled: ['slow1', 'slow2']
FIRST_COMPLETED
  done: 1, pending: 2
  delay0.5: 200
  done: 1, pending: 1
  delay1: 200
  done: 1, pending: 0
  delay1.5: 200
timeout
  done: 2, pending: 1
  fast1: 200
  fast2: 200
  cancelling slow
  all cancelled: True
"""


def test_requests_to_thread():
    both = run_both("http/requests_to_thread", "--count", "300", timeout=90)
    assert "300 requests, status codes: {200: 300}" in both.lines


PROGRESS = (r"Finished \d+/100 requests\n", "")


def test_requests_thread_pool():
    # The number of progress lines depends on timing: compare without them,
    # but check that the reporter really reported, in increasing order.
    both = run_both("http/requests_thread_pool", "--count", "100", *SCALE,
                    subs=[PROGRESS], timeout=90)
    for run in both:
        done = [int(n) for n in re.findall(r"Finished (\d+)/100 requests", run.stdout)]
        # a report while requests were in flight, then the final count
        assert done[0] < 100 and done[-1] == 100 and done == sorted(done), run.describe()
    assert both.lines[1:] == ["status codes: {200: 100}", "finished main in <T>"]


def test_requests_tour():
    both = run_both("http/requests_tour")
    out = both.out
    assert "GET / -> 200 text/html; charset=utf-8" in out
    assert "HEAD / -> 200, body ''" in out
    assert "PATCH /anything -> 200 {'method': 'PATCH', 'args': {}, 'form': {'key': 'value'}" in out
    assert "URL with params: <base>/anything?key1=value1&key2=value2&key2=value3" in out
    assert both.lines[-2:] == ["Success: /", "HTTP error occurred: 404 Client Error: Not Found"]
