"""One router served by each way wskit can be hosted, for suites that run once per host.

``async with serving(router, "hypercorn", max_connections=2) as server:`` serves ``router``
with the keyword options of ``serve()`` and yields what the tests read of a server: its
``url``, ``port`` and path ``prefix``, its ``router``, ``runtime``, ``admission``,
``watchdog``, ``connection_count`` and ``settings``, and ``shutdown()``. The ways
(:data:`SERVING`): ``serve``'s own :class:`~wskit.Server` (aiohttp, and picows), :func:`wskit.asgi.asgi_app`
under uvicorn and under hypercorn, and a FastAPI app that mounts it at ``/ws`` beside a route
of its own and adopts its lifespan.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

from tests.asgi.hosts import UVICORN_WS, running

from wskit import Router, Server
from wskit.admission import Admission
from wskit.asgi import AsgiApp, asgi_app
from wskit.config import Settings
from wskit.lifetime import Watchdog
from wskit.runtime import Runtime

#: uvicorn's default WebSocket implementation (the protocol suite runs every one of them)
UVICORN = "uvicorn-websockets-sansio" if "websockets-sansio" in UVICORN_WS else "uvicorn-wsproto"
#: every way a suite runs its tests
SERVING = ["serve", "picows", "uvicorn", "hypercorn", "fastapi-mount"]
#: the ways that are serve()'s own server, and the transport each runs (WSKIT_TRANSPORT)
SERVE_WAYS = {"serve": "aiohttp", "picows": "picows"}
#: the ways that are ASGI hosts
ASGI_SERVING = [way for way in SERVING if way not in SERVE_WAYS]
#: where the FastAPI app mounts wskit
MOUNT = "/ws"


class Served(Protocol):
    """What the tests read of a running server, whatever hosts it."""

    @property
    def url(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def router(self) -> Router[Any]: ...
    @property
    def runtime(self) -> Runtime | None: ...
    @property
    def admission(self) -> Admission: ...
    @property
    def watchdog(self) -> Watchdog: ...
    @property
    def connection_count(self) -> int: ...
    @property
    def settings(self) -> Settings: ...
    async def shutdown(self, *, grace_ms: int | None = None) -> None: ...
    async def stop(self) -> None: ...


class AsgiServed:
    """An :class:`AsgiApp` running under a host: read as a :class:`~wskit.Server` is read."""

    def __init__(self, app: AsgiApp, router: Router[Any], port: int, prefix: str) -> None:
        self.app = app
        self.router = router
        self.port = port
        #: the path wskit is mounted at ("" at the root)
        self.prefix = prefix
        self.url = f"ws://127.0.0.1:{port}{prefix}/"

    @property
    def runtime(self) -> Runtime:
        return self.app.runtime

    @property
    def admission(self) -> Admission:
        return self.app.runtime.admission

    @property
    def watchdog(self) -> Watchdog:
        return self.app.runtime.watchdog

    @property
    def connection_count(self) -> int:
        return len(self.app.runtime.connections)

    @property
    def settings(self) -> Settings:
        return self.app.settings

    async def shutdown(self, *, grace_ms: int | None = None) -> None:
        """What a host's lifespan shutdown does: notice, drain, close with the configured code."""
        await self.app.shutdown(grace_ms=grace_ms)

    async def stop(self) -> None:
        """Stop at once (no grace): what ``Server.stop()`` does."""
        await self.app.shutdown(grace_ms=0)


def mounted_in_fastapi(app: AsgiApp) -> Any:
    """A FastAPI app with a route of its own (``GET /hello``) that mounts ``app`` at
    :data:`MOUNT` and adopts its lifespan: wskit beside a user's HTTP API."""
    from fastapi import FastAPI

    parent = FastAPI(lifespan=app.lifespan)

    @parent.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    parent.mount(MOUNT, app)
    return parent


def prefix_of(server: object) -> str:
    """The path prefix a server's own paths live under ("" unless mounted)."""
    return str(getattr(server, "prefix", ""))


@contextlib.asynccontextmanager
async def serving(router: Router[Any], way: str, **options: Any) -> AsyncIterator[Served]:
    """Serve ``router`` the ``way`` named (one of :data:`SERVING`) until the block ends."""
    options.setdefault("env", {})
    if way in SERVE_WAYS:
        options.setdefault("port", 0)
        options.setdefault("host", "127.0.0.1")
        options.setdefault("transport", SERVE_WAYS[way])
        async with Server(router, **options) as server:
            yield server
        return
    app = asgi_app(router, **options)
    if way == "fastapi-mount":
        async with running(mounted_in_fastapi(app), UVICORN, proxy_headers=False) as host:
            yield AsgiServed(app, router, host.port, MOUNT)
        return
    # uvicorn believes X-Forwarded-For from 127.0.0.1 by default (its --forwarded-allow-ips):
    # off, so that TRUSTED_PROXIES alone decides, as under serve() (docs/asgi.md)
    host_options = {"proxy_headers": False} if way == "uvicorn" else {}
    host_name = {"uvicorn": UVICORN, "hypercorn": "hypercorn"}[way]
    async with running(app, host_name, **host_options) as host:
        yield AsgiServed(app, router, host.port, "")
