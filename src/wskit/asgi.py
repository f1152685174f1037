"""wskit as an ASGI application: ``asgi_app(router)`` under uvicorn or hypercorn, or mounted in
Starlette and FastAPI beside their own routes.

>>> app = asgi_app(router)                      # uvicorn module:app / hypercorn module:app
>>> fastapi_app.mount("/ws", app)               # upgrades at /ws/, /ws/healthz, /ws/metrics...
>>> FastAPI(lifespan=app.lifespan)              # when mounted: start and stop with the parent

The same options and environment variables as ``serve()`` build the same runtime
(:func:`wskit.runtime.build_runtime`): guards, broker, history and presence apply alike. What
only a process wskit owns does (the GC policy, logging configuration, TLS, workers, pings)
is the ASGI server's business here. See ``docs/asgi.md`` for each host's shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from wskit.admission import Authenticate, Refusal
from wskit.ops_http import HttpAnswer, own_answer
from wskit.router import Router
from wskit.runtime import Runtime, build_runtime
from wskit.transports.asgi import Receive, Scope, Send, refuse, serve_websocket

__all__ = ["AsgiApp", "asgi_app"]

log = logging.getLogger("wskit.asgi")

_TEXT = "text/plain; charset=utf-8"


class AsgiApp:
    """The ASGI application serving one router's runtime (make it with :func:`asgi_app`).

    Handles ``websocket`` scopes (wskit connections), ``http`` scopes (the server's own
    paths, :mod:`wskit.ops_http`; 400 for a plain request on the upgrade path, 404
    elsewhere) and ``lifespan`` (start and stop the runtime). Mounted where lifespan does not
    reach it, it starts on first use; :meth:`lifespan` lets a parent app stop it cleanly too.
    """

    def __init__(self, runtime: Runtime) -> None:
        #: the runtime served (its router's verbs reach it once started)
        self.runtime = runtime
        self.settings = runtime.settings
        self.started = False
        self._starting: asyncio.Lock | None = None

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if not self.started:
            await self.start()  # mounted where no lifespan reaches: start on first use
        path = _relative_path(scope)
        if kind == "websocket":
            if self.settings.path is not None and path != self.settings.path:
                self.runtime.telemetry.refused_upgrade("path", 404, _client_host(scope), path, "not the WebSocket path")
                await receive()  # websocket.connect
                await refuse(scope, send, Refusal(404, "Not Found"))
                return
            await serve_websocket(self.runtime, scope, receive, send, path)
        elif kind == "http":
            await self._http(scope, path, send)

    async def _http(self, scope: Scope, path: str, send: Send) -> None:
        own = await own_answer(self.runtime, path, scope.get("method", "GET"))
        if own is None and self.settings.path is not None and path != self.settings.path:
            own = HttpAnswer(404, _TEXT, b"Not Found")
        elif own is None:
            # the upgrade path, asked without an upgrade (as serve() answers)
            own = HttpAnswer(400, _TEXT, b"Expected a WebSocket upgrade")
        headers = [(b"content-type", own.content_type.encode()), (b"content-length", str(len(own.body)).encode())]
        headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in own.headers.items()]
        await send({"type": "http.response.start", "status": own.status, "headers": headers})
        await send({"type": "http.response.body", "body": own.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    log.exception("wskit failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as exc:
                    log.exception("wskit failed to stop cleanly")
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the runtime (its broker) once; concurrent first uses wait for the same start."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self.started:
                return
            runtime = self.runtime
            # a second life (a test client entered twice): admit and dispatch again
            runtime.admission.closed = False
            runtime.dispatcher.draining = False
            await runtime.start()
            self.started = True

    async def shutdown(self, *, grace_ms: int | None = None, code: int | None = None) -> None:
        """Stop gracefully, as far as the host still lets connections live.

        Connections still open get the ``SERVER_SHUTDOWN`` notice and up to ``grace_ms``
        (default ``SHUTDOWN_GRACE_MS``) for their running handlers, then close with ``code``
        (default ``SHUTDOWN_CLOSE_CODE``); then the broker stops. Under uvicorn and hypercorn
        the host has closed every WebSocket before it sends ``lifespan.shutdown``, so only
        the last two steps are left (docs/asgi.md).
        """
        if not self.started:
            return
        s = self.settings
        runtime = self.runtime
        grace = (s.shutdown_grace_ms if grace_ms is None else grace_ms) / 1000.0
        try:
            if runtime.connections:
                await runtime.drain(grace)
            await runtime.close_connections(s.shutdown_close_code if code is None else code, "server shutting down")
        finally:
            self.started = False
            self._starting = None  # a next life may run on another event loop (a new test client)
            await runtime.stop()

    @contextlib.asynccontextmanager
    async def lifespan(self, parent: object = None) -> AsyncIterator[None]:
        """Start on entry, shut down on exit: the lifespan a parent app adopts when it mounts
        this one (``FastAPI(lifespan=app.lifespan)``, ``Starlette(lifespan=app.lifespan)``),
        or enters inside its own (``async with app.lifespan(): ...``)."""
        await self.start()
        try:
            yield
        finally:
            await self.shutdown()

    def __repr__(self) -> str:
        return f"<AsgiApp {self.runtime!r}>"


def _relative_path(scope: Scope) -> str:
    """The request's path below the mount: ASGI's ``path`` includes ``root_path`` (servers and
    Starlette's ``Mount`` both set it so); older mounts strip it instead."""
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root) :]
    return path if path.startswith("/") else "/" + path


def _client_host(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def asgi_app(router: Router[Any], *, authenticate: Authenticate | None = None, **options: Any) -> AsgiApp:
    """The ASGI application serving ``router``.

    Takes the keyword options of ``serve()`` (and reads the same environment variables;
    ``env=`` replaces ``os.environ``, for tests): the runtime is built here, so a bad setting
    raises :class:`~wskit.config.ConfigError` at import of the app, not at its first
    connection. ``authenticate(request)``: as for ``serve()`` (None refuses with 401).
    """
    return AsgiApp(build_runtime(router, authenticate=authenticate, **options))
