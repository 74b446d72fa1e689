"""What happens when callbacks raise: the exception handler, the default
handler's log, and KeyboardInterrupt/SystemExit escaping the loop."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from tests.helpers import PY313, run_iterations


def boom():
    raise ValueError("boom")


def collect_errors(loop):
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append((lp, ctx)))
    return errors


def test_exception_in_callback_goes_to_handler_and_loop_goes_on(loop):
    errors = collect_errors(loop)
    out = []
    h = loop.call_soon(boom)
    loop.call_soon(out.append, "after")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["after"]
    assert len(errors) == 1
    lp, ctx = errors[0]
    assert lp is loop
    assert set(ctx) == {"message", "exception", "handle"}
    assert ctx["message"].startswith("Exception in callback boom()")
    assert isinstance(ctx["exception"], ValueError)
    assert str(ctx["exception"]) == "boom"
    assert ctx["handle"] is h


def test_exception_passed_to_handler_carries_its_traceback(loop):
    errors = collect_errors(loop)
    loop.call_soon(boom)
    run_iterations(loop, 1)
    exc = errors[0][1]["exception"]
    assert exc.__traceback__ is not None
    # The innermost frame is the callback that raised.
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert tb.tb_frame.f_code.co_name == "boom"


def test_exception_message_formats_arguments(loop):
    errors = collect_errors(loop)

    def fails(a, b):
        raise KeyError(a)

    loop.call_soon(fails, 1, "x")
    run_iterations(loop, 1)
    assert errors[0][1]["message"].startswith("Exception in callback ")
    if PY313:
        # 3.13 shows a callback's arguments only in debug mode (they may
        # hold secrets: asyncio.format_helpers._format_args_and_kwargs).
        assert "fails() at " in errors[0][1]["message"]
        loop.set_debug(True)
        loop.call_soon(fails, 1, "x")
        run_iterations(loop, 1)
        assert "fails(1, 'x')" in errors[1][1]["message"]
    else:
        assert "fails(1, 'x')" in errors[0][1]["message"]


def test_exception_in_timer_callback(loop):
    errors = collect_errors(loop)
    h = loop.call_later(0.001, boom)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert len(errors) == 1
    ctx = errors[0][1]
    assert ctx["handle"] is h
    assert ctx["message"].startswith("Exception in callback boom()")


def test_exception_in_reader_callback_keeps_reader(loop):
    errors = collect_errors(loop)
    a, b = socket.socketpair()
    a.setblocking(False)
    calls = []

    def reader():
        calls.append(a.recv(1))
        if len(calls) == 2:
            loop.remove_reader(a)
            loop.stop()
        raise ValueError("reader failed")

    try:
        loop.add_reader(a, reader)
        b.send(b"ab")
        loop.run_forever()
    finally:
        a.close()
        b.close()
    assert calls == [b"a", b"b"]
    assert len(errors) == 2
    assert all(e[1]["message"].startswith("Exception in callback ") for e in errors)


def test_base_exception_subclass_goes_to_handler(loop):
    class Custom(BaseException):
        pass

    def raise_custom():
        raise Custom()

    errors = collect_errors(loop)
    out = []
    loop.call_soon(raise_custom)
    loop.call_soon(out.append, "after")
    run_iterations(loop, 1)
    assert out == ["after"]
    assert isinstance(errors[0][1]["exception"], Custom)


def test_non_callable_callback_fails_at_run_time(loop):
    # Outside debug mode asyncio does not check callbacks when scheduling.
    errors = collect_errors(loop)
    loop.call_soon(123)
    run_iterations(loop, 1)
    assert isinstance(errors[0][1]["exception"], TypeError)


def test_set_and_get_exception_handler(loop):
    assert loop.get_exception_handler() is None

    def handler(lp, ctx):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None
    with pytest.raises(TypeError):
        loop.set_exception_handler(42)


def test_call_exception_handler_directly(loop):
    errors = collect_errors(loop)
    loop.call_exception_handler({"message": "hello", "extra": 1})
    assert errors == [(loop, {"message": "hello", "extra": 1})]


@pytest.mark.exception_handler_ok
def test_default_handler_logs_error(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")
    loop.call_soon(boom)
    run_iterations(loop, 1)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    rec = records[0]
    assert rec.levelno == logging.ERROR
    assert rec.getMessage().startswith("Exception in callback boom()")
    assert rec.exc_info and rec.exc_info[0] is ValueError


@pytest.mark.exception_handler_ok
def test_default_handler_log_includes_traceback(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")
    loop.call_soon(boom)
    run_iterations(loop, 1)
    assert "Traceback (most recent call last):" in caplog.text
    assert 'raise ValueError("boom")' in caplog.text


@pytest.mark.exception_handler_ok
def test_default_handler_log_shows_handle_with_callback(loop, caplog):
    # asyncio's default handler prints "handle: <Handle boom() at ...>".
    caplog.set_level(logging.ERROR, logger="asyncio")
    loop.call_soon(boom)
    run_iterations(loop, 1)
    message = caplog.records[0].getMessage()
    handle_lines = [line for line in message.splitlines() if line.startswith("handle: ")]
    assert len(handle_lines) == 1
    assert "boom()" in handle_lines[0]


@pytest.mark.exception_handler_ok
def test_error_in_exception_handler_is_logged(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")

    def bad_handler(lp, ctx):
        raise RuntimeError("handler broke")

    loop.set_exception_handler(bad_handler)
    out = []
    loop.call_soon(boom)
    loop.call_soon(out.append, "still running")
    run_iterations(loop, 1)
    assert out == ["still running"]
    assert any("Unhandled error in exception handler" in r.getMessage() for r in caplog.records)


def test_task_exception_never_retrieved_is_reported(loop):
    errors = collect_errors(loop)

    async def fail():
        raise ValueError("lost")

    task = loop.create_task(fail())
    run_iterations(loop, 2)
    assert task.done()
    del task
    import gc

    gc.collect()
    assert any(c["message"] == "Task exception was never retrieved" for _, c in errors)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_keyboardinterrupt_and_systemexit_escape_run_forever(loop, exc_type):
    errors = collect_errors(loop)
    out = []

    def raiser():
        raise exc_type()

    loop.call_soon(out.append, "before")
    loop.call_soon(raiser)
    loop.call_soon(out.append, "after")
    loop.call_soon(loop.stop)
    with pytest.raises(exc_type):
        loop.run_forever()
    assert out == ["before"]
    assert errors == []
    assert not loop.is_running()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    # The loop can run again; what was queued after the raiser still runs.
    loop.run_forever()
    assert out == ["before", "after"]
    loop.call_soon(out.append, "again")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["before", "after", "again"]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_keyboardinterrupt_and_systemexit_escape_run_until_complete(loop, exc_type):
    async def main():
        await asyncio.sleep(0)
        raise exc_type()

    with pytest.raises(exc_type):
        loop.run_until_complete(main())
    assert not loop.is_running()
    assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"


def test_keyboardinterrupt_from_timer_callback(loop):
    def raiser():
        raise KeyboardInterrupt

    out = []
    loop.call_later(0.001, raiser)
    loop.call_later(0.001, out.append, "second timer")
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert out == []
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert out == ["second timer"]


def test_keyboardinterrupt_from_reader_callback(loop):
    a, b = socket.socketpair()
    a.setblocking(False)

    def reader():
        a.recv(10)
        loop.remove_reader(a)
        raise KeyboardInterrupt

    try:
        loop.add_reader(a, reader)
        b.send(b"x")
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()
        assert not loop.is_running()
        assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"
    finally:
        a.close()
        b.close()
