"""gunicorn worker classes that run their app on ferroloop.

``gunicorn -k ferroloop.workers.UvicornWorker app:app``
    an ASGI app, through uvicorn's gunicorn worker (from the
    ``uvicorn-worker`` package, or uvicorn's own deprecated
    ``uvicorn.workers`` when that is not installed), with
    ``--loop ferroloop:new_event_loop`` in each worker.

``gunicorn -k ferroloop.workers.AiohttpWorker module:app``
    an aiohttp ``web.Application`` (or a coroutine returning one), through
    aiohttp's ``GunicornWebWorker`` with a ferroloop loop in each worker:
    what ``aiohttp.GunicornUVLoopWebWorker`` is for uvloop.

The classes are built on first access, so importing this module needs
neither gunicorn, uvicorn nor aiohttp.
"""

from __future__ import annotations

from typing import Any

__all__ = ("UvicornWorker", "AiohttpWorker")  # noqa: F822  (built lazily by __getattr__)

#: The ``--loop`` value uvicorn (>= 0.36) takes for ferroloop: an import
#: string of the loop factory. uvicorn accepts only its own loop names
#: (auto, asyncio, uvloop, none) or ``module:attribute``.
UVICORN_LOOP = "ferroloop:new_event_loop"

_built: dict[str, type] = {}


def _missing(what: str, package: str, exc: ImportError) -> ImportError:
    return ImportError(
        f"ferroloop.workers.{what} needs {package}, which is not importable "
        f"({exc}); install it with: python -m pip install {package}"
    )


def _uvicorn_worker() -> type:
    try:
        from uvicorn_worker import UvicornWorker as base  # the maintained home
    except ImportError:
        try:
            import warnings

            with warnings.catch_warnings():
                # uvicorn.workers warns that it moved to uvicorn-worker.
                warnings.simplefilter("ignore", DeprecationWarning)
                from uvicorn.workers import UvicornWorker as base
        except ImportError as exc:
            raise _missing("UvicornWorker", "uvicorn-worker", exc) from None

    class UvicornWorker(base):  # type: ignore[misc,valid-type]
        """uvicorn's gunicorn worker with ferroloop as the event loop."""

        CONFIG_KWARGS = {**base.CONFIG_KWARGS, "loop": UVICORN_LOOP}

    UvicornWorker.__module__ = __name__
    return UvicornWorker


def _aiohttp_worker() -> type:
    try:
        import asyncio

        from aiohttp.worker import GunicornWebWorker
    except ImportError as exc:
        raise _missing("AiohttpWorker", "aiohttp gunicorn", exc) from None
    import ferroloop

    class AiohttpWorker(GunicornWebWorker):  # type: ignore[misc,valid-type]
        """aiohttp's gunicorn worker with a ferroloop loop (no policy)."""

        def init_process(self) -> None:
            # GunicornWebWorker.init_process makes an asyncio loop and then
            # calls gunicorn's; do the same with a ferroloop loop.
            self.loop = ferroloop.new_event_loop()
            asyncio.set_event_loop(self.loop)
            super(GunicornWebWorker, self).init_process()

    AiohttpWorker.__module__ = __name__
    return AiohttpWorker


_BUILDERS = {"UvicornWorker": _uvicorn_worker, "AiohttpWorker": _aiohttp_worker}


def __getattr__(name: str) -> Any:
    builder = _BUILDERS.get(name)
    if builder is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _built:
        _built[name] = builder()
    return _built[name]
