"""The server's own HTTP paths, answered once for every host: ``/healthz``, ``/readyz``,
``/metrics`` and ``/wskit.js``.

Each host (aiohttp and picows under ``serve()``, :mod:`wskit.asgi`) asks :func:`own_answer` and
writes what it gets back in its own way, so the three answer alike: liveness (200 while the
process runs), readiness (503 from the start of a graceful shutdown, or while the broker
cannot carry publishes), the Prometheus exposition, and the browser client.

``/metrics`` costs the event loop the same at any connection count: the counters are read
on it (nothing walks the connections), the rest happens in a thread: the rendering, whose
``process_open_fds`` lists one file per connection, and with ``METRICS_DIR`` the reading of
the other processes' files (:mod:`wskit.metrics`). And it costs that once however many ask
at a time: requests that arrive while a rendering is under way share its answer (figures
read when it began, milliseconds before), so a client that opens many connections to
``/metrics`` at once does not multiply the work. ``METRICS=0``: 404, as for any path the
server does not have. Without prometheus-client: 501, saying what to install.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from wskit.prometheus import INSTALL_HINT, available, content_type, render
from wskit.runtime import Runtime
from wskit.static import WSKIT_JS, WSKIT_JS_HEADERS, WSKIT_JS_PATH, WSKIT_JS_TYPE

__all__ = ["METRICS_PATH", "PATHS", "HttpAnswer", "is_own_path", "own_answer"]

#: where the Prometheus exposition is served
METRICS_PATH: Final = "/metrics"
#: the paths :func:`own_answer` answers (relative to the mount under ASGI)
PATHS: Final = frozenset({"/healthz", "/readyz", METRICS_PATH, WSKIT_JS_PATH})

_TEXT: Final = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """One complete HTTP answer: status, content type, body and any other headers."""

    status: int
    content_type: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


_WSKIT_JS: Final = HttpAnswer(200, WSKIT_JS_TYPE, WSKIT_JS, WSKIT_JS_HEADERS)
_NOT_FOUND: Final = HttpAnswer(404, _TEXT, b"Not Found")
_METHODS: Final = HttpAnswer(405, _TEXT, b"Method Not Allowed", {"Allow": "GET, HEAD"})

#: each runtime's rendering under way, which the scrapes that arrive meanwhile await
_RENDERING: weakref.WeakKeyDictionary[Runtime, asyncio.Task[bytes]] = weakref.WeakKeyDictionary()


def is_own_path(path: str) -> bool:
    """True for the paths :func:`own_answer` answers."""
    return path in PATHS


async def own_answer(runtime: Runtime, path: str, method: str = "GET") -> HttpAnswer | None:
    """The answer to ``method path`` when ``path`` is one of the server's own (else None:
    the host goes on with its own routing). Only GET and HEAD are answered (405 otherwise);
    the host leaves the body out for HEAD."""
    if path not in PATHS:
        return None
    if method not in ("GET", "HEAD"):
        return _METHODS
    if path == "/healthz":
        return HttpAnswer(200, _TEXT, b"ok")
    if path == "/readyz":
        ready, why = runtime.ready()
        return HttpAnswer(200 if ready else 503, _TEXT, why.encode())
    if path == WSKIT_JS_PATH:
        return _WSKIT_JS
    return await _metrics(runtime)


async def _metrics(runtime: Runtime) -> HttpAnswer:
    if not runtime.settings.metrics:
        return _NOT_FOUND
    if not available():
        return HttpAnswer(501, _TEXT, INSTALL_HINT.encode())
    loop = asyncio.get_running_loop()
    rendering = _RENDERING.get(runtime)
    if rendering is None or rendering.done() or rendering.get_loop() is not loop:
        rendering = _RENDERING[runtime] = loop.create_task(_render(runtime))
        rendering.add_done_callback(_rendered)
    # shielded: a scrape whose client left must not cancel the others' answer
    return HttpAnswer(200, content_type(), await asyncio.shield(rendering))


def _rendered(rendering: asyncio.Task[bytes]) -> None:
    """Retrieve a rendering's failure: the scrapes that awaited it answer 500, but they may
    all have been cancelled (their clients gone), and a failure nobody retrieved is logged
    as a bug of its own."""
    if not rendering.cancelled():
        rendering.exception()


async def _render(runtime: Runtime) -> bytes:
    shared = runtime.metrics_file
    if shared is None:
        # process_open_fds lists /proc/self/fd: one entry per connection, so the rendering
        # runs in a thread (the families were read on the loop, and are plain data)
        return await asyncio.to_thread(render, runtime.telemetry.families(), process=True)
    # the sum of several processes: process_* of the one that answered would mislead
    return render(await shared.gather())
