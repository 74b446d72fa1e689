"""Tests expected to fail on ferroloop: test id -> why.

Ids are ``<module>.<Class>.<test>`` as printed by the runner; a key may be an
fnmatch pattern (``test_tasks.*.test_x``). Only two kinds of reason belong
here: features ferroloop does not implement natively yet, and tests that
depend on stdlib-private internals of asyncio's own loop. Anything else is a
ferroloop bug to fix, not to list.

``STDLIB_LOOP_ONLY`` lists tests that keep the stdlib loop they build for
themselves even when the runner hands such tests a ferroloop loop (the
default; see ``suites.py``), because they drive that loop's private parts.
They still run, on the stdlib loop.
"""

KNOWN_FAILURES: dict[str, str] = {
    # --extra modules
    "test_unix_events.SelectorEventLoopUnixSockSendfileTests.test_sock_sendfile_blocking_error": (
        "asserts the writer via loop._selector.get_key(sock) (stdlib-private): ferroloop "
        "registers fds in its Rust reactor, not the inherited stdlib selector (the writer "
        "is there: loop._has_fd_callback(sock, 'w') is True)"
    ),
}

STDLIB_LOOP_ONLY: dict[str, str] = {
    "test_tasks.*.test_log_destroyed_pending_task": (
        "steps the loop with loop._run_once() and checks loop._ready: on ferroloop "
        "_run_once is BaseEventLoop's, which finds no work in the (unused) stdlib "
        "_ready/_scheduled and blocks forever in the stdlib selector"
    ),
}
