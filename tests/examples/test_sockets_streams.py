"""Servers on the loop (examples/sockets/, examples/streams/, the chat and
echo examples): each is started on both loops, driven by real socket
clients from the test, signalled, and its output and what the peers
received are compared with the expected transcript."""

from __future__ import annotations

import signal
import time

import pytest

from tests.examples.conftest import (
    LOOPS, LiveExample, connect, free_port, normalise, recv_exactly, recv_line, run_both)


def both_loops(drive, *args):
    """Run ``drive(loop, *args)`` on each loop; the transcripts must agree."""
    results = {loop: drive(loop, *args) for loop in LOOPS}
    assert results["stdlib"] == results["ferroloop"], results
    return results["stdlib"]


# -- the notes' sock_* echo server with graceful shutdown ------------------------

def drive_echo_signals(loop: str, sig: int):
    port = free_port()
    with LiveExample("sockets/echo_signals", "--port", port, "--grace", "0.5",
                     loop=loop) as ex:
        ex.wait_for("Listening on")
        c1 = connect(port)
        c1.sendall(b"hello\r\n")
        c1.sendall(b"world\r\n")
        got1 = recv_exactly(c1, 14)
        c2 = connect(port)
        c2.sendall(b"boom\r\n")  # the echo task raises; the connection is closed
        got2 = c2.recv(100)
        c3 = connect(port)  # stays connected through the shutdown
        c3.sendall(b"still here\r\n")
        got3 = recv_exactly(c3, 12)
        c1.close()
        ex.wait_for("Got a connection", times=3)
        time.sleep(0.2)  # c1's echo task sees the EOF and ends
        ex.signal(sig)
        t0 = time.monotonic()
        rc = ex.wait()
        took = time.monotonic() - t0
        got3_end = c3.recv(100)  # closed once the grace period is over
        for s in (c2, c3):
            s.close()
        assert "Unexpected network error" in ex.stderr, ex.stderr
        assert 0.4 < took < 5, took  # the 0.5 s grace period, not more
        return rc, normalise(ex.stdout), got1, got2, got3, got3_end


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_echo_server_signals(sig):
    rc, out, got1, got2, got3, got3_end = both_loops(drive_echo_signals, sig)
    assert rc == 0
    assert (got1, got2, got3, got3_end) == (b"hello\r\nworld\r\n", b"", b"still here\r\n", b"")
    name = signal.Signals(sig).name
    assert out == (
        "Listening on 127.0.0.1:<port>\n"
        + "Got a connection from ('127.0.0.1', <port>)\n" * 3
        + f"Got {name}, shutting down\n"
        "2 echo task(s) had finished, 1 cancelled after the grace period\n"
        "Server stopped\n")


def drive_cancel_on_sigint(loop: str):
    with LiveExample("sockets/cancel_on_sigint", loop=loop) as ex:
        ex.wait_for("sleeping for 10 second(s)")
        t0 = time.monotonic()
        ex.signal(signal.SIGINT)
        rc = ex.wait()
        assert time.monotonic() - t0 < 5  # cancelled, not the ten seconds
        return rc, ex.stdout, ex.stderr


def test_cancel_tasks_on_sigint():
    rc, out, err = both_loops(drive_cancel_on_sigint)
    assert rc == 0 and err == ""
    assert out == ("sleeping for 10 second(s)\nGot a SIGINT\nCancelling 1 task(s).\n"
                   "main was cancelled before the delay finished\n")


# -- outside asyncio: selectors and thread-per-client echo servers -----------------

NO_EVENTS = (r"No events, waiting a bit more!\n", "")


def drive_selectors_echo(loop: str):
    port = free_port()
    with LiveExample("sockets/selectors_echo", "--port", port, loop=loop) as ex:
        ex.wait_for("Listening on")
        a = connect(port)
        ex.wait_for("I got a connection", 1)
        a.sendall(b"one\r\n")
        got_a = recv_exactly(a, 5)
        b = connect(port)
        ex.wait_for("I got a connection", 2)
        b.sendall(b"two\r\n")
        got_b = recv_exactly(b, 5)
        a.close()
        ex.wait_for("A client disconnected")
        ex.signal(signal.SIGINT)
        rc = ex.wait()
        got_b_end = b.recv(10)
        b.close()
        return rc, normalise(ex.stdout, [NO_EVENTS]), got_a, got_b, got_b_end


def test_selectors_echo():
    rc, out, got_a, got_b, got_b_end = both_loops(drive_selectors_echo)
    assert rc == 0
    assert (got_a, got_b, got_b_end) == (b"one\r\n", b"two\r\n", b"")
    assert out == ("Listening on 127.0.0.1:<port>\n"
                   "I got a connection from ('127.0.0.1', <port>)!\n"
                   "I got some data: b'one\\r\\n'\n"
                   "I got a connection from ('127.0.0.1', <port>)!\n"
                   "I got some data: b'two\\r\\n'\n"
                   "A client disconnected\n"
                   "Shutting down!\n")


def drive_threaded_echo(loop: str):
    port = free_port()
    with LiveExample("sockets/threaded_echo", "--port", port, loop=loop) as ex:
        ex.wait_for("Listening on")
        a, b = connect(port), connect(port)
        a.sendall(b"hello")
        got_a = recv_exactly(a, 5)
        b.sendall(b"there")
        got_b = recv_exactly(b, 5)
        ex.signal(signal.SIGTERM)
        rc = ex.wait()
        ends = [recv_exactly(s, 100) for s in (a, b)]  # "Shutting down!" then EOF
        a.close()
        b.close()
        return rc, normalise(ex.stdout), got_a, got_b, ends


def test_threaded_echo():
    rc, out, got_a, got_b, ends = both_loops(drive_threaded_echo)
    assert rc == 0
    assert (got_a, got_b, ends) == (b"hello", b"there", [b"Shutting down!"] * 2)
    assert out.splitlines() == ["Listening on 127.0.0.1:<port>", "Received b'hello', sending!", "Received b'there', sending!",
                                    "Shutting down!", "2 client thread(s) stopped"]


# -- streams and protocols -----------------------------------------------------------

DATA_RECEIVED = (r"(Data received!\n)+", "Data received!\n")


def test_protocol_http_get():
    both = run_both("streams/protocol_http_get", subs=[DATA_RECEIVED])
    assert both.lines == [
        "Connection made to 127.0.0.1", "Data received!", "EOF received",
        "Connection closed without error.", "HTTP/1.1 200 OK",
        "Content-Type: text/html; charset=utf-8", "Content-Length: 49",
        "<html><body><h1>Example Domain</h1></body></html>",
    ]


def test_stream_http_get():
    both = run_both("streams/stream_http_get")
    assert both.lines == [
        "8 lines", "HTTP/1.1 200 OK", "Content-Type: text/html; charset=utf-8",
        "Content-Length: 49", "<html><body><h1>Example Domain</h1></body></html>",
    ]


def drive_broadcast(loop: str):
    port = free_port()
    with LiveExample("streams/broadcast_server", "--port", port, loop=loop) as ex:
        ex.wait_for("Listening on")
        got = []
        a = connect(port)
        got += [b"A " + recv_line(a), b"A " + recv_line(a)]
        b = connect(port)
        got += [b"B " + recv_line(b), b"B " + recv_line(b), b"A " + recv_line(a)]
        a.sendall(b"hi from a\n")
        got.append(b"A " + recv_line(a))
        b.sendall(b"hi from b\n")
        got.append(b"B " + recv_line(b))
        b.close()
        got.append(b"A " + recv_line(a))
        ex.signal(signal.SIGTERM)
        rc = ex.wait()
        got.append(b"A " + recv_line(a))  # EOF once the server stops
        a.close()
        return rc, normalise(ex.stdout), got


def test_broadcast_server():
    rc, out, got = both_loops(drive_broadcast)
    assert rc == 0
    assert out == "Listening on 127.0.0.1:<port>\nShutting down\nServer stopped\n"
    assert got == [
        b"A Welcome! 1 user(s) are online!\n", b"A New user connected!\n",
        b"B Welcome! 2 user(s) are online!\n", b"B New user connected!\n",
        b"A New user connected!\n",
        b"A hi from a\n", b"B hi from b\n",
        b"A Client disconnected. 1 user(s) are online!\n",
        b"A ",
    ]


# -- the five original examples (self-checking programs) -----------------------------

LOOP_CLASS = (r" on (ferroloop\.loop\.Loop|asyncio\.unix_events\._UnixSelectorEventLoop)",
              " on <loop>")


@pytest.mark.parametrize("name", ["echo_server", "chat_server", "graceful_shutdown",
                                  "tasks_and_timeouts"])
def test_original_examples(name):
    both = run_both(name, subs=[LOOP_CLASS])
    assert both.lines and both.lines[-1].startswith(f"{name}:"), both.out
    if name == "tasks_and_timeouts":  # it names its loop: each run used the right one
        assert "on asyncio.unix_events._UnixSelectorEventLoop" in both.stdlib.stdout
        assert "on ferroloop.loop.Loop" in both.ferroloop.stdout
